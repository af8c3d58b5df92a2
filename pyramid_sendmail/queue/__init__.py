"""The queue: where queued deliveries wait for a processor.

:mod:`.entry` holds what every backend shares (the entry a processor
claims); :mod:`.maildir` is the Maildir backend, and
:mod:`.maildir_format` the format of its files and their names. A second
backend is one more module here that provides
:class:`~pyramid_sendmail.interfaces.IMailQueue`.
"""

from .entry import CorruptEntry, QueueEntry
from .maildir import STALE_TMP_AGE, MaildirQueue, open_queue

__all__ = ["STALE_TMP_AGE", "CorruptEntry", "MaildirQueue", "QueueEntry", "open_queue"]
