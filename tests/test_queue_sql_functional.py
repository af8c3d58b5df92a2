"""Mail and the application's rows commit together: a cookiecutter app, WebTest,
a real database (SQLite file and PostgreSQL), the processor to a real SMTP server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
import sqlalchemy as sa
import transaction
import webtest
from sql_app import Base, Note, get_session_factory, get_tm_session, mail
from sql_app import main as make_app
from zope.sqlalchemy import register

from pyramid_sendmail import SMTPMailer, get_mailer
from pyramid_sendmail.processor import QueueProcessor
from pyramid_sendmail.queue.sql import SQLQueue
from pyramid_sendmail.queue.sql_delivery import QueueWriteError
from pyramid_sendmail.queue.sql_schema import create, queue_table


@pytest.fixture
def database(db_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(db_url)
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        create(connection)
    yield engine
    engine.dispose()


def start(url: str) -> webtest.TestApp:
    return webtest.TestApp(make_app(None, **{"sqlalchemy.url": url, "mail.queue": "sql"}))


def stop(app: webtest.TestApp) -> None:
    """Close the connections of the application's engine and of its queue."""
    registry = app.app.registry
    registry["dbsession_factory"].kw["bind"].dispose()
    get_mailer(registry).components.queued_delivery.queue.close()


@pytest.fixture
def app(database: sa.Engine) -> Iterator[webtest.TestApp]:
    app = start(database.url.render_as_string(False))
    yield app
    stop(app)


def notes(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(sa.select(Note.text).order_by(Note.id)).scalars())


def subjects(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        data = connection.execute(sa.select(queue_table.c.data).order_by(queue_table.c.id))
        return [str(message_from_bytes(bytes(d))["Subject"]) for d in data.scalars()]


def test_a_commit_keeps_the_row_and_the_mail(app: webtest.TestApp, database: sa.Engine) -> None:
    app.get("/note", {"text": "hello", "subject": "welcome"})

    assert notes(database) == ["hello"]
    assert subjects(database) == ["welcome"]


def test_an_exception_keeps_neither(app: webtest.TestApp, database: sa.Engine) -> None:
    with pytest.raises(RuntimeError):
        app.get("/note", {"fail": "1"})

    assert notes(database) == []
    assert subjects(database) == []


def test_a_doomed_request_keeps_neither(app: webtest.TestApp, database: sa.Engine) -> None:
    app.get("/note", {"doom": "1"})

    assert notes(database) == []
    assert subjects(database) == []


def test_a_request_whose_only_write_is_mail_commits_it(
    app: webtest.TestApp, database: sa.Engine
) -> None:
    app.get("/mail_only", {"subject": "alone"})

    assert subjects(database) == ["alone"]


def test_a_retried_request_writes_each_message_once(
    app: webtest.TestApp, database: sa.Engine
) -> None:
    app.get("/retried")

    assert notes(database) == ["attempt 1"]
    assert subjects(database) == ["attempt 1"]


def test_a_savepoint_rollback_forgets_the_mail_sent_after_it(pg_url: str) -> None:
    # zope.sqlalchemy offers no savepoints on SQLite: PostgreSQL only.
    engine = sa.create_engine(pg_url)
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        create(connection)
    app = start(pg_url)

    app.get("/savepoint")

    assert notes(engine) == ["kept"]
    assert subjects(engine) == ["before"]
    stop(app)
    engine.dispose()


def test_one_insert_statement_per_commit(app: webtest.TestApp, database: sa.Engine) -> None:
    inserts: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO MAIL_QUEUE"):
            inserts.append(statement)

    registry = app.app.registry
    factory = registry["dbsession_factory"]
    engine = factory.kw["bind"]
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        manager = transaction.TransactionManager(explicit=True)
        session = get_tm_session(factory, manager)
        mailer = get_mailer(registry, session=session, transaction_manager=manager)
        with manager:
            for n in range(5):
                mailer.send(mail(f"n{n}"))
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)

    assert len(inserts) == 1
    assert subjects(database) == [f"n{n}" for n in range(5)]


def test_a_failing_insert_aborts_the_transaction_with_a_clear_error(
    app: webtest.TestApp, database: sa.Engine
) -> None:
    with database.begin() as connection:
        connection.execute(sa.text("DROP TABLE mail_queue"))
    registry = app.app.registry
    manager = transaction.TransactionManager(explicit=True)
    session = get_tm_session(registry["dbsession_factory"], manager)
    mailer = get_mailer(registry, session=session, transaction_manager=manager)

    manager.begin()
    session.add(Note(text="not kept"))
    mailer.send(mail("lost"))
    with pytest.raises(QueueWriteError, match="could not queue 1 message"):
        manager.commit()
    manager.abort()

    assert notes(database) == []


def test_a_script_passes_its_session(database: sa.Engine, app: webtest.TestApp) -> None:
    registry = app.app.registry
    manager = transaction.TransactionManager(explicit=True)
    session = get_session_factory(database)()
    register(session, transaction_manager=manager)
    mailer = get_mailer(registry, session=session, transaction_manager=manager)

    with manager:
        mailer.send(mail("from a script"))

    assert subjects(database) == ["from a script"]


def test_sending_without_a_session_says_how_to_give_one(app: webtest.TestApp) -> None:
    manager = transaction.TransactionManager(explicit=True)
    mailer = get_mailer(app.app.registry, transaction_manager=manager)
    with manager, pytest.raises(Exception, match="pass session= to get_mailer"):
        mailer.send(mail("nowhere"))


def test_queued_mail_is_delivered_by_the_processor(
    app: webtest.TestApp, database: sa.Engine, smtp_server: Any
) -> None:
    for n in range(3):
        app.get("/note", {"subject": f"s{n}"})
    queue = SQLQueue(database.url)
    processor = QueueProcessor(queue, SMTPMailer(host=smtp_server.host, port=smtp_server.port))

    assert processor.process_once() == 3

    received = [str(message_from_bytes(m.data)["Subject"]) for m in smtp_server.messages]
    assert sorted(received) == ["s0", "s1", "s2"]
    assert subjects(database) == []
    queue.close()


def test_a_permanent_refusal_becomes_a_dead_letter_and_retry_requeues_it(
    app: webtest.TestApp, database: sa.Engine, smtp_server: Any
) -> None:
    app.get("/note", {"subject": "refused"})
    smtp_server.faults.data_end = "550 5.7.1 no thanks"
    queue = SQLQueue(database.url)
    processor = QueueProcessor(queue, SMTPMailer(host=smtp_server.host, port=smtp_server.port))

    processor.process_once()

    assert processor.last_pass["failed"] == 1
    (dead,) = queue.list("failed")
    assert "550" in str(dead.error)
    smtp_server.faults.data_end = None
    queue.retry([dead.name])
    processor.process_once()
    assert processor.last_pass["sent"] == 1
    queue.close()


def test_a_temporary_refusal_defers_only_the_refused_recipient(
    database: sa.Engine, smtp_server: Any
) -> None:
    from pyramid_sendmail import Message
    from pyramid_sendmail.message import prepare

    queue = SQLQueue(database.url)
    queue.add(
        prepare(
            Message(
                subject="two",
                sender="app@example.org",
                recipients=["ok@example.org", "later@example.org"],
                body="x",
            )
        )
    )
    smtp_server.faults.rcpt["later@example.org"] = "451 4.3.0 later"
    processor = QueueProcessor(queue, SMTPMailer(host=smtp_server.host, port=smtp_server.port))

    processor.process_once()

    assert [m.recipients for m in smtp_server.messages] == [("ok@example.org",)]
    (waiting,) = queue.list("new")
    assert waiting.envelope.recipients == ("later@example.org",)
    assert waiting.attempts == 1
    assert queue.status()["deferred"]["count"] == 1
    queue.close()


def test_the_processor_thread_delivers_right_after_the_commit(
    database: sa.Engine, smtp_server: Any
) -> None:
    settings = {
        "sqlalchemy.url": database.url.render_as_string(False),
        "mail.queue": "sql",
        "mail.queue_processor": "thread",
        "mail.host": smtp_server.host,
        "mail.port": str(smtp_server.port),
        # Only the wake-up after the commit can deliver within the test.
        "mail.queue_interval": "600",
    }
    app = webtest.TestApp(make_app(None, **settings))
    runner = app.app.registry.mail_queue_processor
    try:
        time.sleep(0.2)  # the thread's first pass finds nothing
        app.get("/note", {"subject": "woken"})
        deadline = time.monotonic() + 10
        while not smtp_server.messages and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        runner.stop()
        stop(app)

    assert [str(message_from_bytes(m.data)["Subject"]) for m in smtp_server.messages] == ["woken"]
    assert subjects(database) == []


def test_send_to_queue_immediately_writes_a_row_outside_any_transaction(
    app: webtest.TestApp, database: sa.Engine
) -> None:
    message_id = get_mailer(app.app.registry).send_to_queue_immediately(mail("right now"))

    assert subjects(database) == ["right now"]
    with database.connect() as connection:
        stored = connection.execute(sa.select(queue_table.c.message_id)).scalar_one()
    assert stored == message_id
