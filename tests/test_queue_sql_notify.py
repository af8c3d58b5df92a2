"""``mail.queue_notify``: a commit that queued mail wakes processors elsewhere at once,
with a NOTIFY sent after the commit on the queue's own connection (PostgreSQL)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
import transaction
from pyramid.exceptions import ConfigurationError
from recording_server import wait_for
from sql_app import get_session_factory, get_tm_session, mail

from pyramid_sendmail import SMTPMailer
from pyramid_sendmail.message import prepare
from pyramid_sendmail.processor import QueueProcessor
from pyramid_sendmail.queue.sql import SQLQueue
from pyramid_sendmail.queue.sql_delivery import SQLMailDelivery
from pyramid_sendmail.queue.sql_notify import Listener, announce
from pyramid_sendmail.queue.sql_schema import create
from pyramid_sendmail.settings import parse_settings


@pytest.fixture
def engine(pg_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(pg_url)
    with engine.begin() as connection:
        create(connection)
    yield engine
    engine.dispose()


def listening(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        count = connection.execute(
            sa.text("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN %'")
        ).scalar()
    return bool(count)


def test_a_commit_wakes_a_processor_that_would_sleep_ten_minutes(
    engine: sa.Engine, smtp_server: Any
) -> None:
    # The processor, as on another machine: its own queue object and engine.
    remote = SQLQueue(engine.url, notify=True)
    processor = QueueProcessor(remote, SMTPMailer(host=smtp_server.host, port=smtp_server.port))
    remote.on_notify = processor.wake
    runner = threading.Thread(target=processor.run, args=(600.0,))
    runner.start()
    # The application's side: its session, and a queue that announces.
    local = SQLQueue(engine.url, notify=True)
    delivery = SQLMailDelivery(local)
    statements: list[str] = []
    sa.event.listen(
        engine, "before_cursor_execute", lambda *args: statements.append(str(args[2]))
    )
    try:
        assert wait_for(lambda: listening(engine), 10, 0.05)
        manager = transaction.TransactionManager(explicit=True)
        session = get_tm_session(get_session_factory(engine), manager)
        with manager:
            delivery.send(prepare(mail("wake up")), manager, session=session)
        started = time.monotonic()
        assert wait_for(lambda: bool(smtp_server.messages), 10, 0.02)
        assert time.monotonic() - started < 5
    finally:
        processor.stop()
        runner.join(10)
        remote.close()
        local.close()

    # Nothing was announced through the application's connection.
    assert statements and not [s for s in statements if re.match(r"\s*NOTIFY", s)]


def test_without_notify_nothing_is_announced(engine: sa.Engine) -> None:
    statements: list[str] = []
    queue = SQLQueue(engine.url)
    queue.announce()
    sa.event.listen(
        queue.engine, "before_cursor_execute", lambda *args: statements.append(str(args[2]))
    )
    queue.announce()
    queue.close()

    assert statements == []


@pytest.mark.parametrize(
    "settings",
    [
        {"mail.queue_notify": "true"},
        {"mail.queue_notify": "true", "mail.queue": "sql", "sqlalchemy.url": "sqlite://"},
    ],
)
def test_notify_needs_the_sql_queue_on_postgresql(settings: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match=re.escape("mail.queue_notify = true needs")):
        parse_settings(settings)


def test_notify_is_accepted_for_postgresql() -> None:
    settings = parse_settings(
        {
            "mail.queue_notify": "true",
            "mail.queue": "sql",
            "sqlalchemy.url": "postgresql+psycopg://app@db/app",
        }
    )

    assert settings.queue_notify is True


def test_the_composition_root_wires_mail_queue_notify(
    engine: sa.Engine, smtp_server: Any
) -> None:
    from pyramid_sendmail.components import build_components

    settings = parse_settings(
        {
            "mail.queue": "sql",
            "mail.queue_notify": "true",
            "mail.queue_interval": "600",
            "mail.host": smtp_server.host,
            "mail.port": str(smtp_server.port),
            "sqlalchemy.url": engine.url.render_as_string(False),
        }
    )
    # Two builds, as in psendmail on one machine and the application on another.
    processing = build_components(settings)
    application = build_components(settings)
    assert processing.processor is not None and application.queued_delivery is not None
    runner = threading.Thread(target=processing.processor.run, args=(600.0,))
    runner.start()
    try:
        assert wait_for(lambda: listening(engine), 10, 0.05)
        manager = transaction.TransactionManager(explicit=True)
        session = get_tm_session(get_session_factory(engine), manager)
        with manager:
            application.queued_delivery.send(  # type: ignore[call-arg]
                prepare(mail("wired")), manager, None, session
            )
        assert wait_for(lambda: bool(smtp_server.messages), 5, 0.02)
    finally:
        processing.processor.stop()
        runner.join(10)
        processing.queued_delivery.queue.close()  # type: ignore[union-attr]
        application.queued_delivery.queue.close()


@pytest.mark.slow
def test_the_listener_listens_again_after_the_database_restarts_and_stops_at_once(
    engine: sa.Engine, postgresql: Any
) -> None:
    calls: list[float] = []
    listener = Listener(engine.url, lambda: calls.append(time.monotonic()))
    listener.start()
    try:
        # Once when it starts listening, then once for the NOTIFY.
        assert wait_for(lambda: listening(engine) and len(calls) == 1, 10, 0.05)
        announce(engine)
        assert wait_for(lambda: len(calls) == 2, 5, 0.02)

        engine.dispose()
        postgresql.restart()
        # Polling covers the gap; the listener comes back by itself.
        assert wait_for(lambda: listening(engine) and len(calls) >= 3, 30, 0.1)
        before = len(calls)
        announce(engine)
        assert wait_for(lambda: len(calls) > before, 5, 0.02)
    finally:
        listener.stop()
    assert wait_for(lambda: not listener.running, 3, 0.05)
