"""The one message every case sends: about 2 KB, one recipient.

Standard library only: the orchestrator (run.py) imports it too, to write
the file that ``smtp-source -F`` sends.
"""

from __future__ import annotations

SENDER = "sender@example.com"
RECIPIENT = "rcpt@example.com"
SUBJECT = "pyramid_sendmail benchmark message"
USERNAME = "bench"
PASSWORD = "bench-password"

_LINE = "The quick brown fox jumps over the lazy dog, and then it does it again. "
#: A plain-text body of 23 lines of 77 characters: the whole message, with the
#: headers each package adds, comes to about 2 KB.
BODY = "".join(f"{i:02d} {_LINE}\n" for i in range(23))


def message_bytes(message_id: str = "<bench-00000000@example.com>") -> bytes:
    """The message as CRLF bytes, built with the standard library."""
    from email.message import EmailMessage
    from email.policy import SMTP

    msg = EmailMessage()
    msg["Subject"] = SUBJECT
    msg["From"] = SENDER
    msg["To"] = RECIPIENT
    msg["Message-ID"] = message_id
    msg["Date"] = "Mon, 01 Jan 2024 00:00:00 +0000"
    msg.set_content(BODY)
    return msg.as_bytes(policy=SMTP)


def write_source_file(path: str) -> None:
    """Write the message for ``smtp-source -F`` (LF lines: it adds CRLF)."""
    with open(path, "wb") as f:
        f.write(message_bytes().replace(b"\r\n", b"\n"))
