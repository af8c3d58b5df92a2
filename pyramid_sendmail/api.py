"""``request.mailer``: the object an application sends mail through."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import transaction
from zope.interface import Interface

from .delivery import send_now
from .events import EventSink, request_event_sink, thread_event_sink
from .exceptions import SendmailError
from .interfaces import IDirectMailDelivery, IMailer, IQueuedMailDelivery, ISQLMailDelivery
from .message import Envelope, Message, prepare

__all__ = [
    "IMailSetup",
    "MailSetup",
    "MessageLike",
    "RequestMailer",
    "get_mailer",
    "request_mailer",
]

log = logging.getLogger(__name__)

MessageLike = Message | EmailMessage


class IMailSetup(Interface):
    """Marker for the :class:`MailSetup` utility (private)."""


@dataclass
class MailSetup:
    """What the include configured, kept on the registry."""

    mailer: IMailer
    delivery: IDirectMailDelivery | IQueuedMailDelivery
    queued_delivery: IQueuedMailDelivery | None = None
    default_sender: str | None = None
    redirect_to: str | None = None
    #: Called as ``observer(message, queued)`` for each message a send method
    #: takes (the testing outbox).
    observers: list[Callable[[Any, bool], None]] = field(default_factory=list)
    #: Called as ``recorder(envelope, method, transaction_manager)`` for each
    #: message a send method takes, when ``mail.devtools`` is on; None when off,
    #: so sending pays for one attribute test.
    recorder: Callable[[Envelope, str, Any], None] | None = None
    #: False when the testing include has swapped the mailer.
    start_processor: bool = True
    #: The SQL queue's ``request -> Session`` (``mail.queue_sql_session``).
    session_of: Callable[[Any], Any] | None = None


class RequestMailer:
    """Sends mail within a transaction; ``request.mailer`` is one of these.

    :meth:`send` delivers when the transaction commits, directly or through
    the queue as configured; :meth:`send_to_queue` always queues;
    :meth:`send_immediately` and :meth:`send_to_queue_immediately` act now,
    outside any transaction. Each returns the message id (the Message-ID
    without angle brackets).
    """

    def __init__(
        self,
        registry: Any,
        transaction_manager: transaction.TransactionManager | None = None,
        events: EventSink | None = None,
        session: Any = None,
        request: Any = None,
    ) -> None:
        self.registry = registry
        self.transaction_manager = transaction_manager or transaction.manager
        self._events = events or thread_event_sink(registry)
        self._session = session
        self._request = request

    def _session_for(self, setup: MailSetup) -> Any:
        """The SQLAlchemy session the SQL queue writes through: the one given,
        else the request's (``mail.queue_sql_session``, ``request.dbsession``)."""
        if self._session is None and self._request is not None and setup.session_of:
            self._session = setup.session_of(self._request)
        return self._session

    @property
    def setup(self) -> MailSetup:
        setup = self.registry.queryUtility(IMailSetup)
        if setup is None:
            raise SendmailError(
                "pyramid_sendmail is not configured: call config.include('pyramid_sendmail')"
            )
        return setup

    @property
    def mailer(self) -> IMailer:
        """The configured :class:`~pyramid_sendmail.interfaces.IMailer`."""
        return self.setup.mailer

    def send(self, message: MessageLike) -> str:
        """Send *message* if and when the current transaction commits."""
        setup = self.setup
        envelope = self._prepare(setup, message)
        message_id = self._deliver(setup, setup.delivery, envelope)
        self._record(setup, message, envelope, "send")
        return message_id

    def send_to_queue(self, message: MessageLike) -> str:
        """Queue *message* if and when the current transaction commits."""
        setup = self.setup
        envelope = self._prepare(setup, message)
        message_id = self._deliver(setup, self._queue(setup), envelope)
        self._record(setup, message, envelope, "send_to_queue", queued=True)
        return message_id

    def _deliver(self, setup: MailSetup, delivery: Any, envelope: Envelope) -> str:
        if ISQLMailDelivery.providedBy(delivery):
            session = self._session_for(setup)
            return str(delivery.send(envelope, self.transaction_manager, self._events, session))
        return str(delivery.send(envelope, self.transaction_manager, self._events))

    def send_immediately(self, message: MessageLike) -> str:
        """Send *message* now, whatever becomes of the transaction.

        Raises :class:`~pyramid_sendmail.MailDeliveryError` when no recipient
        accepted it.
        """
        setup = self.setup
        envelope = self._prepare(setup, message)
        self._record(setup, message, envelope, "send_immediately")
        return send_now(setup.mailer, envelope, self._events)

    def send_to_queue_immediately(self, message: MessageLike) -> str:
        """Write *message* into the queue now, outside any transaction.

        For code that runs where no transaction will commit (a script, an
        after-commit hook). It is as durable as :meth:`send_to_queue`.
        """
        setup = self.setup
        envelope = self._prepare(setup, message)
        message_id = self._queue(setup).enqueue_now(envelope)
        self._record(setup, message, envelope, "send_to_queue_immediately", queued=True)
        return message_id

    def _prepare(self, setup: MailSetup, message: MessageLike) -> Envelope:
        return prepare(message, setup.default_sender, setup.redirect_to)

    def _record(
        self,
        setup: MailSetup,
        message: MessageLike,
        envelope: Envelope,
        method: str,
        queued: bool = False,
    ) -> None:
        # Only once the message was taken: a send() that raised (no
        # transaction to join, no queue) must not show up in the outbox.
        for observer in setup.observers:
            observer(message, queued)
        if setup.recorder is not None:
            setup.recorder(envelope, method, self.transaction_manager)

    def _queue(self, setup: MailSetup) -> IQueuedMailDelivery:
        if setup.queued_delivery is None:
            raise SendmailError("queuing mail needs mail.queue_path or mail.queue = sql")
        return setup.queued_delivery


def request_mailer(request: Any) -> RequestMailer:
    """The ``request.mailer`` property: bound to ``request.tm``."""
    manager = getattr(request, "tm", None)
    return RequestMailer(request.registry, manager, request_event_sink(request), request=request)


def get_mailer(
    request_or_registry: Any,
    session: Any = None,
    transaction_manager: transaction.TransactionManager | None = None,
) -> RequestMailer:
    """Return the mailer of a request, or of a registry outside requests.

    With a request that has ``request.mailer`` this is that object. A
    :class:`pyramid.testing.DummyRequest` or a bare registry gets a mailer
    bound to the request's ``tm`` or to the thread's transaction manager
    (or *transaction_manager*). With the SQL queue, *session* is the
    SQLAlchemy session that queued mail is written through (a script's
    own; a request's is found by itself).
    """
    if hasattr(request_or_registry, "registry"):
        request = request_or_registry
        mailer = getattr(request, "mailer", None)
        if isinstance(mailer, RequestMailer) and session is None and transaction_manager is None:
            return mailer
        return RequestMailer(
            request.registry,
            transaction_manager or getattr(request, "tm", None),
            session=session,
            request=request,
        )
    return RequestMailer(request_or_registry, transaction_manager, session=session)
