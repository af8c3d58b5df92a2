"""A loopback SMTP server in a process of its own that records what it accepted.

Run as ``python tests/recording_server.py PORTFILE LOGFILE [LIFETIME]``: it
listens on 127.0.0.1 and a free port, writes that port into PORTFILE once it
accepts connections, and for each message appends its ``X-Seq`` header (or,
lacking one, its Message-ID) as one line of LOGFILE, flushed and fsynced
*before* it answers 250. The log is therefore the truth of what the server
accepted, whatever happens to the clients. It exits by itself when the
process that started it dies or after LIFETIME seconds (default 300), so a
test that crashes leaves nothing running.

Imported, it gives the tests :class:`RecordingServer` (start and stop that
process, read its log), :func:`write_config` (an INI file for ``psendmail``)
and :func:`make_app` (the smallest application such an INI can name).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
DEFAULT_LIFETIME = 300.0
_SEQ = re.compile(rb"^X-Seq:[ \t]*(\S+)[ \t]*\r?$", re.MULTILINE | re.IGNORECASE)
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)[ \t]*\r?$", re.MULTILINE | re.IGNORECASE)


# -- the server process ------------------------------------------------------


def message_key(content: bytes) -> str:
    """The X-Seq header of a message, else its Message-ID, else ``?``."""
    end = content.find(b"\r\n\r\n")
    headers = content if end < 0 else content[:end]
    for pattern in (_SEQ, _MESSAGE_ID):
        match = pattern.search(headers)
        if match:
            return match.group(1).decode("ascii", "replace")
    return "?"


class _Recorder:
    """aiosmtpd handler: one durable log line per accepted message."""

    def __init__(self, log: Any) -> None:
        self.log = log

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content or b""
        self.log.write(message_key(content) + "\n")
        self.log.flush()
        os.fsync(self.log.fileno())
        return "250 2.0.0 OK recorded"


async def _serve(portfile: str, logfile: str, lifetime: float) -> None:
    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    parent = os.getppid()
    with open(logfile, "a", encoding="ascii") as log:
        handler = _Recorder(log)
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="localhost", loop=loop), HOST, 0
        )
        port = server.sockets[0].getsockname()[1]
        # Written then renamed, so a reader never sees a half-written port.
        partial = portfile + ".partial"
        with open(partial, "w", encoding="ascii") as f:
            f.write(f"{port}\n")
        os.replace(partial, portfile)
        deadline = loop.time() + lifetime
        while loop.time() < deadline and os.getppid() == parent:
            await asyncio.sleep(0.2)
        server.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    lifetime = float(args[2]) if len(args) == 3 else DEFAULT_LIFETIME
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    asyncio.run(_serve(args[0], args[1], lifetime))
    return 0


# -- what the tests use ------------------------------------------------------


class RecordingServer:
    """Start, read and stop a recording server process writing into *directory*."""

    def __init__(self, directory: Path, lifetime: float = DEFAULT_LIFETIME) -> None:
        self.directory = Path(directory)
        self.portfile = self.directory / "smtp.port"
        self.logfile = self.directory / "accepted.log"
        self.lifetime = lifetime
        self.process: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None
        self.port = 0

    def __enter__(self) -> RecordingServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, timeout: float = 20.0) -> None:
        """Start the process; return once it listens (or raise)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.logfile.touch()
        self._stderr = open(self.directory / "smtp.stderr", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                __file__,
                str(self.portfile),
                str(self.logfile),
                str(self.lifetime),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        deadline = time.monotonic() + timeout
        while not self.portfile.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"the recording server exited: {self.stderr()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the recording server did not start in time")
            time.sleep(0.02)
        self.port = int(self.portfile.read_text().strip())

    def stop(self) -> None:
        """Kill the process (its log is already on disk) and reap it."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        self._stderr.close()

    def accepted(self) -> list[str]:
        """The keys of every message accepted so far, in order, repeats included."""
        return self.logfile.read_text(encoding="ascii").splitlines()

    def count(self) -> int:
        """How many messages were accepted so far."""
        with open(self.logfile, "rb") as f:
            return f.read().count(b"\n")

    def stderr(self) -> str:
        path = self.directory / "smtp.stderr"
        return path.read_text(errors="replace") if path.exists() else ""


_LOGGING = """
[loggers]
keys = root, pyramid_sendmail

[handlers]
keys = stderr

[formatters]
keys = plain

[logger_root]
level = WARNING
handlers = stderr

[logger_pyramid_sendmail]
level = {level}
handlers =
qualname = pyramid_sendmail

[handler_stderr]
class = StreamHandler
args = (sys.stderr,)
formatter = plain

[formatter_plain]
format = %(process)d %(levelname)s [%(name)s] %(message)s
"""


def write_config(
    path: Path, queue_path: Path, port: int, log_level: str | None = None, **mail: Any
) -> Path:
    """Write an INI file whose app section configures mail for ``psendmail``.

    *mail* gives further ``mail.*`` settings without the prefix. With
    *log_level*, pyramid_sendmail's loggers write to stderr at that level.
    """
    settings = {
        "host": HOST,
        "port": port,
        "queue_path": queue_path,
        "default_sender": "sender@example.com",
        **mail,
    }
    lines = ["[app:main]", "use = call:recording_server:make_app"]
    lines += [f"mail.{key} = {value}" for key, value in settings.items()]
    text = "\n".join(lines) + "\n"
    if log_level:
        text += _LOGGING.format(level=log_level)
    path.write_text(text, encoding="utf-8")
    return path


def subprocess_env() -> dict[str, str]:
    """The environment for child processes: this folder importable."""
    env = dict(os.environ)
    here = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    return env


def numbered_envelope(seq: int) -> Any:
    """A small message to one recipient, its ``X-Seq`` header set to *seq*."""
    from pyramid_sendmail.message import Envelope

    message_id = f"<seq-{seq}@example.com>"
    data = (
        "From: sender@example.com\r\n"
        "To: rcpt@example.com\r\n"
        f"Subject: message {seq}\r\n"
        f"Message-ID: {message_id}\r\n"
        f"X-Seq: {seq}\r\n"
        "\r\n"
        f"Message number {seq}.\r\n"
    ).encode("ascii")
    return Envelope("sender@example.com", ["rcpt@example.com"], data, message_id)


def queue_numbered(queue_path: Path, count: int) -> list[str]:
    """Queue *count* numbered messages durably; return their X-Seq values."""
    from pyramid_sendmail.queue import MaildirQueue

    queue = MaildirQueue(str(queue_path))
    names = [queue.prepare(numbered_envelope(seq)) for seq in range(count)]
    queue.publish(names)
    return [str(seq) for seq in range(count)]


def queue_files(queue_path: Path) -> dict[str, list[str]]:
    """The file names in each folder of the queue at *queue_path*."""
    return {
        folder: sorted(os.listdir(queue_path / folder))
        for folder in ("tmp", "new", "cur", "failed")
    }


# What the console script runs (``-m pyramid_sendmail.cli`` would log as __main__).
_PSENDMAIL = "import sys; from pyramid_sendmail.cli import main; sys.exit(main())"


def start_psendmail(config: Path, stderr: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start ``psendmail CONFIG --no-app ARGS`` with its output in files."""
    with open(stderr, "ab") as err, open(str(stderr) + ".out", "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", _PSENDMAIL, str(config), "--no-app", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=subprocess_env(),
        )


def make_app(global_config: dict[str, Any], **settings: Any) -> Any:
    """The smallest Pyramid application with mail (``call:recording_server:make_app``)."""
    from pyramid.config import Configurator

    with Configurator(settings=settings) as config:
        config.include("pyramid_tm")
        config.include("pyramid_sendmail")
    return config.make_wsgi_app()


def broken_app(global_config: dict[str, Any], **settings: Any) -> Any:
    """An application factory that fails (``call:recording_server:broken_app``)."""
    raise RuntimeError("this application cannot start")


if __name__ == "__main__":
    sys.exit(main())


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Poll *condition* until it holds or *timeout* seconds pass; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def has_started(process: subprocess.Popen[bytes]) -> bool:
    """Whether a ``psendmail run`` process is past its start-up: it holds a
    socket (the queue's database or the relay), which it opens only once
    its signal handlers are in place. A SIGTERM sent earlier kills it by
    Python's default, with no clean exit to check."""
    folder = f"/proc/{process.pid}/fd"
    try:
        links = [os.readlink(os.path.join(folder, fd)) for fd in os.listdir(folder)]
    except OSError:
        return process.poll() is not None
    return any(link.startswith("socket:") for link in links)
