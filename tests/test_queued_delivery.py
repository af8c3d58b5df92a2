"""Queued delivery: a message is written into the queue as part of the commit."""

from __future__ import annotations

import errno
import os
import signal
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import transaction
from pyramid.config import Configurator
from recording_server import queue_files
from resources import OtherResource
from transaction.interfaces import DoomedTransaction
from zope.interface.verify import verifyObject

from pyramid_sendmail import Message, QueuedMailDelivery, RequestMailer, SMTPMailer
from pyramid_sendmail.interfaces import IQueuedMailDelivery
from pyramid_sendmail.message import Envelope, prepare
from pyramid_sendmail.processor import QueueProcessor
from pyramid_sendmail.queue import MaildirQueue

try:
    import resource
except ImportError:  # pragma: no cover (not on Windows)
    resource = None  # type: ignore[assignment]


def envelope(subject: str = "Hello", to: Sequence[str] = ("bob@example.org",)) -> Envelope:
    return prepare(
        Message(subject=subject, sender="ann@example.org", recipients=list(to), body="Hi\n")
    )


def listing(queue: MaildirQueue) -> dict[str, list[str]]:
    return queue_files(Path(queue.path))


class DatabaseResource(OtherResource):
    """A database that votes after us and looks at the queue when it does."""

    def __init__(self, manager: Any, queue: MaildirQueue, fail_vote: bool = False) -> None:
        super().__init__(manager, fail_vote, key="z_sqlalchemy")
        self.queue = queue
        self.seen_at_vote: dict[str, list[str]] = {}

    def voting(self) -> None:
        self.seen_at_vote = listing(self.queue)


def queued_subjects(queue: MaildirQueue) -> list[str]:
    return sorted(str(entry.envelope.message["Subject"]) for entry in queue.list("new"))


class FullDiskQueue(MaildirQueue):
    """A queue whose disk fills up after *room* more files.

    A real full disk cannot be produced on demand; this fails the write the
    way the operating system would.
    """

    room = 0

    def _write(self, path: str, data: bytes) -> None:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        self.room -= 1
        super()._write(path, data)


@pytest.fixture
def tm() -> transaction.TransactionManager:
    return transaction.TransactionManager(explicit=True)


@pytest.fixture
def queue(tmp_path: Path) -> MaildirQueue:
    return MaildirQueue(str(tmp_path / "queue"))


@pytest.fixture
def delivery(queue: MaildirQueue) -> QueuedMailDelivery:
    return QueuedMailDelivery(queue)


EMPTY = {"tmp": [], "new": [], "cur": [], "failed": []}


def test_queued_delivery_provides_its_interface(delivery: QueuedMailDelivery) -> None:
    assert verifyObject(IQueuedMailDelivery, delivery)


def test_commit_publishes_message_into_new(
    delivery: QueuedMailDelivery, queue: MaildirQueue, tm: transaction.TransactionManager
) -> None:
    tm.begin()
    mail = envelope()
    assert delivery.send(mail, tm) == mail.message_id
    assert listing(queue) == EMPTY
    tm.commit()

    files = listing(queue)
    assert len(files["new"]) == 1
    assert files["tmp"] == []
    path = os.path.join(queue.new, files["new"][0])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    [entry] = queue.list("new")
    assert entry.envelope.data == mail.data


def test_abort_discards_queued_message(
    delivery: QueuedMailDelivery, queue: MaildirQueue, tm: transaction.TransactionManager
) -> None:
    tm.begin()
    delivery.send(envelope(), tm)
    tm.abort()

    assert listing(queue) == EMPTY


def test_doomed_transaction_queues_nothing(
    delivery: QueuedMailDelivery, queue: MaildirQueue, tm: transaction.TransactionManager
) -> None:
    tm.begin()
    delivery.send(envelope("before doom"), tm)
    tm.doom()
    delivery.send(envelope("after doom"), tm)
    with pytest.raises(DoomedTransaction):
        tm.commit()
    tm.abort()

    assert listing(queue) == EMPTY


def test_savepoint_rollback_forgets_later_messages(
    delivery: QueuedMailDelivery, queue: MaildirQueue, tm: transaction.TransactionManager
) -> None:
    tm.begin()
    delivery.send(envelope("kept"), tm)
    savepoint = tm.savepoint()
    delivery.send(envelope("rolled back"), tm)
    savepoint.rollback()
    delivery.send(envelope("also kept"), tm)
    tm.commit()

    assert queued_subjects(queue) == ["also kept", "kept"]


def test_next_transaction_queues_only_its_own_messages(
    delivery: QueuedMailDelivery, queue: MaildirQueue, tm: transaction.TransactionManager
) -> None:
    tm.begin()
    delivery.send(envelope("first"), tm)
    tm.commit()
    tm.begin()
    delivery.send(envelope("second"), tm)
    tm.abort()
    tm.begin()
    delivery.send(envelope("third"), tm)
    tm.commit()

    assert queued_subjects(queue) == ["first", "third"]


def test_message_is_written_at_vote_before_the_database_and_published_at_finish(
    delivery: QueuedMailDelivery, queue: MaildirQueue, tm: transaction.TransactionManager
) -> None:
    database = DatabaseResource(tm, queue)
    tm.begin()
    tm.get().join(database)
    delivery.send(envelope(), tm)
    tm.commit()

    # When the database voted (and committed), the file was on disk in tmp/.
    assert len(database.seen_at_vote["tmp"]) == 1
    assert database.seen_at_vote["new"] == []
    assert listing(queue)["new"] == database.seen_at_vote["tmp"]
    assert listing(queue)["tmp"] == []


def test_failed_vote_of_another_resource_publishes_nothing(
    delivery: QueuedMailDelivery, queue: MaildirQueue, tm: transaction.TransactionManager
) -> None:
    database = DatabaseResource(tm, queue, fail_vote=True)
    tm.begin()
    tm.get().join(database)
    delivery.send(envelope(), tm)
    with pytest.raises(RuntimeError, match="refused to commit"):
        tm.commit()
    tm.abort()

    assert len(database.seen_at_vote["tmp"]) == 1
    assert listing(queue) == EMPTY


def test_full_disk_at_vote_aborts_the_transaction_cleanly(
    tm: transaction.TransactionManager, tmp_path: Path
) -> None:
    queue = FullDiskQueue(str(tmp_path / "queue"))
    delivery = QueuedMailDelivery(queue)
    queue.room = 1
    earlier = queue.add(envelope("queued earlier"))
    earlier_bytes = Path(queue.new, earlier).read_bytes()
    queue.room = 2
    database = DatabaseResource(tm, queue)

    tm.begin()
    tm.get().join(database)
    for subject in ("one", "two", "three"):
        delivery.send(envelope(subject), tm)
    with pytest.raises(OSError) as raised:
        tm.commit()
    tm.abort()

    assert raised.value.errno == errno.ENOSPC
    assert "tpc_vote" not in database.calls
    assert "tpc_finish" not in database.calls
    assert listing(queue) == {**EMPTY, "new": [earlier]}
    assert Path(queue.new, earlier).read_bytes() == earlier_bytes

    # Once there is room again, the next transaction queues as usual.
    queue.room = 10
    tm.begin()
    delivery.send(envelope("after cleanup"), tm)
    tm.commit()
    assert queued_subjects(queue) == ["after cleanup", "queued earlier"]


@pytest.mark.skipif(resource is None, reason="needs setrlimit")
def test_write_failing_midway_leaves_nothing_half_written(
    delivery: QueuedMailDelivery, queue: MaildirQueue, tm: transaction.TransactionManager
) -> None:
    # A real kernel write error part-way through the file: the file size
    # limit lets the first write through short, then refuses (EFBIG).
    big = prepare(
        Message(
            subject="big",
            sender="ann@example.org",
            recipients=["bob@example.org"],
            body="x" * 70 + "\n" + "y" * 300_000,
        )
    )
    limit = 64 * 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    tm.begin()
    delivery.send(envelope("small"), tm)
    delivery.send(big, tm)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        with pytest.raises(OSError) as raised:
            tm.commit()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    tm.abort()

    assert raised.value.errno == errno.EFBIG
    assert listing(queue) == EMPTY


def test_commit_wakes_the_processor_only_when_mail_was_published(
    queue: MaildirQueue, tm: transaction.TransactionManager
) -> None:
    wakes: list[None] = []
    delivery = QueuedMailDelivery(queue, on_publish=lambda: wakes.append(None))

    tm.begin()
    delivery.send(envelope("aborted"), tm)
    tm.abort()
    tm.begin()
    savepoint = tm.savepoint()
    delivery.send(envelope("rolled back"), tm)
    savepoint.rollback()
    tm.commit()
    assert wakes == []

    tm.begin()
    delivery.send(envelope("one"), tm)
    delivery.send(envelope("two"), tm)
    tm.commit()
    assert wakes == [None]


def test_envelope_and_bytes_reach_the_server_exactly_as_queued(
    delivery: QueuedMailDelivery,
    queue: MaildirQueue,
    tm: transaction.TransactionManager,
    smtp_server: Any,
) -> None:
    mail = prepare(
        Message(
            subject="Grüße, Freunde",
            sender="Jörg Müller <jörg@exämple.org>",
            recipients=['"Doe, John" <john@example.org>', "Zoë <zoë@exämple.de>"],
            cc=['"Roe, Jane Q." <jane@example.com>'],
            bcc=["secret@example.net"],
            body="Hallo\n.\n..two dots\nFrom the start\n",
        )
    )
    tm.begin()
    delivery.send(mail, tm)
    tm.commit()

    processor = QueueProcessor(
        queue, SMTPMailer(smtp_server.host, smtp_server.port), notify=lambda event: None
    )
    processor.process_once()

    [received] = smtp_server.messages
    assert received.sender == "jörg@exämple.org"
    assert received.recipients == (
        "john@example.org",
        "zoë@exämple.de",
        "jane@example.com",
        "secret@example.net",
    )
    assert "SMTPUTF8" in received.mail_options
    assert received.data == mail.data
    assert b'To: "Doe, John" <john@example.org>, Zo' in received.data
    assert b"secret@example.net" not in received.data
    # CRLF line ends only, as SMTP wants them.
    assert b"\n" not in received.data.replace(b"\r\n", b"")
    assert listing(queue) == EMPTY


@pytest.fixture
def registry(tmp_path: Path) -> Any:
    config = Configurator(
        settings={
            "mail.queue_path": str(tmp_path / "queue"),
            "mail.default_sender": "app@example.org",
        }
    )
    config.include("pyramid_sendmail")
    config.commit()
    return config.registry


def test_send_to_queue_immediately_writes_at_once_without_a_transaction(
    registry: Any, tm: transaction.TransactionManager
) -> None:
    mailer = RequestMailer(registry, tm)
    message_id = mailer.send_to_queue_immediately(
        Message(subject="now", recipients=["bob@example.org"], body="Hi")
    )

    queue = mailer.components.queued_delivery.queue  # type: ignore[union-attr]
    [entry] = queue.list("new")
    assert entry.envelope.message_id == message_id
    assert entry.envelope.sender == "app@example.org"
    assert listing(queue)["tmp"] == []


def test_send_to_queue_immediately_ignores_the_transaction_outcome(
    registry: Any, tm: transaction.TransactionManager
) -> None:
    mailer = RequestMailer(registry, tm)
    tm.begin()
    mailer.send_to_queue(Message(subject="with the transaction", recipients=["a@example.org"]))
    mailer.send_to_queue_immediately(Message(subject="regardless", recipients=["b@example.org"]))
    tm.abort()

    queue = mailer.components.queued_delivery.queue  # type: ignore[union-attr]
    assert queued_subjects(queue) == ["regardless"]
