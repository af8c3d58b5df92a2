"""Reading replies as smtplib does, over a real socket pair."""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Callable
from typing import Any

import pytest

from pyramid_sendmail.mailers.smtp_errors import timed_out
from pyramid_sendmail.mailers.smtp_io import read_directly, read_reply


def read_with(
    reader: Callable[[smtplib.SMTP], Any],
    payload: bytes,
    close: bool = True,
    directly: bool = False,
) -> Any:
    ours, theirs = socket.socketpair()
    ours.settimeout(0.2)
    conn = smtplib.SMTP()
    conn.sock = ours
    if directly:
        read_directly(conn)
    try:
        theirs.sendall(payload)
        if close:
            theirs.shutdown(socket.SHUT_WR)
        try:
            return reader(conn)
        except Exception as exc:
            return exc
    finally:
        ours.close()
        theirs.close()


@pytest.mark.parametrize(
    "payload",
    [
        b"250 2.0.0 Ok: queued as 4F\r\n",
        b"250-first\r\n250-second\r\n250 last\r\n",
        b"421 4.3.2 Service shutting down\r\n",
        b"354\r\n",
        b"xyz not a code\r\n",
        b"",
        b"250-half a reply",
        b"250 " + b"x" * 9000 + b"\r\n",
    ],
    ids=["one line", "several", "421", "bare code", "garbled", "closed", "cut off", "too long"],
)
@pytest.mark.parametrize("directly", [False, True], ids=["smtplib's file", "read directly"])
def test_a_reply_reads_as_smtplib_reads_it(payload: bytes, directly: bool) -> None:
    expected = read_with(lambda conn: conn.getreply(), payload)
    got = read_with(read_reply, payload, directly=directly)

    if isinstance(expected, Exception):
        assert type(got) is type(expected)
        assert str(got) == str(expected)
    else:
        assert got == expected


@pytest.mark.parametrize("directly", [False, True], ids=["smtplib's file", "read directly"])
def test_a_silent_server_times_out_as_smtplib_reports_it(directly: bool) -> None:
    error = read_with(read_reply, b"250-more to come\r\n", close=False, directly=directly)

    assert isinstance(error, smtplib.SMTPServerDisconnected)
    assert timed_out(error)


def test_with_mail_debug_the_replies_are_printed_as_smtplib_prints_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def debugged(conn: smtplib.SMTP) -> Any:
        conn.set_debuglevel(1)
        return read_reply(conn)

    assert read_with(debugged, b"250 2.0.0 queued\r\n") == (250, b"2.0.0 queued")
    assert "reply: b'250 2.0.0 queued\\r\\n'" in capsys.readouterr().err
