"""Write a simple :class:`~.normalize.Draft` straight to bytes.

Building through :mod:`email` costs several hundred microseconds a message,
most of it parsing back headers the package was just given and folding them
again; for a transactional email sent inside a request, that is most of what
sending costs. :func:`write` writes the same RFC 5322 / MIME structure
directly, for the drafts :func:`can_write` accepts: text and HTML without
attachments, ASCII addresses, text without exotic line breaks, and extra
headers that are simply appended. Everything else takes
:mod:`.email_writer`; tests check that both read back alike.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Sequence
from email.headerregistry import Address

from .normalize import Draft, Text

__all__ = ["can_write", "write"]

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
_GENERATED = frozenset(["Date", "Message-ID"])
_MAX_LINE = 78
_WORD_BYTES = 39  # 39 bytes -> 52 base64 characters: a 64-character encoded word


def can_write(draft: Draft) -> bool:
    """True if :func:`write` writes *draft* exactly as the email package would read it."""
    if draft.source is not None or draft.related or draft.attached:
        return False
    if not _OWN.isdisjoint(draft.extra_names):
        return False  # a header that replaces one this writer writes itself
    for text in (draft.text, draft.html):
        # The email package's quoted-printable encoder breaks lines there too.
        if text is not None and text.cte != "7bit" and _OTHER_BREAKS.search(text.text):
            return False
    # SMTPUTF8: the email package writes those headers.
    return all(
        a.username.isascii() and a.domain.isascii()
        for _, value in draft.headers
        if isinstance(value, tuple)
        for a in value
    )


def write(draft: Draft) -> bytes:
    """The bytes of *draft*, which :func:`can_write` accepted."""
    lines = []
    for name, value in draft.headers:
        if isinstance(value, tuple):
            lines.append(_addresses(name, value))
        elif name in _GENERATED:
            # Date and Message-ID are normalize's own (can_write refused any
            # other): plain ASCII that needs no folding.
            lines.append(f"{name}: {value}")
        else:
            lines.append(_unstructured(name, value))
    lines.append("MIME-Version: 1.0")
    head = "\r\n".join(lines).encode("ascii") + b"\r\n"
    return head + _body(draft.text, draft.html)


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


def _body(text: Text | None, html: Text | None) -> bytes:
    if text is not None and html is not None:
        boundary = "===============" + secrets.token_hex(12) + "=="
        delimiter = b"--" + boundary.encode("ascii")
        return (
            f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'.encode(
                "ascii"
            )
            + b"".join(delimiter + b"\r\n" + _part(p) + b"\r\n" for p in (text, html))
            + delimiter
            + b"--\r\n"
        )
    part = html if text is None else text
    assert part is not None  # normalize always gives one of the two
    return _part(part)


def _part(text: Text) -> bytes:
    if text.cte == "7bit":
        body = text.text.replace("\n", "\r\n").encode("ascii")
    else:
        raw = text.text.encode("utf-8")
        body = binascii.b2a_qp(raw, istext=True).replace(b"\n", b"\r\n")
    head = (
        f'Content-Type: text/{text.subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {text.cte}\r\n\r\n"
    )
    return head.encode("ascii") + body
