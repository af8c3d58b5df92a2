"""Turn SMTP replies and network failures into classified delivery errors.

Whether a reply is temporary is :attr:`SMTPReply.temporary
<pyramid_sendmail.SMTPReply.temporary>`'s decision alone; this module only
says which failures have no reply, and what those mean.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping

from ..exceptions import MailDeliveryError
from ..results import SMTPReply

__all__ = ["classify", "reply_error", "timed_out"]


def reply_error(
    reply: SMTPReply,
    what: str,
    refused: Mapping[str, SMTPReply] | None = None,
    accepted: tuple[str, ...] = (),
    command: str | None = None,
) -> MailDeliveryError:
    """The error for a refusing *reply* to *what* the client was doing
    (the SMTP *command*, when one refused the message)."""
    return MailDeliveryError(
        f"{what}: {reply}",
        temporary=reply.temporary,
        code=reply.code,
        refused=refused,
        accepted=accepted,
        command=command,
    )


def classify(exc: BaseException, doing: str) -> MailDeliveryError:
    """Turn a library or socket error into a classified MailDeliveryError."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        # Even a 535 is temporary: the credentials are the application's
        # settings, not the message's fault, and they can be fixed.
        reply = SMTPReply.of((exc.smtp_code, exc.smtp_error))
        return MailDeliveryError(
            f"authentication failed: {reply}", temporary=True, code=exc.smtp_code
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        return reply_error(SMTPReply.of((exc.smtp_code, exc.smtp_error)), doing)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return MailDeliveryError(f"{doing}: {exc}", temporary=False)
    if isinstance(exc, ssl.SSLError):
        return MailDeliveryError(f"TLS failed while {doing}: {exc}", temporary=True)
    if timed_out(exc):
        return MailDeliveryError(f"timed out while {doing}", temporary=True)
    if isinstance(exc, (OSError, smtplib.SMTPException)):
        return MailDeliveryError(f"{doing}: {exc}", temporary=True)
    return MailDeliveryError(f"{doing}: {exc!r}", temporary=True)


def timed_out(exc: BaseException) -> bool:
    """Whether *exc* means the server did not answer in time."""
    # smtplib reports a timeout while reading a reply as a disconnection,
    # raised while handling the socket's TimeoutError.
    return isinstance(exc, TimeoutError) or (
        isinstance(exc, smtplib.SMTPServerDisconnected)
        and isinstance(exc.__context__, TimeoutError)
    )
