"""Benchmark pyramid_sendmail side by side with the other mail queues.

Usage (from the checkout; see bench/README.rst)::

    python bench/run.py              # the full run, in bench/.venv
    python bench/run.py --save       # ... and write bench/results/<stamp>.{txt,json}
    python bench/run.py --quick      # a smoke run (CI): pyramid_sendmail only

Standard library only: this script builds the virtual environment and runs
every measurement in a fresh process (cases.py) on a fresh queue directory,
with the SMTP servers it needs started before and stopped after.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import json
import os
import platform
import pwd
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV = BENCH / ".venv"
RESULTS = BENCH / "results"
WORK = BENCH / "work"
sys.path.insert(0, str(BENCH))

import payload  # noqa: E402

#: What the virtual environment gets besides the checkout (pip install -e).
COMPARED = ["repoze.sendmail", "pyramid_mailer", "zope.sendmail"]
TOOLS = ["aiosmtpd", "trustme", "webtest", "pyramid_tm"]
#: The SQL queue's cases (issue 10): the checkout's ``sql`` extra and the driver.
SQL_TOOLS = ["SQLAlchemy", "zope.sqlalchemy", "psycopg[binary]"]
SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
POSTFIX_HINT = (
    "Postfix's smtp-sink and smtp-source are missing. On Debian or Ubuntu:\n"
    "    DEBIAN_FRONTEND=noninteractive apt-get install -y postfix\n"
    "(the benchmark never starts the postfix daemon)."
)
PSM = "pyramid_sendmail"
#: Its distribution's name (``pyramid_sendmail`` on PyPI is another project).
PSM_DISTRIBUTION = "pyramid-sendmail-tx"
# psendmail with mail.queue_processes = one per core of these machines.
PROCESSES = 2
PSM_PROCESSES = f"{PSM} -p{PROCESSES}"
BASELINE = f"{PSM} baseline"
PSM_PROCESSES_LABEL = f"{PSM}, {PROCESSES} processes (mail.queue_processes)"
PAIRED = "paired"
PAIRED_LABEL = f"{PSM}, paired with the raw loop in one process"

#: Messages per measurement: full run, and --quick.
SIZES = {
    "full": {
        "enqueue": 2000,
        "request": 1000,
        "drain": 6000,
        "drain-far": 150,
        "direct": 1000,
        "direct-far": 60,
        "backlog-small": 1000,
        "backlog-large": 100_000,
        "sql-request": 1000,
        "sql-drain": 3000,
        "sql-backlog-small": 1000,
        "sql-backlog-large": 100_000,
    },
    "quick": {
        "enqueue": 100,
        "request": 100,
        "drain": 200,
        "drain-far": 10,
        "direct": 50,
        "direct-far": 10,
        "backlog-small": 100,
        "backlog-large": 1000,
        "sql-request": 30,
        "sql-drain": 100,
        "sql-backlog-small": 50,
        "sql-backlog-large": 200,
    },
}
CASE_NAMES = [
    "enqueue", "request", "drain", "drain-far", "direct", "direct-far", "backlog", "sql",
]  # fmt: skip
#: The SQL queue's drain with this many forked processors against one (issue 10).
SQL_PROCESSES = 4
PSM_NOPOOL = f"{PSM}-nopool"
#: The round trip the delaying proxy makes (5 ms each way).
FAR_RTT_MS = 10.0


# -- processes -------------------------------------------------------------------

_children: list[subprocess.Popen] = []


def _stop_children() -> None:
    for proc in _children:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


atexit.register(_stop_children)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Server:
    """A server process; ``counters`` is filled in once it has stopped."""

    proc: subprocess.Popen
    port: int
    kind: str
    counters: dict = field(default_factory=dict)
    #: Connections made only to see that the server listens (not counted).
    probes: int = 0
    #: Where the output goes when it is not a pipe.
    output: IO[str] | None = None

    def stop(self) -> dict:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        if self.output is not None:
            self.output.seek(0)
            out = self.output.read()
        if self.proc in _children:
            _children.remove(self.proc)
        self.counters = _parse_counters(self.kind, out or "")
        if "sessions" in self.counters:
            self.counters["sessions"] -= self.probes
        return self.counters


def _parse_counters(kind: str, out: str) -> dict:
    if kind == "smtp-sink":
        found = re.findall(r"sess=(\d+) quit=(\d+) mesg=(\d+)", out)
        if not found:
            return {"sessions": 0, "quit": 0, "messages": 0}
        sess, quit_, mesg = (int(x) for x in found[-1])
        return {"sessions": sess, "quit": quit_, "messages": mesg}
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return dict(json.loads(line))
    return {}


@contextmanager
def smtp_sink() -> Iterator[Server]:
    """Postfix's smtp-sink on a free loopback port, counting (-c)."""
    port = _free_port()
    command = [SMTP_SINK, "-c"]
    if os.geteuid() == 0:
        # smtp-sink refuses to keep root privileges.
        command += ["-u", pwd.getpwuid(65534).pw_name]
    command += [f"127.0.0.1:{port}", "256"]
    # The counters go to a file: a pipe nobody reads would fill up after a
    # few thousand messages and stall smtp-sink.
    with tempfile.TemporaryFile("w+", errors="replace") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        _children.append(proc)
        server = Server(proc, port, "smtp-sink", output=log)
        try:
            _wait_for_port(port, proc)
            server.probes = 1
            yield server
        finally:
            server.stop()


@contextmanager
def python_server(python: str, *args: str) -> Iterator[Server]:
    """A servers.py process (aiosmtpd sink or delaying proxy)."""
    proc = subprocess.Popen(
        [python, str(BENCH / "servers.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=BENCH,
    )
    _children.append(proc)
    server = Server(proc, 0, args[0])
    try:
        line = _read_line(proc, timeout=20.0)
        if not line.startswith("READY "):
            raise RuntimeError(f"servers.py {args[0]} did not start: {line!r}")
        server.port = int(line.split()[1])
        yield server
    finally:
        server.stop()


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return ""
    return proc.stdout.readline().strip()


def run_worker(
    python: str, args: list[str], timeout: float, env: dict[str, str] | None = None
) -> dict:
    """Run cases.py in a fresh process; return its JSON result or the error."""
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [python, str(BENCH / "cases.py"), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=BENCH,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit {done.returncode}"}
    result = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    result["process_seconds"] = time.perf_counter() - started
    return result


# -- the environment -------------------------------------------------------------


def ensure_venv() -> str:
    """Create bench/.venv and install what is compared; return its python."""
    python = VENV / "bin" / "python"
    wanted = json.dumps(
        {"repo": str(REPO), "packages": COMPARED + TOOLS + SQL_TOOLS}, sort_keys=True
    )
    stamp = VENV / ".bench-installed"
    if not python.exists():
        print(f"creating {VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if not stamp.exists() or stamp.read_text() != wanted:
        print("installing the checkout and the packages compared (pip) ...", flush=True)
        subprocess.run(
            [python, "-m", "pip", "install", "-q", "-e", REPO, *COMPARED, *TOOLS, *SQL_TOOLS],
            check=True,
        )
        stamp.write_text(wanted)
    return str(python)


def versions(python: str, have_postfix: bool) -> dict:
    names = [PSM, "pyramid", "transaction", *COMPARED, *TOOLS, "SQLAlchemy", "zope.sqlalchemy"]
    names += ["psycopg"]
    code = (
        "import json, sys, importlib.metadata as m\n"
        "out = {'python': sys.version.split()[0]}\n"
        f"DISTRIBUTIONS = {{{PSM!r}: {PSM_DISTRIBUTION!r}}}\n"
        f"for name in {names!r}:\n"
        "    try:\n"
        "        out[name] = m.version(DISTRIBUTIONS.get(name, name))\n"
        "    except m.PackageNotFoundError:\n"
        "        out[name] = None\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    found = dict(json.loads(done.stdout))
    found["postfix (smtp-sink, smtp-source)"] = _postfix_version() if have_postfix else None
    found["checkout"] = _git_describe()
    found["machine"] = (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs, {platform.machine()}"
    )
    return found


def _postfix_version() -> str:
    for command in (
        ["/usr/sbin/postconf", "-d", "-h", "mail_version"],
        ["dpkg-query", "-W", "-f", "${Version}", "postfix"],
    ):
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    return "unknown"


def _git_describe() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "pyramid_sendmail"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return head + (" + uncommitted changes in pyramid_sendmail/" if dirty else "")


# -- the cases -------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: a variant of a case, measured once per repeat."""

    case: str
    variant: str
    label: str
    measure: Callable[[int], dict]
    only_repeat: int | None = None  # None: every repeat
    results: list[dict] = field(default_factory=list)


class Bench:
    def __init__(self, options: argparse.Namespace, python: str) -> None:
        self.options = options
        self.python = python
        self.sizes = {
            k: max(1, int(v * options.scale))
            for k, v in SIZES["quick" if options.quick else "full"].items()
        }
        self.have_postfix = os.access(SMTP_SINK, os.X_OK) and os.access(SMTP_SOURCE, os.X_OK)
        self.work = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=WORK))
        self.message_file = str(self.work / "message.eml")
        payload.write_source_file(self.message_file)
        self.far_cafile = str(self.work / "far-ca.pem")
        self.notes: list[str] = []
        self.rows: list[Row] = []
        self.timeout = 900.0
        self.pg: Any = None

    # A fresh directory for every measurement (BENCH-NOTES: never reuse one).
    def fresh_dir(self, label: str) -> str:
        return tempfile.mkdtemp(prefix=re.sub(r"\W+", "-", label) + "-", dir=self.work) + "/q"

    def worker(
        self, *args: str, timeout: float | None = None, env: dict[str, str] | None = None
    ) -> dict:
        return run_worker(self.python, list(args), timeout or self.timeout, env)

    def psm_variants(self) -> list[tuple[str, str, dict[str, str] | None]]:
        """pyramid_sendmail's drain rows: this checkout, and ``--baseline``'s if given.

        The baseline's package comes first on ``PYTHONPATH``, ahead of the
        editable install of this checkout; the rest of the environment is
        shared, so the two rows differ only in pyramid_sendmail's code.
        """
        variants: list[tuple[str, str, dict[str, str] | None]] = [(PSM, PSM, None)]
        baseline = self.options.baseline
        if baseline:
            env = dict(os.environ, PYTHONPATH=baseline)
            variants.append((BASELINE, f"{PSM}, baseline ({Path(baseline).name})", env))
        return variants

    @contextmanager
    def loopback_sink(self) -> Iterator[Server]:
        if self.have_postfix:
            with smtp_sink() as server:
                yield server
        else:
            with python_server(self.python, "sink") as server:
                yield server

    # -- enqueue
    def add_enqueue(self) -> None:
        n = self.sizes["enqueue"]
        variants = [("raw", "raw loop (write+fsync+rename+fsync dir)"), (PSM, PSM)]
        if not self.options.quick:
            variants += [(v, v) for v in ("pyramid_mailer", "repoze.sendmail", "zope.sendmail")]
        for variant, label in variants:

            def measure(repeat: int, variant: str = variant) -> dict:
                return self.worker(
                    "enqueue", variant, "--dir", self.fresh_dir(f"enqueue-{variant}"), "--n", str(n)
                )

            self.rows.append(Row("enqueue", variant, label, measure))

        def paired(repeat: int) -> dict:
            return self.worker(
                "enqueue-paired", PSM, "--dir", self.fresh_dir("enqueue-paired"), "--n", str(n)
            )

        self.rows.append(Row("enqueue", PAIRED, PAIRED_LABEL, paired))

    # -- request
    def add_request(self) -> None:
        n = self.sizes["request"]
        variants = [PSM] if self.options.quick else [PSM, "pyramid_mailer"]
        for variant in variants:

            def measure(repeat: int, variant: str = variant) -> dict:
                return self.worker(
                    "request", variant, "--dir", self.fresh_dir(f"request-{variant}"), "--n", str(n)
                )

            self.rows.append(Row("request", variant, variant, measure))

    # -- drain on loopback
    def add_drain(self) -> None:
        n = self.sizes["drain"]
        packages = [(v, label, 1, env) for v, label, env in self.psm_variants()]
        packages.append((PSM_PROCESSES, PSM_PROCESSES_LABEL, PROCESSES, None))
        if not (self.options.quick or self.options.only_psm):
            packages += [(v, v, 1, None) for v in ("repoze.sendmail", "zope.sendmail")]
        for variant, label, processes, env in packages:

            def measure(
                repeat: int,
                variant: str = variant,
                processes: int = processes,
                env: dict[str, str] | None = env,
            ) -> dict:
                with self.loopback_sink() as sink:
                    result = self.worker(
                        "drain",
                        PSM if variant in (PSM_PROCESSES, BASELINE) else variant,
                        "--dir",
                        self.fresh_dir(f"drain-{variant}"),
                        "--n",
                        str(n),
                        "--port",
                        str(sink.port),
                        "--processes",
                        str(processes),
                        env=env,
                    )
                result["server"] = sink.counters
                return result

            self.rows.append(Row("drain", variant, label, measure))
        if self.have_postfix and not self.options.only_psm:
            for sessions, reuse in ((1, False), (1, True), (4, False), (4, True)):
                variant = f"smtp-source -s {sessions}" + (" -d" if reuse else "")
                label = f"smtp-source, {sessions} session{'s' if sessions > 1 else ''}, " + (
                    "reused (-d)" if reuse else "one per message"
                )

                def measure(repeat: int, sessions: int = sessions, reuse: bool = reuse) -> dict:
                    with smtp_sink() as sink:
                        result = self.smtp_source(sink.port, n, sessions, reuse)
                    result["server"] = sink.counters
                    return result

                self.rows.append(Row("drain", variant, label, measure))

    def smtp_source(self, port: int, n: int, sessions: int, reuse: bool) -> dict:
        command = [
            SMTP_SOURCE,
            "-s",
            str(sessions),
            "-m",
            str(n),
            "-F",
            self.message_file,
            "-f",
            payload.SENDER,
            "-t",
            payload.RECIPIENT,
        ]
        if reuse:
            command.append("-d")
        command.append(f"127.0.0.1:{port}")
        started = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            return {"error": "smtp-source timed out"}
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            return {"error": (done.stderr or done.stdout).strip()[-200:]}
        return {"n": n, "seconds": elapsed, "rate": n / elapsed, "left": 0}

    # -- drain over a 10 ms round trip, STARTTLS + AUTH
    @contextmanager
    def far_link(self) -> Iterator[tuple[Server, Server]]:
        with (
            python_server(self.python, "sink", "--tls", "--cafile", self.far_cafile) as sink,
            python_server(
                self.python, "proxy", "--target-port", str(sink.port), "--delay", "0.005"
            ) as proxy,
        ):
            yield sink, proxy

    def add_drain_far(self) -> None:
        n = self.sizes["drain-far"]
        packages = self.psm_variants()
        if not (self.options.quick or self.options.only_psm):
            packages += [(v, v, None) for v in ("repoze.sendmail", "zope.sendmail")]
        for variant, label, env in packages:

            def measure(
                repeat: int, variant: str = variant, env: dict[str, str] | None = env
            ) -> dict:
                with self.far_link() as (sink, proxy):
                    result = self.worker(
                        "drain",
                        PSM if variant == BASELINE else variant,
                        "--dir",
                        self.fresh_dir(f"far-{variant}"),
                        "--n",
                        str(n),
                        "--port",
                        str(proxy.port),
                        "--tls",
                        "--cafile",
                        self.far_cafile,
                        env=env,
                    )
                result["server"] = sink.counters
                result["proxy"] = proxy.counters
                return result

            self.rows.append(Row("drain-far", variant, label, measure))
        if self.have_postfix and not self.options.only_psm:
            for sessions, reuse in ((1, False), (1, True), (4, False), (4, True)):
                variant = f"smtp-source -s {sessions}" + (" -d" if reuse else "")
                label = (
                    f"smtp-source, {sessions} session{'s' if sessions > 1 else ''}, "
                    + ("reused (-d)" if reuse else "one per message")
                    + ", no TLS/AUTH"
                )

                def measure(repeat: int, sessions: int = sessions, reuse: bool = reuse) -> dict:
                    with self.far_link() as (sink, proxy):
                        result = self.smtp_source(proxy.port, n, sessions, reuse)
                    result["server"] = sink.counters
                    return result

                self.rows.append(Row("drain-far", variant, label, measure))

    # -- direct delivery: a commit per message, sent in the commit
    def add_direct(self, far: bool) -> None:
        case = "direct-far" if far else "direct"
        n = self.sizes[case]
        variants = [(PSM, f"{PSM} (pooled connections)")]
        if not self.options.quick:
            variants += [
                (PSM_NOPOOL, f"{PSM}, mail.pool_size = 0"),
                ("pyramid_mailer", "pyramid_mailer (Mailer.send)"),
                ("zope.sendmail", "zope.sendmail (DirectMailDelivery)"),
            ]
        for variant, label in variants:

            def measure(repeat: int, variant: str = variant) -> dict:
                args = ["direct", variant, "--dir", self.fresh_dir(f"{case}-{variant}")]
                args += ["--n", str(n)]
                if far:
                    with self.far_link() as (sink, proxy):
                        result = self.worker(
                            *args, "--port", str(proxy.port), "--tls", "--cafile", self.far_cafile
                        )
                else:
                    with self.loopback_sink() as sink:
                        result = self.worker(*args, "--port", str(sink.port))
                result["server"] = sink.counters
                return result

            self.rows.append(Row(case, variant, label, measure))

    # -- backlog
    def add_backlog(self) -> None:
        # Both every repeat: one run of the large queue proved too noisy.
        for size_key, variant, only in (
            ("backlog-small", "small", None),
            ("backlog-large", "large", None),
        ):
            n = self.sizes[size_key]

            def measure(repeat: int, n: int = n, variant: str = variant) -> dict:
                return self.backlog(n, variant)

            label = f"{PSM}, {n:,} queued"
            self.rows.append(Row("backlog", variant, label, measure, only))

    def backlog(self, n: int, variant: str) -> dict:
        qdir = self.fresh_dir(f"backlog-{n}")
        fill = self.worker("fill", PSM, "--dir", qdir, "--n", str(n))
        if "error" in fill:
            return fill
        ini = Path(qdir).parent / "status.ini"
        # `psendmail status` reads the settings only; the app is never loaded.
        ini.write_text(f"[app:main]\nuse = call:pyramid.router:Router\nmail.queue_path = {qdir}\n")
        status_times = []
        for _ in range(3):
            started = time.perf_counter()
            done = subprocess.run(
                [self.python, "-m", "pyramid_sendmail.cli", str(ini), "status"],
                capture_output=True,
                text=True,
                timeout=300,
            )
            status_times.append(time.perf_counter() - started)
            if done.returncode != 0:
                return {"error": "psendmail status failed: " + done.stderr.strip()[-200:]}
        in_process = self.worker("status", PSM, "--dir", qdir)
        with self.loopback_sink() as sink:
            result = self.worker(
                "drain", PSM, "--dir", qdir, "--prefilled", "--port", str(sink.port), timeout=3600
            )
        result["server"] = sink.counters
        result["fill"] = fill
        result["status_cli_seconds"] = statistics.median(status_times)
        result["status_in_process_seconds"] = in_process.get("seconds")
        return result

    # -- running
    def run(self) -> None:
        cases = self.options.cases
        if "enqueue" in cases:
            self.add_enqueue()
        if "request" in cases:
            self.add_request()
        if "drain" in cases:
            self.add_drain()
        if "drain-far" in cases:
            self.add_drain_far()
        if "direct" in cases:
            self.add_direct(far=False)
        if "direct-far" in cases:
            self.add_direct(far=True)
        if "backlog" in cases:
            self.add_backlog()
        if "sql" in cases:
            self.add_sql()
        repeats = self.options.repeats
        for repeat in range(repeats):
            print(f"== repeat {repeat + 1} of {repeats}", flush=True)
            for case in CASE_NAMES:
                rows = [
                    r
                    for r in self.rows
                    if r.case == case
                    and (r.only_repeat is None or min(r.only_repeat, repeats - 1) == repeat)
                ]
                # Rotate the order each repeat: no variant always runs first.
                shift = repeat % len(rows) if rows else 0
                for row in rows[shift:] + rows[:shift]:
                    started = time.perf_counter()
                    result = row.measure(repeat)
                    result["repeat"] = repeat
                    _check(result)
                    row.results.append(result)
                    shown = result.get("error") or _summary(row.case, result)
                    print(
                        f"   {case:<10} {row.label:<58} {shown}"
                        f"  [{time.perf_counter() - started:.1f}s]",
                        flush=True,
                    )

    # -- the SQL queue on PostgreSQL (issue 10)
    def postgres(self) -> Any:
        """The private cluster of tests/pgserver.py, started once; None when
        PostgreSQL is not installed (outside CI: the SQL rows are left out)."""
        if self.pg is None:
            sys.path.insert(0, str(REPO / "tests"))
            import pgserver

            try:
                server = pgserver.PostgreSQLServer()
            except pgserver.PostgreSQLUnavailable:
                return None
            server.start()
            self.pg = server
        return self.pg

    def add_sql(self) -> None:
        pg = self.postgres()
        if pg is None:
            note = "PostgreSQL is not installed: the SQL queue's rows are left out"
            if os.environ.get("CI"):
                raise SystemExit(note + " (CI must run them)")
            self.notes.append(note)
            print(note, flush=True)
            return
        n = self.sizes["sql-request"]

        def request(repeat: int) -> dict:
            return self.worker("sql-request", PSM, "--dir", "-", "--n", str(n), "--url", self.db())

        self.rows.append(
            Row("sql", "request", "request: app row + one message vs row alone", request)
        )
        n_drain = self.sizes["sql-drain"]
        drains = [
            ("maildir", f"{PSM}, Maildir, 1 process", 1),
            ("sql", f"{PSM}, SQL queue, 1 process", 1),
        ]
        if not self.options.quick:
            # --quick stays a few seconds: no forks, no backlog, no status CLI.
            label = f"{PSM}, SQL queue, {SQL_PROCESSES} processes"
            drains.append((f"sql -p{SQL_PROCESSES}", label, SQL_PROCESSES))
        for variant, label, processes in drains:

            def drain(repeat: int, variant: str = variant, processes: int = processes) -> dict:
                with self.loopback_sink() as sink:
                    common = ["--n", str(n_drain), "--port", str(sink.port)]
                    common += ["--processes", str(processes)]
                    if variant == "maildir":
                        result = self.worker(
                            "drain", PSM, "--dir", self.fresh_dir("sql-maildir"), *common
                        )
                    else:
                        result = self.worker(
                            "sql-drain", PSM, "--dir", "-", "--url", self.db(), *common
                        )
                result["server"] = sink.counters
                return result

            self.rows.append(Row("sql", variant, label, drain))
        if self.options.quick:
            return
        last = self.options.repeats - 1
        for size_key, variant, only in (
            ("sql-backlog-small", "backlog-small", None),
            # Once: 100,000 rows take minutes to write and drain on two cores.
            ("sql-backlog-large", "backlog-large", last),
        ):
            count = self.sizes[size_key]

            def backlog(repeat: int, count: int = count) -> dict:
                return self.sql_backlog(count)

            self.rows.append(Row("sql", variant, f"backlog: {count:,} rows queued", backlog, only))

    def db(self) -> str:
        return str(self.pg.create_database())

    def sql_backlog(self, n: int) -> dict:
        url = self.db()
        fill = self.worker("sql-fill", PSM, "--dir", "-", "--n", str(n), "--url", url, timeout=3600)
        if "error" in fill:
            return fill
        ini = Path(tempfile.mkdtemp(prefix="sql-status-", dir=self.work)) / "status.ini"
        ini.write_text(
            f"[app:main]\nuse = call:pyramid.router:Router\nsqlalchemy.url = {url}\n"
            "mail.queue = sql\n"
        )
        status_times = []
        for _ in range(3):
            started = time.perf_counter()
            done = subprocess.run(
                [self.python, "-m", "pyramid_sendmail.cli", str(ini), "status"],
                capture_output=True,
                text=True,
                timeout=300,
            )
            status_times.append(time.perf_counter() - started)
            if done.returncode != 0:
                return {"error": "psendmail status failed: " + done.stderr.strip()[-200:]}
        in_process = self.worker("sql-status", PSM, "--dir", "-", "--url", url)
        with self.loopback_sink() as sink:
            result = self.worker(
                "sql-drain", PSM, "--dir", "-", "--url", url, "--prefilled",
                "--port", str(sink.port), timeout=3600,
            )  # fmt: skip
        result["server"] = sink.counters
        result["fill"] = fill
        result["status_cli_seconds"] = statistics.median(status_times)
        result["status_in_process_seconds"] = in_process.get("seconds")
        return result

    def cleanup(self) -> None:
        if self.pg is not None:
            self.pg.remove()
            self.pg = None
        if not self.options.keep_work:
            shutil.rmtree(self.work, ignore_errors=True)


def _check(result: dict) -> None:
    """Note a measurement whose sink did not get every message."""
    if "error" in result:
        return
    problems = []
    if result.get("left"):
        problems.append(f"{result['left']} message(s) left in the queue")
    received = result.get("server", {}).get("messages")
    if received is not None and "n" in result and received != result["n"] - result.get("left", 0):
        problems.append(f"the sink received {received} of {result['n']} messages")
    if problems:
        result["warning"] = "; ".join(problems)


def _summary(case: str, result: dict) -> str:
    if case == "request" or "added_ms" in result:
        return f"+{result['added_ms']:.3f} ms/request"
    warning = f"  WARNING: {result['warning']}" if "warning" in result else ""
    return f"{result['rate']:,.0f} msg/s{warning}"


# -- the report ------------------------------------------------------------------


def _median(row: Row, key: str) -> float | None:
    values = [r[key] for r in row.results if "error" not in r and r.get(key) is not None]
    return statistics.median(values) if values else None


def _spread(row: Row, key: str, fmt: str) -> str:
    values = [r[key] for r in row.results if "error" not in r and r.get(key) is not None]
    if len(values) < 2:
        return ""
    return f"{fmt.format(min(values))}-{fmt.format(max(values))}"


def _find(rows: list[Row], case: str, variant: str) -> Row | None:
    for row in rows:
        if row.case == case and row.variant == variant:
            return row
    return None


def _fmt(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def report(
    bench: Bench, versions_found: dict, elapsed: float, date: datetime.datetime | None = None
) -> tuple[str, dict]:
    rows = bench.rows
    lines: list[str] = []
    add = lines.append
    opts = bench.options
    date = date or datetime.datetime.now()
    add(
        f"pyramid_sendmail benchmark, {date:%Y-%m-%d %H:%M}"
        f"{'  (--quick smoke run)' if opts.quick else ''}"
    )
    add(
        f"{opts.repeats} interleaved repeat(s), each measurement in a fresh process on a fresh "
        "queue directory; medians (min-max over repeats)."
    )
    add(
        f"Message: {len(payload.message_bytes())} bytes, one recipient. Ratio columns: "
        "pyramid_sendmail / the row (above 1: pyramid_sendmail is faster)."
    )
    if opts.quick:
        add("SMOKE RUN: the sizes are far too small for these numbers to mean anything.")
    add("")

    def rate_table(
        case: str, title: str, extra: Callable[[Row], str] | None = None, extra_head: str = ""
    ) -> None:
        case_rows = [r for r in rows if r.case == case]
        if not case_rows:
            return
        add(title)
        psm = _find(rows, case, PSM)
        psm_rate = _median(psm, "rate") if psm else None
        add(f"  {'variant':<58} {'msg/s':>9} {'range':>15} {'psm/row':>8} {extra_head}")
        for row in case_rows:
            rate = _median(row, "rate")
            ratio = psm_rate / rate if psm_rate and rate else None
            errors = [r["error"] for r in row.results if "error" in r]
            tail = extra(row) if extra else ""
            add(
                f"  {row.label:<58} {_fmt(rate, '{:,.0f}'):>9} "
                f"{_spread(row, 'rate', '{:,.0f}'):>15} {_fmt(ratio, '{:.2f}'):>8} {tail}"
            )
            if errors:
                add(f"      ! {len(errors)} failed: {errors[0]}")
            for r in row.results:
                if "warning" in r:
                    add(f"      ! repeat {r['repeat'] + 1}: {r['warning']}")
        add("")

    def enqueue_extra(row: Row) -> str:
        raw = _find(rows, "enqueue", "raw")
        raw_rate = _median(raw, "rate") if raw else None
        rate = _median(row, "rate")
        fs = _median(row, "fsyncs_per_message")
        of_raw = f"{rate / raw_rate:.0%}" if rate and raw_rate else "n/a"
        if row.variant == PAIRED:
            paired = _median(row, "of_raw")
            of_raw = f"{paired:.0%}" if paired else "n/a"
        return f"{of_raw:>8} {_fmt(fs, '{:.0f}'):>9}"

    n = bench.sizes
    rate_table(
        "enqueue",
        f"enqueue: {n['enqueue']:,} messages, each in its own committed transaction",
        enqueue_extra,
        f"{'of raw':>8} {'fsync/msg':>9}",
    )

    def server_extra(row: Row) -> str:
        ok = [r for r in row.results if "error" not in r]
        if not ok:
            return ""
        server = ok[-1].get("server", {})
        sessions = server.get("sessions")
        msgs = server.get("messages")
        left = max(r.get("left", 0) for r in ok)
        text = f"{sessions} sessions/{msgs} msgs" if sessions is not None else ""
        if server.get("tls_messages") is not None and msgs:
            text += f", TLS {server['tls_messages']}, AUTH {server['auth_messages']}"
        if left:
            text += f", {left} LEFT IN QUEUE"
        return text

    sink_name = "smtp-sink" if bench.have_postfix else "aiosmtpd sink (smtp-sink missing)"
    rate_table(
        "drain",
        f"drain: {n['drain']:,} queued messages to {sink_name} on 127.0.0.1",
        server_extra,
        "server counters (last repeat)",
    )
    rate_table(
        "drain-far",
        f"drain-far: {n['drain-far']:,} messages over a 10 ms round trip "
        "(delaying proxy), aiosmtpd sink with STARTTLS + AUTH",
        server_extra,
        "server counters (last repeat)",
    )

    def direct_extra(row: Row) -> str:
        median = _median(row, "median_ms")
        if median is None:
            return server_extra(row)
        trips = f"{median / FAR_RTT_MS:>6.1f}" if row.case == "direct-far" else f"{'':>6}"
        return f"{median:>9.2f} {trips}  {server_extra(row)}"

    direct_head = f"{'median ms':>9} {'RTTs':>6}  server counters (last repeat)"
    rate_table(
        "direct",
        f"direct: {n['direct']:,} messages, each sent by direct delivery in its own committed "
        f"transaction, to {sink_name} on 127.0.0.1",
        direct_extra,
        direct_head,
    )
    rate_table(
        "direct-far",
        f"direct-far: {n['direct-far']:,} messages, each in its own commit, over a 10 ms round "
        "trip, STARTTLS + AUTH (median ms: one warm commit; RTTs: that in round trips)",
        direct_extra,
        direct_head,
    )

    request_rows = [r for r in rows if r.case == "request"]
    if request_rows:
        add(
            f"request: pyramid_tm + WebTest, {n['request']:,} request pairs alternating "
            "(view queues one message / same view sends nothing)"
        )
        add(f"  {'variant':<58} {'added ms':>9} {'range':>15} {'send ms':>9} {'none ms':>9}")
        for row in request_rows:
            add(
                f"  {row.label:<58} {_fmt(_median(row, 'added_ms'), '{:.3f}'):>9} "
                f"{_spread(row, 'added_ms', '{:.3f}'):>15} "
                f"{_fmt(_median(row, 'send_ms'), '{:.3f}'):>9} "
                f"{_fmt(_median(row, 'nothing_ms'), '{:.3f}'):>9}"
            )
        add("")

    small = _find(rows, "backlog", "small")
    large = _find(rows, "backlog", "large")
    if small or large:
        add(
            "backlog: pyramid_sendmail draining a pre-written queue (files written straight into "
            "a fresh new/ in the"
        )
        add("  queue's own format, page cache warm) to the loopback sink; default workers")
        add(
            f"  {'queue':<30} {'msg/s':>9} {'range':>15} {'peak RSS MB':>12} "
            f"{'status CLI s':>13} {'status() s':>11}"
        )
        for row in (small, large):
            if row is None:
                continue
            add(
                f"  {row.label:<30} {_fmt(_median(row, 'rate'), '{:,.0f}'):>9} "
                f"{_spread(row, 'rate', '{:,.0f}'):>15} "
                f"{_fmt(_median(row, 'maxrss_mb'), '{:.0f}'):>12} "
                f"{_fmt(_median(row, 'status_cli_seconds'), '{:.2f}'):>13} "
                f"{_fmt(_median(row, 'status_in_process_seconds'), '{:.3f}'):>11}"
            )
            for r in row.results:
                if "error" in r or "warning" in r:
                    add(f"      ! {r.get('error') or r['warning']}")
        add("")

    sql_rows = [r for r in rows if r.case == "sql"]
    if sql_rows:
        add(
            "sql: the SQL queue on PostgreSQL 15 over 127.0.0.1 (private cluster, fsync off), "
            f"side by side with the Maildir; drains to {sink_name}"
        )
        add(
            f"  {'variant':<52} {'msg/s':>9} {'range':>15} {'added ms':>9} {'range':>15} "
            f"{'status CLI s':>13} {'status() s':>11}"
        )
        for row in sql_rows:
            add(
                f"  {row.label:<52} {_fmt(_median(row, 'rate'), '{:,.0f}'):>9} "
                f"{_spread(row, 'rate', '{:,.0f}'):>15} "
                f"{_fmt(_median(row, 'added_ms'), '{:.3f}'):>9} "
                f"{_spread(row, 'added_ms', '{:.3f}'):>15} "
                f"{_fmt(_median(row, 'status_cli_seconds'), '{:.2f}'):>13} "
                f"{_fmt(_median(row, 'status_in_process_seconds'), '{:.3f}'):>11}"
            )
            for r in row.results:
                if "error" in r or "warning" in r:
                    add(f"      ! {r.get('error') or r['warning']}")
        request = _find(rows, "sql", "request")
        if request and _median(request, "send_ms") is not None:
            add(
                f"  request medians: row + message {_median(request, 'send_ms'):.3f} ms, "
                f"row alone {_median(request, 'nothing_ms'):.3f} ms"
                + (
                    f", the queued row's INSERT alone {floor:.3f} ms"
                    if (floor := _median(request, "floor_insert_ms")) is not None
                    else ""
                )
            )
        add("")

    targets = evaluate_targets(rows)
    if targets:
        add("targets (issues 4, 10 and 14), from the medians above")
        for name, measured, goal, met in targets:
            verdict = "n/a" if met is None else ("met" if met else "MISSED")
            add(f"  {name:<58} {measured:>12} {goal:>10}  {verdict}")
        add("")
    if bench.notes:
        add("notes")
        for note in bench.notes:
            add(f"  - {note}")
        add("")
    add("versions")
    for name, version in versions_found.items():
        add(f"  {name:<34} {version or 'not installed'}")
    add(f"\ntotal run time {elapsed:.0f} s")
    text = "\n".join(lines)
    data = {
        "date": date.isoformat(timespec="seconds"),
        "quick": opts.quick,
        "repeats": opts.repeats,
        "sizes": bench.sizes,
        "message_bytes": len(payload.message_bytes()),
        "versions": versions_found,
        "notes": bench.notes,
        "targets": [{"target": t, "measured": m, "goal": g, "met": ok} for t, m, g, ok in targets],
        "rows": [
            {"case": r.case, "variant": r.variant, "label": r.label, "results": r.results}
            for r in rows
        ],
        "seconds": elapsed,
    }
    return text, data


def evaluate_targets(rows: list[Row]) -> list[tuple[str, str, str, bool | None]]:
    out: list[tuple[str, str, str, bool | None]] = []

    def rate(case: str, variant: str) -> float | None:
        row = _find(rows, case, variant)
        return _median(row, "rate") if row else None

    def ratio_target(
        name: str, case: str, other: str, goal: float, percent: bool = False, mine_variant=PSM
    ):
        mine, theirs = rate(case, mine_variant), rate(case, other)
        if mine is None or theirs is None:
            return
        value = mine / theirs
        shown = f"{value:.0%}" if percent else f"{value:.2f}x"
        wanted = f">= {goal:.0%}" if percent else f">= {goal:g}x"
        out.append((name, shown, wanted, value >= goal))

    ratio_target("drain vs zope.sendmail", "drain", "zope.sendmail", 3)
    ratio_target("drain vs repoze.sendmail", "drain", "repoze.sendmail", 4)
    ratio_target(
        "drain vs smtp-source, 4 reused sessions", "drain", "smtp-source -s 4 -d", 0.4, percent=True
    )
    ratio_target(
        f"drain, {PROCESSES} processes, vs smtp-source, 4 reused",
        "drain",
        "smtp-source -s 4 -d",
        0.4,
        percent=True,
        mine_variant=PSM_PROCESSES,
    )
    ratio_target("drain-far vs zope.sendmail", "drain-far", "zope.sendmail", 20)
    ratio_target("drain-far vs repoze.sendmail", "drain-far", "repoze.sendmail", 20)
    ratio_target("direct, a commit per message, vs zope.sendmail", "direct", "zope.sendmail", 2)
    far = _find(rows, "direct-far", PSM)
    far_ms = _median(far, "median_ms") if far else None
    if far_ms is not None:
        trips = far_ms / FAR_RTT_MS
        out.append(
            (
                "direct-far: round trips a warm request adds",
                f"{trips:.1f} RTT",
                "<= 3 RTT",
                trips <= 3,
            )
        )
    ratio_target("enqueue vs raw fsync loop (separate processes)", "enqueue", "raw", 0.8, True)
    paired = _find(rows, "enqueue", PAIRED)
    of_raw = _median(paired, "of_raw") if paired else None
    if of_raw is not None:
        out.append(
            (
                "enqueue vs raw fsync loop (paired, one process)",
                f"{of_raw:.0%}",
                ">= 80%",
                of_raw >= 0.8,
            )
        )
    request = _find(rows, "request", PSM)
    added = _median(request, "added_ms") if request else None
    if added is not None:
        out.append(
            ("request: time one queued message adds", f"{added:.3f} ms", "< 1 ms", added < 1.0)
        )
    out += sql_targets(rows)
    small, large = _find(rows, "backlog", "small"), _find(rows, "backlog", "large")
    if small and large:
        s, big = _median(small, "rate"), _median(large, "rate")
        if s and big:
            out.append(
                (
                    "backlog: drain rate, large queue vs small",
                    f"{big / s:.0%}",
                    ">= 80%",
                    big / s >= 0.8,
                )
            )
        mem = _median(large, "maxrss_mb")
        if mem is not None:
            out.append(
                (
                    "backlog: peak RSS of the processor, large queue",
                    f"{mem:.0f} MB",
                    "< 100 MB",
                    mem < 100,
                )
            )
        status = _median(large, "status_cli_seconds")
        if status is not None:
            out.append(
                ("backlog: `psendmail status`, large queue", f"{status:.2f} s", "< 2 s", status < 2)
            )
    return out


def sql_targets(rows: list[Row]) -> list[tuple[str, str, str, bool | None]]:
    """Issue 10's goals for the SQL queue, from the medians of the ``sql`` rows."""
    out: list[tuple[str, str, str, bool | None]] = []

    def value(variant: str, key: str) -> float | None:
        row = _find(rows, "sql", variant)
        return _median(row, key) if row else None

    added = value("request", "added_ms")
    if added is not None:
        out.append(
            (
                "sql: a queued message adds to a request",
                f"{added:.3f} ms",
                "<= 0.3 ms",
                added <= 0.3,
            )
        )
    pairs = [
        ("sql: drain, 1 process, vs the Maildir's", "sql", "maildir", 0.6, True),
        (
            f"sql: drain, {SQL_PROCESSES} processes vs 1",
            f"sql -p{SQL_PROCESSES}",
            "sql",
            2.0,
            False,
        ),
        ("sql: drain rate, large table vs small", "backlog-large", "backlog-small", 0.8, True),
    ]
    for name, mine, other, goal, percent in pairs:
        a, b = value(mine, "rate"), value(other, "rate")
        if a is None or not b:
            continue
        ratio = a / b
        shown = f"{ratio:.0%}" if percent else f"{ratio:.2f}x"
        wanted = f">= {goal:.0%}" if percent else f">= {goal:g}x"
        out.append((name, shown, wanted, ratio >= goal))
    status = value("backlog-large", "status_cli_seconds")
    if status is not None:
        out.append(("sql: `psendmail status`, large table", f"{status:.2f} s", "< 1 s", status < 1))
    return out


def render(path: str) -> str:
    """The table of a saved run (its .json), with this version's report."""
    from types import SimpleNamespace

    data = json.loads(Path(path).read_text())
    rows = [
        Row(r["case"], r["variant"], r["label"], lambda repeat: {}, results=r["results"])
        for r in data["rows"]
    ]
    bench = SimpleNamespace(
        rows=rows,
        options=SimpleNamespace(quick=data["quick"], repeats=data["repeats"]),
        sizes=data["sizes"],
        have_postfix=bool(data["versions"].get("postfix (smtp-sink, smtp-source)")),
        notes=data.get("notes", []),
    )
    date = datetime.datetime.fromisoformat(data["date"])
    text, _ = report(bench, data["versions"], data["seconds"], date)  # type: ignore[arg-type]
    return text


# -- profiling -------------------------------------------------------------------


def profile(bench: Bench, target: str) -> None:
    """Run one measurement under cProfile and print where its time goes."""
    case, _, variant = target.partition(":")
    variant = variant or PSM
    stats_file = str(bench.work / "profile.stats")
    sizes = bench.sizes
    common = ["--profile", stats_file]
    if case in ("drain", "drain-far", "backlog"):
        # cProfile sees the calling thread only: one worker, in that thread.
        common += ["--workers", "1"] if variant == PSM else []
    if case not in ("enqueue", "request", "drain", "drain-far"):
        raise SystemExit(f"cannot profile {target!r}: use enqueue, request, drain, drain-far")
    worker_case = "drain" if case == "drain-far" else case
    args = [variant, "--dir", bench.fresh_dir("profile"), "--n", str(sizes[case]), *common]
    if case == "drain":
        with bench.loopback_sink() as sink:
            result = bench.worker(worker_case, *args, "--port", str(sink.port))
    elif case == "drain-far":
        with bench.far_link() as (_sink, proxy):
            result = bench.worker(
                worker_case, *args, "--port", str(proxy.port), "--tls", "--cafile", bench.far_cafile
            )
    else:
        result = bench.worker(worker_case, *args)
    print(json.dumps(result))
    if "error" in result:
        return
    import pstats

    for order in ("tottime", "cumulative"):
        print(f"\n--- top 25 by {order}")
        pstats.Stats(stats_file).sort_stats(order).print_stats(25)


# -- main ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark pyramid_sendmail against repoze.sendmail, pyramid_mailer, "
        "zope.sendmail and Postfix's smtp-source."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: tiny sizes, one repeat, pyramid_sendmail only, the "
        "current interpreter (implies --no-venv)",
    )
    parser.add_argument(
        "--no-venv", action="store_true", help="use the current interpreter instead of bench/.venv"
    )
    parser.add_argument(
        "--save",
        action="store_true",
        help="write the table and the raw numbers into bench/results/",
    )
    parser.add_argument("--repeats", type=int, help="interleaved repeats (default 3; quick 1)")
    parser.add_argument(
        "--cases",
        default=",".join(CASE_NAMES),
        help=f"comma-separated subset of {','.join(CASE_NAMES)}",
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every message count by this"
    )
    parser.add_argument(
        "--keep-work", action="store_true", help="keep the queue directories under bench/work/"
    )
    parser.add_argument(
        "--render",
        metavar="RESULT.json",
        help="print the table of a saved run again (with this version's report) and exit",
    )
    parser.add_argument(
        "--no-postfix",
        action="store_true",
        help="act as if smtp-sink and smtp-source were missing (tests that path)",
    )
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also drain with the pyramid_sendmail package found in DIR (e.g. an exported "
        "older commit), interleaved with this checkout's, in the drain and drain-far cases",
    )
    parser.add_argument(
        "--only-psm",
        action="store_true",
        help="drain and drain-far: pyramid_sendmail's rows only (and --baseline's), "
        "without the other packages and smtp-source",
    )
    parser.add_argument(
        "--profile",
        metavar="CASE[:VARIANT]",
        help="run one measurement under cProfile and print the top functions",
    )
    options = parser.parse_args(argv)
    if options.render:
        print(render(options.render))
        return 0
    if options.baseline:
        options.baseline = os.path.abspath(options.baseline)
        if not os.path.isdir(os.path.join(options.baseline, "pyramid_sendmail")):
            parser.error(f"--baseline {options.baseline} holds no pyramid_sendmail package")
    options.cases = [c.strip() for c in options.cases.split(",") if c.strip()]
    unknown = set(options.cases) - set(CASE_NAMES)
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    if options.repeats is None:
        options.repeats = 1 if options.quick else 3
    if options.repeats < 1:
        parser.error("--repeats must be at least 1")

    python = sys.executable if options.quick or options.no_venv else ensure_venv()
    WORK.mkdir(exist_ok=True)
    bench = Bench(options, python)
    if options.no_postfix:
        bench.have_postfix = False
    if not bench.have_postfix:
        print(POSTFIX_HINT, flush=True)
        if not options.quick and not options.profile:
            print(
                "The full run compares against smtp-source: install postfix first "
                "(or run --quick).",
                file=sys.stderr,
            )
            bench.cleanup()
            return 2
        bench.notes.append(
            "smtp-sink is missing: the loopback sink is aiosmtpd "
            "(servers.py sink), and the smtp-source rows are left out"
        )
        print("using the aiosmtpd sink (servers.py) instead of smtp-sink", flush=True)
    started = time.perf_counter()
    try:
        if options.profile:
            profile(bench, options.profile)
            return 0
        found = versions(python, bench.have_postfix)
        if options.baseline:
            found["baseline"] = options.baseline
        print("versions: " + ", ".join(f"{k} {v}" for k, v in found.items()), flush=True)
        bench.run()
        text, data = report(bench, found, time.perf_counter() - started)
    finally:
        _stop_children()
        bench.cleanup()
    print()
    print(text)
    if options.save:
        RESULTS.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S") + ("-quick" if options.quick else "")
        (RESULTS / f"{stamp}.txt").write_text(text + "\n")
        (RESULTS / f"{stamp}.json").write_text(json.dumps(data, indent=1) + "\n")
        print(f"\nsaved bench/results/{stamp}.txt and .json")
    failed = sum("error" in r for row in bench.rows for r in row.results)
    if failed:
        print(f"\n{failed} measurement(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
