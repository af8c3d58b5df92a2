"""``kill -9`` of queue processors loses no message (promise 4).

Real ``psendmail`` processes drain a queue of a few thousand messages into a
recording SMTP server in a process of its own (tests/recording_server.py),
which writes every message it accepts to disk before it answers. The
processors are killed with SIGKILL at random instants and restarted; the
claims they leave behind come back to the queue after the claim timeout.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

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

MESSAGES = 2000
KILLS = 8
WORKERS = 2
CLAIM_TIMEOUT = 2
SEED = 20240611


def test_sigkilled_processors_lose_no_message_and_duplicate_only_what_was_in_hand(
    tmp_path: Path,
    recording_server: RecordingServer,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    queue_path = tmp_path / "queue"
    expected = queue_numbered(queue_path, MESSAGES)
    config = write_config(
        tmp_path / "psendmail.ini",
        queue_path,
        recording_server.port,
        queue_workers=WORKERS,
        queue_interval=0.2,
        claim_timeout=CLAIM_TIMEOUT,
        # The claim timeout must cover 20 network timeouts (settings.py).
        timeout=CLAIM_TIMEOUT / 20,
        retry_min=1,
        retry_max=1,
        batch_size=50,
    )
    stderr = tmp_path / "psendmail.stderr"
    rng = random.Random(SEED)

    kills = orphaned_claims = 0
    for _ in range(KILLS):
        if recording_server.count() >= MESSAGES:
            break
        process = start_psendmail(config, stderr, "run")
        processes.append(process)
        # Kill once the server has accepted some more messages, then after
        # a random fraction of a message's round trip: the instant lands
        # anywhere in a delivery, often between acceptance and removal.
        target = recording_server.count() + rng.randint(20, 250)

        def progressed(target: int = target, process: Any = process) -> bool:
            return recording_server.count() >= target or process.poll() is not None

        wait_for(progressed, timeout=30, interval=0.005)
        time.sleep(rng.uniform(0, 0.01))
        assert process.poll() is None, stderr.read_text()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        kills += 1
        orphaned_claims += len(queue_files(queue_path)["cur"])
    assert kills >= KILLS // 2, "the queue drained before the processors were killed"
    # The dead processors left claims that only the claim timeout gives back.
    assert orphaned_claims > 0

    # A last processor recovers the stale claims and drains the rest.
    process = start_psendmail(config, stderr, "run")
    processes.append(process)

    def drained() -> bool:
        files = queue_files(queue_path)
        return not (files["new"] or files["cur"] or files["tmp"]) and set(
            recording_server.accepted()
        ) >= set(expected)

    wait_for(drained, timeout=40, interval=0.1)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0, stderr.read_text()

    accepted = recording_server.accepted()
    missing = sorted(set(expected) - set(accepted), key=int)
    assert not missing, f"{len(missing)} message(s) never accepted, e.g. {missing[:10]}"
    assert set(accepted) == set(expected)
    assert queue_files(queue_path) == {"tmp": [], "new": [], "cur": [], "failed": []}
    duplicates = sum(n - 1 for n in Counter(accepted).values())
    # Each kill can catch each worker with at most one message in hand
    # that the server accepted but whose file was not yet removed.
    assert duplicates <= kills * WORKERS, (kills, duplicates)
