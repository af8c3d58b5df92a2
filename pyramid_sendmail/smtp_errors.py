"""Classify SMTP and network failures as temporary or permanent."""

from __future__ import annotations

import smtplib
import ssl

from .exceptions import MailDeliveryError


def reply_text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def reply_error(
    code: int,
    reply: bytes | str,
    what: str,
    refused: dict[str, tuple[int, bytes]] | None = None,
    accepted: tuple[str, ...] = (),
) -> MailDeliveryError:
    """Build the error for an SMTP reply: 4xx is temporary, 5xx permanent."""
    text = reply_text(reply)
    return MailDeliveryError(
        f"{what}: {code} {text}",
        temporary=not 500 <= code < 600,
        code=code,
        refused=refused,
        accepted=accepted,
    )


def classify(exc: BaseException, doing: str) -> MailDeliveryError:
    """Turn a library or socket error into a classified MailDeliveryError."""
    if isinstance(exc, smtplib.SMTPResponseException) and not isinstance(
        exc, smtplib.SMTPAuthenticationError
    ):
        return reply_error(exc.smtp_code, exc.smtp_error, doing)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return MailDeliveryError(
            f"authentication failed: {exc.smtp_code}", temporary=True, code=exc.smtp_code
        )
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
    # smtplib reports a timeout while reading a reply as a disconnection,
    # raised while handling the socket's TimeoutError.
    return isinstance(exc, TimeoutError) or (
        isinstance(exc, smtplib.SMTPServerDisconnected)
        and isinstance(exc.__context__, TimeoutError)
    )
