"""The contracts of pyramid_sendmail, declared with :mod:`zope.interface`."""

from zope.interface import Attribute, Interface


class IMailer(Interface):
    """Hands a message to something that delivers it, right now."""

    def send(sender, recipients, message):
        """Deliver the bytes *message* from *sender* to each of *recipients*.

        *sender* and *recipients* are bare addresses (``ann@example.org``);
        *message* is the RFC 5322 message as bytes with CRLF line endings.
        Returns a :class:`~pyramid_sendmail.SendResult`; raises
        :class:`~pyramid_sendmail.exceptions.MailDeliveryError` when no
        recipient accepted the message.
        """

    def session():
        """Return a context manager with the same ``send`` that may reuse one
        connection for many messages (a batch)."""


class ISMTPMailer(IMailer):
    """A mailer that talks SMTP to a relay."""

    host = Attribute("The relay's host name.")
    port = Attribute("The relay's port.")


class IMailDelivery(Interface):
    """Takes messages for delivery when the current transaction commits."""

    def send(envelope, transaction_manager, events):
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

    queue = Attribute("The queue that committed messages are written to.")

    def enqueue_now(envelope):
        """Write *envelope* into the queue at once, outside any transaction,
        and return its message id."""


class IMailQueue(Interface):
    """A durable queue of messages waiting for delivery.

    Small on purpose, so that a second backend (a SQL table) can follow.
    """

    def prepare(envelope):
        """Durably store *envelope*, not yet visible; return a handle."""

    def publish(handles):
        """Make prepared messages visible to processors (on commit)."""

    def discard(handles):
        """Forget prepared messages (on abort); never raises for missing ones."""

    def add(envelope):
        """Durably queue *envelope* at once; return its id."""

    def claimable(now):
        """Return the ids of the messages due at *now*, oldest first."""

    def claim(entry_id):
        """Claim a message for this processor alone; return its QueueEntry,
        or None when another processor claimed it first."""

    def complete(entry):
        """Remove a claimed entry whose delivery is finished."""

    def defer(entry, until, error):
        """Put a claimed entry back, with its envelope, due at *until*."""

    def fail(entry, error, keep_claim=False):
        """Set a claimed entry aside as failed, with its *error*; with
        *keep_claim*, leave the claimed entry in place (some of its
        recipients are being deferred)."""

    def recover(now):
        """Return claims older than the claim timeout to the queue."""

    def retry(entry_ids):
        """Put failed messages back in the queue."""

    def status(now):
        """Counts and oldest ages of the messages in each state."""


class IMailQueueProcessor(Interface):
    """Delivers the messages of a queue through a mailer."""

    def process_once():
        """Deliver every message due now; return how many were handled."""


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
