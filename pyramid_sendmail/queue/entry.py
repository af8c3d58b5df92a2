"""What every queue backend shares: the entry a processor claims and the
report of what the queue holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from ..message import Envelope

__all__ = ["STATES", "QueueEntry", "QueueStatus", "StateCount"]

#: The states :meth:`~pyramid_sendmail.interfaces.IMailQueue.status` counts:
#: due now, due later, claimed by a processor, failed for good, and prepared
#: by a transaction that never published them (older than a day).
STATES = ("queued", "deferred", "claimed", "failed", "stale_tmp")


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

    def attempted(self, error: str) -> None:
        """Record one more failed delivery attempt and its *error*.

        The one place that counts attempts: every backend's ``defer`` calls
        it, and the processor calls it on the copy it sets aside as failed.
        """
        self.attempts += 1
        self.error = error


class StateCount(TypedDict):
    """How many messages are in one state, and the age of the oldest."""

    count: int
    #: Seconds since the oldest was queued; None when there is none.
    oldest: float | None


#: :meth:`~pyramid_sendmail.interfaces.IMailQueue.status`: a
#: :class:`StateCount` for each of :data:`STATES`, in that order.
QueueStatus = dict[str, StateCount]
