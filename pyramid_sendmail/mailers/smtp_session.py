"""One SMTP connection sending many messages: reuse, reconnection and
pipelining (RFC 2920), per-recipient results."""

from __future__ import annotations

import contextlib
import os
import smtplib
import socket
import ssl
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from ..exceptions import MailDeliveryError
from ..results import SendResult, SMTPReply
from .session import Outcome, Report, ReportSteps, Session, SteppingReport
from .smtp_errors import classify, reply_error, timed_out
from .smtp_io import await_reply, read_reply, send_data, unsent_bytes
from .smtp_pool import ConnectionPool

__all__ = ["Relay", "SMTPSession", "close_quietly"]

T = TypeVar("T")

#: The reply of a server that closes the connection (RFC 5321, 3.8).
_CLOSING = 421


class Relay(Protocol):
    """What a session needs of its mailer (an
    :class:`~pyramid_sendmail.SMTPMailer`): where the relay is, whether to
    pipeline, and a way to open a ready connection."""

    host: str
    port: int
    pipelining: bool
    #: Where idle connections wait for the next session, if anywhere.
    pool: ConnectionPool | None

    def connect(self) -> smtplib.SMTP:
        """Open, secure and authenticate a connection, or raise a
        :class:`~pyramid_sendmail.RelayUnavailable`."""
        ...


class SMTPSession(Session):
    """One SMTP connection used for a batch of messages.

    The connection opens on the first ``send`` (or comes warm from the
    mailer's pool) and is reopened once when the server dropped it while
    idle; ``close`` (or leaving the ``with`` block) gives it back to the
    pool, or ends it with QUIT.

    With PIPELINING, :meth:`send_many` holds an accepted message's data
    until it takes the next item, so that both go out in one write. Set
    :attr:`hold_data` to False where taking an item may wait (the queue
    processor's ``mail.rate_limit``): each message's data then goes out as
    soon as the relay invites it.
    """

    def __init__(self, mailer: Relay) -> None:
        self.mailer = mailer
        self.hold_data = True
        self._conn: smtplib.SMTP | None = None
        # Whether the connection has carried a message before this one.
        self._reused = False
        self._pid = os.getpid()
        # Why open() could not connect: raised by the first send instead
        # of trying again.
        self._open_error: MailDeliveryError | None = None

    def open(self) -> None:
        """Connect now, or take a warm connection from the pool, so that a
        pass can open its connections together (each in a thread). A
        failure is kept, and raised by the first send instead of connecting
        a second time."""
        try:
            self._connection()
        except MailDeliveryError as exc:
            self._open_error = exc

    @property
    def open_error(self) -> MailDeliveryError | None:
        """Why :meth:`open` could not connect, until a send raises it."""
        return self._open_error

    def close(self) -> None:
        """Give the connection back to the pool, or say QUIT and close it,
        ignoring any error."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        pool = self.mailer.pool
        if os.getpid() != self._pid:
            close_quietly(conn)  # the parent's socket: not a word on it
        elif pool is not None:
            pool.put(conn)
        else:
            try:
                conn.quit()
            except Exception:
                close_quietly(conn)

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> SendResult:
        """Transmit one message; see :meth:`pyramid_sendmail.interfaces.IMailer.send`.

        Recipients that the relay refuses for their number (``452 4.5.3``)
        get the message in further transactions on the connection (RFC
        5321, 4.5.3.1.10); a failure of those leaves them refused as before.
        """
        result = self._send_one(sender, recipients, message)
        accepted, refused = list(result.accepted), dict(result.refused)
        while over := [r for r, reply in refused.items() if reply.too_many_recipients]:
            try:
                more = self._send_one(sender, over, message)
            except MailDeliveryError:
                break
            accepted += more.accepted
            refused = {r: reply for r, reply in refused.items() if r not in over}
            refused.update(more.refused)
        if len(accepted) == len(result.accepted):
            return result
        return SendResult(accepted=tuple(accepted), refused=refused)

    def _send_one(self, sender: str, recipients: Sequence[str], message: bytes) -> SendResult:
        conn = self._connection()
        try:
            try:
                return self._transmit(conn, sender, recipients, message)
            except _StaleConnection:
                if not self._reused:
                    raise
                # The server closed an idle connection (or said 421) before
                # its first reply to this message: nothing was taken, so
                # sending it (once) over a new connection cannot duplicate it.
                self._abandon()
                self._conn = self.mailer.connect()
                return self._transmit(self._conn, sender, recipients, message)
        except _StaleConnection as stale:
            self._abandon()
            closed = f"{self.mailer.host}:{self.mailer.port} closed the connection"
            if stale.reply is not None:
                raise reply_error(stale.reply, closed) from None
            raise MailDeliveryError(closed, temporary=True) from None
        except MailDeliveryError as exc:
            # No reply (the connection failed), or one that closes it.
            if exc.code in (None, _CLOSING):
                self._abandon()
            raise
        except Exception as exc:
            self._abandon()
            raise classify(exc, "sending") from exc
        except BaseException:
            # Interrupted mid-transaction: the connection is in no state to reuse.
            self._abandon()
            raise
        finally:
            self._reused = self._conn is not None

    def _connection(self) -> smtplib.SMTP:
        if self._open_error is not None:
            error, self._open_error = self._open_error, None
            raise error
        if self._conn is not None and self._pid != os.getpid():
            # Forked with a session open: the socket is the parent's.
            self._abandon()
            self._pid = os.getpid()
        if self._conn is None:
            self._take_warm()
            if self._conn is None:
                self._conn = self.mailer.connect()
        return self._conn

    def _take_warm(self) -> None:
        """Take an idle connection from the mailer's pool, if it has one."""
        pool = self.mailer.pool
        self._conn = pool.get() if pool is not None else None
        self._reused = self._conn is not None

    def _abandon(self) -> None:
        conn, self._conn = self._conn, None
        self._reused = False
        if conn is not None:
            close_quietly(conn)

    def send_many(
        self,
        items: Iterable[tuple[T, str, Sequence[str], bytes]],
        report: Report[T],
    ) -> None:
        """Send ``(token, sender, recipients, message)`` items back to back.

        Each outcome, a :class:`~pyramid_sendmail.SendResult` or a
        :class:`~pyramid_sendmail.MailDeliveryError`,
        is passed to ``report(token, outcome)`` in order; *report* must not
        raise. When the server offers PIPELINING, a message's envelope goes
        out right behind the previous message's data, before its reply is
        read (RFC 2920), so each message costs one round trip instead of two.
        *items* is read lazily: the next item is taken before the previous
        message's data goes out, so that both share one write.
        """
        # Alone, a session waits in its blocking reads (each step is sent None).
        for _socket in self._guarded_steps(items, report):
            pass

    def send_many_steps(
        self,
        items: Iterable[tuple[T, str, Sequence[str], bytes]],
        report: SteppingReport[T],
    ) -> Generator[socket.socket | int, bool | None, None]:
        """:meth:`send_many` as steps, for one thread driving many sessions.

        Each time the session would wait for the relay, the generator yields
        the socket to wait on; send it ``True`` once the socket is readable,
        or ``False`` after ``timeout`` seconds without (the wait then goes
        on while our data still drains towards the relay, else times out).
        Opening a connection (:meth:`open` it first) and the wait for
        replies that follow others already arrived are not steps: they
        block. *report* may return steps of its own (a settle that waits on
        the queue's database): they are yielded in turn, before the session
        sends anything more, so a message the relay accepted is settled
        before the next one's data goes out.
        """
        if self._conn is None and self._open_error is None:
            # A warm connection carries the first message pipelined too: a
            # connection opened here would stop every other session.
            self._take_warm()
        yield from self._guarded_steps(items, report)

    def _guarded_steps(
        self,
        items: Iterable[tuple[T, str, Sequence[str], bytes]],
        report: SteppingReport[T],
    ) -> Generator[socket.socket | int, bool | None, None]:
        try:
            yield from self._send_steps(items, report)
        except BaseException:
            # Interrupted mid-transaction (or the steps were closed): the
            # connection is in no state to reuse.
            self._abandon()
            raise

    def _send_steps(
        self,
        items: Iterable[tuple[T, str, Sequence[str], bytes]],
        report: SteppingReport[T],
    ) -> Generator[socket.socket | int, bool | None, None]:
        # The message whose DATA the server accepted, its data not yet sent:
        # it goes out in one write with the next message's envelope.
        ready: _Ready[T] | None = None
        for token, sender, recipients, message in items:
            conn = self._conn
            if conn is None or not self._pipelined(conn):
                yield from _reported(report(token, self._outcome(sender, recipients, message)))
                continue
            try:
                commands = _envelope_commands(conn, sender, recipients, message, self.mailer)
            except MailDeliveryError as exc:
                yield from _reported(report(token, exc))
                continue
            previous: Outcome | None = None
            try:
                head = _dot_stuff(ready.message) if ready is not None else b""
                send_data(conn, head + b"".join(commands) + b"DATA\r\n")
                readable = yield from _awaiting(conn)
                if ready is not None:
                    previous = _final_outcome(conn, ready.accepted, ready.refused, readable)
                replies = _replies(conn, len(commands) + 1)
            except Exception as exc:
                self._abandon()
                error = exc if isinstance(exc, MailDeliveryError) else classify(exc, "sending")
                if ready is not None:
                    yield from _reported(report(ready.token, previous or error))
                    ready = None
                yield from _reported(report(token, error))
                continue
            if ready is not None and previous is not None:
                yield from _reported(report(ready.token, previous))
                ready = None
            try:
                accepted, refused = _check_envelope(conn, replies, recipients, len(commands))
            except MailDeliveryError as exc:
                yield from _reported(report(token, exc))
            except Exception as exc:
                self._abandon()
                yield from _reported(report(token, classify(exc, "sending")))
            else:
                ready = _Ready(token, accepted, refused, message)
                if not self.hold_data:
                    yield from self._data_steps(ready, report)
                    ready = None
        if ready is not None:
            yield from self._data_steps(ready, report)

    def _data_steps(
        self, ready: _Ready[T], report: SteppingReport[T]
    ) -> Generator[socket.socket | int, bool | None, None]:
        """Send *ready*'s data alone, then report its outcome."""
        try:
            conn = self._connection()
            send_data(conn, _dot_stuff(ready.message))
            readable = yield from _awaiting(conn)
            outcome = _final_outcome(conn, ready.accepted, ready.refused, readable)
        except Exception as exc:
            self._abandon()
            outcome = classify(exc, "sending")
        yield from _reported(report(ready.token, outcome))

    def _outcome(self, sender: str, recipients: Sequence[str], message: bytes) -> Outcome:
        try:
            return self.send(sender, recipients, message)
        except MailDeliveryError as exc:
            return exc

    def _pipelined(self, conn: smtplib.SMTP) -> bool:
        return self.mailer.pipelining and bool(conn.has_extn("pipelining"))

    def _transmit(
        self, conn: smtplib.SMTP, sender: str, recipients: Sequence[str], message: bytes
    ) -> SendResult:
        commands = _envelope_commands(conn, sender, recipients, message, self.mailer)
        if self._pipelined(conn):
            replies = _pipeline(conn, [*commands, b"DATA\r\n"])
        else:
            replies = _lockstep(conn, commands)
        accepted, refused = _check_envelope(conn, replies, recipients, len(commands))
        send_data(conn, _dot_stuff(message))
        outcome = _final_outcome(conn, accepted, refused)
        if isinstance(outcome, MailDeliveryError):
            raise outcome
        return outcome


def _envelope_commands(
    conn: smtplib.SMTP,
    sender: str,
    recipients: Sequence[str],
    message: bytes,
    mailer: Relay,
) -> list[bytes]:
    options = _mail_options(conn, sender, recipients, message, mailer)
    return [
        _command("MAIL FROM:", sender, options),
        *(_command("RCPT TO:", r, []) for r in recipients),
    ]


def _check_envelope(
    conn: smtplib.SMTP,
    replies: list[SMTPReply],
    recipients: Sequence[str],
    sent: int,
) -> tuple[tuple[str, ...], dict[str, SMTPReply]]:
    """Read the envelope's replies; raise unless DATA may follow.

    Returns the accepted recipients and the refused ones with their replies.
    """
    if replies[0].code != 250:
        _reset(conn, replies, sent)
        raise reply_error(replies[0], "MAIL FROM refused", command="MAIL")
    refused = {
        r: reply
        for r, reply in zip(recipients, replies[1:sent], strict=True)
        if reply.code not in (250, 251)
    }
    accepted = tuple(r for r in recipients if r not in refused)
    if not accepted:
        _reset(conn, replies, sent)
        first = next(iter(refused.values()))
        # Worth trying again if any one recipient may take it later.
        raise MailDeliveryError(
            f"every recipient was refused (first: {first})",
            temporary=any(reply.temporary for reply in refused.values()),
            code=first.code,
            refused=refused,
            command="RCPT",
        )
    if len(replies) > sent:
        data = replies[-1]
    else:
        conn.putcmd("data")
        data = _reply(conn)
    if data.code != 354:
        _reset(conn, [], 0)
        raise reply_error(data, "DATA refused", refused, command="DATA")
    return accepted, refused


def _final_outcome(
    conn: smtplib.SMTP,
    accepted: tuple[str, ...],
    refused: dict[str, SMTPReply],
    readable: bool = False,
) -> Outcome:
    """Read the reply to a message's data (waiting for it unless *readable*)."""
    if not readable:
        await_reply(conn)
    reply = _reply(conn)
    if reply.code != 250:
        # Recipients accepted at RCPT did not get the message either.
        return reply_error(reply, "message refused", refused, command="DATA")
    return SendResult(accepted=accepted, refused=refused)


def _awaiting(conn: smtplib.SMTP) -> Generator[socket.socket, bool | None, bool]:
    """A step: wait (by yielding the socket) for the relay's next reply.

    Returns whether the reply is known to be there. Sent ``None`` (a session
    driven alone), it leaves the wait to the blocking read. Sent ``False``
    (no reply within the timeout), it waits on while our data still drains
    towards the relay, and times out when it does not: ``mail.timeout`` is
    the longest time without progress.
    """
    sock = conn.sock
    if sock is None or (isinstance(sock, ssl.SSLSocket) and sock.pending()):
        return True
    unsent: int | None = None
    first = True
    while True:
        readable = yield sock
        if readable is None:
            return False
        if readable:
            return True
        still = unsent_bytes(sock)
        if not still or (not first and unsent is not None and still >= unsent):
            raise TimeoutError("timed out")
        unsent, first = still, False


def _reported(steps: ReportSteps | None) -> ReportSteps:
    """The steps a report returned, if any (see ``send_many_steps``)."""
    if steps is not None:
        yield from steps


def _reply(conn: smtplib.SMTP) -> SMTPReply:
    code, message = read_reply(conn)
    return SMTPReply(code, message)


@dataclass
class _Ready(Generic[T]):
    """A message whose DATA command the server accepted."""

    token: T
    accepted: tuple[str, ...]
    refused: dict[str, SMTPReply]
    message: bytes


class _StaleConnection(Exception):
    """The connection was closed before this message's first reply, or that
    reply was a 421 (the server closes it): nothing of the message was taken.

    *reply* is the 421, when there was one.
    """

    def __init__(self, reply: SMTPReply | None = None) -> None:
        super().__init__(reply)
        self.reply = reply


def _mail_options(
    conn: smtplib.SMTP,
    sender: str,
    recipients: Sequence[str],
    message: bytes,
    mailer: Relay,
) -> list[str]:
    options = _size_option(conn, message, mailer)
    # Raw UTF-8 in the header block means an address there is not ASCII
    # (a Reply-To, say), which only SMTPUTF8 may carry.
    end = message.find(b"\r\n\r\n")
    head = message[:end] if end >= 0 else message
    if all(a.isascii() for a in (sender, *recipients)) and head.isascii():
        return options
    if not conn.has_extn("smtputf8"):
        raise MailDeliveryError(
            f"an address is not ASCII and {mailer.host}:{mailer.port} does not offer SMTPUTF8",
            temporary=False,
        )
    options.append("SMTPUTF8")
    if conn.has_extn("8bitmime"):
        options.append("BODY=8BITMIME")
    return options


def _size_option(conn: smtplib.SMTP, message: bytes, mailer: Relay) -> list[str]:
    """``SIZE=`` for a relay that offers SIZE (RFC 1870), so that it can
    refuse a message too large before the upload; a message over the limit
    the relay announced fails here, without a byte of it sent."""
    announced = conn.esmtp_features.get("size")
    if announced is None:
        return []
    size = len(message)
    if announced.isdigit() and 0 < int(announced) < size:
        raise MailDeliveryError(
            f"the message is {size} bytes, over the {announced} that "
            f"{mailer.host}:{mailer.port} takes (its SIZE)",
            temporary=False,
            code=552,
            command="MAIL",
        )
    return [f"SIZE={size}"]


def _command(verb: str, address: str, options: list[str]) -> bytes:
    line = f"{verb}<{address}>" + "".join(" " + o for o in options) + "\r\n"
    return line.encode("utf-8")


def _pipeline(conn: smtplib.SMTP, commands: list[bytes]) -> list[SMTPReply]:
    """Send every command at once (RFC 2920) and read the replies in order."""
    try:
        conn.send(b"".join(commands))
        first = _reply(conn)
    except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
        if timed_out(exc):
            raise
        raise _StaleConnection() from exc
    if first.code == _CLOSING:
        raise _StaleConnection(first)
    return _replies(conn, len(commands) - 1, [first])


def _replies(
    conn: smtplib.SMTP, count: int, replies: list[SMTPReply] | None = None
) -> list[SMTPReply]:
    """Read *count* more pipelined replies after *replies*.

    A server that answered 421 closes the connection without answering the
    rest: the error then carries its 421, not the broken connection.
    """
    replies = list(replies or [])
    for _ in range(count):
        try:
            replies.append(_reply(conn))
        except (smtplib.SMTPServerDisconnected, OSError):
            closing = next((r for r in replies if r.code == _CLOSING), None)
            if closing is None:
                raise
            raise reply_error(closing, "the relay closed the connection") from None
    return replies


def _lockstep(conn: smtplib.SMTP, commands: list[bytes]) -> list[SMTPReply]:
    replies = []
    for index, command in enumerate(commands):
        try:
            conn.send(command)
            replies.append(_reply(conn))
        except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
            if index == 0 and not timed_out(exc):
                raise _StaleConnection() from exc
            raise
        if index == 0 and replies[0].code == _CLOSING:
            raise _StaleConnection(replies[0])
        if index == 0 and replies[0].code != 250:
            break
    return replies


def _reset(conn: smtplib.SMTP, replies: list[SMTPReply], sent: int) -> None:
    """Leave the connection ready for the next message."""
    if len(replies) > sent and replies[-1].code == 354:
        # DATA was accepted in a pipeline though no recipient was: an empty
        # message ends it, and a conforming server then refuses that message.
        conn.send(b".\r\n")
        conn.getreply()
    # On failure the next message finds the connection stale and reconnects.
    with contextlib.suppress(smtplib.SMTPException):
        conn.rset()


def _dot_stuff(message: bytes) -> bytes:
    if message.startswith(b"."):
        message = b"." + message
    message = message.replace(b"\r\n.", b"\r\n..")
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    return message + b".\r\n"


def close_quietly(conn: smtplib.SMTP) -> None:
    """Close *conn* without a word to the server, ignoring any error."""
    with contextlib.suppress(Exception):
        conn.close()
