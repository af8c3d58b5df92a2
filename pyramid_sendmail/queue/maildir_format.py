"""The Maildir queue's files: their names and their contents.

A name is made by :meth:`~.maildir.MaildirQueue` from the time in
nanoseconds, the pid and a counter, and the host; in ``new/`` and ``cur/`` it
carries the time the message is due or was claimed (``NAME,due=SECONDS``,
``NAME,claimed=SECONDS``; ``NAME,at=SECONDS`` for mail scheduled with
``send_at`` and never tried yet), after its priority class when that is not
normal (``NAME,p=high``), so a pass sorts what is due without reading a file.
A file is the RFC 5322 message preceded by ``X-Pyramid-Sendmail-*`` lines
that carry the envelope and its history.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Sequence

from ..exceptions import CorruptEntry
from ..message import RESERVED_PREFIX, Envelope
from .entry import NORMAL, PRIORITIES, QueueEntry, Schedule

__all__ = [
    "MESSAGE_NAME",
    "PREFIX",
    "base_name",
    "is_message_name",
    "mark_done",
    "message_names",
    "name_time",
    "parse",
    "priority_suffix",
    "rank",
    "read_file",
    "serialize",
    "stamp",
    "unlink_if_present",
    "unstamped",
]

#: The envelope lines' prefix: the header prefix applications may not use.
PREFIX = RESERVED_PREFIX.encode("ascii")
# A recipient line, and the same line once the recipient has the message:
# the same length, so marking one overwrites bytes and allocates nothing.
_TO = PREFIX + b"To: <"
_DONE = PREFIX + b"Ok: <"
#: A message's name: the time in ns, the pid and a counter, the host; then,
#: in new/ and cur/, when the message is due or was claimed.
MESSAGE_NAME = re.compile(
    r"([0-9]{20}\.[0-9]+_[0-9]+\.[^/,]+)(?:,p=(high|low))?"
    r"(?:,(due|claimed|at)=([0-9]{1,12}(?:\.[0-9]{1,6})?))?"
)
_RANKS = {"high": 0, None: 1, "low": 2}
# The envelope: every line up to the first that lacks the prefix.
_ENVELOPE = re.compile(b"(?:" + re.escape(PREFIX) + rb"[^\r\n]*\r\n)*")
_SKIP = len(PREFIX)
_BETWEEN = "\r\n" + RESERVED_PREFIX


def serialize(
    envelope: Envelope,
    queued_at: float,
    attempts: int,
    error: str | None = None,
    schedule: Schedule = NORMAL,
) -> bytes:
    lines = [
        f"X-Pyramid-Sendmail-Id: {envelope.message_id}",
        f"X-Pyramid-Sendmail-From: <{envelope.sender}>",
        *(f"X-Pyramid-Sendmail-To: <{r}>" for r in envelope.recipients),
        f"X-Pyramid-Sendmail-Queued: {queued_at:.6f}",
        f"X-Pyramid-Sendmail-Attempts: {attempts}",
        f"X-Pyramid-Sendmail-Length: {len(envelope.data)}",
    ]
    if schedule.send_at is not None:
        lines.append(f"X-Pyramid-Sendmail-Send-At: {schedule.send_at:.6f}")
    if schedule.expires_at is not None:
        lines.append(f"X-Pyramid-Sendmail-Expires: {schedule.expires_at:.6f}")
    if schedule.priority != "normal":
        lines.append(f"X-Pyramid-Sendmail-Priority: {schedule.priority}")
    if error:
        lines.append("X-Pyramid-Sendmail-Error: " + " ".join(error.split())[:900])
    return ("\r\n".join(lines) + "\r\n").encode("utf-8") + envelope.data


def parse(name: str, data: bytes) -> QueueEntry:
    end = _ENVELOPE.match(data).end()  # type: ignore[union-attr]
    if data.startswith(PREFIX, end):
        raise CorruptEntry("the envelope is not terminated", name)
    fields: dict[str, list[str]] = {}
    # One decode and one split for the whole envelope: line by line, this
    # cost as much as the rest of a claim's Python.
    for line in data[_SKIP : end - 2].decode("utf-8", "replace").split(_BETWEEN):
        key, _, value = line.partition(": ")
        fields.setdefault(key, []).append(value)
    try:
        sender = fields["From"][0].strip("<>")
        recipients = [r.strip("<>") for r in fields["To"]]
        queued_at = float(fields["Queued"][0])
        attempts = int(fields["Attempts"][0])
        message_id = fields["Id"][0]
        schedule = _schedule(fields)
    except (KeyError, IndexError, ValueError) as exc:
        raise CorruptEntry(f"the envelope lacks or garbles {exc}", name) from None
    body = data[end:]
    if not body or not recipients:
        raise CorruptEntry("the file holds no message or no recipient", name)
    length = fields.get("Length", [None])[0]
    if length is not None and length != str(len(body)):
        raise CorruptEntry(f"the message is truncated: {len(body)} of {length} bytes", name)
    envelope = Envelope(sender, recipients, body, message_id)
    error = fields.get("Error", [None])[0]
    return QueueEntry(name, envelope, queued_at, attempts, error, schedule=schedule)


def _schedule(fields: dict[str, list[str]]) -> Schedule:
    send_at = fields.get("Send-At", [None])[0]
    expires = fields.get("Expires", [None])[0]
    priority = fields.get("Priority", ["normal"])[0]
    if priority not in PRIORITIES:
        raise ValueError(f"priority {priority!r}")
    if send_at is None and expires is None and priority == "normal":
        return NORMAL
    return Schedule(
        None if send_at is None else float(send_at),
        None if expires is None else float(expires),
        priority,
    )


def priority_suffix(schedule: Schedule) -> str:
    """What a name carries for *schedule*'s priority class (nothing for normal)."""
    return "" if schedule.priority == "normal" else f",p={schedule.priority}"


def rank(name: str) -> int:
    """The priority class of a message by its name: 0 (high) goes first."""
    match = MESSAGE_NAME.fullmatch(name)
    return 1 if match is None else _RANKS[match[2]]


def mark_done(path: str, pending: Sequence[str]) -> int:
    """Mark, in the file at *path*, every recipient not in *pending* as done.

    Each such ``X-Pyramid-Sendmail-To`` line becomes ``X-Pyramid-Sendmail-Ok``
    in place, which :func:`parse` skips: the file no longer sends to those
    recipients. Overwriting bytes needs no free space, so this works when
    the disk is too full to write a new copy. Returns how many were marked.
    """
    fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    try:
        data = read_file(path)
        # Each pending address keeps as many lines as it has in *pending*.
        left = list(pending)
        marked = 0
        position = 0
        while data.startswith(PREFIX, position):
            end = data.find(b"\r\n", position)
            if end < 0:
                break
            if data.startswith(_TO, position):
                address = data[position + len(_TO) : end].decode("utf-8", "replace").rstrip(">")
                if address in left:
                    left.remove(address)
                else:
                    os.pwrite(fd, _DONE, position)
                    marked += 1
            position = end + 2
        if marked:
            os.fsync(fd)
        return marked
    finally:
        os.close(fd)


def is_message_name(name: str) -> bool:
    # Dotfiles and foreign files are never messages: only names we make are.
    return MESSAGE_NAME.fullmatch(name) is not None


def message_names(directory: str) -> list[str]:
    """The names of the messages in *directory* (no dotfiles, no strays)."""
    return [name for name in os.listdir(directory) if is_message_name(name)]


def stamp(name: str) -> float | None:
    """The time in a message's name: when it is due (``new/``) or was
    claimed (``cur/``); 0.0 without one; None for a name that is no message."""
    match = MESSAGE_NAME.fullmatch(name)
    if match is None:
        return None
    return float(match[4]) if match[4] else 0.0


def base_name(name: str) -> str:
    """*name* without its priority class and the time it is due or was claimed."""
    return name.partition(",")[0]


def unstamped(name: str) -> str:
    """*name* without the time it is due or was claimed (its priority kept)."""
    match = MESSAGE_NAME.fullmatch(name)
    if match is None or match[2] is None:
        return base_name(name)
    return f"{match[1]},p={match[2]}"


def name_time(name: str) -> float:
    try:
        return int(name.split(".", 1)[0]) / 1e9
    except ValueError:
        return 0.0


def read_file(path: str) -> bytes:
    """Read a whole queue file with the fewest system calls (usually one
    read: a queue file never changes once it is written)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        size = os.fstat(fd).st_size
        data = b""
        while True:
            chunk = os.read(fd, max(size - len(data), 65536))
            data += chunk
            if not chunk or len(data) >= size:
                return data
    finally:
        os.close(fd)


def unlink_if_present(path: str) -> None:
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
