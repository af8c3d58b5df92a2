"""Errors raised by pyramid_sendmail. They all derive from SendmailError."""

from __future__ import annotations

from collections.abc import Mapping

from .results import ReplyLike, SMTPReply, replies

__all__ = [
    "CorruptEntry",
    "InvalidMessageError",
    "MailDeliveryError",
    "MailDropped",
    "QueueError",
    "QueueUnavailable",
    "RelayUnavailable",
    "SendmailError",
    "TransactionStateError",
    "UnknownEntry",
]


class SendmailError(Exception):
    """The base of every error this package raises."""


class InvalidMessageError(SendmailError, ValueError):
    """A message cannot be sent as it stands (raised by ``send()``)."""


class TransactionStateError(SendmailError):
    """``send()`` was called where no transaction can be joined."""

    def __init__(self, status: object, method: str = "send") -> None:
        self.status = status
        #: The method that was called: ``send`` or ``send_to_queue``.
        self.method = method
        doing = "queue" if method == "send_to_queue" else "send"
        super().__init__(
            f"cannot join a transaction to send mail: the transaction is {status} "
            "(in an after-commit hook, for example), so the message would never "
            f"be sent. Use {method}_immediately() to {doing} now, or {method}() "
            "from inside an active transaction."
        )


class MailDeliveryError(SendmailError):
    """A mailer could not deliver a message.

    :attr:`temporary` is true for failures worth retrying (a 4xx reply, a
    timeout, a refused or dropped connection, a rejected login) and false for
    permanent ones (a 5xx reply): for a reply, :attr:`SMTPReply.temporary
    <pyramid_sendmail.SMTPReply.temporary>` decides. :attr:`refused` maps each
    refused recipient to its :class:`~pyramid_sendmail.SMTPReply`;
    :attr:`accepted` lists the recipients that did take the message before
    the failure. :attr:`command` names the SMTP command whose reply refused
    the message (``MAIL``, ``RCPT`` when every recipient was refused, or
    ``DATA``), or is None.
    """

    def __init__(
        self,
        reason: str,
        *,
        temporary: bool,
        code: int | None = None,
        refused: Mapping[str, ReplyLike] | None = None,
        accepted: tuple[str, ...] = (),
        command: str | None = None,
    ) -> None:
        self.reason = reason
        self.temporary = temporary
        self.code = code
        self.refused: dict[str, SMTPReply] = replies(refused)
        self.accepted = tuple(accepted)
        self.command = command
        super().__init__(reason)

    def __str__(self) -> str:
        kind = "temporary" if self.temporary else "permanent"
        code = f" {self.code}" if self.code is not None else ""
        return f"{kind} failure{code}: {self.reason}"


class MailDropped(SendmailError):
    """Raised by a ``mail.delivery_filter`` to fail a message for *reason*
    (a suppression list, a withdrawn consent) instead of sending it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class RelayUnavailable(MailDeliveryError):
    """No usable connection to the relay (refused, timed out, TLS or login
    failed). Nothing was sent. The queue processor defers the message in
    hand and ends its pass; the other messages wait for the next one."""


class QueueError(SendmailError):
    """The mail queue cannot do what was asked. Errors of the file system
    itself (a full disk) are raised as they are, as :class:`OSError`."""


class QueueUnavailable(QueueError):
    """The queue cannot be opened where it was asked to be."""

    def __init__(self, location: str, reason: str) -> None:
        self.location = location
        self.reason = reason
        super().__init__(f"the mail queue {location!r} {reason}")


class CorruptEntry(QueueError):
    """A queued message that cannot be read (a damaged or foreign file).

    ``name`` is the entry's name when it is known; ``reason`` says what is
    wrong with it.
    """

    def __init__(self, reason: str, name: str | None = None) -> None:
        self.reason = reason
        self.name = name
        super().__init__(f"{name} cannot be read: {reason}" if name else reason)


class UnknownEntry(QueueError, KeyError):
    """No message of that name is in the queue (a :class:`KeyError` too)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        return f"no such message in the queue: {self.name!r}"
