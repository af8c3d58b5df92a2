"""The contracts of pyramid_sendmail, declared with :mod:`zope.interface`.

The methods are annotated, so mypy (with mypy-zope) types whatever provides
them; as zope.interface wants, they are written without ``self``. The types
are imported for the type checker only: this module imports nothing of the
package at run time, so every module can import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from types import TracebackType

    from transaction.interfaces import ITransactionManager

    from .exceptions import CorruptEntry, MailDeliveryError
    from .message import Envelope
    from .queue.entry import QueueEntry, QueueStatus
    from .results import SendResult

__all__ = [
    "IDirectMailDelivery",
    "IMailDeferredEvent",
    "IMailDelivery",
    "IMailErrorEvent",
    "IMailEvent",
    "IMailQueue",
    "IMailQueueProcessor",
    "IMailSendingEvent",
    "IMailSentEvent",
    "IMailSession",
    "IMailer",
    "IMessageMailer",
    "ISMTPMailer",
]


class IMailSession(Interface):
    """A mailer's batch: ``send`` many messages, possibly over one connection.

    Used as a context manager: leaving the ``with`` block closes it.
    """

    def send(sender: str, recipients: Sequence[str], message: bytes) -> SendResult:
        """Deliver one message, as :meth:`IMailer.send` does."""

    def send_many(
        items: Iterable[tuple[Any, str, Sequence[str], bytes]],
        report: Callable[[Any, SendResult | MailDeliveryError], None],
    ) -> None:
        """Send ``(token, sender, recipients, message)`` *items* in order and
        call ``report(token, outcome)`` for each, with a
        :class:`~pyramid_sendmail.SendResult` or the
        :class:`~pyramid_sendmail.exceptions.MailDeliveryError` that stopped
        it. *report* must not raise."""

    def close() -> None:
        """End the session (close its connection); safe to call twice."""

    def __enter__() -> IMailSession:
        """Return the session itself."""

    def __exit__(
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the session."""


class IMailer(Interface):
    """Hands a message to something that delivers it, right now."""

    def send(sender: str, recipients: Sequence[str], message: bytes) -> SendResult:
        """Deliver the bytes *message* from *sender* to each of *recipients*.

        *sender* and *recipients* are bare addresses (``ann@example.org``);
        *message* is the RFC 5322 message as bytes with CRLF line endings.
        Returns a :class:`~pyramid_sendmail.SendResult`; raises
        :class:`~pyramid_sendmail.exceptions.MailDeliveryError` when no
        recipient accepted the message.
        """

    def session() -> IMailSession:
        """Return an :class:`IMailSession`: a context manager with the same
        ``send`` that may reuse one connection for many messages (a batch).
        """


class IMessageMailer(Interface):
    """Sends whole messages, as ``request.mailer`` does (pyramid_mailer's
    ``Mailer`` shape).

    A utility registered with it (or as :class:`IMailer`, as applications
    registered pyramid_mailer's ``DummyMailer``) is what ``get_mailer()``
    and ``request.mailer`` return:
    :class:`pyramid_sendmail.testing.DummyMailer` is one.
    """

    def send(message: Any) -> Any:
        """Send *message* if and when the transaction commits."""

    def send_immediately(message: Any, fail_silently: bool = False) -> Any:
        """Send *message* now."""

    def send_to_queue(message: Any) -> Any:
        """Queue *message* if and when the transaction commits."""

    def send_to_queue_immediately(message: Any) -> Any:
        """Queue *message* now."""


class ISMTPMailer(IMailer):
    """A mailer that talks SMTP to a relay."""

    host = Attribute("The relay's host name.")
    port = Attribute("The relay's port.")


class IMailDelivery(Interface):
    """Takes messages for delivery when the current transaction commits."""

    def send(
        envelope: Envelope,
        transaction_manager: ITransactionManager | None = None,
        events: Callable[[IMailEvent], None] | None = None,
    ) -> str:
        """Join the transaction of *transaction_manager* and deliver the
        prepared *envelope* if and when it commits.

        *events* is a callable that receives the outcome events, to be
        dispatched once the transaction has ended. Returns the message id.
        """


class IDirectMailDelivery(IMailDelivery):
    """Delivers to the mailer right after the transaction commits."""

    mailer = Attribute("The IMailer that receives committed messages.")


class IQueuedMailDelivery(IMailDelivery):
    """Writes messages durably into a queue as part of the commit."""

    queue = Attribute("The IMailQueue that committed messages are written to.")

    def enqueue_now(envelope: Envelope) -> str:
        """Write *envelope* into the queue at once, outside any transaction,
        and return its message id."""


class ISQLMailDelivery(IQueuedMailDelivery):
    """A queued delivery that writes through the application's SQLAlchemy
    session, in its transaction (the SQL queue)."""

    def send(
        envelope: Envelope,
        transaction_manager: ITransactionManager | None = None,
        events: Callable[[IMailEvent], None] | None = None,
        session: Any = None,
    ) -> str:
        """Queue *envelope* through *session* (the application's SQLAlchemy
        session) if and when the transaction commits."""


class IMailQueue(Interface):
    """A durable queue of messages waiting for delivery.

    Every method a delivery, a processor or ``psendmail`` calls is declared
    here, so a second backend (a SQL table) knows what to provide. Errors of
    the queue's own are :class:`~pyramid_sendmail.exceptions.QueueError`\\ s.
    """

    location = Attribute("Where the messages are kept, for people to read (a folder).")

    # -- adding (a delivery) --------------------------------------------

    def prepare(envelope: Envelope) -> str:
        """Durably store *envelope*, not yet visible; return its name."""

    def publish(names: list[str]) -> None:
        """Make prepared messages visible to processors (on commit)."""

    def discard(names: Iterable[str]) -> None:
        """Forget prepared messages (on abort); never raises for missing ones."""

    def add(envelope: Envelope) -> str:
        """Durably queue *envelope* at once; return its name."""

    # -- processing (a processor) ---------------------------------------

    def claimable(now: float | None = None) -> list[str]:
        """Return the names of the messages due at *now*, oldest first."""

    def claim(
        name: str, on_corrupt: Callable[[CorruptEntry], None] | None = None
    ) -> QueueEntry | None:
        """Claim a message for this processor alone; return its entry, or
        None when another processor claimed it first. A message that cannot
        be read is set aside with the failed ones, passed to *on_corrupt*,
        and None is returned."""

    def complete(entry: QueueEntry) -> None:
        """Remove a claimed entry whose delivery is finished."""

    def defer(entry: QueueEntry, until: float, error: str) -> None:
        """Put a claimed entry back, with its envelope, due at *until*."""

    def fail(entry: QueueEntry, error: str, keep_claim: bool = False) -> str:
        """Set a claimed entry aside as failed, with its *error*; with
        *keep_claim*, leave the claimed entry in place (some of its
        recipients are being deferred). Return the failed message's name."""

    def recover(now: float | None = None) -> int:
        """Return claims older than the claim timeout to the queue; return
        how many."""

    def release() -> int:
        """Give back what :meth:`claimable` claimed and :meth:`claim` has not
        handed out (a pass that stopped early); return how many."""

    def close() -> None:
        """Let go of what the queue holds open (files, connections); it may
        be used again afterwards."""

    # -- administration (psendmail) -------------------------------------

    def retry(names: Iterable[str] | None = None) -> list[str]:
        """Put failed messages (all, or *names*) back in the queue; return
        their new names. An unknown name raises
        :class:`~pyramid_sendmail.exceptions.UnknownEntry`, one that cannot
        be read :class:`~pyramid_sendmail.exceptions.CorruptEntry`, and
        nothing is moved."""

    def status(now: float | None = None) -> QueueStatus:
        """Counts and oldest ages of the messages in each state."""

    def unreadable() -> dict[str, str]:
        """The failed messages that cannot be read, each with the reason."""

    # Last: below it, ``list`` would name this method in annotations.
    def list(folder: str = "failed") -> list[QueueEntry]:
        """Read every message of one state: ``new`` (waiting), ``cur``
        (claimed) or ``failed``; those that cannot be read are left out."""


class IMailQueueProcessor(Interface):
    """Delivers the messages of a queue through a mailer."""

    last_pass = Attribute(
        "Counts of the last pass: messages sent, deferred, failed and throttled "
        "(each message once, so they add up to the messages handled), messages "
        "partly delivered (counted as deferred or failed too), unreadable files "
        "set aside and stale claims recovered."
    )
    relay_was_down = Attribute("True when the last pass ended early: no relay.")

    def process_once(progress: Callable[[int, int], None] | None = None) -> int:
        """Deliver every message due now; return how many were handled.

        *progress* is called as ``progress(done, total)`` after each one."""


class IMailSendingEvent(Interface):
    """A message is being sent: notified synchronously in the caller's code,
    before any transaction work, so a subscriber may edit or cancel it.

    Not an :class:`IMailEvent`: those are announced after the transaction.
    """

    message = Attribute("The email.message.EmailMessage to send (editable, Bcc removed).")
    recipients = Attribute("The envelope's recipient addresses, Bcc included (an editable list).")
    message_id = Attribute("The Message-ID, without angle brackets.")
    request = Attribute("The request sending it, or None.")
    mode = Attribute("'direct', 'queued' or 'immediate'.")
    send_at = Attribute("When a queued message is to go (a POSIX timestamp), or None.")
    priority = Attribute("The priority class: 'high', 'normal' or 'low'.")
    cancelled = Attribute("True once cancel() was called.")
    reason = Attribute("Why it was cancelled, or None.")

    def cancel(reason: str = "") -> None:
        """Send nothing: the message joins no transaction and goes nowhere."""


class IMailEvent(Interface):
    """Something happened to a message."""

    message_id = Attribute("The Message-ID, without angle brackets.")
    message = Attribute("The email.message.EmailMessage concerned.")
    recipients = Attribute("The recipient addresses this event concerns.")


class IMailSentEvent(IMailEvent):
    """The message was accepted for these recipients."""


class IMailErrorEvent(IMailEvent):
    """The message could not be delivered to these recipients, for good."""

    error = Attribute("The exception that stopped delivery.")


class IMailDeferredEvent(IMailEvent):
    """Delivery failed for now and will be tried again."""

    error = Attribute("The exception of this attempt.")
    retry_at = Attribute("When the next attempt is due (a POSIX timestamp).")
