"""``mail.queue = sql`` and its settings, as the include reads them."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
import transaction
from pyramid import testing
from pyramid.exceptions import ConfigurationError
from sql_app import get_session_factory, get_tm_session, mail

from pyramid_sendmail import get_mailer
from pyramid_sendmail.queue.sql import SQLQueue
from pyramid_sendmail.queue.sql_delivery import SQLMailDelivery
from pyramid_sendmail.queue.sql_schema import create, queue_table
from pyramid_sendmail.settings import parse_settings


def session_of(request: Any) -> Any:
    return request.environ["test.session"]


def test_sql_queue_uses_sqlalchemy_url_and_makes_delivery_queued() -> None:
    values = parse_settings({"mail.queue": "sql", "sqlalchemy.url": "sqlite:///app.db"})

    assert values.queue_sql_url == "sqlite:///app.db"
    assert values.delivery == "queued"


def test_queue_sql_url_wins_over_sqlalchemy_url() -> None:
    values = parse_settings(
        {
            "mail.queue": "sql",
            "mail.queue_sql_url": "postgresql+psycopg://mail@db/app",
            "sqlalchemy.url": "postgresql+psycopg://app@db/app",
        }
    )

    assert values.queue_sql_url == "postgresql+psycopg://mail@db/app"


def test_sql_queue_without_a_database_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=re.escape("mail.queue_sql_url or sqlalchemy.url")):
        parse_settings({"mail.queue": "sql"})


def test_sql_queue_and_a_queue_path_are_refused_together(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match=re.escape("choose the SQL queue or the Maildir")):
        parse_settings(
            {"mail.queue": "sql", "sqlalchemy.url": "sqlite://", "mail.queue_path": str(tmp_path)}
        )


def test_maildir_queue_needs_its_path() -> None:
    with pytest.raises(
        ConfigurationError, match=re.escape("mail.queue = maildir needs mail.queue_path")
    ):
        parse_settings({"mail.queue": "maildir"})


def test_an_unknown_queue_kind_names_the_choices() -> None:
    with pytest.raises(
        ConfigurationError, match=re.escape("mail.queue must be one of maildir, sql")
    ):
        parse_settings({"mail.queue": "redis"})


def test_a_misspelt_key_is_caught() -> None:
    with pytest.raises(ConfigurationError, match=re.escape("did you mean mail.queue_sql_url")):
        parse_settings({"mail.queue_sql_ulr": "sqlite://"})


def test_an_unimportable_session_callable_is_a_configuration_error() -> None:
    settings = {
        "mail.queue": "sql",
        "sqlalchemy.url": "sqlite://",
        "mail.queue_sql_session": "nowhere.at_all:session",
    }
    expected = re.escape("mail.queue_sql_session 'nowhere.at_all:session'")
    with (
        pytest.raises(ConfigurationError, match=expected),
        testing.testConfig(settings=settings) as config,
    ):
        config.include("pyramid_sendmail")


def test_the_include_builds_the_sql_delivery() -> None:
    settings = {"mail.queue": "sql", "sqlalchemy.url": "sqlite://"}
    with testing.testConfig(settings=settings) as config:
        config.include("pyramid_sendmail")
        setup = get_mailer(config.registry).components

    assert isinstance(setup.delivery, SQLMailDelivery)
    assert isinstance(setup.delivery.queue, SQLQueue)


def test_request_mailer_writes_through_the_session_mail_queue_sql_session_names(
    sqlite_url: str,
) -> None:
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as connection:
        create(connection)
    settings = {
        "mail.queue": "sql",
        "sqlalchemy.url": sqlite_url,
        "mail.queue_sql_session": f"{__name__}:session_of",
    }
    manager = transaction.TransactionManager(explicit=True)
    session = get_tm_session(get_session_factory(engine), manager)
    with testing.testConfig(settings=settings) as config:
        config.include("pyramid_sendmail")
        request = testing.DummyRequest(environ={"test.session": session})
        request.registry = config.registry
        request.tm = manager
        with manager:
            get_mailer(request).send(mail("named session"))
        get_mailer(config.registry).components.queued_delivery.queue.close()

    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(queue_table)).scalar() == 1
    engine.dispose()
