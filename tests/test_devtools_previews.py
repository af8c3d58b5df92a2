"""Previews: the directive, the decorator, and what a preview may not do."""

from __future__ import annotations

from typing import Any

import pytest
from devtools_app import make_app, rich_message
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationConflictError, ConfigurationError

from pyramid_sendmail.devtools import get_devtools
from pyramid_sendmail.devtools.previews import IMailPreviews
from pyramid_sendmail.testing import get_testing_mailer


def welcome(request: Any) -> Any:
    """Sent when someone signs up."""
    return rich_message(subject="Welcome " + request.params.get("name", "Ann"))


def test_preview_is_listed_and_rendered_with_its_variant() -> None:
    app = make_app(configure=lambda config: config.add_mail_preview(welcome, title="Welcome mail"))
    listing = app.get("/_mail/previews")
    card = listing.html.select_one("ul.cards a")
    assert "Welcome mail" in card.text and "Sent when someone signs up." in card.text
    page = app.get(card["href"], {"name": "Bob"})
    assert page.html.select_one("h1").text == "Welcome Bob"
    assert page.html.select_one(".facts .badge").text == "preview"
    frame = page.html.select_one(".viewport iframe")["src"]
    assert "Hello <b>Ann</b>" in app.get(frame).text
    # A preview is not mail this process sent.
    assert get_devtools(app.app.registry).inbox.records() == []  # type: ignore[union-attr]


def test_decorated_previews_are_found_by_a_plain_scan() -> None:
    app = make_app(configure=lambda config: config.scan("preview_samples"))
    page = app.get("/_mail/previews/password_reset", {"name": "Zoë"})
    assert page.html.select_one("h1").text == "Reset your password, Zoë"
    assert "Password reset" in app.get("/_mail/previews").text


def test_decorator_without_the_include_says_what_is_missing() -> None:
    config = Configurator()
    with pytest.raises(ConfigurationError, match=r"config.include\('pyramid_sendmail'\)"):
        config.scan("preview_samples")


def test_two_previews_with_one_name_conflict() -> None:
    config = Configurator(settings={"mail.mailer": "console"})
    config.include("pyramid_sendmail")
    config.add_mail_preview(welcome)
    config.add_mail_preview(rich_message, name="welcome")
    with pytest.raises(ConfigurationConflictError):
        config.commit()


def test_preview_name_must_fit_in_a_url() -> None:
    config = Configurator(settings={"mail.mailer": "console"})
    config.include("pyramid_sendmail")
    with pytest.raises(ConfigurationError, match="mail preview name 'a b'"):
        config.add_mail_preview(welcome, name="a b")


def test_previews_are_registered_even_with_devtools_off() -> None:
    app = make_app({"mail.devtools": "false"}, lambda config: config.add_mail_preview(welcome))
    assert "welcome" in app.app.registry.getUtility(IMailPreviews)
    app.get("/_mail/previews/welcome", status=404)


def test_preview_cannot_commit_or_send() -> None:
    seen: dict[str, Any] = {}

    def sends(request: Any) -> Any:
        request.mailer.send_immediately(rich_message(subject="side effect"))
        seen["doomed"] = request.tm.isDoomed()
        return rich_message()

    app = make_app(configure=lambda config: config.add_mail_preview(sends))
    app.get("/_mail/previews/sends")
    assert seen["doomed"] is True
    assert get_testing_mailer(app.app.registry).delivered == []
    previews = get_devtools(app.app.registry).previews.records()  # type: ignore[union-attr]
    assert [r.method for r in previews] == ["preview", "send_immediately"]


def test_unknown_preview_is_not_found() -> None:
    make_app().get("/_mail/previews/nothing", status=404)
