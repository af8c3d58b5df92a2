"""Claims in hand, kept alive while their messages are being sent.

A claim older than the claim timeout is taken back by any processor's
``recover()``. A send has no upper bound of its own (``mail.timeout`` bounds
each wait for progress, not a whole send: forty recipients each answered
slowly, or ten megabytes over a slow link), so the claims a live processor
holds are renewed by a thread every third of the timeout: a claim is lost
only when its process died, or stopped for two thirds of the timeout.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable

from .entry import QueueEntry

__all__ = ["ClaimKeeper"]

log = logging.getLogger(__name__)


class ClaimKeeper:
    """The claims this process holds, renewed by *renew* every *interval* seconds.

    *renew* is called with each entry in hand and returns False when the
    claim was lost (another processor took it back); the entry is then
    dropped. :attr:`lock` serialises renewal with the queue's own use of a
    claim's path.
    """

    def __init__(self, renew: Callable[[QueueEntry], bool], interval: float, name: str) -> None:
        self._renew = renew
        self.interval = interval
        self.name = name
        #: Held while claims are renewed.
        self.lock = threading.Lock()
        # By name: the processor settles copies of an entry (dataclasses.replace).
        self._in_hand: dict[str, QueueEntry] = {}
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        _KEEPERS.add(self)

    def hold(self, entry: QueueEntry) -> None:
        """Keep *entry*'s claim alive until :meth:`drop`."""
        with self.lock:
            if not _FORK_HOOKED:
                self._forked()  # else done in the child at the fork (a getpid a claim)
            self._in_hand[entry.name] = entry
            if self._thread is None or not self._thread.is_alive():
                self._closed = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(self._closed,), name=self.name, daemon=True
                )
                self._thread.start()

    def drop(self, entry: QueueEntry) -> None:
        """Stop renewing *entry*'s claim: it is about to be settled.

        Once this returns, the claim's path no longer changes under the caller.
        """
        with self.lock:
            self._in_hand.pop(entry.name, None)

    def renew_all(self) -> int:
        """Renew every claim in hand now; return how many still hold."""
        held = 0
        with self.lock:
            self._forked()
            for key, entry in list(self._in_hand.items()):
                try:
                    kept = self._renew(entry)
                except OSError:
                    log.warning("could not renew the claim of %s", entry.name, exc_info=True)
                    kept = True  # tried again next time; it may still hold
                if kept:
                    held += 1
                else:
                    del self._in_hand[key]
                    log.warning("lost the claim of %s to another processor", entry.name)
        return held

    def close(self) -> None:
        """Stop the renewing thread (it starts again with the next claim)."""
        self._closed.set()

    def _forked(self) -> None:
        # A child never renews (or settles) its parent's claims.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._in_hand.clear()
            self._thread = None

    def _run(self, closed: threading.Event) -> None:
        while not closed.wait(self.interval):
            self.renew_all()
            with self.lock:
                # Nothing in hand: end, and let the next claim start another.
                if not self._in_hand and self._thread is threading.current_thread():
                    self._thread = None
                    return


_KEEPERS: weakref.WeakSet[ClaimKeeper] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # Another thread may have held a lock at the fork: it never comes back.
    for keeper in list(_KEEPERS):
        keeper.lock = threading.Lock()
        keeper._forked()


_FORK_HOOKED = hasattr(os, "register_at_fork")
if _FORK_HOOKED:
    os.register_at_fork(after_in_child=_after_fork_in_child)
