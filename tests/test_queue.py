"""The Maildir queue: durable files, atomic claims, deferral, dead letters."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from clock import Clock
from zope.interface.verify import verifyObject

from pyramid_sendmail import Message
from pyramid_sendmail.exceptions import (
    CorruptEntry,
    QueueError,
    QueueUnavailable,
    SendmailError,
    UnknownEntry,
)
from pyramid_sendmail.interfaces import IMailQueue
from pyramid_sendmail.message import Envelope, prepare
from pyramid_sendmail.queue import STALE_TMP_AGE, MaildirQueue, open_queue

DAY = 24 * 3600.0


def envelope(subject: str = "Hello", to: Sequence[str] = ("bob@example.org",)) -> Envelope:
    return prepare(
        Message(subject=subject, sender="ann@example.org", recipients=list(to), body="Hi\n")
    )


def files(path: Path) -> list[str]:
    return sorted(os.listdir(path))


def bases(path: Path) -> list[str]:
    """The messages in a folder, without the due or claim time in their names."""
    return sorted(name.partition(",")[0] for name in os.listdir(path))


@pytest.fixture
def folder(queue: MaildirQueue) -> Path:
    return Path(queue.path)


def test_queue_provides_its_interface(queue: MaildirQueue) -> None:
    assert verifyObject(IMailQueue, queue)


def test_interface_declares_what_the_processor_and_psendmail_call() -> None:
    # verifyObject checks only what is declared: psendmail's status, failed
    # and retry, and the processor's recover, must be part of the contract.
    for name in ("claimable", "recover", "status", "list", "unreadable", "retry", "location"):
        assert name in IMailQueue, name


def test_opening_creates_the_maildir_folders_private(folder: Path) -> None:
    for sub in ("tmp", "new", "cur", "failed"):
        assert (folder / sub).is_dir()
        assert stat.S_IMODE((folder / sub).stat().st_mode) & 0o077 == 0


def test_add_publishes_a_private_file_into_new(queue: MaildirQueue, folder: Path) -> None:
    name = queue.add(envelope())

    assert files(folder / "new") == [name]
    assert files(folder / "tmp") == []
    assert stat.S_IMODE((folder / "new" / name).stat().st_mode) == 0o600


def test_queue_file_is_a_readable_message_with_its_envelope(
    queue: MaildirQueue, folder: Path
) -> None:
    mail = envelope(subject="Readable")
    name = queue.add(mail)

    text = (folder / "new" / name).read_bytes()

    assert text.startswith(b"X-Pyramid-Sendmail-")
    assert b"X-Pyramid-Sendmail-To: <bob@example.org>\r\n" in text
    assert text.endswith(mail.data)
    assert b"Subject: Readable" in text


def test_envelope_round_trips_exactly(queue: MaildirQueue) -> None:
    mail = prepare(
        Message(
            subject="Grüße, Freunde",
            sender="Jörg Müller <jörg@exämple.org>",
            recipients=['"Doe, John" <john@example.org>', "Zoë <zoë@exämple.de>"],
            cc=['"Roe, Jane Q." <jane@example.com>'],
            bcc=["secret@example.net"],
            body="Hallo\n.\nA line with a dot.\n",
        )
    )
    name = queue.add(mail)

    entry = queue.claim(name)

    assert entry is not None
    assert entry.envelope.sender == "jörg@exämple.org"
    assert entry.envelope.recipients == (
        "john@example.org",
        "zoë@exämple.de",
        "jane@example.com",
        "secret@example.net",
    )
    assert entry.envelope.message_id == mail.message_id
    assert entry.envelope.data == mail.data
    assert entry.attempts == 0
    assert b"secret@example.net" not in entry.envelope.data


def test_queued_at_and_due_time_come_from_the_queue_clock(tmp_path: Path) -> None:
    # A clock behind the file system's (an injected one, or an NFS server's
    # clock ahead of ours): the new message is due at once all the same.
    clock = Clock(now=1_000_000_000.0)
    queue = MaildirQueue(str(tmp_path / "q"), clock=clock)
    name = queue.add(envelope())

    assert queue.claimable() == [name]
    entry = queue.claim(name)
    assert entry is not None
    assert entry.queued_at == clock.now


def test_claimable_lists_due_messages_oldest_first(queue: MaildirQueue) -> None:
    names = [queue.add(envelope(subject=str(i))) for i in range(5)]

    assert queue.claimable() == names


@pytest.mark.parametrize(
    "foreign",
    [".hidden", ".1234.swp", "README", "notes.txt", "2024-report.eml", "12345"],
)
def test_dotfiles_and_foreign_files_are_never_messages(
    queue: MaildirQueue, folder: Path, foreign: str
) -> None:
    (folder / "new" / foreign).write_bytes(b"not a queued message\r\n")
    name = queue.add(envelope())

    assert queue.claimable() == [name]
    assert queue.status()["queued"]["count"] == 1
    assert (folder / "new" / foreign).exists()


def test_two_claims_of_one_message_have_exactly_one_winner(
    queue: MaildirQueue, tmp_path: Path, clock: Clock
) -> None:
    other_processor = MaildirQueue(queue.path, clock=clock)
    name = queue.add(envelope())

    first = queue.claim(name)
    second = other_processor.claim(name)

    assert first is not None and first.name == name
    assert second is None


def test_concurrent_claims_hand_each_message_to_one_claimer(
    queue: MaildirQueue, clock: Clock
) -> None:
    names = [queue.add(envelope(subject=str(i))) for i in range(40)]
    claimers = [MaildirQueue(queue.path, clock=clock) for _ in range(4)]
    won: list[list[str]] = [[] for _ in claimers]
    start = threading.Barrier(len(claimers))

    def claim_all(index: int) -> None:
        start.wait()
        for name in names:
            entry = claimers[index].claim(name)
            if entry is not None:
                won[index].append(entry.name)

    threads = [threading.Thread(target=claim_all, args=(i,)) for i in range(len(claimers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    everything = [name for names_won in won for name in names_won]
    assert sorted(everything) == sorted(names)


def test_message_deferred_since_it_was_listed_is_not_claimed(
    queue: MaildirQueue, clock: Clock
) -> None:
    other_processor = MaildirQueue(queue.path, clock=clock)
    name = queue.add(envelope())
    listed = queue.claimable()
    entry = other_processor.claim(name)
    assert entry is not None
    other_processor.defer(entry, clock.now + 300, "451 try later")

    assert queue.claim(listed[0]) is None
    assert queue.status()["deferred"]["count"] == 1
    clock.advance(300)
    [due] = queue.claimable()
    assert queue.claim(due) is not None


def test_claimed_message_leaves_the_queue(queue: MaildirQueue, folder: Path) -> None:
    name = queue.add(envelope())

    queue.claim(name)

    assert queue.claimable() == []
    assert bases(folder / "cur") == [name]
    assert queue.status()["claimed"]["count"] == 1


def test_complete_forgets_a_delivered_message(queue: MaildirQueue, folder: Path) -> None:
    entry = queue.claim(queue.add(envelope()))
    assert entry is not None

    queue.complete(entry)

    for sub in ("tmp", "new", "cur", "failed"):
        assert files(folder / sub) == []


def test_recover_returns_only_claims_older_than_the_timeout(
    queue: MaildirQueue, clock: Clock, folder: Path
) -> None:
    old, fresh = queue.add(envelope(subject="old")), queue.add(envelope(subject="fresh"))
    queue.claim(old)
    clock.advance(500)
    queue.claim(fresh)
    clock.advance(101)

    recovered = queue.recover()

    assert recovered == 1
    assert queue.claimable() == [old]
    assert bases(folder / "cur") == [fresh]


def test_recovered_claim_is_delivered_with_its_envelope(queue: MaildirQueue, clock: Clock) -> None:
    mail = envelope(to=["bob@example.org", "carol@example.org"])
    name = queue.add(mail)
    queue.claim(name)  # ... and the processor died
    clock.advance(601)
    queue.recover()

    entry = queue.claim(name)

    assert entry is not None
    assert entry.envelope.recipients == mail.recipients
    assert entry.envelope.data == mail.data


def test_recover_by_another_processor_a_timeout_later_takes_the_claim(tmp_path: Path) -> None:
    # The real clock, and a processor that looks again 61 s later.
    queue = MaildirQueue(str(tmp_path / "q"), claim_timeout=60.0)
    later = MaildirQueue(queue.path, claim_timeout=60.0, clock=lambda: time.time() + 61)
    name = queue.add(envelope())
    queue.claim(name)
    assert queue.recover() == 0

    assert later.recover() == 1
    assert queue.claimable() == [name]


def test_a_claim_without_its_time_is_recovered(queue: MaildirQueue, folder: Path) -> None:
    name = queue.add(envelope())
    # Moved into cur/ by hand, or by a tool that does not know the names.
    os.rename(folder / "new" / name, folder / "cur" / name)

    assert queue.recover() == 1
    assert queue.claimable() == [name]


def test_defer_hides_the_message_until_it_is_due(queue: MaildirQueue, clock: Clock) -> None:
    name = queue.add(envelope())
    entry = queue.claim(name)
    assert entry is not None

    queue.defer(entry, clock.now + 300, "451 try later")

    assert queue.claimable() == []
    assert queue.status()["deferred"]["count"] == 1
    clock.advance(299)
    assert queue.claimable() == []
    clock.advance(1)
    [due] = queue.claimable()
    assert due.startswith(name + ",")
    again = queue.claim(due)
    assert again is not None
    assert again.attempts == 1
    assert again.error == "451 try later"
    assert again.queued_at == entry.queued_at


def test_defer_keeps_only_the_remaining_recipients(queue: MaildirQueue, clock: Clock) -> None:
    name = queue.add(envelope(to=["a@example.org", "b@example.org", "c@example.org"]))
    entry = queue.claim(name)
    assert entry is not None
    entry.envelope = entry.envelope.with_recipients(["b@example.org"])

    queue.defer(entry, clock.now, "450 mailbox busy")

    again = queue.claim(queue.claimable()[0])
    assert again is not None
    assert again.envelope.recipients == ("b@example.org",)


def test_defer_after_a_crash_left_a_copy_in_tmp(
    queue: MaildirQueue, clock: Clock, folder: Path
) -> None:
    # A processor killed while deferring leaves its rewritten copy in tmp/;
    # the message must still be deferrable (and failable) afterwards.
    name = queue.add(envelope())
    entry = queue.claim(name)
    assert entry is not None
    (folder / "tmp" / name).write_bytes(b"half a rewritten copy")

    queue.defer(entry, clock.now + 60, "451 try later")

    assert bases(folder / "new") == [name]
    clock.advance(60)
    entry = queue.claim(queue.claimable()[0])
    assert entry is not None
    (folder / "tmp" / name).write_bytes(b"half a rewritten copy")
    queue.fail(entry, "550 no such user")
    assert files(folder / "failed") == [name]
    assert files(folder / "cur") == []


def test_fail_sets_the_message_aside_with_its_error(queue: MaildirQueue, folder: Path) -> None:
    mail = envelope()
    name = queue.add(mail)
    entry = queue.claim(name)
    assert entry is not None

    queue.fail(entry, "554 5.7.1 rejected\nas spam")

    assert files(folder / "cur") == []
    assert files(folder / "failed") == [name]
    [failed] = queue.list("failed")
    assert failed.error == "554 5.7.1 rejected as spam"
    assert failed.envelope.data == mail.data
    assert queue.status()["failed"]["count"] == 1


def test_fail_keeping_the_claim_writes_a_separate_dead_letter(
    queue: MaildirQueue, folder: Path
) -> None:
    name = queue.add(envelope(to=["a@example.org", "b@example.org"]))
    entry = queue.claim(name)
    assert entry is not None
    entry_failed = type(entry)(
        entry.name, entry.envelope.with_recipients(["b@example.org"]), entry.queued_at
    )

    failed_name = queue.fail(entry_failed, "550 no such user", keep_claim=True)

    assert failed_name != name
    assert bases(folder / "cur") == [name]
    [failed] = queue.list("failed")
    assert failed.envelope.recipients == ("b@example.org",)


def test_corrupt_file_is_moved_to_failed_with_the_reason(queue: MaildirQueue, folder: Path) -> None:
    good = queue.add(envelope(subject="good"))
    bad = queue.add(envelope(subject="bad"))
    (folder / "new" / bad).write_bytes(b"\x00\xffthis is no queue file")

    assert queue.claim(bad) is None
    entry = queue.claim(good)

    assert entry is not None
    assert files(folder / "failed") == [f".{bad}.error", bad]
    reason = (folder / "failed" / f".{bad}.error").read_text()
    assert "corrupt" in reason
    assert queue.status()["failed"]["count"] == 1


def test_corrupt_file_set_aside_logs_a_warning_naming_the_file_and_the_reason(
    queue: MaildirQueue, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = queue.add(envelope(subject="bad"))
    (folder / "new" / bad).write_bytes(b"X-Pyramid-Sendmail-Id: broken")
    seen: list[CorruptEntry] = []

    with caplog.at_level(logging.WARNING, logger="pyramid_sendmail.queue"):
        assert queue.claim(bad, on_corrupt=seen.append) is None

    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.name == "pyramid_sendmail.queue.maildir"
    assert bad in record.getMessage()
    assert "the envelope is not terminated" in record.getMessage()
    [corrupt] = seen
    assert isinstance(corrupt, SendmailError)
    assert (corrupt.name, corrupt.reason) == (bad, "the envelope is not terminated")


def test_corrupt_file_that_cannot_be_set_aside_logs_an_error_and_stays_claimed(
    queue: MaildirQueue, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = queue.add(envelope(subject="bad"))
    (folder / "new" / bad).write_bytes(b"garbage")
    (folder / "failed").rmdir()  # gone: nowhere to set it aside
    seen: list[CorruptEntry] = []

    with caplog.at_level(logging.WARNING, logger="pyramid_sendmail.queue"):
        assert queue.claim(bad, on_corrupt=seen.append) is None

    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert bad in record.getMessage()
    assert seen == []
    assert bases(folder / "cur") == [bad]


def test_recovered_stale_claim_logs_a_warning(
    queue: MaildirQueue, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    name = queue.add(envelope())
    queue.claim(name)  # ... and the processor died
    clock.advance(601)

    with caplog.at_level(logging.WARNING, logger="pyramid_sendmail.queue"):
        assert queue.recover() == 1

    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert name in record.getMessage()
    assert "601s ago" in record.getMessage()


def test_queue_errors_are_sendmail_errors(queue: MaildirQueue, folder: Path) -> None:
    bad = queue.add(envelope(subject="bad"))
    (folder / "new" / bad).write_bytes(b"garbage")
    queue.claim(bad)  # set aside as corrupt

    with pytest.raises(UnknownEntry) as unknown:
        queue.retry(["no-such-message"])
    with pytest.raises(CorruptEntry) as corrupt:
        queue.retry([bad])

    for error in (unknown.value, corrupt.value):
        assert isinstance(error, QueueError)
        assert isinstance(error, SendmailError)
    assert isinstance(unknown.value, KeyError)
    assert "no-such-message" in str(unknown.value)
    assert bad in str(corrupt.value)


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9])
def test_truncated_file_is_moved_to_failed_not_delivered(
    queue: MaildirQueue, folder: Path, keep: float
) -> None:
    name = queue.add(envelope(subject="truncated " + "x" * 200))
    path = folder / "new" / name
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])

    assert queue.claim(name) is None
    assert files(folder / "failed") == [f".{name}.error", name]
    reason = (folder / "failed" / f".{name}.error").read_text()
    assert "corrupt" in reason


def test_status_counts_each_kind_of_mail(queue: MaildirQueue, clock: Clock) -> None:
    queue.add(envelope(subject="queued"))
    deferred = queue.claim(queue.add(envelope(subject="deferred")))
    claimed = queue.add(envelope(subject="claimed"))
    failed = queue.claim(queue.add(envelope(subject="failed")))
    assert deferred is not None and failed is not None
    queue.defer(deferred, clock.now + 600, "451 later")
    queue.claim(claimed)
    queue.fail(failed, "550 no")

    report = queue.status()

    assert {kind: item["count"] for kind, item in report.items()} == {
        "queued": 1,
        "deferred": 1,
        "claimed": 1,
        "failed": 1,
        "stale_tmp": 0,
    }


def test_status_reports_stale_tmp_files_and_never_deletes_them(
    queue: MaildirQueue, clock: Clock, folder: Path
) -> None:
    stale = queue.prepare(envelope(subject="prepared, never published"))
    fresh = queue.prepare(envelope(subject="being committed right now"))
    clock.advance(STALE_TMP_AGE + 1)
    os.utime(folder / "tmp" / fresh, (clock.now, clock.now))

    report = queue.status()

    assert report["stale_tmp"]["count"] == 1
    assert report["stale_tmp"]["oldest"] > DAY
    queue.recover()
    queue.claimable()
    assert files(folder / "tmp") == sorted([stale, fresh])


def test_retry_puts_failed_mail_back_as_new(queue: MaildirQueue, folder: Path) -> None:
    mail = envelope(to=["a@example.org", "b@example.org"])
    entry = queue.claim(queue.add(mail))
    assert entry is not None
    queue.fail(entry, "550 no")

    [name] = queue.retry()

    assert files(folder / "failed") == []
    assert queue.claimable() == [name]
    again = queue.claim(name)
    assert again is not None
    assert again.attempts == 0
    assert again.envelope.recipients == mail.recipients
    assert again.envelope.data == mail.data


def test_retry_of_a_name_given_twice_queues_it_once(queue: MaildirQueue) -> None:
    entry = queue.claim(queue.add(envelope()))
    assert entry is not None
    queue.fail(entry, "550 no")

    assert len(queue.retry([entry.name, entry.name])) == 1
    assert len(queue.claimable()) == 1


def test_retry_of_an_unknown_name_moves_nothing(queue: MaildirQueue, folder: Path) -> None:
    entry = queue.claim(queue.add(envelope()))
    assert entry is not None
    queue.fail(entry, "550 no")

    with pytest.raises(KeyError):
        queue.retry([entry.name, "00000000000000000000.1_1.nohost"])

    assert files(folder / "failed") == [entry.name]
    assert queue.claimable() == []


def test_retry_all_leaves_unreadable_dead_letters_in_failed(
    queue: MaildirQueue, folder: Path
) -> None:
    bad = queue.add(envelope(subject="bad"))
    (folder / "new" / bad).write_bytes(b"garbage")
    queue.claim(bad)
    good = queue.claim(queue.add(envelope(subject="good")))
    assert good is not None
    queue.fail(good, "550 no")

    moved = queue.retry()

    assert len(moved) == 1
    assert bad in files(folder / "failed")
    assert good.name not in files(folder / "failed")


def test_open_queue_creates_a_missing_folder(tmp_path: Path) -> None:
    queue = open_queue(str(tmp_path / "var" / "mail-queue"))

    assert os.path.isdir(queue.new)


def test_open_queue_refuses_a_file(tmp_path: Path) -> None:
    path = tmp_path / "not-a-folder"
    path.write_text("")

    with pytest.raises(QueueUnavailable, match="is not a directory") as raised:
        open_queue(str(path))
    assert isinstance(raised.value, SendmailError)
    assert raised.value.location == str(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_open_queue_refuses_a_folder_it_cannot_write(tmp_path: Path) -> None:
    path = tmp_path / "readonly"
    open_queue(str(path))
    os.chmod(path / "new", 0o500)
    try:
        with pytest.raises(QueueUnavailable, match="not writable"):
            open_queue(str(path))
    finally:
        os.chmod(path / "new", 0o700)


def test_open_queue_names_a_folder_it_cannot_create(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")

    with pytest.raises(QueueUnavailable, match="cannot be created") as raised:
        open_queue(str(blocker / "queue"))
    assert str(blocker / "queue") in str(raised.value)


def test_queue_errors_name_no_setting(tmp_path: Path) -> None:
    """The storage layer knows nothing of settings: its callers name them."""
    path = tmp_path / "not-a-folder"
    path.write_text("")

    with pytest.raises(QueueUnavailable) as raised:
        open_queue(str(path))
    assert "mail." not in str(raised.value)


# -- kill -9 in the middle of a rewrite ---------------------------------------

# Claims a message, then SIGKILLs itself at the first rename of the rewritten
# copy: the new file is complete and fsynced, the claim not yet replaced.
_KILLED_MID_REWRITE = """
import os, signal, sys, time
from pyramid_sendmail.queue import MaildirQueue

queue = MaildirQueue(sys.argv[1])
entry = queue.claim(queue.claimable()[0])
entry.envelope = entry.envelope.with_recipients(["b@example.org"])

def kill_at_rename(event, args):
    if event == "os.rename":
        os.kill(os.getpid(), signal.SIGKILL)

sys.addaudithook(kill_at_rename)
if sys.argv[2] == "defer":
    queue.defer(entry, time.time() + 60, "451 4.3.0 try later")
else:
    queue.fail(entry, "550 5.1.1 no such user", keep_claim=True)
"""


@pytest.mark.parametrize("operation", ["defer", "fail"])
def test_kill_9_mid_rewrite_leaves_no_stale_uncommitted_copy(
    tmp_path: Path, operation: str
) -> None:
    path = tmp_path / "queue"
    name = MaildirQueue(str(path)).add(envelope(to=["a@example.org", "b@example.org"]))

    child = subprocess.run(
        [sys.executable, "-c", _KILLED_MID_REWRITE, str(path), operation], timeout=60
    )

    assert child.returncode == -signal.SIGKILL
    # tmp/ holds only uncommitted mail: status has nothing stale to report
    # (which would invite an operator to requeue mail that was delivered).
    assert files(path / "tmp") == []
    later = Clock(time.time() + STALE_TMP_AGE + 1)
    queue = MaildirQueue(str(path), claim_timeout=600.0, clock=later)
    assert queue.status()["stale_tmp"]["count"] == 0
    assert queue.status()["claimed"]["count"] == 1
    # The claim comes back whole after the claim timeout, the copy with it.
    assert queue.recover() == 1
    assert files(path / "cur") == []
    [again] = queue.list("new")
    assert again.name == name
    assert again.envelope.recipients == ("a@example.org", "b@example.org")
    assert files(path / "failed") == []


# -- claims in hand are renewed ----------------------------------------------


def test_a_renewed_claim_is_not_recovered(queue: MaildirQueue, clock: Clock, folder: Path) -> None:
    name = queue.add(envelope())
    entry = queue.claim(name)
    assert entry is not None

    clock.advance(500)
    assert queue.renew() == 1
    clock.advance(500)

    assert queue.recover() == 0
    queue.complete(entry)
    assert files(folder / "cur") == []
    assert files(folder / "new") == []


def test_a_claim_recovered_by_another_processor_is_no_longer_renewed(
    queue: MaildirQueue, clock: Clock, folder: Path
) -> None:
    entry = queue.claim(queue.add(envelope()))
    assert entry is not None
    clock.advance(601)
    assert MaildirQueue(str(folder), claim_timeout=600.0, clock=clock).recover() == 1

    assert queue.renew() == 0
    assert bases(folder / "new") == [entry.name]


def test_settled_claims_are_no_longer_renewed(queue: MaildirQueue, clock: Clock) -> None:
    sent, deferred, failed = (queue.claim(queue.add(envelope())) for _ in range(3))
    assert sent is not None and deferred is not None and failed is not None
    queue.complete(sent)
    queue.defer(deferred, clock.now + 60, "451 later")
    queue.fail(failed, "550 no")

    assert queue.renew() == 0


def test_a_claim_settled_through_a_copy_of_its_entry_is_no_longer_renewed(
    queue: MaildirQueue, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The processor sets aside a copy (dataclasses.replace) with the
    # recipients that failed.
    entry = queue.claim(queue.add(envelope()))
    assert entry is not None

    queue.fail(dataclasses.replace(entry), "550 no")

    with caplog.at_level(logging.WARNING):
        assert queue.renew() == 0
    # Not renewed at all, rather than found lost.
    assert caplog.records == []
    assert files(folder / "cur") == []
