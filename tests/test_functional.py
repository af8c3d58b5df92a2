"""A real Pyramid app with pyramid_tm and pyramid_retry, driven through WebTest."""

from __future__ import annotations

from email.message import EmailMessage
from itertools import count
from typing import Any

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPNotFound
from pyramid.response import Response
from transaction.interfaces import TransientError

from pyramid_sendmail import InvalidMessageError, MailFailed, MailSent, Message
from pyramid_sendmail.testing import InMemoryMailer, get_testing_mailer


def message(subject: str) -> Message:
    return Message(
        subject=subject,
        sender="shop@example.org",
        recipients=["bob@example.org"],
        body=f"This is {subject}.",
    )


# -- the application ---------------------------------------------------------


def send(request):
    request.mailer.send(message("Welcome"))
    return Response("sent")


def send_then_raise(request):
    request.mailer.send(message("Welcome"))
    raise ValueError("the view failed")


class RenderedError(Exception):
    """An error that the application's exception view turns into a 500 page."""


def send_then_raise_rendered(request):
    request.mailer.send(message("Welcome"))
    raise RenderedError("the view failed politely")


def error_page(exc, request):
    return Response("sorry", status=500)


def send_then_doom(request):
    request.mailer.send(message("Welcome"))
    request.tm.doom()
    return Response("doomed")


def send_then_answer_500(request):
    request.mailer.send(message("Welcome"))
    return Response("vetoed", status=500)


def send_then_not_found(request):
    request.mailer.send(message("Welcome"))
    return HTTPNotFound()


def send_with_abort_header(request):
    request.mailer.send(message("Welcome"))
    return Response("vetoed by header", headers={"X-Tm": "abort"})


def send_around_savepoint(request):
    request.mailer.send(message("Kept"))
    savepoint = request.tm.savepoint()
    request.mailer.send(message("Rolled back"))
    request.mailer.send(message("Rolled back too"))
    savepoint.rollback()
    request.mailer.send(message("Sent after rollback"))
    return Response("ok")


def send_immediately_then_raise(request):
    request.mailer.send_immediately(message("Password reset"))
    request.mailer.send(message("Welcome"))
    raise ValueError("the view failed")


def send_immediately_then_doom(request):
    request.mailer.send_immediately(message("Password reset"))
    request.tm.doom()
    return Response("doomed")


class Flaky:
    """A view that fails with a transient error for its first *failures* calls."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = count(1)
        self.calls = 0

    def __call__(self, request):
        self.calls = next(self.attempts)
        request.mailer.send(message(f"Attempt {self.calls}"))
        if self.calls <= self.failures:
            raise TransientError("database conflict, try again")
        return Response(f"ok after {self.calls} attempts")


def make_app(settings: dict[str, Any] | None = None, **extra_views: Any) -> webtest.TestApp:
    settings = {
        "tm.manager_hook": "pyramid_tm.explicit_manager",
        "tm.commit_veto": "pyramid_tm.default_commit_veto",
        "retry.attempts": "3",
        **(settings or {}),
    }
    views = {
        "send": send,
        "raise": send_then_raise,
        "raise-rendered": send_then_raise_rendered,
        "doom": send_then_doom,
        "answer-500": send_then_answer_500,
        "not-found": send_then_not_found,
        "abort-header": send_with_abort_header,
        "savepoint": send_around_savepoint,
        "immediately-then-raise": send_immediately_then_raise,
        "immediately-then-doom": send_immediately_then_doom,
        **extra_views,
    }
    with Configurator(settings=settings) as config:
        config.include("pyramid_tm")
        config.include("pyramid_retry")
        config.include("pyramid_sendmail")
        if "mail.host" not in settings:
            config.include("pyramid_sendmail.testing")
        config.registry.mail_events = []
        config.add_subscriber(config.registry.mail_events.append, MailSent)
        config.add_subscriber(config.registry.mail_events.append, MailFailed)
        for name, view in views.items():
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
        config.add_exception_view(error_page, RenderedError)
        app = config.make_wsgi_app()
    return webtest.TestApp(app)


@pytest.fixture
def app() -> webtest.TestApp:
    return make_app()


@pytest.fixture
def outbox(app: webtest.TestApp) -> InMemoryMailer:
    return get_testing_mailer(app.app.registry)


def delivered(outbox: InMemoryMailer) -> list[str]:
    return [mail.subject for mail in outbox.delivered]


# -- commit and abort --------------------------------------------------------


def test_committed_request_delivers(app, outbox):
    assert app.get("/send").text == "sent"
    assert delivered(outbox) == ["Welcome"]
    [mail] = outbox.delivered
    assert mail.recipients == ["bob@example.org"]
    assert mail.body.strip() == "This is Welcome."


def test_committed_request_announces_mail_sent(app, outbox):
    app.get("/send")
    [event] = app.app.registry.mail_events
    assert isinstance(event, MailSent)
    assert event.message["Subject"] == "Welcome"


def test_view_raising_an_exception_delivers_nothing(app, outbox):
    with pytest.raises(ValueError, match="the view failed"):
        app.get("/raise")
    assert outbox.delivered == []
    assert app.app.registry.mail_events == []


def test_exception_rendered_by_an_exception_view_delivers_nothing(app, outbox):
    response = app.get("/raise-rendered", status=500)
    assert response.text == "sorry"
    assert outbox.delivered == []


def test_doomed_request_delivers_nothing(app, outbox):
    assert app.get("/doom").text == "doomed"
    assert outbox.delivered == []


@pytest.mark.parametrize(
    ("path", "status"),
    [("/answer-500", 500), ("/not-found", 404), ("/abort-header", 200)],
)
def test_response_vetoed_by_commit_veto_delivers_nothing(app, outbox, path, status):
    app.get(path, status=status)
    assert outbox.delivered == []


def test_each_request_is_its_own_transaction(app, outbox):
    app.get("/doom")
    app.get("/send")
    app.get("/raise-rendered", status=500)
    app.get("/send")
    assert delivered(outbox) == ["Welcome", "Welcome"]


# -- pyramid_retry -----------------------------------------------------------


def test_retried_request_delivers_exactly_once():
    flaky = Flaky(failures=1)
    app = make_app(flaky=flaky)
    outbox = get_testing_mailer(app.app.registry)
    assert app.get("/flaky").text == "ok after 2 attempts"
    assert delivered(outbox) == ["Attempt 2"]
    # As with pyramid_mailer, the outbox shows every send() call.
    assert [m.subject for m in outbox.outbox] == ["Attempt 1", "Attempt 2"]
    assert len(app.app.registry.mail_events) == 1


def test_request_failing_every_attempt_delivers_nothing():
    flaky = Flaky(failures=3)
    app = make_app(flaky=flaky)
    with pytest.raises(TransientError):
        app.get("/flaky")
    assert flaky.calls == 3
    assert get_testing_mailer(app.app.registry).delivered == []


# -- savepoints and send_immediately -----------------------------------------


def test_savepoint_rollback_in_a_view_forgets_the_messages(app, outbox):
    app.get("/savepoint")
    assert delivered(outbox) == ["Kept", "Sent after rollback"]


def test_send_immediately_in_an_aborted_request_still_sends(app, outbox):
    with pytest.raises(ValueError):
        app.get("/immediately-then-raise")
    assert delivered(outbox) == ["Password reset"]
    app.get("/immediately-then-doom")
    assert delivered(outbox) == ["Password reset", "Password reset"]


# -- through a real SMTP server ----------------------------------------------


def smtp_app(server) -> webtest.TestApp:
    return make_app({"mail.host": server.host, "mail.port": str(server.port)})


def test_committed_request_reaches_the_smtp_server(smtp_server):
    app = smtp_app(smtp_server)
    app.get("/send")
    app.get("/doom")
    with pytest.raises(ValueError):
        app.get("/immediately-then-raise")
    subjects = [m.data.split(b"Subject: ")[1].split(b"\r\n")[0] for m in smtp_server.messages]
    assert subjects == [b"Welcome", b"Password reset"]
    assert smtp_server.messages[0].sender == "shop@example.org"
    assert smtp_server.messages[0].recipients == ("bob@example.org",)


def test_smtp_server_refusing_the_message_still_commits_the_request(smtp_server):
    smtp_server.faults.data_end = "554 5.7.1 Message rejected"
    app = smtp_app(smtp_server)
    assert app.get("/send").text == "sent"
    [event] = app.app.registry.mail_events
    assert isinstance(event, MailFailed)
    assert event.error.code == 554
    assert event.error.temporary is False


# -- what reaches the wire ---------------------------------------------------


def send_injected_raw_header(request):
    msg = EmailMessage()
    msg["From"] = "shop@example.org"
    msg["To"] = "bob@example.org"
    msg.set_raw("Subject", "hi\r\nBcc: victim@example.net")
    msg.set_content("Hello")
    request.mailer.send(msg)
    return Response("sent")


def test_header_injected_with_set_raw_is_refused_at_send_and_never_sent(smtp_server):
    app = make_app(
        {"mail.host": smtp_server.host, "mail.port": str(smtp_server.port)},
        inject=send_injected_raw_header,
    )
    with pytest.raises(InvalidMessageError, match="header Subject contains a line break"):
        app.get("/inject")
    app.get("/send")
    assert [m.recipients for m in smtp_server.messages] == [("bob@example.org",)]
    assert b"victim" not in smtp_server.messages[0].data


def send_to_a_non_ascii_domain(request):
    request.mailer.send(
        Message(
            subject="Grüße",
            sender="Shop <shop@bücher.example>",
            recipients=["Ann <ann@bücher.example>"],
            body="Hallo",
        )
    )
    return Response("sent")


def test_non_ascii_domain_reaches_a_relay_without_smtputf8(smtp_server_factory):
    server = smtp_server_factory(smtputf8=False)
    app = make_app(
        {"mail.host": server.host, "mail.port": str(server.port)},
        idna=send_to_a_non_ascii_domain,
    )
    app.get("/idna")
    [received] = server.messages
    assert received.sender == "shop@xn--bcher-kva.example"
    assert received.recipients == ("ann@xn--bcher-kva.example",)
    assert "SMTPUTF8" not in received.mail_options
    assert b"To: Ann <ann@xn--bcher-kva.example>\r\n" in received.data


def send_with_bcc(request):
    request.mailer.send(
        Message(
            subject="Order",
            sender="shop@example.org",
            recipients=["ann@example.org"],
            bcc=["audit@example.org"],
            body="Thanks",
        )
    )
    msg = EmailMessage()
    msg["From"] = "shop@example.org"
    msg["Bcc"] = "audit@example.org, ledger@example.org"
    msg["Subject"] = "Bcc only"
    msg.set_content("Hello")
    request.mailer.send(msg)
    return Response("sent")


@pytest.mark.parametrize("redirect", [False, True])
def test_bcc_address_reaches_no_header_at_the_wire(smtp_server, redirect):
    settings = {"mail.host": smtp_server.host, "mail.port": str(smtp_server.port)}
    if redirect:
        settings["mail.redirect_to"] = "dev@example.org"
    make_app(settings, bcc=send_with_bcc).get("/bcc")
    first, second = smtp_server.messages
    if redirect:
        assert first.recipients == second.recipients == ("dev@example.org",)
        assert b"X-Original-Recipients: ann@example.org\r\n" in first.data
        assert b"X-Original-Recipients: (Bcc only)\r\n" in second.data
    else:
        assert first.recipients == ("ann@example.org", "audit@example.org")
        assert second.recipients == ("audit@example.org", "ledger@example.org")
    for received in (first, second):
        headers = received.data.split(b"\r\n\r\n")[0]
        assert b"audit@" not in headers and b"ledger@" not in headers
        assert b"\r\nbcc:" not in b"\r\n" + headers.lower()
