"""Mailer sessions: what a mailer's ``session()`` returns.

The deliveries and the queue processor speak to every mailer through an
:class:`~pyramid_sendmail.interfaces.IMailSession`; :class:`Session` is the
base that provides it, and :class:`OneShotSession` serves the mailers that
keep no connection.
"""

from __future__ import annotations

import logging
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterable, Sequence
from types import TracebackType
from typing import Protocol, TypeVar

from zope.interface import implementer

from ..exceptions import MailDeliveryError
from ..interfaces import IMailSession
from ..results import SendResult

__all__ = ["OneShotSession", "Outcome", "Report", "ReportSteps", "Session", "SteppingReport"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_B = TypeVar("_B", bound="Session")

#: What became of one message: its result, or the error that stopped it.
Outcome = SendResult | MailDeliveryError
#: Receives ``(token, outcome)`` for each item of ``send_many``.
Report = Callable[[T, Outcome], None]
#: What a report that waits itself (a settle on the queue's database)
#: returns: its steps, run before the session sends anything more.
ReportSteps = Generator[socket.socket | int, bool | None, None]
#: A report for ``send_many_steps``: it returns its steps, or None.
SteppingReport = Callable[[T, Outcome], ReportSteps | None]


@implementer(IMailSession)
class Session(ABC):
    """The base of every session here: implement :meth:`send` (and
    :meth:`close` when there is something to close).

    :meth:`send_many` sends one message at a time; a mailer that can do
    better (pipelining) overrides it.
    """

    @abstractmethod
    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> SendResult:
        """Deliver one message."""

    def send_many(
        self,
        items: Iterable[tuple[T, str, Sequence[str], bytes]],
        report: Report[T],
    ) -> None:
        """Send each item with :meth:`send`; see
        :meth:`IMailSession.send_many <pyramid_sendmail.interfaces.IMailSession.send_many>`.

        An error other than :class:`~pyramid_sendmail.MailDeliveryError`
        (a bug in a mailer of the application's own, say) is logged and
        reported as a temporary failure, so that the message is kept.
        """
        for token, sender, recipients, message in items:
            outcome: Outcome
            try:
                outcome = self.send(sender, recipients, message)
            except MailDeliveryError as exc:
                outcome = exc
            except Exception as exc:
                log.exception("the mailer raised an unexpected error")
                outcome = MailDeliveryError(f"the mailer failed: {exc!r}", temporary=True)
            report(token, outcome)

    # B027: a hook that does nothing unless a session has something to close.
    def close(self) -> None:  # noqa: B027
        """End the session; nothing to do here."""

    def __enter__(self: _B) -> _B:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Sender(Protocol):
    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> SendResult: ...


class OneShotSession(Session):
    """A session for mailers that keep no connection: each send stands alone.

    A mailer of your own can return ``OneShotSession(self)`` from ``session()``.
    """

    def __init__(self, mailer: _Sender) -> None:
        self.mailer = mailer

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> SendResult:
        """Delegate to the mailer."""
        return self.mailer.send(sender, recipients, message)
