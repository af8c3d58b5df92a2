"""The SQL queue: mail as rows in the application's own database.

Rows are written through the application's session, in its transaction
(:meth:`SQLQueue.write`, called by
:class:`~pyramid_sendmail.queue.sql_delivery.SQLMailDelivery` before the
database commits), so the mail commits with the application's data or not
at all. Processors read them on an engine of their own: a claim takes a
batch of due rows in one short transaction (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) and gives them a lease; no
database transaction stays open while SMTP talks. A settled row is deleted,
deferred or moved to the dead letters, each guarded by the claim's token, so
a processor whose lease was taken over finds out and changes nothing. Leases
of rows still in hand are renewed by a thread; an expired lease makes its
row due again, so the mail of a dead processor is retried.

Times come from the database's clock, so processors on machines whose
clocks disagree agree on leases; *clock* overrides it in tests.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from zope.interface import implementer

from ..exceptions import CorruptEntry, QueueError, UnknownEntry
from ..interfaces import IMailQueue
from ..message import Envelope
from .entry import NORMAL, PRIORITIES, STATES, QueueEntry, QueueStatus
from .sql_direct import DirectConnections, Statement, steps_supported
from .sql_notify import Listener, announce
from .sql_rows import (
    CLAIMED,
    DELETE_OURS,
    claim_clause,
    entry_of,
    now_sql,
    params_of,
    row_of,
    schedule_of,
    scheduled_params_of,
)
from .sql_schema import check as check_schema
from .sql_schema import failed_table, is_ready, queue_table

__all__ = ["QueueDatabaseError", "SQLQueue", "display_url"]

log = logging.getLogger(__name__)

_Q = queue_table.c
_F = failed_table.c


class QueueDatabaseError(QueueError):
    """The queue's database cannot be used (unreachable, or tables missing)."""


def display_url(url: str | sa.URL) -> str:
    """*url* without its password, for messages and logs."""
    return sa.make_url(url).render_as_string(hide_password=True)


def _begin_immediate(engine: sa.Engine) -> None:
    """Make every transaction of a SQLite *engine* start with BEGIN IMMEDIATE.

    pysqlite starts transactions lazily, at the first write, and a claim's
    SELECT would then read under a shared lock that two processors can hold
    at once. An immediate transaction takes the write lock up front: the
    single writer is what SKIP LOCKED is on PostgreSQL.
    """

    @sa.event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _immediate(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@implementer(IMailQueue)
class SQLQueue:
    """A queue in the tables of :mod:`~pyramid_sendmail.queue.sql_schema`.

    *url* (or an :class:`~sqlalchemy.Engine`) is what processors connect
    with; the application writes through its own session instead. A claim
    takes up to *claim_limit* rows, leased for *claim_timeout* seconds.
    """

    #: Rows are written in the application's transaction, before it commits.
    transactional = True
    #: Settling waits on the database: worker threads overlap those waits,
    #: unless :attr:`settles_in_steps` (then one thread drives them).
    settles_locally = False

    def __init__(
        self,
        url: str | sa.URL | sa.Engine,
        claim_timeout: float = 600.0,
        claim_limit: int = 100,
        clock: Callable[[], float] | None = None,
        engine_options: dict[str, Any] | None = None,
        notify: bool = False,
    ) -> None:
        if isinstance(url, sa.Engine):
            self._engine: sa.Engine | None = url
            self.url = url.url
        else:
            self._engine = None
            self.url = sa.make_url(url)
        self.claim_timeout = claim_timeout
        self.claim_limit = claim_limit
        self.clock = clock
        self._engine_options = engine_options or {}
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # Claimed here and not yet settled: id -> entry. ``_unsent`` holds
        # the ones the processor has not asked for yet (claim()).
        self._in_hand: dict[int, QueueEntry] = {}
        self._unsent: dict[int, QueueEntry] = {}
        # Delivered, but their DELETE failed (the database went away): still
        # in hand, their leases renewed, deleted again until that works.
        self._undeleted: dict[int, QueueEntry] = {}
        self._renewer: threading.Thread | None = None
        # The statements this queue repeats, each compiled once (a queue
        # talks to one kind of database), and the processors' connections
        # for them.
        self._statements: dict[str, Statement] = {}
        self._direct: DirectConnections | None = None
        self._closed = threading.Event()
        #: With *notify* (PostgreSQL): :meth:`announce` sends a NOTIFY, and a
        #: processor's claims start a thread that LISTENs and calls
        #: ``on_notify`` (the processor's wake-up) for each one.
        self.notify = notify
        self.on_notify: Callable[[], None] | None = None
        self._listener: Listener | None = None

    def __repr__(self) -> str:
        return f"<SQLQueue {display_url(self.url)}>"

    @property
    def location(self) -> str:
        """The database (without its password), for people to read."""
        return display_url(self.url)

    # -- the engine -----------------------------------------------------

    @property
    def engine(self) -> sa.Engine:
        """The processors' engine, created on first use in each process."""
        with self._lock:
            if self._pid != os.getpid():
                # A forked child must not share its parent's connections,
                # nor its claims.
                if self._engine is not None:
                    self._engine.dispose(close=False)
                self._pid = os.getpid()
                self._in_hand.clear()
                self._unsent.clear()
                self._undeleted.clear()
                self._renewer = None
                self._listener = None
                self._direct = None
            if self._engine is None:
                # No pool_pre_ping: it would add a round trip to every
                # settle. A connection the database dropped fails its one
                # statement, is discarded, and the next one reconnects.
                options: dict[str, Any] = dict(self._engine_options)
                if self.url.get_backend_name() == "sqlite":
                    options.setdefault("connect_args", {}).setdefault("timeout", 30.0)
                self._engine = sa.create_engine(self.url, **options)
                if self._engine.dialect.name == "sqlite":
                    _begin_immediate(self._engine)
            return self._engine

    def _time(self, dialect: sa.Dialect) -> sa.ColumnElement[float]:
        if self.clock is not None:
            return sa.literal(self.clock(), sa.Double())
        return now_sql(dialect)

    @contextlib.contextmanager
    def _single(self) -> Iterator[sa.Connection]:
        """A connection for one statement that is its own transaction.

        On PostgreSQL in autocommit: one round trip per settle instead of
        three (BEGIN, the statement, COMMIT), which is what bounds a drain.
        SQLite's transactions are calls in this process, and its writes
        must take the lock with BEGIN IMMEDIATE.
        """
        engine = self.engine
        if engine.dialect.name == "sqlite":
            with engine.begin() as connection:
                yield connection
            return
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            yield connection

    def check(self, quick: bool = False) -> list[str]:
        """What differs between the database and the queue's tables.

        *quick* first asks :func:`~.sql_schema.is_ready`, and reflects the
        tables only when something differs.
        Raises :class:`QueueDatabaseError` when the database cannot be reached.
        """
        try:
            if quick:
                with self.engine.connect() as connection:
                    if is_ready(connection):
                        return []
            with self.engine.connect() as connection:
                return check_schema(connection)
        except sa.exc.DBAPIError as exc:
            raise QueueDatabaseError(
                f"cannot connect to the mail queue's database {self.location}: {exc.orig}"
            ) from exc

    def close(self) -> None:
        """Give back the claims not yet handed out; stop renewing; disconnect.

        The queue can be used again: it reconnects when needed.
        """
        self._closed.set()
        if self._listener is not None:
            self._listener.stop()
        self._delete_undeleted()
        self.release()
        if self._engine is not None and self._pid == os.getpid():
            if self._direct is not None:
                self._direct.close()
            self._engine.dispose()

    # -- adding ---------------------------------------------------------

    def write(self, session: Any, envelopes: Sequence[Envelope]) -> None:
        """Insert *envelopes* through *session* (the application's), in its
        transaction: one statement for one message, one executemany for
        several (one round trip: psycopg pipelines it).

        The INSERT is compiled once per queue: building and compiling it per
        commit cost more than its round trip. It runs as driver SQL on the
        session's connection, so the application's engine events see it.
        """
        connection = session.connection(bind_arguments={"clause": queue_table})
        now = None if self.clock is None else self.clock()
        for scheduled in (False, True):
            rows = [e for e in envelopes if (schedule_of(e) is not NORMAL) is scheduled]
            if not rows:
                continue
            statement = self._compiled(
                "insert scheduled" if scheduled else "insert",
                connection.dialect,
                functools.partial(self._insert_statement, scheduled=scheduled),
            )
            parameters = [
                statement.parameters(
                    {**(scheduled_params_of(e) if scheduled else params_of(e)), "now": now}
                )
                for e in rows
            ]
            connection.exec_driver_sql(
                statement.sql, parameters[0] if len(parameters) == 1 else parameters
            )

    def _compiled(
        self, name: str, dialect: sa.Dialect, build: Callable[[sa.Dialect], Statement]
    ) -> Statement:
        """The statement *name*, built by *build* for *dialect* the first time."""
        statement = self._statements.get(name)
        if statement is None:
            statement = self._statements[name] = build(dialect)
        return statement

    def add(self, envelope: Envelope) -> str:
        """Queue *envelope* now, in a transaction of the queue's own; return its id."""
        with self.engine.begin() as connection:
            now = self._time(connection.dialect)
            row = row_of(envelope, now)
            schedule = schedule_of(envelope)
            if schedule is not NORMAL:
                row.update(scheduled_params_of(envelope))
                send_at = row.pop("send_at")
                if send_at is not None:
                    row["due_at"] = send_at
            result = connection.execute(queue_table.insert().values(row))
            (row_id,) = result.inserted_primary_key or (None,)
        return str(row_id)

    def prepare(self, envelope: Envelope) -> str:
        """The SQL queue writes in the application's transaction (see
        :meth:`write`): nothing to prepare; returns the message id."""
        return envelope.message_id

    def publish(self, names: list[str]) -> None:
        """Nothing to do: the rows became visible when the database committed."""

    def discard(self, names: Iterable[str]) -> None:
        """Nothing to do: an aborted transaction wrote no row."""

    # -- processing -----------------------------------------------------

    def claimable(self, now: float | None = None) -> list[str]:
        """Claim a batch of due rows for this processor; return their ids.

        The processor then takes each with :meth:`claim`. Unlike a Maildir,
        listing is claiming here: one short transaction per batch. First,
        delivered rows whose DELETE failed are deleted again.
        """
        self._delete_undeleted()
        return [str(entry_id) for entry_id in self._claim_batch()]

    def claim(
        self, entry_id: str, on_corrupt: Callable[[CorruptEntry], None] | None = None
    ) -> QueueEntry | None:
        """The entry claimed by :meth:`claimable` under *entry_id*, or None.

        A row is never corrupt: *on_corrupt* is never called.
        """
        with self._lock:
            return self._unsent.pop(int(entry_id), None)

    def _claim_batch(self) -> list[int]:
        engine = self.engine
        self._start_listener()
        token = uuid.uuid4().hex
        if engine.dialect.name == "postgresql":
            rows = self._claim_in_one_statement(engine, token)
        else:
            rows = self._claim_in_a_transaction(engine, token)
        if not rows:
            return []
        entries = [entry_of(row, token) for row in rows]
        with self._lock:
            for entry in entries:
                key = int(entry.name)
                self._in_hand[key] = entry
                self._unsent[key] = entry
        self._start_renewer()
        return [int(entry.name) for entry in entries]

    def _claim_in_one_statement(self, engine: sa.Engine, token: str) -> list[Any]:
        """PostgreSQL: select, lock and lease a batch in one UPDATE, a
        transaction of its own on a direct connection: one round trip."""
        statement = self._compiled(
            "claim",
            engine.dialect,
            lambda dialect: Statement(claim_clause(self._clock_or_now_sql(dialect)), dialect),
        )
        connections = self._direct_connections(engine)
        values = {"limit": self.claim_limit, "token": token, "lease": self.claim_timeout}
        if self.clock is not None:
            values["now"] = self.clock()
        rows = connections.fetch(statement, values)
        # RETURNING has no order: the claim's, by the index.
        rows.sort(key=lambda row: (row.priority, row.was_due, row.id))
        return rows

    def _claim_in_a_transaction(self, engine: sa.Engine, token: str) -> list[Any]:
        """Other databases: SELECT, then UPDATE the rows found (on SQLite
        under ``BEGIN IMMEDIATE``, the single writer's lock)."""
        with engine.begin() as connection:
            now = self._time(connection.dialect)
            due = (
                sa.select(*CLAIMED)
                .where(_Q.due_at <= now)
                # A due high-priority row before any due normal one, even
                # behind a backlog: the (priority, due_at, id) index's order.
                .order_by(_Q.priority, _Q.due_at, _Q.id)
                .limit(self.claim_limit)
                .with_for_update(skip_locked=True)
            )
            rows = connection.execute(due).all()
            if rows:
                until = now + self.claim_timeout
                connection.execute(
                    queue_table.update()
                    .where(_Q.id.in_([row.id for row in rows]))
                    .values(claim_token=token, claimed_until=until, due_at=until)
                )
        return list(rows)

    def _insert_statement(self, dialect: sa.Dialect, scheduled: bool) -> Statement:
        """The INSERT of queued rows, their times the database's now (scheduled
        rows: due at ``send_at``, or now without one)."""
        now = self._clock_or_now_sql(dialect)
        keys = ["message_id", "sender", "recipients", "data", "attempts"]
        due = now
        if scheduled:
            due = sa.func.coalesce(sa.bindparam("send_at", type_=sa.Double()), now)
            keys += ["expires_at", "priority"]
        clause = queue_table.insert().inline().values(queued_at=now, due_at=due)
        return Statement(clause, dialect, keys)

    def _clock_or_now_sql(self, dialect: sa.Dialect) -> sa.ColumnElement[float]:
        """The database's clock as SQL, or *clock*'s time as a ``now`` parameter."""
        if self.clock is None:
            return now_sql(dialect)
        return sa.bindparam("now", type_=sa.Double())

    def _direct_connections(self, engine: sa.Engine) -> DirectConnections:
        with self._lock:
            if self._direct is None:
                self._direct = DirectConnections(engine)
            return self._direct

    def complete(self, entry: QueueEntry) -> None:
        """Delete a delivered row, if this processor's claim still holds.

        The drain's one statement per message: run outside SQLAlchemy's
        execution path (``pyramid_sendmail.queue.sql_direct``).
        """
        connections, delete = self._delete_ours()
        with self._kept_if_undeleted(entry):
            deleted = connections.execute(delete, _claim_of(entry))
        self._settled(entry, deleted)

    @property
    def settles_in_steps(self) -> bool:
        """Whether :meth:`complete_steps` can run: psycopg on PostgreSQL."""
        return steps_supported(self.engine)

    def complete_steps(self, entry: QueueEntry) -> Generator[int, bool | None, None]:
        """:meth:`complete` without blocking: yields the database
        connection's socket while the DELETE runs (``pyramid_sendmail.lanes``)."""
        connections, delete = self._delete_ours()
        with self._kept_if_undeleted(entry):
            deleted = yield from connections.execute_steps(delete, _claim_of(entry))
        self._settled(entry, deleted)

    @contextlib.contextmanager
    def _kept_if_undeleted(self, entry: QueueEntry) -> Iterator[None]:
        """Keep *entry* to be deleted again when its DELETE fails: it was
        delivered, and sending it again would be a duplicate."""
        try:
            yield
        except Exception:
            with self._lock:
                self._undeleted[int(entry.name)] = entry
            raise

    def _delete_undeleted(self) -> None:
        """Try again the DELETEs that failed; those that fail stay."""
        with self._lock:
            undeleted = list(self._undeleted.values())
        if not undeleted:
            return
        connections, delete = self._delete_ours()
        for entry in undeleted:
            try:
                connections.execute(delete, _claim_of(entry))
            except Exception:
                log.warning("could not yet delete delivered mail %s", entry.name, exc_info=True)
                return
            # Settled even when no row was deleted: then most likely the first
            # DELETE did commit, its answer lost with the connection.
            log.info("delivered mail %s is now off the queue", entry.envelope.message_id)
            self._settled(entry, 1)

    def _delete_ours(self) -> tuple[DirectConnections, Statement]:
        engine = self.engine
        delete = self._compiled(
            "delete", engine.dialect, lambda dialect: Statement(DELETE_OURS, dialect)
        )
        return self._direct_connections(engine), delete

    def defer(self, entry: QueueEntry, until: float, error: str) -> None:
        """Put a claimed row back, with its remaining recipients, due at *until*.

        The delay is measured on this processor's clock and added to the
        database's, so a skewed clock shifts nothing.
        """
        entry.attempted(error)
        delay = max(0.0, until - (self.clock or time.time)())
        with self._single() as connection:
            updated = connection.execute(
                queue_table.update()
                .where(*self._ours(entry))
                .values(
                    recipients=json.dumps(list(entry.envelope.recipients)),
                    attempts=entry.attempts,
                    last_error=error,
                    due_at=now_sql(connection.dialect) + delay
                    if self.clock is None
                    else sa.literal(until, sa.Double()),
                    claim_token=None,
                    claimed_until=None,
                )
            ).rowcount
        self._settled(entry, updated)

    def fail(self, entry: QueueEntry, error: str, keep_claim: bool = False) -> str:
        """Move a claimed row to the dead letters with *error*.

        With *keep_claim*, the claimed row stays (its other recipients are
        being deferred) and the dead letter holds the entry's recipients.
        Returns the dead letter's id, or ``""`` when the claim was lost.
        """
        with self.engine.begin() as connection:
            if keep_claim:
                # Takes the row's lock and proves the claim still holds.
                held = connection.execute(
                    queue_table.update().where(*self._ours(entry)).values(last_error=error)
                ).rowcount
            else:
                held = connection.execute(queue_table.delete().where(*self._ours(entry))).rowcount
            failed_id = ""
            if held:
                failed_id = self._insert_failed(connection, entry, error)
        if keep_claim:
            if not held:
                self._settled(entry, held)
        else:
            self._settled(entry, held)
        return failed_id

    def _insert_failed(self, connection: sa.Connection, entry: QueueEntry, error: str) -> str:
        envelope = entry.envelope
        result = connection.execute(
            failed_table.insert().values(
                message_id=envelope.message_id,
                sender=envelope.sender,
                recipients=json.dumps(list(envelope.recipients)),
                data=envelope.data,
                queued_at=entry.queued_at,
                attempts=entry.attempts,
                failed_at=self._time(connection.dialect),
                error=error,
            )
        )
        (failed_id,) = result.inserted_primary_key or ("",)
        return str(failed_id)

    def _ours(self, entry: QueueEntry) -> tuple[sa.ColumnElement[bool], ...]:
        return (_Q.id == int(entry.name), _Q.claim_token == entry.claimed_as)

    def _settled(self, entry: QueueEntry, rows: int) -> None:
        with self._lock:
            self._in_hand.pop(int(entry.name), None)
            self._undeleted.pop(int(entry.name), None)
        if not rows:
            # Another processor took the row over after this one's lease ran
            # out (Solid Queue #589): settle once, and say when we did not.
            log.warning(
                "the claim on queued mail %s (row %s) was lost: its lease ran out and "
                "another processor took it; this processor leaves it alone",
                entry.envelope.message_id,
                entry.name,
            )

    def release(self) -> int:
        """Give back the rows claimed here that the processor has not taken."""
        with self._lock:
            if self._pid != os.getpid():
                return 0
            unsent = list(self._unsent.values())
            self._unsent.clear()
            for entry in unsent:
                self._in_hand.pop(int(entry.name), None)
        if not unsent or self._engine is None:
            return 0
        by_token: dict[str | None, list[int]] = {}
        for entry in unsent:
            by_token.setdefault(entry.claimed_as, []).append(int(entry.name))
        with self._single() as connection:
            now = self._time(connection.dialect)
            for token, ids in by_token.items():
                connection.execute(
                    queue_table.update()
                    .where(_Q.id.in_(ids), _Q.claim_token == token)
                    .values(claim_token=None, claimed_until=None, due_at=now)
                )
        return len(unsent)

    def recover(self, now: float | None = None) -> int:
        """Give back unsent claims of an earlier pass; return how many.

        Leases left by dead processors need no recovery: an expired lease
        makes its row due again by itself.
        """
        return self.release()

    # -- leases -----------------------------------------------------------

    def renew(self) -> int:
        """Extend the leases of the rows in hand; return how many still hold.

        Delivered rows whose DELETE failed are deleted again first.
        """
        self._delete_undeleted()
        with self._lock:
            by_token: dict[str | None, list[int]] = {}
            for entry in self._in_hand.values():
                by_token.setdefault(entry.claimed_as, []).append(int(entry.name))
        if not by_token:
            return 0
        held = 0
        with self._single() as connection:
            until = self._time(connection.dialect) + self.claim_timeout
            for token, ids in by_token.items():
                held += connection.execute(
                    queue_table.update()
                    .where(_Q.id.in_(ids), _Q.claim_token == token)
                    .values(claimed_until=until, due_at=until)
                ).rowcount
        return held

    def _start_renewer(self) -> None:
        with self._lock:
            if self._renewer is not None and self._renewer.is_alive():
                return
            self._closed = threading.Event()
            self._renewer = threading.Thread(
                target=self._renew_forever,
                args=(self._closed,),
                name=f"psendmail-lease-{self.location}",
                daemon=True,
            )
            self._renewer.start()

    def _renew_forever(self, closed: threading.Event) -> None:
        # A third of the lease: two renewals may fail (the database
        # restarting) before another processor could take the rows.
        interval = self.claim_timeout / 3
        while not closed.wait(interval):
            try:
                self.renew()
            except Exception:
                log.warning("could not renew the leases of the mail in hand", exc_info=True)

    # -- wake-ups (mail.queue_notify) -------------------------------------

    def announce(self) -> None:
        """Tell listening processors that mail was committed (a NOTIFY on the
        queue's own connection); nothing without *notify*. Never raises."""
        if self.notify:
            announce(self.engine)

    def _start_listener(self) -> None:
        with self._lock:
            if not self.notify or self.on_notify is None:
                return
            if self._listener is None:
                self._listener = Listener(
                    self.url, self._notified, name=f"psendmail-listen-{self.location}"
                )
            self._listener.start()

    def _notified(self) -> None:
        callback = self.on_notify
        if callback is not None:
            callback()

    # -- administration ---------------------------------------------------

    def status(self, now: float | None = None) -> QueueStatus:
        """Counts and oldest ages of queued, deferred, claimed and failed rows.

        ``stale_tmp`` is always empty: a row is never half-written. The shape
        is the Maildir queue's.
        """
        report: QueueStatus = {kind: {"count": 0, "oldest": None} for kind in STATES}
        with self.engine.begin() as connection:
            clock = self._time(connection.dialect)
            current = connection.execute(sa.select(clock)).scalar_one()
            state = sa.case(
                (sa.and_(_Q.claim_token.is_not(None), _Q.claimed_until > clock), "claimed"),
                (_Q.due_at > clock, "deferred"),
                else_="queued",
            ).label("state")
            rows = connection.execute(
                sa.select(state, sa.func.count(), sa.func.min(_Q.queued_at)).group_by(state)
            ).all()
            failed = connection.execute(sa.select(sa.func.count(), sa.func.min(_F.queued_at))).one()
        for kind, count, oldest in [*rows, ("failed", *failed)]:
            if count:
                report[kind] = {"count": count, "oldest": max(0.0, current - oldest)}
        return report

    def schedule_status(self, now: float | None = None) -> dict[str, Any]:
        """What waits unclaimed, in the Maildir's shape: the mail scheduled
        with ``send_at`` and not due yet (``scheduled``, ``next_due`` in
        seconds from the database's now or None), and the count of each
        priority class. A row never tried that is not due was scheduled."""
        report: dict[str, Any] = {"scheduled": 0, "next_due": None}
        report.update(dict.fromkeys(PRIORITIES, 0))
        with self.engine.begin() as connection:
            clock = self._time(connection.dialect)
            current = connection.execute(sa.select(clock)).scalar_one()
            waiting = sa.or_(_Q.claim_token.is_(None), _Q.claimed_until <= clock)
            for rank, count in connection.execute(
                sa.select(_Q.priority, sa.func.count()).where(waiting).group_by(_Q.priority)
            ).all():
                report[PRIORITIES[rank]] += count
            count, first = connection.execute(
                sa.select(sa.func.count(), sa.func.min(_Q.due_at)).where(
                    _Q.claim_token.is_(None), _Q.attempts == 0, _Q.due_at > clock
                )
            ).one()
        if count:
            report["scheduled"] = count
            report["next_due"] = max(0.0, first - current)
        return report

    def unreadable(self) -> dict[str, str]:
        """Rows are always readable: nothing is ever set aside unread."""
        return {}

    def retry(self, entry_ids: Iterable[str] | None = None) -> list[str]:
        """Move dead letters (all, or *entry_ids*) back into the queue, due now.

        Returns the new queue ids. Every id is checked first: one that is not
        a dead letter raises :class:`~pyramid_sendmail.exceptions.UnknownEntry`
        and nothing moves.
        """
        with self.engine.begin() as connection:
            query = sa.select(failed_table).order_by(_F.id)
            if entry_ids is not None:
                wanted = list(dict.fromkeys(entry_ids))
                numbers = [int(i) for i in wanted if i.isdigit()]
                rows = connection.execute(query.where(_F.id.in_(numbers))).all()
                found = {str(row.id) for row in rows}
                for entry_id in wanted:
                    if entry_id not in found:
                        raise UnknownEntry(entry_id)
            else:
                rows = connection.execute(query).all()
            if not rows:
                return []
            now = self._time(connection.dialect)
            moved = []
            for row in rows:
                result = connection.execute(
                    queue_table.insert().values(
                        message_id=row.message_id,
                        sender=row.sender,
                        recipients=row.recipients,
                        data=row.data,
                        queued_at=now,
                        due_at=now,
                        attempts=0,
                    )
                )
                (row_id,) = result.inserted_primary_key or ("",)
                moved.append(str(row_id))
            connection.execute(failed_table.delete().where(_F.id.in_([row.id for row in rows])))
        return moved

    def list(self, folder: str = "failed") -> list[QueueEntry]:
        """The rows of the dead letters (``failed``) or of the queue (``new``)."""
        with self.engine.connect() as connection:
            if folder == "failed":
                rows = connection.execute(sa.select(failed_table).order_by(_F.id)).all()
                return [entry_of(row, None, error=row.error) for row in rows]
            rows = connection.execute(sa.select(queue_table).order_by(_Q.id)).all()
            return [entry_of(row, row.claim_token) for row in rows]


def _claim_of(entry: QueueEntry) -> dict[str, Any]:
    """The binds of :data:`DELETE_OURS` for *entry*."""
    return {"id": int(entry.name), "token": entry.claimed_as}
