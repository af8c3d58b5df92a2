"""The SQL queue carries priorities: mail_queue.priority and its claim index.

Revision ID: pyramid_sendmail_2
Revises: pyramid_sendmail_1
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision = "pyramid_sendmail_2"
down_revision: str | None = "pyramid_sendmail_1"
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = None

_meta = sa.table("mail_queue_meta", sa.column("name", sa.String), sa.column("value", sa.Text))


def upgrade() -> None:
    # The rows already queued are of the normal class (rank 1).
    op.add_column(
        "mail_queue",
        sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="1"),
    )
    op.create_index("ix_mail_queue_priority_due_at_id", "mail_queue", ["priority", "due_at", "id"])
    op.execute(_meta.update().where(_meta.c.name == "schema_version").values(value="2"))


def downgrade() -> None:
    op.execute(_meta.update().where(_meta.c.name == "schema_version").values(value="1"))
    op.drop_index("ix_mail_queue_priority_due_at_id", table_name="mail_queue")
    # batch mode: SQLite drops a column by copying the table.
    with op.batch_alter_table("mail_queue") as batch:
        batch.drop_column("priority")
