"""Run a queue processor in a thread of the application's process."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from typing import Any

from .processor import QueueProcessor

log = logging.getLogger(__name__)

#: psendmail sets this so that loading the application starts no thread.
DISABLED = False
_threads: weakref.WeakSet[QueueProcessorThread] = weakref.WeakSet()


class QueueProcessorThread:
    """Runs :meth:`QueueProcessor.process_once` every *interval* seconds.

    :meth:`wake` starts a pass at once (called when this process commits
    queued mail). :meth:`stop` finishes the message in hand and returns.
    After ``fork()``, a started processor starts again in the child.
    """

    def __init__(self, processor: QueueProcessor, interval: float = 3.0) -> None:
        self.processor = processor
        self.interval = interval
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        _threads.add(self)

    @property
    def running(self) -> bool:
        """True while the thread runs in this process."""
        return self._thread is not None and self._thread.is_alive() and self._pid == os.getpid()

    def start(self) -> None:
        """Start the thread, unless it already runs in this process."""
        if self.running:
            return
        self.processor.stopping.clear()
        self._pid = os.getpid()
        self._thread = threading.Thread(
            target=self._run, name=f"psendmail-{self.processor.queue!r}", daemon=True
        )
        self._thread.start()

    def wake(self) -> None:
        """Look for due mail now instead of at the next interval."""
        self._wake.set()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Finish the message in hand, then end the thread."""
        self.processor.stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and self._pid == os.getpid() and thread.is_alive():
            thread.join(timeout)
            if thread.is_alive():
                # Still finishing: keep it, so start() cannot add a second.
                log.warning("the mail queue processor is still finishing a message")
                return
        self._thread = None

    def _run(self) -> None:
        processor = self.processor
        while True:
            # Clear, then look: a stop() that sets its wake-up after the
            # clear ends the wait below at once; checking before the clear
            # could wipe that wake-up and sleep a whole interval.
            self._wake.clear()
            if processor.stopping.is_set():
                return
            try:
                processor.process_once()
            except Exception:
                log.exception("the mail queue processor failed; trying again later")
            self._wake.wait(self.interval)

    def _after_fork(self) -> None:
        # Threads do not survive fork(): a started processor starts anew.
        if self._thread is not None and self._pid != os.getpid():
            self._thread = None
            self._wake = threading.Event()
            self.processor.stopping = threading.Event()
            self.start()


def _restart_after_fork() -> None:
    for thread in list(_threads):
        try:
            thread._after_fork()
        except Exception:
            log.exception("could not restart the mail queue processor after fork")


def _stop_all() -> None:
    for thread in list(_threads):
        thread.stop(timeout=5.0)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restart_after_fork)
atexit.register(_stop_all)


def start_with_application(config: Any, values: dict[str, Any], setup: Any) -> None:
    """Start a processor thread once the application is created."""
    from pyramid.interfaces import IApplicationCreated

    processor = QueueProcessor.from_settings(
        setup.queued_delivery.queue, setup.mailer, values, config.registry
    )
    runner = QueueProcessorThread(processor, values["queue_interval"])

    def started(event: Any) -> None:
        if DISABLED or not setup.start_processor:
            return
        processor.mailer = setup.mailer
        runner.start()
        setup.queued_delivery.on_publish = runner.wake

    config.add_subscriber(started, IApplicationCreated)
    config.registry.mail_queue_processor = runner
