"""Counts in words, for people to read: "1 message", "2 messages"."""

from __future__ import annotations

__all__ = ["counted"]


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """*count* and *noun*, in the plural (*plural*, or *noun* + "s") unless one."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
