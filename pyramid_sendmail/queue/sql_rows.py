"""The SQL queue's rows: envelopes to parameters and back, and the
statements a drain repeats, built from them once.

Times are the database's clock (:func:`now_sql`), so processors on machines
whose clocks disagree still agree on leases and due times.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import sqlalchemy as sa

from ..message import Envelope
from .entry import NORMAL, PRIORITIES, QueueEntry, Schedule
from .sql_schema import queue_table

__all__ = [
    "CLAIMED",
    "DELETE_OURS",
    "claim_clause",
    "entry_of",
    "now_sql",
    "params_of",
    "row_of",
    "schedule_of",
    "scheduled_params_of",
]

_Q = queue_table.c
#: What a claim reads of each row.
CLAIMED = (
    _Q.id,
    _Q.message_id,
    _Q.sender,
    _Q.recipients,
    _Q.data,
    _Q.queued_at,
    _Q.attempts,
    _Q.last_error,
    _Q.expires_at,
    _Q.priority,
)
#: A delivered row's DELETE, guarded by the claim's token.
DELETE_OURS = queue_table.delete().where(
    _Q.id == sa.bindparam("id"), _Q.claim_token == sa.bindparam("token")
)


@functools.cache
def _now_for(name: str) -> sa.ColumnElement[float]:
    # Built once per dialect: a SQL expression costs more to build than
    # the rest of a queued message's INSERT.
    if name == "sqlite":
        return sa.literal_column("((julianday('now') - 2440587.5) * 86400.0)", sa.Double())
    if name in ("mysql", "mariadb"):
        return sa.literal_column("UNIX_TIMESTAMP(NOW(6))", sa.Double())
    return sa.cast(sa.func.extract("epoch", sa.func.now()), sa.Double())


def now_sql(dialect: sa.Dialect) -> sa.ColumnElement[float]:
    """The database's clock, in seconds since the epoch, as SQL."""
    return _now_for(dialect.name)


def claim_clause(now: sa.ColumnElement[float]) -> sa.Update:
    """Lease the first due rows (``limit``) to ``token`` for ``lease``
    seconds, skipping rows other processors hold locked; return them with
    the time each was due (``was_due``)."""
    due = (
        sa.select(_Q.id, _Q.due_at.label("was_due"))
        .where(_Q.due_at <= now)
        # A due high-priority row before any due normal one, even behind a
        # backlog: the (priority, due_at, id) index's order.
        .order_by(_Q.priority, _Q.due_at, _Q.id)
        .limit(sa.bindparam("limit", type_=sa.Integer()))
        .with_for_update(skip_locked=True)
        .cte("due")
    )
    until = now + sa.bindparam("lease", type_=sa.Double())
    return (
        queue_table.update()
        .where(_Q.id == due.c.id)
        # Expired rows are claimed too: the processor fails them with its
        # reason and its MailFailed event, as it does the Maildir's.
        .values(
            claim_token=sa.bindparam("token", type_=sa.String()),
            claimed_until=until,
            due_at=until,
        )
        .returning(*CLAIMED, due.c.was_due)
    )


def params_of(envelope: Envelope) -> dict[str, Any]:
    return {
        "message_id": envelope.message_id,
        "sender": envelope.sender,
        "recipients": json.dumps(list(envelope.recipients)),
        "data": envelope.data,
        "attempts": 0,
    }


def schedule_of(envelope: Envelope) -> Schedule:
    return getattr(envelope, "schedule", NORMAL)


def scheduled_params_of(envelope: Envelope) -> dict[str, Any]:
    schedule = schedule_of(envelope)
    return {
        **params_of(envelope),
        "send_at": schedule.send_at,
        "expires_at": schedule.expires_at,
        "priority": schedule.rank,
    }


def row_of(envelope: Envelope, now: sa.ColumnElement[float]) -> dict[str, Any]:
    return {**params_of(envelope), "queued_at": now, "due_at": now}


def entry_of(row: Any, token: str | None, error: str | None = None) -> QueueEntry:
    envelope = Envelope(row.sender, json.loads(row.recipients), bytes(row.data), row.message_id)
    # Dead letters keep no schedule: retried, they go at once, as normal mail.
    rank = getattr(row, "priority", 1)
    expires_at = getattr(row, "expires_at", None)
    schedule = (
        NORMAL
        if rank == 1 and expires_at is None
        else Schedule(expires_at=expires_at, priority=PRIORITIES[rank])
    )
    return QueueEntry(
        name=str(row.id),
        envelope=envelope,
        queued_at=row.queued_at,
        attempts=row.attempts,
        error=error if error is not None else getattr(row, "last_error", None),
        claimed_as=token,
        schedule=schedule,
    )
