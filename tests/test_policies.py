"""The before-send event, redirects and scheduling at send(), through
WebTest with pyramid_tm and the testing include."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import transaction
from pyramid.config import Configurator
from webtest import TestApp

from pyramid_sendmail import InvalidMessageError, Message, SendmailError, get_mailer
from pyramid_sendmail.interfaces import IMailSendingEvent
from pyramid_sendmail.message import prepare
from pyramid_sendmail.policies import MailSending, Redirect
from pyramid_sendmail.queue import MaildirQueue
from pyramid_sendmail.testing import get_testing_mailer


def welcome(**kw: Any) -> Message:
    kw.setdefault("recipients", ["bob@example.org"])
    return Message(subject="Welcome", sender="shop@example.org", body="Hi\n", **kw)


def app_with(subscriber: Any, settings: dict[str, str] | None = None) -> tuple[TestApp, Any]:
    config = Configurator(
        settings={"tm.manager_hook": "pyramid_tm.explicit_manager", **(settings or {})}
    )
    config.include("pyramid_tm")
    config.include("pyramid_sendmail.testing")
    if subscriber is not None:
        config.add_subscriber(subscriber, IMailSendingEvent)

    def view(request: Any) -> Any:
        message_id = request.mailer.send(welcome(bcc=["audit@example.org"]))
        request.response.text = message_id
        if "fail" in request.params:
            raise RuntimeError("the view failed")
        return request.response

    config.add_route("send", "/send")
    config.add_view(view, route_name="send")
    return TestApp(config.make_wsgi_app()), get_testing_mailer(config.registry)


def test_subscriber_edits_subject_and_recipients_before_commit() -> None:
    seen: list[MailSending] = []

    def edit(event: MailSending) -> None:
        seen.append(event)
        assert event.mode == "direct" and event.request is not None
        event.message.replace_header("Subject", "Welcome aboard")
        event.recipients.remove("audit@example.org")
        event.recipients.append("team@example.org")

    app, mailer = app_with(edit)
    response = app.get("/send")
    [mail] = mailer.delivered
    assert mail.subject == "Welcome aboard"
    assert mail.recipients == ["bob@example.org", "team@example.org"]
    assert response.text == seen[0].message_id == mail.message["Message-ID"].strip("<>")
    assert "Bcc" not in mail.message


def test_cancelled_message_is_not_sent_on_commit_but_is_in_the_outbox() -> None:
    app, mailer = app_with(lambda event: event.cancel("unsubscribed"))
    response = app.get("/send")
    assert mailer.delivered == []
    [cancelled] = mailer.cancelled
    assert cancelled.reason == "unsubscribed"
    assert cancelled.message_id == response.text
    assert len(mailer.outbox) == 1


@pytest.mark.parametrize(
    "edit",
    [
        lambda event: event.recipients.append("eve@example.org\r\nRCPT TO:<x@example.org>"),
        lambda event: event.message.replace_header("To", "not an address@@"),
        lambda event: event.recipients.clear(),
    ],
    ids=["recipient-with-line-break", "bad-to-header", "no-recipients"],
)
def test_subscriber_edits_are_checked_again(edit: Any) -> None:
    config = Configurator()
    config.include("pyramid_sendmail.testing")
    config.add_subscriber(edit, IMailSendingEvent)
    config.commit()
    with pytest.raises(InvalidMessageError), transaction.manager:
        get_mailer(config.registry).send(welcome())
    assert get_testing_mailer(config.registry).delivered == []


def test_subscriber_exception_reaches_the_caller_and_nothing_is_sent() -> None:
    def broken(event: MailSending) -> None:
        raise KeyError("no such template")

    app, mailer = app_with(broken)
    with pytest.raises(KeyError):
        app.get("/send")
    assert mailer.delivered == []


def test_redirect_to_several_with_exceptions_and_prefix_never_names_bcc() -> None:
    settings = {
        "mail.redirect_to": "qa@example.net, dev@example.net",
        "mail.redirect_except": "*@example.com",
        "mail.subject_prefix": "[staging]",
    }
    app, mailer = app_with(None, settings)
    app.get("/send")
    [mail] = mailer.delivered
    assert mail.recipients == ["qa@example.net", "dev@example.net"]
    assert mail.subject == "[staging] Welcome"
    assert mail.message["X-Original-Recipients"] == "bob@example.org"
    assert b"audit@example.org" not in mail.data


def test_redirect_exception_is_delivered_as_addressed() -> None:
    redirect = Redirect(("qa@example.net",), ("example.com",), "[staging]")
    envelope = prepare(welcome(recipients=["ann@example.com"]))
    assert redirect(envelope) is envelope
    twice = redirect(redirect(prepare(welcome())))
    assert twice.recipients == ("qa@example.net",)
    assert twice.message["Subject"] == "[staging] Welcome"
    assert twice.message["X-Original-Recipients"] == "bob@example.org"


def test_send_at_with_direct_delivery_is_an_error_naming_the_queue() -> None:
    config = Configurator()
    config.include("pyramid_sendmail.testing")
    config.commit()
    with pytest.raises(SendmailError, match="send_to_queue"), transaction.manager:
        get_mailer(config.registry).send(welcome(), send_at=timedelta(hours=1))


def test_unknown_priority_is_refused(tmp_path: Path) -> None:
    config = Configurator(settings={"mail.queue_path": str(tmp_path / "unused")})
    config.include("pyramid_sendmail.testing")
    config.commit()
    with pytest.raises(InvalidMessageError, match="priority"), transaction.manager:
        get_mailer(config.registry).send(welcome(), priority="urgent")


def test_scheduled_mail_is_written_with_its_schedule(tmp_path: Path) -> None:
    config = Configurator(settings={"mail.queue_path": str(tmp_path / "q")})
    config.include("pyramid_sendmail")
    config.commit()
    mailer = get_mailer(config.registry)
    mailer.send_to_queue_immediately(
        welcome(), send_at=timedelta(hours=1), expires_at=timedelta(hours=2), priority="high"
    )
    queue = MaildirQueue(str(tmp_path / "q"))
    assert queue.claimable() == []
    status = queue.schedule_status()
    assert status["scheduled"] == 1 and status["high"] == 1
    assert 3590 < status["next_due"] <= 3600
    [entry] = queue.list("new")
    assert entry.schedule.priority == "high"
    assert entry.schedule.expires_at is not None
    assert entry.schedule.send_at is not None
    assert entry.schedule.expires_at - entry.schedule.send_at == pytest.approx(3600)


def test_email_message_with_only_bcc_can_be_edited() -> None:
    msg = EmailMessage()
    msg["From"] = "shop@example.org"
    msg["Subject"] = "Report"
    msg["Bcc"] = "boss@example.org"
    msg.set_content("numbers\n")
    config = Configurator()
    config.include("pyramid_sendmail.testing")
    config.add_subscriber(
        lambda e: e.message.replace_header("Subject", "Weekly"), IMailSendingEvent
    )
    config.commit()
    with transaction.manager:
        get_mailer(config.registry).send(msg)
    [mail] = get_testing_mailer(config.registry).delivered
    assert mail.recipients == ["boss@example.org"]
    assert mail.subject == "Weekly"
    assert "Bcc" not in mail.message


def test_event_provides_its_interface() -> None:
    from zope.interface.verify import verifyObject

    envelope = prepare(welcome())
    event = MailSending(envelope.message, envelope.recipients, envelope.message_id)
    assert verifyObject(IMailSendingEvent, event)
    event.cancel()
    assert event.cancelled and event.reason
