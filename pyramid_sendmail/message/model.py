"""The user-facing builder: :class:`Message` and :class:`Attachment`.

These hold what the application wrote, unchecked; :func:`.normalize.read`
checks it when the message is sent (or turned into an EmailMessage).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from typing import IO, cast

from ..exceptions import InvalidMessageError
from ..wording import counted
from .addresses import AddressLike
from .email_writer import to_email_message
from .headers import HeadersLike
from .normalize import read

__all__ = ["Attachment", "HeadersLike", "Message"]


class Attachment:
    """A file attached to a :class:`Message`.

    *data* is bytes, text, or a file object to read. *content_type* is guessed
    from *filename* when omitted. Give a *content_id* to reference the file
    from the HTML body as ``<img src="cid:...">``: it is then sent inline,
    beside the HTML part.
    """

    def __init__(
        self,
        filename: str | None = None,
        content_type: str | None = None,
        data: bytes | str | IO[bytes] | IO[str] | None = None,
        disposition: str | None = None,
        transfer_encoding: str | None = None,
        content_id: str | None = None,
    ) -> None:
        self.filename = filename
        self.content_type = content_type
        self.data = data
        self.disposition = disposition
        self.transfer_encoding = transfer_encoding
        self.content_id = content_id

    def __repr__(self) -> str:
        return f"<Attachment {self.filename!r} {self.content_type!r}>"

    def read(self) -> bytes | str:
        """The data, reading a file object once (a second send reuses it)."""
        data = self.data
        if data is not None and not isinstance(data, (bytes, str)):
            data = self.data = data.read()
        return data  # type: ignore[return-value]


class Message:
    """An email to send, with the arguments and attributes of pyramid_mailer.

    Addresses are strings (``'Ann <ann@example.org>'``) or
    :class:`email.headerregistry.Address` objects. ``bcc`` recipients receive
    the message but never appear in its headers. :meth:`to_message` builds
    the :class:`email.message.EmailMessage` that is sent.

    The positional order of the arguments is pyramid_mailer's, so code
    written for it keeps working; ``reply_to`` comes last.
    """

    def __init__(
        self,
        subject: str | None = None,
        recipients: Sequence[AddressLike] | None = None,
        body: str | None = None,
        html: str | None = None,
        sender: AddressLike | None = None,
        cc: Sequence[AddressLike] | None = None,
        bcc: Sequence[AddressLike] | None = None,
        extra_headers: HeadersLike | None = None,
        attachments: Sequence[Attachment] | None = None,
        reply_to: AddressLike | Sequence[AddressLike] | None = None,
    ) -> None:
        self.subject = subject or ""
        self.sender = sender
        self.recipients = _listed(recipients)
        self.body = body
        self.html = html
        self.cc = _listed(cc)
        self.bcc = _listed(bcc)
        self.reply_to = reply_to
        self.attachments = list(attachments or [])
        self.extra_headers = extra_headers or {}

    def __repr__(self) -> str:
        return f"<Message {self.subject!r} to {counted(len(self.send_to), 'recipient')}>"

    @property
    def send_to(self) -> set[str]:
        """Every recipient: ``recipients``, ``cc`` and ``bcc`` together."""
        return {_display(r) for r in (*self.recipients, *self.cc, *self.bcc)}

    def attach(self, attachment: Attachment) -> None:
        """Add *attachment* to the message."""
        self.attachments.append(attachment)

    def add_recipient(self, recipient: AddressLike) -> None:
        """Add *recipient* to ``recipients`` (the To header)."""
        self.recipients.append(recipient)

    def add_cc(self, recipient: AddressLike) -> None:
        """Add *recipient* to ``cc``."""
        self.cc.append(recipient)

    def add_bcc(self, recipient: AddressLike) -> None:
        """Add *recipient* to ``bcc``."""
        self.bcc.append(recipient)

    def validate(self) -> None:
        """Run the checks of ``send()`` that need no settings.

        Raises :class:`~pyramid_sendmail.exceptions.InvalidMessageError` for a
        header with a line break, an address that does not parse, or a message
        without recipients. A missing sender is no error here: ``send()``
        fills it from ``mail.default_sender``.
        """
        read(self)
        if not (self.recipients or self.cc or self.bcc):
            raise InvalidMessageError("the message has no recipients (To, Cc or Bcc)")

    def to_message(self) -> EmailMessage:
        """Build the :class:`~email.message.EmailMessage`, without Bcc.

        Raises :class:`~pyramid_sendmail.exceptions.InvalidMessageError` for a
        header with a line break or an address that does not parse.
        """
        return to_email_message(read(self))


def _listed(value: Sequence[AddressLike] | None) -> list[AddressLike]:
    # A string (or anything but a collection) is kept as given, as
    # pyramid_mailer keeps it, for send() to refuse by name instead of
    # reading it letter by letter.
    if not value:
        return []
    if isinstance(value, (str, bytes, Address, Mapping)) or not isinstance(value, Iterable):
        return cast(list[AddressLike], value)
    return list(value)


def _display(address: AddressLike) -> str:
    if isinstance(address, tuple):
        name, spec = address
        try:
            return str(Address(display_name=name, addr_spec=spec))
        except (ValueError, IndexError):  # send() will say what is wrong
            return f"{name} <{spec}>"
    return str(address)
