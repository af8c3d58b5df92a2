"""``config.include('pyramid_sendmail')``: settings in, utilities out."""

from __future__ import annotations

import logging
import os
from typing import Any

from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.path import DottedNameResolver
from pyramid.tweens import MAIN

from .api import IMailSetup, MailSetup, request_mailer
from .delivery import DirectMailDelivery, QueuedMailDelivery
from .exceptions import QueueUnavailable, SendmailError
from .interfaces import IMailDelivery, IMailer, IMailQueue, IQueuedMailDelivery
from .mailers import ConsoleMailer, FileMailer, SendmailMailer, SMTPMailer
from .settings import parse_settings

__all__ = ["build_mailer", "build_setup", "includeme", "open_configured_queue", "register_setup"]

__all__ = ["build_mailer", "build_setup", "includeme", "register_setup"]

log = logging.getLogger(__name__)

_INCLUDED = "pyramid_sendmail.included"


def includeme(config: Configurator) -> None:
    """Configure mail from the ``mail.*`` settings.

    Registers the mailer (:class:`~pyramid_sendmail.interfaces.IMailer`) and
    the delivery as utilities, adds ``request.mailer`` and the tween that
    dispatches mail events after the request's transaction, and, with
    ``mail.queue_processor = thread``, starts the queue processor once the
    application is created. Including it again does nothing.
    """
    registry = config.registry
    if getattr(registry, _INCLUDED, False):
        return
    setattr(registry, _INCLUDED, True)
    values = parse_settings(registry.settings or {})
    mailer = registry.queryUtility(IMailer) or build_mailer(values, registry.settings)
    setup = build_setup(values, mailer)
    register_setup(registry, setup)
    config.add_request_method(request_mailer, "mailer", reify=True)
    # Previews are registered whether or not mail.devtools serves them, so an
    # application declares them once for every environment.
    config.add_directive("add_mail_preview", "pyramid_sendmail.devtools.previews.add_mail_preview")
    if values["devtools"]:
        from .devtools import include_devtools

        include_devtools(config, values, setup)
    config.add_tween(
        "pyramid_sendmail.events.event_tween_factory",
        over=("pyramid_tm.tm_tween_factory", MAIN),
    )
    if values["queue_processor"] == "thread" and setup.queued_delivery is not None:
        from .processor_thread import start_with_application

        start_with_application(config, values, setup)


def build_mailer(values: dict[str, Any], settings: Any = None) -> IMailer:
    """Build the mailer that ``mail.mailer`` names from parsed *values*."""
    kind = values["mailer"]
    if kind == "smtp":
        return SMTPMailer(
            host=values["host"],
            port=values["port"],
            username=values["username"],
            password=values["password"],
            tls=values["tls"],
            ssl=values["ssl"],
            keyfile=values["keyfile"],
            certfile=values["certfile"],
            cafile=values["cafile"],
            verify=values["verify"],
            timeout=values["timeout"],
            debug=values["debug"],
            allow_insecure_auth=values["allow_insecure_auth"],
            local_hostname=values["local_hostname"],
            pipelining=values["pipelining"],
        )
    if kind == "sendmail":
        return SendmailMailer(values["sendmail_app"])
    if kind == "file":
        return FileMailer(os.path.abspath(values["file_path"]))
    if kind == "console":
        return ConsoleMailer()
    try:
        factory = DottedNameResolver().resolve(kind)
    except (ImportError, ValueError) as exc:
        raise ConfigurationError(f"mail.mailer {kind!r} cannot be imported: {exc}") from exc
    return factory(dict(settings or {}))


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


def build_setup(values: dict[str, Any], mailer: IMailer) -> MailSetup:
    """Build the deliveries around *mailer* as the parsed *values* say."""
    queued: QueuedMailDelivery | None = None
    session_of = None
    if values["queue"] == "sql":
        from .queue.sql_delivery import SQLMailDelivery

        queued = SQLMailDelivery(build_sql_queue(values))
        session_of = _resolve_session_of(values["queue_sql_session"])
    elif values["queue_path"]:
        queue = open_configured_queue(values["queue_path"], values["claim_timeout"])
        queued = QueuedMailDelivery(queue)
    delivery = queued if values["delivery"] == "queued" else DirectMailDelivery(mailer)
    return MailSetup(
        mailer=mailer,
        delivery=delivery,  # type: ignore[arg-type]
        queued_delivery=queued,
        default_sender=values["default_sender"],
        redirect_to=values["redirect_to"],
        session_of=session_of or _dbsession,
    )


def build_sql_queue(values: dict[str, Any]) -> Any:
    """The SQL queue the parsed *values* describe (``mail.queue = sql``)."""
    try:
        from .queue.sql import SQLQueue
    except ImportError as exc:
        raise ConfigurationError(
            f"mail.queue = sql needs SQLAlchemy: pip install 'pyramid_sendmail[sql]' ({exc})"
        ) from exc
    try:
        return SQLQueue(
            values["queue_sql_url"],
            claim_timeout=values["claim_timeout"],
            # One claim feeds every worker of a pass a batch.
            claim_limit=values["batch_size"] * values["queue_workers"],
        )
    except Exception as exc:  # a malformed URL, an unknown driver
        raise ConfigurationError(
            f"mail.queue_sql_url {values['queue_sql_url']!r} cannot be used: {exc}"
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


def _resolve_session_of(name: str | None) -> Any:
    if name is None:
        return None
    try:
        return DottedNameResolver().resolve(name)
    except (ImportError, ValueError) as exc:
        raise ConfigurationError(
            f"mail.queue_sql_session {name!r} cannot be imported: {exc}"
        ) from exc


def register_setup(registry: Any, setup: MailSetup) -> None:
    """Register *setup* and its parts as utilities of *registry*."""
    registry.registerUtility(setup, IMailSetup)
    registry.registerUtility(setup.mailer, IMailer)
    registry.registerUtility(setup.delivery, IMailDelivery)
    if setup.queued_delivery is not None:
        registry.registerUtility(setup.queued_delivery, IQueuedMailDelivery)
