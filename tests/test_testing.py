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
        sender=fields.pop("sender", "ann@example.org"),
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


# --- pyramid_mailer's test patterns ----------------------------------------


def test_get_mailer_and_request_mailer_expose_the_outbox_queue_and_delivered():
    from pyramid import testing
    from pyramid.request import apply_request_extensions

    config = testing.setUp()
    try:
        config.include("pyramid_sendmail.testing")
        request = testing.DummyRequest()
        apply_request_extensions(request)
        with transaction.manager:
            request.mailer.send(welcome("Sent"))
            get_mailer(request).send_to_queue(welcome("Queued"))
        for mailer in (request.mailer, get_mailer(request), get_mailer(config.registry)):
            assert [m.subject for m in mailer.outbox] == ["Sent"]
            assert [m.subject for m in mailer.queue] == ["Queued"]
            assert [m.subject for m in mailer.delivered] == ["Sent", "Queued"]
    finally:
        testing.tearDown()


def test_outbox_outside_the_testing_include_is_an_attribute_error_that_says_so():
    config = Configurator(settings={"mail.mailer": "console"})
    config.include("pyramid_sendmail")
    config.commit()
    mailer = get_mailer(config.registry)
    assert not hasattr(mailer, "outbox")
    with pytest.raises(AttributeError, match=r"pyramid_sendmail\.testing"):
        mailer.delivered  # noqa: B018


def test_a_message_without_sender_is_sent_from_the_placeholder_under_testing():
    from pyramid_sendmail.testing import TESTING_SENDER

    registry = make_registry()
    with transaction.manager:
        get_mailer(registry).send(welcome(sender=None))
    [mail] = get_testing_mailer(registry).delivered
    assert mail.sender == TESTING_SENDER == "no-default-sender@example.invalid"
    [message] = get_testing_mailer(registry).outbox
    assert message.sender is None  # recorded as given, as pyramid_mailer's DummyMailer did


def test_the_placeholder_does_not_replace_a_configured_default_sender():
    config = Configurator(settings={"mail.default_sender": "shop@example.org"})
    config.include("pyramid_sendmail.testing")
    config.commit()
    with transaction.manager:
        get_mailer(config.registry).send(welcome(sender=None))
    assert get_testing_mailer(config.registry).delivered[0].sender == "shop@example.org"


@pytest.mark.parametrize("register_as", ["IMailer", "IMessageMailer"])
def test_a_registered_dummy_mailer_is_what_get_mailer_and_request_mailer_return(register_as):
    from pyramid import testing
    from pyramid.request import apply_request_extensions

    from pyramid_sendmail import interfaces
    from pyramid_sendmail.testing import DummyMailer

    config = testing.setUp()
    try:
        config.include("pyramid_sendmail.testing")
        dummy = DummyMailer()
        # What pyramid_mailer applications do with their DummyMailer.
        config.registry.registerUtility(dummy, getattr(interfaces, register_as))
        request = testing.DummyRequest()
        apply_request_extensions(request)
        assert get_mailer(request) is dummy
        assert get_mailer(config.registry) is dummy
        assert request.mailer is dummy
        request.mailer.send(welcome("One"))
        request.mailer.send_immediately(welcome("Two"), fail_silently=True)
        request.mailer.send_to_queue(welcome("Three"))
        assert [m.subject for m in dummy.outbox] == ["One", "Two"]
        assert [m.subject for m in dummy.queue] == ["Three"]
        assert dummy.bind(transaction_manager=transaction.manager) is dummy
        with pytest.raises(TypeError, match="colour"):
            dummy.bind(colour="red")
    finally:
        testing.tearDown()


def test_dummy_mailer_can_be_injected_without_any_include():
    from pyramid_sendmail.testing import DummyMailer

    dummy = DummyMailer()
    dummy.send_immediately(welcome(sender=None, recipients=[]))  # nothing is checked
    dummy.send_to_queue_immediately(welcome())
    assert (len(dummy.outbox), len(dummy.queue)) == (1, 1)



def test_dummy_mailer_takes_the_scheduling_keywords_of_the_real_mailer():
    import datetime

    from pyramid_sendmail.testing import DummyMailer

    dummy = DummyMailer()
    later = datetime.timedelta(hours=1)
    dummy.send(welcome(), send_at=later, expires_at=later * 2, priority="high")
    dummy.send_to_queue(welcome(), send_at=later, priority="low")
    dummy.send_to_queue_immediately(welcome(), expires_at=later)
    assert (len(dummy.outbox), len(dummy.queue)) == (1, 2)


PLUGIN_CASES = '''
import pytest
import transaction
from pyramid.config import Configurator
from pyramid_sendmail import Message, get_mailer


def make_app():
    config = Configurator()
    config.include("pyramid_sendmail.testing")
    config.commit()
    return config.registry


def send(registry):
    with transaction.manager:
        get_mailer(registry).send(Message("Hi", ["bob@example.org"], "Hello"))


@pytest.fixture
def app():
    return make_app()


@pytest.fixture(scope="session")
def session_app():
    return make_app()


def test_app_fixture_set_up_before_mail_outbox(app, mail_outbox):
    send(app)
    assert [m.subject for m in mail_outbox.outbox] == ["Hi"]


def test_session_app_records_into_the_outbox_of_the_test_that_built_it(session_app, mail_outbox):
    send(session_app)
    assert len(mail_outbox.outbox) == 1


def test_session_app_in_a_later_test_is_reported(session_app, mail_outbox):
    send(session_app)


def test_without_the_fixture_apps_have_their_own_mailers():
    from pyramid_sendmail.testing import get_testing_mailer

    assert get_testing_mailer(make_app()) is not get_testing_mailer(make_app())
'''


def test_mail_outbox_does_not_depend_on_fixture_order_and_reports_older_apps(tmp_path):
    import subprocess
    import sys

    (tmp_path / "test_cases.py").write_text(PLUGIN_CASES)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout
    assert "4 passed" in output and "1 error" in output, output
    assert "PASSED test_cases.py::test_app_fixture_set_up_before_mail_outbox" in output
    assert "ERROR at teardown of test_session_app_in_a_later_test_is_reported" in output
    assert "application created before this test" in output
