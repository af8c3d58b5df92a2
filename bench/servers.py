"""Servers the benchmark starts in processes of their own.

``python servers.py sink``
    an aiosmtpd sink on 127.0.0.1 that throws messages away, optionally with
    STARTTLS (a ``trustme`` certificate, whose CA it writes to ``--cafile``)
    and AUTH (``payload.USERNAME`` / ``payload.PASSWORD``).
``python servers.py proxy``
    a TCP proxy on 127.0.0.1 that holds every chunk for ``--delay`` seconds
    in each direction: with 5 ms it makes a 10 ms round trip (this kernel
    has no netem).

Each prints ``READY <port>`` once it listens; on SIGTERM or SIGINT it prints
one JSON line of counters and exits. Neither outlives ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import ssl
import sys
import warnings

import payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    sink = sub.add_parser("sink")
    sink.add_argument("--tls", action="store_true", help="offer STARTTLS and AUTH")
    sink.add_argument("--cafile", help="write the trustme CA here (with --tls)")
    proxy = sub.add_parser("proxy")
    proxy.add_argument("--target-port", type=int, required=True)
    proxy.add_argument("--delay", type=float, default=0.005)
    for p in (sink, proxy):
        p.add_argument("--max-seconds", type=float, default=1800.0)
    args = parser.parse_args(argv)
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, done.set)
    if args.command == "sink":
        server, counters = await _start_sink(args)
    else:
        server, counters = await _start_proxy(args)
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    try:
        await asyncio.wait_for(done.wait(), args.max_seconds)
    except asyncio.TimeoutError:
        counters["timed_out"] = True
    server.close()
    print(json.dumps(counters), flush=True)
    return 0


# -- the sink ----------------------------------------------------------------


async def _start_sink(args: argparse.Namespace) -> tuple[asyncio.Server, dict]:
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

    counters = {
        "sessions": 0,
        "quit": 0,
        "messages": 0,
        "tls_messages": 0,
        "auth_messages": 0,
        "bare_lf_messages": 0,
    }

    class Handler:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            session.host_name = hostname
            # Real relays (Postfix, smtp-sink, providers) offer PIPELINING;
            # aiosmtpd reads commands in order from its stream, so it copes.
            responses.insert(-1, "250-PIPELINING")
            return responses

        async def handle_DATA(self, server, session, envelope):
            counters["messages"] += 1
            content = envelope.original_content or b""
            if content.count(b"\n") != content.count(b"\r\n"):
                counters["bare_lf_messages"] += 1
            if session.ssl:
                counters["tls_messages"] += 1
            if session.authenticated:
                counters["auth_messages"] += 1
            return "250 2.0.0 OK: thrown away"

        async def handle_QUIT(self, server, session, envelope):
            counters["quit"] += 1
            return "221 Bye"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == payload.USERNAME.encode()
            and auth_data.password == payload.PASSWORD.encode()
        )
        return AuthResult(success=ok)

    # aiosmtpd warns about its own use of a deprecated attribute during AUTH.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    tls_context = None
    if args.tls:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        ca.cert_pem.write_to_path(args.cafile)
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(tls_context)

    class CountingSMTP(SMTP):
        # Lenient like smtp-sink and Postfix: a message sent with bare LF
        # line ends (repoze.sendmail does) is one long "line" to aiosmtpd,
        # which would refuse it with 500 at its default limit of 1001.
        line_length_limit = 1 << 20
        counted = False

        def connection_made(self, transport):
            # aiosmtpd calls this again on the TLS transport after STARTTLS.
            if not self.counted:
                self.counted = True
                counters["sessions"] += 1
            super().connection_made(transport)

    def factory() -> SMTP:
        return CountingSMTP(
            Handler(),
            hostname="sink.example.com",
            ident="bench sink",
            tls_context=tls_context,
            require_starttls=False,
            authenticator=authenticator if args.tls else None,
            auth_require_tls=True,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, "127.0.0.1", 0)
    return server, counters


# -- the delaying proxy ------------------------------------------------------


async def _start_proxy(args: argparse.Namespace) -> tuple[asyncio.Server, dict]:
    counters = {"connections": 0, "chunks": 0}
    loop = asyncio.get_running_loop()
    delay = args.delay

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Each chunk is forwarded *delay* seconds after it arrived, in order:
        # latency without limiting throughput.
        queue: asyncio.Queue = asyncio.Queue()

        async def forward() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                try:
                    if not data:
                        if writer.can_write_eof():
                            writer.write_eof()
                        return
                    writer.write(data)
                    await writer.drain()
                except OSError:
                    # The other side is gone; closing both ends follows.
                    return

        task = asyncio.create_task(forward())
        try:
            while True:
                try:
                    data = await reader.read(65536)
                except OSError:
                    data = b""
                counters["chunks"] += 1
                queue.put_nowait((loop.time() + delay, data))
                if not data:
                    break
            await task
        except OSError:
            task.cancel()

    async def handle(client_reader, client_writer) -> None:
        counters["connections"] += 1
        # The client's connect() returned at once; a real link would take a
        # round trip for the TCP handshake before the server could even
        # greet. SMTP clients wait for that greeting, so holding the
        # upstream connection back one round trip costs them the same.
        await asyncio.sleep(2 * delay)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", args.target_port)
        except OSError:
            client_writer.close()
            return
        try:
            await asyncio.gather(pipe(client_reader, up_writer), pipe(up_reader, client_writer))
        finally:
            for w in (up_writer, client_writer):
                w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, counters


if __name__ == "__main__":
    sys.exit(main())
