"""``psendmail CONFIG_URI sql create|ddl|check``, and opening the SQL queue."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from pyramid.exceptions import ConfigurationError

from .components import build_sql_queue
from .settings import MailSettings

__all__ = ["open_sql_queue", "sql_command"]


def open_sql_queue(values: MailSettings, config_uri: str) -> Any:
    """The SQL queue, once its tables are known to be in place.

    Raises :class:`~pyramid.exceptions.ConfigurationError` naming
    ``psendmail CONFIG_URI sql create`` when they are not, and
    :class:`~pyramid_sendmail.queue.sql.QueueDatabaseError` when the
    database cannot be reached.
    """
    queue = build_sql_queue(values)
    try:
        problems = queue.check(quick=True)
    finally:
        # Connected again when used: a processor forks first.
        queue.close()
    if problems:
        raise ConfigurationError(
            f"the mail queue's tables in {queue.location} are not ready ({'; '.join(problems)}): "
            f"run `psendmail {config_uri} sql create`, or apply pyramid_sendmail's migrations"
        )
    return queue


def sql_command(
    values: MailSettings, config_uri: str, action: str, dialect: str | None, out: TextIO
) -> int:
    """Run one ``sql`` action; return the exit code."""
    import sqlalchemy as sa

    from .queue import sql_schema

    if action == "ddl" and dialect:
        try:
            chosen = sa.make_url(f"{dialect}://").get_dialect()()
        except Exception as exc:
            print(f"psendmail sql ddl: unknown dialect {dialect!r}: {exc}", file=sys.stderr)
            return 2
        out.write(sql_schema.ddl(chosen))
        return 0
    if values.queue != "sql":
        raise ConfigurationError(f"mail.queue is not sql in {config_uri}")
    queue = build_sql_queue(values)
    try:
        return _sql_action(queue, config_uri, action, out)
    finally:
        queue.close()


def _sql_action(queue: Any, config_uri: str, action: str, out: TextIO) -> int:
    from .queue import sql_schema

    if action == "ddl":
        out.write(sql_schema.ddl(queue.engine.dialect))
        return 0
    problems = queue.check()
    if action == "check":
        for problem in problems:
            print(problem, file=out)
        if problems:
            print(f"run `psendmail {config_uri} sql create` to create what is missing", file=out)
            return 1
        print(
            f"the mail queue's tables in {queue.location} are at schema version "
            f"{sql_schema.SCHEMA_VERSION}",
            file=out,
        )
        return 0
    with queue.engine.begin() as connection:
        created = sql_schema.create(connection)
    done = "created the mail queue's tables" if created else "the mail queue's tables are in place"
    print(f"{done} in {queue.location}", file=out)
    return 0
