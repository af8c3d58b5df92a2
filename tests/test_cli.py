"""``psendmail``: run in-process through main(), and as a process for signals."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pyramid.config import Configurator

from pyramid_sendmail import FileMailer, Message, processor_thread
from pyramid_sendmail.cli import main
from pyramid_sendmail.interfaces import IMailer
from pyramid_sendmail.message import Envelope, prepare
from pyramid_sendmail.queue import STALE_TMP_AGE, MaildirQueue

APP_INI = """\
[app:main]
use = egg:mailform
mail.host = 127.0.0.1
mail.port = {port}
mail.timeout = 5
mail.default_sender = Example App <app@example.org>
mail.queue_path = %(here)s/queue
mail.queue_interval = 60
{extra}
"""

# Settings alone, no "use =": enough for psendmail --no-app.
SETTINGS_INI = """\
[app:main]
mail.host = 127.0.0.1
mail.port = {port}
mail.timeout = 5
mail.queue_path = %(here)s/queue
{extra}
"""


def envelope(subject: str = "Hello", to: Sequence[str] = ("bob@example.org",)) -> Envelope:
    return prepare(
        Message(subject=subject, sender="ann@example.org", recipients=list(to), body="Hi\n")
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Psendmail:
    """An INI file in tmp_path, its queue, and main() run in this process."""

    def __init__(self, tmp_path: Path, port: int) -> None:
        self.tmp_path = tmp_path
        self.port = port
        self.ini = tmp_path / "app.ini"
        self.write()
        self.queue = MaildirQueue(str(tmp_path / "queue"))

    def write(self, template: str = APP_INI, extra: str = "", port: int | None = None) -> str:
        self.ini.write_text(template.format(port=port or self.port, extra=extra))
        return str(self.ini)

    def __call__(self, *argv: str) -> tuple[int, str]:
        out = io.StringIO()
        code = main([str(self.ini), *argv], out=out)
        return code, out.getvalue()

    def fail_one(self, subject: str = "failed", error: str = "550 5.1.1 No such user") -> str:
        entry = self.queue.claim(self.queue.add(envelope(subject)))
        assert entry is not None
        self.queue.fail(entry, error)
        return entry.name

    def files(self, sub: str) -> list[str]:
        return sorted(n for n in os.listdir(self.tmp_path / "queue" / sub) if n[0] != ".")


@pytest.fixture
def psendmail(tmp_path: Path, smtp_server: Any) -> Psendmail:
    return Psendmail(tmp_path, smtp_server.port)


# -- failed -----------------------------------------------------------------


def test_failed_lists_each_failed_message_with_its_error(psendmail: Psendmail) -> None:
    name = psendmail.fail_one("bounced", "550 5.1.1 No such user")

    code, out = psendmail("failed")

    assert code == 0
    assert name in out
    assert "550 5.1.1 No such user" in out
    assert "1 failed message in" in out


def test_failed_json_is_machine_readable(psendmail: Psendmail) -> None:
    name = psendmail.fail_one("bounced", "550 5.1.1 No such user")

    code, out = psendmail("failed", "--json")

    assert code == 0
    [entry] = json.loads(out)
    assert entry["id"] == name
    assert entry["error"] == "550 5.1.1 No such user"
    assert entry["recipients"] and entry["attempts"] == 0


# -- status -----------------------------------------------------------------


def test_status_prints_counts_of_each_kind(psendmail: Psendmail) -> None:
    psendmail.queue.add(envelope("one"))
    psendmail.queue.add(envelope("two"))
    psendmail.fail_one()

    code, out = psendmail("status")

    assert code == 0
    rows = {}
    for line in out.splitlines()[1:]:
        words = line.split()
        number_at = next(i for i, w in enumerate(words) if w.isdigit())
        rows[" ".join(words[:number_at])] = int(words[number_at])
    assert str(psendmail.queue.path) in out.splitlines()[0]
    assert rows == {"queued": 2, "deferred": 0, "claimed": 0, "failed": 1, "stale tmp": 0}
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "oldest" in lines["queued"]
    assert "oldest" not in lines["deferred"]


def test_status_json_gives_counts_and_ages(psendmail: Psendmail) -> None:
    psendmail.queue.add(envelope("queued"))
    psendmail.fail_one()
    stale = psendmail.queue.prepare(envelope("never published"))
    old = time.time() - STALE_TMP_AGE - 60
    os.utime(Path(psendmail.queue.tmp, stale), (old, old))

    code, out = psendmail("status", "--json")

    assert code == 0
    report = json.loads(out)
    assert report["queue"] == psendmail.queue.path
    assert {kind: report[kind]["count"] for kind in report if kind != "queue"} == {
        "queued": 1,
        "deferred": 0,
        "claimed": 0,
        "failed": 1,
        "stale_tmp": 1,
    }
    assert report["deferred"]["oldest"] is None
    assert report["queued"]["oldest"] >= 0
    # Reported, never deleted.
    assert psendmail.files("tmp") == [stale]


def test_status_of_an_empty_queue(psendmail: Psendmail) -> None:
    code, out = psendmail("status", "--json")

    assert code == 0
    assert all(json.loads(out)[kind]["count"] == 0 for kind in ("queued", "failed"))


def test_status_reads_an_ini_with_settings_only(psendmail: Psendmail) -> None:
    psendmail.write(SETTINGS_INI)
    psendmail.queue.add(envelope())

    code, out = psendmail("status", "--json")

    assert code == 0
    assert json.loads(out)["queued"]["count"] == 1


# -- retry ------------------------------------------------------------------


def test_retry_puts_the_named_failed_message_back(psendmail: Psendmail) -> None:
    first = psendmail.fail_one("first")
    second = psendmail.fail_one("second")

    code, out = psendmail("retry", first)

    assert code == 0
    assert "1 message" in out
    assert psendmail.files("failed") == [second]
    [entry] = psendmail.queue.list("new")
    assert str(entry.envelope.message["Subject"]) == "first"
    assert entry.attempts == 0


def test_retry_all_puts_every_failed_message_back(psendmail: Psendmail) -> None:
    for subject in ("one", "two", "three"):
        psendmail.fail_one(subject)

    code, out = psendmail("retry", "--all")

    assert code == 0
    assert "3 message" in out
    assert psendmail.files("failed") == []
    assert len(psendmail.files("new")) == 3


def test_retry_of_an_unknown_id_exits_1_and_moves_nothing(
    psendmail: Psendmail, capsys: pytest.CaptureFixture[str]
) -> None:
    known = psendmail.fail_one()

    code, _ = psendmail("retry", known, "no-such-message")

    assert code == 1
    assert "no-such-message" in capsys.readouterr().err
    assert psendmail.files("failed") == [known]
    assert psendmail.files("new") == []


def test_retry_without_ids_or_all_is_a_usage_error(
    psendmail: Psendmail, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = psendmail("retry")

    assert code == 2
    assert "--all" in capsys.readouterr().err


def test_retry_of_an_unreadable_dead_letter_exits_1_and_keeps_it(
    psendmail: Psendmail, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = psendmail.queue.add(envelope("bad"))
    Path(psendmail.queue.new, bad).write_bytes(b"garbage")
    psendmail.queue.claim(bad)  # set aside as corrupt
    good = psendmail.fail_one("good")

    code, _ = psendmail("retry", bad)
    assert code == 1
    assert bad in capsys.readouterr().err
    assert psendmail.files("failed") == sorted([bad, good])

    code, out = psendmail("retry", "--all")
    assert code == 1
    assert "1 message" in out
    assert "cannot be read" in capsys.readouterr().err
    assert psendmail.files("failed") == [bad]
    assert len(psendmail.files("new")) == 1


# -- run --once and send-test -----------------------------------------------


def test_run_once_drains_the_queue_to_the_relay(psendmail: Psendmail, smtp_server: Any) -> None:
    mails = [envelope(f"message {i}") for i in range(3)]
    for mail in mails:
        psendmail.queue.add(mail)

    code, out = psendmail("run", "--once")

    assert code == 0
    assert out == "3 sent, 0 deferred, 0 failed, 0 throttled = 3 handled\n"
    assert sorted(m.data for m in smtp_server.messages) == sorted(m.data for m in mails)
    assert psendmail.files("new") == []
    assert psendmail.files("cur") == []


def test_run_once_counts_unreadable_files_and_recovered_claims(
    psendmail: Psendmail, smtp_server: Any
) -> None:
    bad = psendmail.queue.add(envelope("bad"))
    Path(psendmail.queue.new, bad).write_bytes(b"garbage")
    stale = psendmail.queue.add(envelope("stale"))
    # Claimed by a processor that died long ago.
    os.rename(Path(psendmail.queue.new, stale), Path(psendmail.queue.cur, stale))

    code, out = psendmail("--no-app", "run", "--once")

    assert code == 0
    assert out == (
        "1 sent, 0 deferred, 0 failed, 0 throttled = 1 handled; "
        "1 unreadable message set aside, 1 stale claim recovered\n"
    )
    assert psendmail.files("failed") == [bad]


def test_run_once_loading_the_app_starts_no_thread_and_leaves_no_trace(
    psendmail: Psendmail, smtp_server: Any
) -> None:
    psendmail.write(extra="mail.queue_processor = thread")
    psendmail.queue.add(envelope())

    code, _ = psendmail("run", "--once")

    assert code == 0
    assert len(smtp_server.messages) == 1
    # Loading the app must not disable the processor thread for the rest
    # of this process (an application created later must start one).
    assert processor_thread.thread_allowed() is True


def make_file_mailer(settings: dict[str, Any]) -> FileMailer:
    """A ``mail.mailer`` factory named by its dotted name in the INI file."""
    return FileMailer(settings["test.outbox"])


def app_with_its_own_mailer(global_config: dict[str, Any], **settings: Any) -> Any:
    """An application that registers its mailer itself, then includes us."""
    config = Configurator(settings=settings)
    config.registry.registerUtility(FileMailer(settings["test.outbox"]), IMailer)
    config.include("pyramid_sendmail")
    return config.make_wsgi_app()


@pytest.mark.parametrize(
    ("template", "options"),
    [(SETTINGS_INI, ["--no-app"]), (APP_INI, [])],
    ids=["settings-only", "app-loaded"],
)
def test_run_once_delivers_through_the_dotted_name_mailer_of_the_ini(
    psendmail: Psendmail, smtp_server: Any, tmp_path: Path, template: str, options: list[str]
) -> None:
    outbox = tmp_path / "outbox"
    psendmail.write(
        template, extra=f"mail.mailer = test_cli:make_file_mailer\ntest.outbox = {outbox}"
    )
    psendmail.queue.add(envelope("Through the factory"))

    code, out = psendmail(*options, "run", "--once")

    assert code == 0, out
    assert "1 sent" in out
    assert smtp_server.messages == []
    [eml] = outbox.glob("*.eml")
    assert b"Subject: Through the factory" in eml.read_bytes()


def test_run_once_delivers_through_the_mailer_the_app_registered(
    psendmail: Psendmail, smtp_server: Any, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    ini = APP_INI.replace("use = egg:mailform", "use = call:test_cli:app_with_its_own_mailer")
    psendmail.write(ini, extra=f"test.outbox = {outbox}")
    psendmail.queue.add(envelope("Through the app's mailer"))

    code, out = psendmail("run", "--once")

    assert code == 0, out
    assert "1 sent" in out
    assert smtp_server.messages == []
    assert len(list(outbox.glob("*.eml"))) == 1


def app_completing_its_settings(global_config: dict[str, Any], **settings: Any) -> Any:
    """An application whose main() adds the setting its mailer factory reads."""
    settings.setdefault("test.outbox", os.path.join(global_config["here"], "outbox"))
    config = Configurator(settings=settings)
    config.include("pyramid_sendmail")
    return config.make_wsgi_app()


def test_run_once_uses_the_dotted_name_mailer_the_app_built(
    psendmail: Psendmail, smtp_server: Any, tmp_path: Path
) -> None:
    # The factory needs a setting only the application's main() provides:
    # psendmail must deliver through the mailer the application built.
    ini = APP_INI.replace("use = egg:mailform", "use = call:test_cli:app_completing_its_settings")
    psendmail.write(ini, extra="mail.mailer = test_cli:make_file_mailer")
    psendmail.queue.add(envelope("Built by the app"))

    code, out = psendmail("run", "--once")

    assert code == 0, out
    assert "1 sent" in out
    assert smtp_server.messages == []
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1


def test_run_once_without_the_app_reads_settings_only(
    psendmail: Psendmail, smtp_server: Any
) -> None:
    psendmail.write(SETTINGS_INI)
    psendmail.queue.add(envelope())

    code, _ = psendmail("--no-app", "run", "--once")

    assert code == 0
    assert len(smtp_server.messages) == 1


def test_run_with_settings_only_and_without_no_app_says_what_to_do(
    psendmail: Psendmail, capsys: pytest.CaptureFixture[str]
) -> None:
    psendmail.write(SETTINGS_INI)

    code, _ = psendmail("run", "--once")

    assert code == 2
    assert "--no-app" in capsys.readouterr().err


def test_run_once_with_the_relay_down_keeps_the_mail(psendmail: Psendmail) -> None:
    psendmail.write(port=closed_port())
    psendmail.queue.add(envelope())

    code, _ = psendmail("run", "--once")

    # 75 (EX_TEMPFAIL): a cron job can tell "try later" from success.
    assert code == 75
    assert len(psendmail.files("new")) == 1
    assert psendmail.files("failed") == []


def test_send_test_sends_one_message_to_the_address(psendmail: Psendmail, smtp_server: Any) -> None:
    code, out = psendmail("send-test", "admin@example.net")

    assert code == 0
    [received] = smtp_server.messages
    assert received.recipients == ("admin@example.net",)
    assert received.sender == "app@example.org"
    assert b"psendmail send-test" in received.data
    assert "admin@example.net" in out
    assert psendmail.files("new") == []


def test_send_test_to_an_unreachable_relay_exits_1(
    psendmail: Psendmail, capsys: pytest.CaptureFixture[str]
) -> None:
    psendmail.write(port=closed_port())

    code, _ = psendmail("send-test", "admin@example.net")

    assert code == 1
    assert "not sent" in capsys.readouterr().err


# -- configuration errors ---------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ("mail.queue_workers = lots", "mail.queue_workers"),
        ("mail.retry_min = soon", "mail.retry_min"),
        ("mail.hots = smtp.example.org", "mail.host"),
    ],
)
def test_bad_setting_exits_2_naming_it(
    psendmail: Psendmail, capsys: pytest.CaptureFixture[str], extra: str, named: str
) -> None:
    psendmail.write(extra=extra)

    code, _ = psendmail("status")

    assert code == 2
    assert named in capsys.readouterr().err


def test_missing_queue_path_exits_2(
    psendmail: Psendmail, capsys: pytest.CaptureFixture[str]
) -> None:
    psendmail.ini.write_text("[app:main]\nuse = egg:mailform\n")

    code, _ = psendmail("status")

    assert code == 2
    assert "mail.queue_path" in capsys.readouterr().err


def test_queue_path_that_is_a_file_exits_2(
    psendmail: Psendmail, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("")
    psendmail.write(APP_INI.replace("%(here)s/queue", str(tmp_path / "a-file")))

    code, _ = psendmail("status")

    assert code == 2
    assert "mail.queue_path" in capsys.readouterr().err


def test_malformed_config_file_exits_2(
    psendmail: Psendmail, capsys: pytest.CaptureFixture[str]
) -> None:
    psendmail.write(extra="mail.host = twice.example.org")

    code, _ = psendmail("status")

    assert code == 2
    assert "mail.host" in capsys.readouterr().err


def test_missing_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([str(tmp_path / "nowhere.ini"), "status"], out=io.StringIO())

    assert code == 2
    assert "nowhere.ini" in capsys.readouterr().err


def test_missing_app_section_exits_2(
    psendmail: Psendmail, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = psendmail("--app-name", "other", "status")

    assert code == 2
    assert "app:other" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error(psendmail: Psendmail) -> None:
    with pytest.raises(SystemExit) as exited:
        psendmail("frobnicate")

    assert exited.value.code == 2


def test_processes_without_fork_exit_2_naming_the_setting(
    psendmail: Psendmail, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "fork")

    code, _ = psendmail("--no-app", "run", "--once", "--processes", "2")

    assert code == 2
    assert "mail.queue_processes = 2 needs os.fork()" in capsys.readouterr().err


@pytest.mark.parametrize("count", ["0", "two"])
def test_processes_must_be_a_positive_integer(
    psendmail: Psendmail, capsys: pytest.CaptureFixture[str], count: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        psendmail("run", "--once", "--processes", count)

    assert exited.value.code == 2
    assert "--processes" in capsys.readouterr().err


# -- run until a signal -----------------------------------------------------


@pytest.mark.parametrize(
    "argv", [[], ["run"], ["--no-app", "run"]], ids=["default", "run", "no-app"]
)
def test_run_delivers_and_exits_0_on_sigterm(
    psendmail: Psendmail, smtp_server: Any, argv: list[str]
) -> None:
    mail = envelope()
    psendmail.queue.add(mail)
    process = subprocess.Popen(
        [sys.executable, "-m", "pyramid_sendmail.cli", str(psendmail.ini), *argv],
        cwd=psendmail.tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # The process has delivered the queued message: it is in its loop.
        deadline = time.monotonic() + 60
        while not smtp_server.messages and process.poll() is None:
            assert time.monotonic() < deadline, "psendmail run delivered nothing"
            time.sleep(0.05)
        assert process.poll() is None, process.communicate()[1].decode()

        process.send_signal(signal.SIGTERM)
        # mail.queue_interval is 60 s: the signal ends the wait at once.
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0, err.decode()
    assert [m.data for m in smtp_server.messages] == [mail.data]
    assert psendmail.files("new") == psendmail.files("cur") == []


def test_failed_shows_an_unreadable_file_with_the_reason(psendmail: Psendmail) -> None:
    queue_dir = psendmail.tmp_path / "queue"
    name = psendmail.queue.add(envelope("soon corrupt"))
    (queue_dir / "new" / name).write_bytes(b"not a queue file")
    assert psendmail.queue.claim(name) is None  # set aside, with its reason

    code, out = psendmail("failed")

    assert code == 0
    assert f"{name}  (unreadable)" in out
    assert "corrupt queue file" in out


# -- the front door ---------------------------------------------------------


def test_run_once_exits_1_when_mail_failed_for_good(psendmail: Psendmail, smtp_server: Any) -> None:
    from smtpserver import Faults

    smtp_server.faults = Faults(rcpt={"bob@example.org": "550 5.1.1 No such user"})
    psendmail.queue.add(envelope())

    code, out = psendmail("--no-app", "run", "--once")

    assert code == 1, out
    assert len(psendmail.files("failed")) == 1


def test_run_once_exits_75_when_mail_was_deferred(psendmail: Psendmail, smtp_server: Any) -> None:
    from smtpserver import Faults

    smtp_server.faults = Faults(rcpt={"bob@example.org": "451 4.3.0 Try again later"})
    psendmail.queue.add(envelope())

    code, out = psendmail("--no-app", "run", "--once")

    assert code == 75, out


def drop_blocked(envelope: Envelope) -> Envelope:
    """A ``mail.delivery_filter``: never send to blocked@example.org."""
    return envelope.with_recipients([r for r in envelope.recipients if r != "blocked@example.org"])


def test_run_once_counts_each_message_once_and_the_counts_add_up(
    psendmail: Psendmail, smtp_server: Any
) -> None:
    from smtpserver import Faults

    smtp_server.faults = Faults(
        rcpt={
            "later@example.org": "451 4.3.0 Try again later",
            "gone@example.org": "550 5.1.1 No such user",
        }
    )
    psendmail.write(SETTINGS_INI, extra="mail.delivery_filter = test_cli:drop_blocked")
    for to in [
        ["bob@example.org"],  # sent
        ["bob@example.org", "later@example.org"],  # partly sent, the rest deferred
        ["bob@example.org", "later@example.org", "gone@example.org"],  # partly failed
        ["gone@example.org"],  # failed
        ["bob@example.org", "blocked@example.org"],  # partly dropped by the filter
    ]:
        psendmail.queue.add(envelope(to=to))

    code, out = psendmail("--no-app", "run", "--once")

    assert out == (
        "1 sent, 1 deferred, 3 failed, 0 throttled = 5 handled; 3 messages partly delivered\n"
    )
    assert code == 1
    # Nothing counted twice: each of these is one message in its folder.
    assert len(psendmail.files("failed")) == 3
    assert len(psendmail.files("new")) == 2


def test_run_once_shows_throttled_mail_and_exits_75(psendmail: Psendmail, smtp_server: Any) -> None:
    from smtpserver import Faults

    smtp_server.faults = Faults(rcpt={"bob@example.org": "451 4.7.0 Rate limit exceeded"})
    psendmail.queue.add(envelope())

    code, out = psendmail("--no-app", "run", "--once")

    assert out == "0 sent, 0 deferred, 0 failed, 1 throttled = 1 handled\n"
    assert code == 75
    assert len(psendmail.files("new")) == 1


def test_run_once_counts_expired_and_dropped_mail_as_failed(
    psendmail: Psendmail, smtp_server: Any
) -> None:
    from pyramid_sendmail.queue.entry import Schedule, ScheduledEnvelope

    psendmail.write(SETTINGS_INI, extra="mail.delivery_filter = test_cli:drop_blocked")
    psendmail.queue.add(envelope(to=["blocked@example.org"]))
    psendmail.queue.add(ScheduledEnvelope(envelope(), Schedule(expires_at=time.time() - 60)))

    code, out = psendmail("--no-app", "run", "--once")

    assert (code, out) == (1, "0 sent, 0 deferred, 2 failed, 0 throttled = 2 handled\n")
    assert smtp_server.messages == []


def test_help_lists_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "exit codes:" in text
    assert "75" in text and "try again later" in text


@pytest.mark.parametrize("command", [["status"], ["failed"], ["retry", "--all"]])
def test_inspecting_a_missing_queue_folder_says_so_and_creates_nothing(
    tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    ini = tmp_path / "app.ini"
    ini.write_text(SETTINGS_INI.format(port=25, extra="").replace("/queue", "/qeueu"))

    code = main([str(ini), *command], out=io.StringIO())

    assert code == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and "qeueu" in err and "mail.queue_path" in err
    assert not (tmp_path / "qeueu").exists()


def test_a_file_that_is_not_an_ini_file_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.rst"
    readme.write_text("Hello\n=====\n")

    code = main([str(readme), "status"], out=io.StringIO())

    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("psendmail: cannot read ") and "README.rst" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_reader_that_goes_away_is_no_traceback(
    psendmail: Psendmail, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([str(psendmail.ini), "status", "--json"], out=_ClosedPipe())

    assert code == 1
    assert capsys.readouterr().err == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_run_once_log_lines_and_the_progress_bar_do_not_overwrite_each_other(
    psendmail: Psendmail, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    handler = logging.StreamHandler(terminal)
    handler.setFormatter(logging.Formatter("LOG %(message)s"))
    logger = logging.getLogger("pyramid_sendmail")
    monkeypatch.setattr(logger, "level", logging.INFO)
    monkeypatch.setattr(logging.Logger.manager, "disable", 0)
    # An earlier test's logging.config may have disabled the package's loggers.
    for name, child in logging.Logger.manager.loggerDict.items():
        if name.startswith("pyramid_sendmail.") and isinstance(child, logging.Logger):
            monkeypatch.setattr(child, "disabled", False)
            monkeypatch.setattr(child, "level", logging.NOTSET)
    logger.addHandler(handler)
    logging.Logger.manager._clear_cache()  # the levels were set behind its back
    try:
        for i in range(8):
            psendmail.queue.add(envelope(f"message {i}"))
        code, _ = psendmail("--no-app", "run", "--once")
    finally:
        logger.removeHandler(handler)
        monkeypatch.undo()
        logging.Logger.manager._clear_cache()

    assert code == 0
    assert handler.stream is terminal
    shown = on_screen(terminal.getvalue())
    logged = [line for line in shown if "LOG" in line]
    assert len(logged) == 8, terminal.getvalue()
    assert all(line.startswith("LOG ") for line in logged), shown
    assert shown[-2].startswith("[###") and shown[-2].endswith("8/8"), shown


def on_screen(written: str) -> list[str]:
    """The lines a terminal shows: "\\r" goes back to the line's start, ESC[K erases it."""
    return [line.rsplit("\r", 1)[-1].replace("\x1b[K", "") for line in written.split("\n")]


def test_a_log_line_between_two_progress_updates_gets_its_own_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import logging

    from pyramid_sendmail.cli import _ProgressBar

    terminal = _Terminal()
    handler = logging.StreamHandler(terminal)
    logger = logging.getLogger("pyramid_sendmail.test_progress")
    monkeypatch.setattr(logger, "level", logging.INFO)
    monkeypatch.setattr(logger, "disabled", False)
    logger.addHandler(handler)
    logging.Logger.manager._clear_cache()  # the level was set behind its back
    try:
        bar = _ProgressBar(terminal, width=4)
        bar(1, 2)
        logger.info("first message sent")
        bar(2, 2)
        logger.info("second message sent")
        bar.finish()
    finally:
        logger.removeHandler(handler)
        monkeypatch.undo()
        logging.Logger.manager._clear_cache()

    assert on_screen(terminal.getvalue()) == [
        "first message sent",
        "second message sent",
        "[####] 2/2",
        "",
    ]
    assert handler.stream is terminal


def test_failed_says_a_message_past_max_age_was_given_up_on_and_after_how_long(
    psendmail: Psendmail, smtp_server: Any
) -> None:
    from smtpserver import Faults

    five_days_ago = time.time() - 5 * 86400 - 60
    MaildirQueue(str(psendmail.tmp_path / "queue"), clock=lambda: five_days_ago).add(envelope())
    smtp_server.faults = Faults(rcpt={"bob@example.org": "451 4.3.0 Try again later"})

    code, _ = psendmail("--no-app", "run", "--once")
    assert code == 1
    code, out = psendmail("failed")

    assert code == 0
    assert "error: gave up after 5d 0h in the queue; last error: " in out, out
    assert "451 4.3.0 Try again later" in out, out
