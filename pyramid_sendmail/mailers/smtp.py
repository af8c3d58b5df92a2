"""The SMTP mailer: where the relay is and how to reach it (TLS, AUTH)."""

from __future__ import annotations

import contextlib
import functools
import smtplib
import socket
import ssl
from collections.abc import Callable, Sequence
from ssl import SSLContext
from typing import Any

from zope.interface import implementer

from ..exceptions import MailDeliveryError, RelayUnavailable
from ..interfaces import ISMTPMailer
from ..results import SendResult
from .smtp_auth import login
from .smtp_errors import classify
from .smtp_io import read_directly
from .smtp_pool import ConnectionPool
from .smtp_session import SMTPSession, close_quietly

__all__ = ["SMTPFactory", "SMTPMailer"]

#: Builds the connection instead of :class:`smtplib.SMTP` (a test seam):
#: called with the host, the port and smtplib's keyword arguments.
SMTPFactory = Callable[..., smtplib.SMTP]


@functools.lru_cache(maxsize=1)
def _this_host() -> str:
    """This machine's name for EHLO, looked up once per process."""
    return socket.getfqdn()


@implementer(ISMTPMailer)
class SMTPMailer:
    """Send mail through an SMTP relay.

    *tls* requires STARTTLS; *ssl* speaks TLS from the first byte (port 465).
    Certificates and host names are verified unless *verify* is false;
    *cafile* names the CAs to trust instead of the system's. A *password* is
    only ever sent over TLS unless *allow_insecure_auth* is set. *timeout* is
    the longest, in seconds, the connection may go without progress: each
    wait for a reply or for room to send more data, never a whole upload.
    With *pool_size* above 0, up to that many idle connections are kept
    between sessions, each for at most *pool_idle_timeout* seconds (see
    :class:`~pyramid_sendmail.mailers.smtp_pool.ConnectionPool`).
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
        pool_size: int = 0,
        pool_idle_timeout: float = 30.0,
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
        #: The idle connections kept between sessions (None: each session
        #: connects, and says QUIT when it closes).
        self.pool = ConnectionPool(pool_size, pool_idle_timeout) if pool_size > 0 else None

    def __repr__(self) -> str:
        # Never show the password.
        return f"<SMTPMailer {self.host}:{self.port} user={self.username!r}>"

    def session(self) -> SMTPSession:
        """Return a session that reuses one connection for many messages.

        With a pool, the session starts on a warm connection when one is
        idle, and gives its connection back to the pool when it closes.
        """
        return SMTPSession(self)

    def close(self) -> None:
        """Close the pool's idle connections (also done at exit)."""
        if self.pool is not None:
            self.pool.close()

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> SendResult:
        """Deliver one message over a session of its own (a pooled
        connection, when there is a pool)."""
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
        # smtplib would look the name up (a DNS query) for every connection.
        kwargs["local_hostname"] = self.local_hostname or _this_host()
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
                login(conn, self.username, self.password or "")
                conn.set_debuglevel(self.debug)
            read_directly(conn)
        except BaseException:
            close_quietly(conn)
            raise
        return conn
