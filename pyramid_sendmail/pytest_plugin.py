"""A pytest plugin (entry point ``pytest11``) with the ``mail_outbox`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .testing import InMemoryMailer, activate, mailers_in_use

__all__ = ["mail_outbox", "pytest_runtest_setup", "pytest_runtest_teardown"]

_KEY = pytest.StashKey[InMemoryMailer]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Make a test's outbox the mailer of its applications before any of its
    fixtures runs, so that an ``app`` fixture set up before ``mail_outbox``
    records into the same outbox."""
    if "mail_outbox" in getattr(item, "fixturenames", ()):
        mailer = InMemoryMailer()
        item.stash[_KEY] = mailer
        activate(mailer)


def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Forget the test's mailer, even when a conftest overrode ``mail_outbox``."""
    if _KEY in item.stash:
        activate(None)


@pytest.fixture
def mail_outbox(request: pytest.FixtureRequest) -> Iterator[InMemoryMailer]:
    """An in-memory mailer that ``config.include('pyramid_sendmail.testing')``
    uses for every application created during the test (in its fixtures too,
    whatever their order).

    Read ``mail_outbox.outbox`` for what ``send()`` was given and
    ``mail_outbox.delivered`` for what committed transactions delivered. An
    application created before the test (a session-scoped fixture) has a
    mailer of its own: when it takes mail during the test, the test fails at
    teardown and says so, rather than leaving an empty outbox unexplained.
    """
    mailer = request.node.stash.get(_KEY, None)
    if mailer is None:  # requested dynamically (request.getfixturevalue)
        mailer = InMemoryMailer()
        activate(mailer)
    others = {id(other): other.taken for other in mailers_in_use() if other is not mailer}
    try:
        yield mailer
    finally:
        activate(None)
    missed = [
        other
        for other in mailers_in_use()
        if id(other) in others and other.taken > others[id(other)]
    ]
    if missed and not mailer.taken:
        pytest.fail(
            "mail was sent through an application created before this test, so "
            "mail_outbox did not see it: build the application in a fixture that "
            "the test uses (function scope), or read its own mailer with "
            "pyramid_sendmail.testing.get_testing_mailer(app) "
            "(docs: 'The mail_outbox fixture')",
            pytrace=False,
        )
