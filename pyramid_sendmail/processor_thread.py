"""Run a queue processor in a thread of the application's process."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .processor import QueueProcessor

__all__ = ["QueueProcessorThread", "thread_allowed", "without_threads"]

log = logging.getLogger(__name__)

# Context-local, not a process-wide switch: psendmail loads the application
# inside without_threads(), and nothing else in the process is affected.
_held_back: ContextVar[bool] = ContextVar("pyramid_sendmail_threads_held_back", default=False)
_threads: weakref.WeakSet[QueueProcessorThread] = weakref.WeakSet()


class QueueProcessorThread:
    """Runs :meth:`QueueProcessor.run` in a daemon thread of this process.

    :meth:`wake` starts a pass at once (this process's commits of queued
    mail call it). :meth:`stop` finishes the message in hand and returns.
    After ``fork()``, a started processor starts again in the child.
    """

    def __init__(self, processor: QueueProcessor, interval: float = 3.0) -> None:
        self.processor = processor
        self.interval = interval
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
        self.processor.reset()
        self._pid = os.getpid()
        self._thread = threading.Thread(
            target=self.processor.run,
            args=(self.interval,),
            name=f"psendmail-{self.processor.queue!r}",
            daemon=True,
        )
        self._thread.start()

    def wake(self) -> None:
        """Look for due mail now instead of at the next interval."""
        self.processor.wake()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Finish the message in hand, then end the thread."""
        self.processor.stop()
        thread = self._thread
        if thread is not None and self._pid == os.getpid() and thread.is_alive():
            thread.join(timeout)
            if thread.is_alive():
                # Still finishing: keep it, so start() cannot add a second.
                log.warning("the mail queue processor is still finishing a message")
                return
        self._thread = None

    def _after_fork(self) -> None:
        # Threads do not survive fork(): a started processor starts anew.
        if self._thread is not None and self._pid != os.getpid():
            self._thread = None
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


@contextmanager
def without_threads() -> Iterator[None]:
    """Within this block, applications created start no processor thread.

    ``psendmail`` loads the application so: it runs the processor itself.
    """
    token = _held_back.set(True)
    try:
        yield
    finally:
        _held_back.reset(token)


def thread_allowed() -> bool:
    """False inside :func:`without_threads`."""
    return not _held_back.get()
