"""Deliveries: join the transaction, and deliver or queue only on commit."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import transaction
from transaction.interfaces import (
    IDataManagerSavepoint,
    ISavepointDataManager,
    NoTransaction,
)
from zope.interface import implementer

from .events import EventSink, MailFailed, MailSent
from .exceptions import MailDeliveryError, TransactionStateError
from .interfaces import (
    IDirectMailDelivery,
    IMailer,
    IMailQueue,
    IMailSession,
    IQueuedMailDelivery,
)
from .mailers.session import Session
from .message import Envelope
from .results import SendResult
from .wording import counted

__all__ = [
    "DirectMailDelivery",
    "QueuedMailDelivery",
    "deliver_now",
    "describe",
    "log_attempt",
    "log_refused",
    "send_now",
]

log = logging.getLogger(__name__)

_JOINABLE = ("Active", "Doomed")


@implementer(ISavepointDataManager)
class _MailDataManager:
    """Holds one transaction's messages for one delivery.

    The transaction calls these methods; they defer to the delivery for what
    voting and finishing mean. Abort and tpc_abort never raise and may be
    called more than once.
    """

    def __init__(self, delivery: _Delivery, manager: transaction.TransactionManager) -> None:
        self.delivery = delivery
        self.transaction_manager = manager
        self.pending: list[tuple[Envelope, EventSink]] = []
        self.prepared: list[Any] = []
        # Set by abort(): the transaction is over, or a savepoint taken
        # before this data manager joined was rolled back and the transaction
        # dropped it (AbortSavepoint). Either way it must not take new mail.
        self.aborted = False

    def sortKey(self) -> str:  # the transaction package names it so
        # Vote before zope.sqlalchemy ("z_sqlalchemy..."), which commits the
        # database in its own vote: a full disk then aborts everything.
        return f"pyramid_sendmail:{id(self):x}"

    def abort(self, txn: Any) -> None:
        self.aborted = True
        self.pending.clear()
        self._discard_prepared()

    def tpc_begin(self, txn: Any) -> None:
        pass

    def commit(self, txn: Any) -> None:
        pass

    def tpc_vote(self, txn: Any) -> None:
        self.prepared = self.delivery._vote(self.pending)

    def tpc_finish(self, txn: Any) -> None:
        prepared, self.prepared = self.prepared, []
        try:
            self.delivery._finish(prepared)
        except Exception:
            log.exception("finishing queued mail failed after the commit")

    def tpc_abort(self, txn: Any) -> None:
        self.abort(txn)

    def savepoint(self) -> _Savepoint:
        return _Savepoint(self, len(self.pending))

    def _discard_prepared(self) -> None:
        prepared, self.prepared = self.prepared, []
        if prepared:
            try:
                self.delivery._discard(prepared)
            except Exception:
                log.exception("removing prepared mail after an abort failed")


@implementer(IDataManagerSavepoint)
class _Savepoint:
    def __init__(self, manager: _MailDataManager, length: int) -> None:
        self.manager = manager
        self.length = length

    def rollback(self) -> None:
        del self.manager.pending[self.length :]


class _Delivery:
    """What both deliveries share: joining the transaction."""

    #: What holds one transaction's messages (a subclass may keep more).
    data_manager_factory: Callable[..., _MailDataManager] = _MailDataManager

    def send(
        self,
        envelope: Envelope,
        transaction_manager: transaction.TransactionManager | None = None,
        events: EventSink | None = None,
    ) -> str:
        """Deliver *envelope* when the transaction commits; return its id."""
        manager = transaction_manager or transaction.manager
        data_manager = self._data_manager(manager)
        data_manager.pending.append((envelope, events or _ignore))
        return envelope.message_id

    def _data_manager(self, manager: transaction.TransactionManager) -> _MailDataManager:
        try:
            txn = manager.get()
        except NoTransaction:
            raise TransactionStateError("not begun") from None
        status = str(getattr(txn, "status", "Active"))
        if status not in _JOINABLE:
            raise TransactionStateError(status.lower())
        try:
            joined: _MailDataManager = txn.data(self)
        except KeyError:
            pass
        else:
            if not joined.aborted:
                return joined
        data_manager = self.data_manager_factory(self, manager)
        txn.join(data_manager)
        txn.set_data(self, data_manager)
        self._joined(txn, data_manager)
        return data_manager

    def _joined(self, txn: Any, data_manager: _MailDataManager) -> None:
        """Called once per transaction, when a data manager joins it."""

    def _vote(self, pending: list[tuple[Envelope, EventSink]]) -> list[Any]:
        return []

    def _finish(self, prepared: list[Any]) -> None:
        pass

    def _discard(self, prepared: list[Any]) -> None:
        pass


@implementer(IDirectMailDelivery)
class DirectMailDelivery(_Delivery):
    """Hand committed messages to *mailer* right after the commit.

    Sending happens in an after-commit hook, outside the two-phase commit,
    so a mail failure can never fail the commit: it is logged and announced
    as :class:`~pyramid_sendmail.events.MailFailed`.
    """

    def __init__(self, mailer: IMailer) -> None:
        self.mailer = mailer

    def _joined(self, txn: Any, data_manager: _MailDataManager) -> None:
        txn.addAfterCommitHook(self._after_commit, (data_manager,))

    def _after_commit(self, committed: bool, data_manager: _MailDataManager) -> None:
        pending, data_manager.pending = data_manager.pending, []
        if not committed or not pending:
            return
        # The transaction swallows what an after-commit hook raises, logging
        # it without the message ids: keep every failure here, per message.
        context: IMailSession | None = None
        session: IMailSession
        try:
            context = self.mailer.session()
            session = context.__enter__()
        except Exception as exc:
            context, session = None, _BrokenSession(exc)
        try:
            for envelope, events in pending:
                deliver_now(session, envelope, events)
        finally:
            if context is not None:
                try:
                    context.__exit__(None, None, None)
                except Exception:
                    log.exception("closing the mailer session after sending failed")


class _BrokenSession(Session):
    """Stands in for a session the mailer could not open."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> SendResult:
        raise self.error


def deliver_now(
    session: IMailSession, envelope: Envelope, events: EventSink
) -> BaseException | None:
    """Send *envelope* through *session*, log it, announce the outcome.

    Never raises: returns the error when no recipient accepted the message,
    after logging it and announcing MailFailed; None otherwise.
    """
    started = time.monotonic()
    try:
        result = session.send(envelope.sender, envelope.recipients, envelope.data)
    except Exception as exc:
        if isinstance(exc, MailDeliveryError):
            log_attempt(envelope, started, f"failed ({exc})", logging.ERROR)
        else:
            log.exception("mailer raised an unexpected error for %s", envelope.message_id)
        events(MailFailed(envelope, exc))
        return exc
    log_attempt(envelope, started, describe(result))
    log_refused(envelope, result, queued=False)
    events(MailSent(envelope, result.accepted))
    if result.refused:
        # Direct delivery does not retry: even a 4xx refusal is final here,
        # but the error still says whether a later attempt could succeed.
        error = MailDeliveryError(
            "some recipients were refused",
            temporary=any(reply.temporary for reply in result.refused.values()),
            refused=result.refused,
        )
        events(MailFailed(envelope, error, list(result.refused)))
    return None


def send_now(mailer: IMailer, envelope: Envelope, events: EventSink) -> str:
    """Send *envelope* at once over a session of its own; return its id.

    Raises the delivery error when no recipient accepted it.
    """
    with mailer.session() as session:
        error = deliver_now(session, envelope, events)
    if error is not None:
        raise error
    return envelope.message_id


def describe(result: Any) -> str:
    """A short outcome for the log line; :func:`log_refused` adds the rest."""
    if result.refused:
        total = len(result.accepted) + len(result.refused)
        return f"sent to {len(result.accepted)} of {counted(total, 'recipient')}"
    return "sent"


def log_refused(envelope: Envelope, result: Any, queued: bool) -> None:
    """One log line per recipient the relay refused, with its reply.

    A temporary refusal is "deferred" when the queue will retry it
    (*queued*); direct delivery does not retry, and says so.
    """
    for recipient, reply in result.refused.items():
        level = logging.WARNING
        if not reply.temporary:
            outcome = "refused"
        elif queued and reply.too_many_recipients:
            # Taken in the next transaction, at once: nothing is wrong.
            outcome, level = "in the next batch of recipients", logging.INFO
        elif queued:
            outcome = "deferred"
        else:
            outcome = "refused for now (direct delivery does not retry)"
        log.log(level, "mail %s to %s: %s: %s", envelope.message_id, recipient, outcome, reply)


def log_attempt(
    envelope: Envelope, started: float, outcome: str, level: int = logging.INFO
) -> None:
    """One log line per delivery attempt: id, recipients, outcome, time."""
    log.log(
        level,
        "mail %s to %s: %s in %.3fs",
        envelope.message_id,
        counted(len(envelope.recipients), "recipient"),
        outcome,
        time.monotonic() - started,
    )


@implementer(IQueuedMailDelivery)
class QueuedMailDelivery(_Delivery):
    """Write committed messages durably into *queue*.

    Each message is written and fsynced in ``tpc_vote`` (so a full disk
    aborts the transaction before anything commits) and published with one
    atomic rename in ``tpc_finish``. *on_publish* is called after a commit
    that published mail (the processor thread uses it to wake at once).
    """

    def __init__(self, queue: IMailQueue, on_publish: Callable[[], None] | None = None):
        self.queue = queue
        self.on_publish = on_publish

    def enqueue_now(self, envelope: Envelope) -> str:
        """Write *envelope* into the queue at once, outside any transaction."""
        self.queue.add(envelope)
        self._published()
        return envelope.message_id

    def _vote(self, pending: list[tuple[Envelope, EventSink]]) -> list[Any]:
        prepared: list[Any] = []
        try:
            for envelope, _events in pending:
                prepared.append(self.queue.prepare(envelope))
        except BaseException:
            self.queue.discard(prepared)
            raise
        return prepared

    def _finish(self, prepared: list[Any]) -> None:
        if prepared:
            self.queue.publish(prepared)
            self._published()

    def _discard(self, prepared: list[Any]) -> None:
        self.queue.discard(prepared)

    def _published(self) -> None:
        if self.on_publish is not None:
            self.on_publish()


def _ignore(event: Any) -> None:
    pass
