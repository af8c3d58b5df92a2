"""``request.mailer`` and ``get_mailer``: the calls an application makes."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import pytest
import transaction
from pyramid import testing
from pyramid.config import Configurator
from pyramid.registry import Registry
from pyramid.request import Request, apply_request_extensions

from pyramid_sendmail import (
    InvalidMessageError,
    MailDeliveryError,
    MailSent,
    Message,
    RequestMailer,
    SendmailError,
    TransactionStateError,
    get_mailer,
)
from pyramid_sendmail.testing import InMemoryMailer, get_testing_mailer


def welcome(**overrides: Any) -> Message:
    fields: dict[str, Any] = {
        "subject": "Welcome",
        "sender": "ann@example.org",
        "recipients": ["bob@example.org"],
        "body": "Hi",
    }
    fields.update(overrides)
    return Message(**fields)


@pytest.fixture
def config():
    config = Configurator(settings={"tm.manager_hook": "pyramid_tm.explicit_manager"})
    config.include("pyramid_tm")
    config.include("pyramid_sendmail.testing")
    config.commit()
    return config


@pytest.fixture
def outbox(config) -> InMemoryMailer:
    return get_testing_mailer(config.registry)


@pytest.fixture
def request_(config) -> Request:
    request = Request.blank("/")
    request.registry = config.registry
    apply_request_extensions(request)
    return request


# --- get_mailer ------------------------------------------------------------


def test_get_mailer_of_request_is_request_mailer(request_):
    assert get_mailer(request_) is request_.mailer


def test_get_mailer_of_registry_uses_the_thread_transaction(config, outbox):
    mailer = get_mailer(config.registry)
    assert isinstance(mailer, RequestMailer)
    with transaction.manager:
        mailer.send(welcome())
        assert outbox.delivered == []
    assert [mail.subject for mail in outbox.delivered] == ["Welcome"]


def test_get_mailer_of_dummy_request_works():
    config = testing.setUp()
    try:
        config.include("pyramid_sendmail.testing")
        config.commit()
        mailer = get_mailer(testing.DummyRequest())
        with transaction.manager:
            mailer.send(welcome())
        assert len(get_testing_mailer(config.registry).delivered) == 1
    finally:
        testing.tearDown()


def test_dummy_request_with_tm_binds_the_mailer_to_it():
    request = testing.DummyRequest()
    request.tm = transaction.TransactionManager(explicit=True)
    config = testing.setUp(request=request)
    try:
        config.include("pyramid_sendmail.testing")
        config.commit()
        mailer = get_mailer(request)
        assert mailer.transaction_manager is request.tm
        request.tm.begin()
        mailer.send(welcome())
        request.tm.abort()
        assert get_testing_mailer(config.registry).delivered == []
    finally:
        testing.tearDown()


def test_mailer_without_the_include_says_what_to_do():
    mailer = get_mailer(Registry("bare"))
    with pytest.raises(SendmailError, match=r"config.include\('pyramid_sendmail'\)"):
        mailer.send(welcome())


# --- send ------------------------------------------------------------------


def test_send_returns_the_message_id(request_, outbox):
    request_.tm.begin()
    message_id = request_.mailer.send(welcome())
    request_.tm.commit()
    [mail] = outbox.delivered
    assert mail.message["Message-ID"] == f"<{message_id}>"


def test_send_accepts_an_email_message(request_, outbox):
    message = EmailMessage()
    message["From"] = "ann@example.org"
    message["To"] = "bob@example.org"
    message["Bcc"] = "cy@example.org"
    message["Subject"] = "Plain stdlib"
    message.set_content("Hi")
    request_.tm.begin()
    request_.mailer.send(message)
    request_.tm.commit()
    [mail] = outbox.delivered
    assert mail.subject == "Plain stdlib"
    assert mail.recipients == ["bob@example.org", "cy@example.org"]
    assert "Bcc" not in mail.message
    assert message["Bcc"] == "cy@example.org"  # the caller's object is untouched


def test_send_rejects_a_bad_message_at_once(request_, outbox):
    request_.tm.begin()
    with pytest.raises(InvalidMessageError):
        request_.mailer.send(welcome(subject="Hi\r\nBcc: eve@example.org"))
    request_.tm.commit()
    assert outbox.outbox == []
    assert outbox.delivered == []


def test_send_without_a_transaction_raises_and_records_nothing(request_, outbox):
    with pytest.raises(TransactionStateError, match="send_immediately"):
        request_.mailer.send(welcome())
    assert outbox.outbox == []


def test_default_sender_fills_a_missing_sender():
    config = Configurator(settings={"mail.default_sender": "Shop <shop@example.org>"})
    config.include("pyramid_sendmail.testing")
    config.commit()
    with transaction.manager:
        get_mailer(config.registry).send(welcome(sender=None))
    [mail] = get_testing_mailer(config.registry).delivered
    assert mail.sender == "shop@example.org"
    assert mail.message["From"] == "Shop <shop@example.org>"


def test_redirect_to_sends_everything_to_one_address():
    config = Configurator(settings={"mail.redirect_to": "dev@example.org"})
    config.include("pyramid_sendmail.testing")
    config.commit()
    with transaction.manager:
        get_mailer(config.registry).send(welcome(cc=["cy@example.org"]))
    [mail] = get_testing_mailer(config.registry).delivered
    assert mail.recipients == ["dev@example.org"]
    assert mail.message["X-Original-Recipients"] == "bob@example.org, cy@example.org"


# --- send_immediately ------------------------------------------------------


def test_send_immediately_sends_even_when_the_transaction_aborts(request_, outbox):
    request_.tm.begin()
    request_.mailer.send_immediately(welcome())
    assert len(outbox.delivered) == 1
    request_.tm.abort()
    assert len(outbox.delivered) == 1


def test_send_immediately_needs_no_transaction(config, outbox):
    events: list[Any] = []
    config.add_subscriber(events.append, MailSent)
    config.commit()
    get_mailer(config.registry).send_immediately(welcome())
    assert len(outbox.delivered) == 1
    assert len(events) == 1


def test_send_immediately_raises_when_the_mailer_fails(request_, outbox):
    outbox.fail_with = MailDeliveryError("relay down", temporary=True)
    with pytest.raises(MailDeliveryError, match="relay down"):
        request_.mailer.send_immediately(welcome())
    assert outbox.delivered == []


# --- the queue, when none is configured ------------------------------------


def test_send_to_queue_without_queue_path_names_the_setting():
    config = Configurator(settings={"mail.mailer": "console"})
    config.include("pyramid_sendmail")
    mailer = get_mailer(config.registry)
    manager = transaction.TransactionManager(explicit=True)
    mailer = type(mailer)(config.registry, manager)
    manager.begin()
    with pytest.raises(SendmailError, match=r"mail\.queue_path"):
        mailer.send_to_queue(welcome())
    with pytest.raises(SendmailError, match=r"mail\.queue_path"):
        mailer.send_to_queue_immediately(welcome())
    manager.abort()


def test_under_testing_send_to_queue_is_recorded_and_delivered_on_commit(request_, outbox):
    request_.tm.begin()
    request_.mailer.send_to_queue(welcome())
    # pyramid_mailer's DummyMailer kept queued messages in .queue too.
    assert [m.subject for m in outbox.queue] == ["Welcome"]
    assert outbox.outbox == []
    assert outbox.delivered == []
    request_.tm.commit()
    assert [m.subject for m in outbox.delivered] == ["Welcome"]


def test_under_testing_send_to_queue_is_dropped_on_abort(request_, outbox):
    request_.tm.begin()
    request_.mailer.send_to_queue(welcome())
    request_.tm.abort()
    assert outbox.delivered == []


def test_under_testing_send_to_queue_immediately_delivers_at_once(request_, outbox):
    request_.mailer.send_to_queue_immediately(welcome())
    assert [m.subject for m in outbox.queue] == ["Welcome"]
    assert [m.subject for m in outbox.delivered] == ["Welcome"]


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_send_immediately_fail_silently_logs_and_returns_none(caplog):
    # A relay that is down, as pyramid_mailer's fail_silently=True was for.
    config = Configurator(
        settings={"mail.host": "127.0.0.1", "mail.port": str(closed_port()), "mail.timeout": "2"}
    )
    config.include("pyramid_sendmail")
    config.commit()
    mailer = get_mailer(config.registry)
    with caplog.at_level("WARNING", logger="pyramid_sendmail.api"):
        assert mailer.send_immediately(welcome(), fail_silently=True) is None
    [record] = [r for r in caplog.records if r.name == "pyramid_sendmail.api"]
    assert "fail_silently=True" in record.getMessage()
    with pytest.raises(MailDeliveryError):
        mailer.send_immediately(welcome(), fail_silently=False)


def test_send_immediately_fail_silently_still_rejects_a_bad_message(request_, outbox):
    with pytest.raises(InvalidMessageError):
        request_.mailer.send_immediately(welcome(recipients=[]), fail_silently=True)


def test_send_immediately_fail_silently_returns_the_id_when_sent(request_, outbox):
    message_id = request_.mailer.send_immediately(welcome(), fail_silently=True)
    assert outbox.delivered[0].message["Message-ID"] == f"<{message_id}>"


@pytest.mark.parametrize(
    ("method", "named"),
    [("send", "send_immediately()"), ("send_to_queue", "send_to_queue_immediately()")],
)
def test_sending_from_an_after_commit_hook_names_the_immediate_method(config, method, named):
    errors: list[Exception] = []
    mailer = get_mailer(config.registry)

    def hook(committed: bool) -> None:
        try:
            getattr(mailer, method)(welcome())
        except TransactionStateError as exc:
            errors.append(exc)

    with transaction.manager as txn:
        txn.addAfterCommitHook(hook)
    [error] = errors
    assert f"Use {named}" in str(error)
    assert error.method == method
