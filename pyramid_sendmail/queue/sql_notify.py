"""Wake-ups across machines for the SQL queue on PostgreSQL (``mail.queue_notify``).

After a commit that queued mail, :func:`announce` sends a payload-less
``NOTIFY`` on the queue's own engine, never in the application's transaction
(PostgreSQL takes a database-wide lock at the commit of a transaction that
notified). Each processor keeps a :class:`Listener`: one connection of its
own that ``LISTEN``\\ s and calls back for every notification.
"""

from __future__ import annotations

import logging
import select
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

__all__ = ["CHANNEL", "Listener", "announce"]

log = logging.getLogger(__name__)

#: The channel notified and listened to.
CHANNEL = "pyramid_sendmail_mail_queue"


def announce(engine: sa.Engine) -> None:
    """Notify the listeners, in a transaction of its own; never raises."""
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"NOTIFY {CHANNEL}")
            connection.commit()
    except Exception:
        log.warning("could not announce new mail with NOTIFY", exc_info=True)


class Listener:
    """A thread that LISTENs on *url* and calls *callback* for each notification.

    It reconnects after an error (polling carries on meanwhile), and calls
    *callback* once each time it starts listening, for what was announced
    while nobody listened.
    """

    def __init__(self, url: sa.URL, callback: Callable[[], None], name: str = "") -> None:
        # psycopg itself, outside the pool: LISTEN is session state (which is
        # also why it cannot go through a transaction-pooling PgBouncer).
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._callback = callback
        self._name = name or "psendmail-listen"
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start listening, unless already listening."""
        if self.running:
            return
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(self._stopped,), name=self._name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop listening (within a second)."""
        self._stopped.set()

    def _run(self, stopped: threading.Event) -> None:
        import psycopg

        while not stopped.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self._callback()
                    self._call_back_until(stopped, connection.pgconn)
            except Exception:
                log.warning(
                    "listening for new mail failed; polling until it works again",
                    exc_info=True,
                )
                stopped.wait(5.0)

    def _call_back_until(self, stopped: threading.Event, pgconn: Any) -> None:
        """Call back once for each batch of notifications on *pgconn* (libpq's
        connection) until *stopped*; raise when the connection fails.

        libpq's own calls, with a one-second wait for the socket, rather than
        psycopg's ``Connection.notifies(timeout=...)``, which psycopg 3.1 lacks.
        """
        while not stopped.is_set():
            readable, _, _ = select.select([pgconn.socket], [], [], 1.0)
            if not readable:
                continue
            pgconn.consume_input()  # raises once the server has gone
            notified = False
            while pgconn.notifies() is not None:
                notified = True
            if notified:
                self._callback()
