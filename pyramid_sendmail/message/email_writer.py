"""Write a :class:`~.normalize.Draft` through the standard :mod:`email` package.

This writer takes every message: attachments, inline images, non-ASCII
addresses (written raw, for SMTPUTF8), headers that replace generated
ones, and the EmailMessages applications build themselves. It writes what
:mod:`.normalize` accepted and decided (the transfer encodings included).
"""

from __future__ import annotations

from collections.abc import Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import Policy
from typing import Any, cast

from ..exceptions import InvalidMessageError
from .headers import DEFAULT, SMTP, SMTPUTF8
from .normalize import Draft, Part, Text

__all__ = ["message_of", "serialize", "to_email_message", "write"]

_header_factory = DEFAULT.header_factory
# The address headers whose folding this writer corrects (see _refold).
_REFOLDED = ("From", "Sender", "To", "Cc", "Reply-To")


def write(draft: Draft) -> bytes:
    """Return the bytes of *draft*, ready for a mailer."""
    return serialize(message_of(draft), draft)


def message_of(draft: Draft) -> EmailMessage:
    """The EmailMessage that is sent: the copied source, or one built."""
    return draft.source if draft.source is not None else to_email_message(draft)


def serialize(msg: EmailMessage, draft: Draft) -> bytes:
    """The bytes of *msg*, the message of *draft* (whose envelope decides
    whether the headers may be raw UTF-8)."""
    addresses = [a for name in _REFOLDED for a in _mailboxes(msg, name)]
    # Without SMTPUTF8 the email package writes a non-ASCII address in a
    # header as an encoded word, which no reader can reply to.
    utf8 = not all(
        a.isascii() for a in (draft.sender, *draft.recipients, *(a.addr_spec for a in addresses))
    )
    try:
        data = msg.as_bytes(policy=SMTPUTF8 if utf8 else SMTP)
    except (UnicodeError, ValueError) as exc:
        raise InvalidMessageError(f"the message cannot be serialized: {exc}") from exc
    return data if utf8 else _refold(data, msg)


def to_email_message(draft: Draft) -> EmailMessage:
    """Build the :class:`~email.message.EmailMessage` of a Message's draft."""
    msg = EmailMessage(policy=DEFAULT)
    # Content headers set through extra_headers replace the ones the body
    # brings; they are set after it.
    over_body = []
    for name, value in draft.headers:
        key = name.lower()
        if key == "bcc":
            continue  # in the envelope only
        if key == "mime-version" or key.startswith("content-"):
            over_body.append((name, value))
        else:
            msg[name] = list(value) if isinstance(value, tuple) else value
    html_part = _set_body(msg, draft.text, draft.html)
    for part in draft.related:
        _add(cast(EmailMessage, html_part), part, related=True)
    for part in draft.attached:
        _add(msg, part, related=False)
    for name, value in over_body:
        del msg[name]
        msg[name] = value
    return msg


def _set_body(msg: EmailMessage, text: Text | None, html: Text | None) -> EmailMessage | None:
    """Set the text and HTML parts; return the part inline images go beside."""
    if text is not None:
        msg.set_content(text.text, subtype="plain", cte=text.cte)
        if html is None:
            return None
        msg.add_alternative(html.text, subtype="html", cte=html.cte)
        return cast(EmailMessage, list(msg.iter_parts())[1])
    assert html is not None  # normalize always gives one of the two
    msg.set_content(html.text, subtype="html", cte=html.cte)
    return msg


def _add(part: EmailMessage, attachment: Part, related: bool) -> None:
    kwargs: dict[str, Any] = {}
    filename = attachment.filename
    if filename:
        kwargs["filename"] = filename
    if attachment.cte:
        kwargs["cte"] = attachment.cte
    if attachment.content_id:
        kwargs["cid"] = attachment.content_id
    if isinstance(attachment.data, str):
        kwargs["subtype"] = attachment.subtype
    else:
        kwargs["maintype"], kwargs["subtype"] = attachment.maintype, attachment.subtype
    if attachment.params:
        kwargs["params"] = attachment.params
    add = part.add_related if related else part.add_attachment
    try:
        add(attachment.data, disposition=attachment.disposition, **kwargs)
    except ValueError as exc:
        raise InvalidMessageError(f"attachment {filename!r} cannot be encoded: {exc}") from exc


def _mailboxes(msg: EmailMessage, name: str) -> list[Address]:
    return [a for value in msg.get_all(name, []) for a in getattr(value, "addresses", ())]


def _refold(data: bytes, msg: EmailMessage) -> bytes:
    """Rewrite the address lists of *data* (serialized from *msg*), one
    mailbox a line.

    The email package folds a long address list with encoded display names
    by encoding the separating comma too (``=?utf-8?q?=2C?=``), so readers
    see one address where there were several (Python 3.11 and later). It
    folds a single mailbox correctly, so each is folded alone and the list
    joined here. Groups are left as they are.
    """
    rendered: dict[bytes, bytes] = {}
    for name in _REFOLDED:
        values = msg.get_all(name) or []
        if any(group.display_name is not None for v in values for group in v.groups):
            continue
        addresses = _mailboxes(msg, name)
        if len(addresses) > 1:
            rendered[name.lower().encode()] = _fold_list(name, addresses, SMTP)
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


def _fold_list(name: str, addresses: Sequence[Address], policy: Policy) -> bytes:
    prefix = len(name) + 2
    folded = [
        _header_factory(name, [a]).fold(policy=policy)[prefix:].rstrip("\r\n") for a in addresses
    ]
    return (f"{name}: " + ",\r\n ".join(folded)).encode("ascii")
