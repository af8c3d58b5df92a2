"""Previews declared with the decorator, found by config.scan() in the tests."""

from __future__ import annotations

from typing import Any

from pyramid_sendmail import Message, mail_preview


@mail_preview(title="Password reset")
def password_reset(request: Any) -> Message:
    """The mail a user gets after asking for a new password.

    ``?name=`` changes the greeting.
    """
    name = request.params.get("name", "Ann")
    return Message(
        subject=f"Reset your password, {name}",
        recipients=["ann@example.org"],
        sender="app@example.com",
        body="…",
    )
