"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1, in a thread.

:class:`SMTPTestServer` listens on a free port, records every message it
accepts (envelope, exact data, the connection it came on) and can be told,
while it runs, to misbehave: answer 4xx/5xx, refuse some recipients, drop the
connection, close idle connections or stop answering. It speaks STARTTLS or
implicit TLS with certificates from a ``trustme`` CA, and AUTH PLAIN/LOGIN.

The fixtures that start it live in ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.smtp import (
    MISSING,
    SMTP,
    AuthResult,
    Envelope,
    LoginPassword,
    Session,
    TLSSetupException,
)

HOST = "127.0.0.1"
USERNAME = "mailer"
PASSWORD = "s3cret-Pa55word"

_AUTH_MECHANISMS = {"LOGIN", "PLAIN"}

# How long stop() waits for clients to go before cutting their connections.
_CLOSE_GRACE = 2.0


@dataclass(frozen=True)
class Certificates:
    """A CA the tests can trust and a certificate it issued for 127.0.0.1.

    *cafile* is the PEM file to hand to ``SMTPMailer(cafile=...)``;
    *other_cafile* belongs to an unrelated CA, one that does not vouch for
    the server. *client_certfile* holds a client key and certificate from
    the first CA, for servers that ask for one.
    """

    cafile: str
    other_cafile: str
    client_certfile: str
    server_context: ssl.SSLContext
    #: Like server_context, and requires a client certificate from the CA.
    client_auth_context: ssl.SSLContext

    @classmethod
    def create(cls, directory: Path) -> Certificates:
        """Make both CAs and the server certificate, writing PEMs into *directory*."""
        ca = trustme.CA()
        other = trustme.CA()
        cafile = directory / "ca.pem"
        other_cafile = directory / "other-ca.pem"
        ca.cert_pem.write_to_path(str(cafile))
        other.cert_pem.write_to_path(str(other_cafile))
        client_certfile = directory / "client.pem"
        ca.issue_cert("client.example").private_key_and_cert_chain_pem.write_to_path(
            str(client_certfile)
        )
        server_cert = ca.issue_cert(HOST, "localhost")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_cert.configure_cert(context)
        client_auth = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_cert.configure_cert(client_auth)
        ca.configure_trust(client_auth)
        client_auth.verify_mode = ssl.CERT_REQUIRED
        return cls(str(cafile), str(other_cafile), str(client_certfile), context, client_auth)


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    sender: str
    recipients: tuple[str, ...]
    #: The message exactly as the client meant it: transparency dots removed.
    data: bytes
    mail_options: tuple[str, ...]
    #: 1 for the first connection the server accepted, 2 for the next...
    connection: int
    #: The user this connection authenticated as, if any.
    login: str | None
    tls: bool
    #: Whether the RCPT commands had already arrived when MAIL was read,
    #: which only happens when the client pipelines.
    pipelined: bool
    #: The name the client gave in EHLO.
    helo: str
    #: The DNS name in the client's certificate, if it sent one.
    client_cert: str | None
    #: When it arrived (time.monotonic()), to measure rates.
    at: float = field(default_factory=time.monotonic)


@dataclass
class Faults:
    """Misbehaviour a test switches on while the server runs.

    A reply is a full SMTP reply line such as ``"451 4.3.0 Try later"``.
    """

    #: Reply to every MAIL FROM instead of accepting it.
    mail: str | None = None
    #: Reply for a given recipient address instead of accepting it.
    rcpt: dict[str, str] = field(default_factory=dict)
    #: Reply to the DATA command instead of inviting the data.
    data: str | None = None
    #: Reply after the message data instead of accepting the message.
    data_end: str | None = None
    #: Invite data even when no recipient was accepted (some servers do,
    #: against RFC 2920), then refuse the empty transaction.
    data_without_recipients: bool = False
    #: Close the connection on MAIL FROM without answering.
    drop_at_mail: bool = False
    #: The same, on the connection with this number only (1 for the first).
    drop_at_mail_on: int | None = None
    #: Close the connection right after answering MAIL FROM with *mail*, as
    #: a server that says 421 (shutting down, idle too long) does.
    hang_up_after_mail: bool = False
    #: Close the connection after the first line of message data.
    drop_in_data: bool = False
    #: Stop answering: at ``"MAIL"`` (MAIL FROM) or ``"DATA_END"`` (after
    #: the data), until the client goes away.
    stall: str | None = None
    #: Greet connections beyond this many open ones with a 421 and close
    #: them, as a relay that limits each client's connections does.
    connection_limit: int | None = None
    #: Seconds to wait before accepting each message (a distant or busy relay).
    delay: float = 0.0
    #: Seconds to wait before answering each RCPT TO (a relay that checks
    #: every recipient slowly).
    rcpt_delay: float = 0.0
    #: Refuse the recipients of a transaction beyond this many with
    #: ``452 4.5.3`` (Postfix's smtpd_recipient_limit).
    recipient_limit: int | None = None


class SMTPTestServer:
    """An aiosmtpd server on 127.0.0.1 and a free port, run in a thread.

    *starttls* offers STARTTLS (*require_starttls* refuses mail without
    it); *implicit_tls* speaks TLS from the first byte. *auth* offers
    *auth_mechanisms* (PLAIN and LOGIN) for :data:`USERNAME` /
    :data:`PASSWORD` (over TLS only, unless *auth_without_tls*) and refuses
    mail from clients that did not log in. *client_cert* makes TLS require
    a client certificate from the CA. *smtputf8*, *eightbitmime* and
    *pipelining* choose whether those extensions are advertised.
    """

    def __init__(
        self,
        *,
        certificates: Certificates | None = None,
        starttls: bool = False,
        require_starttls: bool = False,
        implicit_tls: bool = False,
        auth: bool = False,
        auth_without_tls: bool = False,
        auth_mechanisms: tuple[str, ...] = ("LOGIN", "PLAIN"),
        client_cert: bool = False,
        smtputf8: bool = True,
        eightbitmime: bool = True,
        pipelining: bool = True,
    ) -> None:
        if (starttls or implicit_tls) and certificates is None:
            raise ValueError("TLS needs certificates")
        self.host = HOST
        self.port = 0
        self.certificates = certificates
        self.cafile = certificates.cafile if certificates else None
        self.starttls = starttls
        self.require_starttls = require_starttls
        self.implicit_tls = implicit_tls
        self.auth = auth
        self.auth_without_tls = auth_without_tls
        self.auth_mechanisms = auth_mechanisms if auth else ()
        self.client_cert = client_cert
        self.smtputf8 = smtputf8
        self.eightbitmime = eightbitmime
        self.pipelining = pipelining
        self.username = USERNAME
        self.password = PASSWORD
        #: The SIZE it announces and enforces (aiosmtpd's default); None: no SIZE.
        self.data_size_limit: int | None = 33554432
        self.faults = Faults()
        self.messages: list[Received] = []
        self.connections = 0
        self._live: set[_RecordingSMTP] = set()
        #: Errors of the server itself (a bug here, not a fault): stop() raises.
        self.errors: list[BaseException] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<SMTPTestServer {self.host}:{self.port}>"

    def __enter__(self) -> SMTPTestServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what the tests read --------------------------------------------

    @property
    def messages_per_connection(self) -> list[int]:
        """How many messages arrived on each connection, in connection order."""
        counts = Counter(m.connection for m in self.messages)
        return [counts[n] for n in range(1, self.connections + 1)]

    # -- what the tests do ----------------------------------------------

    def drop_connections(self, reply: str | None = None) -> None:
        """Close every open connection now, as a server does to idle clients,
        saying *reply* first (``"421 4.4.2 Idle too long"``) if given."""
        if reply is not None:
            self._call(self._push_all(reply))
        self._call(self._close_all(abort=False))

    @property
    def open_connections(self) -> int:
        """How many client connections are open right now."""
        return len(self._live)

    def start(self) -> None:
        """Listen on a free port; return once connections are accepted."""
        assert self._thread is None, "already started"
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, failure), name=f"smtp-test-server-{id(self)}"
        )
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]

    def stop(self) -> None:
        """Close every connection, stop listening and end the thread.

        Raises the first error the server itself ran into, if any.
        """
        if self._thread is None:
            return
        assert self._loop is not None
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None
        if self.errors:
            raise RuntimeError(f"{self!r} failed: {self.errors[0]!r}") from self.errors[0]

    # -- inside the server's thread -------------------------------------

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            context = self._tls_context() if self.implicit_tls else None
            self._server = loop.run_until_complete(
                loop.create_server(self._protocol, self.host, 0, ssl=context)
            )
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as exc:
            failure.append(exc)
            loop.close()
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _call(self, coroutine: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _protocol(self) -> _RecordingSMTP:
        try:
            return self._new_protocol()
        except Exception as exc:
            # asyncio would drop the connection without a word.
            self.errors.append(exc)
            raise

    def _new_protocol(self) -> _RecordingSMTP:
        self.connections += 1
        tls_context = self._tls_context() if self.starttls else None
        protocol = _RecordingSMTP(
            _Handler(self),
            owner=self,
            number=self.connections,
            hostname="localhost",
            enable_SMTPUTF8=self.smtputf8,
            data_size_limit=self.data_size_limit,
            tls_context=tls_context,
            require_starttls=self.require_starttls,
            authenticator=self._authenticate if self.auth else None,
            auth_require_tls=not self.auth_without_tls,
            auth_exclude_mechanism=_AUTH_MECHANISMS - set(self.auth_mechanisms),
            loop=self._loop,
        )
        self._live.add(protocol)
        return protocol

    def _tls_context(self) -> ssl.SSLContext:
        assert self.certificates is not None
        if self.client_cert:
            return self.certificates.client_auth_context
        return self.certificates.server_context

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login == self.username.encode()
            and auth_data.password == self.password.encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    async def _push_all(self, reply: str) -> None:
        for protocol in list(self._live):
            await protocol.push(reply)

    async def _close_all(self, abort: bool) -> None:
        protocols = [p for p in self._live if p.transport is not None]
        for protocol in protocols:
            assert protocol.transport is not None
            if abort:
                protocol.transport.abort()
            else:
                protocol.transport.close()
        if protocols:
            await asyncio.wait([p.lost for p in protocols], timeout=_CLOSE_GRACE)

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._close_all(abort=False)
        # A TLS client that never answers the closing handshake is cut off.
        await self._close_all(abort=True)
        await self._server.wait_closed()
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _Handler:
    """aiosmtpd hooks: advertise, refuse on demand, record what is accepted."""

    def __init__(self, owner: SMTPTestServer) -> None:
        self.owner = owner

    async def handle_exception(self, error: Exception) -> str:
        # A failed STARTTLS handshake is the client's doing; anything else
        # is a bug in this server.
        if not isinstance(error, TLSSetupException):
            self.owner.errors.append(error)
        return "451 4.3.0 Test server error"

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        # With a handle_EHLO hook aiosmtpd leaves this to us.
        session.host_name = hostname
        if self.owner.pipelining:
            responses.insert(-1, "250-PIPELINING")
        if not self.owner.eightbitmime:
            responses.remove("250-8BITMIME")
        return responses

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> Any:
        if self.owner.faults.mail:
            return self.owner.faults.mail
        if self.owner.auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        return MISSING

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> Any:
        faults = self.owner.faults
        if faults.rcpt_delay:
            await asyncio.sleep(faults.rcpt_delay)
        if faults.recipient_limit is not None and len(envelope.rcpt_tos) >= faults.recipient_limit:
            return "452 4.5.3 Error: too many recipients"
        return faults.rcpt.get(address, MISSING)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(server, _RecordingSMTP)
        if self.owner.faults.stall == "DATA_END":
            await asyncio.Event().wait()
        if self.owner.faults.data_end:
            return self.owner.faults.data_end
        if self.owner.faults.delay:
            await asyncio.sleep(self.owner.faults.delay)
        login = getattr(session.auth_data, "login", None)
        self.owner.messages.append(
            Received(
                sender=envelope.mail_from,
                recipients=tuple(envelope.rcpt_tos),
                data=bytes(envelope.original_content or b""),
                mail_options=tuple(envelope.mail_options),
                connection=server.number,
                login=login.decode() if isinstance(login, bytes) else login,
                tls=server.secure(),
                pipelined=server.pipelined,
                helo=session.host_name or "",
                client_cert=server.client_cert_name(),
            )
        )
        return "250 2.0.0 OK"


class _RecordingSMTP(SMTP):
    """aiosmtpd's protocol, plus the faults that need the connection itself."""

    def __init__(self, handler: _Handler, *, owner: SMTPTestServer, number: int, **kw: Any):
        super().__init__(handler, **kw)
        self.owner = owner
        self.number = number
        self.pipelined = False
        # Greeted rather than turned away by Faults.connection_limit.
        self.admitted = False
        self.lost: asyncio.Future[None] = self.loop.create_future()

    # Methods, not properties: aiosmtpd reads every attribute at creation.
    def secure(self) -> bool:
        return self.owner.implicit_tls or self._tls_protocol is not None

    def client_cert_name(self) -> str | None:
        assert self.transport is not None
        cert = self.transport.get_extra_info("peercert")
        names = [value for kind, value in (cert or {}).get("subjectAltName", ()) if kind == "DNS"]
        return names[0] if names else None

    async def _handle_client(self) -> None:
        limit = self.owner.faults.connection_limit
        if limit is not None and sum(p.admitted for p in self.owner._live) >= limit:
            await self.push("421 4.7.0 Error: too many connections from 127.0.0.1")
            self._drop()
            return
        self.admitted = True
        await super()._handle_client()

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self.owner._live.discard(self)
        if not self.lost.done():
            self.lost.set_result(None)

    async def smtp_MAIL(self, arg: str | None) -> None:
        faults = self.owner.faults
        if faults.drop_at_mail or faults.drop_at_mail_on == self.number:
            self._drop()
            return
        if faults.stall == "MAIL":
            await asyncio.Event().wait()
        if faults.hang_up_after_mail and faults.mail:
            await self.push(faults.mail)
            self._drop()
            return
        # A pipelining client has sent RCPT and DATA along with MAIL.
        self.pipelined = bool(self._reader._buffer)  # type: ignore[attr-defined]
        await super().smtp_MAIL(arg)

    async def smtp_DATA(self, arg: str) -> None:
        faults = self.owner.faults
        accepted = bool(self.envelope and self.envelope.rcpt_tos)
        if faults.data and accepted:
            await self.push(faults.data)
            return
        if faults.drop_in_data and accepted:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            await self._reader.readuntil(b"\r\n")
            self._drop()
            return
        if faults.data_without_recipients and not accepted:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            while await self._reader.readuntil(b"\r\n") != b".\r\n":
                pass
            await self.push("554 5.5.1 No valid recipients")
            return
        await super().smtp_DATA(arg)

    def _drop(self) -> None:
        assert self.transport is not None
        self.transport.close()
