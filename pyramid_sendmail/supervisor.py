"""Run queue processors: in this process, or in several forked ones.

Threads of one Python process share one interpreter lock, so against a fast
local relay a processor is bound by one core; processes are not. With
``mail.queue_processes`` above one, ``psendmail run`` forks that many
children, each building its own processor (loading the application itself,
opening its own connections) and claiming from the same queue, which keeps
every message to one of them. The parent only forwards signals, restarts a
child that died, and adds up what the children did.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import logging
import os
import selectors
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from typing import Any

from pyramid.exceptions import ConfigurationError

from .exceptions import SendmailError
from .processor import ALSO_COUNTED, OUTCOMES, QueueProcessor

__all__ = [
    "PROGRESS_EVERY",
    "RESTART_DELAY",
    "STARTUP_ERRORS",
    "START_FAILED",
    "PassResult",
    "drain_in_processes",
    "run_forever",
    "serve_in_processes",
]

log = logging.getLogger(__name__)

#: Errors that mean psendmail cannot start: a message, exit code 2.
STARTUP_ERRORS = (ConfigurationError, SendmailError, FileNotFoundError, configparser.Error)
#: A child's exit code when it cannot start (bad settings, no application).
START_FAILED = 2
RESTART_DELAY = 1.0
PROGRESS_EVERY = 0.1

MakeProcessor = Callable[[], QueueProcessor]
Progress = Callable[[int, int], None]


def run_forever(processor: QueueProcessor, interval: float, parent: int | None = None) -> int:
    """Deliver every *interval* seconds until SIGTERM or SIGINT, which let
    the message in hand finish; with *parent*, also once that process is gone."""
    signal.signal(signal.SIGTERM, _Stop(processor))
    signal.signal(signal.SIGINT, _Stop(processor))
    log.info("delivering mail from %s every %ss", processor.queue, interval)
    keep_going = None if parent is None else _ParentAlive(parent)
    processor.run(interval, keep_going)
    return 0


class _Stop:
    """The signal handler of a processor process: stop after the message in hand."""

    def __init__(self, processor: QueueProcessor) -> None:
        self.processor = processor

    def __call__(self, signum: int, frame: Any) -> None:
        log.info("signal %d: finishing the message in hand, then exiting", signum)
        self.processor.stop()


class _ParentAlive:
    """True while the process *parent* is this one's parent."""

    def __init__(self, parent: int) -> None:
        self.parent = parent

    def __call__(self) -> bool:
        if os.getppid() == self.parent:
            return True
        log.warning("psendmail's main process is gone; this processor stops")
        return False


class PassResult:
    """What one or several processors did in a pass (``run --once``)."""

    def __init__(self, counts: Counter[str] | None = None, relay_was_down: bool = False):
        self.counts: Counter[str] = counts or Counter(dict.fromkeys(OUTCOMES + ALSO_COUNTED, 0))
        self.relay_was_down = relay_was_down
        self.failed_to_start = False
        #: Exit codes of children that ended otherwise (killed, crashed).
        self.crashed: list[int] = []

    def add(self, report: dict[str, Any]) -> None:
        self.counts.update({k: int(report.get(k, 0)) for k in OUTCOMES + ALSO_COUNTED})
        self.relay_was_down = self.relay_was_down or bool(report.get("relay_was_down"))


def drain_in_processes(
    count: int, make_processor: MakeProcessor, progress: Progress | None = None, total: int = 0
) -> PassResult:
    """Deliver what is due with *count* forked processors, then return.

    *progress* is called as ``progress(done, total)`` as the children report
    (every tenth of a second at most each). SIGTERM and SIGINT are passed on:
    each child finishes its message in hand and reports.
    """
    result = PassResult()
    done: dict[int, int] = {}
    selector = selectors.DefaultSelector()
    with _Children() as children:
        for _ in range(count):
            pid, fd = _fork(lambda out: _drain_child(make_processor, out, progress is not None))
            children.add(pid)
            done[fd] = 0
            selector.register(fd, selectors.EVENT_READ, _LineReader(fd))
        while selector.get_map():
            for key, _ in selector.select():
                reader: _LineReader = key.data
                lines = reader.read()
                if lines is None:
                    selector.unregister(key.fd)
                    os.close(key.fd)
                    continue
                for line in lines:
                    report = json.loads(line)
                    if "done" in report:
                        done[key.fd] = report["done"]
                        if progress is not None:
                            progress(sum(done.values()), max(total, sum(done.values())))
                    else:
                        result.add(report)
        selector.close()
        for pid in children.pids:
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
            if code == START_FAILED:
                result.failed_to_start = True
            elif code:
                result.crashed.append(code)
    return result


def serve_in_processes(count: int, make_processor: MakeProcessor, interval: float) -> int:
    """Keep *count* forked processors running until SIGTERM or SIGINT.

    A child that dies is replaced after a second; one that cannot start
    (exit code 2) stops them all and is the exit code.
    """
    parent = os.getpid()
    with _Children() as children:

        def serve(out: int) -> int:
            return run_forever(_start(make_processor), interval, parent)

        def start() -> None:
            children.add(_fork(serve, pipe=False)[0])

        for _ in range(count):
            start()
        log.info("started %d processor processes", count)
        exit_code = 0
        while children.pids:
            pid, status = os.wait()
            children.pids.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            if code == START_FAILED and not exit_code:
                exit_code = START_FAILED
                children.stop_all()
            if children.stopping.is_set():
                continue
            log.warning("processor process %d ended (%s); starting another", pid, code)
            time.sleep(RESTART_DELAY)
            if not children.stopping.is_set():
                start()
        return exit_code


def _drain_child(make_processor: MakeProcessor, out: int, report_progress: bool) -> int:
    processor = _start(make_processor)
    signal.signal(signal.SIGTERM, _Stop(processor))
    signal.signal(signal.SIGINT, _Stop(processor))
    processor.process_once(_ProgressLines(out) if report_progress else None)
    counts = processor.last_pass
    _write_line(out, {"done": sum(counts[k] for k in OUTCOMES)})
    _write_line(out, {**counts, "relay_was_down": processor.relay_was_down})
    return 0


class _ProgressLines:
    """Writes the count done to the parent, every :data:`PROGRESS_EVERY` at most."""

    def __init__(self, out: int) -> None:
        self.out = out
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY:
            self.last = now
            _write_line(self.out, {"done": done})


class _NotStarted(Exception):
    """A child could not build its processor; it said why on stderr."""


def _start(make_processor: MakeProcessor) -> QueueProcessor:
    try:
        return make_processor()
    except STARTUP_ERRORS as exc:
        # The words psendmail prints when it cannot start.
        print(f"psendmail: {exc}", file=sys.stderr)
    except Exception:
        traceback.print_exc()
    # It would fail the same way again: restarting it would only loop.
    raise _NotStarted


def _fork(body: Callable[[int], int], pipe: bool = True) -> tuple[int, int]:
    """Run ``body(write_fd)`` in a child process; return its pid and the
    read end of its pipe (-1 without *pipe*)."""
    read_fd, write_fd = os.pipe() if pipe else (-1, -1)
    pid = os.fork()
    if pid:
        if pipe:
            os.close(write_fd)
        return pid, read_fd
    code = 1
    try:
        # The parent's handlers (passing signals on) are not the child's.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if pipe:
            os.close(read_fd)
        code = body(write_fd)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except _NotStarted:
        code = START_FAILED
    except BaseException:
        log.exception("the processor process failed")
    finally:
        # Not sys.exit(): the parent's exit handlers are not the child's.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class _Children:
    """The forked processors. Within the ``with`` block, SIGTERM and SIGINT
    are passed on to them, and so is a stop a child was forked too late to get."""

    def __init__(self) -> None:
        self.pids: set[int] = set()
        self.stopping = threading.Event()
        self.saved: dict[int, Any] = {}

    def __enter__(self) -> _Children:
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.saved[signum] = signal.signal(signum, self._forward)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.saved.items():
            signal.signal(signum, handler)

    def add(self, pid: int) -> None:
        self.pids.add(pid)
        if self.stopping.is_set():
            self._signal({pid})

    def stop_all(self) -> None:
        self.stopping.set()
        self._signal(self.pids)

    def _forward(self, signum: int, frame: Any) -> None:
        log.info("signal %d: stopping the processor processes", signum)
        self.stop_all()

    @staticmethod
    def _signal(pids: set[int]) -> None:
        for pid in list(pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def _write_line(fd: int, report: dict[str, Any]) -> None:
    data = (json.dumps(report) + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


class _LineReader:
    """Whole lines from a child's pipe; None once it is closed."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""

    def read(self) -> list[str] | None:
        chunk = os.read(self.fd, 65536)
        if not chunk:
            return None
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        return [line.decode() for line in lines if line]
