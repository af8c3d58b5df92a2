"""The ``.eml`` files that ``mail.mailer = file`` wrote, for the dev inbox."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

__all__ = ["MailFile", "MailFolder"]

_ENVELOPE_LINE = re.compile(rb"X-Envelope-(From|To): <([^>\r\n]*)>\r?\n")
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*<?([^>\r\n]*)>?", re.IGNORECASE | re.MULTILINE)


@dataclass
class MailFile:
    """One file of the folder: the envelope lines above the message, split off."""

    name: str
    modified: float
    sender: str
    recipients: tuple[str, ...]
    data: bytes

    @property
    def message_id(self) -> str | None:
        """The Message-ID without angle brackets, when the message has one."""
        head = self.data.partition(b"\r\n\r\n")[0]
        match = _MESSAGE_ID.search(head)
        return match.group(1).decode("ascii", "replace").strip() if match else None


class MailFolder:
    """The folder ``FileMailer`` writes into; only its ``.eml`` files are read.

    At most *limit* files are listed, the newest first: a folder that has
    grown over months stays quick to show.
    """

    def __init__(self, path: str, limit: int = 200) -> None:
        self.path = path
        self.limit = limit

    def names(self) -> list[str]:
        """The names of the newest ``.eml`` files, newest first."""
        try:
            entries = [e for e in os.scandir(self.path) if _is_mail_name(e.name) and e.is_file()]
        except FileNotFoundError:
            return []
        entries.sort(key=lambda e: (e.stat().st_mtime, e.name), reverse=True)
        return [e.name for e in entries[: self.limit]]

    def load(self, name: str) -> MailFile | None:
        """The file *name* of this folder, or None: never a path elsewhere."""
        if not _is_mail_name(name):
            return None
        path = os.path.join(self.path, name)
        try:
            with open(path, "rb") as f:
                raw = f.read()
            modified = os.stat(path).st_mtime
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        sender, recipients, offset = "", [], 0
        while match := _ENVELOPE_LINE.match(raw, offset):
            value = match.group(2).decode("utf-8", "replace")
            if match.group(1) == b"From":
                sender = value
            else:
                recipients.append(value)
            offset = match.end()
        return MailFile(name, modified, sender, tuple(recipients), raw[offset:])


def _is_mail_name(name: str) -> bool:
    # A plain file name: no separator, no "..", nothing hidden.
    return (
        name.endswith(".eml")
        and os.path.basename(name) == name
        and "/" not in name
        and "\\" not in name
        and not name.startswith(".")
    )
