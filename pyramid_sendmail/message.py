"""A convenient message model that becomes a standard-library EmailMessage."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable, Mapping, Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from typing import IO, Any, cast

from . import policies
from .addresses import AddressLike, check_header_value, parse_address
from .exceptions import InvalidMessageError

_header_factory = policies.DEFAULT.header_factory

HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]]


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

    def _payload(self) -> tuple[str, str, dict[str, str], bytes | str]:
        """Return ``(maintype, subtype, params, data)``, reading a file once."""
        if self.data is None:
            raise InvalidMessageError(f"attachment {self.filename!r} has no data")
        data = self.data
        if not isinstance(data, (bytes, str)):
            data = data.read()
            self.data = data
        content_type = self.content_type
        if not content_type:
            guessed, _ = mimetypes.guess_type(self.filename or "")
            content_type = guessed or "application/octet-stream"
        check_header_value("attachment content_type", content_type)
        # pyramid_mailer accepts parameters: "text/plain; charset=latin-1".
        parsed = _header_factory("Content-Type", content_type)
        maintype, subtype = parsed.maintype, parsed.subtype
        if parsed.defects or f"{maintype}/{subtype}" != parsed.content_type:
            raise InvalidMessageError(
                f"attachment content type {content_type!r} is not type/subtype"
            )
        params = dict(parsed.params)
        if isinstance(data, str):
            # Text is always written as UTF-8, whatever charset was named.
            params.pop("charset", None)
            if maintype != "text":
                data = data.encode("utf-8")
        return maintype, subtype, params, data

    def _add_to(self, part: EmailMessage, related: bool) -> None:
        maintype, subtype, params, data = self._payload()
        kwargs: dict[str, Any] = {}
        disposition = self.disposition or ("inline" if related else "attachment")
        check_header_value("attachment disposition", disposition)
        # pyramid_mailer accepts 'attachment; filename="a.pdf"' as well.
        parsed = _header_factory("Content-Disposition", disposition)
        filename = self.filename or parsed.params.get("filename")
        if filename:
            check_header_value("attachment filename", filename)
            kwargs["filename"] = filename
        if self.transfer_encoding:
            kwargs["cte"] = self.transfer_encoding
        elif isinstance(data, str):
            kwargs["cte"] = _cte(data)
        if self.content_id:
            check_header_value("attachment content_id", self.content_id)
            kwargs["cid"] = "<" + self.content_id.strip("<>") + ">"
        if isinstance(data, str):
            kwargs["subtype"] = subtype
        else:
            kwargs["maintype"], kwargs["subtype"] = maintype, subtype
        if params:
            kwargs["params"] = params
        add = part.add_related if related else part.add_attachment
        try:
            add(data, disposition=parsed.content_disposition, **kwargs)
        except ValueError as exc:
            raise InvalidMessageError(f"attachment {filename!r} cannot be encoded: {exc}") from exc


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
        self.recipients = list(recipients or [])
        self.body = body
        self.html = html
        self.cc = list(cc or [])
        self.bcc = list(bcc or [])
        self.reply_to = reply_to
        self.attachments = list(attachments or [])
        self.extra_headers = extra_headers or {}

    def __repr__(self) -> str:
        return f"<Message {self.subject!r} to {len(self.send_to)} recipient(s)>"

    @property
    def send_to(self) -> set[str]:
        """Every recipient: ``recipients``, ``cc`` and ``bcc`` together."""
        return {_display(r) for r in (*self.recipients, *self.cc, *self.bcc)}

    def attach(self, attachment: Attachment) -> None:
        """Add *attachment* to the message."""
        self.attachments.append(attachment)

    def to_message(self) -> EmailMessage:
        """Build the :class:`~email.message.EmailMessage`, without Bcc.

        Raises :class:`~pyramid_sendmail.exceptions.InvalidMessageError` for a
        header with a line break or an address that does not parse.
        """
        msg = EmailMessage(policy=policies.DEFAULT)
        check_header_value("subject", self.subject)
        msg["Subject"] = self.subject
        if self.sender:
            msg["From"] = parse_address(self.sender, "sender")
        for header, values in (("To", self.recipients), ("Cc", self.cc)):
            if values:
                msg[header] = [parse_address(v, header.lower()) for v in values]
        if self.reply_to:
            reply_to = self.reply_to
            if isinstance(reply_to, (str, Address, tuple)):
                reply_to = [reply_to]
            msg["Reply-To"] = [parse_address(v, "reply_to") for v in reply_to]
        self._set_body(msg)
        for name, value in _header_items(self.extra_headers):
            check_header_value(f"header {name}", value)
            del msg[name]
            msg[name] = value
        return msg

    def _set_body(self, msg: EmailMessage) -> None:
        inline = [a for a in self.attachments if a.content_id]
        attached = [a for a in self.attachments if not a.content_id]
        if self.html is not None and self.body is not None:
            _set_text(msg, self.body, "plain")
            msg.add_alternative(self.html, subtype="html", cte=_cte(self.html))
            html_part: EmailMessage | None = cast(EmailMessage, list(msg.iter_parts())[1])
        elif self.html is not None:
            _set_text(msg, self.html, "html")
            html_part = msg
        else:
            _set_text(msg, self.body or "", "plain")
            html_part = None
        for attachment in inline:
            if html_part is None:
                raise InvalidMessageError(
                    "inline attachments (with a content_id) need an html body"
                )
            attachment._add_to(html_part, related=True)
        for attachment in attached:
            attachment._add_to(msg, related=False)


def _display(address: AddressLike) -> str:
    if isinstance(address, tuple):
        name, spec = address
        try:
            return str(Address(display_name=name, addr_spec=spec))
        except (ValueError, IndexError):  # send() will say what is wrong
            return f"{name} <{spec}>"
    return str(address)


def _cte(text: str) -> str:
    """Pick a transfer encoding every relay accepts, readable when ASCII."""
    # Split where the generator ends lines: at CR and LF only, not at the
    # other characters str.splitlines() knows (\v, \x1c, \x85...).
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if text.isascii() and "\0" not in text and all(len(x) <= 998 for x in lines):
        return "7bit"
    return "quoted-printable"


def _set_text(msg: EmailMessage, text: str, subtype: str) -> None:
    msg.set_content(text, subtype=subtype, cte=_cte(text))


def _header_items(headers: HeadersLike) -> Iterable[tuple[str, str]]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        if not name or not name.isascii() or any(c in name for c in ": \t\r\n"):
            raise InvalidMessageError(f"header name {name!r} is not a valid field name")
        yield name, value
