"""The queue: where queued deliveries wait for a processor.

:mod:`.entry` holds what every backend shares (the entry a processor claims,
the status report); :mod:`.maildir` is the Maildir backend, and
:mod:`.maildir_format` the format of its files and their names. A second
backend is one more module here that provides
:class:`~pyramid_sendmail.interfaces.IMailQueue`.
"""

from ..exceptions import CorruptEntry, QueueError, QueueUnavailable, UnknownEntry
from .entry import STATES, QueueEntry, QueueStatus, StateCount
from .maildir import STALE_TMP_AGE, MaildirQueue, open_queue

__all__ = [
    "STALE_TMP_AGE",
    "STATES",
    "CorruptEntry",
    "MaildirQueue",
    "QueueEntry",
    "QueueError",
    "QueueStatus",
    "QueueUnavailable",
    "StateCount",
    "UnknownEntry",
    "open_queue",
]
