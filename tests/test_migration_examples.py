"""The migration twins: one application on pyramid_mailer, the same on pyramid_sendmail.

``examples/pyramid_mailer_app`` is written for pyramid_mailer and tested the
way pyramid_mailer applications were (its ``DummyMailer``);
``examples/converted_app`` is the same application after following
``docs/migrating.rst``, tested with ``mail_outbox`` and against a real SMTP
server. pyramid_mailer is no dependency of this package: its half is skipped
where it is not installed, and ``.ci/run`` runs this module in a virtualenv
of its own that has it, where ``PYRAMID_SENDMAIL_REQUIRE_PYRAMID_MAILER=1``
makes a missing pyramid_mailer a failure instead of a skip.
"""

from __future__ import annotations

import configparser
import importlib
import logging
import os
import re
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import transaction
from webtest import TestApp

from pyramid_sendmail.interfaces import IMailer, IQueuedMailDelivery
from pyramid_sendmail.processor import QueueProcessor
from pyramid_sendmail.settings import parse_settings
from pyramid_sendmail.testing import InMemoryMailer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CONTACT = {"subject": "Hello", "text": "Is 3 < 4?", "email": "ann@example.org"}
NEWSLETTER = [("to", "bob@example.org"), ("to", "carol@example.org")]


def load(folder: str, package: str) -> ModuleType:
    path = str(EXAMPLES / folder)
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module(package)


def ini_mail_settings(folder: str, here: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(defaults={"here": str(here)})
    parser.read(EXAMPLES / folder / "development.ini")
    return {k: v for k, v in parser["app:main"].items() if k.startswith("mail.")}


# -- before: pyramid_mailer -------------------------------------------------


@pytest.fixture
def old_app(tmp_path: Path) -> Any:
    with warnings.catch_warnings():
        # pyramid_mailer imports the cgi module, deprecated since Python 3.11.
        warnings.simplefilter("ignore", DeprecationWarning)
        if os.environ.get("PYRAMID_SENDMAIL_REQUIRE_PYRAMID_MAILER"):
            importlib.import_module("pyramid_mailer")
        else:
            pytest.importorskip("pyramid_mailer")
        return load("pyramid_mailer_app", "mailerapp")


@pytest.fixture
def dummy_mailer(old_app: Any) -> Any:
    from pyramid_mailer.mailer import DummyMailer

    return DummyMailer()


def old_testapp(old_app: Any, tmp_path: Path, mailer: Any = None, **settings: str) -> TestApp:
    settings = {**ini_mail_settings("pyramid_mailer_app", tmp_path), **settings}
    wsgi_app = old_app.main({}, **settings)
    if mailer is not None:
        from pyramid_mailer.interfaces import IMailer as IPyramidMailer

        # What pyramid_mailer applications did in their tests.
        wsgi_app.registry.registerUtility(mailer, IPyramidMailer)
    return TestApp(wsgi_app)


def test_old_contact_sends_the_form_to_the_team(old_app, dummy_mailer, tmp_path):
    old_testapp(old_app, tmp_path, dummy_mailer).post("/contact", CONTACT)

    [message] = dummy_mailer.outbox
    assert message.subject == "Contact: Hello"
    assert message.recipients == ["team@example.com"]
    assert message.extra_headers == {"Reply-To": "ann@example.org"}
    assert message.html == "<p>Is 3 &lt; 4?</p>"
    assert [a.filename for a in message.attachments] == ["form.txt"]


def test_old_newsletter_queues_one_message_per_subscriber(old_app, dummy_mailer, tmp_path):
    response = old_testapp(old_app, tmp_path, dummy_mailer).post("/newsletter", NEWSLETTER)

    assert response.text == "2 message(s) queued"
    assert [m.recipients for m in dummy_mailer.queue] == [
        ["bob@example.org"],
        ["carol@example.org"],
    ]
    assert dummy_mailer.outbox == []


def test_old_ping_sends_at_once(old_app, dummy_mailer, tmp_path):
    assert old_testapp(old_app, tmp_path, dummy_mailer).get("/ping").text == "pong"
    assert [m.subject for m in dummy_mailer.outbox] == ["ping"]


def test_old_debug_include_writes_eml_files_as_the_guide_says(old_app, tmp_path, monkeypatch):
    from pyramid.config import Configurator
    from pyramid_mailer import get_mailer as old_get_mailer
    from pyramid_mailer.message import Message as OldMessage

    monkeypatch.chdir(tmp_path)  # pyramid_mailer.debug writes into ./mail
    with Configurator() as config:
        config.include("pyramid_mailer.debug")
    mailer = old_get_mailer(config.registry)
    mailer.send(OldMessage("Hi", ["ann@example.org"], "Hello Ann", bcc=["audit@example.org"]))
    transaction.manager.abort()  # written at send(), whatever the transaction does

    [path] = (tmp_path / "mail").iterdir()
    assert re.fullmatch(r"\d{14}_[0-9a-z]{4}\.eml", path.name)
    data = path.read_bytes()
    assert b"\r\n" not in data
    assert b"Content-Transfer-Encoding: quoted-printable\n" in data
    assert data.endswith(b"\n\nHello=20Ann")
    assert b"From: nobody\n" in data
    for absent in (b"Date:", b"Message-ID:", b"audit@example.org", b"X-Envelope"):
        assert absent not in data


# -- after: pyramid_sendmail ------------------------------------------------


@pytest.fixture
def new_app() -> Any:
    return load("converted_app", "convertedapp")


def new_testapp(new_app: Any, tmp_path: Path, **settings: str) -> TestApp:
    settings = {**ini_mail_settings("converted_app", tmp_path), **settings}
    return TestApp(new_app.main({}, **settings))


TESTING = {"pyramid.includes": "pyramid_sendmail.testing"}


def test_old_get_mailer_needs_a_request_or_registry(old_app):
    from pyramid_mailer import get_mailer as old_get_mailer

    with pytest.raises(TypeError):
        old_get_mailer()


def test_new_get_mailer_needs_a_request_or_registry_as_the_guide_says(new_app):
    from pyramid_sendmail import get_mailer

    with pytest.raises(TypeError, match="request_or_registry"):
        get_mailer()  # type: ignore[call-arg]


def test_new_contact_sends_the_form_to_the_team(new_app, mail_outbox, tmp_path):
    new_testapp(new_app, tmp_path, **TESTING).post("/contact", CONTACT)

    # The same assertions as with DummyMailer: outbox holds what send() got.
    [message] = mail_outbox.outbox
    assert message.subject == "Contact: Hello"
    assert message.recipients == ["team@example.com"]
    assert message.extra_headers == {"Reply-To": "ann@example.org"}
    assert message.html == "<p>Is 3 &lt; 4?</p>"
    assert [a.filename for a in message.attachments] == ["form.txt"]
    # And what the committed transaction delivered, as a recipient sees it.
    [mail] = mail_outbox.delivered
    assert mail.message["Reply-To"] == "ann@example.org"
    assert [a.get_filename() for a in mail.message.iter_attachments()] == ["form.txt"]


def test_new_newsletter_queues_one_message_per_subscriber(new_app, mail_outbox, tmp_path):
    app = new_testapp(new_app, tmp_path, **TESTING)
    response = app.post("/newsletter", NEWSLETTER)

    assert response.text == "2 message(s) queued"
    # As with DummyMailer, queued messages are in `queue`; under the testing
    # include no queue file is written, and the commit delivers them.
    assert [m.recipients for m in mail_outbox.queue] == [
        ["bob@example.org"],
        ["carol@example.org"],
    ]
    assert [m.recipients for m in mail_outbox.delivered] == [
        ["bob@example.org"],
        ["carol@example.org"],
    ]


def test_new_ping_sends_at_once(new_app, mail_outbox, tmp_path):
    assert new_testapp(new_app, tmp_path, **TESTING).get("/ping").text == "pong"
    assert [m.subject for m in mail_outbox.delivered] == ["ping"]


def test_new_ping_logs_a_relay_that_is_down_instead_of_failing(
    new_app, mail_outbox, tmp_path, caplog
):
    from pyramid_sendmail import MailDeliveryError

    mail_outbox.fail_with = MailDeliveryError("connection refused", temporary=True)
    with caplog.at_level(logging.WARNING, logger="pyramid_sendmail"):
        assert new_testapp(new_app, tmp_path, **TESTING).get("/ping").text == "pong"
    # fail_silently=True, as written for pyramid_mailer, still leaves a trace.
    assert "not sent (fail_silently=True): temporary failure: connection refused" in caplog.text


def test_new_app_delivers_through_a_real_server(new_app, smtp_server, tmp_path):
    app = new_testapp(new_app, tmp_path, **{"mail.port": str(smtp_server.port)})
    app.post("/contact", CONTACT)
    app.post("/newsletter", NEWSLETTER)

    # send() delivered directly (mail.delivery = direct, as pyramid_mailer did)...
    assert [m.recipients for m in smtp_server.messages] == [("team@example.com",)]
    # ...send_to_queue() queued, and a processor sends the rest.
    registry = app.app.registry
    queue = registry.getUtility(IQueuedMailDelivery).queue
    QueueProcessor(queue, registry.getUtility(IMailer), workers=1).process_once()
    assert sorted(m.recipients for m in smtp_server.messages[1:]) == [
        ("bob@example.org",),
        ("carol@example.org",),
    ]
    transaction.manager.abort()


def test_converted_ini_keeps_the_pyramid_mailer_keys(tmp_path):
    old = ini_mail_settings("pyramid_mailer_app", tmp_path)
    new = ini_mail_settings("converted_app", tmp_path)
    assert set(new) - set(old) == {"mail.delivery"}
    assert {k: new[k] for k in old} == old
    values = parse_settings(new)
    assert (values.host, values.port, values.delivery) == ("localhost", 25, "direct")


def test_testing_include_gives_an_in_memory_mailer(new_app, tmp_path):
    app = new_testapp(new_app, tmp_path, **TESTING)
    assert isinstance(app.app.registry.getUtility(IMailer), InMemoryMailer)



def test_new_file_mailer_writes_eml_files_as_the_guide_says(new_app, tmp_path):
    folder = tmp_path / "mail"
    settings = {"mail.mailer": "file", "mail.file_path": str(folder)}
    app = new_testapp(new_app, tmp_path, **settings)
    app.post("/contact", CONTACT)

    [path] = folder.iterdir()
    assert re.fullmatch(r"\d{8}-\d{6}-\d+-\d+\.eml", path.name)
    data = path.read_bytes()
    assert data.startswith(
        b"X-Envelope-From: <noreply@example.com>\r\nX-Envelope-To: <team@example.com>\r\n"
    )
    headers = data.split(b"\r\n\r\n")[0]
    assert b"\r\nDate: " in headers and b"\r\nMessage-ID: <" in headers
    # ASCII text is 7bit, readable as it is.
    assert b"Content-Transfer-Encoding: 7bit\r\n\r\nIs 3 < 4?\r\n" in data
    assert b"\n" not in data.replace(b"\r\n", b"")

    transaction.manager.abort()
