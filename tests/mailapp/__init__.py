"""An application that renders its mail from its own templates.

tests/test_templates.py runs it with pyramid_jinja2 or pyramid_chameleon. Its
view names its templates relative to this package, as application code does.
"""

from __future__ import annotations

from typing import Any

from pyramid.config import Configurator
from pyramid.i18n import TranslationStringFactory

from pyramid_sendmail import render_message

_ = TranslationStringFactory("mailapp")

#: Per engine: the HTML template and the text template, relative to here.
TEMPLATES = {
    "jinja2": ("templates/jinja2/welcome.jinja2", "templates/jinja2/welcome.txt"),
    "chameleon": ("templates/chameleon/welcome.pt", "templates/chameleon/welcome.txt"),
}


def welcome(request: Any) -> str:
    html, text = TEMPLATES[request.registry.settings["mailapp.engine"]]
    name = request.params["name"]
    message = render_message(
        request,
        html=html,
        text=None if request.params.get("text") == "generated" else text,
        subject=_("Welcome, ${name}!", mapping={"name": name}),
        value={"name": name, "token": "t0k3n", "items": ["one & two", "three"]},
        recipients=[f"{name} <{name.lower()}@example.org>"],
        sender="Example <noreply@example.com>",
        locale=request.params.get("to_locale"),
    )
    request.mailer.send(message)
    return "sent"


def make_app(engine: str) -> Any:
    settings = {
        "mailapp.engine": engine,
        "jinja2.i18n.domain": "mailapp",
        # A text part must not be HTML-escaped: the recipe in docs/templates.rst.
        "jinja2.text.autoescape": "false",
    }
    with Configurator(settings=settings) as config:
        config.include("pyramid_tm")
        config.include("pyramid_sendmail.testing")
        config.add_translation_dirs("mailapp:locale")
        if engine == "jinja2":
            config.include("pyramid_jinja2")
            config.add_jinja2_renderer(".txt", settings_prefix="jinja2.text.")
        else:
            config.include("pyramid_chameleon")
        config.add_route("welcome", "/welcome")
        config.add_route("confirm", "/confirm/{token}")
        config.add_view(welcome, route_name="welcome", renderer="string")
    return config.make_wsgi_app()
