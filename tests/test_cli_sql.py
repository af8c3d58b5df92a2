"""``psendmail CONFIG sql ...`` and the other commands on the SQL queue, in-process."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_queue_sql import envelope

from pyramid_sendmail.cli import main
from pyramid_sendmail.queue.sql import SQLQueue
from pyramid_sendmail.queue.sql_schema import SCHEMA_VERSION

SETTINGS_INI = """\
[app:main]
sqlalchemy.url = {url}
mail.queue = sql
mail.host = 127.0.0.1
mail.port = {port}
mail.timeout = 5
"""


class Psendmail:
    def __init__(self, tmp_path: Path, url: str, port: int = 25) -> None:
        self.ini = tmp_path / "app.ini"
        self.url = url
        self.ini.write_text(SETTINGS_INI.format(url=url, port=port))

    def __call__(self, *args: str) -> tuple[int, str]:
        out = io.StringIO()
        code = main([str(self.ini), "--no-app", *args], out=out)
        return code, out.getvalue()


@pytest.fixture
def psendmail(tmp_path: Path, db_url: str, smtp_server: Any) -> Psendmail:
    return Psendmail(tmp_path, db_url, smtp_server.port)


def test_ddl_for_a_dialect_needs_no_database(tmp_path: Path) -> None:
    run = Psendmail(tmp_path, "postgresql+psycopg://nobody@127.0.0.1:1/none")

    code, out = run("sql", "ddl", "--dialect", "sqlite")

    assert code == 0
    assert "CREATE TABLE mail_queue (" in out and "BLOB" in out


def test_ddl_defaults_to_the_urls_dialect(tmp_path: Path) -> None:
    run = Psendmail(tmp_path, "postgresql+psycopg://nobody@127.0.0.1:1/none")

    code, out = run("sql", "ddl")

    assert code == 0 and "BYTEA" in out


def test_check_then_create_then_check(psendmail: Psendmail) -> None:
    code, out = psendmail("sql", "check")
    assert code == 1
    assert "table mail_queue is missing" in out and "sql create" in out

    assert psendmail("sql", "create")[0] == 0
    code, out = psendmail("sql", "create")
    assert code == 0 and "are in place" in out
    code, out = psendmail("sql", "check")
    assert code == 0 and f"schema version {SCHEMA_VERSION}" in out


def test_create_says_what_it_created(psendmail: Psendmail) -> None:
    code, out = psendmail("sql", "create")

    assert code == 0 and out.startswith("created the mail queue's tables in ")


def test_run_without_the_tables_names_sql_create(
    psendmail: Psendmail, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = psendmail("run", "--once")

    assert code == 2
    error = capsys.readouterr().err
    assert "table mail_queue is missing" in error
    assert f"psendmail {psendmail.ini} sql create" in error


def test_a_refused_connection_is_a_start_up_error(
    tmp_path: Path, postgresql: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run = Psendmail(tmp_path, postgresql.url().replace(str(postgresql.port), "1"))

    code, _ = run("run", "--once")

    assert code == 2
    assert "cannot connect to the mail queue's database" in capsys.readouterr().err


def test_run_once_status_failed_and_retry(psendmail: Psendmail, smtp_server: Any) -> None:
    psendmail("sql", "create")
    queue = SQLQueue(psendmail.url)
    for n in range(3):
        queue.add(envelope(f"n{n}"))
    queue.add(envelope("refused", to=["nobody@example.org"]))
    smtp_server.faults.rcpt["nobody@example.org"] = "550 5.1.1 no such user"

    code, out = psendmail("status", "--json")
    assert code == 0
    report = json.loads(out)
    assert set(report) == {"queue", "queued", "deferred", "claimed", "failed", "stale_tmp"}
    assert report["queued"]["count"] == 4

    code, out = psendmail("run", "--once")
    # 1: a message failed for good (75 would mean only deferred).
    assert (code, out.strip()) == (1, "3 sent, 0 deferred, 1 failed, 0 throttled = 4 handled")
    assert len(smtp_server.messages) == 3

    code, out = psendmail("failed", "--json")
    (dead,) = json.loads(out)
    assert dead["recipients"] == ["nobody@example.org"] and "550" in dead["error"]

    code, out = psendmail("retry", dead["id"])
    assert (code, out.strip()) == (0, "put 1 message back in the queue")
    assert json.loads(psendmail("status", "--json")[1])["queued"]["count"] == 1
    code, _ = psendmail("retry", "12345")
    assert code == 1
    queue.close()


def test_run_once_in_several_processes(psendmail: Psendmail, smtp_server: Any) -> None:
    psendmail("sql", "create")
    queue = SQLQueue(psendmail.url)
    for n in range(20):
        queue.add(envelope(f"n{n}"))
    queue.close()

    code, out = psendmail("run", "--once", "--processes", "2")

    assert (code, out.strip()) == (0, "20 sent, 0 deferred, 0 failed, 0 throttled = 20 handled")
    assert len(smtp_server.messages) == 20
    engine = sa.create_engine(psendmail.url)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM mail_queue")).scalar() == 0
    engine.dispose()
