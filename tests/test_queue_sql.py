"""The SQL queue on real databases: claims, leases, settling, dead letters."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import sqlalchemy as sa
import transaction
from clock import Clock
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from zope.interface.verify import verifyObject
from zope.sqlalchemy import register

from pyramid_sendmail import Message
from pyramid_sendmail.exceptions import UnknownEntry
from pyramid_sendmail.interfaces import IMailQueue
from pyramid_sendmail.message import Envelope, prepare
from pyramid_sendmail.queue import MaildirQueue
from pyramid_sendmail.queue.sql import QueueDatabaseError, SQLQueue
from pyramid_sendmail.queue.sql_schema import (
    SCHEMA_VERSION,
    check,
    create,
    ddl,
    is_ready,
    queue_table,
)


def envelope(subject: str = "Hello", to: Sequence[str] = ("bob@example.org",)) -> Envelope:
    return prepare(
        Message(subject=subject, sender="ann@example.org", recipients=list(to), body="Hi\n")
    )


def with_tables(url: str, **options: Any) -> sa.Engine:
    """An engine on *url*, the queue's tables created."""
    engine = sa.create_engine(url, **options)
    with engine.begin() as connection:
        create(connection)
    return engine


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = with_tables(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[sa.Engine]:
    """:func:`engine` on PostgreSQL only."""
    engine = with_tables(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_queue(pg_engine: sa.Engine) -> Iterator[SQLQueue]:
    queue = SQLQueue(pg_engine.url)
    yield queue
    queue.close()


@pytest.fixture
def sql_queue(engine: sa.Engine) -> Iterator[SQLQueue]:
    queue = SQLQueue(engine.url, claim_timeout=600.0)
    yield queue
    queue.close()


def write(engine: sa.Engine, queue: SQLQueue, *envelopes: Envelope) -> None:
    """Write *envelopes* as the application does: its session, its transaction."""
    manager = transaction.TransactionManager(explicit=True)
    session = Session(engine)
    register(session, transaction_manager=manager)
    with manager:
        queue.write(session, envelopes)
        from zope.sqlalchemy import mark_changed

        mark_changed(session, transaction_manager=manager)


def rows(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(sa.select(sa.func.count()).select_from(queue_table)).scalar_one()
        )


def claim_all(queue: SQLQueue) -> list:
    return [queue.claim(name) for name in queue.claimable()]


# -- schema --------------------------------------------------------------


def test_create_is_idempotent_and_check_then_finds_nothing(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    with engine.begin() as connection:
        assert "table mail_queue is missing" in check(connection)
        assert create(connection) is True
        assert create(connection) is False
        assert check(connection) == []
    engine.dispose()


def test_check_names_a_missing_column_and_a_wrong_version(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("DROP INDEX ix_mail_queue_message_id"))
        connection.execute(sa.text("UPDATE mail_queue_meta SET value = '99'"))
        problems = check(connection)
    assert "index ix_mail_queue_message_id is missing" in problems
    assert f"the schema version is 99, this pyramid_sendmail uses {SCHEMA_VERSION}" in problems


@pytest.mark.parametrize(
    "change",
    [
        "DROP TABLE mail_queue_failed",
        "ALTER TABLE mail_queue DROP COLUMN last_error",
        "UPDATE mail_queue_meta SET value = '99'",
        "DELETE FROM mail_queue_meta",
    ],
)
def test_the_quick_start_up_check_sees_a_missing_table_or_column_or_version(
    engine: sa.Engine, sql_queue: SQLQueue, change: str
) -> None:
    assert sql_queue.check(quick=True) == []
    with engine.begin() as connection:
        assert is_ready(connection)
        connection.execute(sa.text(change))
    with engine.connect() as connection:
        assert not is_ready(connection)
    # What the start-up error lists: the full check's findings.
    assert sql_queue.check(quick=True) == sql_queue.check() != []


@pytest.mark.parametrize("dialect", [postgresql.dialect(), sqlite.dialect()])
def test_ddl_creates_the_tables_the_index_and_the_version(dialect: sa.Dialect) -> None:
    text = ddl(dialect)
    for name in ("mail_queue ", "mail_queue_failed", "mail_queue_meta"):
        assert f"CREATE TABLE {name}" in text
    assert "CREATE INDEX ix_mail_queue_due_at_id ON mail_queue (due_at, id)" in text
    assert "'schema_version'" in text


def test_ddl_runs_on_the_database_it_was_made_for(pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    with engine.begin() as connection:
        for statement in ddl(connection.dialect).split(";\n"):
            if statement.strip():
                connection.exec_driver_sql(statement)
        assert check(connection) == []
    engine.dispose()


@pytest.mark.parametrize("quick", [False, True], ids=["reflecting", "quick"])
def test_check_says_when_the_database_cannot_be_reached(postgresql, quick: bool) -> None:
    queue = SQLQueue(postgresql.url("postgres").replace(str(postgresql.port), "1"))
    with pytest.raises(QueueDatabaseError, match="cannot connect to the mail queue's database"):
        queue.check(quick=quick)


# -- writing and claiming ----------------------------------------------------


def test_queue_provides_its_interface(sql_queue: SQLQueue) -> None:
    assert verifyObject(IMailQueue, sql_queue)


def test_written_rows_are_claimed_with_their_exact_envelope(
    engine: sa.Engine, sql_queue: SQLQueue
) -> None:
    sent = [envelope("one", ["bob@example.org", "ann@example.com"]), envelope("two")]
    write(engine, sql_queue, *sent)

    entries = claim_all(sql_queue)

    assert [e.envelope.data for e in entries] == [e.data for e in sent]
    assert [e.envelope.recipients for e in entries] == [e.recipients for e in sent]
    assert [e.envelope.message_id for e in entries] == [e.message_id for e in sent]
    assert all(e.attempts == 0 for e in entries)
    assert sql_queue.claimable() == []


def test_a_large_message_fits(engine: sa.Engine, sql_queue: SQLQueue) -> None:
    big = Envelope("ann@example.org", ["bob@example.org"], b"x" * (30 * 1024 * 1024), "big@x")
    write(engine, sql_queue, big)

    (entry,) = claim_all(sql_queue)

    assert entry.envelope.data == big.data


def test_the_applications_engine_events_see_the_queued_insert(
    engine: sa.Engine, sql_queue: SQLQueue
) -> None:
    # Query logging and tracing hook the application's engine: the mail's
    # INSERT, written through its session, must show up there.
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: seen.append(args[2]))

    write(engine, sql_queue, envelope("one"), envelope("two"))

    inserts = [sql for sql in seen if sql.startswith("INSERT INTO mail_queue")]
    assert len(inserts) == 1, seen
    assert len(claim_all(sql_queue)) == 2


def test_add_queues_at_once_in_a_transaction_of_its_own(sql_queue: SQLQueue) -> None:
    row_id = sql_queue.add(envelope())

    assert sql_queue.claimable() == [row_id]


def test_a_claim_is_limited_and_taken_in_queue_order(engine: sa.Engine) -> None:
    queue = SQLQueue(engine.url, claim_limit=3)
    write(engine, queue, *(envelope(str(i)) for i in range(5)))

    first, second = queue.claimable(), queue.claimable()

    assert len(first) == 3 and len(second) == 2
    assert [int(i) for i in first + second] == sorted(int(i) for i in first + second)
    queue.close()


def test_a_claim_takes_due_rows_in_the_order_they_became_due(
    engine: sa.Engine, sql_queue: SQLQueue
) -> None:
    write(engine, sql_queue, envelope("older"), envelope("newer"))
    older, newer = claim_all(sql_queue)
    # Deferred newer first: it is due again before the older row.
    sql_queue.defer(newer, 0.0, "451 try again")
    time.sleep(0.01)
    sql_queue.defer(older, 0.0, "451 try again")

    again = claim_all(sql_queue)

    assert [e.envelope.message_id for e in again] == [
        newer.envelope.message_id,
        older.envelope.message_id,
    ]


def test_a_row_claimed_by_one_processor_is_not_claimed_by_another(
    engine: sa.Engine, sql_queue: SQLQueue
) -> None:
    write(engine, sql_queue, envelope())
    other = SQLQueue(engine.url)

    assert len(sql_queue.claimable()) == 1
    assert other.claimable() == []
    other.close()


def test_concurrent_claims_never_share_a_row(engine: sa.Engine) -> None:
    seeder = SQLQueue(engine.url)
    write(engine, seeder, *(envelope(str(i)) for i in range(300)))
    claimed: list[list[str]] = []
    queues = [SQLQueue(engine.url, claim_limit=7) for _ in range(4)]

    def drain(queue: SQLQueue) -> None:
        mine = []
        while batch := queue.claimable():
            mine.extend(batch)
        claimed.append(mine)

    threads = [threading.Thread(target=drain, args=(q,)) for q in queues]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    every = [row for mine in claimed for row in mine]
    assert len(every) == 300 and len(set(every)) == 300
    for queue in (*queues, seeder):
        queue.close()


def test_claim_hands_each_entry_out_once(engine: sa.Engine, sql_queue: SQLQueue) -> None:
    write(engine, sql_queue, envelope())
    (name,) = sql_queue.claimable()

    assert sql_queue.claim(name) is not None
    assert sql_queue.claim(name) is None


# -- settling ----------------------------------------------------------------


def test_complete_deletes_the_row(engine: sa.Engine, sql_queue: SQLQueue) -> None:
    write(engine, sql_queue, envelope())
    (entry,) = claim_all(sql_queue)

    sql_queue.complete(entry)

    assert rows(engine) == 0


def complete_in_steps(queue: SQLQueue, entry) -> list[int]:
    """Run ``complete_steps`` as the processor's lanes do; return what it waited on."""
    import select

    waited = []
    steps = queue.complete_steps(entry)
    try:
        fd = next(steps)
        while True:
            waited.append(fd)
            readable = bool(select.select([fd], [], [], 5.0)[0])
            fd = steps.send(readable)
    except StopIteration:
        return waited


def test_complete_in_steps_deletes_the_row_waiting_on_the_database_socket(
    pg_engine: sa.Engine, pg_queue: SQLQueue
) -> None:
    assert pg_queue.settles_in_steps
    write(pg_engine, pg_queue, envelope("one"), envelope("two"))
    first, second = claim_all(pg_queue)

    waited = complete_in_steps(pg_queue, first)
    complete_in_steps(pg_queue, second)  # the statement prepared on the way is reused

    assert rows(pg_engine) == 0
    assert all(isinstance(fd, int) and fd >= 0 for fd in waited)


def test_complete_in_steps_prepares_nothing_when_psycopg_is_told_not_to(pg_url: str) -> None:
    # What a pooler that drops prepared statements needs (PgBouncer before 1.21).
    engine = with_tables(pg_url, connect_args={"prepare_threshold": None})
    queue = SQLQueue(engine)
    try:
        write(engine, queue, envelope("one"), envelope("two"))
        for entry in claim_all(queue):
            complete_in_steps(queue, entry)

        assert rows(engine) == 0
        (direct,) = queue._direct._idle
        cursor = direct.cursor()
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone()[0] == 0
    finally:
        queue.close()
        engine.dispose()


def test_sqlite_settles_blocking(tmp_path) -> None:
    queue = SQLQueue(f"sqlite:///{tmp_path}/mail.db")
    try:
        assert not queue.settles_in_steps
    finally:
        queue.close()


@pytest.mark.parametrize("how", ["blocking", "in steps"])
def test_complete_connects_anew_after_the_database_dropped_its_connection(
    pg_engine: sa.Engine, pg_queue: SQLQueue, how: str
) -> None:
    queue = pg_queue
    complete = queue.complete if how == "blocking" else functools.partial(complete_in_steps, queue)
    write(pg_engine, queue, envelope("one"), envelope("two"), envelope("three"))
    first, second, third = claim_all(queue)
    complete(first)
    # What a database restart or an idle-session timeout does.
    terminate_other_connections(pg_engine)

    with pytest.raises(sa.exc.DBAPIError):
        complete(second)
    complete(third)

    assert [e.envelope.message_id for e in queue.list("new")] == [second.envelope.message_id]


def terminate_other_connections(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        connection.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND datname = current_database()"
        )


def test_complete_in_steps_raises_the_databases_error(
    pg_engine: sa.Engine, pg_queue: SQLQueue
) -> None:
    write(pg_engine, pg_queue, envelope())
    (entry,) = claim_all(pg_queue)
    with pg_engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE mail_queue RENAME TO mail_queue_gone")

    with pytest.raises(sa.exc.ProgrammingError, match="mail_queue"):
        complete_in_steps(pg_queue, entry)


def test_defer_keeps_the_pending_recipients_until_due(engine: sa.Engine) -> None:
    clock = Clock()
    queue = SQLQueue(engine.url, clock=clock)
    write(engine, queue, envelope(to=["a@example.org", "b@example.org"]))
    (entry,) = claim_all(queue)
    entry.envelope = entry.envelope.with_recipients(["b@example.org"])

    queue.defer(entry, clock.now + 300, "451 try later")

    assert queue.claimable() == []
    assert queue.status()["deferred"]["count"] == 1
    clock.advance(301)
    (again,) = claim_all(queue)
    assert again.envelope.recipients == ("b@example.org",)
    assert (again.attempts, again.error) == (1, "451 try later")
    queue.close()


def test_fail_moves_the_row_to_the_dead_letters_and_retry_brings_it_back(
    engine: sa.Engine, sql_queue: SQLQueue
) -> None:
    write(engine, sql_queue, envelope())
    (entry,) = claim_all(sql_queue)

    failed_id = sql_queue.fail(entry, "550 no such user")

    assert rows(engine) == 0
    (dead,) = sql_queue.list("failed")
    assert (dead.name, dead.error, dead.envelope.data) == (
        failed_id,
        "550 no such user",
        entry.envelope.data,
    )
    assert sql_queue.status()["failed"]["count"] == 1
    (moved,) = sql_queue.retry([failed_id])
    assert sql_queue.list("failed") == []
    (back,) = claim_all(sql_queue)
    assert back.name == moved and back.envelope.data == entry.envelope.data


def test_fail_keeping_the_claim_leaves_the_row_for_its_other_recipients(
    engine: sa.Engine, sql_queue: SQLQueue
) -> None:
    write(engine, sql_queue, envelope(to=["a@example.org", "b@example.org"]))
    (entry,) = claim_all(sql_queue)
    from dataclasses import replace

    sql_queue.fail(
        replace(entry, envelope=entry.envelope.with_recipients(["a@example.org"])),
        "550 a",
        keep_claim=True,
    )
    entry.envelope = entry.envelope.with_recipients(["b@example.org"])
    sql_queue.defer(entry, 0.0, "451 b")

    (dead,) = sql_queue.list("failed")
    assert dead.envelope.recipients == ("a@example.org",)
    (queued,) = sql_queue.list("new")
    assert queued.envelope.recipients == ("b@example.org",)


def test_retry_of_an_unknown_id_moves_nothing(engine: sa.Engine, sql_queue: SQLQueue) -> None:
    write(engine, sql_queue, envelope())
    (entry,) = claim_all(sql_queue)
    failed_id = sql_queue.fail(entry, "550")

    with pytest.raises(UnknownEntry):
        sql_queue.retry([failed_id, "999999"])
    assert len(sql_queue.list("failed")) == 1
    assert sql_queue.retry(None) != []


# -- leases ------------------------------------------------------------------


def test_an_expired_lease_makes_the_row_claimable_again(engine: sa.Engine) -> None:
    clock = Clock()
    dead = SQLQueue(engine.url, claim_timeout=600.0, clock=clock)
    live = SQLQueue(engine.url, claim_timeout=600.0, clock=clock)
    write(engine, dead, envelope())
    assert len(dead.claimable()) == 1

    clock.advance(599)
    assert live.claimable() == []
    clock.advance(2)
    assert len(live.claimable()) == 1
    dead.close()
    live.close()


def test_a_lost_lease_is_logged_and_the_new_claim_left_alone(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    slow = SQLQueue(engine.url, claim_timeout=600.0, clock=clock)
    other = SQLQueue(engine.url, claim_timeout=600.0, clock=clock)
    write(engine, slow, envelope())
    (late,) = claim_all(slow)
    clock.advance(601)
    (taken,) = claim_all(other)

    with caplog.at_level(logging.WARNING):
        slow.complete(late)

    assert "was lost" in caplog.text
    assert rows(engine) == 1
    other.complete(taken)
    assert rows(engine) == 0
    slow.close()
    other.close()


def test_renewal_keeps_the_rows_in_hand(engine: sa.Engine) -> None:
    clock = Clock()
    holder = SQLQueue(engine.url, claim_timeout=600.0, clock=clock)
    other = SQLQueue(engine.url, claim_timeout=600.0, clock=clock)
    write(engine, holder, envelope(), envelope())
    entries = claim_all(holder)
    holder.complete(entries[0])

    clock.advance(500)
    assert holder.renew() == 1
    clock.advance(500)

    assert other.claimable() == []
    holder.close()
    other.close()


def test_release_gives_back_what_the_processor_did_not_take(engine: sa.Engine) -> None:
    holder = SQLQueue(engine.url)
    write(engine, holder, envelope(), envelope())
    first, _second = holder.claimable()
    holder.claim(first)

    assert holder.release() == 1
    other = SQLQueue(engine.url)
    assert len(other.claimable()) == 1
    holder.close()
    other.close()


def test_an_expired_message_is_claimed_with_its_expiry_for_the_processor(
    engine: sa.Engine,
) -> None:
    # The processor fails it with its reason (tests/test_queue_sql_policies.py).
    clock = Clock()
    queue = SQLQueue(engine.url, clock=clock)
    write(engine, queue, envelope())
    with engine.begin() as connection:
        connection.execute(queue_table.update().values(expires_at=clock.now - 1))

    (entry,) = claim_all(queue)
    assert entry.schedule.expired(clock.now)
    queue.close()


# -- status --------------------------------------------------------------------


def test_status_has_the_maildir_shape(engine: sa.Engine, tmp_path) -> None:
    clock = Clock()
    queue = SQLQueue(engine.url, clock=clock)
    write(engine, queue, envelope(), envelope(), envelope())
    clock.advance(10)
    first, second, _third = claim_all(queue)
    queue.defer(second, clock.now + 60, "451")
    queue.fail(first, "550")
    clock.advance(5)
    assert queue.claimable() == []

    report = queue.status()

    maildir = MaildirQueue(str(tmp_path / "maildir")).status()
    assert report.keys() == maildir.keys()
    assert {k: v["count"] for k, v in report.items()} == {
        "queued": 0, "deferred": 1, "claimed": 1, "failed": 1, "stale_tmp": 0,
    }  # fmt: skip
    assert report["claimed"]["oldest"] == pytest.approx(15, abs=0.01)
    queue.close()


# -- a processor on the SQL queue ------------------------------------------


def test_a_processor_delivers_each_row_once_over_several_connections(
    engine: sa.Engine, sql_queue: SQLQueue, smtp_server
) -> None:
    from pyramid_sendmail import SMTPMailer
    from pyramid_sendmail.processor import QueueProcessor

    sent = [envelope(f"message {n}") for n in range(40)]
    write(engine, sql_queue, *sent)
    mailer = SMTPMailer(smtp_server.host, smtp_server.port)
    processor = QueueProcessor(sql_queue, mailer, workers=4, batch_size=7, notify=lambda e: None)

    assert processor.process_once() == 40

    assert sorted(m.data for m in smtp_server.messages) == sorted(e.data for e in sent)
    assert smtp_server.connections >= 4
    assert rows(engine) == 0


def test_a_delivered_row_whose_delete_failed_is_deleted_later_not_sent_again(
    pg_engine: sa.Engine, pg_queue: SQLQueue, smtp_server, caplog: pytest.LogCaptureFixture
) -> None:
    from pyramid_sendmail import MailSent, SMTPMailer
    from pyramid_sendmail.processor import QueueProcessor

    sent_events = []

    def notify(event) -> None:
        if isinstance(event, MailSent):
            sent_events.append(event)
            if len(sent_events) == 3:
                # The database drops the processor's connections: the next
                # DELETE fails after its message was delivered.
                terminate_other_connections(pg_engine)

    write(pg_engine, pg_queue, *(envelope(f"message {n}") for n in range(10)))
    processor = QueueProcessor(
        pg_queue, SMTPMailer(smtp_server.host, smtp_server.port), workers=1, notify=notify
    )
    with caplog.at_level(logging.INFO):
        processor.process_once()  # the next claim deletes it first
        processor.process_once()

    assert "could not settle" in caplog.text
    assert "is now off the queue" in caplog.text
    assert rows(pg_engine) == 0
    assert len(smtp_server.messages) == 10
