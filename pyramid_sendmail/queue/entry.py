"""What every queue backend shares: the entry a processor claims and the
report of what the queue holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

from ..message import Envelope

__all__ = [
    "NORMAL",
    "PRIORITIES",
    "STATES",
    "QueueEntry",
    "QueueStatus",
    "Schedule",
    "ScheduledEnvelope",
    "StateCount",
]

#: The priority classes, in the order a pass sends them.
PRIORITIES = ("high", "normal", "low")

#: The states :meth:`~pyramid_sendmail.interfaces.IMailQueue.status` counts:
#: due now, due later, claimed by a processor, failed for good, and prepared
#: by a transaction that never published them (older than a day).
STATES = ("queued", "deferred", "claimed", "failed", "stale_tmp")


@dataclass(frozen=True)
class Schedule:
    """When a queued message may go, when it is too late, and its class.

    *send_at* and *expires_at* are POSIX timestamps (None: at once, never).
    """

    send_at: float | None = None
    expires_at: float | None = None
    priority: str = "normal"

    @property
    def rank(self) -> int:
        """The position of ``priority`` in ``PRIORITIES`` (0 goes first)."""
        return PRIORITIES.index(self.priority)

    def expired(self, now: float) -> bool:
        """True once *now* is past ``expires_at``."""
        return self.expires_at is not None and now >= self.expires_at


#: A message with no schedule: due at once, never expiring, normal priority.
NORMAL = Schedule()


class ScheduledEnvelope(Envelope):
    """An :class:`~pyramid_sendmail.Envelope` with the :class:`Schedule` that
    ``send(..., send_at=, expires_at=, priority=)`` gave it, on its way to a queue."""

    __slots__ = ("schedule",)

    def __init__(self, envelope: Envelope, schedule: Schedule) -> None:
        super().__init__(envelope.sender, envelope.recipients, envelope.data, envelope.message_id)
        self.schedule = schedule


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
    #: When it was to go, when it expires, and its priority class.
    schedule: Schedule = field(default=NORMAL)

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
