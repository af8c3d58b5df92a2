"""Header rules every message obeys, and the constants they name.

Everything here is defined once and used by the validation step
(:mod:`.normalize`) alone; the writers trust what it accepted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry

from ..exceptions import InvalidMessageError

__all__ = [
    "ADDRESS_HEADERS",
    "DEFAULT",
    "RESERVED_PREFIX",
    "SMTP",
    "SMTPUTF8",
    "HeadersLike",
    "check_field_name",
    "check_header_value",
    "check_not_reserved",
    "check_raw_header_value",
]

#: Extra headers: a mapping or ``(name, value)`` pairs.
HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]]

#: Headers this package writes into queue files; an application may not.
RESERVED_PREFIX = "X-Pyramid-Sendmail-"
#: Headers that hold addresses (lower case).
ADDRESS_HEADERS = frozenset(["from", "sender", "to", "cc", "bcc", "reply-to"])

# Everything str.splitlines() breaks on: the email package refuses all of
# them in a header value, and a reader may too.
_LINE_BREAKS = frozenset("\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029")
# A fold: CRLF or LF, then the space or tab that makes the next line a
# continuation (RFC 5322 section 2.2.3). A continuation line holding only
# white space (or nothing) is refused: some readers take it for the blank line
# that ends the header section.
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_BLANK_CONTINUATION = re.compile(r"\r?\n[ \t]*(?:\r?\n|\Z)")
# RFC 5322 ftext: printable ASCII but the colon.
_FIELD_NAME = re.compile(r"[!-9;-~]+")


def check_header_value(field: str, value: object) -> None:
    """Reject a header value that could start a new header line.

    Line breaks of any kind, and other control characters but tab, have no
    place in a header (RFC 5322 section 2.2); NUL and its kin would also be
    written raw into a UTF-8 (SMTPUTF8) header.
    """
    if not isinstance(value, str):
        raise InvalidMessageError(f"{field} must be a string, not {value!r}")
    if value.isascii() and value.isprintable():
        return
    for char in value:
        if char in _LINE_BREAKS:
            raise InvalidMessageError(f"{field} contains a line break: {value!r}")
        if (char < " " and char != "\t") or "\x7f" <= char <= "\x9f":
            raise InvalidMessageError(f"{field} contains a control character: {value!r}")


def check_raw_header_value(field: str, value: object) -> str:
    """Check a header value as stored in a message; return it unfolded.

    A value given to :meth:`~email.message.Message.set_raw`, stored by a
    ``compat32`` policy or read by the parser is written out as it is, split
    on every line break :meth:`str.splitlines` knows; :meth:`~email.message.
    Message.items` may already have unfolded it, hiding a CR LF. Here a
    value may hold proper folds (CRLF or LF followed by a space or tab, as
    parsed messages do) and no other line break or control character.
    """
    if not isinstance(value, str):
        raise InvalidMessageError(f"{field} must be a string, not {value!r}")
    if _BLANK_CONTINUATION.search(value):
        raise InvalidMessageError(f"{field} contains a line break: {value!r}")
    unfolded = _FOLD.sub("", value)
    check_header_value(field, unfolded)
    return unfolded


def check_field_name(name: object) -> str:
    """Return *name* if it is a valid header field name."""
    if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
        raise InvalidMessageError(f"header name {name!r} is not a valid field name")
    return name


def check_not_reserved(name: str) -> None:
    """Refuse a header name under :data:`RESERVED_PREFIX`."""
    if name.lower().startswith(_RESERVED_LOWER):
        raise InvalidMessageError(f"header {name} is reserved for pyramid_sendmail")


_RESERVED_LOWER = RESERVED_PREFIX.lower()


class _CachingHeaderRegistry(HeaderRegistry):
    # The standard registry creates a new class every time a header is set or
    # parsed, a fifth of the cost of building a message; build each once.
    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls


_registry = _CachingHeaderRegistry()

#: :data:`email.policy.default`, :data:`~email.policy.SMTP` and
#: :data:`~email.policy.SMTPUTF8`, with the caching header registry.
DEFAULT = policy.default.clone(header_factory=_registry)
SMTP = policy.SMTP.clone(header_factory=_registry)
SMTPUTF8 = policy.SMTPUTF8.clone(header_factory=_registry)
