"""What a mailer reports back: a server's reply, and the outcome of one message.

:class:`SMTPReply` holds the one rule that says whether a refusal is worth
retrying; every part of the package that classifies a reply asks it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["ReplyLike", "SMTPReply", "SendResult", "replies"]

#: What callers may pass where a reply is expected: an :class:`SMTPReply`
#: or a plain ``(code, message)`` pair, as smtplib returns it.
ReplyLike = tuple[int, bytes | str]


class SMTPReply(NamedTuple):
    """A server's reply: its numeric *code* and the *message* after it.

    *message* is the server's own bytes (smtplib's form); :attr:`text` decodes
    it. Being a tuple, a reply still unpacks as ``code, message = reply`` and
    compares equal to the ``(code, message)`` pair it holds.
    """

    #: The reply's number (smtplib gives ``-1`` for a line it cannot read).
    code: int
    #: The text after the code, as the server's bytes.
    message: bytes

    @classmethod
    def of(cls, reply: ReplyLike) -> SMTPReply:
        """Return *reply* as an :class:`SMTPReply`; a text message is UTF-8 encoded."""
        if isinstance(reply, SMTPReply):
            return reply
        code, message = reply
        return cls(code, message.encode("utf-8") if isinstance(message, str) else message)

    @property
    def permanent(self) -> bool:
        """Whether trying again cannot help: a 5xx reply, and nothing else.

        A 4xx reply is temporary by definition (RFC 5321, 4.2.1). Any other
        code where a refusal was read (a 2xx or 3xx out of place, a code
        above 599, or smtplib's ``-1`` for a reply it could not parse) is a
        protocol error, not a verdict on the message: it is temporary too,
        and the retries end at ``mail.max_age`` like any other.
        """
        return 500 <= self.code <= 599

    @property
    def temporary(self) -> bool:
        """The opposite of :attr:`permanent`."""
        return not self.permanent

    @property
    def too_many_recipients(self) -> bool:
        """Whether it refuses a recipient for the number of recipients in the
        transaction (``452 4.5.3``), not for the address: a new transaction
        may take it (RFC 5321, 4.5.3.1.10)."""
        return self.code == 452 and (
            self.text.startswith("4.5.3") or "too many recipients" in self.text.lower()
        )

    @property
    def text(self) -> str:
        """The message decoded, undecodable bytes replaced."""
        return self.message.decode("utf-8", "replace")

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


def replies(refused: Mapping[str, ReplyLike] | None) -> dict[str, SMTPReply]:
    """Each recipient's reply in *refused* as an :class:`SMTPReply`."""
    return {recipient: SMTPReply.of(reply) for recipient, reply in (refused or {}).items()}


@dataclass(frozen=True)
class SendResult:
    """The outcome of one accepted message.

    *accepted* lists the recipients the server took; *refused* maps each
    recipient it refused to its :class:`SMTPReply` (a ``(code, message)``
    pair given here becomes one). A message refused for every recipient
    raises :class:`~pyramid_sendmail.MailDeliveryError` instead.
    """

    accepted: tuple[str, ...]
    refused: dict[str, SMTPReply] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A mailer of the application's own may report plain tuples; the
        # processor and the events then still see typed replies.
        object.__setattr__(self, "refused", replies(self.refused))
