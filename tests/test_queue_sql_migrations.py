"""The Alembic revisions: applied on their own branch, they build exactly the
tables of :mod:`pyramid_sendmail.queue.sql_schema` (autogenerate finds nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from pyramid_sendmail.queue.sql_schema import check

alembic = pytest.importorskip("alembic")
from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402

ENV_PY = '''\
from alembic import context
from sqlalchemy import engine_from_config, pool

from pyramid_sendmail.queue.sql_schema import metadata as mail_metadata

config = context.config
engine = engine_from_config(
    config.get_section(config.config_ini_section), prefix="sqlalchemy.", poolclass=pool.NullPool
)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=[mail_metadata])
    with context.begin_transaction():
        context.run_migrations()
'''


def alembic_config(tmp_path: Path, url: str) -> Config:
    """An application's Alembic set-up with pyramid_sendmail's revisions added."""
    scripts = tmp_path / "alembic"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(ENV_PY)
    (scripts / "script.py.mako").write_text("")
    config = Config()
    config.set_main_option("script_location", str(scripts))
    # "os" would split "package:path" at its colon on POSIX.
    config.set_main_option("path_separator", "space")
    config.set_main_option(
        "version_locations", f"{scripts / 'versions'} pyramid_sendmail.queue:migrations"
    )
    config.set_main_option("sqlalchemy.url", url)
    return config


def test_the_branch_builds_the_tables_autogenerate_expects_and_comes_down(
    tmp_path: Path, db_url: str
) -> None:
    config = alembic_config(tmp_path, db_url)

    command.upgrade(config, "pyramid_sendmail@head")

    engine = sa.create_engine(db_url)
    with engine.connect() as connection:
        assert check(connection) == []
    # Raises when the database and the MetaData differ.
    command.check(config)
    command.downgrade(config, "pyramid_sendmail@base")
    with engine.connect() as connection:
        assert "table mail_queue is missing" in check(connection)
    engine.dispose()
