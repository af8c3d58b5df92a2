"""A slow but steady link for the tests: a TCP proxy on 127.0.0.1.

:class:`SlowRelay` forwards what a client sends to a server on 127.0.0.1 at
*rate* bytes per second (a relay that reads slowly, or a thin uplink), and
the server's replies at once. Its receive buffers are small, so the client
feels the pace instead of filling the kernel's buffers at loopback speed.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

__all__ = ["SlowRelay"]

HOST = "127.0.0.1"
_CHUNK = 16 * 1024
_BUFFER = 64 * 1024


class SlowRelay:
    """Forward client bytes at *rate* bytes per second to *target_port*."""

    def __init__(self, target_port: int, rate: float) -> None:
        self.target_port = target_port
        self.rate = rate
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER)
        self._listener.bind((HOST, 0))
        self._listener.listen()
        self.host = HOST
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closed = False

    def __enter__(self) -> SlowRelay:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._closed = True
        # shutdown() wakes the thread blocked in accept(); close() alone does not.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection((HOST, self.target_port))
            self._sockets += [client, server]
            self._spawn(self._pipe, client, server, self.rate)
            self._spawn(self._pipe, server, client, None)

    def _pipe(self, source: socket.socket, sink: socket.socket, rate: float | None) -> None:
        started, moved = time.monotonic(), 0
        try:
            while chunk := source.recv(_CHUNK):
                sink.sendall(chunk)
                if rate is not None:
                    moved += len(chunk)
                    # Keep to the pace on average, however the chunks fall.
                    time.sleep(max(0.0, started + moved / rate - time.monotonic()))
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
