"""Strict address parsing and header value checks (pyramid_sendmail.message)."""

from __future__ import annotations

from email.headerregistry import Address

import pytest

from pyramid_sendmail.exceptions import InvalidMessageError, SendmailError
from pyramid_sendmail.message.addresses import parse_address
from pyramid_sendmail.message.headers import check_header_value

# Every character str.splitlines() breaks on; the email package refuses them
# all in a header, so they must be refused before they get that far.
LINE_BREAKS = ["\r", "\n", "\r\n", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85"]
LINE_BREAKS += ["\u2028", "\u2029"]


@pytest.mark.parametrize(
    ("value", "addr_spec", "display_name"),
    [
        ("alice@example.org", "alice@example.org", ""),
        ("<alice@example.org>", "alice@example.org", ""),
        ("Alice <alice@example.org>", "alice@example.org", "Alice"),
        ('"Doe, Alice" <alice@example.org>', "alice@example.org", "Doe, Alice"),
        ('"alice@example.org" <bob@example.org>', "bob@example.org", "alice@example.org"),
        ("Jörg Ü <jorg@example.org>", "jorg@example.org", "Jörg Ü"),
        ("jörg@example.org", "jörg@example.org", ""),
        ("alice@exämple.org", "alice@exämple.org", ""),
        ('"a b"@example.org', '"a b"@example.org', ""),
        ("alice@[192.0.2.1]", "alice@[192.0.2.1]", ""),
        ("alice+tag@mail.example.org", "alice+tag@mail.example.org", ""),
    ],
)
def test_parse_address_accepts_one_well_formed_address(value, addr_spec, display_name):
    address = parse_address(value)
    assert address.addr_spec == addr_spec
    assert address.display_name == display_name


def test_parse_address_accepts_name_and_address_tuple():
    address = parse_address(("Doe, Jörg", "jorg@example.org"))
    assert address.addr_spec == "jorg@example.org"
    assert address.display_name == "Doe, Jörg"
    assert str(address) == '"Doe, Jörg" <jorg@example.org>'


def test_parse_address_accepts_address_object():
    address = parse_address(Address("Ann", "ann", "example.org"))
    assert str(address) == "Ann <ann@example.org>"


@pytest.mark.parametrize(
    "value",
    [
        # CVE-2023-27043: the lenient parser once read these as bob or alice.
        "alice@example.org)<bob@example.org>",
        "alice@example.org<bob@example.org>",
        "alice@example.org <bob@example.org>",
        '"Bob" <bob@example.org> alice@example.org',
        # More than one address, or none.
        "alice@example.org, bob@example.org",
        "alice@example.org; bob@example.org",
        "Ann, Bob <bob@example.org>",
        "team: alice@example.org, bob@example.org;",
        "team: alice@example.org;",
        "undisclosed-recipients:;",
        "",
        "   ",
        # Incomplete or malformed.
        "alice",
        "alice@",
        "a@",
        "@b",
        "@example.org",
        "alice@@example.org",
        "alice@example..org",
        "alice.@example.org",
        "alice smith@example.org",
        "alice@exa mple.org",
        "Alice <alice@example.org",
        '""@example.org',
    ],
)
def test_parse_address_rejects_anything_but_one_address(value):
    with pytest.raises(InvalidMessageError) as info:
        parse_address(value, "recipients")
    assert "recipients" in str(info.value)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize("value", [None, 42, b"alice@example.org", ["a@example.org"]])
def test_parse_address_rejects_non_strings(value):
    with pytest.raises(InvalidMessageError, match="sender must be a string"):
        parse_address(value, "sender")


@pytest.mark.parametrize("brk", LINE_BREAKS)
def test_parse_address_rejects_line_break_in_display_name(brk):
    name = f"Ann{brk}Bcc: eve@example.org"
    for value in ((name, "ann@example.org"), f'"{name}" <ann@example.org>'):
        with pytest.raises(InvalidMessageError, match="cc"):
            parse_address(value, "cc")


@pytest.mark.parametrize("brk", ["\v", "\f", "\x85", "\u2028"])
def test_parse_address_rejects_line_break_in_address_object_display_name(brk):
    # Address() itself refuses CR and LF, but lets these through.
    value = Address(display_name=f"Ann{brk}Eve", addr_spec="ann@example.org")
    with pytest.raises(InvalidMessageError, match="sender contains a line break"):
        parse_address(value, "sender")


def test_parse_address_rejects_tuple_whose_address_is_invalid():
    with pytest.raises(InvalidMessageError, match=r"reply_to .*alice@example\.org<bob"):
        parse_address(("Alice", "alice@example.org<bob@example.org>"), "reply_to")


def test_invalid_message_error_is_a_sendmail_error_and_a_value_error():
    with pytest.raises(InvalidMessageError) as info:
        parse_address("nope")
    assert isinstance(info.value, SendmailError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("brk", LINE_BREAKS)
def test_check_header_value_rejects_every_kind_of_line_break(brk):
    with pytest.raises(InvalidMessageError, match="subject contains a line break"):
        check_header_value("subject", f"Hello{brk}Bcc: eve@example.org")


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x08", "\x1b", "\x1f", "\x7f", "\x9f"])
def test_check_header_value_rejects_control_characters(char):
    with pytest.raises(InvalidMessageError, match="X-Tag contains a control character"):
        check_header_value("X-Tag", f"a{char}b")


@pytest.mark.parametrize(
    "value", ["", "Hello", "tab\tseparated", "Grüße ✓ 日本語 🙂", "  spaced  ", "\xa0nbsp"]
)
def test_check_header_value_accepts_text_tab_and_unicode(value):
    check_header_value("subject", value)


def test_check_header_value_rejects_non_strings():
    with pytest.raises(InvalidMessageError, match="subject must be a string, not 42"):
        check_header_value("subject", 42)  # type: ignore[arg-type]


def test_a_period_in_a_display_name_is_accepted_and_quoted_when_written() -> None:
    address = parse_address("J. Smith <j.smith@example.com>")
    assert address.display_name == "J. Smith"
    assert address.addr_spec == "j.smith@example.com"
    assert str(address) == '"J. Smith" <j.smith@example.com>'


@pytest.mark.parametrize(
    "value",
    [
        "ann@example.org",
        "ann.lee+tag@mail.example.org",
        "Ann Lee <ann.lee@example.org>",
        "O'Neil <o@example.co.uk>",
        "J. Smith <j@example.com>",
        "Ann<ann@example.org>",
    ],
)
def test_the_fast_path_reads_plain_addresses_as_the_strict_parser_does(value: str) -> None:
    from pyramid_sendmail.message.addresses import _parse_strictly

    fast = parse_address(value)
    strict = _parse_strictly(value, "address")
    assert (fast.display_name, fast.username, fast.domain) == (
        strict.display_name,
        strict.username,
        strict.domain,
    )
