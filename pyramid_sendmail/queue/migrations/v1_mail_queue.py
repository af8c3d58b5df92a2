"""The SQL queue's tables: mail_queue, mail_queue_failed, mail_queue_meta.

Revision ID: pyramid_sendmail_1
Branch: pyramid_sendmail
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision = "pyramid_sendmail_1"
down_revision: str | None = None
branch_labels = ("pyramid_sendmail",)
depends_on: str | None = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Bytes = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


def _message_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("sender", sa.Text(), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("data", _Bytes, nullable=False),
        sa.Column("queued_at", sa.Double(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    ]


def upgrade() -> None:
    op.create_table(
        "mail_queue",
        *_message_columns(),
        sa.Column("due_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claim_token", sa.String(32), nullable=True),
        sa.Column("claimed_until", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_mail_queue"),
    )
    op.create_index("ix_mail_queue_due_at_id", "mail_queue", ["due_at", "id"])
    op.create_index("ix_mail_queue_message_id", "mail_queue", ["message_id"])
    op.create_table(
        "mail_queue_failed",
        *_message_columns(),
        sa.Column("failed_at", sa.Double(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mail_queue_failed"),
    )
    op.create_index("ix_mail_queue_failed_message_id", "mail_queue_failed", ["message_id"])
    meta = op.create_table(
        "mail_queue_meta",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_mail_queue_meta"),
    )
    op.bulk_insert(meta, [{"name": "schema_version", "value": "1"}])


def downgrade() -> None:
    op.drop_table("mail_queue_meta")
    op.drop_index("ix_mail_queue_failed_message_id", table_name="mail_queue_failed")
    op.drop_table("mail_queue_failed")
    op.drop_index("ix_mail_queue_message_id", table_name="mail_queue")
    op.drop_index("ix_mail_queue_due_at_id", table_name="mail_queue")
    op.drop_table("mail_queue")
