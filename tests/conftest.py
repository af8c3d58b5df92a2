"""Shared fixtures."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clock import Clock
from hypothesis import HealthCheck, settings
from pgserver import PostgreSQLServer, PostgreSQLUnavailable
from recording_server import RecordingServer
from smtpserver import Certificates, SMTPTestServer

from pyramid_sendmail.queue import MaildirQueue

# -- Hypothesis profiles -------------------------------------------------------
#
# "dev" (the default) stays quick and keeps failing examples in .hypothesis/
# between runs. "ci" (selected by the CI variable, which .ci/run sets) is
# derandomised and keeps no database, so every CI run, on any fresh clone,
# tries the same examples, and more of them; HYPOTHESIS_PROFILE overrides.
settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile(
    "ci",
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
_profile = "ci" if os.environ.get("CI") else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or _profile)

# -- SMTP test server (tests/smtpserver.py) ---------------------------------


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A trustme CA (``.cafile``) and the server certificate it issued."""
    return Certificates.create(tmp_path_factory.mktemp("certificates"))


@pytest.fixture
def smtp_server_factory(
    certificates: Certificates,
) -> Iterator[Callable[..., SMTPTestServer]]:
    """Start an :class:`SMTPTestServer` with the given options; all stop at teardown."""
    servers: list[SMTPTestServer] = []

    def start(**options: Any) -> SMTPTestServer:
        server = SMTPTestServer(certificates=certificates, **options)
        server.start()
        servers.append(server)
        return server

    yield start
    errors = []
    for server in servers:
        try:
            server.stop()
        except RuntimeError as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def smtp_server(smtp_server_factory: Callable[..., SMTPTestServer]) -> SMTPTestServer:
    """A plain SMTP server: no TLS, no AUTH; PIPELINING and SMTPUTF8 offered."""
    return smtp_server_factory()


@pytest.fixture
def tls_smtp_server(smtp_server_factory: Callable[..., SMTPTestServer]) -> SMTPTestServer:
    """A server that requires STARTTLS and AUTH; trust it with ``cafile=server.cafile``."""
    return smtp_server_factory(starttls=True, require_starttls=True, auth=True)


@pytest.fixture
def ssl_smtp_server(smtp_server_factory: Callable[..., SMTPTestServer]) -> SMTPTestServer:
    """A server speaking TLS from the first byte (port 465 style), with AUTH."""
    return smtp_server_factory(implicit_tls=True, auth=True, auth_without_tls=True)


# -- a queue on a clock the test moves ---------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(tmp_path: Path, clock: Clock) -> MaildirQueue:
    """A Maildir queue in tmp_path, on :func:`clock`, claims taken back after 600 s."""
    return MaildirQueue(str(tmp_path / "queue"), claim_timeout=600.0, clock=clock)


# -- subprocess tests (tests/recording_server.py) ---------------------------


@pytest.fixture
def recording_server(tmp_path: Path) -> Iterator[RecordingServer]:
    """An SMTP server in its own process that logs what it accepted."""
    with RecordingServer(tmp_path / "smtp") as server:
        yield server


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; any still running are killed at teardown."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


# -- SQL databases (tests/pgserver.py) ---------------------------------------


@pytest.fixture(scope="session")
def postgresql() -> Iterator[PostgreSQLServer]:
    """A private PostgreSQL cluster for the session, run as a non-root user.

    Skipped where PostgreSQL is not installed, except in CI (``CI`` set),
    where its absence fails the tests instead.
    """
    try:
        server = PostgreSQLServer()
    except PostgreSQLUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test against PostgreSQL: {exc}")
        pytest.skip(str(exc))
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture
def pg_url(postgresql: PostgreSQLServer) -> str:
    """The URL of a fresh, empty PostgreSQL database."""
    return postgresql.create_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """The URL of a SQLite database file in tmp_path (created on first use)."""
    return f"sqlite:///{tmp_path / 'app.sqlite'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh database of each supported kind, in turn."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))
