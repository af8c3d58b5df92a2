"""Events announcing what became of each message, and their dispatch.

Events are never dispatched while a transaction commits. Inside a request,
the deliveries hand them to a buffer on the request and :func:`event_tween`
(placed over pyramid_tm's tween) notifies each one after the request's
transaction has ended, in a fresh transaction of ``request.tm``. The queue
processor does the same from its own thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from typing import Any

import transaction
from pyramid.threadlocal import manager as threadlocal_manager
from zope.interface import implementer

from .interfaces import IMailDeferredEvent, IMailErrorEvent, IMailEvent, IMailSentEvent
from .message import Envelope

__all__ = [
    "EventSink",
    "MailDeferred",
    "MailEvent",
    "MailFailed",
    "MailSent",
    "event_tween_factory",
    "notify_in_transaction",
    "notify_with_registry",
    "request_event_sink",
    "thread_event_sink",
]

log = logging.getLogger(__name__)

EventSink = Callable[[IMailEvent], None]
_BUFFER_KEY = "pyramid_sendmail.events"


@implementer(IMailEvent)
class MailEvent:
    """What every event carries: the message id, message and recipients."""

    def __init__(self, envelope: Envelope, recipients: Sequence[str] | None = None) -> None:
        self._envelope = envelope
        self.message_id = envelope.message_id
        self.recipients = tuple(envelope.recipients if recipients is None else recipients)

    @property
    def message(self) -> EmailMessage:
        """The message, as an :class:`~email.message.EmailMessage`."""
        return self._envelope.message

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.message_id} {list(self.recipients)}>"


@implementer(IMailSentEvent)
class MailSent(MailEvent):
    """The relay accepted the message for :attr:`recipients`."""


@implementer(IMailErrorEvent)
class MailFailed(MailEvent):
    """The message will not reach :attr:`recipients`; :attr:`error` says why."""

    def __init__(
        self, envelope: Envelope, error: BaseException, recipients: Sequence[str] | None = None
    ) -> None:
        super().__init__(envelope, recipients)
        self.error = error


@implementer(IMailDeferredEvent)
class MailDeferred(MailEvent):
    """Delivery failed for now; it is tried again at :attr:`retry_at`."""

    def __init__(
        self,
        envelope: Envelope,
        error: BaseException,
        retry_at: float,
        recipients: Sequence[str] | None = None,
    ) -> None:
        super().__init__(envelope, recipients)
        self.error = error
        self.retry_at = retry_at


def notify_in_transaction(
    registry: Any, event: IMailEvent, manager: transaction.TransactionManager
) -> None:
    """Notify subscribers of *event* inside a fresh transaction of *manager*.

    A subscriber that raises is logged and its transaction aborted; the error
    goes no further.
    """
    try:
        manager.begin()
    except Exception:
        # An explicit manager whose transaction is still open (the request
        # was not handled by pyramid_tm): never break the response for this.
        log.exception("could not begin a transaction to announce %r", event)
        return
    try:
        registry.notify(event)
        manager.commit()
    except Exception:
        log.exception("a subscriber to %r failed; its transaction was aborted", event)
        try:
            manager.abort()
        except Exception:
            log.exception("aborting after a failed subscriber failed too")


def request_event_sink(request: Any) -> EventSink:
    """Return a sink that keeps events on *request* for :func:`event_tween`."""
    buffer: list[IMailEvent] = request.environ.setdefault(_BUFFER_KEY, [])
    return buffer.append


def notify_with_registry(registry: Any, event: IMailEvent) -> None:
    """Notify *event* in a fresh transaction of this thread's manager, with
    *registry* current (what the queue processor's workers do)."""
    threadlocal_manager.push({"registry": registry, "request": None})
    try:
        notify_in_transaction(registry, event, transaction.manager)
    finally:
        threadlocal_manager.pop()


def thread_event_sink(registry: Any) -> EventSink:
    """Return the sink used outside requests (scripts, a manager of your own).

    It is called where the caller's transaction is still current: in an
    after-commit hook, or beside an active transaction for
    ``send_immediately()``. Each event is therefore notified from a
    short-lived thread of its own, in a fresh transaction of that thread's
    manager, and the call waits for it to finish.
    """

    def notify(event: IMailEvent) -> None:
        thread = threading.Thread(
            target=notify_with_registry, args=(registry, event), name="pyramid_sendmail-event"
        )
        thread.start()
        thread.join()

    return notify


def event_tween_factory(handler: Callable[[Any], Any], registry: Any) -> Callable[[Any], Any]:
    """Dispatch the request's mail events once its transaction has ended."""

    def event_tween(request: Any) -> Any:
        try:
            return handler(request)
        finally:
            events = request.environ.pop(_BUFFER_KEY, None)
            if events:
                manager = getattr(request, "tm", None) or transaction.manager
                for event in events:
                    notify_in_transaction(registry, event, manager)

    return event_tween
