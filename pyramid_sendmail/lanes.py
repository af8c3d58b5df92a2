"""Several SMTP sessions driven by one thread.

A lane is a generator that yields a socket (or a file descriptor) whenever
it would wait: for the relay
(:meth:`~pyramid_sendmail.mailers.SMTPSession.send_many_steps`), or for
the queue's database (``SQLQueue.complete_steps``). :func:`run_lanes`
waits on all their sockets at once and resumes each lane whose socket
became readable (sent ``True``), or that waited *timeout* seconds (sent
``False``). One thread then keeps every connection busy
without the threads' turns on the interpreter lock, which cost more than
the sending itself against a fast relay.
"""

from __future__ import annotations

import logging
import selectors
import socket
import time
from collections.abc import Generator, Iterable

__all__ = ["Lane", "run_lanes"]

log = logging.getLogger(__name__)

#: A lane's steps: sockets (or file descriptors) out, "readable?" in.
Lane = Generator[socket.socket | int, bool | None, None]


def run_lanes(lanes: Iterable[Lane], timeout: float) -> None:
    """Run *lanes* to their end, each waiting at most *timeout* per step.

    A lane that raises is dropped and the others go on, as the worker
    threads did; once they are done, the first error is raised again (a
    pass that broke must not look like a pass that found nothing).
    """
    selector = selectors.DefaultSelector()
    deadlines: dict[Lane, float] = {}
    # What each waiting lane is registered on: a lane that waits on the
    # same socket again (most steps) stays registered, which spares two
    # system calls a step.
    waits_on: dict[Lane, socket.socket | int] = {}
    errors: list[Exception] = []

    def advance(lane: Lane, readable: bool | None) -> None:
        try:
            sock = lane.send(readable)
        except StopIteration:
            forget(lane)
            return
        except Exception as exc:
            if errors:
                log.exception("another delivery lane failed too")
            errors.append(exc)
            forget(lane)
            return
        before = waits_on.get(lane)
        # A file descriptor number may have been closed and reused since:
        # only the same socket object is known to be the same registration.
        if before is not sock or not isinstance(sock, socket.socket):
            if before is not None:
                selector.unregister(before)
            selector.register(sock, selectors.EVENT_READ, lane)
            waits_on[lane] = sock
        deadlines[lane] = time.monotonic() + timeout

    def forget(lane: Lane) -> None:
        deadlines.pop(lane, None)
        before = waits_on.pop(lane, None)
        if before is not None:
            selector.unregister(before)

    try:
        for lane in lanes:
            advance(lane, None)
        while deadlines:
            wait = max(0.0, min(deadlines.values()) - time.monotonic())
            ready = {key.data for key, _events in selector.select(wait)}
            now = time.monotonic()
            for lane in [lane for lane, end in deadlines.items() if lane in ready or end <= now]:
                advance(lane, lane in ready)
        if errors:
            raise errors[0]
    finally:
        # Interrupted: close what is left (each session drops its connection).
        for lane in list(deadlines):
            lane.close()
        selector.close()
