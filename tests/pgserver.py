"""A private PostgreSQL cluster for the tests, run as a non-root user.

Debian's ``postgresql`` package installs the server under
``/usr/lib/postgresql/<version>/bin``. The cluster lives in a temporary
folder, listens on a free TCP port of 127.0.0.1 and on a unix socket in that
folder, trusts local connections, and is stopped and removed at the end.
PostgreSQL refuses to run as root, so when the tests run as root the server
runs as the ``postgres`` system user (created by the package).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence

__all__ = ["PostgreSQLServer", "PostgreSQLUnavailable", "find_binaries"]

USER = "postgres"


class PostgreSQLUnavailable(Exception):
    """The server binaries are not installed."""


def find_binaries() -> str:
    """The folder holding ``initdb`` and ``pg_ctl``, the newest version first."""
    override = os.environ.get("PYRAMID_SENDMAIL_PG_BIN")
    candidates = [override] if override else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if os.path.isfile(os.path.join(folder, "initdb")):
            return folder
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(found)
    raise PostgreSQLUnavailable(
        "PostgreSQL's initdb was not found (apt-get install postgresql, "
        "or set PYRAMID_SENDMAIL_PG_BIN)"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgreSQLServer:
    """One cluster: :meth:`start`, :meth:`create_database`, :meth:`stop`."""

    def __init__(self, binaries: str | None = None) -> None:
        self.binaries = binaries or find_binaries()
        self.root = tempfile.mkdtemp(prefix="pyramid-sendmail-pg-")
        self.data = os.path.join(self.root, "data")
        self.log = os.path.join(self.root, "server.log")
        self.port = _free_port()
        self._as_other_user = os.geteuid() == 0
        self._databases = 0
        if self._as_other_user:
            entry = pwd.getpwnam(USER)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        os.chmod(self.root, 0o700)

    # -- running --------------------------------------------------------

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command: Sequence[str] = [os.path.join(self.binaries, program), *args]
        if self._as_other_user:
            command = ["runuser", "-u", USER, "--", *command]
        return subprocess.run(
            command, check=check, capture_output=True, text=True, cwd=self.root, timeout=120
        )

    def start(self) -> None:
        """Create the cluster if needed, then start it and wait until it answers."""
        if not os.path.isdir(self.data):
            self._run(
                "initdb",
                "-D",
                self.data,
                "-U",
                USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            )
        # Durability is not under test in the server itself: fsync off keeps
        # thousands of small commits fast on a shared CI machine.
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        try:
            self._run("pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "start")
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(
                f"PostgreSQL did not start: {exc.stderr}\n{self.log_text()}"
            ) from exc

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (*mode*: ``smart``, ``fast`` or ``immediate``)."""
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop", check=False)

    def restart(self, pause: float = 0.0) -> None:
        """Stop at once (dropping every connection), wait *pause*, start again."""
        self.stop("immediate")
        time.sleep(pause)
        self.start()

    def remove(self) -> None:
        """Stop the server and delete its folder."""
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def log_text(self) -> str:
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""

    # -- databases ------------------------------------------------------

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        """A SQLAlchemy URL for *database* over TCP."""
        return f"{driver}://{USER}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run *sql* with psql over the unix socket; return its output."""
        result = self._run(
            "psql", "-h", self.root, "-p", str(self.port), "-U", USER, "-d", database,
            "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql,
        )  # fmt: skip
        return result.stdout

    def create_database(self) -> str:
        """Create a fresh, empty database; return its SQLAlchemy URL."""
        self._databases += 1
        name = f"test_{os.getpid()}_{self._databases}"
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)
