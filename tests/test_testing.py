"""Testing support: the in-memory mailer, its outbox, and the mail_outbox fixture."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import pytest
import transaction
import webtest
from pyramid.config import Configurator
from pyramid.response import Response
from zope.interface.verify import verifyObject

from pyramid_sendmail import (
    MailDeliveryError,
    MailFailed,
    Message,
    RequestMailer,
    get_mailer,
)
from pyramid_sendmail.interfaces import IMailer
from pyramid_sendmail.testing import InMemoryMailer, get_testing_mailer


def welcome(subject: str = "Welcome", **fields: Any) -> Message:
    return Message(
        subject=subject,
        sender="ann@example.org",
        recipients=fields.pop("recipients", ["bob@example.org"]),
        body=fields.pop("body", "Hello Bob"),
        **fields,
    )


def make_registry():
    config = Configurator()
    config.include("pyramid_sendmail.testing")
    config.commit()
    return config.registry


def test_in_memory_mailer_is_a_mailer():
    assert verifyObject(IMailer, InMemoryMailer())


def test_outbox_records_at_send_even_without_commit():
    registry = make_registry()
    outbox = get_testing_mailer(registry)
    tm = transaction.TransactionManager(explicit=True)
    tm.begin()
    RequestMailer(registry, tm).send(welcome())
    # As pyramid_mailer's testing mailer: readable before any commit.
    [message] = outbox.outbox
    assert message.subject == "Welcome"
    assert message.recipients == ["bob@example.org"]
    assert message.body == "Hello Bob"
    assert outbox.delivered == []
    tm.abort()
    assert len(outbox.outbox) == 1
    assert outbox.delivered == []


def test_delivered_holds_only_what_committed():
    registry = make_registry()
    outbox = get_testing_mailer(registry)
    mailer = get_mailer(registry)
    with pytest.raises(ValueError), transaction.manager:
        mailer.send(welcome("Aborted"))
        raise ValueError("the request failed")
    with transaction.manager:
        mailer.send(welcome("Committed", html="<p>Hello</p>"))
    assert [m.subject for m in outbox.outbox] == ["Aborted", "Committed"]
    [mail] = outbox.delivered
    assert mail.subject == "Committed"
    assert mail.recipients == ["bob@example.org"]
    assert mail.sender == "ann@example.org"
    assert mail.body.strip() == "Hello Bob"
    assert mail.html.strip() == "<p>Hello</p>"
    assert "Committed" in repr(mail)


def test_delivered_mail_without_html_has_none():
    registry = make_registry()
    with transaction.manager:
        get_mailer(registry).send(welcome())
    [mail] = get_testing_mailer(registry).delivered
    assert mail.html is None


def test_fail_with_makes_delivery_fail_and_announces_it():
    registry = make_registry()
    outbox = get_testing_mailer(registry)
    failures: list[Any] = []
    registry.registerHandler(failures.append, (MailFailed,))
    outbox.fail_with = MailDeliveryError("mailbox full", temporary=True, code=452)
    with transaction.manager:
        get_mailer(registry).send(welcome())
    assert outbox.delivered == []
    [event] = failures
    assert event.error is outbox.fail_with


def test_clear_forgets_everything():
    registry = make_registry()
    outbox = get_testing_mailer(registry)
    with transaction.manager:
        get_mailer(registry).send(welcome())
    outbox.fail_with = MailDeliveryError("x", temporary=False)
    outbox.clear()
    assert (outbox.outbox, outbox.delivered, outbox.fail_with) == ([], [], None)


def test_get_testing_mailer_without_the_testing_include_says_so():
    config = Configurator()
    config.include("pyramid_sendmail")
    config.commit()
    with pytest.raises(LookupError, match=r"pyramid_sendmail\.testing"):
        get_testing_mailer(config.registry)


# --- the pytest plugin -----------------------------------------------------


def test_plugin_is_registered_through_the_pytest11_entry_point(pytestconfig):
    [entry_point] = [e for e in entry_points(group="pytest11") if e.name == "pyramid_sendmail"]
    assert entry_point.value == "pyramid_sendmail.pytest_plugin"
    assert pytestconfig.pluginmanager.hasplugin("pyramid_sendmail")


def test_mail_outbox_fixture_is_the_mailer_of_apps_built_in_the_test(mail_outbox):
    # mail_outbox is not imported here: it comes from the pytest11 plugin.
    def view(request):
        request.mailer.send(welcome())
        return Response("ok")

    with Configurator() as config:
        config.include("pyramid_tm")
        config.include("pyramid_sendmail.testing")
        config.add_route("send", "/send")
        config.add_view(view, route_name="send")
        app = webtest.TestApp(config.make_wsgi_app())
    assert get_testing_mailer(config.registry) is mail_outbox
    app.get("/send")
    assert [m.subject for m in mail_outbox.outbox] == ["Welcome"]
    assert [m.subject for m in mail_outbox.delivered] == ["Welcome"]


def test_without_the_fixture_each_app_gets_its_own_mailer():
    assert get_testing_mailer(make_registry()) is not get_testing_mailer(make_registry())
