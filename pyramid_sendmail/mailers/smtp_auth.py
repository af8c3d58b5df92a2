"""Logging in to the relay (SMTP AUTH), with credentials in any language.

smtplib encodes what it sends during AUTH as ASCII, so a password such as
``pässword`` fails with a ``UnicodeEncodeError`` before a byte is sent.
PLAIN is defined over UTF-8 (RFC 4616), and LOGIN servers take UTF-8 in
practice: :func:`login` sends non-ASCII credentials by one of those two,
and leaves ASCII ones to smtplib, which also knows CRAM-MD5.
"""

from __future__ import annotations

import base64
import smtplib

__all__ = ["login"]

#: The reply to a successful AUTH (RFC 4954).
_AUTHENTICATED = 235
#: The reply that asks for the next part of the credentials.
_CONTINUE = 334


def login(conn: smtplib.SMTP, username: str, password: str) -> None:
    """Authenticate *conn*; raise as :meth:`smtplib.SMTP.login` does."""
    if username.isascii() and password.isascii():
        conn.login(username, password)
        return
    if not conn.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
    offered = conn.esmtp_features["auth"].upper().split()
    if "PLAIN" in offered:
        code, reply = conn.docmd("AUTH", "PLAIN " + _encoded("\0" + username + "\0" + password))
    elif "LOGIN" in offered:
        code, reply = conn.docmd("AUTH", "LOGIN " + _encoded(username))
        if code == _CONTINUE:
            code, reply = conn.docmd(_encoded(password))
    else:
        raise smtplib.SMTPException(
            "the credentials are not ASCII and the relay offers neither AUTH PLAIN nor LOGIN"
        )
    if code != _AUTHENTICATED:
        raise smtplib.SMTPAuthenticationError(code, reply)


def _encoded(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")
