"""The socket under an SMTP connection: what smtplib does not do for us.

``mail.timeout`` means *no progress for that long*. smtplib sends a message
with one ``sendall``, whose timeout bounds the whole upload (a 10 MB message
with a 10 s timeout then needs 8 Mbit/s), and then waits for the reply as if
the data had arrived. :func:`send_data` writes in chunks, each wait bounded
by the timeout; :func:`await_reply` keeps waiting for the reply while our
data still drains towards the relay. :func:`closed_while_idle` tells
whether a connection left idle has been closed (or answered 421) by the
relay, without a round trip.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import select
import smtplib
import socket
import ssl
import struct
import termios
import time
from typing import Any

__all__ = [
    "CHUNK",
    "await_reply",
    "closed_while_idle",
    "read_directly",
    "read_reply",
    "send_data",
    "unsent_bytes",
]

# smtplib's limit on a reply line.
_MAXLINE = 8192
#: Bytes per write: at most one TLS record, so that a slow link still shows
#: progress well within any timeout.
CHUNK = 16 * 1024
# Linux: bytes in the send queue not yet acknowledged by the peer.
_OUTQ = getattr(termios, "TIOCOUTQ", None)


def send_data(conn: smtplib.SMTP, data: bytes) -> None:
    """Write *data* on *conn*'s socket; each chunk may wait ``timeout`` seconds."""
    sock = _socket(conn)
    # A plain socket is written to directly while it has room (see
    # _polls_first); a full buffer raises, and send() waits for room.
    fd = sock.fileno() if _polls_first(sock) else -1
    view = memoryview(data)
    while view:
        chunk = view[:CHUNK]
        sent = 0
        if fd >= 0:
            with contextlib.suppress(BlockingIOError):
                sent = os.write(fd, chunk)
        if not sent:
            # send() (not sendall) returns once some bytes went out: the
            # socket timeout bounds one wait for room in the send buffer.
            sent = sock.send(chunk)
        view = view[sent:]


def read_directly(conn: smtplib.SMTP) -> None:
    """Make *conn*'s replies, on a plain socket, read without CPython's poll
    before each receive (a system call a message). Call it once the
    connection is ready, nothing unread."""
    sock = conn.sock
    if sock is None or not _polls_first(sock):
        return
    if conn.file is not None:
        conn.file.close()
    conn.file = io.BufferedReader(_DirectReader(sock))


def _polls_first(sock: socket.socket) -> bool:
    """Whether *sock* is a plain socket with a timeout: CPython polls such a
    socket before each send and receive, a system call that the common case
    (room to write, bytes to read) does not need. It is non-blocking, so the
    operating system's own calls on it raise instead of waiting."""
    return type(sock) is socket.socket and bool(sock.gettimeout())


class _DirectReader(io.RawIOBase):
    """A socket's bytes as they come, waiting (with the socket's timeout)
    only when none are there yet."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            return os.readv(self._sock.fileno(), [buffer])
        except BlockingIOError:
            return self._sock.recv_into(buffer)


def read_reply(conn: smtplib.SMTP) -> tuple[int, bytes]:
    """``conn.getreply()`` with less work per line: a drain reads four
    replies a message. The same results and the same errors (a timeout is
    the context of the :class:`smtplib.SMTPServerDisconnected`)."""
    if conn.debuglevel > 0:
        return conn.getreply()  # which prints each line for mail.debug
    file = conn.file
    if file is None:
        file = conn.file = _socket(conn).makefile("rb")
    texts = []
    while True:
        try:
            line = file.readline(_MAXLINE + 1)
        except OSError as exc:
            conn.close()
            message = "Connection unexpectedly closed: " + str(exc)
            raise smtplib.SMTPServerDisconnected(message) from exc  # a timeout stays findable
        if not line:
            conn.close()
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        if len(line) > _MAXLINE:
            conn.close()
            raise smtplib.SMTPResponseException(500, "Line too long.")
        texts.append(line[4:].strip(b" \t\r\n"))
        if line[3:4] != b"-":
            break
    try:
        code = int(line[:3])
    except ValueError:
        code = -1
    return code, texts[0] if len(texts) == 1 else b"\n".join(texts)


def await_reply(conn: smtplib.SMTP) -> None:
    """Wait until a reply can be read, for as long as our data still drains.

    Returns when the socket is readable, or when the relay made no progress
    for the socket's timeout (smtplib's read then times out as usual).
    """
    sock = _socket(conn)
    timeout = sock.gettimeout()
    unsent = unsent_bytes(sock)
    if timeout is None or unsent is None or not unsent:
        return
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return
    while not _readable(sock, timeout):
        still = unsent_bytes(sock)
        if still is None or still >= unsent:
            # No progress for a whole timeout: fail now rather than after
            # another one in smtplib's read.
            raise TimeoutError("timed out")
        unsent = still


def closed_while_idle(conn: smtplib.SMTP) -> bool:
    """Whether the relay closed *conn*, or said something, while it was idle.

    An idle SMTP connection receives nothing unless the server is closing
    it (end of file, or a 421 first): any readable byte means it is unusable.
    """
    sock = conn.sock
    if sock is None:
        return True
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    try:
        return _readable(sock, 0.0)
    except (OSError, ValueError):
        return True


def _socket(conn: smtplib.SMTP) -> socket.socket:
    sock = conn.sock
    if sock is None:
        raise smtplib.SMTPServerDisconnected("please run connect() first")
    return sock


def _readable(sock: socket.socket, timeout: float) -> bool:
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLPRI)
        deadline = time.monotonic() + timeout
        while True:
            try:
                return bool(poller.poll(max(0.0, deadline - time.monotonic()) * 1000))
            except InterruptedError:  # pragma: no cover - retried by Python since 3.5
                continue
    readable, _, _ = select.select([sock], [], [], timeout)
    return bool(readable)


def unsent_bytes(sock: socket.socket) -> int | None:
    """Bytes our side has not yet had acknowledged, where the system says."""
    if _OUTQ is None:
        return None
    with contextlib.suppress(OSError):
        (count,) = struct.unpack("i", fcntl.ioctl(sock.fileno(), _OUTQ, b"\0\0\0\0"))
        return int(count)
    return None
