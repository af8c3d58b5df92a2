"""Mailers for development: write each message to a file, or print it."""

from __future__ import annotations

import itertools
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import IO

from zope.interface import implementer

from ..interfaces import IMailer
from ..results import SendResult
from ..wording import counted
from .session import OneShotSession

__all__ = ["ConsoleMailer", "FileMailer"]

log = logging.getLogger(__name__)


@implementer(IMailer)
class FileMailer:
    """Write each message as an ``.eml`` file into a folder (development).

    The envelope is recorded in ``X-Envelope-From`` and ``X-Envelope-To``
    lines above the message, so a developer sees where Bcc copies went.
    """

    _counter = itertools.count()

    def __init__(self, path: str) -> None:
        self.path = path

    def session(self) -> OneShotSession:
        """Return a session; each message is a file of its own."""
        return OneShotSession(self)

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> SendResult:
        """Write the message to a new file and log its path."""
        os.makedirs(self.path, exist_ok=True)
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{next(self._counter)}.eml"
        filename = os.path.join(self.path, name)
        with open(filename, "wb") as f:
            f.write(_envelope_lines(sender, recipients) + message)
        log.info("wrote mail for %s to %s", counted(len(recipients), "recipient"), filename)
        return SendResult(accepted=tuple(recipients))


@implementer(IMailer)
class ConsoleMailer:
    """Print each message on standard output (development)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def session(self) -> OneShotSession:
        """Return a session; each message is printed as it comes."""
        return OneShotSession(self)

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> SendResult:
        """Print the envelope and the message."""
        stream = self.stream or sys.stdout
        text = (_envelope_lines(sender, recipients) + message).decode("utf-8", "replace")
        stream.write(text.replace("\r\n", "\n") + "\n")
        stream.flush()
        return SendResult(accepted=tuple(recipients))


def _envelope_lines(sender: str, recipients: Sequence[str]) -> bytes:
    lines = [f"X-Envelope-From: <{sender}>"]
    lines += [f"X-Envelope-To: <{r}>" for r in recipients]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")
