"""Transactional email for Pyramid.

``config.include('pyramid_sendmail')`` reads the ``mail.*`` settings and adds
``request.mailer``, whose ``send()`` delivers a message only when the
request's transaction commits.
"""

from .api import RequestMailer, get_mailer
from .config import includeme
from .delivery import DirectMailDelivery, QueuedMailDelivery
from .envelope import Envelope
from .events import MailDeferred, MailFailed, MailSent
from .exceptions import (
    InvalidMessageError,
    MailDeliveryError,
    RelayUnavailable,
    SendmailError,
    TransactionStateError,
)
from .mailers import ConsoleMailer, FileMailer, SendmailMailer
from .message import Attachment, Message
from .results import SendResult
from .smtp import SMTPMailer

__all__ = [
    "Attachment",
    "ConsoleMailer",
    "DirectMailDelivery",
    "Envelope",
    "FileMailer",
    "InvalidMessageError",
    "MailDeferred",
    "MailDeliveryError",
    "MailFailed",
    "MailSent",
    "Message",
    "QueuedMailDelivery",
    "RelayUnavailable",
    "RequestMailer",
    "SMTPMailer",
    "SendResult",
    "SendmailError",
    "SendmailMailer",
    "TransactionStateError",
    "get_mailer",
    "includeme",
]
