"""The queue processor against a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import transaction
from clock import Clock
from pyramid.config import Configurator
from pyramid.threadlocal import get_current_registry
from resources import OtherResource
from slow_relay import SlowRelay
from zope.interface.verify import verifyObject

from pyramid_sendmail import Message, SMTPMailer
from pyramid_sendmail.events import MailDeferred, MailFailed, MailSent
from pyramid_sendmail.interfaces import (
    IMailDeferredEvent,
    IMailErrorEvent,
    IMailEvent,
    IMailQueueProcessor,
    IMailSentEvent,
)
from pyramid_sendmail.message import Envelope, prepare
from pyramid_sendmail.processor import QueueProcessor
from pyramid_sendmail.queue import STALE_TMP_AGE, MaildirQueue
from pyramid_sendmail.ratelimit import RateLimit

RETRY_MIN = 60.0
RETRY_MAX = 3600.0
MAX_AGE = 5 * 24 * 3600.0


def envelope(
    subject: str = "Hello", to: Sequence[str] = ("bob@example.org",), body: str = "Hi\n"
) -> Envelope:
    return prepare(
        Message(subject=subject, sender="ann@example.org", recipients=list(to), body=body)
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listing(queue: MaildirQueue) -> dict[str, list[str]]:
    """The messages in each folder, without the due or claim time in their names."""
    return {
        sub: sorted(
            n.partition(",")[0] for n in os.listdir(os.path.join(queue.path, sub)) if n[0] != "."
        )
        for sub in ("tmp", "new", "cur", "failed")
    }


def of_kind(events: list[Any], kind: type) -> list[Any]:
    return [event for event in events if isinstance(event, kind)]


@pytest.fixture
def events() -> list[Any]:
    return []


@pytest.fixture
def processor_for(queue: MaildirQueue, clock: Clock, events: list[Any]) -> Any:
    def make(server: Any = None, mailer: Any = None, **options: Any) -> QueueProcessor:
        if mailer is None:
            mailer = SMTPMailer(server.host, server.port, timeout=5.0)
        options.setdefault("workers", 1)
        return QueueProcessor(
            queue,
            mailer,
            retry_min=RETRY_MIN,
            retry_max=RETRY_MAX,
            max_age=MAX_AGE,
            notify=events.append,
            clock=clock,
            **options,
        )

    return make


def test_processor_provides_its_interface(processor_for: Any, smtp_server: Any) -> None:
    assert verifyObject(IMailQueueProcessor, processor_for(smtp_server))


# -- delivery ---------------------------------------------------------------


def test_pass_delivers_due_messages_and_removes_their_files(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any, events: list[Any]
) -> None:
    mails = [envelope(subject=f"message {i}", to=[f"u{i}@example.org"]) for i in range(3)]
    for mail in mails:
        queue.add(mail)

    handled = processor_for(smtp_server).process_once()

    assert handled == 3
    assert [m.data for m in smtp_server.messages] == [mail.data for mail in mails]
    assert [m.recipients for m in smtp_server.messages] == [mail.recipients for mail in mails]
    assert listing(queue) == {"tmp": [], "new": [], "cur": [], "failed": []}
    assert [type(e) for e in events] == [MailSent] * 3
    assert all(IMailSentEvent.providedBy(e) for e in events)
    assert [e.message_id for e in events] == [mail.message_id for mail in mails]
    assert [e.recipients for e in events] == [mail.recipients for mail in mails]


def test_progress_is_reported_after_each_message(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any
) -> None:
    for i in range(3):
        queue.add(envelope(subject=str(i)))
    progress: list[tuple[int, int]] = []

    processor_for(smtp_server).process_once(lambda done, total: progress.append((done, total)))

    assert progress == [(1, 3), (2, 3), (3, 3)]


def test_many_messages_go_over_few_connections(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any
) -> None:
    for i in range(10):
        queue.add(envelope(subject=f"message {i}"))

    processor_for(smtp_server, batch_size=4, workers=1).process_once()

    assert len(smtp_server.messages) == 10
    assert smtp_server.messages_per_connection == [4, 4, 2]


def test_several_workers_share_the_queue_without_duplicates(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any
) -> None:
    mails = [envelope(subject=f"message {i}") for i in range(24)]
    for mail in mails:
        queue.add(mail)

    processor_for(smtp_server, workers=3).process_once()

    received = sorted(m.data for m in smtp_server.messages)
    assert received == sorted(mail.data for mail in mails)
    assert 1 <= smtp_server.connections <= 3
    assert listing(queue)["new"] == []


def test_a_relay_that_keeps_the_first_worker_waiting_gets_more_connections(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any
) -> None:
    smtp_server.faults.delay = 0.02
    for i in range(12):
        queue.add(envelope(subject=f"message {i}"))

    processor_for(smtp_server, workers=3).process_once()

    assert len(smtp_server.messages) == 12
    # The first worker waited: the two others joined it, each on its own
    # connection, and shared the rest.
    assert smtp_server.connections == 3
    assert listing(queue)["new"] == []


@pytest.mark.parametrize("threads", [False, True], ids=["one-thread", "worker-threads"])
def test_a_relay_that_limits_connections_gets_the_mail_over_those_it_takes(
    queue: MaildirQueue,
    processor_for: Any,
    smtp_server: Any,
    events: list[Any],
    caplog: pytest.LogCaptureFixture,
    threads: bool,
) -> None:
    # Two connections a client, as Postfix's smtpd_client_connection_count_limit.
    smtp_server.faults.connection_limit = 2
    for i in range(20):
        queue.add(envelope(subject=f"message {i}"))
    # A rate limit keeps the worker threads (see QueueProcessor._multiplexed).
    options = {"rate_limit": RateLimit(100_000, 1.0)} if threads else {}
    processor = processor_for(smtp_server, workers=4, **options)

    with caplog.at_level(logging.WARNING, logger="pyramid_sendmail"):
        assert processor.process_once() == 20

    assert len(smtp_server.messages) == 20
    assert not processor.relay_was_down
    assert processor.last_pass["deferred"] == 0
    assert [type(e) for e in events] == [MailSent] * 20
    assert "the relay took 2 of 4 connections" in caplog.text
    assert "too many connections" in caplog.text
    assert listing(queue)["new"] == []


def test_recipients_over_the_relays_limit_go_in_the_next_transactions_of_the_pass(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any, events: list[Any]
) -> None:
    smtp_server.faults.recipient_limit = 3
    recipients = [f"r{i}@example.org" for i in range(8)]
    queue.add(envelope(to=recipients))

    processor = processor_for(smtp_server)
    assert processor.process_once() == 1

    # Three transactions of 3, 3 and 2 recipients, each address once.
    assert [m.recipients for m in smtp_server.messages] == [
        tuple(recipients[:3]),
        tuple(recipients[3:6]),
        tuple(recipients[6:]),
    ]
    assert processor.last_pass["sent"] == 1
    assert processor.last_pass["deferred"] == processor.last_pass["partly_sent"] == 0
    assert listing(queue)["new"] == []
    sent = of_kind(events, MailSent)
    assert sorted(r for e in sent for r in e.recipients) == sorted(recipients)


def test_a_relay_refusing_every_recipient_for_their_number_is_not_retried_at_once(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any, clock: Clock
) -> None:
    smtp_server.faults.recipient_limit = 0
    queue.add(envelope(to=["a@example.org", "b@example.org"]))

    processor = processor_for(smtp_server)
    processor.process_once()

    # No recipient was taken: an ordinary deferral, with its backoff.
    assert smtp_server.messages == []
    assert processor.last_pass["deferred"] == 1
    [entry] = queue.list("new")
    assert entry.attempts == 1
    assert queue.claimable(clock.now) == []


def test_mail_queued_during_a_pass_is_delivered_in_the_same_pass(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any, events: list[Any]
) -> None:
    queue.add(envelope(subject="first"))

    def queue_another(event: Any) -> None:
        events.append(event)
        if len(events) == 1:
            queue.add(envelope(subject="queued meanwhile"))

    processor = processor_for(smtp_server)
    processor.notify = queue_another
    assert processor.process_once() == 2
    assert len(smtp_server.messages) == 2


def test_stopping_processor_takes_no_further_message(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any
) -> None:
    for i in range(3):
        queue.add(envelope(subject=str(i)))
    processor = processor_for(smtp_server)

    def stop_after_first(event: Any) -> None:
        processor.stopping.set()

    processor.notify = stop_after_first
    processor.process_once()

    # The first message's outcome stops the pass. With pipelining the next
    # message's envelope went out with the first one's data, so it was
    # already taken and is finished; nothing is taken after the stop.
    assert len(smtp_server.messages) == 2
    assert len(listing(queue)["new"]) == 1
    assert listing(queue)["cur"] == []


# -- temporary failures -----------------------------------------------------

TEMPORARY_FAULTS = [
    ("mail", "421 4.3.2 Service shutting down"),
    ("mail", "450 4.2.0 Mailbox busy"),
    ("mail", "451 4.3.0 Local error, try later"),
    ("mail", "452 4.3.1 Insufficient storage"),
    ("data_end", "451 4.3.0 Try again later"),
    ("data_end", "452 4.3.1 Out of space"),
]


@pytest.mark.parametrize(("where", "reply"), TEMPORARY_FAULTS)
def test_temporary_reply_defers_and_retries_only_when_due(
    queue: MaildirQueue,
    processor_for: Any,
    smtp_server: Any,
    events: list[Any],
    clock: Clock,
    where: str,
    reply: str,
) -> None:
    mail = envelope()
    queued_at = clock.now
    queue.add(mail)
    processor = processor_for(smtp_server)
    setattr(smtp_server.faults, where, reply)

    attempted_at = clock.advance(5)
    processor.process_once()

    assert smtp_server.messages == []
    [deferred] = events
    assert isinstance(deferred, MailDeferred)
    assert IMailDeferredEvent.providedBy(deferred)
    assert deferred.message_id == mail.message_id
    assert deferred.recipients == mail.recipients
    assert deferred.retry_at == attempted_at + RETRY_MIN
    assert reply.split(" ", 2)[2] in str(deferred.error)
    [entry] = queue.list("new")
    assert entry.attempts == 1
    assert entry.queued_at == queued_at
    assert reply.split(" ", 2)[2] in (entry.error or "")
    assert listing(queue)["failed"] == []

    # Not before it is due: no connection at all.
    setattr(smtp_server.faults, where, None)
    connections = smtp_server.connections
    clock.advance(RETRY_MIN - 1)
    assert processor.process_once() == 0
    assert smtp_server.connections == connections

    clock.advance(1)
    processor.process_once()
    [received] = smtp_server.messages
    assert received.data == mail.data
    assert isinstance(events[-1], MailSent)
    assert listing(queue)["new"] == []


def test_backoff_grows_with_the_age_of_the_message_up_to_retry_max(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any, events: list[Any], clock: Clock
) -> None:
    queued_at = clock.now
    queue.add(envelope())
    processor = processor_for(smtp_server)
    smtp_server.faults.mail = "451 4.3.0 Try later"

    waits = []
    attempt_at = clock.advance(5)
    for attempt in range(1, 10):
        processor.process_once()
        event = events[-1]
        assert isinstance(event, MailDeferred)
        age = attempt_at - queued_at
        assert event.retry_at - attempt_at == min(max(age, RETRY_MIN), RETRY_MAX)
        [entry] = queue.list("new")
        assert entry.attempts == attempt
        waits.append(event.retry_at - attempt_at)
        attempt_at = clock.advance(event.retry_at - attempt_at)

    assert waits[0] == RETRY_MIN
    assert waits[1] > RETRY_MIN
    assert waits[-1] == RETRY_MAX
    assert smtp_server.messages == []


def test_message_older_than_max_age_that_fails_temporarily_goes_to_failed(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any, events: list[Any], clock: Clock
) -> None:
    mail = envelope()
    queue.add(mail)
    smtp_server.faults.mail = "451 4.3.0 Try later"
    clock.advance(MAX_AGE + 1)

    processor_for(smtp_server).process_once()

    [failed_event] = events
    assert isinstance(failed_event, MailFailed)
    assert failed_event.recipients == mail.recipients
    assert not failed_event.error.temporary
    assert listing(queue)["new"] == []
    [entry] = queue.list("failed")
    assert "Try later" in (entry.error or "")
    assert entry.envelope.data == mail.data


def test_giving_up_at_max_age_logs_a_warning(
    queue: MaildirQueue,
    processor_for: Any,
    smtp_server: Any,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = queue.add(envelope())
    smtp_server.faults.mail = "451 4.3.0 Try later"
    clock.advance(MAX_AGE + 1)

    with caplog.at_level(logging.WARNING, logger="pyramid_sendmail.processor"):
        processor_for(smtp_server).process_once()

    [record] = [r for r in caplog.records if "giving up" in r.getMessage()]
    assert record.name == "pyramid_sendmail.processor"
    assert name in record.getMessage()
    assert "Try later" in record.getMessage()


def test_connection_dropped_mid_data_defers(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any, events: list[Any], clock: Clock
) -> None:
    mail = envelope(body="a longer message\n" * 200)
    queue.add(mail)
    processor = processor_for(smtp_server)
    smtp_server.faults.drop_in_data = True

    processor.process_once()

    assert smtp_server.messages == []
    assert [type(e) for e in events] == [MailDeferred]
    assert len(listing(queue)["new"]) == 1

    smtp_server.faults.drop_in_data = False
    clock.advance(RETRY_MIN)
    processor.process_once()
    [received] = smtp_server.messages
    assert received.data == mail.data


def test_server_down_keeps_every_message_queued(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any, events: list[Any], clock: Clock
) -> None:
    mails = [envelope(subject=f"message {i}") for i in range(3)]
    for mail in mails:
        queue.add(mail)
    down = SMTPMailer("127.0.0.1", closed_port(), timeout=5.0)

    processor_for(mailer=down, workers=2).process_once()

    files = listing(queue)
    assert len(files["new"]) == 3
    assert files["cur"] == files["failed"] == files["tmp"] == []
    # A refused connection is temporary: the message in hand (one per
    # worker) is deferred with backoff; the pass then stops instead of
    # trying every message, and the rest stay queued and due.
    assert events and all(isinstance(e, MailDeferred) for e in events)
    assert len(events) <= 2
    entries = queue.list("new")
    assert sorted(e.attempts for e in entries) == [0] * (3 - len(events)) + [1] * len(events)
    assert sorted(e.envelope.data for e in entries) == sorted(m.data for m in mails)

    # Once the relay is back, every message is delivered exactly once.
    clock.advance(RETRY_MIN)
    processor_for(smtp_server).process_once()
    assert sorted(m.data for m in smtp_server.messages) == sorted(m.data for m in mails)
    assert listing(queue)["new"] == []


def test_relay_down_past_max_age_fails_the_message(
    queue: MaildirQueue, processor_for: Any, events: list[Any], clock: Clock
) -> None:
    queue.add(envelope())
    clock.advance(MAX_AGE + 1)

    processor_for(mailer=SMTPMailer("127.0.0.1", closed_port(), timeout=5.0)).process_once()

    assert [type(e) for e in events] == [MailFailed]
    files = listing(queue)
    assert files["new"] == files["cur"] == []
    assert len(files["failed"]) == 1


def test_wrong_password_is_temporary(
    queue: MaildirQueue, processor_for: Any, tls_smtp_server: Any, events: list[Any], clock: Clock
) -> None:
    server = tls_smtp_server
    mail = envelope()
    queue.add(mail)

    def mailer(password: str) -> SMTPMailer:
        return SMTPMailer(
            server.host,
            server.port,
            username=server.username,
            password=password,
            tls=True,
            cafile=server.cafile,
            timeout=5.0,
        )

    processor_for(mailer=mailer("not-the-password")).process_once()

    # A rejected login is temporary, not a reason to fail the message: it is
    # deferred, and the password is written nowhere.
    assert [type(e) for e in events] == [MailDeferred]
    assert listing(queue)["failed"] == []
    [entry] = queue.list("new")
    assert entry.attempts == 1
    assert "not-the-password" not in (entry.error or "")

    clock.advance(RETRY_MIN)
    processor_for(mailer=mailer(server.password)).process_once()
    [received] = server.messages
    assert received.login == server.username
    assert received.data == mail.data


# -- permanent failures -----------------------------------------------------


@pytest.mark.parametrize(
    ("where", "reply"),
    [
        ("mail", "550 5.7.1 Sender rejected"),
        ("mail", "554 5.7.1 Relay access denied"),
        ("data_end", "554 5.7.1 Rejected as spam"),
    ],
)
def test_permanent_reply_moves_the_message_to_failed_with_the_error(
    queue: MaildirQueue,
    processor_for: Any,
    smtp_server: Any,
    events: list[Any],
    where: str,
    reply: str,
) -> None:
    mail = envelope(to=["bob@example.org", "carol@example.org"])
    queue.add(mail)
    setattr(smtp_server.faults, where, reply)

    processor_for(smtp_server).process_once()

    [failed_event] = events
    assert isinstance(failed_event, MailFailed)
    assert IMailErrorEvent.providedBy(failed_event)
    assert failed_event.recipients == mail.recipients
    assert reply.split(" ", 2)[2] in str(failed_event.error)
    files = listing(queue)
    assert files["new"] == files["cur"] == files["tmp"] == []
    [entry] = queue.list("failed")
    assert reply.split(" ", 2)[2] in (entry.error or "")
    assert entry.envelope.recipients == mail.recipients
    assert entry.envelope.data == mail.data


def test_recipient_refused_permanently_fails_with_the_servers_words(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any, events: list[Any]
) -> None:
    queue.add(envelope(to=["nobody@example.org"]))
    smtp_server.faults.rcpt = {"nobody@example.org": "550 5.1.1 No such user here"}

    processor_for(smtp_server).process_once()

    assert [type(e) for e in events] == [MailFailed]
    [entry] = queue.list("failed")
    assert "No such user here" in (entry.error or "")


def test_partial_refusal_never_sends_to_accepted_recipients_again(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any, events: list[Any], clock: Clock
) -> None:
    ann, bob, cy = "ann@example.org", "bob@example.org", "cy@example.org"
    mail = envelope(to=[ann, bob, cy])
    queue.add(mail)
    processor = processor_for(smtp_server)
    smtp_server.faults.rcpt = {bob: "450 4.2.1 Mailbox busy", cy: "550 5.1.1 No such user"}

    processor.process_once()

    [first] = smtp_server.messages
    assert first.recipients == (ann,)
    sent, failed, deferred = (
        of_kind(events, MailSent),
        of_kind(events, MailFailed),
        of_kind(events, MailDeferred),
    )
    assert [e.recipients for e in sent] == [(ann,)]
    assert [e.recipients for e in failed] == [(cy,)]
    assert [e.recipients for e in deferred] == [(bob,)]
    [dead] = queue.list("failed")
    assert dead.envelope.recipients == (cy,)
    assert "No such user" in (dead.error or "")
    [waiting] = queue.list("new")
    assert waiting.envelope.recipients == (bob,)
    assert waiting.attempts == 1
    assert "Mailbox busy" in (waiting.error or "")

    smtp_server.faults.rcpt = {}
    clock.advance(RETRY_MIN)
    processor.process_once()

    assert [m.recipients for m in smtp_server.messages] == [(ann,), (bob,)]
    assert smtp_server.messages[1].data == mail.data
    assert listing(queue)["new"] == []
    assert [e.recipients for e in of_kind(events, MailSent)] == [(ann,), (bob,)]


def test_all_recipients_refused_for_now_or_for_good_are_split(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any, events: list[Any]
) -> None:
    bob, cy = "bob@example.org", "cy@example.org"
    queue.add(envelope(to=[bob, cy]))
    smtp_server.faults.rcpt = {bob: "450 4.2.1 Mailbox busy", cy: "550 5.1.1 No such user"}

    processor_for(smtp_server).process_once()

    assert smtp_server.messages == []
    assert [e.recipients for e in of_kind(events, MailFailed)] == [(cy,)]
    assert [e.recipients for e in of_kind(events, MailDeferred)] == [(bob,)]
    assert [e.envelope.recipients for e in queue.list("failed")] == [(cy,)]
    assert [e.envelope.recipients for e in queue.list("new")] == [(bob,)]


# -- a damaged queue --------------------------------------------------------


def test_corrupt_file_goes_to_failed_and_the_rest_is_delivered(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any
) -> None:
    names = [queue.add(envelope(subject=f"message {i}")) for i in range(3)]
    Path(queue.new, names[1]).write_bytes(b"X-Pyramid-Sendmail-Id: broken")

    processor_for(smtp_server).process_once()

    assert len(smtp_server.messages) == 2
    assert listing(queue)["failed"] == [names[1]]
    reason = Path(queue.failed, f".{names[1]}.error").read_text()
    assert "corrupt" in reason
    assert listing(queue)["new"] == []


def test_corrupt_file_set_aside_is_logged_and_counted_in_the_pass(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    names = [queue.add(envelope(subject=f"message {i}")) for i in range(2)]
    Path(queue.new, names[1]).write_bytes(b"X-Pyramid-Sendmail-Id: broken")
    processor = processor_for(smtp_server)

    with caplog.at_level(logging.WARNING, logger="pyramid_sendmail"):
        processor.process_once()

    assert processor.last_pass["sent"] == 1
    assert processor.last_pass["set_aside"] == 1
    [record] = [r for r in caplog.records if r.name == "pyramid_sendmail.queue.maildir"]
    assert record.levelno == logging.WARNING
    assert names[1] in record.getMessage()
    assert "not terminated" in record.getMessage()


def test_recovered_stale_claim_is_logged_counted_and_delivered(
    queue: MaildirQueue,
    processor_for: Any,
    smtp_server: Any,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = queue.add(envelope())
    queue.claim(name)  # ... and its processor died
    clock.advance(601)
    processor = processor_for(smtp_server)

    with caplog.at_level(logging.WARNING, logger="pyramid_sendmail"):
        processor.process_once()

    assert processor.last_pass["recovered"] == 1
    assert processor.last_pass["sent"] == 1
    assert len(smtp_server.messages) == 1
    assert any(name in r.getMessage() and "stale claim" in r.getMessage() for r in caplog.records)


def test_truncated_file_is_never_delivered(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any
) -> None:
    name = queue.add(envelope(body="the end of this message matters\n" * 20))
    path = Path(queue.new, name)
    path.write_bytes(path.read_bytes()[:-100])
    good = envelope(subject="intact")
    queue.add(good)

    processor_for(smtp_server).process_once()

    assert [m.data for m in smtp_server.messages] == [good.data]
    assert listing(queue)["failed"] == [name]


def test_claim_left_by_a_dead_processor_is_delivered_after_the_timeout(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any, clock: Clock
) -> None:
    abandoned = queue.add(envelope(subject="abandoned"))
    queue.claim(abandoned)  # and the processor was killed
    clock.advance(300)
    in_hand = queue.add(envelope(subject="in another processor's hands"))
    queue.claim(in_hand)
    processor = processor_for(smtp_server)

    processor.process_once()
    assert smtp_server.messages == []

    clock.advance(301)
    processor.process_once()

    [received] = smtp_server.messages
    assert b"Subject: abandoned" in received.data
    assert listing(queue)["cur"] == [in_hand]


class FullDiskQueue(MaildirQueue):
    """A queue whose disk is full while :attr:`full` is set.

    A real full disk cannot be produced on demand; this fails the write the
    way the operating system would.
    """

    full = False

    def _write(self, path: str, data: bytes) -> None:
        if self.full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        super()._write(path, data)


def test_disk_full_while_deferring_loses_nothing(
    tmp_path: Path, smtp_server: Any, events: list[Any], clock: Clock
) -> None:
    queue = FullDiskQueue(str(tmp_path / "full"), claim_timeout=600.0, clock=clock)
    busy = envelope(subject="busy", to=["busy@example.org"])
    fine = envelope(subject="fine")
    queue.add(busy)
    queue.add(fine)
    smtp_server.faults.rcpt = {"busy@example.org": "450 4.2.1 Mailbox busy"}
    processor = QueueProcessor(
        queue,
        SMTPMailer(smtp_server.host, smtp_server.port, timeout=5.0),
        workers=1,
        notify=events.append,
        clock=clock,
    )
    queue.full = True

    processor.process_once()

    # The deferral could not be written: the message stays claimed, and the
    # rest of the queue went on.
    assert [m.data for m in smtp_server.messages] == [fine.data]
    assert len(listing(queue)["cur"]) == 1
    assert listing(queue)["tmp"] == []

    queue.full = False
    smtp_server.faults.rcpt = {}
    clock.advance(queue.claim_timeout + 1)
    processor.process_once()

    assert [m.data for m in smtp_server.messages] == [fine.data, busy.data]
    assert listing(queue) == {"tmp": [], "new": [], "cur": [], "failed": []}


ANN, BOB, CAROL = "ann@example.org", "bob@example.org", "carol@example.org"


@pytest.mark.parametrize(
    "refusals",
    [
        {BOB: "450 4.2.1 Mailbox busy"},
        {BOB: "550 5.1.1 No such user"},
        {BOB: "550 5.1.1 No such user", CAROL: "450 4.2.1 Mailbox busy"},
    ],
    ids=["deferred", "failed", "failed-and-deferred"],
)
def test_disk_full_while_settling_a_partly_accepted_message_never_resends_it(
    tmp_path: Path, smtp_server: Any, clock: Clock, refusals: dict[str, str]
) -> None:
    # Promise 6: a recipient that accepted the message never gets it again,
    # even when the queue cannot write what became of the others.
    queue = FullDiskQueue(str(tmp_path / "full"), claim_timeout=600.0, clock=clock)
    queue.add(envelope(to=[ANN, BOB, CAROL]))
    smtp_server.faults.rcpt = dict(refusals)
    processor = QueueProcessor(
        queue,
        SMTPMailer(smtp_server.host, smtp_server.port, timeout=5.0),
        workers=1,
        notify=lambda event: None,
        clock=clock,
    )
    queue.full = True

    processor.process_once()

    accepted = tuple(r for r in (ANN, BOB, CAROL) if r not in refusals)
    assert [m.recipients for m in smtp_server.messages] == [accepted]
    queue.full = False
    smtp_server.faults.rcpt = {}
    clock.advance(queue.claim_timeout + 1)
    processor.process_once()

    received = [r for m in smtp_server.messages for r in m.recipients]
    assert sorted(received) == [ANN, BOB, CAROL]
    assert listing(queue) == {"tmp": [], "new": [], "cur": [], "failed": []}


def test_processing_never_deletes_stale_tmp_files(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any, clock: Clock
) -> None:
    stale = queue.prepare(envelope(subject="prepared, never published"))
    clock.advance(STALE_TMP_AGE + 1)

    processor_for(smtp_server).process_once()

    assert listing(queue)["tmp"] == [stale]
    assert queue.status()["stale_tmp"]["count"] == 1
    assert smtp_server.messages == []


# -- events through the application's registry ------------------------------


class Recorder(OtherResource):
    """Joins the subscriber's transaction to see how it ends."""

    def __init__(self, manager: Any) -> None:
        super().__init__(manager, key="recorder")

    @property
    def outcome(self) -> str:
        if "tpc_finish" in self.calls:
            return "committed"
        return "aborted" if {"abort", "tpc_abort"} & set(self.calls) else "open"


def test_events_reach_subscribers_with_the_registry_current_in_fresh_transactions(
    queue: MaildirQueue, smtp_server: Any, clock: Clock
) -> None:
    config = Configurator()
    seen: list[dict[str, Any]] = []

    def subscriber(event: Any) -> None:
        txn = transaction.get()
        recorder = Recorder(transaction.manager)
        txn.join(recorder)
        seen.append(
            {
                "event": event,
                "registry": get_current_registry(),
                "txn": txn,
                "recorder": recorder,
            }
        )
        if "refused" in str(event.message["Subject"]):
            raise RuntimeError("a subscriber's bug")

    config.add_subscriber(subscriber, IMailEvent)
    config.commit()
    queue.add(envelope(subject="first"))
    queue.add(envelope(subject="refused later", to=["nobody@example.org"]))
    queue.add(envelope(subject="third"))
    smtp_server.faults.rcpt = {"nobody@example.org": "550 5.1.1 No such user"}
    processor = QueueProcessor(
        queue,
        SMTPMailer(smtp_server.host, smtp_server.port, timeout=5.0),
        workers=1,
        registry=config.registry,
        clock=clock,
    )

    processor.process_once()

    assert [type(s["event"]) for s in seen] == [MailSent, MailFailed, MailSent]
    assert all(s["registry"] is config.registry for s in seen)
    assert len({id(s["txn"]) for s in seen}) == 3
    assert [s["recorder"].outcome for s in seen] == ["committed", "aborted", "committed"]
    # The failing subscriber changed no other outcome.
    assert len(smtp_server.messages) == 2
    assert listing(queue)["new"] == []
    assert len(queue.list("failed")) == 1
    assert get_current_registry() is not config.registry


def test_without_registry_or_notify_events_go_nowhere(
    queue: MaildirQueue, smtp_server: Any, clock: Clock
) -> None:
    queue.add(envelope())
    processor = QueueProcessor(queue, SMTPMailer(smtp_server.host, smtp_server.port), clock=clock)

    assert processor.process_once() == 1
    assert len(smtp_server.messages) == 1


# -- a send that outlasts the claim timeout -----------------------------------


def test_a_slow_live_send_keeps_its_claim_and_is_delivered_once(
    tmp_path: Path, smtp_server: Any
) -> None:
    # Twenty recipients, each answered after 0.08 s: the send takes about
    # 1.6 s, well within mail.timeout for every reply, and far beyond the
    # claim timeout of 0.6 s. Another processor keeps recovering stale
    # claims meanwhile; the live one must never look stale to it.
    recipients = [f"r{n}@example.org" for n in range(20)]
    path = str(tmp_path / "queue")
    MaildirQueue(path, claim_timeout=0.6).add(envelope(to=recipients))
    smtp_server.faults.rcpt_delay = 0.08
    mailer = SMTPMailer(smtp_server.host, smtp_server.port, timeout=0.5)
    slow = QueueProcessor(MaildirQueue(path, claim_timeout=0.6), mailer, workers=1)
    other = QueueProcessor(MaildirQueue(path, claim_timeout=0.6), mailer, workers=1)
    recovered = 0

    sending = threading.Thread(target=slow.process_once)
    sending.start()
    while not os.listdir(os.path.join(path, "cur")):
        time.sleep(0.01)  # the slow processor holds the claim
    while sending.is_alive():
        other.process_once()
        recovered += other.last_pass["recovered"]
        time.sleep(0.05)
    sending.join()
    other.process_once()

    assert recovered == 0
    assert len(smtp_server.messages) == 1
    assert smtp_server.messages[0].recipients == tuple(recipients)
    assert listing(slow.queue) == {"tmp": [], "new": [], "cur": [], "failed": []}


def test_a_partial_delivery_logs_one_readable_line_per_refused_recipient(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any, caplog: Any
) -> None:
    ann, bob, cy = "ann@example.org", "bob@example.org", "cy@example.org"
    mail = envelope(to=[ann, bob, cy])
    queue.add(mail)
    processor = processor_for(smtp_server)
    smtp_server.faults.rcpt = {bob: "451 4.7.1 Greylisted", cy: "550 5.1.1 No such user"}

    with caplog.at_level("INFO", logger="pyramid_sendmail.delivery"):
        processor.process_once()

    lines = [r.getMessage() for r in caplog.records if r.name == "pyramid_sendmail.delivery"]
    assert f"{mail.message_id} to 3 recipients: sent to 1 of 3 recipients" in lines[0]
    assert lines[1:] == [
        f"mail {mail.message_id} to {bob}: deferred: 451 4.7.1 Greylisted",
        f"mail {mail.message_id} to {cy}: refused: 550 5.1.1 No such user",
    ]
    assert "b'" not in caplog.text and "{" not in caplog.text


# -- one thread, several connections (pyramid_sendmail.lanes) -----------------


def test_several_connections_deliver_every_message_once(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any
) -> None:
    sent = [envelope(f"message {n}") for n in range(40)]
    for mail in sent:
        queue.add(mail)
    processor = processor_for(smtp_server, workers=4, batch_size=7)

    assert processor.process_once() == 40

    assert sorted(m.data for m in smtp_server.messages) == sorted(mail.data for mail in sent)
    # Four connections at once, each replaced after its batch of seven.
    assert smtp_server.connections >= 4
    assert listing(queue) == {"tmp": [], "new": [], "cur": [], "failed": []}


def test_connections_that_stop_answering_defer_their_mail_as_timed_out(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any
) -> None:
    for n in range(3):
        queue.add(envelope(f"message {n}"))
    smtp_server.faults.stall = "DATA_END"
    mailer = SMTPMailer(smtp_server.host, smtp_server.port, timeout=0.3)
    processor = processor_for(mailer=mailer, workers=3)

    processor.process_once()

    assert processor.last_pass["deferred"] == 3
    deferred = [queue.claim(name) for name in os.listdir(queue.new)]
    assert all(entry is not None and "timed out" in (entry.error or "") for entry in deferred)


def test_a_large_message_over_a_slow_link_is_delivered_beside_small_ones(
    queue: MaildirQueue, processor_for: Any, smtp_server: Any
) -> None:
    # 1.5 MB at 1 MB/s with mail.timeout = 0.5: the wait for its reply sees
    # the data still draining, while the other connection carries on.
    big = envelope("big", body=("y" * 78 + "\n") * 19_000)
    queue.add(big)
    for n in range(5):
        queue.add(envelope(f"small {n}"))
    with SlowRelay(smtp_server.port, rate=1_000_000) as relay:
        mailer = SMTPMailer(relay.host, relay.port, timeout=0.5)
        processor = processor_for(mailer=mailer, workers=2)
        processor.process_once()

    assert processor.last_pass["sent"] == 6
    assert len(smtp_server.messages) == 6
    assert listing(queue) == {"tmp": [], "new": [], "cur": [], "failed": []}


def test_a_queue_that_breaks_during_a_pass_makes_the_pass_raise(
    tmp_path: Path, smtp_server: Any
) -> None:
    # As with worker threads: the error reaches process_once's caller
    # (psendmail run --once then fails) instead of a quiet, empty pass.
    class Breaking(MaildirQueue):
        claims = 0

        def claim(self, name: str, on_corrupt: Any = None) -> Any:
            Breaking.claims += 1
            if Breaking.claims == 3:
                raise PermissionError(13, "Permission denied", name)
            return super().claim(name, on_corrupt)

    queue = Breaking(str(tmp_path / "breaking"))
    for n in range(6):
        queue.add(envelope(f"message {n}"))
    mailer = SMTPMailer(smtp_server.host, smtp_server.port, timeout=5.0)
    processor = QueueProcessor(queue, mailer, workers=3)

    with pytest.raises(PermissionError):
        processor.process_once()

    assert 2 <= len(smtp_server.messages) < 6
