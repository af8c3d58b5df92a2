"""Validate an EmailMessage given to ``send()`` into a :class:`~.normalize.Draft`.

The message is copied, never changed; its headers are checked as the
generator will write them (the stored raw values, not only what
:meth:`~email.message.Message.items` shows), and what the envelope settles
(Bcc removed, From, Message-ID and Date filled in, domains in IDNA form, the
redirect recorded) is written onto the copy, the draft's ``source``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import EmailPolicy

from ..exceptions import InvalidMessageError
from .addresses import AddressLike, parse_address_list
from .headers import (
    ADDRESS_HEADERS,
    DEFAULT,
    check_field_name,
    check_not_reserved,
    check_raw_header_value,
)
from .normalize import Draft, HeaderValue, complete

__all__ = ["normalize_email"]


def normalize_email(
    message: EmailMessage, default_sender: AddressLike | None, redirect_to: str | None
) -> Draft:
    """Check a copy of *message* and complete it into a :class:`Draft`."""
    msg = copy.deepcopy(message)
    if not isinstance(msg.policy, EmailPolicy):
        # A compat32 message stores the same raw strings; read them, and set
        # what the envelope fills in, as header objects like any other.
        for part in msg.walk():
            part.policy = DEFAULT
    try:
        items = msg.items()
    except ValueError as exc:  # an encoded word that decodes to a line break
        raise InvalidMessageError(f"a header of the message is malformed: {exc}") from exc
    headers: list[tuple[str, HeaderValue]] = []
    # The stored values are what the generator writes: items() unfolds them
    # (and so hides a CR LF set with set_raw()), so both are checked.
    for (name, value), (_, raw) in zip(items, msg.raw_items(), strict=True):
        check_field_name(name)
        check_not_reserved(name)
        check_raw_header_value(f"header {name}", str(raw))
        text = check_raw_header_value(f"header {name}", str(value))
        if name.lower() in ADDRESS_HEADERS:
            headers.append((name, tuple(parse_address_list(value, f"header {name}"))))
        else:
            headers.append((name, text))
    given = _address_groups(headers)
    draft = complete(Draft(tuple(headers)), default_sender, redirect_to)
    # The envelope is settled: write what it filled in onto the copy.
    del msg["Bcc"]
    for key, values in _address_groups(draft.headers).items():
        if key in given and values != given[key]:
            # Domains turned to IDNA: the email package would write them as
            # encoded words, which no reader can answer.
            _replace_all(msg, key, values)
    added = dict(draft.headers)
    if msg["From"] is None:
        msg["From"] = list(added["From"])
    if redirect_to:
        del msg["X-Original-Recipients"]
        msg["X-Original-Recipients"] = added["X-Original-Recipients"]
    for name in ("Message-ID", "Date"):
        if msg[name] is None:
            msg[name] = added[name]
    return replace(draft, headers=(), source=msg)


def _address_groups(
    headers: Sequence[tuple[str, HeaderValue]],
) -> dict[str, list[tuple[Address, ...]]]:
    groups: dict[str, list[tuple[Address, ...]]] = {}
    for name, value in headers:
        if isinstance(value, tuple):
            groups.setdefault(name.lower(), []).append(value)
    return groups


def _replace_all(msg: EmailMessage, name: str, values: list[tuple[Address, ...]]) -> None:
    if len(values) == 1:
        msg.replace_header(name, list(values[0]))  # in its place
        return
    original = msg.get_all(name)
    real_name = original[0].name if original and hasattr(original[0], "name") else name
    del msg[name]
    for value in values:
        msg[real_name] = list(value)
