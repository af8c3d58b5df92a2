"""The public API as applications call it, checked by ``mypy --strict``.

Never run, nor collected by pytest (its name does not start with
``test_``): mypy reads it with the package (``[tool.mypy] files`` in
pyproject.toml, run by ``.ci/run``), so a signature that stops accepting
what the docs show, or returns something vaguer, fails CI. Each
``assert_type`` pins what a caller gets back.
"""

from __future__ import annotations

import time
from email.message import EmailMessage
from typing import Any

import transaction
from typing_extensions import assert_type

import pyramid_sendmail
from pyramid_sendmail import (
    Attachment,
    Envelope,
    FileMailer,
    MailDeferred,
    MailDeliveryError,
    MaildirQueue,
    MailFailed,
    MailSent,
    Message,
    QueueEntry,
    QueueProcessor,
    QueueProcessorThread,
    RequestMailer,
    SendmailError,
    SendResult,
    SMTPMailer,
    SMTPReply,
    get_mailer,
)
from pyramid_sendmail.settings import MailSettings, parse_settings
from pyramid_sendmail.testing import InMemoryMailer, get_testing_mailer


def a_view(request: Any) -> str:
    """What docs/index.rst's view does, through the typed entry point."""
    mailer = get_mailer(request)
    assert_type(mailer, RequestMailer)
    message = Message(
        subject="Welcome!",
        recipients=["ann@example.org", "Bob <bob@example.org>"],
        body="Thanks for signing up.",
        html="<p>Thanks for signing up.</p>",
        cc=["cc@example.org"],
        bcc=["audit@example.org"],
        reply_to="help@example.org",
        extra_headers={"X-Campaign": "welcome"},
        attachments=[Attachment("terms.txt", "text/plain", "Be nice.")],
    )
    message_id = mailer.send(message)
    assert_type(message_id, str)
    assert_type(mailer.send_to_queue(message), str)
    # None only when fail_silently swallowed a delivery error.
    assert_type(mailer.send_immediately(message.to_message(), fail_silently=True), str | None)
    return message_id


def a_script(registry: Any) -> None:
    """A script outside requests: its own transaction manager."""
    manager = transaction.TransactionManager(explicit=True)
    mailer = get_mailer(registry, transaction_manager=manager)
    email = EmailMessage()
    email["To"] = "ann@example.org"
    email["Subject"] = "Report"
    email.set_content("Attached.")
    with manager:
        mailer.send(email)


def a_subscriber(event: MailSent | MailFailed | MailDeferred) -> None:
    assert_type(event.message_id, str)
    assert_type(event.recipients, tuple[str, ...])
    assert_type(event.message, EmailMessage)
    if isinstance(event, MailDeferred):
        assert_type(event.retry_at, float)
    if isinstance(event, (MailFailed, MailDeferred)):
        assert_type(event.error, BaseException)


def mailers_in_code() -> None:
    smtp = SMTPMailer("smtp.example.com", 587, "app", "secret", tls=True, timeout=30.0)
    try:
        result = smtp.send("app@example.com", ["ann@example.org"], b"Subject: hi\r\n\r\nhi\r\n")
    except MailDeliveryError as exc:
        assert_type(exc.temporary, bool)
        raise
    except SendmailError:
        raise
    assert_type(result, SendResult)
    assert_type(result.accepted, tuple[str, ...])
    for reply in result.refused.values():
        assert_type(reply, SMTPReply)
        assert_type(reply.code, int)
        assert_type(reply.temporary, bool)
    FileMailer("/tmp/mail")


def a_queue_processor(settings: dict[str, str]) -> None:
    parsed = parse_settings(settings)
    assert_type(parsed, MailSettings)
    queue = MaildirQueue("/var/spool/app-mail")
    processor = QueueProcessor(queue, SMTPMailer(), workers=2, clock=time.time)
    sent = processor.process_once()
    assert_type(sent, int)
    thread = QueueProcessorThread(processor, interval=30.0)
    thread.start()
    thread.stop()
    for entry in queue.list("failed"):
        assert_type(entry, QueueEntry)
        assert_type(entry.envelope, Envelope)
        assert_type(entry.attempts, int)


def an_apps_test(app_registry: Any) -> None:
    outbox = get_testing_mailer(app_registry)
    assert_type(outbox, InMemoryMailer)
    assert outbox.outbox[0].subject == "Welcome!"
    assert [m.recipients for m in outbox.delivered]


assert pyramid_sendmail.__all__
