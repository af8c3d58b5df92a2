"""The dev tools: a dev inbox and mail previews in the browser (``mail.devtools``).

:func:`include_devtools` is called by ``config.include('pyramid_sendmail')``
when ``mail.devtools`` is true. It checks that the set-up looks like
development (:func:`check_development`), keeps a :class:`DevTools` on the
registry, makes ``request.mailer`` record each message, and serves the pages
under ``mail.devtools_path``. With the setting off none of this exists: the
paths are not found and sending records nothing.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from typing import Any

from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.settings import asbool
from zope.interface import Interface

from ..components import IMailComponents, MailComponents, register_components
from ..interfaces import IMailEvent, IQueuedMailDelivery
from ..settings import MailSettings
from .files import MailFolder
from .previews import add_mail_preview, mail_preview
from .recorder import Recorder, Store

__all__ = [
    "DevTools",
    "IDevTools",
    "add_mail_preview",
    "check_development",
    "get_devtools",
    "include_devtools",
    "mail_preview",
    "message_url",
]

log = logging.getLogger(__name__)

#: Pyramid settings that only a development set-up turns on.
_DEVELOPMENT_FLAGS = (
    "reload_templates",
    "reload_assets",
    "reload_all",
    "debug_all",
    "debug_authorization",
    "debug_notfound",
    "debug_routematch",
    "debug_templates",
)


class IDevTools(Interface):
    """Marker for the :class:`DevTools` utility."""


@dataclass
class DevTools:
    """What the dev tools keep for this application."""

    path: str
    #: The messages this process took.
    inbox: Store
    #: The messages the previews built (never sent).
    previews: Store
    recorder: Recorder
    setup: MailComponents
    #: The file mailer's folder, when ``mail.mailer = file``.
    folder: MailFolder | None = None

    def find(self, key: str) -> Any:
        """The record *key* of the inbox or of the previews, or None."""
        return self.inbox.get(key) or self.previews.get(key)


def get_devtools(registry: Any) -> DevTools | None:
    """The dev tools of *registry*, or None when ``mail.devtools`` is off."""
    devtools: DevTools | None = registry.queryUtility(IDevTools)
    return devtools


def message_url(request: Any, message_id: str) -> str | None:
    """The dev inbox's page for the message *message_id* that ``send()`` returned.

    None when ``mail.devtools`` is off, so an application can show the link
    in development only.
    """
    if get_devtools(request.registry) is None:
        return None
    return str(request.route_path("pyramid_sendmail.devtools.by_id", message_id=message_id))


def check_development(settings: Any, allow_production: bool) -> None:
    """Refuse to start the dev tools where the set-up looks like production.

    The dev inbox shows every message, with its links and tokens, to whoever
    can reach the application; a development set-up is recognised by a
    Pyramid reload or debug setting, which production turns off.
    """
    settings = settings or {}
    if allow_production:
        return
    for flag in _DEVELOPMENT_FLAGS:
        if asbool(settings.get(flag, settings.get("pyramid." + flag, False))):
            return
    raise ConfigurationError(
        "mail.devtools is true but no pyramid.reload_* or pyramid.debug_* "
        "setting is: this looks like production, where the dev inbox "
        "would show every message to anyone. Set pyramid.reload_templates = true in "
        "development, or mail.devtools_allow_production = true if you mean it"
    )


def include_devtools(config: Configurator, values: MailSettings, setup: MailComponents) -> None:
    """Record messages and serve the dev tools at ``mail.devtools_path``."""
    registry = config.registry
    check_development(registry.settings, values.devtools_allow_production)
    path = values.devtools_path
    log.warning(
        "mail.devtools is on: every message this process sends is kept in memory and "
        "shown at %s/ to anyone who can reach the application. Development only.",
        path,
    )
    inbox = Store()
    recorder = Recorder(inbox, _QueuedDelivery(registry))
    # A new, frozen set of parts that records; nothing built is changed.
    setup = replace(setup, recorder=recorder, on_cancel=(*setup.on_cancel, recorder.cancelled))
    register_components(registry, setup)
    folder = MailFolder(os.path.abspath(values.file_path)) if values.mailer == "file" else None
    devtools = DevTools(path, inbox, Store(max_messages=50), recorder, setup, folder)
    registry.registerUtility(devtools, IDevTools)
    config.add_subscriber(recorder.on_event, IMailEvent)
    _exclude_from_toolbar(registry.settings, path)
    from .views import add_views

    add_views(config, path)


class _QueuedDelivery:
    """True when the registered parts' ``send()`` queues."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def __call__(self) -> bool:
        components = self.registry.getUtility(IMailComponents)
        return bool(IQueuedMailDelivery.providedBy(components.delivery))


def _exclude_from_toolbar(settings: Any, path: str) -> None:
    """Keep pyramid_debugtoolbar off the dev tools' pages.

    Its button would be injected into every HTML response, a message's own
    HTML part included; its tween reads ``debugtoolbar.exclude_prefixes``
    when the application is created, as a sequence once the toolbar's
    include has parsed it, as text before.
    """
    if settings is None:
        return
    key = "debugtoolbar.exclude_prefixes"
    current = settings.get(key)
    if isinstance(current, (list, tuple)):
        settings[key] = [*current, path]
    else:
        settings[key] = f"{current or ''}\n{path}".strip()
