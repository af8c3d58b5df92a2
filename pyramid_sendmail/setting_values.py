"""How one raw ``mail.*`` value is read: the converters of the settings table.

Each takes the value as the INI file (or a settings dict) gives it and returns
it converted, or raises :class:`ValueError` with what was expected ("an
integer"); :func:`~pyramid_sendmail.settings.parse_settings` turns that into a
``ConfigurationError`` naming the key and the value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from email.utils import getaddresses
from typing import Any

from pyramid.settings import asbool, aslist

from .exceptions import InvalidMessageError
from .message import parse_address

__all__ = [
    "RATE_PERIODS",
    "choice_of",
    "to_address",
    "to_addresses",
    "to_bool",
    "to_count",
    "to_int",
    "to_mailer_kind",
    "to_path_prefix",
    "to_patterns",
    "to_port",
    "to_positive_int",
    "to_rate",
    "to_regex",
    "to_seconds",
    "to_text",
]

_BOOLEANS = frozenset(["true", "yes", "on", "1", "t", "y", "false", "no", "off", "0", "f", "n"])


def to_bool(value: Any) -> bool:
    """A boolean: true/false, yes/no, on/off, 1/0 (or t/f, y/n)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in _BOOLEANS:
        raise ValueError("a boolean (true or false)")
    return bool(asbool(text))


def to_int(value: Any) -> int:
    """An integer."""
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError("an integer") from None


def to_positive_int(value: Any) -> int:
    """An integer of 1 or more."""
    number = to_int(value)
    if number < 1:
        raise ValueError("a positive integer")
    return number


def to_count(value: Any) -> int:
    """A whole number, 0 or more."""
    number = to_int(value)
    if number < 0:
        raise ValueError("a whole number, 0 or more")
    return number


def to_seconds(value: Any) -> float:
    """A finite, positive number of seconds (decimals allowed)."""
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ValueError("a number of seconds") from None
    # "nan" and "inf" parse as floats but are no duration: nan compares
    # false with everything, so it would slip past every check below.
    if not math.isfinite(number) or number <= 0:
        raise ValueError("a positive number of seconds")
    return number


def to_port(value: Any) -> int:
    """A TCP port number."""
    number = to_int(value)
    if not 1 <= number <= 65535:
        raise ValueError("a port number between 1 and 65535")
    return number


def to_text(value: Any) -> str | None:
    """A string without surrounding white space; None when empty."""
    text = str(value).strip()
    return text or None


def to_address(value: Any) -> str | None:
    """One email address (kept as written, display name included); None when empty."""
    text = to_text(value)
    if text is None:
        return None
    try:
        parse_address(text)
    except InvalidMessageError:
        raise ValueError("one valid email address") from None
    return text


def to_addresses(value: Any) -> tuple[str, ...]:
    """Email addresses separated by commas, as bare addr-specs."""
    text = ", ".join(value) if isinstance(value, (list, tuple)) else str(value).strip()
    pairs = getaddresses([" ".join(text.split())])
    found = []
    for name, spec in pairs:
        try:
            found.append(parse_address((name, spec) if name else spec).addr_spec)
        except InvalidMessageError:
            raise ValueError("valid email addresses, separated by commas") from None
    if not found:
        raise ValueError("valid email addresses, separated by commas")
    return tuple(found)


def to_patterns(value: Any) -> tuple[str, ...]:
    """Address patterns separated by commas or white space, lower-cased."""
    text = " ".join(value) if isinstance(value, (list, tuple)) else str(value)
    patterns = tuple(p.strip(",").lower() for p in aslist(text, flatten=True))
    return tuple(p for p in patterns if p)


#: The periods a ``mail.rate_limit`` may name, in seconds.
RATE_PERIODS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}


def to_rate(value: Any) -> tuple[float, float]:
    """A rate such as ``14/s`` or ``1000/day``: (messages, seconds)."""
    if isinstance(value, tuple) and len(value) == 2:
        return (float(value[0]), float(value[1]))
    count, _, period = str(value).strip().lower().partition("/")
    try:
        number = float(count)
    except ValueError:
        number = 0.0
    seconds = RATE_PERIODS.get(period.strip())
    if seconds is None or not math.isfinite(number) or number <= 0:
        raise ValueError("a number of messages per s, min, h or day (such as 14/s)")
    return (number, seconds)


def to_regex(value: Any) -> str:
    """A regular expression that compiles."""
    text = str(value).strip()
    try:
        re.compile(text)
    except re.error as exc:
        raise ValueError(f"a regular expression ({exc})") from None
    return text


def choice_of(*choices: str) -> Callable[[Any], str]:
    """A converter accepting one of *choices*, case-insensitively."""

    def convert(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ValueError("one of " + ", ".join(choices))
        return text

    return convert


def to_path_prefix(value: Any) -> str:
    """A URL path prefix such as ``/_mail``, without a trailing slash."""
    text = "/" + str(value).strip().strip("/")
    if text == "/" or any(c in text for c in "{}*?#"):
        raise ValueError("a URL path such as /_mail")
    return text


def to_mailer_kind(value: Any) -> str:
    """A built-in mailer name, or a dotted name of a factory."""
    text = str(value).strip()
    if text.lower() in ("smtp", "sendmail", "file", "console"):
        return text.lower()
    if "." in text or ":" in text:
        return text
    raise ValueError("smtp, sendmail, file, console or a dotted name")
