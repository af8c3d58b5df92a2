"""A clock moved by hand, so that queue files age without sleeping."""

from __future__ import annotations


class Clock:
    """Pass as ``clock=`` to the queue and the processor."""

    def __init__(self, now: float = 2_000_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now
