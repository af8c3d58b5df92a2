"""``request.mailer``: the object an application sends mail through."""

from __future__ import annotations

import logging
import time
from email.message import EmailMessage
from typing import Any, cast

import transaction
from zope.interface import implementer

from .components import IMailComponents, MailComponents
from .delivery import send_now
from .events import EventSink, request_event_sink, thread_event_sink
from .exceptions import MailDeliveryError, SendmailError, TransactionStateError
from .interfaces import IMailer, IMessageMailer, IQueuedMailDelivery, ISQLMailDelivery
from .message import Envelope, Message, prepare
from .policies import MailSending, When, has_sending_subscribers, rebuild, schedule_of
from .queue.entry import NORMAL, Schedule, ScheduledEnvelope

__all__ = ["MessageLike", "RequestMailer", "get_mailer", "registered_double", "request_mailer"]

log = logging.getLogger(__name__)

MessageLike = Message | EmailMessage


@implementer(IMessageMailer)
class RequestMailer:
    """Sends mail within a transaction; ``request.mailer`` is one of these.

    :meth:`send` delivers when the transaction commits, directly or through
    the queue as configured; :meth:`send_to_queue` always queues;
    :meth:`send_immediately` and :meth:`send_to_queue_immediately` act now,
    outside any transaction. Each returns the message id (the Message-ID
    without angle brackets).

    Under ``config.include('pyramid_sendmail.testing')`` it also has
    :attr:`outbox`, :attr:`queue` and :attr:`delivered`, the in-memory
    mailer's lists (``get_mailer(request).outbox``, as with pyramid_mailer).
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

    def _session_for(self, parts: MailComponents) -> Any:
        """The SQLAlchemy session the SQL queue writes through: the one given,
        else the request's (``mail.queue_sql_session``, ``request.dbsession``)."""
        if self._session is None and self._request is not None and parts.session_of:
            self._session = parts.session_of(self._request)
        return self._session

    @property
    def components(self) -> MailComponents:
        """What the include built (:class:`~pyramid_sendmail.components.MailComponents`)."""
        components: MailComponents | None = self.registry.queryUtility(IMailComponents)
        if components is None:
            raise SendmailError(
                "pyramid_sendmail is not configured: call config.include('pyramid_sendmail')"
            )
        return components

    @property
    def mailer(self) -> IMailer:
        """The configured :class:`~pyramid_sendmail.interfaces.IMailer`."""
        return self.components.mailer

    @property
    def outbox(self) -> list[Any]:
        """Under the testing include: what ``send()`` and ``send_immediately()``
        were given (:attr:`InMemoryMailer.outbox
        <pyramid_sendmail.testing.InMemoryMailer.outbox>`)."""
        return self._testing_list("outbox")

    @property
    def queue(self) -> list[Any]:
        """Under the testing include: what the ``send_to_queue`` methods were given."""
        return self._testing_list("queue")

    @property
    def delivered(self) -> list[Any]:
        """Under the testing include: what committed transactions delivered."""
        return self._testing_list("delivered")

    def _testing_list(self, name: str) -> list[Any]:
        found = getattr(self.mailer, name, None)
        if not isinstance(found, list):
            # An AttributeError, so that hasattr() and getattr() defaults work.
            raise AttributeError(
                f"request.mailer.{name} exists only under "
                "config.include('pyramid_sendmail.testing')"
            )
        return found

    def send(
        self,
        message: MessageLike,
        *,
        send_at: When | None = None,
        expires_at: When | None = None,
        priority: str | None = None,
    ) -> str:
        """Send *message* if and when the current transaction commits.

        With queued delivery, *send_at* (a datetime, a timedelta from now or
        a POSIX timestamp) holds it in the queue until then, *expires_at*
        fails it rather than send it later than that, and *priority*
        (``high``, ``normal`` or ``low``) orders it among due mail. Direct
        delivery sends at the commit: *send_at* is then an error (use
        :meth:`send_to_queue`), and the other two change nothing.
        """
        parts = self.components
        mode = "queued" if IQueuedMailDelivery.providedBy(parts.delivery) else "direct"
        when = (send_at, expires_at, priority)
        envelope, scheduled = self._accept_scheduled(parts, parts.delivery, message, mode, when)
        if scheduled is None:
            return envelope.message_id
        message_id = self._deliver(parts, parts.delivery, scheduled)
        self._record(parts, message, envelope, "send")
        return message_id

    def send_to_queue(
        self,
        message: MessageLike,
        *,
        send_at: When | None = None,
        expires_at: When | None = None,
        priority: str | None = None,
    ) -> str:
        """Queue *message* if and when the current transaction commits
        (*send_at*, *expires_at* and *priority* as for :meth:`send`)."""
        parts = self.components
        delivery = self._queue(parts)
        when = (send_at, expires_at, priority)
        envelope, scheduled = self._accept_scheduled(parts, delivery, message, "queued", when)
        if scheduled is None:
            return envelope.message_id
        try:
            message_id = self._deliver(parts, delivery, scheduled)
        except TransactionStateError as exc:
            raise TransactionStateError(exc.status, "send_to_queue") from None
        self._record(parts, message, envelope, "send_to_queue", queued=True)
        return message_id

    def _deliver(self, parts: MailComponents, delivery: Any, envelope: Envelope) -> str:
        if ISQLMailDelivery.providedBy(delivery):
            session = self._session_for(parts)
            return str(delivery.send(envelope, self.transaction_manager, self._events, session))
        return str(delivery.send(envelope, self.transaction_manager, self._events))

    def send_immediately(self, message: MessageLike, fail_silently: bool = False) -> str | None:
        """Send *message* now, whatever becomes of the transaction.

        Raises :class:`~pyramid_sendmail.MailDeliveryError` when no recipient
        accepted it; with *fail_silently* (pyramid_mailer's argument) the
        error is logged instead and None returned. A message that cannot be
        sent as it stands raises :class:`~pyramid_sendmail.InvalidMessageError`
        either way.
        """
        parts = self.components
        envelope, event = self._accept(parts, message, "immediate", NORMAL)
        if event is not None and event.cancelled:
            return envelope.message_id
        self._record(parts, message, envelope, "send_immediately")
        try:
            return send_now(parts.mailer, envelope, self._events)
        except MailDeliveryError as exc:
            if not fail_silently:
                raise
            # The delivery attempt was logged already; say that it was dropped.
            log.warning("mail %s not sent (fail_silently=True): %s", envelope.message_id, exc)
            return None

    def send_to_queue_immediately(
        self,
        message: MessageLike,
        *,
        send_at: When | None = None,
        expires_at: When | None = None,
        priority: str | None = None,
    ) -> str:
        """Write *message* into the queue now, outside any transaction.

        For code that runs where no transaction will commit (a script, an
        after-commit hook). It is as durable as :meth:`send_to_queue`;
        *send_at*, *expires_at* and *priority* are as for :meth:`send`.
        """
        parts = self.components
        delivery = self._queue(parts)
        when = (send_at, expires_at, priority)
        envelope, scheduled = self._accept_scheduled(parts, delivery, message, "queued", when)
        if scheduled is None:
            return envelope.message_id
        message_id = delivery.enqueue_now(scheduled)
        self._record(parts, message, envelope, "send_to_queue_immediately", queued=True)
        return message_id

    def _accept_scheduled(
        self,
        parts: MailComponents,
        delivery: Any,
        message: MessageLike,
        mode: str,
        when: tuple[When | None, When | None, str | None],
    ) -> tuple[Envelope, Envelope | None]:
        """The three queued sends' common start: check the schedule *when*
        (send_at, expires_at, priority) against *delivery*, then
        :meth:`_accept` the message. Returns the envelope and the one to
        deliver, carrying its schedule, or None when a subscriber cancelled it."""
        schedule = self._schedule(delivery, *when)
        envelope, event = self._accept(parts, message, mode, schedule)
        if event is not None and event.cancelled:
            return envelope, None
        return envelope, _scheduled(envelope, schedule)

    def _accept(
        self, parts: MailComponents, message: MessageLike, mode: str, schedule: Schedule
    ) -> tuple[Envelope, MailSending | None]:
        """Validate *message*, let MailSending subscribers edit or cancel it,
        then apply the redirect. A subscriber's exception propagates."""
        envelope = prepare(message, parts.settings.default_sender)
        event = None
        if has_sending_subscribers(self.registry):
            event = MailSending(
                envelope.message,
                envelope.recipients,
                envelope.message_id,
                request=self._request,
                mode=mode,
                send_at=schedule.send_at,
                priority=schedule.priority,
            )
            self.registry.notify(event)
            if event.cancelled:
                reason = event.reason or ""
                log.info("mail %s cancelled before sending: %s", envelope.message_id, reason)
                for observer in parts.on_cancel:
                    observer(message, envelope, reason)
                return envelope, event
            envelope = rebuild(envelope, event, parts.settings.default_sender)
        return parts.redirect(envelope), event

    def _prepare(self, parts: MailComponents, message: MessageLike) -> Envelope:
        """*message* validated and redirected, without the MailSending event."""
        return parts.redirect(prepare(message, parts.settings.default_sender))

    def _schedule(
        self,
        delivery: Any,
        send_at: When | None,
        expires_at: When | None,
        priority: str | None,
    ) -> Schedule:
        schedule = schedule_of(send_at, expires_at, priority, time.time())
        if schedule is NORMAL:
            return schedule
        if schedule.send_at is not None and not IQueuedMailDelivery.providedBy(delivery):
            raise SendmailError(
                "send_at needs queued delivery: direct delivery sends when the "
                "transaction commits; use send_to_queue() (with mail.queue_path "
                "or mail.queue = sql)"
            )
        return schedule

    def _record(
        self,
        parts: MailComponents,
        message: MessageLike,
        envelope: Envelope,
        method: str,
        queued: bool = False,
    ) -> None:
        # Only once the message was taken: a send() that raised (no
        # transaction to join, no queue) must not show up in the outbox.
        for observer in parts.observers:
            observer(message, queued)
        if parts.recorder is not None:
            parts.recorder(envelope, method, self.transaction_manager)

    def _queue(self, parts: MailComponents) -> IQueuedMailDelivery:
        if parts.queued_delivery is None:
            raise SendmailError("queuing mail needs mail.queue_path or mail.queue = sql")
        return parts.queued_delivery


def _scheduled(envelope: Envelope, schedule: Schedule) -> Envelope:
    """*envelope* carrying *schedule* to the queue (itself without one)."""
    return envelope if schedule is NORMAL else ScheduledEnvelope(envelope, schedule)


def registered_double(registry: Any) -> Any:
    """The message-level test double the application registered, or None.

    One registered as :class:`~pyramid_sendmail.interfaces.IMessageMailer`,
    or as :class:`~pyramid_sendmail.interfaces.IMailer` by an application
    that did so with pyramid_mailer's ``DummyMailer``
    (:class:`pyramid_sendmail.testing.DummyMailer` provides IMessageMailer).
    """
    query = getattr(registry, "queryUtility", None)
    if query is None:
        return None
    double = query(IMessageMailer)
    if double is None:
        mailer = query(IMailer)
        if IMessageMailer.providedBy(mailer):
            double = mailer
    return double


def request_mailer(request: Any) -> RequestMailer:
    """The ``request.mailer`` property: bound to ``request.tm``."""
    double = registered_double(request.registry)
    if double is not None:
        return cast(RequestMailer, double)
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

    When the application registered a message-level test double
    (:class:`pyramid_sendmail.testing.DummyMailer`, see
    ``registered_double()``), that double is returned, as pyramid_mailer
    returned whatever was registered.
    """
    registry = getattr(request_or_registry, "registry", request_or_registry)
    double = registered_double(registry)
    if double is not None:
        # It has the send methods of a RequestMailer, which is what callers use.
        return cast(RequestMailer, double)
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
