"""Queued delivery into the SQL queue, through the application's session.

The messages of a transaction are held like any delivery's (a savepoint
rollback forgets the ones sent after it). A before-commit hook then writes
them all through the application's SQLAlchemy session with one INSERT and
marks the session changed for zope.sqlalchemy, so the database commits the
mail with the application's rows, even when the mail is the request's only
write (zope.sqlalchemy otherwise rolls back a session it believes unused:
its issue #88). A hook, not the vote: by ``tpc_vote`` zope.sqlalchemy may
already have closed a session it thought idle, and a committing transaction
accepts no new participant. A failed INSERT raises from the hook, so the
transaction aborts before anything is committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import transaction
from sqlalchemy.exc import SQLAlchemyError
from zope.interface import implementer

# Private on purpose: the SQL delivery is the one other delivery that extends
# the data manager (it writes in the application's session instead of a
# file), inside this package and tested with it; applications must not.
from ..delivery import QueuedMailDelivery, _ignore, _MailDataManager
from ..events import EventSink
from ..exceptions import SendmailError, TransactionStateError
from ..interfaces import ISQLMailDelivery
from ..message import Envelope
from ..wording import counted
from .sql import SQLQueue

__all__ = ["QueueWriteError", "SQLMailDelivery"]

log = logging.getLogger(__name__)

_SESSIONS = "pyramid_sendmail.sql.sessions"


class QueueWriteError(SendmailError):
    """The queued mail could not be written; the transaction is aborted."""


class _SQLDataManager(_MailDataManager):
    """One transaction's messages, with the session each is written through."""

    def __init__(self, delivery: Any, manager: transaction.TransactionManager) -> None:
        super().__init__(delivery, manager)
        # The session of each pending message, by position: a savepoint
        # rollback shortens pending, and the hook writes what remains.
        self.sessions: dict[int, Any] = {}
        self.written = 0

    def tpc_vote(self, txn: Any) -> None:
        if len(self.pending) > self.written:
            # Sent by a before-commit hook that ran after ours: its rows were
            # never written, and mail is never dropped silently.
            raise TransactionStateError("committing (the mail came from a before-commit hook)")
        super().tpc_vote(txn)


@implementer(ISQLMailDelivery)
class SQLMailDelivery(QueuedMailDelivery):
    """Write committed messages into a :class:`~pyramid_sendmail.queue.sql.SQLQueue`
    through the application's SQLAlchemy session, in its transaction."""

    transactional = True
    queue: SQLQueue
    data_manager_factory = _SQLDataManager

    def __init__(self, queue: SQLQueue, on_publish: Callable[[], None] | None = None):
        super().__init__(queue, on_publish)

    def send(
        self,
        envelope: Envelope,
        transaction_manager: transaction.TransactionManager | None = None,
        events: EventSink | None = None,
        session: Any = None,
    ) -> str:
        """Queue *envelope* through *session* if and when the transaction commits."""
        if session is None:
            raise SendmailError(
                "queuing mail in the SQL queue needs the application's SQLAlchemy "
                "session: send from a request (request.dbsession, or the callable "
                "named by mail.queue_sql_session), or pass session= to get_mailer()"
            )
        manager = transaction_manager or transaction.manager
        data_manager = self._data_manager(manager)
        assert isinstance(data_manager, _SQLDataManager)
        data_manager.pending.append((envelope, events or _ignore))
        data_manager.sessions[len(data_manager.pending) - 1] = session
        return envelope.message_id

    def _joined(self, txn: Any, data_manager: _MailDataManager) -> None:
        txn.addBeforeCommitHook(self._before_commit, (data_manager,))

    def _before_commit(self, data_manager: _SQLDataManager) -> None:
        pending = data_manager.pending
        if not pending:
            return
        sessions = data_manager.sessions
        groups: dict[int, tuple[Any, list[Envelope]]] = {}
        for position, (envelope, _events) in enumerate(pending):
            session = sessions[position]
            groups.setdefault(id(session), (session, []))[1].append(envelope)
        from zope.sqlalchemy import mark_changed

        for session, envelopes in groups.values():
            try:
                self.queue.write(session, envelopes)
            except SQLAlchemyError as exc:
                raise QueueWriteError(
                    f"could not queue {counted(len(envelopes), 'message')} in the "
                    f"{self.queue.location} mail queue; the transaction is aborted: {exc}"
                ) from exc
            mark_changed(session, transaction_manager=data_manager.transaction_manager)
        data_manager.written = len(pending)

    def _vote(self, pending: list[tuple[Envelope, EventSink]]) -> list[Any]:
        return [envelope.message_id for envelope, _events in pending]

    def _finish(self, prepared: list[Any]) -> None:
        if prepared:
            # After the commit, on the queue's own connection: a NOTIFY in
            # the application's transaction would take PostgreSQL's
            # notification lock at every commit that queues mail.
            self.queue.announce()
            self._published()

    def _discard(self, prepared: list[Any]) -> None:
        pass
