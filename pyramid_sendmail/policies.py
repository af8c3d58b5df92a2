"""Sending policies applied to each message: the before-send event, staging
redirects, and the schedule a queued message carries.

:class:`MailSending` is notified synchronously by every send method of
``request.mailer``, before any transaction work; what its subscribers leave
is checked again (:func:`rebuild`). :class:`Redirect` is ``mail.redirect_to``
with its exceptions and subject prefix, applied at ``send()`` and again by
the queue processor to every message it claims, so a queue copied from
production cannot mail its customers. :func:`schedule_of` reads the
``send_at``, ``expires_at`` and ``priority`` arguments.
"""

from __future__ import annotations

import copy
import fnmatch
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

from pyramid.exceptions import ConfigurationError
from pyramid.path import DottedNameResolver
from zope.interface import implementedBy, implementer

from .exceptions import InvalidMessageError
from .interfaces import IMailSendingEvent
from .message import Envelope, parse_address, prepare
from .queue.entry import NORMAL, PRIORITIES, Schedule
from .wording import counted

__all__ = [
    "MODES",
    "DeliveryFilter",
    "MailSending",
    "Redirect",
    "When",
    "has_sending_subscribers",
    "rebuild",
    "resolve_delivery_filter",
    "schedule_of",
]

log = logging.getLogger(__name__)

#: :attr:`MailSending.mode`: at commit through ``send()`` when delivery is
#: direct, into the queue, or at once through ``send_immediately()``.
MODES = ("direct", "queued", "immediate")
#: What ``send_at`` and ``expires_at`` take: an aware or naive (local time)
#: datetime, a delay from now, or a POSIX timestamp.
When = datetime | timedelta | float | int
#: ``mail.delivery_filter``: given the envelope about to be sent, it returns
#: the envelope to send (fewer recipients at most) or None to drop it.
DeliveryFilter = Callable[[Envelope], Envelope | None]


@implementer(IMailSendingEvent)
class MailSending:
    """A message is being sent; subscribers may edit ``message`` and
    ``recipients``, or :meth:`cancel` it.

    See :class:`~pyramid_sendmail.interfaces.IMailSendingEvent`.
    """

    def __init__(
        self,
        message: EmailMessage,
        recipients: Sequence[str],
        message_id: str,
        *,
        request: Any = None,
        mode: str = "queued",
        send_at: float | None = None,
        priority: str = "normal",
    ) -> None:
        self.message = message
        self.recipients = list(recipients)
        self.message_id = message_id
        self.request = request
        self.mode = mode
        self.send_at = send_at
        self.priority = priority
        self.cancelled = False
        self.reason: str | None = None

    def cancel(self, reason: str = "") -> None:
        """Send nothing; *reason* is logged and shown in the testing outbox."""
        self.cancelled = True
        self.reason = reason or "cancelled by a MailSending subscriber"

    def __repr__(self) -> str:
        return f"<MailSending {self.message_id} to {counted(len(self.recipients), 'recipient')}>"


def has_sending_subscribers(registry: Any) -> bool:
    """True when something subscribed to :class:`MailSending` in *registry*;
    without one, sending builds no event and parses nothing back."""
    adapters = getattr(registry, "adapters", None)
    if adapters is None:
        return False
    # The class's own specification: subscribers registered for the class
    # (add_subscriber(f, MailSending)) as well as for its interface.
    spec = implementedBy(MailSending)  # type: ignore[no-untyped-call]
    return bool(adapters.subscriptions((spec,), None))


def rebuild(envelope: Envelope, event: MailSending, default_sender: str | None) -> Envelope:
    """The envelope of what the subscribers of *event* left, checked again.

    The edited message goes through the same checks as at ``send()``
    (header values without line breaks, addresses that parse, no reserved
    header); each of :attr:`MailSending.recipients` must be one address. A
    ``Bcc`` header a subscriber added adds recipients and is removed.
    """
    message = event.message
    if not isinstance(message, EmailMessage):
        raise InvalidMessageError(
            f"a MailSending subscriber replaced the message by {message!r}, not an EmailMessage"
        )
    recipients = [parse_address(r, "MailSending.recipients").addr_spec for r in event.recipients]
    for value in message.get_all("Bcc") or ():
        recipients.extend(a.addr_spec for a in value.addresses)
    if not recipients:
        raise InvalidMessageError(
            "a MailSending subscriber left no recipients: call event.cancel() instead"
        )
    # prepare() checks every header as at send(); listing the recipients as
    # Bcc lets it accept a message whose recipients are all blind copies,
    # and it removes the Bcc header again.
    checked = copy.copy(message)
    checked._headers = list(message._headers)  # type: ignore[attr-defined]
    del checked["Bcc"]
    checked["Bcc"] = ", ".join(recipients)
    built = prepare(checked, default_sender)
    return Envelope(built.sender, list(dict.fromkeys(recipients)), built.data, built.message_id)


@dataclass(frozen=True)
class Redirect:
    """``mail.redirect_to`` with ``mail.redirect_except`` and ``mail.subject_prefix``.

    Every recipient that matches none of *except_patterns* (shell patterns
    such as ``*@example.com``; a bare domain means every address there) is
    replaced by the *to* addresses. The original recipients that the
    headers name (To and Cc, never a Bcc) are kept in an
    ``X-Original-Recipients`` header and the subject gets *subject_prefix*.
    Applying it twice changes nothing more: the *to* addresses are never
    redirected.
    """

    to: tuple[str, ...] = ()
    except_patterns: tuple[str, ...] = ()
    subject_prefix: str | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> Redirect:
        """The redirect that parsed ``mail.*`` *settings* describe."""
        return cls(
            settings.redirect_to or (), settings.redirect_except or (), settings.subject_prefix
        )

    @property
    def active(self) -> bool:
        """True when mail is redirected."""
        return bool(self.to)

    def describe(self) -> str:
        """One line saying what is redirected where (start-up and ``status``)."""
        text = "mail.redirect_to is active: mail goes to " + ", ".join(self.to)
        if self.except_patterns:
            text += " except for " + ", ".join(self.except_patterns)
        return text

    def keeps(self, address: str) -> bool:
        """True when mail to *address* is delivered to it."""
        address = address.lower()
        if address in (t.lower() for t in self.to):
            return True
        for pattern in self.except_patterns:
            pattern = pattern.lower() if "@" in pattern else "*@" + pattern.lower()
            if fnmatch.fnmatchcase(address, pattern):
                return True
        return False

    def __call__(self, envelope: Envelope) -> Envelope:
        """*envelope* redirected (itself when nothing is to be redirected)."""
        if not self.to:
            return envelope
        kept = [r for r in envelope.recipients if self.keeps(r)]
        if len(kept) == len(envelope.recipients):
            return envelope
        redirected = [r for r in envelope.recipients if r not in kept]
        head, sep, body = envelope.data.partition(b"\r\n\r\n")
        lines = _header_lines(head)
        visible = _visible_addresses(lines)
        original = [r for r in redirected if r.lower() in visible]
        lines = [line for line in lines if not _named(line, b"x-original-recipients")]
        # A message redirected away from Bcc recipients alone says so, and
        # names none of them (as prepare() does).
        lines.append(_fold("X-Original-Recipients", ", ".join(original) or "(Bcc only)"))
        if self.subject_prefix:
            lines = self._prefixed(lines)
        data = b"".join(lines) + b"\r\n" + body if sep else envelope.data
        recipients = list(dict.fromkeys([*kept, *self.to]))
        return Envelope(envelope.sender, recipients, data, envelope.message_id)

    def _prefixed(self, lines: list[bytes]) -> list[bytes]:
        prefix = self.subject_prefix or ""
        for index, line in enumerate(lines):
            if _named(line, b"subject"):
                raw = line.split(b":", 1)[1].decode("utf-8", "replace")
                subject = str(make_header(decode_header(" ".join(raw.split()))))
                if not subject.startswith(prefix):
                    lines[index] = _fold("Subject", f"{prefix} {subject}")
                return lines
        return [_fold("Subject", prefix), *lines]


def _header_lines(head: bytes) -> list[bytes]:
    """The header fields of *head*, each with its continuation lines and CRLF."""
    fields: list[bytes] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line + b"\r\n"
        elif line:
            fields.append(line + b"\r\n")
    return fields


def _named(line: bytes, name: bytes) -> bool:
    return line.split(b":", 1)[0].strip().lower() == name


def _visible_addresses(lines: list[bytes]) -> set[str]:
    """The addresses the To and Cc headers name, lower-cased."""
    found: set[str] = set()
    for line in lines:
        if _named(line, b"to") or _named(line, b"cc"):
            value = line.split(b":", 1)[1].decode("utf-8", "replace")
            header = SMTP.header_factory("To", " ".join(value.split()))
            found.update(a.addr_spec.lower() for a in getattr(header, "addresses", ()))
    return found


def _fold(name: str, value: str) -> bytes:
    return SMTP.fold_binary(name, value)


def schedule_of(
    send_at: When | None,
    expires_at: When | None,
    priority: str | None,
    now: float,
) -> Schedule:
    """Read ``send()``'s scheduling arguments into a :class:`Schedule`.

    Raises :class:`~pyramid_sendmail.InvalidMessageError` naming the
    argument for a wrong type, an unknown priority, or an expiry that is
    not after the send time.
    """
    if send_at is None and expires_at is None and priority in (None, "normal"):
        return NORMAL
    priority = priority or "normal"
    if priority not in PRIORITIES:
        raise InvalidMessageError(
            f"priority must be one of {', '.join(PRIORITIES)}, not {priority!r}"
        )
    start = _timestamp(send_at, "send_at", now)
    end = _timestamp(expires_at, "expires_at", now)
    if end is not None and end <= (start if start is not None else now):
        raise InvalidMessageError("expires_at must be later than send_at (and than now)")
    return Schedule(start, end, priority)


def _timestamp(value: When | None, name: str, now: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, timedelta):
        return now + value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise InvalidMessageError(
        f"{name} must be a datetime, a timedelta or a POSIX timestamp, not {value!r}"
    )


def resolve_delivery_filter(name: str | None) -> DeliveryFilter | None:
    """Import the callable ``mail.delivery_filter`` names (None when unset).

    Raises :class:`~pyramid.exceptions.ConfigurationError` naming the setting.
    """
    if name is None:
        return None
    try:
        found = DottedNameResolver().resolve(name)
    except (ImportError, ValueError) as exc:
        raise ConfigurationError(
            f"mail.delivery_filter {name!r} cannot be imported: {exc}"
        ) from exc
    if not callable(found):
        raise ConfigurationError(f"mail.delivery_filter {name!r} is not callable")
    resolved: DeliveryFilter = found
    return resolved
