"""What every queue backend shares: the entry a processor claims."""

from __future__ import annotations

from dataclasses import dataclass

from ..envelope import Envelope

__all__ = ["CorruptEntry", "QueueEntry"]


class CorruptEntry(Exception):
    """A queue file that cannot be read as a queued message."""


@dataclass
class QueueEntry:
    """A claimed message: its name, envelope and delivery history."""

    name: str
    envelope: Envelope
    queued_at: float
    attempts: int = 0
    error: str | None = None
    #: The backend's own handle on the claim (the Maildir: its file name in
    #: ``cur/``).
    claimed_as: str | None = None
