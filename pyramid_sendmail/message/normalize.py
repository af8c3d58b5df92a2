"""Validate a message once, into the one form both writers take.

:func:`normalize` reads a :class:`~pyramid_sendmail.Message` into a
:class:`Draft`: addresses parsed, header names and values checked,
attachments read and typed, Bcc split off into the envelope, and the
defaults filled (sender, Message-ID, Date). An EmailMessage given to
``send()`` is copied and normalised the same way. The writers add no rule of
their own about what a message may hold.
"""

from __future__ import annotations

import functools
import mimetypes
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol

from ..exceptions import InvalidMessageError
from .addresses import (
    AddressLike,
    address_list,
    address_or_list,
    parse_address,
    parse_address_list,
    with_ascii_domain,
)
from .headers import (
    ADDRESS_HEADERS,
    DEFAULT,
    HeadersLike,
    check_field_name,
    check_header_value,
    check_not_reserved,
)

__all__ = [
    "AttachmentFields",
    "Draft",
    "HeaderValue",
    "MessageFields",
    "Part",
    "Text",
    "complete",
    "idna",
    "normalize",
    "read",
    "transfer_encoding",
]

#: A header of a draft: a checked string, or the mailboxes of an address
#: header this package generated.
HeaderValue = str | tuple[Address, ...]

_header_factory = DEFAULT.header_factory


class AttachmentFields(Protocol):
    """What :func:`read` takes from an attachment: an :class:`~.model.Attachment`.

    A protocol rather than the class, so that the pipeline does not import
    the builder that calls it (``model`` imports ``normalize``).
    """

    @property
    def filename(self) -> str | None: ...
    @property
    def content_type(self) -> str | None: ...
    @property
    def disposition(self) -> str | None: ...
    @property
    def transfer_encoding(self) -> str | None: ...
    @property
    def content_id(self) -> str | None: ...
    def read(self) -> bytes | str: ...


class MessageFields(Protocol):
    """What :func:`read` takes from a message: a :class:`~.model.Message`."""

    @property
    def subject(self) -> str: ...
    @property
    def sender(self) -> AddressLike | None: ...
    @property
    def recipients(self) -> Sequence[AddressLike]: ...
    @property
    def cc(self) -> Sequence[AddressLike]: ...
    @property
    def bcc(self) -> Sequence[AddressLike]: ...
    @property
    def reply_to(self) -> AddressLike | Sequence[AddressLike] | None: ...
    @property
    def body(self) -> str | None: ...
    @property
    def html(self) -> str | None: ...
    @property
    def attachments(self) -> Sequence[AttachmentFields]: ...
    @property
    def extra_headers(self) -> HeadersLike: ...


@dataclass(slots=True)
class Text:
    """A text part: its text with LF line ends and a final one, and its CTE."""

    text: str
    subtype: str
    cte: str


@dataclass(slots=True)
class Part:
    """An attachment, read and checked."""

    maintype: str
    subtype: str
    params: dict[str, str]
    data: bytes | str
    disposition: str
    filename: str | None
    cte: str | None
    content_id: str | None


@dataclass(slots=True)
class Draft:
    """A message validated and ready for a writer.

    *headers* are in writing order; *extra_names* holds the lower-case names
    the application set through ``extra_headers``. *source* is the copied
    EmailMessage when ``send()`` was given one (the other content fields are
    then empty). *sender*, *recipients* and *message_id* (without angle
    brackets) are the envelope, empty until :func:`normalize` fills them.
    """

    headers: tuple[tuple[str, HeaderValue], ...] = ()
    extra_names: frozenset[str] = frozenset()
    text: Text | None = None
    html: Text | None = None
    related: tuple[Part, ...] = ()
    attached: tuple[Part, ...] = ()
    source: EmailMessage | None = None
    sender: str = ""
    recipients: tuple[str, ...] = field(default=())
    message_id: str = ""


def transfer_encoding(text: str) -> str:
    """The transfer encoding of *text* (LF line ends): the rule of both writers.

    7bit when RFC 2045 allows it (ASCII, no NUL, no line over 998
    characters), so the text stays readable; quoted-printable otherwise,
    which every relay accepts.
    """
    ascii_ = text.isascii() and "\0" not in text
    if ascii_ and (len(text) <= 998 or max(map(len, text.split("\n"))) <= 998):
        return "7bit"
    return "quoted-printable"


def _text(text: str, subtype: str) -> Text:
    # Line ends as a reader gets them back: LF, and a final one.
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    return Text(text, subtype, transfer_encoding(text))


def read(message: MessageFields) -> Draft:
    """Check *message* and return its headers and body, without an envelope."""
    check_header_value("subject", message.subject)
    headers: list[tuple[str, HeaderValue]] = [("Subject", message.subject)]
    if message.sender:
        headers.append(("From", (parse_address(message.sender, "sender"),)))
    if message.recipients:
        to = address_list(message.recipients, "recipients")
        headers.append(("To", tuple([parse_address(v, "to") for v in to])))
    if message.cc:
        cc = address_list(message.cc, "cc")
        headers.append(("Cc", tuple([parse_address(v, "cc") for v in cc])))
    if message.reply_to:
        replies = address_or_list(message.reply_to)
        headers.append(("Reply-To", tuple([parse_address(v, "reply_to") for v in replies])))
    if message.bcc:
        bcc = address_list(message.bcc, "bcc")
        headers.append(("Bcc", tuple([parse_address(v, "bcc") for v in bcc])))
    extra: frozenset[str] = frozenset()
    if message.extra_headers:
        headers, extra = _with_extra_headers(headers, message.extra_headers)
    body, html_text = message.body, message.html
    if not isinstance(body, (str, type(None))) or not isinstance(html_text, (str, type(None))):
        raise InvalidMessageError("body and html must be strings")
    html = None if html_text is None else _text(html_text, "html")
    text = None if body is None and html is not None else _text(body or "", "plain")
    related: tuple[Part, ...] = ()
    attached: tuple[Part, ...] = ()
    if message.attachments:
        related = tuple([_part(a, related=True) for a in message.attachments if a.content_id])
        if related and html is None:
            raise InvalidMessageError("inline attachments (with a content_id) need an html body")
        attached = tuple([_part(a, related=False) for a in message.attachments if not a.content_id])
    return Draft(tuple(headers), extra, text, html, related, attached)


def _with_extra_headers(
    headers: list[tuple[str, HeaderValue]], extra_headers: HeadersLike
) -> tuple[list[tuple[str, HeaderValue]], frozenset[str]]:
    names: set[str] = set()
    for name, value in _header_items(extra_headers):
        key = name.lower()
        check_not_reserved(name)
        check_header_value(f"header {name}", value)
        if key in ADDRESS_HEADERS:
            parse_address_list(_header_factory(name, value), f"header {name}")
        # An extra header replaces a generated one of the same name.
        headers = [h for h in headers if h[0].lower() != key]
        headers.append((name, value))
        names.add(key)
    return headers, frozenset(names)


def normalize(
    message: MessageFields, default_sender: AddressLike | None, redirect_to: str | None
) -> Draft:
    """Check *message* and complete it into a :class:`Draft` with its envelope."""
    return complete(read(message), default_sender, redirect_to)


def complete(draft: Draft, default_sender: AddressLike | None, redirect_to: str | None) -> Draft:
    headers = list(draft.headers)
    mailboxes: dict[str, list[Address]] = {}
    names = set()
    for index, (name, value) in enumerate(headers):
        key = name.lower()
        names.add(key)
        if key in ADDRESS_HEADERS:
            if isinstance(value, tuple):
                mailboxes_ = value
            else:
                mailboxes_ = tuple(
                    parse_address_list(_header_factory(name, value), f"header {name}")
                )
            ascii_ = tuple([with_ascii_domain(a) for a in mailboxes_])
            if ascii_ != mailboxes_:
                headers[index] = (name, ascii_)
            mailboxes.setdefault(key, []).extend(ascii_)
    if "from" not in names:
        if not default_sender:
            raise InvalidMessageError(
                "the message has no sender and mail.default_sender is not set"
            )
        sender_address = with_ascii_domain(parse_address(default_sender, "mail.default_sender"))
        headers.insert(1, ("From", (sender_address,)))
        mailboxes["from"] = [sender_address]
    senders = mailboxes.get("sender") or mailboxes.get("from")
    if not senders:
        raise InvalidMessageError("the message has no sender address")
    sender = senders[0].addr_spec
    visible = [a.addr_spec for key in ("to", "cc") for a in mailboxes.get(key, ())]
    recipients = list(dict.fromkeys(visible + [a.addr_spec for a in mailboxes.get("bcc", ())]))
    if not recipients:
        raise InvalidMessageError("the message has no recipients (To, Cc or Bcc)")
    if "bcc" in names:
        # Bcc recipients are in the envelope and nowhere in the headers.
        headers = [h for h in headers if h[0].lower() != "bcc"]
    if redirect_to:
        target = with_ascii_domain(parse_address(redirect_to, "mail.redirect_to")).addr_spec
        headers = [h for h in headers if h[0].lower() != "x-original-recipients"]
        # The visible recipients only: a Bcc address never reaches a header,
        # not even on a redirected message (a message with Bcc alone says so).
        original = ", ".join(dict.fromkeys(visible)) or "(Bcc only)"
        headers.append(("X-Original-Recipients", original))
        recipients = [target]
    if "date" not in names:
        headers.append(("Date", _date()))
    if "message-id" in names:
        message_id = str(next(v for n, v in headers if n.lower() == "message-id"))
    else:
        message_id = make_msgid(domain=idna(sender.rpartition("@")[2]))
        headers.append(("Message-ID", message_id))
    draft.headers = tuple(headers)
    draft.sender = sender
    draft.recipients = tuple(recipients)
    draft.message_id = message_id.strip().strip("<>")
    return draft


def _part(attachment: AttachmentFields, related: bool) -> Part:
    data = attachment.read()
    if data is None:
        raise InvalidMessageError(f"attachment {attachment.filename!r} has no data")
    content_type = attachment.content_type
    if not content_type:
        guessed, _ = mimetypes.guess_type(attachment.filename or "")
        content_type = guessed or "application/octet-stream"
    check_header_value("attachment content_type", content_type)
    # pyramid_mailer accepts parameters: "text/plain; charset=latin-1".
    parsed = _header_factory("Content-Type", content_type)
    maintype, subtype = parsed.maintype, parsed.subtype
    if parsed.defects or f"{maintype}/{subtype}" != parsed.content_type:
        raise InvalidMessageError(f"attachment content type {content_type!r} is not type/subtype")
    params = dict(parsed.params)
    if isinstance(data, str):
        # Text is always written as UTF-8, whatever charset was named.
        params.pop("charset", None)
        if maintype != "text":
            data = data.encode("utf-8")
    disposition = attachment.disposition or ("inline" if related else "attachment")
    check_header_value("attachment disposition", disposition)
    # pyramid_mailer accepts 'attachment; filename="a.pdf"' as well.
    parsed = _header_factory("Content-Disposition", disposition)
    filename = attachment.filename or parsed.params.get("filename")
    if filename:
        check_header_value("attachment filename", filename)
    cte = attachment.transfer_encoding
    if not cte and isinstance(data, str):
        cte = transfer_encoding(data.replace("\r\n", "\n").replace("\r", "\n"))
    content_id = None
    if attachment.content_id:
        check_header_value("attachment content_id", attachment.content_id)
        content_id = "<" + attachment.content_id.strip("<>") + ">"
    return Part(
        maintype,
        subtype,
        params,
        data,
        parsed.content_disposition,
        filename or None,
        cte,
        content_id,
    )


def _header_items(headers: HeadersLike) -> Iterator[tuple[str, str]]:
    items: Iterable[Any] = headers.items() if isinstance(headers, Mapping) else headers
    for item in items:
        try:
            name, value = item
        except (TypeError, ValueError) as exc:
            raise InvalidMessageError(
                f"extra_headers must hold (name, value) pairs, not {item!r}"
            ) from exc
        yield check_field_name(name), value


_last_date: tuple[int, str] = (0, "")


def _date() -> str:
    """The Date header's value, formatted once a second (it costs ~10 µs)."""
    global _last_date
    now = time.time()
    second, text = _last_date
    if int(now) != second:
        text = formatdate(now, localtime=True)
        _last_date = (int(now), text)
    return text


@functools.lru_cache(maxsize=256)
def idna(domain: str) -> str:
    """The ASCII form of *domain* for a Message-ID (``localhost`` if none)."""
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return "localhost"
