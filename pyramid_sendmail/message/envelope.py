"""Turn what the application passes to ``send()`` into an Envelope.

An :class:`Envelope` is a message ready for delivery: the SMTP sender, every
recipient (Bcc included), the Message-ID and the exact bytes to transmit. It
is built, and every check made, at the ``send()`` call, so a bad message
fails where it was written and later changes to the caller's object do not
leak into what is sent.
"""

from __future__ import annotations

import email.message
from collections.abc import Sequence
from email.message import EmailMessage
from email.parser import BytesParser

from ..exceptions import InvalidMessageError
from ..wording import counted
from . import email_writer, fast_writer
from .addresses import AddressLike
from .headers import DEFAULT
from .model import Message
from .normalize import normalize
from .source import normalize_email

__all__ = ["Envelope", "prepare"]

_parser = BytesParser(policy=DEFAULT)


class Envelope:
    """A message ready for a mailer: sender, recipients, id and bytes."""

    __slots__ = ("_message", "data", "message_id", "recipients", "sender")

    def __init__(
        self,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        message_id: str,
        message: EmailMessage | None = None,
    ) -> None:
        self.sender = sender
        self.recipients = tuple(recipients)
        self.data = data
        self.message_id = message_id
        self._message = message

    @property
    def message(self) -> EmailMessage:
        """The message as an EmailMessage (parsed from the bytes if needed)."""
        if self._message is None:
            self._message = _parser.parsebytes(self.data)
        return self._message

    @property
    def needs_smtputf8(self) -> bool:
        """True when an envelope address or the header section is not ASCII.

        The headers hold raw UTF-8 only when an address in them is not
        ASCII (other non-ASCII text is sent as encoded words), and such a
        message may only travel to a relay that offers SMTPUTF8.
        """
        if not all(a.isascii() for a in (self.sender, *self.recipients)):
            return True
        end = self.data.find(b"\r\n\r\n")
        return not self.data[: end if end >= 0 else len(self.data)].isascii()

    def with_recipients(self, recipients: Sequence[str]) -> Envelope:
        """Return a copy of this envelope for *recipients* only."""
        return Envelope(self.sender, recipients, self.data, self.message_id, self._message)

    def __repr__(self) -> str:
        return f"<Envelope {self.message_id} to {counted(len(self.recipients), 'recipient')}>"


def prepare(
    message: Message | EmailMessage,
    default_sender: AddressLike | None = None,
    redirect_to: str | None = None,
) -> Envelope:
    """Validate *message* and build its :class:`~pyramid_sendmail.Envelope`.

    A :class:`~pyramid_sendmail.Message` is checked into a draft that one of
    two writers turns into bytes; an EmailMessage is copied, never changed.
    Missing ``From`` is filled from *default_sender*; missing ``Message-ID``
    and ``Date`` are added. Bcc recipients go into the envelope and out of
    the headers. With *redirect_to*, every message goes to that one address
    instead, and the original To and Cc recipients (never Bcc) are kept in
    an ``X-Original-Recipients`` header. Domains that are not ASCII go out
    in IDNA form when the local part is ASCII.
    """
    if isinstance(message, Message):
        draft = normalize(message, default_sender, redirect_to)
    elif isinstance(message, EmailMessage):
        draft = normalize_email(message, default_sender, redirect_to)
    elif isinstance(message, email.message.Message):
        # The legacy class lacks what events read (iter_attachments...).
        raise InvalidMessageError(
            "send() takes a pyramid_sendmail.Message or an EmailMessage (email.message),"
            f" not the legacy {type(message).__name__}: build an EmailMessage, or parse"
            " the bytes with policy=email.policy.default"
        )
    else:
        raise InvalidMessageError(
            f"send() takes a pyramid_sendmail.Message or an EmailMessage, not {message!r}"
        )
    if fast_writer.can_write(draft):
        data = fast_writer.write(draft)
        return Envelope(draft.sender, draft.recipients, data, draft.message_id)
    # The envelope keeps the message built, so events need not parse it back.
    msg = email_writer.message_of(draft)
    data = email_writer.serialize(msg, draft)
    return Envelope(draft.sender, draft.recipients, data, draft.message_id, msg)
