"""Write the common message, text and HTML without attachments, straight to bytes.

Building through :mod:`email` costs several hundred microseconds a message,
most of it parsing back headers the package was just given and folding them
again; for a transactional email sent inside a request, that is most of what
sending costs. :func:`build` writes the same RFC 5322 / MIME structure
directly. It handles only what it can write exactly (ASCII addresses, text
without exotic line breaks, headers it does not have to merge) and returns
None for anything else, which then takes the :mod:`email` path; tests check
that both paths read back alike.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from .addresses import AddressLike, check_header_value, parse_address
from .exceptions import InvalidMessageError
from .message import Message

#: Header names this module writes itself; an extra header with one of these
#: names (or an address header) takes the email package's path instead.
_OWN = frozenset(
    [
        "subject",
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "sender",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "x-original-recipients",
    ]
)
# Characters str.splitlines() breaks on besides \n and \r: the email package
# turns them into line breaks, so such text is left to it.
_OTHER_BREAKS = re.compile("[\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_PLAIN = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")
_FIELD_NAME = re.compile(r"[!-9;-~]+")
_MAX_LINE = 78
# Text that may travel as it is: printable ASCII, tabs and line breaks.
_SEVEN_BIT = bytes(range(0x20, 0x7F)) + b"\t\n\r"
_WORD_BYTES = 39  # 39 bytes -> 52 base64 characters: a 64-character encoded word


def build(
    message: Message, default_sender: AddressLike | None, redirect_to: str | None
) -> tuple[str, list[str], bytes, str] | None:
    """Return ``(sender, recipients, data, message_id)``, or None when the
    message needs the email package.

    Raises :class:`~pyramid_sendmail.InvalidMessageError` exactly where the
    email package's path would.
    """
    extra_headers = _extra_headers(message.extra_headers)
    if message.attachments or extra_headers is None:
        return None
    texts = [t for t in (message.body, message.html) if t is not None]
    if any(not isinstance(t, str) or _other_breaks(t) for t in texts):
        return None
    if message.sender:
        sender = parse_address(message.sender, "sender")
    elif default_sender:
        sender = parse_address(default_sender, "mail.default_sender")
    else:
        raise InvalidMessageError("the message has no sender and mail.default_sender is not set")
    to = [parse_address(a, "to") for a in message.recipients]
    cc = [parse_address(a, "cc") for a in message.cc]
    bcc = [parse_address(a, "bcc") for a in message.bcc]
    reply_to = _as_list(message.reply_to)
    replies = [parse_address(a, "reply_to") for a in reply_to]
    specs = [a.addr_spec for a in (*to, *cc, *bcc)]
    sender_spec = sender.addr_spec
    if not (sender_spec.isascii() and all(s.isascii() for s in specs)) or not all(
        a.addr_spec.isascii() for a in replies
    ):
        return None  # SMTPUTF8: the email package writes those headers
    recipients = list(dict.fromkeys(specs))
    if not recipients:
        raise InvalidMessageError("the message has no recipients (To, Cc or Bcc)")
    subject = message.subject or ""
    check_header_value("subject", subject)
    message_id = make_msgid(domain=idna(sender.domain))
    lines = [_unstructured("Subject", subject), _addresses("From", [sender])]
    if to:
        lines.append(_addresses("To", to))
    if cc:
        lines.append(_addresses("Cc", cc))
    if replies:
        lines.append(_addresses("Reply-To", replies))
    for name, value in extra_headers:
        check_header_value(f"header {name}", value)
        lines.append(_unstructured(name, value))
    if redirect_to:
        lines.append(_listed("X-Original-Recipients", [[r] for r in recipients]))
        recipients = [parse_address(redirect_to, "mail.redirect_to").addr_spec]
    lines += [f"Date: {_date()}", f"Message-ID: {message_id}"]
    lines.append("MIME-Version: 1.0")
    head = "\r\n".join(lines).encode("ascii") + b"\r\n"
    data = head + _body(message.body, message.html)
    return sender_spec, recipients, data, message_id.strip("<>")


def _extra_headers(headers: object) -> list[tuple[str, str]] | None:
    """The extra headers as pairs, or None unless each is simply appended."""
    if isinstance(headers, Mapping):
        pairs = list(headers.items())
    elif isinstance(headers, (list, tuple)):
        pairs = list(headers)
    else:
        return None
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
            return None
        name = pair[0].lower()
        if name in _OWN or name.startswith("x-pyramid-sendmail-"):
            return None
        if not _FIELD_NAME.fullmatch(name):
            return None
    return pairs


def _as_list(value: object) -> Sequence[AddressLike]:
    if not value:
        return []
    if isinstance(value, (str, Address, tuple)):
        return [value]
    return list(value)  # type: ignore[call-overload]


def _unstructured(name: str, value: str) -> str:
    # Leading white space is folding white space to every reader; dropping
    # it here keeps this path's output the same as the email package's.
    value = value.lstrip(" \t")
    if not value:
        return f"{name}: "
    if _PLAIN.fullmatch(value) and "=?" not in value and _short_words(value):
        return _pack(name, value.split(" "))
    return _pack(name, _encoded_words(value))


def _short_words(value: str) -> bool:
    # A longer word could not be folded under the 998-character line limit.
    return all(len(word) < 900 for word in value.split(" "))


def _pack(name: str, tokens: Sequence[str]) -> str:
    """Write ``name: tokens`` separated by spaces, folding between tokens so
    lines stay within 78 characters where a token allows."""
    lines = [f"{name}:"]
    for token in tokens:
        if len(lines[-1]) + 1 + len(token) > _MAX_LINE and lines[-1] != f"{name}:":
            lines.append("")
        lines[-1] += " " + token
    return "\r\n".join(lines)


def _encoded_words(text: str) -> list[str]:
    """RFC 2047 words of a few dozen UTF-8 bytes, never splitting a
    character; readers join adjacent words without the space between."""
    chunks: list[bytes] = []
    current = b""
    for char in text:
        encoded = char.encode("utf-8")
        if len(current) + len(encoded) > _WORD_BYTES:
            chunks.append(current)
            current = b""
        current += encoded
    chunks.append(current)
    return ["=?utf-8?b?" + base64.b64encode(c).decode("ascii") + "?=" for c in chunks]


def _mailbox(address: Address) -> list[str]:
    """The tokens of one mailbox: its display name's words, then ``<addr>``."""
    name = address.display_name
    if not name:
        return [address.addr_spec]
    if not name.isascii():
        phrase = _encoded_words(name)
    elif _PHRASE.fullmatch(name) and "=?" not in name:
        phrase = name.split(" ")
    else:
        phrase = ['"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"']
    return [*phrase, f"<{address.addr_spec}>"]


def _addresses(name: str, addresses: Sequence[Address]) -> str:
    return _listed(name, [_mailbox(a) for a in addresses])


def _listed(name: str, items: Sequence[Sequence[str]]) -> str:
    tokens: list[str] = []
    for index, item in enumerate(items):
        tokens += item[:-1]
        tokens.append(item[-1] + ("," if index < len(items) - 1 else ""))
    return _pack(name, tokens)


def rewrite_address_headers(data: bytes, msg: EmailMessage) -> bytes:
    """Rewrite the address headers of *data* (serialized from *msg*).

    The email package folds a long address list with encoded display names
    by encoding the separating comma too (``=?utf-8?q?=2C?=``), so readers
    see one address where there were several (Python 3.11 and later). The
    headers written here are folded correctly. Groups and non-ASCII
    addresses (written raw under SMTPUTF8) are left as they are.
    """
    rendered: dict[bytes, bytes] = {}
    for name in ("From", "Sender", "To", "Cc", "Reply-To"):
        values = msg.get_all(name) or []
        if not values or any(group.display_name is not None for v in values for group in v.groups):
            continue
        addresses = [a for v in values for a in v.addresses]
        if addresses and all(a.addr_spec.isascii() for a in addresses):
            rendered[name.lower().encode()] = _addresses(name, addresses).encode("ascii")
    if not rendered:
        return data
    end = data.find(b"\r\n\r\n")
    lines, body = data[:end].split(b"\r\n"), data[end:]
    out: list[bytes] = []
    keep = True
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        field = line.split(b":", 1)[0].strip().lower()
        keep = field not in rendered
        if keep:
            out.append(line)
        elif rendered[field]:
            out.append(rendered[field])
            rendered[field] = b""  # repeated headers were merged into the first
    return b"\r\n".join(out) + body


def _body(text: str | None, html: str | None) -> bytes:
    if text is not None and html is not None:
        boundary = "===============" + secrets.token_hex(12) + "=="
        parts = [_part(text, "plain"), _part(html, "html")]
        delimiter = b"--" + boundary.encode("ascii")
        return (
            f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'.encode(
                "ascii"
            )
            + b"".join(delimiter + b"\r\n" + p + b"\r\n" for p in parts)
            + delimiter
            + b"--\r\n"
        )
    if html is not None:
        return _part(html, "html")
    return _part(text or "", "plain")


def _seven_bit(text: str) -> bool:
    """True if *text* is printable ASCII, tabs and line breaks only."""
    return text.isascii() and not text.encode("ascii").translate(None, _SEVEN_BIT)


def _other_breaks(text: str) -> bool:
    return not _seven_bit(text) and _OTHER_BREAKS.search(text) is not None


def _part(text: str, subtype: str) -> bytes:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    # No line may be longer than 998 characters (RFC 5322 section 2.1.1).
    short = len(text) <= 999 or max(map(len, text.split("\n"))) <= 998
    if short and _seven_bit(text):
        cte, body = "7bit", text.replace("\n", "\r\n").encode("ascii")
    else:
        raw = text.encode("utf-8")
        cte, body = "quoted-printable", binascii.b2a_qp(raw, istext=True).replace(b"\n", b"\r\n")
    head = (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n'
    )
    return head.encode("ascii") + body


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
