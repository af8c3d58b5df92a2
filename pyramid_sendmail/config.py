"""``config.include('pyramid_sendmail')``: settings in, utilities out."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from pyramid.config import Configurator
from pyramid.interfaces import IApplicationCreated
from pyramid.tweens import MAIN

from .api import request_mailer
from .components import (
    ComponentsFactory,
    IMailComponents,
    IMailComponentsFactory,
    MailComponents,
    build_components,
    describe_components,
    register_components,
)
from .interfaces import IMailer
from .processor_thread import QueueProcessorThread, thread_allowed
from .settings import MailSettings, parse_settings

__all__ = ["build_and_register", "includeme"]


log = logging.getLogger(__name__)

_INCLUDED = "pyramid_sendmail.included"


def includeme(config: Configurator) -> None:
    """Configure mail from the ``mail.*`` settings.

    Builds the parts with :func:`~pyramid_sendmail.components.build_components`
    and registers them as utilities: the mailer
    (:class:`~pyramid_sendmail.interfaces.IMailer`; one the application
    registered before the include is kept) and the deliveries. Adds
    ``request.mailer`` and the tween that dispatches mail events after the
    request's transaction, and, with ``mail.queue_processor = thread``,
    starts the queue processor once the application is created. Including it
    again does nothing.
    """
    registry = config.registry
    if getattr(registry, _INCLUDED, False):
        return
    setattr(registry, _INCLUDED, True)
    settings = parse_settings(registry.settings or {})
    components = build_and_register(registry, settings)
    log.info(describe_components(components))
    config.add_request_method(request_mailer, "mailer", reify=True)
    # Previews are registered whether or not mail.devtools serves them, so an
    # application declares them once for every environment.
    config.add_directive("add_mail_preview", "pyramid_sendmail.devtools.previews.add_mail_preview")
    if settings.devtools:
        from .devtools import include_devtools

        include_devtools(config, settings, components)
    config.add_tween(
        "pyramid_sendmail.events.event_tween_factory",
        over=("pyramid_tm.tm_tween_factory", MAIN),
    )
    if settings.queue_processor == "thread":
        config.add_subscriber(_start_thread, IApplicationCreated)


def build_and_register(registry: Any, settings: MailSettings) -> MailComponents:
    """Build the parts for *registry* and register them, replacing any before.

    The builder is :func:`~pyramid_sendmail.components.build_components`,
    unless a utility provides
    :class:`~pyramid_sendmail.components.IMailComponentsFactory` (the testing
    include registers one, and calls this again when it comes second).
    """
    factory: ComponentsFactory = registry.queryUtility(
        IMailComponentsFactory, default=build_components
    )
    components = factory(
        settings,
        mailer=registry.queryUtility(IMailer),
        registry=registry,
        app_settings=registry.settings or {},
    )
    previous: MailComponents | None = registry.queryUtility(IMailComponents)
    if previous is not None and previous.recorder is not None:
        # Built again (the testing include came second): the dev tools still record.
        components = replace(components, recorder=previous.recorder)
    register_components(registry, components)
    if settings.queue_processor == "thread" and components.processor is not None:
        registry.mail_queue_processor = QueueProcessorThread(
            components.processor, settings.queue_interval
        )
    else:
        registry.mail_queue_processor = None
    return components


def _start_thread(event: Any) -> None:
    runner = getattr(event.app.registry, "mail_queue_processor", None)
    if runner is not None and thread_allowed():
        runner.start()
