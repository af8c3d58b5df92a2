"""The Maildir queue: durable files that processors claim by renaming.

Layout under the queue folder:

``tmp/``
    files being written; a transaction's files wait here between its vote
    and its finish.
``new/``
    queued messages, due at once; a deferred one carries the time it is due
    in its name (``NAME,due=SECONDS``).
``cur/``
    messages claimed by a processor (``rename`` is the claim: exactly one
    processor wins it), named ``NAME,claimed=SECONDS``; claims older than the
    claim timeout are taken back by :meth:`MaildirQueue.recover`. A claimed
    message being deferred or failed is rewritten beside its claim, as
    ``.NAME.defer`` or ``.NAME.fail``, then renamed into place.
``failed/``
    messages that will not be delivered, with their error.

The times are in the names, not in the files' mtimes, so a pass lists a
folder without a ``stat`` per file, and a claim is one ``rename``.

Each file is an RFC 5322 message preceded by ``X-Pyramid-Sendmail-*`` header
lines that carry the envelope, so ``less`` shows everything.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import socket
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from zope.interface import implementer

from ..exceptions import CorruptEntry, QueueUnavailable, UnknownEntry
from ..interfaces import IMailQueue
from ..message import Envelope
from ..wording import counted
from .claims import ClaimKeeper
from .entry import NORMAL, PRIORITIES, STATES, QueueEntry, QueueStatus, Schedule
from .maildir_format import (
    MESSAGE_NAME,
    base_name,
    is_message_name,
    mark_done,
    message_names,
    name_time,
    parse,
    priority_suffix,
    rank,
    read_file,
    serialize,
    stamp,
    unlink_if_present,
    unstamped,
)

__all__ = ["STALE_TMP_AGE", "MaildirQueue", "open_queue"]

_SUBDIRS = ("tmp", "new", "cur", "failed")
# What a claimed message is rewritten for (see MaildirQueue._rewrite_path).
_REWRITES = ("defer", "fail")
_DIRECTORY_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
#: Seconds after which a prepared file left in ``tmp/`` counts as stale.
STALE_TMP_AGE = 24 * 3600.0

log = logging.getLogger(__name__)


@implementer(IMailQueue)
class MaildirQueue:
    """A durable queue in a Maildir folder, shared safely by many processors."""

    #: Settling a message is a rename or an unlink, not a round trip: one
    #: thread can drive every SMTP connection (``pyramid_sendmail.lanes``).
    settles_locally = True

    def __init__(
        self, path: str, claim_timeout: float = 600.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = os.path.abspath(path)
        self.claim_timeout = claim_timeout
        self.clock = clock
        if not os.path.isdir(self.path):
            os.makedirs(self.path, mode=0o700, exist_ok=True)
            # makedirs' mode is filtered by the umask: queued mail is private.
            os.chmod(self.path, 0o700)
        for sub in _SUBDIRS:
            os.makedirs(os.path.join(self.path, sub), mode=0o700, exist_ok=True)
        self.tmp, self.new, self.cur, self.failed = (
            os.path.join(self.path, sub) for sub in _SUBDIRS
        )
        # Prefixes of the hot path's paths (an os.path.join per path cost more).
        self._in_tmp, self._in_new = self.tmp + os.sep, self.new + os.sep
        self._in_cur = self.cur + os.sep
        self._counter = itertools.count()
        self._host = re.sub(r"[/:.,]", "_", socket.gethostname())
        # Descriptors of new/ and failed/, kept open to fsync them.
        self._directories: dict[str, int] = {}
        weakref.finalize(self, _close_all, self._directories)
        # A third of the timeout: a claim survives two missed renewals.
        self._claims = ClaimKeeper(
            self._renew_claim, claim_timeout / 3, name=f"psendmail-claims-{self.path}"
        )

    def __repr__(self) -> str:
        return f"<MaildirQueue {self.path}>"

    @property
    def location(self) -> str:
        """The queue's folder."""
        return self.path

    # -- adding ---------------------------------------------------------

    def prepare(self, envelope: Envelope) -> str:
        """Write *envelope* durably into ``tmp/`` and return its name.

        An envelope with a ``schedule`` (a
        :class:`~pyramid_sendmail.queue.entry.ScheduledEnvelope`) keeps it
        in the file, and its priority and send time in the name.
        """
        schedule: Schedule = getattr(envelope, "schedule", NORMAL)
        name = self._new_name() + priority_suffix(schedule)
        if schedule.send_at is not None:
            name += f",at={schedule.send_at:.6f}"
        data = serialize(envelope, self.clock(), 0, schedule=schedule)
        self._write(self._in_tmp + name, data)
        return name

    def publish(self, names: list[str]) -> None:
        """Move prepared files into ``new/`` (atomic renames), then sync."""
        for name in names:
            os.rename(self._in_tmp + name, self._in_new + name)
        self._sync(self.new)

    def discard(self, names: Iterable[str]) -> None:
        """Remove prepared files; missing ones are ignored."""
        for name in names:
            unlink_if_present(self._in_tmp + name)

    def add(self, envelope: Envelope) -> str:
        """Durably queue *envelope* now; return its name."""
        name = self.prepare(envelope)
        try:
            self.publish([name])
        except BaseException:
            self.discard([name])
            raise
        return name

    # -- processing -----------------------------------------------------

    def claimable(self, now: float | None = None) -> list[str]:
        """Names of the messages due at *now*: high priority first, then
        normal, then low; oldest first within each class."""
        now = self.clock() if now is None else now
        due = []
        for name in os.listdir(self.new):
            due_at = stamp(name)
            if due_at is not None and due_at <= now:
                due.append(name)
        due.sort()
        # A stable sort by class keeps the names' time order within each.
        due.sort(key=rank)
        return due

    def claim(
        self, name: str, on_corrupt: Callable[[CorruptEntry], None] | None = None
    ) -> QueueEntry | None:
        """Claim *name* for this processor alone.

        Returns None when another processor took it first (or deferred it:
        a deferred file is renamed). A file that cannot be read is moved to
        ``failed/`` with the reason, logged, passed to *on_corrupt*, and
        None is returned.
        """
        base = base_name(name)
        claimed_as = f"{unstamped(name)},claimed={self.clock():.6f}"
        target = self._in_cur + claimed_as
        try:
            os.rename(self._in_new + name, target)
        except FileNotFoundError:
            return None
        try:
            entry = parse(base, read_file(target))
        except OSError as exc:
            corrupt = CorruptEntry(str(exc), base)
        except CorruptEntry as exc:
            corrupt = exc
        else:
            entry.claimed_as = claimed_as
            self._claims.hold(entry)
            return entry
        if self._set_aside_corrupt(base, target, corrupt.reason) and on_corrupt is not None:
            on_corrupt(corrupt)
        return None

    def complete(self, entry: QueueEntry) -> None:
        """Forget a claimed message that has been delivered."""
        self._claims.drop(entry)
        unlink_if_present(self._claim_path(entry))

    def defer(self, entry: QueueEntry, until: float, error: str) -> None:
        """Return a claimed message to the queue, due at *until*.

        The file is rewritten with its remaining recipients, the attempt
        count and the error, then moved back into ``new/``.
        """
        self._claims.drop(entry)
        entry.attempted(error)
        temp = self._rewrite_path(entry.name, "defer")
        data = serialize(entry.envelope, entry.queued_at, entry.attempts, error, entry.schedule)
        claimed = self._claim_path(entry)
        self._rewrite_or_mark(temp, data, claimed, entry)
        # Replace the claimed file first: a crash between the two renames
        # leaves one up-to-date file that recovery returns to the queue.
        os.rename(temp, claimed)
        due_name = f"{entry.name}{priority_suffix(entry.schedule)},due={until:.6f}"
        os.rename(claimed, os.path.join(self.new, due_name))
        self._sync(self.new)

    def fail(self, entry: QueueEntry, error: str, keep_claim: bool = False) -> str:
        """Set the message aside in ``failed/`` with *error*; return its name.

        With *keep_claim*, the claimed file stays (used when only some
        recipients failed and the rest are deferred); the failed copy then
        gets a name of its own.
        """
        if not keep_claim:
            self._claims.drop(entry)
        name = self._new_name() if keep_claim else entry.name
        temp = self._rewrite_path(entry.name, "fail")
        data = serialize(entry.envelope, entry.queued_at, entry.attempts, error, entry.schedule)
        if keep_claim:
            # The claim is deferred next, which keeps its recipients right.
            self._rewrite(temp, data)
        else:
            self._rewrite_or_mark(temp, data, self._claim_path(entry), entry)
        os.rename(temp, os.path.join(self.failed, name))
        self._sync(self.failed)
        if not keep_claim:
            unlink_if_present(self._claim_path(entry))
        return name

    def recover(self, now: float | None = None) -> int:
        """Return claims older than the claim timeout to the queue."""
        now = self.clock() if now is None else now
        recovered = 0
        for name in os.listdir(self.cur):
            # A claim without its time (put there by hand) is stale.
            claimed_at = stamp(name)
            if claimed_at is None or claimed_at >= now - self.claim_timeout:
                continue
            try:
                os.rename(os.path.join(self.cur, name), os.path.join(self.new, unstamped(name)))
            except FileNotFoundError:
                continue  # another processor recovered it, or its owner finished
            recovered += 1
            # A rewrite its processor did not finish is outdated now.
            for purpose in _REWRITES:
                unlink_if_present(self._rewrite_path(base_name(name), purpose))
            # A claim this old means its processor died or hung mid-send.
            since = f"{now - claimed_at:.0f}s ago" if claimed_at else "at an unknown time"
            log.warning("recovered stale claim %s, claimed %s", base_name(name), since)
        return recovered

    def release(self) -> int:
        """Nothing to give back: :meth:`claimable` only lists."""
        return 0

    def close(self) -> None:
        """Close the descriptors kept to sync the folders and stop renewing
        claims (both start again when needed)."""
        self._claims.close()
        _close_all(self._directories)

    def renew(self) -> int:
        """Renew the claims this queue holds now; return how many still hold.

        A thread does it every third of the claim timeout while claims are in
        hand, so a live send never loses its claim however long it takes.
        """
        return self._claims.renew_all()

    def _renew_claim(self, entry: QueueEntry) -> bool:
        renewed = f"{entry.name}{priority_suffix(entry.schedule)},claimed={self.clock():.6f}"
        try:
            os.rename(self._claim_path(entry), os.path.join(self.cur, renewed))
        except FileNotFoundError:
            return False  # recovered by another processor: it is theirs now
        entry.claimed_as = renewed
        return True

    # -- administration -------------------------------------------------

    def retry(self, names: Iterable[str] | None = None) -> list[str]:
        """Put failed messages (all, or *names*) back in the queue, as new.

        Returns the names moved. Every name is checked before any is moved:
        a name not in ``failed/`` raises
        :class:`~pyramid_sendmail.exceptions.UnknownEntry`, and one that
        cannot be read raises
        :class:`~pyramid_sendmail.exceptions.CorruptEntry`. Without *names*,
        unreadable files are left where they are.
        """
        every = names is None
        if names is None:
            names = message_names(self.failed)
        envelopes = []
        # A name given twice must not queue the message twice.
        for name in dict.fromkeys(names):
            path = os.path.join(self.failed, name)
            if not is_message_name(name) or not os.path.isfile(path):
                raise UnknownEntry(name)
            try:
                envelopes.append((path, parse(name, read_file(path)).envelope))
            except OSError as exc:
                if not every:
                    raise CorruptEntry(str(exc), name) from exc
            except CorruptEntry:
                if not every:
                    raise
        moved: list[str] = []
        try:
            moved.extend(self.prepare(envelope) for _, envelope in envelopes)
            self.publish(moved)
        except BaseException:
            self.discard(moved)
            raise
        for path, _ in envelopes:
            unlink_if_present(path)
        return moved

    def status(self, now: float | None = None) -> QueueStatus:
        """Counts and oldest ages of queued, deferred, claimed, failed, stale tmp."""
        now = self.clock() if now is None else now
        report: QueueStatus = {kind: {"count": 0, "oldest": None} for kind in STATES}

        def count(kind: str, name: str) -> None:
            item = report[kind]
            item["count"] += 1
            age = now - name_time(name)
            oldest = item["oldest"]
            if oldest is None or age > oldest:
                item["oldest"] = age

        for name in os.listdir(self.new):
            due = stamp(name)
            if due is not None:
                count("deferred" if due > now else "queued", name)
        for name in message_names(self.cur):
            count("claimed", name)
        for name in message_names(self.failed):
            count("failed", name)
        for name in message_names(self.tmp):
            try:
                if os.stat(os.path.join(self.tmp, name)).st_mtime < now - STALE_TMP_AGE:
                    count("stale_tmp", name)
            except FileNotFoundError:
                continue
        return report

    def schedule_status(self, now: float | None = None) -> dict[str, Any]:
        """What waits in ``new/``, by its names: the mail scheduled with
        ``send_at`` and not due yet (``scheduled``, ``next_due`` in seconds
        from *now* or None), and the count of each priority class."""
        now = self.clock() if now is None else now
        report: dict[str, Any] = {"scheduled": 0, "next_due": None}
        report.update(dict.fromkeys(PRIORITIES, 0))
        for name in os.listdir(self.new):
            match = MESSAGE_NAME.fullmatch(name)
            if match is None:
                continue
            report[PRIORITIES[rank(name)]] += 1
            if match[3] == "at" and float(match[4]) > now:
                report["scheduled"] += 1
                wait = float(match[4]) - now
                if report["next_due"] is None or wait < report["next_due"]:
                    report["next_due"] = wait
        return report

    def list(self, folder: str = "failed") -> list[QueueEntry]:
        """Read every message of one folder (``new``, ``cur`` or ``failed``)."""
        directory = os.path.join(self.path, folder)
        entries = []
        for name in message_names(directory):
            try:
                entries.append(parse(base_name(name), read_file(os.path.join(directory, name))))
            except (OSError, CorruptEntry):
                continue
        return entries

    # -- internals ------------------------------------------------------

    def _new_name(self) -> str:
        # Sortable by time, unique across threads, processes and hosts.
        return f"{time.time_ns():020d}.{_pid}_{next(self._counter)}.{self._host}"

    def _sync(self, directory: str) -> None:
        """fsync *directory* (its new entries), through a kept descriptor."""
        fd = self._directories.get(directory)
        if fd is None:
            fd = os.open(directory, _DIRECTORY_FLAGS)
            if self._directories.setdefault(directory, fd) != fd:
                os.close(fd)  # another thread opened it first
                fd = self._directories[directory]
        os.fsync(fd)

    def _write(self, path: str, data: bytes) -> None:
        """Create *path* with *data*, on disk when it returns."""
        fd = os.open(path, _CREATE_FLAGS, 0o600)
        try:
            written = os.write(fd, data)
            if written < len(data):
                view = memoryview(data)[written:]
                while view:
                    view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            unlink_if_present(path)
            raise
        os.close(fd)

    def _rewrite_path(self, name: str, purpose: str) -> str:
        """Where the new copy of claimed message *name* is written.

        Beside the claim in ``cur/``, under a dotfile name that is no
        message: ``tmp/`` holds only uncommitted mail, so a processor killed
        mid-rewrite leaves nothing there for ``status`` to report as stale
        uncommitted mail, and :meth:`recover` removes the copy with the claim.
        """
        return os.path.join(self.cur, f".{name}.{purpose}")

    def _rewrite(self, path: str, data: bytes) -> None:
        # A processor killed while rewriting this message left its copy
        # here; it is ours and outdated, and must not block the rewrite.
        unlink_if_present(path)
        self._write(path, data)

    def _rewrite_or_mark(self, temp: str, data: bytes, claimed: str, entry: QueueEntry) -> None:
        """Write the new copy of a claimed message, or, when that fails (a
        full disk), mark in the claimed file the recipients that are done.

        The claim then stays, comes back after the claim timeout, and is
        sent again only to *entry*'s recipients: never twice to one that
        accepted the message (the attempt count and error are not updated).
        The write's error is raised either way.
        """
        try:
            self._rewrite(temp, data)
        except OSError as exc:
            unlink_if_present(temp)
            try:
                marked = mark_done(claimed, entry.envelope.recipients)
            except OSError:
                log.exception("could not mark the delivered recipients of %s", entry.name)
            else:
                log.error(
                    "could not rewrite %s (%s): %s marked in place;"
                    " the claim comes back after the claim timeout",
                    entry.name,
                    exc,
                    counted(marked, "delivered recipient"),
                )
            raise

    def _claim_path(self, entry: QueueEntry) -> str:
        return self._in_cur + (entry.claimed_as or entry.name)

    def unreadable(self) -> dict[str, str]:
        """The files of ``failed/`` that could not be read as queued messages,
        each with the reason it was set aside (kept in ``.NAME.error``)."""
        found: dict[str, str] = {}
        with os.scandir(self.failed) as entries:
            for entry in entries:
                name = entry.name[1:].removesuffix(".error")
                is_reason = entry.name.startswith(".") and entry.name.endswith(".error")
                if is_reason and os.path.exists(os.path.join(self.failed, name)):
                    with open(entry.path) as f:
                        found[name] = f.read().strip()
        return found

    def _set_aside_corrupt(self, name: str, path: str, reason: str) -> bool:
        """Move the unreadable claim *path* to ``failed/`` with *reason*;
        return whether it is there."""
        try:
            # The reason first: a file in failed/ always has its reason beside it.
            with open(os.path.join(self.failed, f".{name}.error"), "w") as f:
                f.write(f"corrupt queue file: {reason}\n")
            os.rename(path, os.path.join(self.failed, name))
        except OSError as exc:
            # Left in cur/, it is claimed and tried again after the claim timeout.
            log.error("could not set aside corrupt queue file %s (%s): %s", path, reason, exc)
            return False
        log.warning("set aside corrupt queue file %s in %s: %s", name, self.failed, reason)
        return True


def open_queue(path: str, claim_timeout: float = 600.0) -> MaildirQueue:
    """Open (creating it) the queue at *path*, checking it is writable.

    Raises :class:`~pyramid_sendmail.exceptions.QueueUnavailable` when the
    folder cannot be used.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise QueueUnavailable(path, "is not a directory")
    try:
        queue = MaildirQueue(path, claim_timeout)
    except OSError as exc:
        raise QueueUnavailable(path, f"cannot be created: {exc}") from exc
    for directory in (queue.tmp, queue.new, queue.cur, queue.failed):
        if not os.access(directory, os.W_OK | os.X_OK):
            raise QueueUnavailable(path, f"has a folder that is not writable: {directory}")
    return queue


def _close_all(descriptors: dict[str, int]) -> None:
    for fd in descriptors.values():
        os.close(fd)
    descriptors.clear()


# The process id in new names, looked up once per process, not per message.
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)
