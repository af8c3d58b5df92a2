"""Strict parsing of email addresses and header values.

The standard library's lenient parsers accept, and once mis-read, strings
such as ``alice@example.org)<bob@example.org>``. Every address that reaches a
header or an SMTP envelope goes through :func:`parse_address`, which accepts
exactly one well-formed address and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from email.headerregistry import Address
from typing import cast

from ..exceptions import InvalidMessageError
from .headers import DEFAULT, check_header_value

__all__ = [
    "AddressLike",
    "address_list",
    "address_or_list",
    "parse_address",
    "parse_address_list",
    "with_ascii_domain",
]

#: What an application may give as an address.
AddressLike = str | Address | tuple[str, str]

_header_factory = DEFAULT.header_factory
# Defects that do not make an address wrong: non-ASCII local parts are valid
# with SMTPUTF8, which the mailer negotiates.
_TOLERATED_DEFECTS = ("NonASCIILocalPartDefect",)
# "J. Smith <j@example.com>": a period in a display name is obsolete syntax
# but everywhere in real address books; it reads back unambiguously.
_TOLERATED_OBSOLETE = ("period in 'phrase'",)

# The common, unambiguous shapes (``a.b@example.org``, ``Ann Lee
# <a@example.org>``) are recognised without the full parser, which costs
# about 100 microseconds an address; anything else takes the strict path.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_SIMPLE = re.compile(
    rf"(?:(?P<name>[A-Za-z0-9 .'-]*?) ?<)?"
    rf"(?P<local>{_ATOM}(?:\.{_ATOM})*)@(?P<domain>{_LABEL}(?:\.{_LABEL})+)"
    r"(?(name)>)"
)
_cache: dict[str, Address] = {}
_CACHE_SIZE = 2048


def parse_address(value: AddressLike, field: str = "address") -> Address:
    """Return *value* as one validated :class:`~email.headerregistry.Address`.

    Raises :class:`~pyramid_sendmail.exceptions.InvalidMessageError`, naming
    *field* and the value, for anything but a single complete address.
    """
    if isinstance(value, tuple) and len(value) == 2:
        name, spec = value
        check_header_value(field, name)
        address = _parse_one(spec, field)
        address = Address(display_name=name, username=address.username, domain=address.domain)
    elif isinstance(value, Address):
        check_header_value(field, value.display_name)
        address = _parse_one(value.addr_spec, field)
        address = Address(
            display_name=value.display_name,
            username=address.username,
            domain=address.domain,
        )
    else:
        address = _parse_one(value, field)
    return address


def _parse_one(value: object, field: str) -> Address:
    if not isinstance(value, str):
        raise InvalidMessageError(f"{field} must be a string, not {value!r}")
    address = _cache.get(value)
    if address is None:
        simple = _SIMPLE.fullmatch(value)
        if simple is not None:
            name = (simple["name"] or "").strip()
            address = Address(name, simple["local"], simple["domain"])
        else:
            address = _parse_strictly(value, field)
        if len(_cache) >= _CACHE_SIZE:
            _cache.clear()
        _cache[value] = address
    return address


def _parse_strictly(value: str, field: str) -> Address:
    check_header_value(field, value)
    try:
        header = _header_factory("To", value)
        addresses = header.addresses
        # A group ("team: a@example.org;") is a list, not one mailbox.
        grouped = any(group.display_name is not None for group in header.groups)
        defects = [
            d
            for d in header.defects
            if type(d).__name__ not in _TOLERATED_DEFECTS and str(d) not in _TOLERATED_OBSOLETE
        ]
    except Exception as exc:  # the parser raises odd errors on odd input
        raise InvalidMessageError(f"{field} {value!r} is not a valid address") from exc
    if defects or grouped or len(addresses) != 1:
        raise InvalidMessageError(f"{field} {value!r} is not exactly one valid address")
    address = addresses[0]
    if not address.username or not address.domain or " " in address.domain:
        raise InvalidMessageError(f"{field} {value!r} needs a local part and a domain")
    # Round trip: what we would write must read back as the same mailbox,
    # which rules out the ambiguous forms the lenient parser guesses at.
    again = _header_factory("To", str(address)).addresses
    if len(again) != 1 or again[0].addr_spec != address.addr_spec:
        raise InvalidMessageError(f"{field} {value!r} is ambiguous")
    return cast(Address, address)


def parse_address_list(header: object, field: str) -> list[Address]:
    """Every mailbox of a parsed address *header*, each checked strictly.

    Groups count by their members. A header the email package could not
    read as addresses, or read only with defects, is refused naming *field*.
    """
    if getattr(header, "defects", None):
        raise InvalidMessageError(f"{field} {str(header)!r} does not parse")
    addresses = getattr(header, "addresses", None)
    if addresses is None:
        return [parse_address(str(header), field)]
    return [parse_address(a, field) for a in addresses]


def with_ascii_domain(address: Address) -> Address:
    """*address* with its domain in IDNA form, when only the domain is not ASCII.

    ``ann@bücher.example`` becomes ``ann@xn--bcher-kva.example``: the same
    mailbox, which every relay accepts without SMTPUTF8 and every reader
    shows as written. A non-ASCII local part needs SMTPUTF8 anyway, so its
    domain stays as written; so does a domain IDNA cannot encode.
    """
    domain = address.domain
    if domain.isascii() or not address.username.isascii():
        return address
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return address
    return Address(address.display_name, address.username, ascii_domain)


def address_or_list(value: object) -> list[AddressLike]:
    """``reply_to``: one address, a ``(name, address)`` pair, or a list of them."""
    if not value:
        return []
    if isinstance(value, (str, Address, tuple)):
        # A tuple is one (name, address) pair, as pyramid_mailer reads it.
        return [cast(AddressLike, value)]
    if not isinstance(value, Iterable) or isinstance(value, (bytes, Mapping)):
        raise InvalidMessageError(
            f"reply_to must be an address or a list of addresses, not {value!r}"
        )
    return list(cast(Iterable[AddressLike], value))


def address_list(value: object, field: str) -> list[AddressLike]:
    """*value*, a list of addresses given as *field*, or a clear error.

    A lone string is refused rather than taken for one address: pyramid_mailer
    iterated it letter by letter, and guessing here would hide that bug in
    code that also runs on pyramid_mailer.
    """
    if isinstance(value, (str, Address)):
        raise InvalidMessageError(
            f"{field} must be a list of addresses, not the single address {str(value)!r}:"
            f" pass [{str(value)!r}]"
        )
    if not isinstance(value, Iterable) or isinstance(value, (bytes, Mapping)):
        raise InvalidMessageError(f"{field} must be a list of addresses, not {value!r}")
    return list(cast(Iterable[AddressLike], value))
