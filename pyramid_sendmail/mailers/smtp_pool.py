"""Warm SMTP connections to one relay, kept between sessions.

Direct delivery opens a session per committed request; without a pool each
one pays the TCP handshake, EHLO, STARTTLS and AUTH again (about eight round
trips to a distant relay). :class:`ConnectionPool` keeps up to *size* idle,
ready connections for the next session of any thread of this process:

* a connection is checked before reuse, without a round trip: one the relay
  closed or answered 421 on while it was idle is readable, and is replaced
  (the session also reconnects once when the first reply of a reused
  connection shows it was closed, before anything of the message was taken);
* one idle longer than *idle_timeout* is closed with QUIT, by a thread that
  runs while the pool holds connections, and every idle one at exit;
* a child process never uses its parent's sockets: after ``fork()`` the pool
  forgets them without a word to the relay (the parent still uses them).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import smtplib
import threading
import time
import weakref
from collections.abc import Callable

from .smtp_io import closed_while_idle

__all__ = ["QUIT_TIMEOUT", "ConnectionPool"]


class ConnectionPool:
    """Up to *size* idle connections, each closed after *idle_timeout* seconds."""

    def __init__(
        self, size: int, idle_timeout: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.size = size
        self.idle_timeout = idle_timeout
        self.clock = clock
        self._lock = threading.Lock()
        # (connection, when it was returned), most recently returned last.
        self._idle: list[tuple[smtplib.SMTP, float]] = []
        self._pid = os.getpid()
        self._reaper: threading.Thread | None = None
        self._wake = threading.Event()
        _POOLS.add(self)

    def __len__(self) -> int:
        """How many idle connections the pool holds."""
        return len(self._idle)

    def get(self) -> smtplib.SMTP | None:
        """A warm connection the relay has not closed, or None."""
        stale: list[smtplib.SMTP] = []
        found = None
        with self._lock:
            self._check_fork()
            deadline = self.clock() - self.idle_timeout
            while self._idle:
                conn, since = self._idle.pop()
                if since < deadline or closed_while_idle(conn):
                    stale.append(conn)
                    continue
                found = conn
                break
        for conn in stale:
            _close(conn, quit=False)
        return found

    def put(self, conn: smtplib.SMTP) -> None:
        """Keep *conn*, idle and ready for a new message; QUIT it if the pool is full."""
        with self._lock:
            self._check_fork()
            if len(self._idle) >= self.size:
                keep = False
            else:
                keep = True
                self._idle.append((conn, self.clock()))
                if self._reaper is None:
                    self._wake = threading.Event()
                    self._reaper = threading.Thread(
                        target=self._reap,
                        args=(self._wake,),
                        name="psendmail-smtp-pool",
                        daemon=True,
                    )
                    self._reaper.start()
        if not keep:
            _close(conn, quit=True)

    def close(self) -> None:
        """QUIT every idle connection (the pool can be used again)."""
        with self._lock:
            self._check_fork()
            idle, self._idle = self._idle, []
            self._wake.set()
            self._reaper = None
        for conn, _ in idle:
            _close(conn, quit=True)

    def _check_fork(self) -> None:
        """In a child process, forget the parent's connections (lock held)."""
        if self._pid == os.getpid():
            return
        for conn, _ in self._idle:
            # Closing our descriptor leaves the parent's socket open; a QUIT
            # or a TLS close_notify would end the parent's session.
            _close(conn, quit=False)
        self._idle = []
        self._reaper = None
        self._pid = os.getpid()

    def _reap(self, wake: threading.Event) -> None:
        while True:
            with self._lock:
                if self._reaper is not threading.current_thread():
                    return  # closed, or replaced after a fork
                if not self._idle:
                    self._reaper = None
                    return
                oldest = self._idle[0][1]
            wait = oldest + self.idle_timeout - self.clock()
            if wait > 0 and wake.wait(wait):
                return  # closed
            expired: list[smtplib.SMTP] = []
            with self._lock:
                deadline = self.clock() - self.idle_timeout
                while self._idle and self._idle[0][1] <= deadline:
                    expired.append(self._idle.pop(0)[0])
            for conn in expired:
                _close(conn, quit=True)


#: The longest a QUIT to an idle connection may wait for its reply: a relay
#: that does not answer must not hold up a process that is exiting.
QUIT_TIMEOUT = 1.0


def _close(conn: smtplib.SMTP, quit: bool) -> None:
    with contextlib.suppress(Exception):
        if quit:
            if conn.sock is not None:
                conn.sock.settimeout(min(conn.sock.gettimeout() or QUIT_TIMEOUT, QUIT_TIMEOUT))
            conn.quit()
    with contextlib.suppress(Exception):
        conn.close()


_POOLS: weakref.WeakSet[ConnectionPool] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for pool in list(_POOLS):
        pool.close()


def _after_fork_in_child() -> None:
    for pool in list(_POOLS):
        # Another thread may have held the lock at the fork.
        pool._lock = threading.Lock()
        pool._check_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
