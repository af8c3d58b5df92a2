"""Policies the queue processor enforces, against the loopback SMTP server:
expiry, send times, priorities, the delivery filter, redirects of a queue
written without them (through psendmail), and throttling replies."""

from __future__ import annotations

import io
import itertools
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from clock import Clock

from pyramid_sendmail import MailDropped, Message, SMTPMailer
from pyramid_sendmail.cli import main
from pyramid_sendmail.events import MailDeferred, MailFailed, MailSent
from pyramid_sendmail.message import Envelope, prepare
from pyramid_sendmail.processor import QueueProcessor
from pyramid_sendmail.queue import MaildirQueue
from pyramid_sendmail.queue.entry import Schedule, ScheduledEnvelope
from pyramid_sendmail.ratelimit import RateLimit, ThrottleRule
from pyramid_sendmail.settings import MailSettings

MAX_AGE = 5 * 24 * 3600.0
THROTTLE = MailSettings().throttle_pattern


def envelope(
    subject: str = "Hello", to: Sequence[str] = ("bob@example.org",), **kw: Any
) -> Envelope:
    mail = prepare(
        Message(subject=subject, sender="ann@example.org", recipients=list(to), body="Hi\n")
    )
    return ScheduledEnvelope(mail, Schedule(**kw)) if kw else mail


@pytest.fixture
def events() -> list[Any]:
    return []


@pytest.fixture
def processor_for(queue: MaildirQueue, clock: Clock, events: list[Any]) -> Any:
    def make(server: Any, **options: Any) -> QueueProcessor:
        options.setdefault("workers", 1)
        return QueueProcessor(
            queue,
            SMTPMailer(server.host, server.port, timeout=5.0),
            max_age=MAX_AGE,
            notify=events.append,
            clock=clock,
            **options,
        )

    return make


def subjects(server: Any) -> list[str]:
    return [m.data.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode() for m in server.messages]


def test_send_at_mail_waits_until_due(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any, clock: Clock
) -> None:
    queue.add(envelope("later", send_at=clock.now + 3600))
    processor = processor_for(smtp_server)
    assert processor.process_once() == 0
    assert smtp_server.messages == []
    clock.advance(3599)
    assert processor.process_once() == 0
    clock.advance(1)
    assert processor.process_once() == 1
    assert subjects(smtp_server) == ["later"]


def test_expired_mail_fails_with_that_reason_and_is_not_sent(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any, clock: Clock, events: list[Any]
) -> None:
    queue.add(envelope("code", expires_at=clock.now + 600))
    clock.advance(601)
    processor_for(smtp_server).process_once()
    assert smtp_server.messages == []
    [failed] = events
    assert isinstance(failed, MailFailed)
    assert "expired" in str(failed.error)
    [entry] = queue.list("failed")
    assert "expired" in (entry.error or "")


def test_high_priority_passes_a_backlog_of_low_priority_mail(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any, clock: Clock
) -> None:
    for i in range(1000):
        queue.add(envelope(f"newsletter {i}", priority="low"))
    queue.add(envelope("normal"))
    clock.advance(1)
    queue.add(envelope("password reset", priority="high"))
    names = queue.claimable()
    assert ",p=high" in names[0] and ",p=low" not in names[1]
    processor = processor_for(smtp_server, batch_size=10)
    # Delivering only the first handful: stop after five messages.
    sent: list[Any] = []

    def stop_after_five(event: Any) -> None:
        sent.append(event)
        if len(sent) == 5:
            processor.stop()

    processor.notify = stop_after_five
    processor.process_once()
    assert subjects(smtp_server)[:2] == ["password reset", "normal"]
    assert len(smtp_server.messages) < 20


def test_delivery_filter_drops_recipients_and_messages(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any, events: list[Any]
) -> None:
    suppressed = {"gone@example.org"}

    def suppress(mail: Envelope) -> Envelope | None:
        if "drop" in mail.data.decode():
            raise MailDropped("on the suppression list")
        return mail.with_recipients([r for r in mail.recipients if r not in suppressed])

    queue.add(envelope("partly", to=["bob@example.org", "gone@example.org"]))
    queue.add(envelope("drop me"))
    processor_for(smtp_server, delivery_filter=suppress).process_once()
    [received] = smtp_server.messages
    assert received.recipients == ("bob@example.org",)
    failed = [e for e in events if isinstance(e, MailFailed)]
    assert sorted(tuple(e.recipients) for e in failed) == [
        ("bob@example.org",),
        ("gone@example.org",),
    ]
    assert any("suppression list" in str(e.error) for e in failed)
    assert len(queue.list("failed")) == 2


def test_delivery_filter_exception_defers(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any, events: list[Any]
) -> None:
    def broken(mail: Envelope) -> Envelope:
        raise ConnectionError("suppression list database down")

    queue.add(envelope())
    processor_for(smtp_server, delivery_filter=broken).process_once()
    assert smtp_server.messages == []
    [deferred] = events
    assert isinstance(deferred, MailDeferred)
    [entry] = queue.list("new")
    assert entry.attempts == 1 and "database down" in (entry.error or "")


@pytest.mark.parametrize(
    ("where", "reply"),
    [
        ("mail", "454 4.7.0 Throttling failure: Maximum sending rate exceeded."),
        ("data_end", "451 4.7.1 Rate limit exceeded, slow down"),
        ("mail", "421 4.7.0 Too many connections, throttled"),
        # Postfix's smtpd_client_message_rate_limit: a 450 to MAIL FROM.
        ("mail", "450 4.7.1 Error: too much mail from 127.0.0.1"),
    ],
)
def test_throttling_reply_pauses_and_counts_no_attempt(
    queue: MaildirQueue,
    processor_for: Any,
    smtp_server: Any,
    clock: Clock,
    events: list[Any],
    where: str,
    reply: str,
) -> None:
    for i in range(3):
        queue.add(envelope(f"m{i}"))
    processor = processor_for(smtp_server, throttle=ThrottleRule(THROTTLE), throttle_pause=60)
    setattr(smtp_server.faults, where, reply)
    processor.process_once()
    assert smtp_server.messages == []
    # One reply pauses the pass; messages already in flight come back too.
    assert 1 <= processor.last_pass["throttled"] == len(events)
    assert processor.last_pass["deferred"] == 0
    entries = queue.list("new")
    assert len(entries) == 3
    assert all(e.attempts == 0 for e in entries)
    assert all(isinstance(e, MailDeferred) and e.retry_at == clock.now + 60 for e in events)

    setattr(smtp_server.faults, where, None)
    clock.advance(30)
    assert processor.process_once() == 0  # still paused
    clock.advance(30)
    processor.process_once()
    assert sorted(subjects(smtp_server)) == ["m0", "m1", "m2"]
    assert len([e for e in events if isinstance(e, MailSent)]) == 3
    assert queue.list("new") == []


@pytest.mark.parametrize(
    ("where", "reply"),
    [
        ("mail", "451 4.3.0 Try later"),
        # A 450 about a mailbox, not the client: only that message waits.
        ("rcpt", "450 4.2.1 The user is receiving mail at a rate that prevents more"),
        ("data_end", "450 4.2.1 The user is receiving mail at a rate that prevents more"),
    ],
)
def test_other_temporary_replies_are_not_throttling(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any, where: str, reply: str
) -> None:
    queue.add(envelope())
    if where == "rcpt":
        smtp_server.faults.rcpt = {envelope().recipients[0]: reply}
    else:
        setattr(smtp_server.faults, where, reply)
    processor = processor_for(smtp_server, throttle=ThrottleRule(THROTTLE))
    processor.process_once()
    assert processor.last_pass["throttled"] == 0
    [entry] = queue.list("new")
    assert entry.attempts == 1


def test_throttled_mail_past_max_age_fails(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any, clock: Clock, events: list[Any]
) -> None:
    queue.add(envelope())
    clock.advance(MAX_AGE + 1)
    smtp_server.faults.mail = "454 4.7.0 Throttling failure: Daily message quota exceeded."
    processor_for(smtp_server, throttle=ThrottleRule(THROTTLE)).process_once()
    [failed] = events
    assert isinstance(failed, MailFailed) and "gave up" in str(failed.error)


_UNUSED = """\
[app:main]
use = call:pyramid_sendmail.testing_app:main
"""


def test_psendmail_redirects_a_queue_written_without_a_redirect(
    tmp_path: Path, smtp_server: Any
) -> None:
    queue = MaildirQueue(str(tmp_path / "queue"))
    # A copy of production's queue: written with no redirect at all.
    queue.add(envelope("invoice", to=["customer@example.org", "staff@example.com"]))
    ini = tmp_path / "staging.ini"
    ini.write_text(
        "[app:main]\n"
        f"mail.host = 127.0.0.1\nmail.port = {smtp_server.port}\nmail.timeout = 5\n"
        "mail.queue_path = %(here)s/queue\n"
        "mail.redirect_to = qa@example.net\n"
        "mail.redirect_except = example.com\n"
        "mail.subject_prefix = [staging]\n"
    )
    out = io.StringIO()
    assert main([str(ini), "status"], out=out) == 0
    assert "mail.redirect_to is active: mail goes to qa@example.net" in out.getvalue()
    assert main([str(ini), "--no-app", "run", "--once"], out=io.StringIO()) == 0
    [received] = smtp_server.messages
    assert received.recipients == ("staff@example.com", "qa@example.net")
    assert b"Subject: [staging] invoice" in received.data
    assert b"X-Original-Recipients: customer@example.org" in received.data
    assert os.listdir(tmp_path / "queue" / "new") == []


@pytest.mark.parametrize("workers", [1, 2])
def test_rate_limit_spaces_every_message_and_sends_each_at_its_slot(
    queue: MaildirQueue, smtp_server: Any, workers: int
) -> None:
    for i in range(4):
        queue.add(envelope(f"m{i}"))
    processor = QueueProcessor(
        queue,
        SMTPMailer(smtp_server.host, smtp_server.port, timeout=5.0),
        rate_limit=RateLimit(4, 1.0),
        workers=workers,
    )
    started = time.monotonic()
    processor.process_once()

    times = [m.at for m in smtp_server.messages]
    assert len(times) == 4
    # The first goes at once; none follows another sooner than the rate
    # allows. (A message's data used to wait for the next one's slot, so
    # that the last two of a batch arrived together.)
    assert times[0] - started < 0.2
    assert min(b - a for a, b in itertools.pairwise(times)) > 0.15


@pytest.mark.slow
def test_rate_limit_holds_over_seconds_with_workers_in_two_processes(
    tmp_path: Path, smtp_server: Any
) -> None:
    queue = MaildirQueue(str(tmp_path / "queue"))
    for i in range(60):
        queue.add(envelope(f"m{i}"))
    ini = tmp_path / "app.ini"
    ini.write_text(
        "[app:main]\n"
        f"mail.host = 127.0.0.1\nmail.port = {smtp_server.port}\nmail.timeout = 5\n"
        "mail.queue_path = %(here)s/queue\n"
        "mail.rate_limit = 20/s\nmail.queue_workers = 3\nmail.batch_size = 5\n"
    )
    # A relay that takes a while, so the helpers of each process join in.
    smtp_server.faults.delay = 0.05
    code = main([str(ini), "--no-app", "run", "--once", "--processes", "2"], out=io.StringIO())
    assert code == 0
    times = sorted(m.at for m in smtp_server.messages)
    assert len(times) == 60
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert 18.0 <= rate <= 22.0, rate
    assert len({m.connection for m in smtp_server.messages}) >= 3


def test_psendmail_status_shows_scheduled_mail_and_priorities(tmp_path: Path) -> None:
    queue = MaildirQueue(str(tmp_path / "queue"))
    queue.add(envelope("later", send_at=queue.clock() + 7200))
    queue.add(envelope("reset", priority="high"))
    queue.add(envelope("news", priority="low"))
    ini = tmp_path / "app.ini"
    ini.write_text("[app:main]\nmail.queue_path = %(here)s/queue\n")
    out = io.StringIO()
    assert main([str(ini), "status"], out=out) == 0
    text = out.getvalue()
    assert "scheduled" in text and "next in" in text
    assert "waiting by priority: 1 high, 1 normal, 1 low" in text
    out = io.StringIO()
    assert main([str(ini), "status", "--json"], out=out) == 0
    assert '"scheduled": 1' in out.getvalue()
