"""A small Pyramid application with the dev tools on, for the devtools tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import webtest
from pyramid.config import Configurator
from pyramid.response import Response

from pyramid_sendmail import Attachment, Message

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)
DEVELOPMENT = {"pyramid.reload_templates": "true", "mail.devtools": "true"}


def rich_message(**overrides: Any) -> Message:
    """A message with text, HTML, an inline image and an attachment."""
    values: dict[str, Any] = {
        "subject": "Welcome <Ann>",
        "sender": "App <app@example.com>",
        "recipients": ["ann@example.org"],
        "bcc": ["audit@example.com"],
        "body": "Hello Ann",
        "html": '<p>Hello <b>Ann</b></p><img src="cid:logo" alt="logo">',
        "attachments": [
            Attachment("logo.png", "image/png", PNG, content_id="logo"),
            Attachment("terms.txt", "text/plain", "The terms."),
        ],
    }
    values.update(overrides)
    return Message(**values)


def make_app(
    settings: dict[str, Any] | None = None,
    configure: Callable[[Configurator], None] | None = None,
    testing: bool = True,
) -> webtest.TestApp:
    """The app: ``POST /send`` sends :func:`rich_message`, ``?abort=1`` dooms it."""

    def send(request: Any) -> Response:
        message_id = request.mailer.send(rich_message())
        if request.params.get("abort"):
            request.tm.doom()
        return Response(message_id)

    all_settings = {**DEVELOPMENT, **(settings or {})}
    with Configurator(settings=all_settings) as config:
        config.include("pyramid_tm")
        config.include("pyramid_sendmail.testing" if testing else "pyramid_sendmail")
        config.add_route("send", "/send")
        config.add_view(send, route_name="send")
        if configure is not None:
            configure(config)
    return webtest.TestApp(config.make_wsgi_app(), extra_environ={"REMOTE_ADDR": "127.0.0.1"})
