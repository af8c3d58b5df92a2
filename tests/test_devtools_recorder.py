"""The recorder: each message's outcome, and the store's caps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import transaction
from devtools_app import DEVELOPMENT, make_app, rich_message
from pyramid.config import Configurator
from resources import OtherResource

from pyramid_sendmail import (
    MailDeferred,
    MailDeliveryError,
    MailFailed,
    MailSent,
    Message,
    get_mailer,
)
from pyramid_sendmail.components import IMailComponents
from pyramid_sendmail.devtools import get_devtools
from pyramid_sendmail.devtools.recorder import Record, Recorder, Store
from pyramid_sendmail.message import prepare
from pyramid_sendmail.testing import get_testing_mailer


def _envelope(size: int = 10) -> Any:
    return prepare(Message("s", ["a@example.org"], body="x" * size, sender="b@example.com"))


def test_store_keeps_at_most_max_messages_newest_first() -> None:
    store = Store(max_messages=2)
    records = [Record(_envelope(), "send", "sent") for _ in range(3)]
    for record in records:
        store.add(record)
    assert store.records() == [records[2], records[1]]
    assert store.get(records[0].key) is None
    assert store.by_message_id(records[0].envelope.message_id) is None


def test_store_keeps_within_max_bytes_but_always_the_newest() -> None:
    store = Store(max_bytes=5000)
    small = Record(_envelope(100), "send", "sent")
    large = Record(_envelope(20000), "send", "sent")
    store.add(small)
    store.add(large)
    assert store.records() == [large]
    assert store.bytes == large.size
    store.clear()
    assert store.records() == [] and store.bytes == 0


def _registry(tmp_path: Path, **settings: str) -> Any:
    config = Configurator(settings={**DEVELOPMENT, **settings})
    config.include("pyramid_sendmail.testing")
    config.commit()
    return config.registry


def _send(registry: Any, method: str = "send", finish: str = "commit") -> Record:
    manager = transaction.TransactionManager(explicit=True)
    manager.begin()
    mailer = get_mailer(registry)
    mailer.transaction_manager = manager
    getattr(mailer, method)(rich_message())
    if finish == "doom":
        manager.doom()
        manager.abort()
    elif finish == "abort":
        manager.abort()
    else:
        manager.commit()
    return get_devtools(registry).inbox.records()[0]  # type: ignore[union-attr]


def test_committed_message_is_sent(tmp_path: Path) -> None:
    record = _send(_registry(tmp_path))
    assert (record.outcome, record.detail) == ("sent", "accepted for 2 recipients")
    assert record.method == "send"


@pytest.mark.parametrize(
    ("finish", "detail"), [("abort", "transaction aborted"), ("doom", "transaction doomed")]
)
def test_message_of_transaction_that_did_not_commit_is_discarded(
    tmp_path: Path, finish: str, detail: str
) -> None:
    registry = _registry(tmp_path)
    record = _send(registry, finish=finish)
    assert (record.outcome, record.detail) == ("discarded", detail)
    assert get_testing_mailer(registry).delivered == []


def test_failed_delivery_shows_the_error(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    get_testing_mailer(registry).fail_with = MailDeliveryError("550 no such user", temporary=False)
    record = _send(registry)
    assert (record.outcome, record.detail) == ("failed", "permanent failure: 550 no such user")


def test_queued_message_waits_for_the_processor(tmp_path: Path) -> None:
    config = Configurator(settings={**DEVELOPMENT, "mail.queue_path": str(tmp_path / "q")})
    config.include("pyramid_sendmail")
    config.commit()
    record = _send(config.registry, "send_to_queue")
    assert record.outcome == "queued"
    assert record.method == "send_to_queue"


def test_send_immediately_is_recorded_with_its_outcome(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    mailer = get_mailer(registry)
    mailer.send_immediately(rich_message())
    record = get_devtools(registry).inbox.records()[0]  # type: ignore[union-attr]
    assert (record.method, record.outcome) == ("send_immediately", "sent")


def test_request_records_its_messages_and_origin() -> None:
    app = make_app()
    app.post("/send")
    app.post("/send", {"abort": "1"})
    devtools = get_devtools(app.app.registry)
    newest, oldest = devtools.inbox.records()  # type: ignore[union-attr]
    assert (oldest.outcome, newest.outcome) == ("sent", "discarded")
    assert oldest.origin == "POST /send"


def test_devtools_off_records_nothing_and_adds_no_hooks() -> None:
    config = Configurator(settings={"mail.mailer": "console"})
    config.include("pyramid_sendmail.testing")
    config.commit()
    assert config.registry.getUtility(IMailComponents).recorder is None
    assert get_devtools(config.registry) is None
    manager = transaction.TransactionManager(explicit=True)
    txn = manager.begin()
    mailer = get_mailer(config.registry)
    mailer.transaction_manager = manager
    mailer.send(rich_message())
    # The delivery's own hook only.
    assert len(list(txn.getAfterCommitHooks())) == 1
    assert list(txn.getAfterAbortHooks()) == []
    manager.abort()


def _recorded() -> tuple[Recorder, Record]:
    recorder = Recorder(Store(), lambda: False)
    record = Record(_envelope(), "send", "queued")
    recorder.store.add(record)
    return recorder, record


def test_processor_events_settle_a_queued_message() -> None:
    recorder, record = _recorded()
    error = MailDeliveryError("451 try later", temporary=True)
    recorder.on_event(MailDeferred(record.envelope, error, retry_at=0.0))
    assert record.outcome == "deferred" and "451 try later; next attempt at" in record.detail
    recorder.on_event(MailSent(record.envelope))
    assert (record.outcome, record.detail) == ("sent", "accepted for 1 recipient")


def test_refusal_after_partial_acceptance_keeps_it_sent_and_names_the_refused() -> None:
    recorder, record = _recorded()
    recorder.on_event(MailSent(record.envelope))
    refused = MailDeliveryError("550 no", temporary=False)
    recorder.on_event(MailFailed(record.envelope, refused, ["a@example.org"]))
    assert record.outcome == "sent"
    assert record.detail.endswith("refused for a@example.org: permanent failure: 550 no")


def test_events_about_other_messages_are_ignored() -> None:
    recorder, record = _recorded()
    recorder.on_event(MailSent(_envelope()))
    assert record.outcome == "queued"


def test_commit_that_fails_discards_the_message(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    manager = transaction.TransactionManager(explicit=True)
    txn = manager.begin()
    mailer = get_mailer(registry)
    mailer.transaction_manager = manager
    mailer.send(rich_message())
    txn.join(OtherResource(manager, fail_vote=True))
    with pytest.raises(RuntimeError):
        manager.commit()
    manager.abort()
    record = get_devtools(registry).inbox.records()[0]  # type: ignore[union-attr]
    assert (record.outcome, record.detail) == ("discarded", "the commit failed")
    assert get_testing_mailer(registry).delivered == []


def test_message_cancelled_by_a_mail_sending_subscriber_is_in_the_inbox() -> None:
    from pyramid_sendmail import MailSending

    def configure(config: Configurator) -> None:
        config.add_subscriber(lambda event: event.cancel("unsubscribed"), MailSending)

    app = make_app(configure=configure)
    message_id = app.post("/send").text
    [record] = get_devtools(app.app.registry).inbox.records()  # type: ignore[union-attr]
    assert (record.outcome, record.detail) == ("cancelled", "unsubscribed")
    assert record.envelope.message_id == message_id
    assert record.origin == "POST /send"
