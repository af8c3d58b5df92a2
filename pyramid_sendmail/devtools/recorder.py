"""What the dev tools remember: each message this process took, and its outcome.

The :class:`Recorder` is the callable that ``request.mailer`` calls for every
message it takes while ``mail.devtools`` is on. It keeps a :class:`Record`
in a bounded :class:`Store` and follows the message to its outcome: the
transaction's after-commit and after-abort hooks say whether it was handed
on or discarded, and the :class:`~pyramid_sendmail.MailSent` /
:class:`~pyramid_sendmail.MailFailed` events (from the request or from the
queue processor) say what the mailer made of it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import transaction
from pyramid.threadlocal import get_current_request

from ..events import MailDeferred, MailFailed, MailSent
from ..message import Envelope
from ..message.headers import DEFAULT as POLICY
from ..wording import counted

__all__ = [
    "CANCELLED",
    "DISCARDED",
    "FAILED",
    "PENDING",
    "PREVIEW",
    "QUEUED",
    "REQUEST_KEY",
    "SENDING",
    "SENT",
    "Record",
    "Recorder",
    "Store",
]

#: The transaction that took the message has not ended yet.
PENDING = "pending"
#: Committed; direct delivery is handing it to the mailer.
SENDING = "sending"
#: Committed into the queue; the queue processor will send it.
QUEUED = "queued"
SENT = "sent"
FAILED = "failed"
DEFERRED = "deferred"
#: The transaction aborted (or was doomed): nothing was sent.
DISCARDED = "discarded"
#: Cancelled at ``send()`` by a MailSending subscriber: never sent.
CANCELLED = "cancelled"
#: Built by a preview: never sent.
PREVIEW = "preview"

#: The request's records, in ``request.environ`` (read by the toolbar panel).
REQUEST_KEY = "pyramid_sendmail.devtools.records"

_keys = itertools.count(1)
_header_parser = BytesParser(policy=POLICY)


@dataclass(eq=False)
class Record:
    """One message as the dev tools show it."""

    envelope: Envelope
    method: str
    outcome: str
    #: Why the outcome is what it is: the error, "transaction doomed"...
    detail: str = ""
    created: float = field(default_factory=time.time)
    #: The request that sent it (method and path), when there was one.
    origin: str = ""
    key: str = field(default_factory=lambda: str(next(_keys)))

    @property
    def size(self) -> int:
        """The size of the message in bytes."""
        return len(self.envelope.data)

    def headers(self) -> EmailMessage:
        """The header section, parsed (the body is not: records stay small)."""
        head = self.envelope.data.partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
        return _header_parser.parsebytes(head)

    def settle(self, outcome: str, detail: str = "") -> None:
        """Set the outcome (one assignment each: read by other threads)."""
        self.detail = detail
        self.outcome = outcome


class Store:
    """The newest records, within *max_messages* and *max_bytes*.

    The oldest records go first when either cap is reached; the newest one
    is always kept, however large, so the message just sent can be seen.
    """

    def __init__(self, max_messages: int = 200, max_bytes: int = 50 * 1024 * 1024) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._records: OrderedDict[str, Record] = OrderedDict()
        self._by_message_id: dict[str, Record] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def add(self, record: Record) -> None:
        """Keep *record*, forgetting the oldest ones beyond the caps."""
        with self._lock:
            self._records[record.key] = record
            self._by_message_id[record.envelope.message_id] = record
            self._bytes += record.size
            while len(self._records) > 1 and (
                len(self._records) > self.max_messages or self._bytes > self.max_bytes
            ):
                _, old = self._records.popitem(last=False)
                self._bytes -= old.size
                if self._by_message_id.get(old.envelope.message_id) is old:
                    del self._by_message_id[old.envelope.message_id]

    def get(self, key: str) -> Record | None:
        """The record with *key*, or None when it was never kept or is gone."""
        return self._records.get(key)

    def by_message_id(self, message_id: str) -> Record | None:
        """The newest record of the message with *message_id*."""
        return self._by_message_id.get(message_id)

    def records(self) -> list[Record]:
        """Every record kept, newest first."""
        with self._lock:
            return list(reversed(self._records.values()))

    @property
    def bytes(self) -> int:
        """The size of the messages kept."""
        return self._bytes

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._records.clear()
            self._by_message_id.clear()
            self._bytes = 0


class Recorder:
    """Records each message ``request.mailer`` takes (the ``MailSetup.recorder``).

    *queued_send* tells whether ``send()`` currently goes through the queue
    (the testing include may swap the delivery after the recorder is made).
    """

    def __init__(self, store: Store, queued_send: Callable[[], bool]) -> None:
        self.store = store
        self.queued_send = queued_send

    def __call__(self, envelope: Envelope, method: str, manager: Any) -> None:
        """Record *envelope*, taken by the send method named *method*."""
        # Only the bytes are kept, not the EmailMessage a writer may have
        # left on the envelope: the store's byte cap then bounds memory.
        envelope = Envelope(
            envelope.sender, envelope.recipients, envelope.data, envelope.message_id
        )
        request = get_current_request()
        origin = f"{request.method} {request.path_qs}" if request is not None else ""
        if method == "send_immediately":
            record = Record(envelope, method, SENDING, origin=origin)
        elif method == "send_to_queue_immediately":
            record = Record(envelope, method, QUEUED, origin=origin)
        else:
            record = Record(envelope, method, PENDING, origin=origin)
            queued = method == "send_to_queue" or self.queued_send()
            txn = (manager or transaction.manager).get()
            txn.addAfterCommitHook(self._committed, (record, queued))
            txn.addAfterAbortHook(self._aborted, (record, txn))
        self.store.add(record)
        if request is not None:
            request.environ.setdefault(REQUEST_KEY, []).append(record)

    def cancelled(self, message: Any, envelope: Envelope, reason: str) -> None:
        """Record *envelope*, cancelled by a MailSending subscriber for *reason*."""
        envelope = Envelope(
            envelope.sender, envelope.recipients, envelope.data, envelope.message_id
        )
        request = get_current_request()
        origin = f"{request.method} {request.path_qs}" if request is not None else ""
        record = Record(envelope, "send", CANCELLED, reason, origin=origin)
        self.store.add(record)
        if request is not None:
            request.environ.setdefault(REQUEST_KEY, []).append(record)

    def _committed(self, committed: bool, record: Record, queued: bool) -> None:
        if record.outcome != PENDING:
            # Direct delivery's own after-commit hook ran first and its
            # event already settled the record.
            return
        if not committed:
            record.settle(DISCARDED, "the commit failed")
        else:
            record.settle(QUEUED if queued else SENDING)

    def _aborted(self, record: Record, txn: Any) -> None:
        if record.outcome == PENDING:
            doomed = txn.isDoomed()
            record.settle(DISCARDED, "transaction doomed" if doomed else "transaction aborted")

    def on_event(self, event: Any) -> None:
        """Settle the record of the message *event* is about (a subscriber)."""
        record = self.store.by_message_id(event.message_id)
        if record is None:
            return
        if isinstance(event, MailSent):
            count = len(event.recipients)
            record.settle(SENT, f"accepted for {counted(count, 'recipient')}")
        elif isinstance(event, MailDeferred):
            when = time.strftime("%H:%M:%S", time.localtime(event.retry_at))
            record.settle(DEFERRED, f"{event.error}; next attempt at {when}")
        elif isinstance(event, MailFailed):
            refused = ", ".join(event.recipients)
            if record.outcome == SENT:
                # Accepted for some recipients, refused for these.
                record.settle(SENT, f"{record.detail}; refused for {refused}: {event.error}")
            else:
                record.settle(FAILED, str(event.error))
