"""Direct delivery: a message reaches the mailer only when its transaction commits."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytest
import transaction
from resources import OtherResource
from transaction.interfaces import (
    DoomedTransaction,
    IDataManager,
    IDataManagerSavepoint,
    ISavepointDataManager,
)
from zope.interface import implementer
from zope.interface.verify import verifyObject

from pyramid_sendmail import DirectMailDelivery, Message, TransactionStateError
from pyramid_sendmail.delivery import _Delivery, _MailDataManager
from pyramid_sendmail.events import MailFailed, MailSent
from pyramid_sendmail.exceptions import MailDeliveryError
from pyramid_sendmail.interfaces import (
    IDirectMailDelivery,
    IMailer,
    IMailErrorEvent,
    IMailSentEvent,
    IQueuedMailDelivery,
)
from pyramid_sendmail.mailers import OneShotSession
from pyramid_sendmail.message import Envelope, prepare
from pyramid_sendmail.results import SendResult
from pyramid_sendmail.testing import InMemoryMailer


def envelope(subject: str = "Hello", to: Sequence[str] = ("bob@example.org",)) -> Envelope:
    return prepare(
        Message(subject=subject, sender="ann@example.org", recipients=list(to), body="Hi")
    )


def subjects(mailer: InMemoryMailer) -> list[str]:
    return [mail.subject for mail in mailer.delivered]


@pytest.fixture
def mailer() -> InMemoryMailer:
    return InMemoryMailer()


@pytest.fixture
def delivery(mailer: InMemoryMailer) -> DirectMailDelivery:
    return DirectMailDelivery(mailer)


@pytest.fixture
def tm() -> transaction.TransactionManager:
    return transaction.TransactionManager(explicit=True)


@implementer(IMailer)
class ScriptedMailer:
    """A mailer whose answer each test chooses: a fault a real relay can't stage."""

    def __init__(
        self,
        result: SendResult | None = None,
        error: Exception | None = None,
        session_error: Exception | None = None,
    ) -> None:
        self.result = result
        self.error = error
        self.session_error = session_error
        self.sessions = 0
        self.sent: list[tuple[str, tuple[str, ...]]] = []

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> SendResult:
        if self.error is not None:
            raise self.error
        self.sent.append((sender, tuple(recipients)))
        return self.result or SendResult(accepted=tuple(recipients))

    def session(self) -> OneShotSession:
        if self.session_error is not None:
            raise self.session_error
        self.sessions += 1
        return OneShotSession(self)


# --- the contract ----------------------------------------------------------


def test_direct_delivery_provides_its_interface_and_not_the_queued_one(delivery):
    assert verifyObject(IDirectMailDelivery, delivery)
    assert not IQueuedMailDelivery.providedBy(delivery)


def test_data_manager_provides_the_transaction_contracts(delivery, tm):
    data_manager = _MailDataManager(delivery, tm)
    assert verifyObject(IDataManager, data_manager)
    assert verifyObject(ISavepointDataManager, data_manager)
    assert verifyObject(IDataManagerSavepoint, data_manager.savepoint())


# --- commit and abort ------------------------------------------------------


def test_commit_delivers_message(delivery, mailer, tm):
    tm.begin()
    message = envelope()
    message_id = delivery.send(message, tm)
    assert message_id == message.message_id
    assert mailer.delivered == []
    tm.commit()
    [mail] = mailer.delivered
    assert mail.sender == "ann@example.org"
    assert mail.recipients == ["bob@example.org"]
    assert mail.data == message.data


def test_commit_delivers_every_message_in_order_over_one_session(tm):
    mailer = ScriptedMailer()
    delivery = DirectMailDelivery(mailer)
    tm.begin()
    for name in ("bob", "cy", "dee"):
        delivery.send(envelope(to=[f"{name}@example.org"]), tm)
    tm.commit()
    assert [to for _, to in mailer.sent] == [
        ("bob@example.org",),
        ("cy@example.org",),
        ("dee@example.org",),
    ]
    assert mailer.sessions == 1


def test_commit_announces_mail_sent(delivery, tm):
    events: list[Any] = []
    tm.begin()
    message = envelope()
    delivery.send(message, tm, events.append)
    assert events == []
    tm.commit()
    [event] = events
    assert IMailSentEvent.providedBy(event)
    assert event.message_id == message.message_id
    assert event.recipients == ("bob@example.org",)


def test_next_transaction_does_not_send_committed_message_again(delivery, mailer, tm):
    tm.begin()
    delivery.send(envelope("first"), tm)
    tm.commit()
    tm.begin()
    delivery.send(envelope("second"), tm)
    tm.commit()
    assert subjects(mailer) == ["first", "second"]


def test_abort_delivers_nothing(delivery, mailer, tm):
    events: list[Any] = []
    tm.begin()
    delivery.send(envelope(), tm, events.append)
    tm.abort()
    assert mailer.delivered == []
    assert events == []


def test_message_of_aborted_transaction_is_not_sent_by_the_next_commit(delivery, mailer, tm):
    tm.begin()
    delivery.send(envelope("aborted"), tm)
    tm.abort()
    tm.begin()
    delivery.send(envelope("committed"), tm)
    tm.commit()
    assert subjects(mailer) == ["committed"]


def test_doomed_transaction_delivers_nothing(delivery, mailer, tm):
    tm.begin()
    delivery.send(envelope("before doom"), tm)
    tm.doom()
    delivery.send(envelope("after doom"), tm)
    with pytest.raises(DoomedTransaction):
        tm.commit()
    tm.abort()
    assert mailer.delivered == []


@pytest.mark.parametrize("key", ["aaa", "zzz"], ids=["votes-first", "votes-last"])
def test_failing_vote_of_another_resource_delivers_nothing(delivery, mailer, tm, key):
    events: list[Any] = []
    txn = tm.begin()
    database = OtherResource(tm, fail_vote=True, key=key)
    txn.join(database)
    delivery.send(envelope(), tm, events.append)
    with pytest.raises(RuntimeError, match="refused to commit"):
        tm.commit()
    tm.abort()
    assert mailer.delivered == []
    assert events == []
    assert "tpc_abort" in database.calls


def test_transactions_of_two_managers_are_independent(delivery, mailer):
    first = transaction.TransactionManager(explicit=True)
    second = transaction.TransactionManager(explicit=True)
    first.begin()
    second.begin()
    delivery.send(envelope("first"), first)
    delivery.send(envelope("second"), second)
    first.abort()
    second.commit()
    assert subjects(mailer) == ["second"]


def test_thread_transaction_manager_is_the_default(delivery, mailer):
    with transaction.manager:
        delivery.send(envelope())
    assert len(mailer.delivered) == 1


# --- savepoints ------------------------------------------------------------


def test_savepoint_rollback_forgets_messages_sent_after_it(delivery, mailer, tm):
    txn = tm.begin()
    delivery.send(envelope("kept"), tm)
    savepoint = txn.savepoint()
    delivery.send(envelope("forgotten"), tm)
    delivery.send(envelope("forgotten too"), tm)
    savepoint.rollback()
    delivery.send(envelope("sent later"), tm)
    tm.commit()
    assert subjects(mailer) == ["kept", "sent later"]


def test_savepoint_rollback_can_be_repeated(delivery, mailer, tm):
    txn = tm.begin()
    delivery.send(envelope("kept"), tm)
    savepoint = txn.savepoint()
    delivery.send(envelope("first try"), tm)
    savepoint.rollback()
    delivery.send(envelope("second try"), tm)
    savepoint.rollback()
    tm.commit()
    assert subjects(mailer) == ["kept"]


def test_savepoint_taken_before_first_send_keeps_working_after_rollback(delivery, mailer, tm):
    # The transaction drops a data manager that joined after a savepoint
    # when that savepoint is rolled back; mail sent afterwards must still
    # take part in the transaction, later savepoints included.
    txn = tm.begin()
    early = txn.savepoint()
    delivery.send(envelope("forgotten"), tm)
    early.rollback()
    delivery.send(envelope("kept"), tm)
    later = txn.savepoint()
    delivery.send(envelope("forgotten after later savepoint"), tm)
    later.rollback()
    tm.commit()
    assert subjects(mailer) == ["kept"]


def test_rolled_back_early_savepoint_then_abort_delivers_nothing(delivery, mailer, tm):
    txn = tm.begin()
    early = txn.savepoint()
    delivery.send(envelope("forgotten"), tm)
    early.rollback()
    delivery.send(envelope("aborted"), tm)
    tm.abort()
    tm.begin()
    tm.commit()
    assert mailer.delivered == []


# --- abort is idempotent and never raises ----------------------------------


def test_abort_after_failed_commit_is_harmless(delivery, mailer, tm):
    txn = tm.begin()
    txn.join(OtherResource(tm, fail_vote=True))
    delivery.send(envelope(), tm)
    with pytest.raises(RuntimeError):
        tm.commit()
    # tpc_abort already ran; abort runs again now and must stay quiet.
    tm.abort()
    tm.begin()
    tm.commit()
    assert mailer.delivered == []


def test_abort_and_tpc_abort_may_be_called_repeatedly(delivery, mailer, tm):
    txn = tm.begin()
    delivery.send(envelope(), tm)
    data_manager = txn.data(delivery)
    data_manager.tpc_abort(txn)
    data_manager.abort(txn)
    data_manager.tpc_abort(txn)
    data_manager.abort(txn)
    assert data_manager.pending == []
    tm.commit()
    assert mailer.delivered == []


def test_abort_after_commit_does_not_raise_or_unsend(delivery, mailer, tm):
    txn = tm.begin()
    delivery.send(envelope(), tm)
    data_manager = txn.data(delivery)
    tm.commit()
    data_manager.abort(txn)
    data_manager.tpc_abort(txn)
    assert len(mailer.delivered) == 1


class _UndiscardableDelivery(_Delivery):
    """A delivery whose prepared work cannot be removed (a broken disk)."""

    def _vote(self, pending: list[Any]) -> list[Any]:
        return ["prepared"] * len(pending)

    def _discard(self, prepared: list[Any]) -> None:
        raise OSError("the disk went away")


def test_abort_never_raises_even_when_discarding_prepared_mail_fails(tm, caplog):
    delivery = _UndiscardableDelivery()
    txn = tm.begin()
    txn.join(OtherResource(tm, fail_vote=True, key="zzz"))
    delivery.send(envelope(), tm)
    with caplog.at_level(logging.ERROR, "pyramid_sendmail"):
        # Our vote prepares, the other resource's vote fails: tpc_abort must
        # swallow the discard error so the original error is the one raised.
        with pytest.raises(RuntimeError, match="refused to commit"):
            tm.commit()
        tm.abort()
    assert "removing prepared mail after an abort failed" in caplog.text


# --- failures after the commit ---------------------------------------------


def test_mailer_failure_does_not_fail_commit(delivery, mailer, tm, caplog):
    mailer.fail_with = MailDeliveryError("relay said no", temporary=False, code=554)
    events: list[Any] = []
    tm.begin()
    message = envelope()
    delivery.send(message, tm, events.append)
    other = OtherResource(tm)
    tm.get().join(other)
    with caplog.at_level(logging.INFO, "pyramid_sendmail"):
        tm.commit()  # does not raise
    assert "tpc_finish" in other.calls
    [event] = events
    assert isinstance(event, MailFailed)
    assert IMailErrorEvent.providedBy(event)
    assert event.error is mailer.fail_with
    assert event.recipients == ("bob@example.org",)
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert message.message_id in record.getMessage()
    assert "relay said no" in record.getMessage()


def test_unexpected_mailer_error_is_logged_with_message_id(tm, caplog):
    delivery = DirectMailDelivery(ScriptedMailer(error=RuntimeError("bug in mailer")))
    events: list[Any] = []
    tm.begin()
    message = envelope()
    delivery.send(message, tm, events.append)
    with caplog.at_level(logging.ERROR, "pyramid_sendmail"):
        tm.commit()
    [event] = events
    assert isinstance(event, MailFailed)
    assert isinstance(event.error, RuntimeError)
    [record] = caplog.records
    assert message.message_id in record.getMessage()
    assert record.exc_info is not None


def test_one_failed_message_does_not_stop_the_others(tm):
    class FailsForCy(ScriptedMailer):
        def send(self, sender, recipients, message):
            if "cy@example.org" in recipients:
                raise MailDeliveryError("mailbox full", temporary=True, code=452)
            return super().send(sender, recipients, message)

    mailer = FailsForCy()
    events: list[Any] = []
    delivery = DirectMailDelivery(mailer)
    tm.begin()
    for name in ("bob", "cy", "dee"):
        delivery.send(envelope(to=[f"{name}@example.org"]), tm, events.append)
    tm.commit()
    assert [to for _, to in mailer.sent] == [("bob@example.org",), ("dee@example.org",)]
    assert [type(e).__name__ for e in events] == ["MailSent", "MailFailed", "MailSent"]


def test_mailer_session_that_cannot_open_fails_each_message_with_its_id(tm, caplog):
    broken = ConnectionRefusedError("relay down")
    delivery = DirectMailDelivery(ScriptedMailer(session_error=broken))
    events: list[Any] = []
    tm.begin()
    messages = [envelope("one"), envelope("two")]
    for message in messages:
        delivery.send(message, tm, events.append)
    with caplog.at_level(logging.ERROR, "pyramid_sendmail"):
        tm.commit()
    assert [e.message_id for e in events] == [m.message_id for m in messages]
    assert all(isinstance(e, MailFailed) and e.error is broken for e in events)
    for message in messages:
        assert message.message_id in caplog.text


def test_partial_refusal_announces_sent_and_failed_recipients(tm):
    result = SendResult(
        accepted=("bob@example.org",),
        refused={"cy@example.org": (550, b"no such user")},
    )
    delivery = DirectMailDelivery(ScriptedMailer(result=result))
    events: list[Any] = []
    tm.begin()
    delivery.send(envelope(to=["bob@example.org", "cy@example.org"]), tm, events.append)
    tm.commit()
    sent, failed = events
    assert isinstance(sent, MailSent)
    assert sent.recipients == ("bob@example.org",)
    assert isinstance(failed, MailFailed)
    assert failed.recipients == ("cy@example.org",)
    assert failed.error.refused == {"cy@example.org": (550, b"no such user")}
    assert failed.error.temporary is False


@pytest.mark.parametrize(
    ("code", "temporary"), [(450, True), (550, False), (600, True), (-1, True)]
)
def test_partial_refusal_is_temporary_unless_the_reply_is_5xx(tm, code, temporary):
    result = SendResult(accepted=("bob@example.org",), refused={"cy@example.org": (code, b"x")})
    delivery = DirectMailDelivery(ScriptedMailer(result=result))
    events: list[Any] = []
    tm.begin()
    delivery.send(envelope(to=["bob@example.org", "cy@example.org"]), tm, events.append)
    tm.commit()
    _, failed = events
    assert failed.error.temporary is temporary


# --- where send() cannot join ----------------------------------------------


def test_send_from_after_commit_hook_raises_naming_send_immediately(delivery, mailer, tm):
    raised: list[BaseException] = []

    def hook(committed: bool) -> None:
        try:
            delivery.send(envelope("too late"), tm)
        except BaseException as exc:
            raised.append(exc)

    txn = tm.begin()
    txn.addAfterCommitHook(hook)
    delivery.send(envelope("in time"), tm)
    tm.commit()
    [error] = raised
    assert isinstance(error, TransactionStateError)
    assert "send_immediately" in str(error)
    assert "committed" in str(error)
    assert subjects(mailer) == ["in time"]


def test_send_on_explicit_manager_without_begin_raises(delivery, mailer, tm):
    with pytest.raises(TransactionStateError, match="send_immediately"):
        delivery.send(envelope(), tm)
    tm.begin()
    tm.commit()
    assert mailer.delivered == []


def test_send_after_failed_commit_raises(delivery, tm):
    txn = tm.begin()
    txn.join(OtherResource(tm, fail_vote=True))
    with pytest.raises(RuntimeError):
        tm.commit()
    with pytest.raises(TransactionStateError):
        delivery.send(envelope(), tm)
    tm.abort()
