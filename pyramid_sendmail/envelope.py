"""Turn what the application passes to ``send()`` into an Envelope.

An :class:`Envelope` is a message ready for delivery: the SMTP sender, every
recipient (Bcc included), the Message-ID and the exact bytes to transmit. It
is built, and every check made, at the ``send()`` call, so a bad message
fails where it was written and later changes to the caller's object do not
leak into what is sent.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formatdate, make_msgid

from . import policies, simple_mime
from .addresses import AddressLike, check_header_value, parse_address
from .exceptions import InvalidMessageError
from .message import Message

#: Headers this package writes into queue files; an application may not.
RESERVED_PREFIX = "x-pyramid-sendmail-"
_SMTP = policies.SMTP
_SMTPUTF8 = policies.SMTPUTF8
_parser = BytesParser(policy=policies.DEFAULT)


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
        return f"<Envelope {self.message_id} to {len(self.recipients)} recipient(s)>"


def prepare(
    message: Message | EmailMessage,
    default_sender: AddressLike | None = None,
    redirect_to: str | None = None,
) -> Envelope:
    """Validate *message* and build its :class:`Envelope`.

    A :class:`~pyramid_sendmail.Message` is built into an EmailMessage; an
    EmailMessage is copied, never changed. Missing ``From`` is filled from
    *default_sender*; missing ``Message-ID`` and ``Date`` are added. Bcc
    recipients go into the envelope and out of the headers. With
    *redirect_to*, every message goes to that one address instead, and the
    original recipients are kept in an ``X-Original-Recipients`` header.
    """
    if isinstance(message, Message):
        simple = simple_mime.build(message, default_sender, redirect_to)
        if simple is not None:
            sender, recipients, data, message_id = simple
            return Envelope(sender, recipients, data, message_id)
        msg = message.to_message()
        bcc = [parse_address(a, "bcc") for a in message.bcc]
    elif isinstance(message, EmailMessage):
        msg = copy.deepcopy(message)
        bcc = []
    else:
        raise InvalidMessageError(
            f"send() takes a pyramid_sendmail.Message or an EmailMessage, not {message!r}"
        )
    # A Message's extra_headers reach the headers unchecked by to_message(),
    # so both kinds go through the same checks, Bcc included.
    _check_headers(msg)
    bcc.extend(_addresses(msg, "Bcc"))
    del msg["Bcc"]
    if msg["From"] is None:
        if not default_sender:
            raise InvalidMessageError(
                "the message has no sender and mail.default_sender is not set"
            )
        msg["From"] = parse_address(default_sender, "mail.default_sender")
    sender = _envelope_sender(msg)
    recipients = _unique(
        a.addr_spec for a in (*_addresses(msg, "To"), *_addresses(msg, "Cc"), *bcc)
    )
    if not recipients:
        raise InvalidMessageError("the message has no recipients (To, Cc or Bcc)")
    if redirect_to:
        del msg["X-Original-Recipients"]
        msg["X-Original-Recipients"] = ", ".join(recipients)
        recipients = [parse_address(redirect_to, "mail.redirect_to").addr_spec]
    if msg["Message-ID"] is None:
        msg["Message-ID"] = make_msgid(domain=simple_mime.idna(sender.rpartition("@")[2]))
    if msg["Date"] is None:
        msg["Date"] = formatdate(localtime=True)
    message_id = str(msg["Message-ID"]).strip().strip("<>")
    envelope = Envelope(sender, recipients, b"", message_id, msg)
    # Without SMTPUTF8 the email package writes a non-ASCII address in a
    # header as an encoded word, which no reader can reply to.
    utf8 = envelope.needs_smtputf8 or not all(
        a.addr_spec.isascii() for name in _ADDRESS_HEADERS for a in _addresses(msg, name)
    )
    out_policy = _SMTPUTF8 if utf8 else _SMTP
    try:
        data = msg.as_bytes(policy=out_policy)
    except (UnicodeError, ValueError) as exc:
        raise InvalidMessageError(f"the message cannot be serialized: {exc}") from exc
    envelope.data = data if utf8 else simple_mime.rewrite_address_headers(data, msg)
    return envelope


def _check_headers(msg: EmailMessage) -> None:
    try:
        items = msg.items()
    except ValueError as exc:  # an encoded word that decodes to a line break
        raise InvalidMessageError(f"a header of the message is malformed: {exc}") from exc
    for name, value in items:
        if name.lower().startswith(RESERVED_PREFIX):
            raise InvalidMessageError(f"header {name} is reserved for pyramid_sendmail")
        check_header_value(f"header {name}", str(value))
        if getattr(value, "defects", None) and name.lower() in _ADDRESS_HEADERS:
            raise InvalidMessageError(f"header {name} {str(value)!r} does not parse")


_ADDRESS_HEADERS = ("from", "sender", "to", "cc", "bcc", "reply-to")


def _addresses(msg: EmailMessage, name: str) -> list[Address]:
    found: list[Address] = []
    for value in msg.get_all(name, []):
        for address in getattr(value, "addresses", ()):
            found.append(parse_address(address, name))
        if not hasattr(value, "addresses"):
            found.append(parse_address(str(value), name))
    return found


def _envelope_sender(msg: EmailMessage) -> str:
    senders = _addresses(msg, "Sender") or _addresses(msg, "From")
    if not senders:
        raise InvalidMessageError("the message has no sender address")
    return senders[0].addr_spec


def _unique(addresses: object) -> list[str]:
    seen: dict[str, None] = {}
    for address in addresses:  # type: ignore[attr-defined]
        seen.setdefault(address, None)
    return list(seen)
