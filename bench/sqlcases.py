"""The SQL queue's measurements, on PostgreSQL (issue 10); run through cases.py.

``--url`` is a fresh database of the private cluster run.py started. Nothing
else is contacted. What is timed:

``sql-request``
    *n* pairs of WebTest GETs through pyramid_tm and zope.sqlalchemy, in
    the Pyramid cookiecutter's layout: one view writes an app row and sends
    one message into the SQL queue, the other writes the row alone; then
    the queued row's INSERT alone on a plain psycopg cursor (into a copy of
    the table), the floor of what a queued message can add.
``sql-drain``
    a table of *n* queued rows (written first, untimed, through a session
    as an application commits them) delivered to ``--port`` until empty.
``sql-status``
    ``SQLQueue.status()`` in this process.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import payload

__all__ = ["SQL_CASES"]


def _engine(url: str) -> Any:
    import sqlalchemy as sa

    from pyramid_sendmail.queue.sql_schema import create

    engine = sa.create_engine(url)
    with engine.begin() as connection:
        create(connection)
    return engine


def _app_table(engine: Any) -> Any:
    import sqlalchemy as sa

    metadata = sa.MetaData()
    notes = sa.Table(
        "bench_notes",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("text", sa.String(200), nullable=False),
    )
    metadata.create_all(engine)
    return notes


def case_sql_request(args: argparse.Namespace) -> dict:
    import sqlalchemy as sa
    import zope.sqlalchemy
    from pyramid.config import Configurator
    from pyramid.response import Response
    from sqlalchemy.orm import sessionmaker
    from webtest import TestApp

    from pyramid_sendmail import Message

    engine = _engine(args.url)
    notes = _app_table(engine)
    factory = sessionmaker(bind=engine)
    settings = {
        "sqlalchemy.url": args.url,
        "mail.queue": "sql",
        "mail.default_sender": payload.SENDER,
        "tm.manager_hook": "pyramid_tm.explicit_manager",
    }
    config = Configurator(settings=settings)
    config.include("pyramid_tm")

    # The cookiecutter's request.dbsession, joined to request.tm.
    def dbsession(request: Any) -> Any:
        session = factory(info={"request": request})
        zope.sqlalchemy.register(session, transaction_manager=request.tm)
        return session

    config.add_request_method(dbsession, reify=True)
    config.include("pyramid_sendmail")

    def view(request: Any) -> Response:
        request.dbsession.execute(notes.insert().values(text="a note"))
        if request.matchdict["what"] == "send":
            request.mailer.send(
                Message(subject=payload.SUBJECT, recipients=[payload.RECIPIENT], body=payload.BODY)
            )
        return Response("ok")

    config.add_route("page", "/{what}")
    config.add_view(view, route_name="page")
    app = TestApp(config.make_wsgi_app())
    for _ in range(max(20, args.n // 20)):
        app.get("/send")
        app.get("/row")
    send_ns: list[int] = []
    row_ns: list[int] = []
    clock = time.perf_counter_ns
    from cases import _Profile

    with _Profile(args.profile):
        for i in range(args.n):
            # Alternate which goes first, so neither always follows the other.
            for what in ("send", "row") if i % 2 else ("row", "send"):
                started = clock()
                app.get("/" + what)
                (send_ns if what == "send" else row_ns).append(clock() - started)
    send_ns.sort()
    row_ns.sort()
    # The floor under "added": the same row's INSERT, inside a transaction
    # as in the request, on a plain psycopg cursor into a copy of the
    # queue's table (its indexes included), in the same process and moment.
    trip_ns: list[int] = []
    template = _template_row(engine)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("CREATE TABLE bench_floor (LIKE mail_queue INCLUDING ALL)")
        columns = list(template)
        insert = (
            f"INSERT INTO bench_floor ({', '.join(columns)}) "
            f"VALUES ({', '.join(['%s'] * len(columns))})"
        )
        for _ in range(max(100, args.n // 2)):
            started = clock()
            cursor.execute(insert, [template[c] for c in columns])
            trip_ns.append(clock() - started)
        raw.rollback()
    finally:
        raw.close()
    trip_ns.sort()
    send_ms = send_ns[len(send_ns) // 2] / 1e6
    row_ms = row_ns[len(row_ns) // 2] / 1e6
    from pyramid_sendmail.queue.sql_schema import queue_table

    with engine.connect() as connection:
        queued = connection.execute(sa.select(sa.func.count()).select_from(queue_table)).scalar()
    return {
        "n": args.n,
        "send_ms": send_ms,
        "nothing_ms": row_ms,
        "added_ms": send_ms - row_ms,
        "floor_insert_ms": trip_ns[len(trip_ns) // 2] / 1e6,
        "send_p90_ms": send_ns[len(send_ns) * 9 // 10] / 1e6,
        "nothing_p90_ms": row_ns[len(row_ns) * 9 // 10] / 1e6,
        "queued_ok": queued == args.n + max(20, args.n // 20),
    }


def _fill(engine: Any, n: int) -> float:
    """Queue *n* numbered messages; return the seconds it took (untimed elsewhere).

    The first row goes through ``SQLQueue.write`` in a session, as an
    application commits it; the others are copies of that row (COPY, in one
    statement) with only the message id changed, same length: identical
    rows, without *n* round trips through the write path.
    """
    import transaction
    from cases import _psm_envelope
    from sqlalchemy.orm import Session
    from zope.sqlalchemy import mark_changed, register

    from pyramid_sendmail.queue.sql import SQLQueue
    from pyramid_sendmail.queue.sql_schema import queue_table

    started = time.perf_counter()
    manager = transaction.TransactionManager(explicit=True)
    session = Session(engine)
    register(session, transaction_manager=manager)
    with manager:
        SQLQueue(engine).write(session, [_psm_envelope(0)])
        mark_changed(session, transaction_manager=manager)
    session.close()
    columns = [c.name for c in queue_table.columns if c.name != "id"]
    template = _template_row(engine)
    with engine.begin() as connection:
        marker = "bench-00000000@example.com"
        cursor = connection.connection.driver_connection.cursor()
        with cursor.copy(f"COPY mail_queue ({', '.join(columns)}) FROM STDIN") as copy:
            for i in range(1, n):
                mid = f"bench-{i:08d}@example.com"
                row = dict(template)
                row["message_id"] = template["message_id"].replace(marker, mid)
                row["data"] = template["data"].replace(marker.encode(), mid.encode())
                copy.write_row([row[c] for c in columns])
    # What autovacuum does after a bulk insert: fresh statistics for the planner.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE mail_queue")
    return time.perf_counter() - started


def _template_row(engine: Any) -> dict[str, Any]:
    """The first queued row's columns (all but the id)."""
    import sqlalchemy as sa

    from pyramid_sendmail.queue.sql_schema import queue_table

    columns = [c for c in queue_table.columns if c.name != "id"]
    with engine.connect() as connection:
        row = connection.execute(sa.select(*columns).order_by(queue_table.c.id).limit(1)).one()
    return dict(row._mapping)


def _rows(engine: Any) -> int:
    import sqlalchemy as sa

    from pyramid_sendmail.queue.sql_schema import queue_table

    with engine.connect() as connection:
        return int(
            connection.execute(sa.select(sa.func.count()).select_from(queue_table)).scalar_one()
        )


def case_sql_drain(args: argparse.Namespace) -> dict:
    from cases import _maxrss_mb, _Profile

    from pyramid_sendmail import SMTPMailer
    from pyramid_sendmail.processor import QueueProcessor
    from pyramid_sendmail.queue.sql import SQLQueue

    engine = _engine(args.url)
    engine.dispose()
    fill_seconds = 0.0 if args.prefilled else _fill(engine, args.n)
    queued = _rows(engine)
    engine.dispose()
    mailer = SMTPMailer(host="127.0.0.1", port=args.port, timeout=30.0)
    options = {} if args.workers is None else {"workers": args.workers}
    drain: Callable[[], object]
    if args.processes > 1:
        # What `psendmail run --once` does with mail.queue_processes > 1:
        # each forked child builds its own queue (its own engine).
        from pyramid_sendmail.supervisor import drain_in_processes

        def drain() -> object:
            return drain_in_processes(
                args.processes, lambda: QueueProcessor(SQLQueue(args.url), mailer, **options)
            )

    else:
        queue = SQLQueue(args.url)
        drain = QueueProcessor(queue, mailer, **options).process_once
    rss_before = _maxrss_mb()
    with _Profile(args.profile):
        started = time.perf_counter()
        drain()
        elapsed = time.perf_counter() - started
    left = _rows(engine)
    return {
        "n": queued,
        "seconds": elapsed,
        "rate": (queued - left) / elapsed,
        "left": left,
        "fill_seconds": fill_seconds,
        "maxrss_before_mb": rss_before,
    }


def case_sql_fill(args: argparse.Namespace) -> dict:
    engine = _engine(args.url)
    seconds = _fill(engine, args.n)
    return {"n": args.n, "seconds": seconds, "claimable": _rows(engine)}


def case_sql_status(args: argparse.Namespace) -> dict:
    from pyramid_sendmail.queue.sql import SQLQueue

    queue = SQLQueue(args.url)
    queue.status()  # connect first: the engine's first connection is not the status
    started = time.perf_counter()
    report = queue.status()
    return {"seconds": time.perf_counter() - started, "queued": report["queued"]["count"]}


SQL_CASES: dict[str, Callable[[argparse.Namespace], dict]] = {
    "sql-request": case_sql_request,
    "sql-drain": case_sql_drain,
    "sql-fill": case_sql_fill,
    "sql-status": case_sql_status,
}
