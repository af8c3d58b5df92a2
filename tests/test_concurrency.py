"""Several processors share one queue and never send a message twice (promise 5).

Two ``psendmail`` processes with three worker threads each drain one queue
into a recording SMTP server in a process of its own
(tests/recording_server.py), which writes every message it accepts to disk.
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from recording_server import (
    RecordingServer,
    queue_files,
    queue_numbered,
    start_psendmail,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow

MESSAGES = 1000
WORKERS = 3
# The log line pyramid_sendmail writes for each message it delivered.
_SENT = re.compile(r"mail <seq-(\d+)@example\.com> to 1 recipient: sent in")


def test_two_processes_with_several_workers_deliver_each_message_exactly_once(
    tmp_path: Path,
    recording_server: RecordingServer,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    queue_path = tmp_path / "queue"
    queue_path.mkdir()
    config = write_config(
        tmp_path / "psendmail.ini",
        queue_path,
        recording_server.port,
        log_level="INFO",
        queue_workers=WORKERS,
        queue_interval=0.2,
    )
    logs = [tmp_path / f"psendmail-{n}.stderr" for n in (1, 2)]
    for log in logs:
        processes.append(start_psendmail(config, log, "run"))

    # Both processors watch the empty queue before any mail arrives, so both
    # take part in draining it.
    def watching() -> bool:
        return all(log.exists() and "delivering mail from" in log.read_text() for log in logs)

    assert wait_for(watching, timeout=30), [log.read_text() for log in logs]
    expected = queue_numbered(queue_path, MESSAGES)

    def drained() -> bool:
        files = queue_files(queue_path)
        return recording_server.count() >= MESSAGES and not (files["new"] or files["cur"])

    wait_for(drained, timeout=40, interval=0.1)
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process, log in zip(processes, logs, strict=True):
        assert process.wait(timeout=20) == 0, log.read_text()

    accepted = recording_server.accepted()
    duplicates = sorted((key for key, n in Counter(accepted).items() if n > 1), key=int)
    assert not duplicates, f"sent more than once: {duplicates[:10]}"
    assert sorted(accepted, key=int) == expected
    assert queue_files(queue_path) == {"tmp": [], "new": [], "cur": [], "failed": []}
    # Each process says what it delivered: together, every message once.
    sent = [_SENT.findall(log.read_text()) for log in logs]
    assert all(sent), [len(s) for s in sent]
    assert sorted(sent[0] + sent[1], key=int) == expected
