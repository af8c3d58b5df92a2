"""``psendmail run`` with several processor processes (``mail.queue_processes``).

Real ``psendmail`` processes fork their processors and deliver into a
recording SMTP server in a process of its own (tests/recording_server.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from recording_server import (
    RecordingServer,
    queue_files,
    queue_numbered,
    start_psendmail,
    subprocess_env,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow


def children_of(pid: int) -> set[int]:
    """The live processes whose parent is *pid* (from /proc)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is the state, fields[1] the parent's pid.
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry))
    return found


def is_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def assert_each_delivered_once(server: RecordingServer, expected: list[str]) -> None:
    accepted = server.accepted()
    duplicates = [key for key, n in Counter(accepted).items() if n > 1]
    assert not duplicates, f"sent more than once: {duplicates[:10]}"
    assert sorted(accepted, key=int) == expected


def start_serving(
    tmp_path: Path,
    queue_path: Path,
    server: RecordingServer,
    processes: list[subprocess.Popen[bytes]],
    count: int,
    **mail: object,
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``psendmail run`` with *count* processor processes; return it
    and its log once every child is up."""
    config = write_config(
        tmp_path / "psendmail.ini",
        queue_path,
        server.port,
        queue_processes=count,
        queue_interval=0.2,
        **mail,
    )
    log = tmp_path / "psendmail.stderr"
    process = start_psendmail(config, log, "run")
    processes.append(process)
    assert wait_for(lambda: len(children_of(process.pid)) == count, timeout=30), log.read_text()
    return process, log


@pytest.fixture
def queue_path(tmp_path: Path) -> Path:
    path = tmp_path / "queue"
    path.mkdir()
    return path


def test_run_once_with_two_processes_delivers_each_message_once(
    tmp_path: Path, queue_path: Path, recording_server: RecordingServer
) -> None:
    config = write_config(tmp_path / "psendmail.ini", queue_path, recording_server.port)
    expected = queue_numbered(queue_path, 400)
    log = tmp_path / "psendmail.stderr"

    process = start_psendmail(config, log, "run", "--once", "--processes", "2")

    assert process.wait(timeout=60) == 0, log.read_text()
    assert Path(str(log) + ".out").read_text() == (
        "400 sent, 0 deferred, 0 failed, 0 throttled = 400 handled\n"
    )
    assert_each_delivered_once(recording_server, expected)
    assert queue_files(queue_path) == {"tmp": [], "new": [], "cur": [], "failed": []}


def test_run_once_with_two_processes_adds_up_what_they_set_aside_and_recovered(
    tmp_path: Path, queue_path: Path, recording_server: RecordingServer
) -> None:
    config = write_config(tmp_path / "psendmail.ini", queue_path, recording_server.port)
    expected = queue_numbered(queue_path, 20)
    names = sorted(os.listdir(queue_path / "new"))
    (queue_path / "new" / names[0]).write_bytes(b"garbage")
    # Claimed, without its time, by a processor that died.
    os.rename(queue_path / "new" / names[1], queue_path / "cur" / names[1])
    log = tmp_path / "psendmail.stderr"

    process = start_psendmail(config, log, "run", "--once", "--processes", "2")

    assert process.wait(timeout=60) == 0, log.read_text()
    assert Path(str(log) + ".out").read_text() == (
        "19 sent, 0 deferred, 0 failed, 0 throttled = 19 handled; "
        "1 unreadable message set aside, 1 stale claim recovered\n"
    )
    assert sorted(recording_server.accepted(), key=int) == expected[1:]
    assert queue_files(queue_path)["failed"] == [f".{names[0]}.error", names[0]]


def test_run_once_with_two_processes_and_the_relay_down_keeps_the_mail(
    tmp_path: Path, queue_path: Path, recording_server: RecordingServer
) -> None:
    port = recording_server.port
    recording_server.stop()
    config = write_config(tmp_path / "psendmail.ini", queue_path, port)
    queue_numbered(queue_path, 20)
    log = tmp_path / "psendmail.stderr"

    process = start_psendmail(config, log, "run", "--once", "--processes", "2")

    # 75 (EX_TEMPFAIL): the relay was down, the mail waits for the next run.
    assert process.wait(timeout=60) == 75, log.read_text()
    out = Path(str(log) + ".out").read_text()
    assert out.startswith("0 sent, ")
    assert "the relay could not be reached" in out
    files = queue_files(queue_path)
    assert len(files["new"]) == 20
    assert files["cur"] == files["failed"] == []


def test_queue_processes_forks_that_many_processors_and_sigterm_stops_them_all(
    tmp_path: Path,
    queue_path: Path,
    recording_server: RecordingServer,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    process, log = start_serving(tmp_path, queue_path, recording_server, processes, 3)
    children = children_of(process.pid)

    expected = queue_numbered(queue_path, 300)
    assert wait_for(lambda: recording_server.count() >= 300, timeout=40), log.read_text()
    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=20) == 0, log.read_text()
    assert wait_for(lambda: all(is_gone(pid) for pid in children), timeout=10)
    assert_each_delivered_once(recording_server, expected)
    assert queue_files(queue_path)["new"] == []


def test_a_processor_process_that_dies_is_replaced(
    tmp_path: Path,
    queue_path: Path,
    recording_server: RecordingServer,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    process, log = start_serving(
        tmp_path, queue_path, recording_server, processes, 2, log_level="INFO"
    )
    victim = min(children_of(process.pid))

    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        now = children_of(process.pid)
        return len(now) == 2 and victim not in now

    assert wait_for(replaced, timeout=30), log.read_text()
    assert "ended (-9); starting another" in log.read_text()
    expected = queue_numbered(queue_path, 50)
    assert wait_for(lambda: recording_server.count() >= 50, timeout=40), log.read_text()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0, log.read_text()
    assert_each_delivered_once(recording_server, expected)


@pytest.mark.parametrize("command", [["run"], ["run", "--once"]])
def test_processors_that_cannot_load_the_app_stop_psendmail_with_exit_2(
    tmp_path: Path,
    queue_path: Path,
    recording_server: RecordingServer,
    command: list[str],
) -> None:
    config = write_config(
        tmp_path / "psendmail.ini", queue_path, recording_server.port, queue_processes=2
    )
    text = config.read_text().replace("recording_server:make_app", "recording_server:broken_app")
    config.write_text(text)
    queue_numbered(queue_path, 5)

    done = subprocess.run(
        [sys.executable, "-m", "pyramid_sendmail.cli", str(config), *command],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(),
    )

    assert done.returncode == 2, done.stderr
    assert "this application cannot start" in done.stderr
    assert len(queue_files(queue_path)["new"]) == 5
    assert recording_server.count() == 0


def test_run_once_says_so_when_a_processor_process_is_killed(
    tmp_path: Path, queue_path: Path, recording_server: RecordingServer
) -> None:
    config = write_config(tmp_path / "psendmail.ini", queue_path, recording_server.port)
    queue_numbered(queue_path, 2000)
    log = tmp_path / "psendmail.stderr"
    process = start_psendmail(config, log, "run", "--once", "--processes", "2")
    try:
        assert wait_for(lambda: recording_server.count() >= 20, timeout=30), log.read_text()
        victim = min(children_of(process.pid))
        os.kill(victim, signal.SIGKILL)

        assert process.wait(timeout=60) == 1, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    assert "1 processor process(es) failed (exit -9)" in log.read_text()
    # The other one went on; the killed one's messages in hand wait in cur/
    # for the claim timeout. None is lost.
    files = queue_files(queue_path)
    assert files["new"] == []
    assert len(files["cur"]) <= 8
    delivered = set(recording_server.accepted())
    in_hand = {
        (queue_path / "cur" / name).read_text().split("X-Seq: ")[1].split()[0]
        for name in files["cur"]
    }
    assert delivered | in_hand == {str(seq) for seq in range(2000)}


def test_processor_processes_stop_when_psendmail_itself_is_killed(
    tmp_path: Path,
    queue_path: Path,
    recording_server: RecordingServer,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    process, log = start_serving(tmp_path, queue_path, recording_server, processes, 2)
    children = children_of(process.pid)

    process.kill()
    process.wait(timeout=10)

    assert wait_for(lambda: all(is_gone(pid) for pid in children), timeout=20), log.read_text()
