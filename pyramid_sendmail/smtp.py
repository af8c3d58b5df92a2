"""Deliver over SMTP: TLS, authentication, connection reuse and pipelining."""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from ssl import SSLContext
from types import TracebackType
from typing import Any, Generic, TypeVar

from zope.interface import implementer

from .exceptions import MailDeliveryError, RelayUnavailable
from .interfaces import ISMTPMailer
from .results import SendResult

SMTPFactory = Callable[..., smtplib.SMTP]
T = TypeVar("T")


@implementer(ISMTPMailer)
class SMTPMailer:
    """Send mail through an SMTP relay.

    *tls* requires STARTTLS; *ssl* speaks TLS from the first byte (port 465).
    Certificates and host names are verified unless *verify* is false;
    *cafile* names the CAs to trust instead of the system's. A *password* is
    only ever sent over TLS unless *allow_insecure_auth* is set. *timeout*
    bounds every network operation, in seconds.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        ssl: bool = False,
        keyfile: str | None = None,
        certfile: str | None = None,
        cafile: str | None = None,
        verify: bool = True,
        timeout: float = 10.0,
        debug: int = 0,
        allow_insecure_auth: bool = False,
        local_hostname: str | None = None,
        pipelining: bool = True,
        smtp_factory: SMTPFactory | None = None,
    ) -> None:
        if tls and ssl:
            raise ValueError("choose STARTTLS (tls) or implicit TLS (ssl), not both")
        if username and not (tls or ssl or allow_insecure_auth):
            raise ValueError(
                "refusing to send a password over an unencrypted connection: "
                "enable tls or ssl (or allow_insecure_auth)"
            )
        self.host = host
        self.port = port if port is not None else (465 if ssl else 25)
        self.username = username
        self.password = password
        self.tls = tls
        self.ssl = ssl
        self.keyfile = keyfile
        self.certfile = certfile
        self.cafile = cafile
        self.verify = verify
        self.timeout = timeout
        self.debug = debug
        self.local_hostname = local_hostname
        self.pipelining = pipelining
        self._smtp_factory = smtp_factory
        self._context: SSLContext | None = None

    def __repr__(self) -> str:
        # Never show the password.
        return f"<SMTPMailer {self.host}:{self.port} user={self.username!r}>"

    def session(self) -> SMTPSession:
        """Return a session that reuses one connection for many messages."""
        return SMTPSession(self)

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> SendResult:
        """Deliver one message over a connection of its own."""
        with self.session() as session:
            return session.send(sender, recipients, message)

    def ssl_context(self) -> SSLContext:
        """The TLS context, built once: verification on unless disabled."""
        if self._context is None:
            context = ssl.create_default_context(cafile=self.cafile)
            if not self.verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if self.certfile:
                context.load_cert_chain(self.certfile, self.keyfile)
            self._context = context
        return self._context

    def connect(self) -> smtplib.SMTP:
        """Open, secure and authenticate a connection; errors are classified."""
        try:
            return self._connect()
        except Exception as exc:
            error = (
                exc
                if isinstance(exc, MailDeliveryError)
                else classify(exc, f"connecting to {self.host}:{self.port}")
            )
            # Whatever went wrong, no message was sent and none is at fault:
            # the relay is unusable for now, so every message waits.
            raise RelayUnavailable(error.reason, temporary=True, code=error.code) from exc

    def _connect(self) -> smtplib.SMTP:
        kwargs: dict[str, Any] = {"timeout": self.timeout}
        if self.local_hostname:
            kwargs["local_hostname"] = self.local_hostname
        if self._smtp_factory is not None:
            conn = self._smtp_factory(self.host, self.port, **kwargs)
        elif self.ssl:
            conn = smtplib.SMTP_SSL(self.host, self.port, context=self.ssl_context(), **kwargs)
        else:
            conn = smtplib.SMTP(self.host, self.port, **kwargs)
        try:
            # Pipelined commands are small writes that must not wait for the
            # server's delayed acknowledgement (Nagle's algorithm).
            if conn.sock is not None:
                with contextlib.suppress(OSError):
                    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.set_debuglevel(self.debug)
            conn.ehlo_or_helo_if_needed()
            if self.tls:
                if not conn.has_extn("starttls"):
                    raise MailDeliveryError(
                        f"{self.host}:{self.port} does not offer STARTTLS, which mail.tls requires",
                        temporary=True,
                    )
                conn.starttls(context=self.ssl_context())
                conn.ehlo()
            if self.username:
                # smtplib's debug output would print the encoded password.
                conn.set_debuglevel(0)
                conn.login(self.username, self.password or "")
                conn.set_debuglevel(self.debug)
        except BaseException:
            _close_quietly(conn)
            raise
        return conn


class SMTPSession:
    """One SMTP connection used for a batch of messages.

    The connection opens on the first ``send`` and is reopened once when the
    server dropped it while idle; ``close`` (or leaving the ``with`` block)
    ends it with QUIT.
    """

    def __init__(self, mailer: SMTPMailer) -> None:
        self.mailer = mailer
        self._conn: smtplib.SMTP | None = None
        self.connections = 0

    def __enter__(self) -> SMTPSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Say QUIT and close the connection, ignoring any error."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except Exception:
                _close_quietly(conn)

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> SendResult:
        """Transmit one message; see :meth:`pyramid_sendmail.IMailer.send`."""
        reused = self._conn is not None
        try:
            try:
                return self._transmit(self._connection(), sender, recipients, message)
            except _StaleConnection:
                if not reused:
                    raise
                # The server closed an idle connection before our first
                # command of this message: nothing was sent, so reconnecting
                # (once) is safe.
                self._abandon()
                return self._transmit(self._connection(), sender, recipients, message)
        except _StaleConnection:
            self._abandon()
            raise MailDeliveryError(
                f"{self.mailer.host}:{self.mailer.port} closed the connection",
                temporary=True,
            ) from None
        except MailDeliveryError as exc:
            if exc.code is None:
                self._abandon()
            raise
        except Exception as exc:
            self._abandon()
            raise classify(exc, "sending") from exc

    def _connection(self) -> smtplib.SMTP:
        if self._conn is None:
            self._conn = self.mailer.connect()
            self.connections += 1
        return self._conn

    def _abandon(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            _close_quietly(conn)

    def send_many(
        self,
        items: Iterable[tuple[T, str, Sequence[str], bytes]],
        report: Callable[[T, SendResult | MailDeliveryError], None],
    ) -> None:
        """Send ``(token, sender, recipients, message)`` items back to back.

        Each outcome, a :class:`SendResult` or a :class:`MailDeliveryError`,
        is passed to ``report(token, outcome)`` in order; *report* must not
        raise. When the server offers PIPELINING, a message's envelope goes
        out right behind the previous message's data, before its reply is
        read (RFC 2920), so each message costs one round trip instead of two.
        *items* is read lazily: the next item is taken before the previous
        message's data goes out, so that both share one write.
        """
        # The message whose DATA the server accepted, its data not yet sent:
        # it goes out in one write with the next message's envelope.
        ready: _Ready[T] | None = None
        for token, sender, recipients, message in items:
            conn = self._conn
            if conn is None or not self._pipelined(conn):
                report(token, self._outcome(sender, recipients, message))
                continue
            try:
                commands = _envelope_commands(conn, sender, recipients, self.mailer)
            except MailDeliveryError as exc:
                report(token, exc)
                continue
            previous: SendResult | MailDeliveryError | None = None
            try:
                head = _dot_stuff(ready.message) if ready is not None else b""
                conn.send(head + b"".join(commands) + b"DATA\r\n")
                if ready is not None:
                    previous = _final_outcome(conn, ready.accepted, ready.refused)
                replies = [conn.getreply() for _ in range(len(commands) + 1)]
            except Exception as exc:
                self._abandon()
                error = classify(exc, "sending")
                if ready is not None:
                    report(ready.token, previous or error)
                    ready = None
                report(token, error)
                continue
            if ready is not None and previous is not None:
                report(ready.token, previous)
                ready = None
            try:
                accepted, refused = _check_envelope(conn, replies, recipients, len(commands))
            except MailDeliveryError as exc:
                report(token, exc)
            except Exception as exc:
                self._abandon()
                report(token, classify(exc, "sending"))
            else:
                ready = _Ready(token, accepted, refused, message)
        if ready is not None:
            try:
                conn = self._connection()
                conn.send(_dot_stuff(ready.message))
                outcome = _final_outcome(conn, ready.accepted, ready.refused)
            except Exception as exc:
                self._abandon()
                outcome = classify(exc, "sending")
            report(ready.token, outcome)

    def _outcome(
        self, sender: str, recipients: Sequence[str], message: bytes
    ) -> SendResult | MailDeliveryError:
        try:
            return self.send(sender, recipients, message)
        except MailDeliveryError as exc:
            return exc

    def _pipelined(self, conn: smtplib.SMTP) -> bool:
        return self.mailer.pipelining and bool(conn.has_extn("pipelining"))

    def _transmit(
        self, conn: smtplib.SMTP, sender: str, recipients: Sequence[str], message: bytes
    ) -> SendResult:
        commands = _envelope_commands(conn, sender, recipients, self.mailer)
        if self._pipelined(conn):
            replies = _pipeline(conn, [*commands, b"DATA\r\n"])
        else:
            replies = _lockstep(conn, commands)
        accepted, refused = _check_envelope(conn, replies, recipients, len(commands))
        conn.send(_dot_stuff(message))
        outcome = _final_outcome(conn, accepted, refused)
        if isinstance(outcome, MailDeliveryError):
            raise outcome
        return outcome


def _envelope_commands(
    conn: smtplib.SMTP, sender: str, recipients: Sequence[str], mailer: SMTPMailer
) -> list[bytes]:
    options = _mail_options(conn, sender, recipients, mailer)
    return [
        _command("MAIL FROM:", sender, options),
        *(_command("RCPT TO:", r, []) for r in recipients),
    ]


def _check_envelope(
    conn: smtplib.SMTP,
    replies: list[tuple[int, bytes]],
    recipients: Sequence[str],
    sent: int,
) -> tuple[tuple[str, ...], dict[str, tuple[int, bytes]]]:
    """Read the envelope's replies; raise unless DATA may follow.

    Returns the accepted recipients and the refused ones with their replies.
    """
    mail_code, mail_reply = replies[0]
    if mail_code != 250:
        _reset(conn, replies, sent)
        raise reply_error(mail_code, mail_reply, "MAIL FROM refused")
    refused = {
        r: reply
        for r, reply in zip(recipients, replies[1:sent], strict=True)
        if reply[0] not in (250, 251)
    }
    accepted = tuple(r for r in recipients if r not in refused)
    if not accepted:
        _reset(conn, replies, sent)
        temporary = any(400 <= code < 500 for code, _ in refused.values())
        code, text = next(iter(refused.values()))
        raise MailDeliveryError(
            f"every recipient was refused (first: {code} {_text(text)})",
            temporary=temporary,
            code=code,
            refused=refused,
        )
    if len(replies) > sent:
        data_code, data_reply = replies[-1]
    else:
        conn.putcmd("data")
        data_code, data_reply = conn.getreply()
    if data_code != 354:
        _reset(conn, [], 0)
        raise reply_error(data_code, data_reply, "DATA refused", refused)
    return accepted, refused


def _final_outcome(
    conn: smtplib.SMTP, accepted: tuple[str, ...], refused: dict[str, tuple[int, bytes]]
) -> SendResult | MailDeliveryError:
    """Read the reply to a message's data."""
    code, reply = conn.getreply()
    if code != 250:
        # Recipients accepted at RCPT did not get the message either.
        return reply_error(code, reply, "message refused", refused)
    return SendResult(accepted=accepted, refused=refused)


@dataclass
class _Ready(Generic[T]):
    """A message whose DATA command the server accepted."""

    token: T
    accepted: tuple[str, ...]
    refused: dict[str, tuple[int, bytes]]
    message: bytes


class _StaleConnection(Exception):
    """The connection was closed before this message's first reply."""


def _mail_options(
    conn: smtplib.SMTP, sender: str, recipients: Sequence[str], mailer: SMTPMailer
) -> list[str]:
    if all(a.isascii() for a in (sender, *recipients)):
        return []
    if not conn.has_extn("smtputf8"):
        raise MailDeliveryError(
            f"an address is not ASCII and {mailer.host}:{mailer.port} does not offer SMTPUTF8",
            temporary=False,
        )
    options = ["SMTPUTF8"]
    if conn.has_extn("8bitmime"):
        options.append("BODY=8BITMIME")
    return options


def _command(verb: str, address: str, options: list[str]) -> bytes:
    line = f"{verb}<{address}>" + "".join(" " + o for o in options) + "\r\n"
    return line.encode("utf-8")


def _pipeline(conn: smtplib.SMTP, commands: list[bytes]) -> list[tuple[int, bytes]]:
    """Send every command at once (RFC 2920) and read the replies in order."""
    try:
        conn.send(b"".join(commands))
        first = conn.getreply()
    except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
        if _timed_out(exc):
            raise
        raise _StaleConnection() from exc
    return [first] + [conn.getreply() for _ in commands[1:]]


def _lockstep(conn: smtplib.SMTP, commands: list[bytes]) -> list[tuple[int, bytes]]:
    replies = []
    for index, command in enumerate(commands):
        try:
            conn.send(command)
            replies.append(conn.getreply())
        except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
            if index == 0 and not _timed_out(exc):
                raise _StaleConnection() from exc
            raise
        if index == 0 and replies[0][0] != 250:
            break
    return replies


def _reset(conn: smtplib.SMTP, replies: list[tuple[int, bytes]], sent: int) -> None:
    """Leave the connection ready for the next message."""
    if len(replies) > sent and replies[-1][0] == 354:
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


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def reply_error(
    code: int,
    reply: bytes | str,
    what: str,
    refused: dict[str, tuple[int, bytes]] | None = None,
    accepted: tuple[str, ...] = (),
) -> MailDeliveryError:
    """Build the error for an SMTP reply: 4xx is temporary, 5xx permanent."""
    text = _text(reply)
    return MailDeliveryError(
        f"{what}: {code} {text}",
        temporary=not 500 <= code < 600,
        code=code,
        refused=refused,
        accepted=accepted,
    )


def classify(exc: BaseException, doing: str) -> MailDeliveryError:
    """Turn a library or socket error into a classified MailDeliveryError."""
    if isinstance(exc, smtplib.SMTPResponseException) and not isinstance(
        exc, smtplib.SMTPAuthenticationError
    ):
        return reply_error(exc.smtp_code, exc.smtp_error, doing)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return MailDeliveryError(
            f"authentication failed: {exc.smtp_code}", temporary=True, code=exc.smtp_code
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return MailDeliveryError(f"{doing}: {exc}", temporary=False)
    if isinstance(exc, ssl.SSLError):
        return MailDeliveryError(f"TLS failed while {doing}: {exc}", temporary=True)
    if _timed_out(exc):
        return MailDeliveryError(f"timed out while {doing}", temporary=True)
    if isinstance(exc, (OSError, smtplib.SMTPException)):
        return MailDeliveryError(f"{doing}: {exc}", temporary=True)
    return MailDeliveryError(f"{doing}: {exc!r}", temporary=True)


def _timed_out(exc: BaseException) -> bool:
    # smtplib reports a timeout while reading a reply as a disconnection,
    # raised while handling the socket's TimeoutError.
    return isinstance(exc, TimeoutError) or (
        isinstance(exc, smtplib.SMTPServerDisconnected)
        and isinstance(exc.__context__, TimeoutError)
    )


def _close_quietly(conn: smtplib.SMTP) -> None:
    with contextlib.suppress(Exception):
        conn.close()
