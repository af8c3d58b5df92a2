"""Autocommit DBAPI connections for the statements a drain repeats.

A drain deletes one row per delivered message, and claims a batch every
hundred. Through a SQLAlchemy ``Connection`` that DELETE cost about 0.7 ms
of the processor's CPU (the clause built anew, its cache key, a pool
checkout and reset), five times the round trip itself. Here each statement
is compiled once and executed on a plain DBAPI cursor, over connections
taken out of the engine's pool and kept in autocommit: each is its own
transaction, one round trip, and on PostgreSQL a prepared statement after
a few uses. With psycopg, :meth:`DirectConnections.execute_steps` runs one
without blocking, for a processor whose one thread drives every SMTP
connection (``pyramid_sendmail.lanes``).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import select
import threading
import weakref
from collections.abc import Generator, Mapping
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["DirectConnections", "Statement", "steps_supported"]

_names = itertools.count(1)


def steps_supported(engine: sa.Engine) -> bool:
    """Whether :meth:`DirectConnections.execute_steps` works on *engine*:
    psycopg 3 on PostgreSQL (its libpq connection runs non-blocking)."""
    return engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"


class Statement:
    """*clause* compiled once for *dialect*, run with a mapping of its binds
    (an INSERT's parameters are the columns named by *keys*)."""

    def __init__(
        self, clause: sa.ClauseElement, dialect: sa.Dialect, keys: list[str] | None = None
    ) -> None:
        self.clause = clause
        compiled = clause.compile(dialect=dialect, column_keys=keys)
        assert isinstance(compiled, SQLCompiler)
        self.sql: str = compiled.string
        self._order: list[str] | None = compiled.positiontup
        self._row_type: Any = None
        self._libpq: tuple[bytes, bytes, list[str]] | None = None

    def row_type(self, description: Any) -> Any:
        """A named tuple type for the rows of *description* (made once)."""
        if self._row_type is None:
            names = [column[0] for column in description]
            self._row_type = collections.namedtuple("Row", names)  # type: ignore[misc]
        return self._row_type

    def parameters(self, values: Mapping[str, Any]) -> Any:
        """*values* in the shape the driver's paramstyle wants."""
        if self._order is None:
            return dict(values)
        return tuple(values[name] for name in self._order)

    def libpq(self) -> tuple[bytes, bytes, list[str]]:
        """The clause for libpq itself: a prepared statement's name, its SQL
        with ``$n`` parameters, and the names of the binds in their order."""
        if self._libpq is None:
            from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect

            dollar = psycopg_dialect(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]
            compiled = self.clause.compile(dialect=dollar)
            assert isinstance(compiled, SQLCompiler) and compiled.positiontup is not None
            name = f"pyramid_sendmail_{next(_names)}".encode()
            self._libpq = (name, compiled.string.encode(), list(compiled.positiontup))
        return self._libpq


class DirectConnections:
    """A few autocommit DBAPI connections of *engine*, reused by any thread.

    A connection that fails a statement is closed, never reused; the next
    statement connects anew (the database may have restarted). After a fork
    the child leaves its parent's connections alone and opens its own.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # Connection -> the names of the statements prepared on it.
        self._prepared: weakref.WeakKeyDictionary[Any, set[bytes]] = weakref.WeakKeyDictionary()

    def execute(self, statement: Statement, values: Mapping[str, Any]) -> int:
        """Run *statement* as a transaction of its own; return its rowcount."""
        count, _rows = self._run(statement, values, fetch=False)
        return count

    def fetch(self, statement: Statement, values: Mapping[str, Any]) -> list[Any]:
        """Run *statement* as a transaction of its own; return its rows
        (named tuples, with the column names of its result)."""
        _count, rows = self._run(statement, values, fetch=True)
        return rows

    def execute_steps(
        self, statement: Statement, values: Mapping[str, Any]
    ) -> Generator[int, bool | None, int]:
        """:meth:`execute` without blocking: the generator yields the
        connection's socket whenever it waits for the database (send it
        anything once the socket is readable), and returns the rowcount. psycopg only
        (:func:`steps_supported`). The statement is prepared on each
        connection, unless psycopg's ``prepare_threshold`` is None.
        """
        name, sql, order = statement.libpq()
        parameters = [None if values[key] is None else str(values[key]).encode() for key in order]
        connection = self._checkout()
        try:
            pgconn = connection.pgconn
            if connection.prepare_threshold is None:
                # Prepared statements turned off (a pooler that drops them).
                pgconn.send_query_params(sql, parameters)
            else:
                prepared = self._prepared.setdefault(connection, set())
                if name not in prepared:
                    # Once per connection, and blocking: a prepared statement
                    # saves the server parsing and planning it every time.
                    _check(pgconn, pgconn.prepare(name, sql))
                    prepared.add(name)
                pgconn.send_query_prepared(name, parameters)
            while pgconn.flush():
                select.select([], [pgconn.socket], [])
            while True:
                pgconn.consume_input()
                if not pgconn.is_busy():
                    break
                yield pgconn.socket
            count = 0
            error: Exception | None = None
            while (result := pgconn.get_result()) is not None:
                try:
                    _check(pgconn, result)
                except Exception as exc:
                    error = error or exc
                count = int(result.command_tuples or 0)
            if error is not None:
                raise error
        except Exception as exc:
            self._discard(connection)
            self._raise(exc, statement, values)
        except BaseException:
            self._discard(connection)  # closed while waiting: mid-query
            raise
        self._checkin(connection)
        return count

    def _discard(self, connection: Any) -> None:
        """Close a connection that failed (or is mid-query) for good."""
        self._prepared.pop(connection, None)
        _close_quietly(connection)

    def _raise(self, exc: Exception, statement: Statement, values: Mapping[str, Any]) -> NoReturn:
        """Raise *exc*, a driver's error as SQLAlchemy's (as its own engine would)."""
        dbapi = self.engine.dialect.loaded_dbapi
        if isinstance(exc, dbapi.Error):
            raise sa.exc.DBAPIError.instance(
                statement.sql, statement.parameters(values), exc, dbapi.Error
            ) from exc
        raise exc

    def _checkin(self, connection: Any) -> None:
        with self._lock:
            if self._pid == os.getpid():
                self._idle.append(connection)
                return
        _close_quietly(connection)

    def _run(
        self, statement: Statement, values: Mapping[str, Any], fetch: bool
    ) -> tuple[int, list[Any]]:
        parameters = statement.parameters(values)
        connection = self._checkout()
        rows: list[Any] = []
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(statement.sql, parameters)
                count = int(cursor.rowcount)
                if fetch:
                    make = statement.row_type(cursor.description)
                    rows = [make(*row) for row in cursor.fetchall()]
            finally:
                cursor.close()
        except Exception as exc:
            self._discard(connection)
            self._raise(exc, statement, values)
        self._checkin(connection)
        return count, rows

    def close(self) -> None:
        """Close the idle connections (those of this process)."""
        with self._lock:
            idle = self._idle if self._pid == os.getpid() else []
            self._idle = []
        for connection in idle:
            _close_quietly(connection)

    def _checkout(self) -> Any:
        with self._lock:
            if self._pid != os.getpid():
                # The parent's sockets: dropped, not closed (closing would
                # end the parent's sessions).
                self._idle = []
                self._pid = os.getpid()
            if self._idle:
                return self._idle.pop()
        pooled = self.engine.raw_connection()
        # Out of the pool for good: its autocommit must not leak into the
        # engine's transactions, and closing it is ours to do.
        pooled.detach()
        connection = pooled.dbapi_connection
        assert connection is not None
        self.engine.dialect.set_isolation_level(connection, "AUTOCOMMIT")
        return connection


def _check(pgconn: Any, result: Any) -> None:
    """Raise the error *result* holds, of the class psycopg would use."""
    import psycopg

    if result.status != psycopg.pq.ExecStatus.FATAL_ERROR:
        return
    message = (result.error_message or pgconn.error_message or b"").decode(errors="replace")
    code = result.error_field(psycopg.pq.DiagnosticField.SQLSTATE)
    try:
        kind = psycopg.errors.lookup(code.decode()) if code else psycopg.OperationalError
    except KeyError:
        kind = psycopg.DatabaseError
    raise kind(message.strip())


def _close_quietly(connection: Any) -> None:
    with contextlib.suppress(Exception):
        connection.close()
