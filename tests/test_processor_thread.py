"""The queue processor thread inside a real application (WebTest, pyramid_tm).

The interval is a minute throughout, so a message that arrives in seconds
arrived because the commit woke the thread.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from pyramid.config import Configurator
from smtpserver import SMTPTestServer
from webtest import TestApp

from pyramid_sendmail import Message, processor_thread
from pyramid_sendmail.processor_thread import QueueProcessorThread

WAIT = 10.0


class ViewFailed(Exception):
    """Raised by a view after it sent mail, so pyramid_tm aborts."""


def send_view(request: Any) -> str:
    subject = request.params["subject"]
    request.mailer.send(Message(subject=subject, recipients=["bob@example.org"], body="Hi"))
    if request.params.get("fail"):
        raise ViewFailed(subject)
    return "queued"


def received_subjects(server: SMTPTestServer) -> list[str]:
    return [str(message_from_bytes(m.data)["Subject"]) for m in server.messages]


def queued_files(queue_path: Path) -> list[str]:
    """Message files anywhere in the queue but ``failed/``."""
    return [
        f"{folder}/{name}"
        for folder in ("tmp", "new", "cur")
        for name in os.listdir(queue_path / folder)
    ]


def processor_threads(queue_path: Path) -> list[threading.Thread]:
    """The live processor threads of the queue at *queue_path* (named after it)."""
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith("psendmail-") and str(queue_path) in t.name
    ]


def wait_for(condition: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def queue_path(tmp_path: Path) -> Path:
    return tmp_path / "queue"


@pytest.fixture
def make_config(
    queue_path: Path, smtp_server: SMTPTestServer
) -> Iterator[Callable[..., Configurator]]:
    """Configure an app whose mail is queued and sent by a processor thread.

    Every processor thread configured here is stopped at teardown.
    """
    runners: list[QueueProcessorThread] = []

    def make(**mail: Any) -> Configurator:
        settings = {
            "mail.queue_path": str(queue_path),
            "mail.queue_processor": "thread",
            "mail.queue_interval": "60",
            "mail.host": smtp_server.host,
            "mail.port": str(smtp_server.port),
            "mail.default_sender": "app@example.org",
        }
        settings.update({f"mail.{key}": str(value) for key, value in mail.items()})
        config = Configurator(settings=settings)
        config.include("pyramid_tm")
        config.include("pyramid_sendmail")
        config.add_route("send", "/send")
        config.add_view(send_view, route_name="send", renderer="string")
        runners.append(config.registry.mail_queue_processor)
        return config

    yield make
    for runner in runners:
        runner.stop()
    for runner in runners:
        assert not runner.running


def test_committed_mail_arrives_without_waiting_for_the_interval(
    make_config: Callable[..., Configurator], smtp_server: SMTPTestServer, queue_path: Path
) -> None:
    app = TestApp(make_config().make_wsgi_app())

    assert app.post("/send", {"subject": "Welcome"}).text == "queued"

    assert wait_for(lambda: "Welcome" in received_subjects(smtp_server))
    assert wait_for(lambda: not queued_files(queue_path))


def test_aborted_request_mail_is_never_sent(
    make_config: Callable[..., Configurator], smtp_server: SMTPTestServer, queue_path: Path
) -> None:
    app = TestApp(make_config().make_wsgi_app())

    with pytest.raises(ViewFailed):
        app.post("/send", {"subject": "Aborted", "fail": "1"})
    app.post("/send", {"subject": "Committed"})

    # The committed message is sent in a pass that would have found the
    # aborted one too, had it been queued.
    assert wait_for(lambda: "Committed" in received_subjects(smtp_server))
    assert wait_for(lambda: not queued_files(queue_path))
    assert received_subjects(smtp_server) == ["Committed"]


def test_thread_starts_once_per_process_however_often_the_app_is_made(
    make_config: Callable[..., Configurator], queue_path: Path
) -> None:
    config = make_config()
    config.make_wsgi_app()
    config.make_wsgi_app()

    assert len(processor_threads(queue_path)) == 1
    assert config.registry.mail_queue_processor.running


def test_stop_ends_the_thread_without_waiting_for_the_interval(
    make_config: Callable[..., Configurator], queue_path: Path
) -> None:
    config = make_config()
    config.make_wsgi_app()
    runner = config.registry.mail_queue_processor

    # The thread is asleep for a minute; stop() must wake it, not time out.
    runner.stop(timeout=WAIT)

    assert not runner.running
    assert processor_threads(queue_path) == []


class _StopArrivesAtClear(threading.Event):
    """A wake-up event across whose clear() a stop() request lands.

    The interleaving is real but too narrow to hit on demand: stop() sets
    the stopping flag and the wake-up just as the thread, back from a wait,
    clears its wake-up for the next pass.
    """

    def __init__(self, runner: QueueProcessorThread) -> None:
        super().__init__()
        self.runner = runner
        self.armed = True

    def clear(self) -> None:
        if self.armed:
            self.armed = False
            self.runner.processor.stopping.set()
            self.set()
        super().clear()


def test_stop_requested_as_the_thread_wakes_still_ends_it(
    make_config: Callable[..., Configurator], queue_path: Path
) -> None:
    config = make_config()
    config.make_wsgi_app()
    runner = config.registry.mail_queue_processor
    sleeping_on = runner.processor._wake
    runner.processor._wake = _StopArrivesAtClear(runner)

    # Wake the thread wherever it is: asleep on its old wake-up or not yet.
    sleeping_on.set()
    runner.wake()

    assert wait_for(lambda: not processor_threads(queue_path))
    assert not runner.running


def test_stop_finishes_the_message_in_hand_and_leaves_nothing_claimed(
    make_config: Callable[..., Configurator], smtp_server: SMTPTestServer, queue_path: Path
) -> None:
    # The server never answers the message: the send times out after a
    # second and the message goes back to the queue, deferred.
    smtp_server.faults.stall = "DATA_END"
    config = make_config(timeout=1)
    app = TestApp(config.make_wsgi_app())
    runner = config.registry.mail_queue_processor
    app.post("/send", {"subject": "Stalled"})
    assert wait_for(lambda: os.listdir(queue_path / "cur"))

    runner.stop(timeout=WAIT)

    assert not runner.running
    assert os.listdir(queue_path / "cur") == []
    assert len(os.listdir(queue_path / "new")) == 1
    assert received_subjects(smtp_server) == []


def test_disabled_processor_starts_no_thread(
    make_config: Callable[..., Configurator],
    queue_path: Path,
) -> None:
    # What psendmail does when it loads the application.
    config = make_config()
    with processor_thread.without_threads():
        app = TestApp(config.make_wsgi_app())

    app.post("/send", {"subject": "Left for psendmail"})

    assert processor_threads(queue_path) == []
    assert not config.registry.mail_queue_processor.running
    assert [f.split("/")[0] for f in queued_files(queue_path)] == ["new"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_thread_runs_again_in_a_forked_child(
    make_config: Callable[..., Configurator], smtp_server: SMTPTestServer, queue_path: Path
) -> None:
    # As under a server that loads the app, then forks its workers.
    config = make_config()
    app = TestApp(config.make_wsgi_app())
    runner = config.registry.mail_queue_processor
    with warnings.catch_warnings():
        # Python 3.12+ warns about forking a process that has threads.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover (the child reports through its exit status)
        status = 99
        try:
            status = _in_child(app, runner, queue_path)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(status)

    status = _wait_child(pid, timeout=3 * WAIT)
    assert status == 0, _CHILD_STATUS.get(status, status)
    assert "From the child" in received_subjects(smtp_server)
    assert runner.running


_CHILD_STATUS = {
    1: "the processor thread did not run in the child",
    2: "the child's message was not delivered",
    99: "the child raised (see stderr)",
}


def _in_child(app: TestApp, runner: QueueProcessorThread, queue_path: Path) -> int:
    if not runner.running or len(processor_threads(queue_path)) != 1:
        return 1
    app.post("/send", {"subject": "From the child"})
    if not wait_for(lambda: not queued_files(queue_path)):
        return 2
    return 0


def _wait_child(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child did not finish in time")
