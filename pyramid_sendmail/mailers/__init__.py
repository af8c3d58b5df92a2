"""The mailers: what hands a message to the world, right now.

``session`` holds the base of every mailer's session; SMTP lives in
``smtp`` (the mailer: where the relay is and how to reach it),
``smtp_session`` (one connection, many messages) and ``smtp_errors``
(failures classified); ``sendmail`` runs the local binary; ``file`` writes
or prints messages for development.
"""

from .file import ConsoleMailer, FileMailer
from .sendmail import SendmailMailer
from .session import OneShotSession, Session
from .smtp import SMTPMailer
from .smtp_session import SMTPSession

__all__ = [
    "ConsoleMailer",
    "FileMailer",
    "OneShotSession",
    "SMTPMailer",
    "SMTPSession",
    "SendmailMailer",
    "Session",
]
