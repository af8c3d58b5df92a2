"""The sendmail mailer: hand each message to the local ``sendmail`` binary."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from zope.interface import implementer

from ..exceptions import MailDeliveryError
from ..interfaces import IMailer
from ..results import SendResult
from .session import OneShotSession

__all__ = ["SendmailMailer"]

# sysexits.h codes after which trying again later may succeed.
_TEMPORARY_EXIT_CODES = {69, 71, 74, 75}


@implementer(IMailer)
class SendmailMailer:
    """Hand mail to the local ``sendmail`` binary (Postfix, Exim, msmtp...).

    The command runs without a shell; recipients follow ``--`` so none can be
    read as an option. Exit codes 69, 71, 74 and 75 (sysexits) are temporary.
    """

    def __init__(self, sendmail_app: str = "/usr/sbin/sendmail", timeout: float = 60.0):
        self.sendmail_app = sendmail_app
        self.timeout = timeout

    def session(self) -> OneShotSession:
        """Return a session; each message runs the command once."""
        return OneShotSession(self)

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
