"""A pytest plugin (entry point ``pytest11``) with the ``mail_outbox`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .testing import InMemoryMailer, activate


@pytest.fixture
def mail_outbox() -> Iterator[InMemoryMailer]:
    """An in-memory mailer that ``config.include('pyramid_sendmail.testing')``
    uses for every application created during the test.

    Read ``mail_outbox.outbox`` for what ``send()`` was given and
    ``mail_outbox.delivered`` for what committed transactions delivered.
    """
    mailer = InMemoryMailer()
    activate(mailer)
    try:
        yield mailer
    finally:
        activate(None)
