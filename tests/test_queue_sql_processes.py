"""Many machines, simulated by processes, share one PostgreSQL queue.

Real ``psendmail`` processes drain the SQL queue into a recording SMTP server
in a process of its own (tests/recording_server.py), which writes every
message it accepts to disk before it answers; its log is the truth of what
was delivered. Then ``kill -9`` chaos, a database restart under a running
processor, and a send slower than the lease.
"""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import transaction
from recording_server import (
    RecordingServer,
    has_started,
    numbered_envelope,
    start_psendmail,
    wait_for,
)
from sqlalchemy.orm import Session
from zope.sqlalchemy import mark_changed, register

from pyramid_sendmail import SMTPMailer
from pyramid_sendmail.processor import QueueProcessor
from pyramid_sendmail.queue.sql import SQLQueue
from pyramid_sendmail.queue.sql_schema import create, queue_table

pytestmark = pytest.mark.slow

SEED = 20261202


def write_config(path: Path, url: str, port: int, **mail: Any) -> Path:
    settings = {
        "queue": "sql",
        "host": "127.0.0.1",
        "port": port,
        "default_sender": "sender@example.com",
        "queue_interval": 0.2,
        **mail,
    }
    lines = ["[app:main]", f"sqlalchemy.url = {url}"]
    lines += [f"mail.{key} = {value}" for key, value in settings.items()]
    lines += [
        "",
        "[loggers]\nkeys = root\n",
        "[handlers]\nkeys = stderr\n",
        "[formatters]\nkeys = plain\n",
        "[logger_root]\nlevel = WARNING\nhandlers = stderr\n",
        "[handler_stderr]\nclass = StreamHandler\nargs = (sys.stderr,)\nformatter = plain\n",
        "[formatter_plain]\nformat = %(process)d %(levelname)s [%(name)s] %(message)s\n",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def engine(pg_url: str) -> Any:
    engine = sa.create_engine(pg_url)
    with engine.begin() as connection:
        create(connection)
    yield engine
    engine.dispose()


def seed(engine: sa.Engine, start: int, count: int) -> list[str]:
    """Queue numbered messages through a session, as an application commits them."""
    queue = SQLQueue(engine.url)
    manager = transaction.TransactionManager(explicit=True)
    session = Session(engine)
    register(session, transaction_manager=manager)
    with manager:
        queue.write(session, [numbered_envelope(n) for n in range(start, start + count)])
        mark_changed(session, transaction_manager=manager)
    return [str(n) for n in range(start, start + count)]


def rows(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(sa.select(sa.func.count()).select_from(queue_table)).scalar_one()
        )


def stop_all(processes: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process, log in zip(processes, logs, strict=True):
        assert process.wait(timeout=30) == 0, log.read_text()


def test_four_processes_drain_5000_rows_each_exactly_once(
    tmp_path: Path,
    engine: sa.Engine,
    pg_url: str,
    recording_server: RecordingServer,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    config = write_config(
        tmp_path / "psendmail.ini", pg_url, recording_server.port, queue_workers=3
    )
    logs = [tmp_path / f"psendmail-{n}.stderr" for n in range(4)]
    for log in logs:
        processes.append(start_psendmail(config, log, "run"))
    expected = seed(engine, 0, 5000)

    assert wait_for(lambda: recording_server.count() >= 5000 and rows(engine) == 0, 120, 0.1), (
        recording_server.count(),
        [log.read_text()[-2000:] for log in logs],
    )
    stop_all(processes, logs)

    accepted = recording_server.accepted()
    duplicates = [key for key, n in Counter(accepted).items() if n > 1]
    assert not duplicates, f"sent more than once: {duplicates[:10]}"
    assert sorted(accepted, key=int) == expected
    assert rows(engine) == 0


def test_kill_9_chaos_loses_nothing_and_duplicates_no_more_than_kills(
    tmp_path: Path,
    engine: sa.Engine,
    pg_url: str,
    recording_server: RecordingServer,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    # One worker per process: at most one message is accepted and not yet
    # deleted at any instant, so a kill duplicates at most one.
    config = write_config(
        tmp_path / "psendmail.ini",
        pg_url,
        recording_server.port,
        queue_workers=1,
        batch_size=20,
        timeout=0.25,
        claim_timeout=5,
        retry_min=0.5,
        retry_max=1,
    )
    rng = random.Random(SEED)
    logs = [tmp_path / f"psendmail-{n}.stderr" for n in range(4)]
    running = [start_psendmail(config, log, "run") for log in logs]
    expected: list[str] = []
    kills = 0
    while kills < 100:
        expected += seed(engine, len(expected), 30)
        time.sleep(rng.uniform(0.05, 0.3))
        victim = rng.randrange(len(running))
        running[victim].kill()
        running[victim].wait(timeout=10)
        processes.append(running[victim])
        kills += 1
        running[victim] = start_psendmail(config, logs[victim], "run")
    processes.extend(running)

    def drained() -> bool:
        return rows(engine) == 0 and len(set(recording_server.accepted())) >= len(expected)

    assert wait_for(drained, 90, 0.2), (rows(engine), len(set(recording_server.accepted())))
    # The last one restarted may still be starting while the others drain.
    assert wait_for(lambda: all(has_started(p) for p in running), 30, 0.05)
    stop_all(running, logs)

    accepted = recording_server.accepted()
    assert sorted(set(accepted), key=int) == expected, "a message was lost"
    duplicates = len(accepted) - len(set(accepted))
    assert duplicates <= kills, (kills, duplicates)


def test_a_processor_carries_on_after_the_database_restarts(
    tmp_path: Path,
    engine: sa.Engine,
    pg_url: str,
    postgresql: Any,
    recording_server: RecordingServer,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    config = write_config(
        tmp_path / "psendmail.ini", pg_url, recording_server.port, queue_workers=2
    )
    log = tmp_path / "psendmail.stderr"
    processes.append(start_psendmail(config, log, "run"))
    expected = seed(engine, 0, 300)
    assert wait_for(lambda: recording_server.count() >= 300, 60, 0.1), log.read_text()

    postgresql.restart(pause=1.0)
    engine.dispose()
    expected += seed(engine, 300, 300)

    assert wait_for(lambda: len(set(recording_server.accepted())) >= 600, 60, 0.1), (
        log.read_text()
    )
    assert processes[0].poll() is None, log.read_text()
    stop_all(processes, [log])
    assert sorted(set(recording_server.accepted()), key=int) == expected


def test_a_send_slower_than_the_lease_is_not_taken_over(
    engine: sa.Engine, smtp_server: Any
) -> None:
    seed(engine, 0, 1)
    smtp_server.faults.delay = 2.5
    slow = SQLQueue(engine.url, claim_timeout=0.9)
    other = SQLQueue(engine.url, claim_timeout=0.9)
    mailer = SMTPMailer(host=smtp_server.host, port=smtp_server.port, timeout=10)
    sending = threading.Thread(target=QueueProcessor(slow, mailer, workers=1).process_once)
    sending.start()

    def claimed() -> bool:
        with engine.connect() as connection:
            token = connection.execute(sa.select(queue_table.c.claim_token)).scalar()
        return token is not None

    assert wait_for(claimed, 5.0)
    taken_over = 0
    while sending.is_alive():
        taken_over += len(other.claimable())
        time.sleep(0.1)

    assert taken_over == 0
    assert len(smtp_server.messages) == 1
    assert rows(engine) == 0
    slow.close()
    other.close()
