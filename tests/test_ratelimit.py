"""The rate limit's spacing and the throttling rule, on a clock moved by hand."""

from __future__ import annotations

import pytest
from clock import Clock

from pyramid_sendmail import MailDeliveryError, SMTPReply
from pyramid_sendmail.ratelimit import RateLimit, ThrottleRule
from pyramid_sendmail.settings import MailSettings, parse_settings


def test_slots_are_spaced_evenly_and_not_saved_up_while_idle() -> None:
    clock = Clock(100.0)
    limit = RateLimit(10, 1.0, clock=clock)
    assert [limit.reserve() for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2])
    clock.advance(60)
    assert [limit.reserve() for _ in range(2)] == pytest.approx([0.0, 0.1])


def test_split_gives_each_process_its_share() -> None:
    assert RateLimit(14, 1.0).split(2).interval == pytest.approx(1 / 7)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("14/s", (14.0, 1.0)), ("500/min", (500.0, 60.0)), ("10000/day", (10000.0, 86400.0))],
)
def test_rate_limit_setting(text: str, expected: tuple[float, float]) -> None:
    assert parse_settings({"mail.rate_limit": text}).rate_limit == expected


@pytest.mark.parametrize(
    ("code", "text", "throttling"),
    [
        (454, "Throttling failure: Maximum sending rate exceeded.", True),
        (421, "4.7.0 rate limited, try later", True),
        (451, "4.3.0 Try again later", False),
        (554, "Throttling failure", False),
    ],
)
def test_throttle_rule(code: int, text: str, throttling: bool) -> None:
    rule = ThrottleRule(MailSettings().throttle_pattern)
    error = MailDeliveryError(text, temporary=code < 500, code=code)
    assert rule(error, {}) is throttling
    assert rule.reply(SMTPReply(code, text.encode())) is (throttling and code < 500)
