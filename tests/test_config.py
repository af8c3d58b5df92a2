"""``config.include('pyramid_sendmail')``: settings in, a working request.mailer out."""

from __future__ import annotations

import dataclasses
import email
import os
from collections.abc import Sequence
from typing import Any

import pytest
import transaction
import webtest
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import ITweens
from pyramid.request import Request, apply_request_extensions
from pyramid.response import Response
from zope.interface import implementer

from pyramid_sendmail import (
    DirectMailDelivery,
    FileMailer,
    Message,
    RequestMailer,
    SendResult,
    SMTPMailer,
)
from pyramid_sendmail.components import IMailComponents, build_components
from pyramid_sendmail.interfaces import IMailDelivery, IMailer
from pyramid_sendmail.mailers import OneShotSession
from pyramid_sendmail.settings import parse_settings
from pyramid_sendmail.testing import InMemoryMailer, get_testing_mailer


def welcome(to: str = "bob@example.org") -> Message:
    return Message(subject="Welcome", sender="ann@example.org", recipients=[to], body="Hi")


def configure(settings: dict[str, Any] | None = None, *includes: str) -> Configurator:
    config = Configurator(settings=settings or {})
    config.include("pyramid_tm")
    for name in includes or ("pyramid_sendmail",):
        config.include(name)
    config.commit()
    return config


def make_request(config: Configurator) -> Request:
    request = Request.blank("/")
    request.registry = config.registry
    apply_request_extensions(request)
    return request


def sending_app(config: Configurator) -> webtest.TestApp:
    def view(request):
        request.mailer.send(welcome())
        return Response("sent")

    config.add_route("send", "/send")
    config.add_view(view, route_name="send")
    return webtest.TestApp(config.make_wsgi_app())


@implementer(IMailer)
class SettingsMailer:
    """A mailer built from a dotted name in ``mail.mailer``."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.sent: list[tuple[str, tuple[str, ...], bytes]] = []

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> SendResult:
        self.sent.append((sender, tuple(recipients), message))
        return SendResult(accepted=tuple(recipients))

    def session(self) -> OneShotSession:
        return OneShotSession(self)


# --- what the include sets up ----------------------------------------------


def test_include_registers_smtp_mailer_from_settings():
    config = configure({"mail.host": "relay.example.org", "mail.port": "2525"})
    mailer = config.registry.getUtility(IMailer)
    assert isinstance(mailer, SMTPMailer)
    assert (mailer.host, mailer.port) == ("relay.example.org", 2525)
    delivery = config.registry.getUtility(IMailDelivery)
    assert isinstance(delivery, DirectMailDelivery)
    assert delivery.mailer is mailer


def test_request_mailer_is_reified_and_bound_to_request_tm():
    config = configure({"tm.manager_hook": "pyramid_tm.explicit_manager"})
    request = make_request(config)
    mailer = request.mailer
    assert isinstance(mailer, RequestMailer)
    assert request.mailer is mailer
    assert mailer.transaction_manager is request.tm
    assert make_request(config).mailer is not mailer


def test_request_mailer_delivers_when_request_tm_commits():
    config = configure(
        {"tm.manager_hook": "pyramid_tm.explicit_manager"}, "pyramid_sendmail.testing"
    )
    request = make_request(config)
    request.tm.begin()
    request.mailer.send(welcome())
    outbox = get_testing_mailer(request)
    assert outbox.delivered == []
    request.tm.commit()
    assert [mail.subject for mail in outbox.delivered] == ["Welcome"]


# --- bad settings fail at start-up -----------------------------------------


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"mail.port": "abc"}, ["mail.port", "'abc'"]),
        ({"mail.tls": "maybe"}, ["mail.tls", "'maybe'"]),
        ({"mail.hots": "relay"}, ["mail.hots", "mail.host"]),
        ({"mail.mailer": "no_such_module.Mailer"}, ["mail.mailer", "no_such_module"]),
        ({"mail.mailer": "pyramid_sendmail:NoSuchMailer"}, ["mail.mailer", "NoSuchMailer"]),
        ({"mail.default_sender": "not an address"}, ["mail.default_sender"]),
    ],
    ids=["port", "tls", "misspelt-key", "missing-module", "missing-name", "sender"],
)
def test_bad_settings_raise_configuration_error_at_include(settings, words):
    config = Configurator(settings=settings)
    with pytest.raises(ConfigurationError) as info:
        config.include("pyramid_sendmail")
    for word in words:
        assert word in str(info.value)


# --- mailers chosen by settings --------------------------------------------


def test_file_mailer_writes_committed_mail_to_file_path(tmp_path):
    folder = tmp_path / "outgoing"
    config = configure({"mail.mailer": "file", "mail.file_path": str(folder)})
    assert isinstance(config.registry.getUtility(IMailer), FileMailer)
    app = sending_app(config)
    app.get("/send")
    [path] = folder.glob("*.eml")
    message = email.message_from_bytes(path.read_bytes())
    assert message["Subject"] == "Welcome"
    assert message["To"] == "bob@example.org"


def test_file_mailer_writes_nothing_for_an_aborted_request(tmp_path):
    folder = tmp_path / "outgoing"
    config = configure({"mail.mailer": "file", "mail.file_path": str(folder)})

    def view(request):
        request.mailer.send(welcome())
        request.tm.doom()
        return Response("doomed")

    config.add_route("doom", "/doom")
    config.add_view(view, route_name="doom")
    webtest.TestApp(config.make_wsgi_app()).get("/doom")
    assert not folder.exists() or list(folder.iterdir()) == []


def test_mailer_dotted_name_is_called_with_the_settings():
    settings = {"mail.mailer": f"{__name__}:SettingsMailer", "myapp.flag": "on"}
    config = configure(settings)
    mailer = config.registry.getUtility(IMailer)
    assert isinstance(mailer, SettingsMailer)
    assert mailer.settings["myapp.flag"] == "on"
    sending_app(config).get("/send")
    [(sender, recipients, _data)] = mailer.sent
    assert (sender, recipients) == ("ann@example.org", ("bob@example.org",))


# --- including more than once, and the testing include ---------------------


def test_including_twice_is_harmless():
    config = Configurator(settings={"mail.mailer": f"{__name__}:SettingsMailer"})
    config.include("pyramid_tm")
    config.include("pyramid_sendmail")
    config.include("pyramid_sendmail")
    config.commit()
    tweens = config.registry.getUtility(ITweens)
    names = [name for name, _factory in tweens.implicit()]
    assert names.count("pyramid_sendmail.events.event_tween_factory") == 1
    sending_app(config).get("/send")
    assert len(config.registry.getUtility(IMailer).sent) == 1


def test_event_tween_sits_over_pyramid_tm():
    config = configure()
    names = [name for name, _factory in config.registry.getUtility(ITweens).implicit()]
    assert names.index("pyramid_sendmail.events.event_tween_factory") < names.index(
        "pyramid_tm.tm_tween_factory"
    )


@pytest.mark.parametrize(
    "includes",
    [
        ("pyramid_sendmail.testing",),
        ("pyramid_sendmail.testing", "pyramid_sendmail"),
        ("pyramid_sendmail", "pyramid_sendmail.testing"),
    ],
    ids=["testing-alone", "testing-first", "testing-last"],
)
def test_testing_include_gives_in_memory_mailer_in_any_order(includes):
    # A relay nobody listens on: nothing may try to reach it.
    settings = {"mail.host": "127.0.0.1", "mail.port": "9"}
    config = configure(settings, *includes)
    outbox = get_testing_mailer(config.registry)
    assert isinstance(outbox, InMemoryMailer)
    assert config.registry.getUtility(IMailer) is outbox
    assert config.registry.getUtility(IMailDelivery).mailer is outbox
    app = sending_app(config)
    app.get("/send")
    assert [mail.subject for mail in outbox.delivered] == ["Welcome"]
    assert len(outbox.outbox) == 1


def test_testing_include_replaces_queued_delivery_with_direct(tmp_path):
    settings = {"mail.queue_path": str(tmp_path / "queue")}
    config = configure(settings, "pyramid_sendmail", "pyramid_sendmail.testing")
    sending_app(config).get("/send")
    assert len(get_testing_mailer(config.registry).delivered) == 1


def test_get_mailer_of_registry_sends_with_thread_transaction():
    from pyramid_sendmail import get_mailer

    config = configure({}, "pyramid_sendmail.testing")
    with transaction.manager:
        get_mailer(config.registry).send(welcome())
    assert len(get_testing_mailer(config.registry).delivered) == 1


# -- the queue's folder: the include names the setting -------------------------


def test_queue_path_that_is_a_file_is_a_configuration_error(tmp_path):
    path = tmp_path / "not-a-folder"
    path.write_text("")

    with pytest.raises(ConfigurationError, match=r"mail\.queue_path"):
        configure({"mail.queue_path": str(path)})


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_queue_path_that_cannot_be_written_is_a_configuration_error(tmp_path):
    path = tmp_path / "readonly"
    configure({"mail.queue_path": str(path)})
    os.chmod(path / "new", 0o500)
    try:
        with pytest.raises(ConfigurationError, match="not writable"):
            configure({"mail.queue_path": str(path)})
    finally:
        os.chmod(path / "new", 0o700)


def test_queue_path_that_cannot_be_created_is_a_configuration_error(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")

    with pytest.raises(ConfigurationError, match=r"mail\.queue_path"):
        configure({"mail.queue_path": str(blocker / "queue")})


# -- the composition root: built once, never changed in place -------------------


def test_testing_include_after_the_main_one_replaces_the_parts_without_changing_them():
    config = Configurator(settings={"mail.host": "127.0.0.1", "mail.port": "9"})
    config.include("pyramid_sendmail")
    before = config.registry.getUtility(IMailComponents)
    config.include("pyramid_sendmail.testing")
    after = config.registry.getUtility(IMailComponents)

    assert after is not before
    assert isinstance(before.mailer, SMTPMailer)
    assert before.observers == ()
    assert after.mailer is get_testing_mailer(config.registry)
    with pytest.raises(dataclasses.FrozenInstanceError):
        after.mailer = before.mailer  # type: ignore[misc]


def test_processor_thread_without_a_queue_fails_at_include():
    config = Configurator(settings={"mail.queue_processor": "thread"})
    with pytest.raises(ConfigurationError) as info:
        config.include("pyramid_sendmail")
    assert "mail.queue_processor" in str(info.value)
    assert "mail.queue_path" in str(info.value)


def test_psendmail_and_the_include_build_the_same_parts(tmp_path):
    settings = {"mail.queue_path": str(tmp_path / "queue"), "mail.queue_workers": "2"}
    components = build_components(parse_settings(settings))
    assert isinstance(components.mailer, SMTPMailer)
    assert components.delivery is components.queued_delivery
    assert components.processor is not None
    assert components.processor.workers == 2
    assert components.processor.queue is components.queued_delivery.queue


# --- the front door: files, ignored settings, the start-up line ------------


@pytest.mark.parametrize("key", ["cafile", "keyfile", "certfile"])
def test_a_missing_tls_file_fails_at_start_up_naming_key_and_path(tmp_path, key):
    existing = tmp_path / "client.pem"
    existing.write_text("")
    missing = str(tmp_path / "nope.pem")
    settings = {"mail.certfile": str(existing), f"mail.{key}": missing}
    with pytest.raises(ConfigurationError) as info:
        configure(settings)
    assert f"mail.{key}" in str(info.value) and missing in str(info.value)


def test_a_missing_sendmail_app_fails_at_start_up_naming_key_and_path(tmp_path):
    missing = str(tmp_path / "sbin" / "sendmail")
    with pytest.raises(ConfigurationError, match=r"mail\.sendmail_app") as info:
        configure({"mail.mailer": "sendmail", "mail.sendmail_app": missing})
    assert missing in str(info.value)


def test_an_existing_sendmail_app_is_accepted(tmp_path):
    app = tmp_path / "sendmail"
    app.write_text("#!/bin/sh\nexit 0\n")
    app.chmod(0o755)
    configure({"mail.mailer": "sendmail", "mail.sendmail_app": str(app)})


def test_the_file_mailer_warns_about_the_smtp_settings_it_ignores(tmp_path, caplog):
    settings = {
        "mail.mailer": "file",
        "mail.file_path": str(tmp_path),
        "mail.host": "smtp.example.org",
        "mail.username": "ann",
        "mail.password": "s3cret",
    }
    with caplog.at_level("WARNING", logger="pyramid_sendmail.components"):
        configure(settings)
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "mail.mailer = file ignores" in warning
    assert "mail.host" in warning and "mail.username" in warning
    assert "s3cret" not in warning


def test_start_up_logs_one_line_with_delivery_mailer_and_queue(tmp_path, caplog):
    settings = {
        "mail.host": "smtp.example.org",
        "mail.port": "587",
        "mail.tls": "true",
        "mail.username": "ann",
        "mail.password": "s3cret",
        "mail.queue_path": str(tmp_path / "queue"),
    }
    with caplog.at_level("INFO", logger="pyramid_sendmail.config"):
        configure(settings)
    [line] = [r.getMessage() for r in caplog.records if r.name == "pyramid_sendmail.config"]
    assert line == (
        "mail: queued delivery, mailer SMTPMailer smtp.example.org:587 (STARTTLS) as ann, "
        f"queue Maildir {tmp_path / 'queue'}"
    )
    assert "s3cret" not in caplog.text
