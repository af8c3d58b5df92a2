"""A Pyramid application in the cookiecutter's layout, queuing mail in SQL.

As the Pyramid cookiecutter (``alchemy`` backend) writes it: a session
factory in the registry (``registry['dbsession_factory']``), a reified
``request.dbsession`` joined to ``request.tm`` by zope.sqlalchemy, pyramid_tm
with the explicit manager, pyramid_retry, and ``environ['app.dbsession']``
for tests. Its views write a row and send mail in the ways the atomicity
tests need. ``main`` is what an INI file's ``use = call:sql_app:main`` names.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import transaction
import zope.sqlalchemy
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from pyramid_sendmail import Message


class Base(DeclarativeBase):
    metadata = sa.MetaData(
        naming_convention={"pk": "pk_%(table_name)s", "ix": "ix_%(column_0_label)s"}
    )


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str]


# -- models/__init__.py of the cookiecutter ------------------------------------


def get_engine(settings: dict[str, Any], prefix: str = "sqlalchemy.") -> sa.Engine:
    return sa.engine_from_config(settings, prefix)


def get_session_factory(engine: sa.Engine) -> sessionmaker:
    factory = sessionmaker()
    factory.configure(bind=engine)
    return factory


def get_tm_session(
    session_factory: sessionmaker, transaction_manager: Any, request: Any = None
) -> Any:
    dbsession = session_factory(info={"request": request})
    zope.sqlalchemy.register(dbsession, transaction_manager=transaction_manager)
    return dbsession


def includeme(config: Configurator) -> None:
    settings = config.get_settings()
    settings["tm.manager_hook"] = "pyramid_tm.explicit_manager"
    config.include("pyramid_tm")
    config.include("pyramid_retry")
    dbengine = settings.get("dbengine") or get_engine(settings)
    session_factory = get_session_factory(dbengine)
    config.registry["dbsession_factory"] = session_factory

    def dbsession(request: Request) -> Any:
        session = request.environ.get("app.dbsession")
        if session is None:
            session = get_tm_session(session_factory, request.tm, request=request)
        return session

    config.add_request_method(dbsession, reify=True)


# -- views ----------------------------------------------------------------------


def mail(subject: str) -> Message:
    return Message(
        subject=subject, sender="app@example.org", recipients=["user@example.org"], body="Hi\n"
    )


def note_and_mail(request: Request) -> Response:
    """A row and a message; ?fail=1 raises afterwards, ?doom=1 dooms."""
    request.dbsession.add(Note(text=request.params.get("text", "note")))
    request.mailer.send(mail(request.params.get("subject", "note")))
    if request.params.get("fail"):
        raise RuntimeError("the view failed after sending")
    if request.params.get("doom"):
        request.tm.doom()
    return Response("ok")


def mail_only(request: Request) -> Response:
    """The request's only write is the mail."""
    request.mailer.send(mail(request.params.get("subject", "only mail")))
    return Response("ok")


def savepoint(request: Request) -> Response:
    """Mail before a savepoint stays, mail after its rollback is forgotten."""
    request.dbsession.add(Note(text="kept"))
    request.mailer.send(mail("before"))
    point = request.tm.get().savepoint()
    request.dbsession.add(Note(text="rolled back"))
    request.mailer.send(mail("after"))
    request.dbsession.flush()
    point.rollback()
    return Response("ok")


def retried(request: Request) -> Response:
    """The first attempt sends, then fails with a transient error; the second commits."""
    attempt = request.environ["retry.attempt"]
    request.dbsession.add(Note(text=f"attempt {attempt}"))
    request.mailer.send(mail(f"attempt {attempt}"))
    if attempt == 0:
        raise transaction.interfaces.TransientError("try again")
    return Response("ok")


def main(global_config: Any = None, **settings: Any) -> Any:
    settings.setdefault("retry.attempts", "3")
    with Configurator(settings=settings) as config:
        config.include(includeme)
        config.include("pyramid_sendmail")
        for name, view in [
            ("note", note_and_mail),
            ("mail_only", mail_only),
            ("savepoint", savepoint),
            ("retried", retried),
        ]:
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
    return config.make_wsgi_app()
