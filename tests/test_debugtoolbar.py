"""The pyramid_debugtoolbar panels, through the toolbar's own pages."""

from __future__ import annotations

import re
from typing import Any

from devtools_app import make_app, rich_message
from pyramid.config import Configurator
from pyramid.response import Response

TOOLBAR = {
    "pyramid.includes": "pyramid_debugtoolbar",
    "debugtoolbar.includes": "pyramid_sendmail.debugtoolbar",
}


def _page(request: Any) -> Response:
    request.mailer.send(rich_message())
    if request.params.get("abort"):
        request.tm.doom()
    return Response("<html><body>sent</body></html>", content_type="text/html")


def _with_page(config: Configurator) -> None:
    config.add_route("page", "/page")
    config.add_view(_page, route_name="page")
    config.add_mail_preview(rich_message, name="rich", title="Rich message")


def _toolbar(app: Any, path: str) -> Any:
    page = app.get(path)
    link = page.html.select_one("#pShowToolBarButton")["href"]
    return app.get(re.sub(r"^https?://[^/]+", "", link))


def test_request_panel_lists_the_message_with_its_outcome() -> None:
    app = make_app(TOOLBAR, _with_page)
    toolbar = _toolbar(app, "/page")
    panel = toolbar.html.select_one("#pDebugPanel-pyramid_sendmail-content")
    assert "Welcome <Ann>" in panel.text and "sent" in panel.text
    link = panel.find("a", string="Welcome <Ann>")["href"]
    assert app.get(link).html.select_one("h1").text == "Welcome <Ann>"
    tab = toolbar.html.select_one("#pDebugPanel-pyramid_sendmail")
    assert "1" in tab.text


def test_discarded_message_shows_in_warning_colours() -> None:
    app = make_app(TOOLBAR, _with_page)
    toolbar = _toolbar(app, "/page?abort=1")
    panel = toolbar.html.select_one("#pDebugPanel-pyramid_sendmail-content")
    assert "discarded" in panel.text and "transaction doomed" in panel.text
    assert toolbar.html.select_one("#pDebugPanel-pyramid_sendmail .progress-bar-warning")


def test_global_panel_lists_previews_and_queue_status(tmp_path: Any) -> None:
    settings = {**TOOLBAR, "mail.queue_path": str(tmp_path / "queue")}
    app = make_app(settings, _with_page, testing=False)
    app.get("/page")
    toolbar = _toolbar(app, "/page")
    panel = toolbar.html.select_one("#pDebugPanel-pyramid_sendmail_previews-content")
    assert panel.find("a", string="Rich message")["href"] == "/_mail/previews/rich"
    assert re.search(r"queued\s*2", panel.text), panel.text


def test_panels_without_devtools_say_how_to_turn_them_on() -> None:
    app = make_app({**TOOLBAR, "mail.devtools": "false"}, _with_page)
    toolbar = _toolbar(app, "/page")
    panel = toolbar.html.select_one("#pDebugPanel-pyramid_sendmail-content")
    assert "mail.devtools = true" in panel.text
