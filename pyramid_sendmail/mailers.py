"""Mailers other than SMTP: the sendmail binary, files and the console."""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from types import TracebackType
from typing import IO, Protocol, TypeVar

from zope.interface import implementer

from .exceptions import MailDeliveryError
from .interfaces import IMailer
from .results import SendResult

log = logging.getLogger(__name__)

# sysexits.h codes after which trying again later may succeed.
_TEMPORARY_EXIT_CODES = {69, 71, 74, 75}


class _Sender(Protocol):
    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> SendResult: ...


S = TypeVar("S", bound="Session")


class Session:
    """What a mailer's ``session()`` returns: leaving ``with`` closes it."""

    def __enter__(self: S) -> S:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """End the session."""


class OneShotSession(Session):
    """A session for mailers that keep no connection: each send stands alone."""

    def __init__(self, mailer: _Sender) -> None:
        self.mailer = mailer

    def close(self) -> None:
        """Nothing to close."""

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> SendResult:
        """Delegate to the mailer."""
        return self.mailer.send(sender, recipients, message)


class _SessionMixin:
    def session(self: _Sender) -> OneShotSession:
        """Return a session; these mailers have no connection to reuse."""
        return OneShotSession(self)


@implementer(IMailer)
class SendmailMailer(_SessionMixin):
    """Hand mail to the local ``sendmail`` binary (Postfix, Exim, msmtp...).

    The command runs without a shell; recipients follow ``--`` so none can be
    read as an option. Exit codes 69, 71, 74 and 75 (sysexits) are temporary.
    """

    def __init__(self, sendmail_app: str = "/usr/sbin/sendmail", timeout: float = 60.0):
        self.sendmail_app = sendmail_app
        self.timeout = timeout

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> SendResult:
        """Run sendmail with the message on its standard input."""
        command = [self.sendmail_app, "-i", "-f", sender, "--", *recipients]
        try:
            done = subprocess.run(
                command,
                input=message.replace(b"\r\n", b"\n"),
                capture_output=True,
                timeout=self.timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise MailDeliveryError(
                f"could not run {self.sendmail_app}: {exc}", temporary=True
            ) from exc
        if done.returncode != 0:
            output = done.stderr.decode("utf-8", "replace").strip()
            raise MailDeliveryError(
                f"{self.sendmail_app} exited with {done.returncode}: {output}",
                temporary=done.returncode in _TEMPORARY_EXIT_CODES,
            )
        return SendResult(accepted=tuple(recipients))


@implementer(IMailer)
class FileMailer(_SessionMixin):
    """Write each message as an ``.eml`` file into a folder (development).

    The envelope is recorded in ``X-Envelope-From`` and ``X-Envelope-To``
    lines above the message, so a developer sees where Bcc copies went.
    """

    _counter = itertools.count()

    def __init__(self, path: str) -> None:
        self.path = path

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> SendResult:
        """Write the message to a new file and log its path."""
        os.makedirs(self.path, exist_ok=True)
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{next(self._counter)}.eml"
        filename = os.path.join(self.path, name)
        with open(filename, "wb") as f:
            f.write(_envelope_lines(sender, recipients) + message)
        log.info("wrote mail for %d recipient(s) to %s", len(recipients), filename)
        return SendResult(accepted=tuple(recipients))


@implementer(IMailer)
class ConsoleMailer(_SessionMixin):
    """Print each message on standard output (development)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

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
