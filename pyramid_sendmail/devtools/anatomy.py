"""Take a message apart for the message page: headers, parts, envelope, warnings."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from ..message.headers import DEFAULT as POLICY
from ..wording import counted

__all__ = ["Anatomy", "Part", "dissect", "rewrite_cids"]

#: Gmail clips an HTML part larger than this and hides the rest behind a link.
HTML_CLIP_BYTES = 102 * 1024
#: Many relays and providers refuse messages larger than this.
LARGE_BYTES = 10 * 1024 * 1024
_LOCAL_HOSTS = frozenset(["localhost", "127.0.0.1", "0.0.0.0", "::1", "[::1]"])
_parser = BytesParser(policy=POLICY)
_CID = re.compile(r"cid:([^\"'\s)>]+)", re.IGNORECASE)


@dataclass
class Part:
    """One node of the MIME tree."""

    index: int
    depth: int
    content_type: str
    size: int
    charset: str | None = None
    encoding: str | None = None
    filename: str | None = None
    content_id: str | None = None
    disposition: str | None = None


@dataclass
class Anatomy:
    """What the message page shows about one message."""

    message: EmailMessage
    #: The message as sent.
    data: bytes
    sender: str
    recipients: tuple[str, ...]
    size: int
    headers: list[tuple[str, str]]
    parts: list[Part]
    html: str | None
    text: str | None
    #: Parts downloaded rather than shown: attachments.
    attachments: list[Part] = field(default_factory=list)
    #: Content-ID (without angle brackets) to part index.
    cids: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: Envelope recipients that no To or Cc header names (Bcc).
    hidden_recipients: list[str] = field(default_factory=list)
    #: The recipients a ``mail.redirect_to`` took the message from.
    redirected_from: str | None = None

    @property
    def subject(self) -> str:
        """The decoded Subject, or a placeholder."""
        return str(self.message.get("Subject", "")) or "(no subject)"

    def part(self, index: int) -> EmailMessage | None:
        """The MIME part numbered *index* in :attr:`parts`, or None."""
        for number, part in enumerate(self.message.walk()):
            if number == index:
                return part
        return None


def dissect(data: bytes, sender: str, recipients: Sequence[str]) -> Anatomy:
    """Analyse the message *data* sent from *sender* to *recipients*."""
    message: EmailMessage = _parser.parsebytes(data)
    parts, cids = _tree(message)
    html_part = message.get_body(("html",))
    text_part = message.get_body(("plain",))
    body_parts = {id(p) for p in (html_part, text_part) if p is not None}
    attachments = [
        info
        for info, part in zip(parts, message.walk(), strict=True)
        if not part.is_multipart()
        and id(part) not in body_parts
        and (info.disposition == "attachment" or (info.filename and not info.content_id))
    ]
    anatomy = Anatomy(
        message=message,
        data=data,
        sender=sender,
        recipients=tuple(recipients),
        size=len(data),
        headers=[(name, str(value)) for name, value in message.items()],
        parts=parts,
        html=_content(html_part),
        text=_content(text_part),
        attachments=attachments,
        cids=cids,
    )
    _compare_envelope(anatomy)
    anatomy.warnings = _warnings(anatomy, data)
    return anatomy


def rewrite_cids(html: str, url_for_part: dict[str, str]) -> str:
    """Point each ``cid:`` reference of *html* at the URL serving its part."""

    def replace(match: re.Match[str]) -> str:
        return url_for_part.get(match.group(1).lower(), match.group(0))

    return _CID.sub(replace, html)


def _tree(message: EmailMessage) -> tuple[list[Part], dict[str, int]]:
    parts: list[Part] = []
    cids: dict[str, int] = {}
    depths: dict[int, int] = {id(message): 0}
    for index, part in enumerate(message.walk()):
        depth = depths.get(id(part), 0)
        if part.is_multipart():
            for child in part.iter_parts():
                depths[id(child)] = depth + 1
            size = 0
        else:
            size = len(part.get_payload(decode=True) or b"")
        content_id = part.get("Content-ID")
        cid = str(content_id).strip().strip("<>") if content_id else None
        if cid:
            cids[cid.lower()] = index
        parts.append(
            Part(
                index=index,
                depth=depth,
                content_type=part.get_content_type(),
                size=size,
                charset=part.get_content_charset(),
                encoding=part.get("Content-Transfer-Encoding"),
                filename=part.get_filename(),
                content_id=cid,
                disposition=part.get_content_disposition(),
            )
        )
    return parts, cids


def _content(part: Any) -> str | None:
    if part is None:
        return None
    try:
        return str(part.get_content())
    except (LookupError, ValueError):
        payload = part.get_payload(decode=True) or b""
        return str(payload.decode("utf-8", "replace"))


def _addr_specs(message: EmailMessage, names: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for name in names:
        values = [str(v) for v in message.get_all(name, [])]
        for _display, spec in getaddresses(values):
            if spec:
                found.add(spec.lower())
    return found


def _compare_envelope(anatomy: Anatomy) -> None:
    message = anatomy.message
    named = _addr_specs(message, ("To", "Cc"))
    anatomy.hidden_recipients = [r for r in anatomy.recipients if r.lower() not in named]
    original = message.get("X-Original-Recipients")
    if original is not None:
        anatomy.redirected_from = str(original)


class _Links(HTMLParser):
    """Collects the URLs an HTML part links to and the images it loads."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.links.append(values["href"] or "")
        if tag == "img" and values.get("src"):
            self.images.append(values["src"] or "")


def _is_local(url: str) -> bool:
    parts = urlsplit(url.strip())
    if parts.scheme in ("mailto", "tel", "cid", "data") or url.startswith("#"):
        return False
    if not parts.scheme or not parts.netloc:
        return True
    host = (parts.hostname or "").lower()
    return host in _LOCAL_HOSTS or host.endswith(".localhost")


def _warnings(anatomy: Anatomy, data: bytes) -> list[str]:
    warnings: list[str] = []
    if anatomy.html is not None and anatomy.text is None:
        warnings.append(
            "No text part: clients that show plain text, and many spam filters, "
            "see an HTML-only message."
        )
    if anatomy.html is not None:
        links = _Links()
        links.feed(anatomy.html)
        local = sorted({u for u in links.links + links.images if _is_local(u)})
        if local:
            warnings.append(
                "Relative or localhost links do not work in a mail client: " + ", ".join(local[:5])
            )
        remote = [u for u in links.images if urlsplit(u).scheme in ("http", "https")]
        if remote:
            images = counted(len(remote), "remote image")
            warnings.append(
                f"{images}: most clients block them until the reader "
                "allows it; embed images as inline parts (cid:) instead. They are not "
                "loaded here."
            )
        referred = {m.group(1) for m in _CID.finditer(anatomy.html)}
        missing = sorted(c for c in referred if c.lower() not in anatomy.cids)
        if missing:
            warnings.append(
                "The HTML refers to missing inline parts: cid:" + ", cid:".join(missing)
            )
        html_size = len(anatomy.html.encode("utf-8"))
        if html_size > HTML_CLIP_BYTES:
            warnings.append(
                f"The HTML part is {html_size // 1024} KB: Gmail clips HTML over 102 KB."
            )
    if _needs_smtputf8(anatomy, data):
        warnings.append(
            "Needs SMTPUTF8: an address or a header is not ASCII, and relays "
            "without the SMTPUTF8 extension refuse the message."
        )
    if anatomy.size > LARGE_BYTES:
        warnings.append(
            f"The message is {anatomy.size / 1024 / 1024:.1f} MB: many servers refuse "
            "messages over 10 MB."
        )
    if anatomy.redirected_from is not None:
        warnings.append(
            "mail.redirect_to is active: this message went to "
            + ", ".join(anatomy.recipients)
            + " instead of "
            + anatomy.redirected_from
            + "."
        )
    return warnings


def _needs_smtputf8(anatomy: Anatomy, data: bytes) -> bool:
    if not anatomy.sender.isascii() or not all(r.isascii() for r in anatomy.recipients):
        return True
    head, _, _ = data.partition(b"\r\n\r\n")
    return not head.isascii()
