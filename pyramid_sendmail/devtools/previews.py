"""Mail previews: ``config.add_mail_preview`` and its decorator ``@mail_preview``.

A preview is a factory that takes the request and returns a message (a
:class:`~pyramid_sendmail.Message` or an :class:`~email.message.EmailMessage`);
``request.params`` choose its variants. The dev tools list the previews and
show each one with the message page, in a doomed transaction and with a
``request.mailer`` that only records, so sample-data code can neither commit
nor send.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import venusian
from pyramid.exceptions import ConfigurationError
from zope.interface import Interface

from ..api import MessageLike, RequestMailer

__all__ = ["IMailPreviews", "Preview", "PreviewMailer", "add_mail_preview", "mail_preview"]

PreviewFactory = Callable[[Any], MessageLike]
F = TypeVar("F", bound=Callable[..., Any])
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class IMailPreviews(Interface):
    """Marker for the registry utility: a dict of :class:`Preview` by name."""


@dataclass(frozen=True)
class Preview:
    """One registered preview."""

    name: str
    factory: PreviewFactory
    title: str
    #: The first paragraph of the factory's docstring.
    description: str = ""


def add_mail_preview(
    config: Any, factory: PreviewFactory | str, name: str | None = None, title: str | None = None
) -> None:
    """Register *factory* as the preview *name* (default: the factory's name).

    A configuration directive: ``config.add_mail_preview(welcome_mail)``.
    Two previews with one name conflict, as two views for one route do.
    """
    resolved: PreviewFactory = config.maybe_dotted(factory)
    name = name or getattr(resolved, "__name__", None)
    if not name or not _NAME.match(name):
        raise ConfigurationError(
            f"mail preview name {name!r} must be letters, digits, '_', '.' or '-'"
        )
    title = title or name.replace("_", " ").strip().capitalize()
    doc = (getattr(resolved, "__doc__", None) or "").strip().split("\n\n")[0]
    preview = Preview(name, resolved, title, " ".join(doc.split()))
    registry = config.registry

    def register() -> None:
        previews = registry.queryUtility(IMailPreviews)
        if previews is None:
            previews = {}
            registry.registerUtility(previews, IMailPreviews)
        previews[name] = preview

    introspectable = config.introspectable("mail previews", name, title, "mail preview")
    introspectable["factory"] = resolved
    config.action(("pyramid_sendmail.preview", name), register, introspectables=(introspectable,))


class mail_preview:
    """Decorate a preview factory; ``config.scan()`` registers it.

    Takes the arguments of :func:`~pyramid_sendmail.devtools.add_mail_preview`
    after the factory. The
    application must include ``pyramid_sendmail`` before it scans.
    """

    def __init__(self, name: str | None = None, title: str | None = None) -> None:
        self.name = name
        self.title = title

    def __call__(self, wrapped: F) -> F:
        name, title = self.name, self.title

        def callback(context: Any, _name: str, ob: Any) -> None:
            config = context.config.with_package(info.module)
            try:
                directive = config.add_mail_preview
            except AttributeError:
                raise ConfigurationError(
                    f"@mail_preview on {ob.__module__}.{ob.__name__} needs "
                    "config.include('pyramid_sendmail') before config.scan()"
                ) from None
            directive(ob, name=name, title=title)

        # Category "pyramid": the one a plain config.scan() runs.
        info = venusian.attach(wrapped, callback, category="pyramid")
        return wrapped


class PreviewMailer(RequestMailer):
    """``request.mailer`` in a preview: every send method records, none sends."""

    def __init__(self, registry: Any, keep: Callable[[Any, str], None]) -> None:
        super().__init__(registry, events=lambda event: None)
        self._keep = keep

    def send(self, message: MessageLike, **options: Any) -> str:
        """Record *message* (not sent: this is a preview)."""
        return self._take(message, "send")

    def send_to_queue(self, message: MessageLike, **options: Any) -> str:
        """Record *message* (not queued: this is a preview)."""
        return self._take(message, "send_to_queue")

    def send_immediately(self, message: MessageLike, fail_silently: bool = False) -> str:
        """Record *message* (not sent: this is a preview)."""
        return self._take(message, "send_immediately")

    def send_to_queue_immediately(self, message: MessageLike, **options: Any) -> str:
        """Record *message* (not queued: this is a preview)."""
        return self._take(message, "send_to_queue_immediately")

    def _take(self, message: MessageLike, method: str) -> str:
        envelope = self._prepare(self.components, message)
        self._keep(envelope, method)
        return envelope.message_id
