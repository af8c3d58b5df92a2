"""Transactional email for Pyramid.

``config.include('pyramid_sendmail')`` reads the ``mail.*`` settings and adds
``request.mailer``, whose ``send()`` delivers a message only when the
request's transaction commits.
"""

from .api import RequestMailer, get_mailer
from .config import includeme
from .delivery import DirectMailDelivery, QueuedMailDelivery
from .devtools.previews import mail_preview
from .events import MailDeferred, MailFailed, MailSent
from .exceptions import (
    CorruptEntry,
    InvalidMessageError,
    MailDeliveryError,
    MailDropped,
    QueueError,
    QueueUnavailable,
    RelayUnavailable,
    SendmailError,
    TransactionStateError,
    UnknownEntry,
)
from .mailers import ConsoleMailer, FileMailer, SendmailMailer, SMTPMailer
from .message import Attachment, Envelope, Message
from .policies import MailSending, Redirect
from .processor import QueueProcessor
from .processor_thread import QueueProcessorThread
from .queue import MaildirQueue, QueueEntry
from .results import SendResult, SMTPReply
from .templates import Embedder, render_message

__all__ = [
    "Attachment",
    "ConsoleMailer",
    "CorruptEntry",
    "DirectMailDelivery",
    "Embedder",
    "Envelope",
    "FileMailer",
    "InvalidMessageError",
    "MailDeferred",
    "MailDeliveryError",
    "MailDropped",
    "MailFailed",
    "MailSending",
    "MailSent",
    "MaildirQueue",
    "Message",
    "QueueEntry",
    "QueueError",
    "QueueProcessor",
    "QueueProcessorThread",
    "QueueUnavailable",
    "QueuedMailDelivery",
    "Redirect",
    "RelayUnavailable",
    "RequestMailer",
    "SMTPMailer",
    "SMTPReply",
    "SendResult",
    "SendmailError",
    "SendmailMailer",
    "TransactionStateError",
    "UnknownEntry",
    "get_mailer",
    "includeme",
    "mail_preview",
    "render_message",
]
