"""Testing support: keep the real deliveries, swap in an in-memory mailer.

``config.include('pyramid_sendmail.testing')`` (before or after
``pyramid_sendmail``) has the include build its parts around an
:class:`InMemoryMailer`: ``send()`` and ``send_to_queue()`` deliver directly
to it when the transaction commits, and no queue is opened. Its
:attr:`~InMemoryMailer.outbox` records every message when ``send()`` is
called, as pyramid_mailer's testing mailer did; its
:attr:`~InMemoryMailer.delivered` list holds only what committed
transactions handed over. The queue processor thread is not started.
``request.mailer`` and ``get_mailer()`` have the same three lists. A message
without a sender is sent from :data:`TESTING_SENDER` when
``mail.default_sender`` is not set.

:class:`DummyMailer` is a message-level double with the shape of
pyramid_mailer's, for tests that build a mailer themselves.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import replace
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any, NamedTuple

from pyramid.config import Configurator
from zope.interface import implementer

from .components import (
    IMailComponents,
    IMailComponentsFactory,
    MailComponents,
    build_components,
)
from .config import build_and_register
from .delivery import DirectMailDelivery, send_now
from .exceptions import MailDeliveryError
from .interfaces import IMailer, IMessageMailer, IQueuedMailDelivery
from .mailers import OneShotSession
from .message import Envelope
from .results import SendResult
from .settings import MailSettings

__all__ = [
    "TESTING_SENDER",
    "CancelledMail",
    "DeliveredMail",
    "DummyMailer",
    "InMemoryMailer",
    "InMemoryQueueDelivery",
    "activate",
    "get_testing_mailer",
    "includeme",
    "mailers_in_use",
]

#: The sender of a message without one, under the testing include, when
#: ``mail.default_sender`` is not set (pyramid_mailer's testing mailer never
#: needed one). The ``.invalid`` domain can never be delivered to.
TESTING_SENDER = "no-default-sender@example.invalid"

_active: InMemoryMailer | None = None
# Every mailer the testing include has used, so that the pytest fixture can
# tell when an application it does not see received mail.
_in_use: weakref.WeakSet[InMemoryMailer] = weakref.WeakSet()


class DeliveredMail:
    """A message handed to the :class:`InMemoryMailer` by a committed transaction."""

    def __init__(self, sender: str, recipients: Sequence[str], data: bytes) -> None:
        self.sender = sender
        self.recipients = list(recipients)
        self.data = data
        self.message: EmailMessage = BytesParser(policy=default_policy).parsebytes(data)

    @property
    def subject(self) -> str:
        """The decoded Subject header."""
        return str(self.message.get("Subject", ""))

    @property
    def body(self) -> str | None:
        """The text/plain body, decoded, or None."""
        part = self.message.get_body(("plain",))
        return part.get_content() if part is not None else None

    @property
    def html(self) -> str | None:
        """The text/html body, decoded, or None."""
        part = self.message.get_body(("html",))
        return part.get_content() if part is not None else None

    def __repr__(self) -> str:
        return f"<DeliveredMail {self.subject!r} to {self.recipients}>"


class CancelledMail(NamedTuple):
    """A message a :class:`~pyramid_sendmail.policies.MailSending` subscriber
    cancelled: what ``send()`` was given, its id and the reason."""

    message: Any
    message_id: str
    reason: str


@implementer(IMailer)
class InMemoryMailer:
    """A mailer that keeps messages in lists instead of sending them.

    Set :attr:`fail_with` to a :class:`~pyramid_sendmail.MailDeliveryError`
    to make every send fail with it.
    """

    def __init__(self) -> None:
        self.outbox: list[Any] = []
        self.queue: list[Any] = []
        self.delivered: list[DeliveredMail] = []
        #: Messages cancelled at ``send()``; they are in ``outbox`` too.
        self.cancelled: list[CancelledMail] = []
        self.fail_with: MailDeliveryError | None = None
        #: How many messages it ever took (``clear()`` keeps it).
        self.taken = 0
        self._lock = threading.Lock()

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> SendResult:
        """Record the message as delivered (or raise :attr:`fail_with`)."""
        if self.fail_with is not None:
            raise self.fail_with
        with self._lock:
            self.delivered.append(DeliveredMail(sender, recipients, message))
            self.taken += 1
        return SendResult(accepted=tuple(recipients))

    def session(self) -> OneShotSession:
        """A session over this mailer."""
        return OneShotSession(self)

    def record(self, message: Any, queued: bool = False) -> None:
        """Keep *message* in ``outbox``, or in ``queue`` when it was
        given to ``send_to_queue()`` (as pyramid_mailer's DummyMailer did)."""
        with self._lock:
            (self.queue if queued else self.outbox).append(message)
            self.taken += 1

    def record_cancelled(self, message: Any, envelope: Envelope, reason: str) -> None:
        """Keep a cancelled *message* in ``outbox`` and in ``cancelled``."""
        with self._lock:
            self.outbox.append(message)
            self.cancelled.append(CancelledMail(message, envelope.message_id, reason))

    def clear(self) -> None:
        """Forget everything recorded so far."""
        with self._lock:
            self.cancelled.clear()
            self.outbox.clear()
            self.queue.clear()
            self.delivered.clear()
            self.fail_with = None


@implementer(IQueuedMailDelivery)
class InMemoryQueueDelivery(DirectMailDelivery):
    """``send_to_queue()`` under testing: no queue on disk; committed
    messages go to the in-memory mailer, as with ``send()``."""

    queue = None

    def enqueue_now(self, envelope: Envelope) -> str:
        """Hand *envelope* to the in-memory mailer now."""
        return send_now(self.mailer, envelope, lambda event: None)


class _InMemoryComponents:
    """The testing include's replacement for :func:`build_components`: the
    same parts, built around the in-memory mailer, with no queue."""

    def __init__(self, mailer: InMemoryMailer) -> None:
        self.mailer = mailer

    def __call__(
        self,
        settings: MailSettings,
        *,
        mailer: IMailer | None = None,
        registry: Any = None,
        app_settings: Mapping[str, Any] | None = None,
    ) -> MailComponents:
        if settings.default_sender is None:
            settings = replace(settings, default_sender=TESTING_SENDER)
        return build_components(
            settings,
            mailer=self.mailer,
            queued_delivery=InMemoryQueueDelivery(self.mailer),
            observers=(self.mailer.record,),
            on_cancel=(self.mailer.record_cancelled,),
            registry=registry,
            app_settings=app_settings,
        )


def includeme(config: Configurator) -> None:
    """Configure pyramid_sendmail with an in-memory mailer.

    It registers the mailer and a builder around it, then the include builds
    with that builder; when ``config.include('pyramid_sendmail')`` came
    first, its parts are built again and replace the registered ones
    (nothing built is changed in place).
    """
    registry = config.registry
    mailer = registry.queryUtility(IMailer)
    if not isinstance(mailer, InMemoryMailer):
        mailer = _active if _active is not None else InMemoryMailer()
        registry.registerUtility(mailer, IMailer)
    _in_use.add(mailer)
    registry.registerUtility(_InMemoryComponents(mailer), IMailComponentsFactory)
    built: MailComponents | None = registry.queryUtility(IMailComponents)
    if built is None:
        config.include("pyramid_sendmail")
    else:
        build_and_register(registry, built.settings)


def get_testing_mailer(request_or_registry: Any) -> InMemoryMailer:
    """Return the in-memory mailer of an application set up for testing."""
    registry = getattr(request_or_registry, "registry", request_or_registry)
    mailer = registry.queryUtility(IMailer)
    if not isinstance(mailer, InMemoryMailer):
        raise LookupError("config.include('pyramid_sendmail.testing') was not called")
    return mailer


def activate(mailer: InMemoryMailer | None) -> None:
    """Make the testing include use *mailer* (the pytest fixture does this)."""
    global _active
    _active = mailer


def mailers_in_use() -> list[InMemoryMailer]:
    """The in-memory mailers of the applications the testing include set up
    (that are still alive)."""
    return list(_in_use)


@implementer(IMessageMailer)
class DummyMailer:
    """A message-level double with the shape of pyramid_mailer's ``DummyMailer``.

    Its send methods take a message and append it, as given, to
    :attr:`outbox` (``send``, ``send_immediately``, ``send_sendmail``,
    ``send_immediately_sendmail``) or :attr:`queue` (``send_to_queue``,
    ``send_to_queue_immediately``); nothing is checked or delivered, and no
    transaction is joined. Registered as
    :class:`~pyramid_sendmail.interfaces.IMailer` or
    :class:`~pyramid_sendmail.interfaces.IMessageMailer`
    (``registry.registerUtility(DummyMailer(), IMailer)``), it is what
    :func:`~pyramid_sendmail.get_mailer` and ``request.mailer`` return.
    To test through the real deliveries, use the testing include instead.
    """

    def __init__(self) -> None:
        self.outbox: list[Any] = []
        self.queue: list[Any] = []

    def bind(self, **options: Any) -> DummyMailer:
        """Return itself (pyramid_mailer's ``bind(transaction_manager=...,
        default_sender=...)``)."""
        unknown = set(options) - {"transaction_manager", "default_sender"}
        if unknown:
            raise TypeError(f"bind() got unexpected options: {', '.join(sorted(unknown))}")
        return self

    def send(
        self,
        message: Any,
        *,
        send_at: Any = None,
        expires_at: Any = None,
        priority: str | None = None,
    ) -> None:
        """Append *message* to :attr:`outbox`; the scheduling keywords of
        :meth:`RequestMailer.send <pyramid_sendmail.RequestMailer.send>` are
        accepted and change nothing."""
        self.outbox.append(message)

    def send_immediately(self, message: Any, fail_silently: bool = False) -> None:
        """Append *message* to :attr:`outbox`."""
        self.outbox.append(message)

    def send_to_queue(
        self,
        message: Any,
        *,
        send_at: Any = None,
        expires_at: Any = None,
        priority: str | None = None,
    ) -> None:
        """Append *message* to :attr:`queue` (scheduling keywords as for :meth:`send`)."""
        self.queue.append(message)

    def send_to_queue_immediately(
        self,
        message: Any,
        *,
        send_at: Any = None,
        expires_at: Any = None,
        priority: str | None = None,
    ) -> None:
        """Append *message* to :attr:`queue` (scheduling keywords as for :meth:`send`)."""
        self.queue.append(message)

    send_sendmail = send
    send_immediately_sendmail = send_immediately
