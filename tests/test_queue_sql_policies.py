"""Scheduled, expiring and prioritised mail on the SQL queue (SQLite and
PostgreSQL), delivered by the processor to the loopback SMTP server."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import sqlalchemy as sa
import transaction
from clock import Clock
from sqlalchemy.orm import Session
from zope.sqlalchemy import mark_changed, register

from pyramid_sendmail import Message, SMTPMailer
from pyramid_sendmail.cli import main
from pyramid_sendmail.events import MailFailed
from pyramid_sendmail.message import Envelope, prepare
from pyramid_sendmail.processor import QueueProcessor
from pyramid_sendmail.queue.entry import Schedule, ScheduledEnvelope
from pyramid_sendmail.queue.sql import SQLQueue
from pyramid_sendmail.queue.sql_schema import create


def envelope(subject: str, to: Sequence[str] = ("bob@example.org",), **kw: Any) -> Envelope:
    mail = prepare(
        Message(subject=subject, sender="ann@example.org", recipients=list(to), body="Hi\n")
    )
    return ScheduledEnvelope(mail, Schedule(**kw)) if kw else mail


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(db_url)
    with engine.begin() as connection:
        create(connection)
    yield engine
    engine.dispose()


@pytest.fixture
def sql_queue(engine: sa.Engine, clock: Clock) -> Iterator[SQLQueue]:
    queue = SQLQueue(engine.url, clock=clock)
    yield queue
    queue.close()


def write(engine: sa.Engine, queue: SQLQueue, envelopes: Sequence[Envelope]) -> None:
    """Write *envelopes* as the application does: its session, its transaction."""
    manager = transaction.TransactionManager(explicit=True)
    session = Session(engine)
    register(session, transaction_manager=manager)
    with manager:
        queue.write(session, envelopes)
        mark_changed(session, transaction_manager=manager)


def processor(queue: SQLQueue, server: Any, clock: Clock, events: list[Any]) -> QueueProcessor:
    return QueueProcessor(
        queue,
        SMTPMailer(server.host, server.port, timeout=5.0),
        max_age=5 * 24 * 3600.0,
        notify=events.append,
        clock=clock,
        workers=1,
        batch_size=10,
    )


def subjects(server: Any) -> list[str]:
    return [m.data.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode() for m in server.messages]


def test_a_high_priority_message_is_claimed_before_a_backlog_of_low_ones(
    engine: sa.Engine, sql_queue: SQLQueue, smtp_server: Any, clock: Clock
) -> None:
    write(engine, sql_queue, [envelope(f"newsletter {i}", priority="low") for i in range(1000)])
    write(engine, sql_queue, [envelope("normal")])
    clock.advance(1)
    write(engine, sql_queue, [envelope("password reset", priority="high")])

    events: list[Any] = []
    sender = processor(sql_queue, smtp_server, clock, events)

    def stop_after_five(event: Any) -> None:
        events.append(event)
        if len(events) == 5:
            sender.stop()

    sender.notify = stop_after_five
    sender.process_once()
    assert subjects(smtp_server)[:2] == ["password reset", "normal"]
    assert len(smtp_server.messages) < 120


def test_send_at_mail_waits_until_due_on_the_queue_clock(
    engine: sa.Engine, sql_queue: SQLQueue, smtp_server: Any, clock: Clock
) -> None:
    sql_queue.add(envelope("later", send_at=clock.now + 3600))
    write(engine, sql_queue, [envelope("later too", send_at=clock.now + 7200)])
    sender = processor(sql_queue, smtp_server, clock, [])
    assert sender.process_once() == 0
    clock.advance(3599)
    assert sender.process_once() == 0
    assert smtp_server.messages == []
    clock.advance(1)
    assert sender.process_once() == 1
    assert subjects(smtp_server) == ["later"]
    clock.advance(3600)
    assert sender.process_once() == 1
    assert subjects(smtp_server) == ["later", "later too"]


def test_expired_mail_fails_with_the_processors_reason_unsent(
    engine: sa.Engine, sql_queue: SQLQueue, smtp_server: Any, clock: Clock
) -> None:
    write(engine, sql_queue, [envelope("code", expires_at=clock.now + 600)])
    clock.advance(601)
    events: list[Any] = []
    processor(sql_queue, smtp_server, clock, events).process_once()
    assert smtp_server.messages == []
    [failed] = events
    assert isinstance(failed, MailFailed)
    [dead] = sql_queue.list("failed")
    assert (dead.error or "").startswith("expired at ")
    assert "not sent late" in (dead.error or "")


def test_schedule_status_counts_scheduled_mail_and_priorities(
    engine: sa.Engine, sql_queue: SQLQueue, clock: Clock
) -> None:
    write(
        engine,
        sql_queue,
        [
            envelope("reset", priority="high"),
            envelope("news", priority="low"),
            envelope("hello"),
            envelope("later", send_at=clock.now + 60),
        ],
    )
    report = sql_queue.schedule_status()
    assert report["scheduled"] == 1
    assert report["next_due"] == pytest.approx(60.0)
    assert (report["high"], report["normal"], report["low"]) == (1, 2, 1)


def test_psendmail_status_shows_scheduled_sql_mail(engine: sa.Engine, tmp_path: Any) -> None:
    # The database's own clock this time, as psendmail uses it.
    queue = SQLQueue(engine)
    later = time.time() + 3600 * 24
    write(engine, queue, [envelope("reset", priority="high"), envelope("later", send_at=later)])
    url = engine.url.render_as_string(hide_password=False)
    ini = tmp_path / "app.ini"
    ini.write_text(f"[app:main]\nsqlalchemy.url = {url}\nmail.queue = sql\n")
    out = io.StringIO()
    assert main([str(ini), "--no-app", "status"], out=out) == 0
    assert "scheduled         1" in out.getvalue()
    assert "waiting by priority: 1 high, 1 normal, 0 low" in out.getvalue()
