"""A mail panel for pyramid_debugtoolbar: ``debugtoolbar.includes = pyramid_sendmail.debugtoolbar``.

The request panel lists the messages the request took, each with its final
outcome (the toolbar's tween sits over pyramid_tm, and the outcome is read
when the panel is shown), linking to the dev inbox's message page. The global
panel lists the previews and the queue's status. Both need ``mail.devtools``
on; without it they say how to turn it on.
"""

from __future__ import annotations

import os
from typing import Any

from pyramid_debugtoolbar.panels import DebugPanel

from .devtools import get_devtools
from .devtools.previews import IMailPreviews
from .devtools.recorder import DEFERRED, DISCARDED, FAILED, REQUEST_KEY, Record

__all__ = ["MailPanel", "MailPreviewsPanel", "includeme"]

# Absolute paths rather than asset specs: pkg_resources cannot read assets of
# a package imported through an import hook (pytest's, under coverage).
_TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "devtools", "dbtmako", "")
_ROUTE = "pyramid_sendmail.devtools."
_TROUBLE = frozenset([DISCARDED, FAILED, DEFERRED])


# pyramid_debugtoolbar ships no type hints, so DebugPanel is Any to mypy:
# subclassing it is the toolbar's one extension point, hence the ignore.
class MailPanel(DebugPanel):  # type: ignore[misc]
    """The messages of one request, with what became of them."""

    name = "pyramid_sendmail"
    title = "Mail"
    nav_title = "Mail"
    template = _TEMPLATES + "mail.dbtmako"

    def __init__(self, request: Any) -> None:
        self._request = request
        self.rows: list[dict[str, Any]] = []
        self.data = {"enabled": get_devtools(request.registry) is not None, "rows": self.rows}

    def process_response(self, response: Any) -> None:
        request, self._request = self._request, None
        records: list[Record] = request.environ.get(REQUEST_KEY, [])
        self.rows[:] = [_row(request, record) for record in records]
        if self.data["enabled"]:
            self.data["inbox"] = request.route_path(_ROUTE + "inbox")

    @property
    def has_content(self) -> bool:
        return bool(self.rows) or not self.data["enabled"]

    @property
    def nav_subtitle(self) -> str:
        return str(len(self.rows)) if self.rows else ""

    @property
    def nav_subtitle_style(self) -> str:
        trouble = any(row["record"].outcome in _TROUBLE or row["redirected"] for row in self.rows)
        return "progress-bar-warning" if trouble else ""


class MailPreviewsPanel(DebugPanel):  # type: ignore[misc]  # untyped base, as above
    """The application's mail previews and its queue's status."""

    name = "pyramid_sendmail_previews"
    title = "Mail previews and queue"
    nav_title = "Mail"
    template = _TEMPLATES + "previews.dbtmako"
    has_content = True

    def __init__(self, request: Any) -> None:
        devtools = get_devtools(request.registry)
        previews = request.registry.queryUtility(IMailPreviews) or {}
        self.data = {
            "enabled": devtools is not None,
            "previews": [
                (p, request.route_path(_ROUTE + "preview", name=p.name))
                for p in sorted(previews.values(), key=lambda p: p.title.lower())
            ]
            if devtools is not None
            else [],
        }
        delivery = devtools.setup.queued_delivery if devtools is not None else None
        self._queue = getattr(delivery, "queue", None)

    def render_vars(self, request: Any) -> dict[str, Any]:
        status = None
        if self._queue is not None and hasattr(self._queue, "status"):
            status = self._queue.status()
        return {"queue": self._queue, "status": status}


def _row(request: Any, record: Record) -> dict[str, Any]:
    message = record.headers()
    return {
        "record": record,
        "url": request.route_path(_ROUTE + "message", kind="m", key=record.key),
        "subject": str(message.get("Subject", "")) or "(no subject)",
        "sender": str(message.get("From", "")) or record.envelope.sender,
        "recipients": ", ".join(record.envelope.recipients),
        "redirected": "X-Original-Recipients" in message,
        "message_id": record.envelope.message_id,
    }


def includeme(config: Any) -> None:
    """Add the panels to the toolbar (listed in ``debugtoolbar.includes``)."""
    config.add_debugtoolbar_panel(MailPanel)
    config.add_debugtoolbar_panel(MailPreviewsPanel, is_global=True)
