"""The SQL queue's tables, in a :class:`~sqlalchemy.MetaData` of their own.

Import ``metadata`` into an Alembic ``env.py`` beside the application's
(``target_metadata = [Base.metadata, metadata]``). Its naming convention is
fixed, so constraint and index names never depend on the application's.

Times are seconds since the epoch (UTC) as double-precision floats: the
claim compares and adds them in SQL with the database's clock, the same way
on every database, and they mean what the Maildir queue's times mean.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

__all__ = [
    "SCHEMA_VERSION",
    "check",
    "create",
    "ddl",
    "failed_table",
    "is_ready",
    "meta_table",
    "metadata",
    "queue_table",
]

#: Bumped by every change to the tables; ``sql check`` compares it.
SCHEMA_VERSION = 2

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

# An INTEGER PRIMARY KEY is SQLite's rowid (no BIGINT there), BIGINT elsewhere.
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# bytea on PostgreSQL (up to 1 GB), BLOB on SQLite; MySQL's BLOB stops at 64 KB.
_Bytes = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
_Time: sa.Double[float] = sa.Double()


def _message_columns() -> list[sa.Column[Any]]:
    """The columns both tables share: one message and its history."""
    return [
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("sender", sa.Text(), nullable=False),
        # A JSON list of the recipients still pending, in their order.
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("data", _Bytes, nullable=False),
        sa.Column("queued_at", _Time, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    ]


#: Queued mail. A row is due when ``due_at`` has passed: ``send_at`` sets it
#: when the row is written, and a claim sets it to the end of its lease, so
#: claimed, deferred and scheduled rows are skipped alike. ``priority`` is
#: the rank in ``PRIORITIES`` (0, high,
#: goes first); the claim reads the (priority, due_at, id) index in order.
queue_table = sa.Table(
    "mail_queue",
    metadata,
    *_message_columns(),
    sa.Column("due_at", _Time, nullable=False),
    sa.Column("expires_at", _Time, nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("claim_token", sa.String(32), nullable=True),
    sa.Column("claimed_until", _Time, nullable=True),
    sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="1"),
    sa.Index(None, "due_at", "id"),
    sa.Index(None, "priority", "due_at", "id"),
    sa.Index(None, "message_id"),
)

#: Dead letters: mail that will not be delivered, with its error.
failed_table = sa.Table(
    "mail_queue_failed",
    metadata,
    *_message_columns(),
    sa.Column("failed_at", _Time, nullable=False),
    sa.Column("error", sa.Text(), nullable=False),
    sa.Index(None, "message_id"),
)

#: ``schema_version`` and whatever later versions need to remember.
meta_table = sa.Table(
    "mail_queue_meta",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
)


def _version_row() -> sa.Insert:
    return meta_table.insert().values(name="schema_version", value=str(SCHEMA_VERSION))


def create(connection: sa.Connection) -> bool:
    """Create the tables that are missing and record the schema version.

    Idempotent; returns True when something was created.
    """
    existing = set(sa.inspect(connection).get_table_names())
    missing = [t for t in metadata.sorted_tables if t.name not in existing]
    metadata.create_all(connection, tables=missing)
    version = connection.execute(
        sa.select(meta_table.c.value).where(meta_table.c.name == "schema_version")
    ).scalar()
    if version is None:
        connection.execute(_version_row())
    return bool(missing) or version is None


def ddl(dialect: sa.Dialect) -> str:
    """The DDL that creates the tables on *dialect*, as SQL statements."""
    statements = []
    for table in metadata.sorted_tables:
        statements.append(str(sa.schema.CreateTable(table).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            statements.append(str(sa.schema.CreateIndex(index).compile(dialect=dialect)))
    statements.append(
        str(_version_row().compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    )
    return ";\n\n".join(statements) + ";\n"


def is_ready(connection: sa.Connection) -> bool:
    """Whether the tables and columns are there and the schema version is
    this one's, in three short statements: what every ``psendmail`` command
    asks first (reflection, as in :func:`check`, takes a dozen round trips).

    On False, :func:`check` (on another connection: this one's transaction
    may be aborted) says what differs.
    """
    try:
        for table in (queue_table, failed_table):
            connection.execute(sa.select(*table.columns).where(sa.false())).close()
        version = connection.execute(
            sa.select(meta_table.c.value).where(meta_table.c.name == "schema_version")
        ).scalar()
    except sa.exc.DBAPIError as exc:
        # No such table or column (each driver has its own class for it),
        # unless the connection itself was lost.
        if exc.connection_invalidated:
            raise
        return False
    return version == str(SCHEMA_VERSION)


def check(connection: sa.Connection) -> list[str]:
    """What differs between the database and these tables; empty when nothing."""
    inspector = sa.inspect(connection)
    existing = set(inspector.get_table_names())
    problems = []
    for table in metadata.sorted_tables:
        if table.name not in existing:
            problems.append(f"table {table.name} is missing")
            continue
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in columns:
                problems.append(f"column {table.name}.{column.name} is missing")
        indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                problems.append(f"index {index.name} is missing")
    if meta_table.name in existing:
        version = connection.execute(
            sa.select(meta_table.c.value).where(meta_table.c.name == "schema_version")
        ).scalar()
        if version is None:
            problems.append("the schema version is not recorded")
        elif version != str(SCHEMA_VERSION):
            problems.append(
                f"the schema version is {version}, this pyramid_sendmail uses {SCHEMA_VERSION}"
            )
    return problems
