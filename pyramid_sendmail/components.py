"""The composition root: what the ``mail.*`` settings build.

:func:`build_components` turns a :class:`~pyramid_sendmail.settings.MailSettings`
into the mailer, the queue, the deliveries and the queue processor, as one
frozen :class:`MailComponents`. The include, the testing include and
``psendmail`` all build through it; a part given to it (the application's own
mailer, the testing include's in-memory one) is used instead of building one.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol

from pyramid.exceptions import ConfigurationError
from pyramid.path import DottedNameResolver
from zope.interface import Interface

from .delivery import DirectMailDelivery, QueuedMailDelivery
from .exceptions import QueueUnavailable, SendmailError
from .interfaces import IMailDelivery, IMailer, IMailQueue, IQueuedMailDelivery
from .mailers import ConsoleMailer, FileMailer, SendmailMailer, SMTPMailer
from .message import Envelope
from .policies import Redirect
from .processor import QueueProcessor
from .settings import MailSettings

__all__ = [
    "BUILT_IN_MAILERS",
    "SMTP_ONLY",
    "ComponentsFactory",
    "IMailComponents",
    "IMailComponentsFactory",
    "MailComponents",
    "Observer",
    "build_components",
    "build_mailer",
    "build_sql_queue",
    "describe_components",
    "mailer_factory",
    "open_configured_queue",
    "register_components",
]

log = logging.getLogger(__name__)

#: The settings only the SMTP mailer reads (warned about with another mailer).
SMTP_ONLY = (
    "host", "port", "username", "password", "tls", "ssl", "keyfile", "certfile", "cafile",
    "verify", "allow_insecure_auth", "local_hostname", "pipelining", "pool_size",
    "pool_idle_timeout",
)  # fmt: skip

#: The ``mail.mailer`` kinds that are not dotted names.
BUILT_IN_MAILERS = ("smtp", "sendmail", "file", "console")
#: Called as ``observer(message, queued)`` for each message a send method
#: takes (the testing outbox).
Observer = Callable[[Any, bool], None]


class IMailComponents(Interface):
    """Marker for the registered :class:`MailComponents` utility."""


class IMailComponentsFactory(Interface):
    """Marker for a utility that replaces :func:`build_components` in the
    include (the testing include registers one)."""


@dataclass(frozen=True)
class MailComponents:
    """Everything the settings built, as the include registers it."""

    settings: MailSettings
    mailer: IMailer
    #: What ``send()`` uses: direct, or the queued delivery.
    delivery: IMailDelivery
    #: What ``send_to_queue()`` uses; None without ``mail.queue_path``.
    queued_delivery: IQueuedMailDelivery | None = None
    #: What drains the queue; None without a queue.
    processor: QueueProcessor | None = None
    observers: tuple[Observer, ...] = ()
    #: The SQL queue's ``request -> Session`` (``mail.queue_sql_session``).
    session_of: Callable[[Any], Any] | None = None
    #: Called as ``recorder(envelope, method, transaction_manager)`` for each
    #: message a send method takes, when ``mail.devtools`` is on; None when off,
    #: so sending pays for one attribute test.
    recorder: Callable[[Envelope, str, Any], None] | None = None
    #: Called as ``on_cancel(message, envelope, reason)`` for each message a
    #: :class:`~pyramid_sendmail.policies.MailSending` subscriber cancelled.
    on_cancel: tuple[Callable[[Any, Envelope, str], None], ...] = ()

    @property
    def default_sender(self) -> str | None:
        """``mail.default_sender``."""
        return self.settings.default_sender

    @property
    def redirect_to(self) -> tuple[str, ...]:
        """``mail.redirect_to``: the addresses mail is redirected to."""
        return self.settings.redirect_to or ()

    @functools.cached_property
    def redirect(self) -> Redirect:
        """``mail.redirect_to`` with its exceptions and subject prefix."""
        return Redirect.from_settings(self.settings)


class ComponentsFactory(Protocol):
    """The signature of :func:`build_components`, for a replacement."""

    def __call__(
        self,
        settings: MailSettings,
        *,
        mailer: IMailer | None = None,
        registry: Any = None,
        app_settings: Mapping[str, Any] | None = None,
    ) -> MailComponents: ...


def build_components(
    settings: MailSettings,
    *,
    mailer: IMailer | None = None,
    queued_delivery: IQueuedMailDelivery | None = None,
    observers: tuple[Observer, ...] = (),
    registry: Any = None,
    app_settings: Mapping[str, Any] | None = None,
    on_cancel: tuple[Callable[[Any, Envelope, str], None], ...] = (),
) -> MailComponents:
    """Build the mailer, queue, deliveries and processor that *settings* describe.

    A *mailer* or *queued_delivery* given is used instead of the one the
    settings would build. *registry* receives the processor's events;
    *app_settings* (all the application's settings) is what a dotted-name
    ``mail.mailer`` factory is called with.
    """
    if settings.redirect_to:
        # Staging's safety net: say so where the operator looks first.
        log.warning(Redirect.from_settings(settings).describe())
    if mailer is None:
        mailer = build_mailer(settings, app_settings)
    processor = None
    session_of = None
    if queued_delivery is None and settings.queue == "sql":
        from .queue.sql_delivery import SQLMailDelivery

        sql_queue = build_sql_queue(settings)
        processor = QueueProcessor.from_settings(sql_queue, mailer, settings, registry)
        # With mail.queue_notify, a NOTIFY from any machine wakes it too.
        sql_queue.on_notify = processor.wake
        queued_delivery = SQLMailDelivery(sql_queue, on_publish=processor.wake)
        session_of = _resolve_session_of(settings.queue_sql_session) or _dbsession
    elif queued_delivery is None and settings.queue_path:
        queue = open_configured_queue(settings.queue_path, settings.claim_timeout)
        processor = QueueProcessor.from_settings(queue, mailer, settings, registry)
        # Mail committed in this process wakes the processor at once.
        queued_delivery = QueuedMailDelivery(queue, on_publish=processor.wake)
    delivery: IMailDelivery
    if settings.delivery == "queued" and queued_delivery is not None:
        delivery = queued_delivery
    else:
        delivery = DirectMailDelivery(mailer)
    return MailComponents(
        settings,
        mailer,
        delivery,
        queued_delivery,
        processor,
        observers,
        session_of,
        on_cancel=on_cancel,
    )


def build_mailer(settings: MailSettings, app_settings: Mapping[str, Any] | None = None) -> IMailer:
    """Build the mailer that ``mail.mailer`` names.

    A dotted name is resolved and called with a copy of *app_settings*.
    Files the settings name (``mail.cafile``, ``mail.keyfile``,
    ``mail.certfile``, ``mail.sendmail_app``) must exist: a
    :class:`~pyramid.exceptions.ConfigurationError` names the key and path,
    rather than every send failing later as if the relay were down.
    """
    kind = settings.mailer
    if kind not in BUILT_IN_MAILERS:
        return mailer_factory(settings)(dict(app_settings or {}))
    if kind != "smtp":
        _warn_ignored(settings)
    if kind == "smtp":
        for key in ("cafile", "keyfile", "certfile"):
            path = getattr(settings, key)
            if path and not os.path.isfile(path):
                raise ConfigurationError(f"mail.{key}: no such file {path!r}")
        return SMTPMailer(
            host=settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password,
            tls=settings.tls,
            ssl=settings.ssl,
            keyfile=settings.keyfile,
            certfile=settings.certfile,
            cafile=settings.cafile,
            verify=settings.verify,
            timeout=settings.timeout,
            debug=settings.debug,
            allow_insecure_auth=settings.allow_insecure_auth,
            local_hostname=settings.local_hostname,
            pipelining=settings.pipelining,
            pool_size=settings.pool_size,
            pool_idle_timeout=settings.pool_idle_timeout,
        )
    if kind == "sendmail":
        app = settings.sendmail_app
        found = shutil.which(app) if os.sep not in app else app
        if found is None or not (os.path.isfile(found) and os.access(found, os.X_OK)):
            raise ConfigurationError(f"mail.sendmail_app: no executable file {app!r}")
        return SendmailMailer(app)
    if kind == "file":
        return FileMailer(os.path.abspath(settings.file_path))
    return ConsoleMailer()


def mailer_factory(settings: MailSettings) -> Callable[[dict[str, Any]], IMailer]:
    """Import the factory a dotted-name ``mail.mailer`` names.

    Raises :class:`~pyramid.exceptions.ConfigurationError` naming the setting
    when it cannot be imported.
    """
    try:
        factory: Callable[[dict[str, Any]], IMailer] = DottedNameResolver().resolve(settings.mailer)
    except (ImportError, ValueError) as exc:
        raise ConfigurationError(
            f"mail.mailer {settings.mailer!r} cannot be imported: {exc}"
        ) from exc
    return factory


def open_configured_queue(path: str, claim_timeout: float) -> IMailQueue:
    """Open the queue of ``mail.queue_path``.

    Raises :class:`~pyramid.exceptions.ConfigurationError` naming the setting
    when the queue cannot be used (the queue itself knows no settings).
    """
    from .queue import open_queue

    try:
        return open_queue(path, claim_timeout)
    except QueueUnavailable as exc:
        raise ConfigurationError(f"mail.queue_path {path!r} {exc.reason}") from exc


def build_sql_queue(settings: MailSettings) -> Any:
    """The SQL queue the *settings* describe (``mail.queue = sql``)."""
    try:
        from .queue.sql import SQLQueue
    except ImportError as exc:
        raise ConfigurationError(
            f"mail.queue = sql needs SQLAlchemy: pip install 'pyramid-sendmail-tx[sql]' ({exc})"
        ) from exc
    # MailSettings makes sure an SQL queue has its URL.
    assert settings.queue_sql_url is not None
    try:
        return SQLQueue(
            settings.queue_sql_url,
            claim_timeout=settings.claim_timeout,
            # One claim feeds every worker of a pass a batch.
            claim_limit=settings.batch_size * settings.queue_workers,
            notify=settings.queue_notify,
        )
    except Exception as exc:  # a malformed URL, an unknown driver
        raise ConfigurationError(
            f"mail.queue_sql_url {settings.queue_sql_url!r} cannot be used: {exc}"
        ) from exc


def _dbsession(request: Any) -> Any:
    """The Pyramid cookiecutter's ``request.dbsession``."""
    session = getattr(request, "dbsession", None)
    if session is None:
        raise SendmailError(
            "the SQL mail queue writes through the request's SQLAlchemy session, and "
            "this request has no request.dbsession: name a callable returning it in "
            "mail.queue_sql_session"
        )
    return session


def _resolve_session_of(name: str | None) -> Callable[[Any], Any] | None:
    if name is None:
        return None
    try:
        resolved: Callable[[Any], Any] = DottedNameResolver().resolve(name)
    except (ImportError, ValueError) as exc:
        raise ConfigurationError(
            f"mail.queue_sql_session {name!r} cannot be imported: {exc}"
        ) from exc
    return resolved


def register_components(registry: Any, components: MailComponents) -> None:
    """Register *components* and its parts as utilities of *registry*."""
    registry.registerUtility(components, IMailComponents)
    registry.registerUtility(components.mailer, IMailer)
    registry.registerUtility(components.delivery, IMailDelivery)
    if components.queued_delivery is not None:
        registry.registerUtility(components.queued_delivery, IQueuedMailDelivery)
    else:
        registry.unregisterUtility(provided=IQueuedMailDelivery)


def _warn_ignored(settings: MailSettings) -> None:
    defaults = {f.name: f.default for f in fields(settings)}
    ignored = [f"mail.{k}" for k in SMTP_ONLY if getattr(settings, k) != defaults.get(k)]
    if ignored:
        log.warning(
            "mail.mailer = %s ignores the SMTP settings %s",
            settings.mailer,
            ", ".join(ignored),
        )


def describe_components(components: MailComponents) -> str:
    """One line saying which delivery, mailer and queue are in use (no password)."""
    settings = components.settings
    delivery = "queued" if components.delivery is components.queued_delivery else "direct"
    mailer = type(components.mailer).__name__
    if settings.mailer == "smtp":
        mailer += f" {settings.host}:{settings.port}"
        mailer += " (STARTTLS)" if settings.tls else " (TLS)" if settings.ssl else ""
        if settings.username:
            mailer += f" as {settings.username}"
    elif settings.mailer == "file":
        mailer += f" {os.path.abspath(settings.file_path)}"
    if settings.queue == "sql":
        queue = "SQL"
    elif settings.queue_path:
        queue = f"Maildir {settings.queue_path}"
    else:
        queue = "none"
    return f"mail: {delivery} delivery, mailer {mailer}, queue {queue}"
