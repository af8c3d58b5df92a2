"""A second resource for transactions in tests: a database, say."""

from __future__ import annotations

from typing import Any

from transaction.interfaces import IDataManager
from zope.interface import implementer


@implementer(IDataManager)
class OtherResource:
    """Records what the transaction asks of it; can refuse its vote.

    *key* places it among the resources (``z_sqlalchemy`` is zope.sqlalchemy's,
    which commits the database in its own vote). Subclasses watch the vote
    through :meth:`voting`.
    """

    def __init__(self, manager: Any, fail_vote: bool = False, key: str = "zzz") -> None:
        self.transaction_manager = manager
        self.fail_vote = fail_vote
        self.key = key
        self.calls: list[str] = []

    def sortKey(self) -> str:  # the transaction package's method name
        return self.key

    def abort(self, txn: Any) -> None:
        self.calls.append("abort")

    def tpc_begin(self, txn: Any) -> None:
        self.calls.append("tpc_begin")

    def commit(self, txn: Any) -> None:
        self.calls.append("commit")

    def voting(self) -> None:
        """Called at the start of this resource's vote."""

    def tpc_vote(self, txn: Any) -> None:
        self.calls.append("tpc_vote")
        self.voting()
        if self.fail_vote:
            raise RuntimeError("the database refused to commit")

    def tpc_finish(self, txn: Any) -> None:
        self.calls.append("tpc_finish")

    def tpc_abort(self, txn: Any) -> None:
        self.calls.append("tpc_abort")
