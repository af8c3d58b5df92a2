"""SendmailMailer (against a real executable), FileMailer, ConsoleMailer, and the
one-shot session every mailer without a connection returns."""

from __future__ import annotations

import email
import io
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from zope.interface.verify import verifyObject

from pyramid_sendmail.exceptions import MailDeliveryError
from pyramid_sendmail.interfaces import IMailer, IMailSession
from pyramid_sendmail.mailers import ConsoleMailer, FileMailer, OneShotSession, SendmailMailer
from pyramid_sendmail.results import SendResult

SENDER = "ann@example.org"
BOB = "bob@example.org"
CAROL = "carol@example.org"

MESSAGE = (
    b"From: ann@example.org\r\n"
    b"To: bob@example.org\r\n"
    b"Subject: Hello\r\n"
    b"\r\n"
    b"Hi Bob,\r\n"
    b".\r\n"
    b"a lone dot above\r\n"
)

_SCRIPT = """\
#!{python}
import json, sys, time
data = sys.stdin.buffer.read()
with open({record!r}, "w") as f:
    json.dump({{"argv": sys.argv[1:], "stdin": data.decode("latin-1")}}, f)
time.sleep({sleep!r})
sys.stderr.write({stderr!r})
sys.exit({exit_code!r})
"""


class FakeSendmail:
    """A real executable that records its arguments and input, then exits."""

    def __init__(self, directory: Path, exit_code: int, stderr: str, sleep: float) -> None:
        self.path = directory / "sendmail"
        self.record = directory / "record.json"
        self.path.write_text(
            _SCRIPT.format(
                python=sys.executable,
                record=str(self.record),
                exit_code=exit_code,
                stderr=stderr,
                sleep=sleep,
            )
        )
        self.path.chmod(0o755)

    @property
    def ran(self) -> bool:
        return self.record.exists()

    @property
    def argv(self) -> list[str]:
        return json.loads(self.record.read_text())["argv"]

    @property
    def stdin(self) -> bytes:
        return json.loads(self.record.read_text())["stdin"].encode("latin-1")


@pytest.fixture
def fake_sendmail(tmp_path: Path) -> Callable[..., FakeSendmail]:
    def make(exit_code: int = 0, stderr: str = "", sleep: float = 0) -> FakeSendmail:
        return FakeSendmail(tmp_path, exit_code, stderr, sleep)

    return make


# -- SendmailMailer ---------------------------------------------------------


def test_sendmail_gets_sender_and_recipients_after_double_dash(fake_sendmail):
    sendmail = fake_sendmail()

    result = SendmailMailer(str(sendmail.path)).send(SENDER, [BOB, CAROL], MESSAGE)

    assert result == SendResult(accepted=(BOB, CAROL))
    assert sendmail.argv == ["-i", "-f", SENDER, "--", BOB, CAROL]


def test_recipient_beginning_with_a_dash_is_not_an_option(fake_sendmail):
    sendmail = fake_sendmail()

    SendmailMailer(str(sendmail.path)).send(SENDER, ["-oQ/tmp/x@example.org"], MESSAGE)

    argv = sendmail.argv
    assert argv[argv.index("--") + 1 :] == ["-oQ/tmp/x@example.org"]


def test_sendmail_reads_the_message_with_lf_line_endings(fake_sendmail):
    sendmail = fake_sendmail()

    SendmailMailer(str(sendmail.path)).send(SENDER, [BOB], MESSAGE)

    assert sendmail.stdin == MESSAGE.replace(b"\r\n", b"\n")
    assert b"\r" not in sendmail.stdin


def test_arguments_are_not_read_by_a_shell(fake_sendmail, tmp_path):
    sendmail = fake_sendmail()
    sender = "ann$(touch pwned)@example.org"

    SendmailMailer(str(sendmail.path)).send(sender, ["bob;touch pwned@example.org"], MESSAGE)

    assert sendmail.argv[2] == sender
    assert not (tmp_path / "pwned").exists()
    assert not Path("pwned").exists()


@pytest.mark.parametrize("exit_code", [69, 71, 74, 75])
def test_sendmail_temporary_exit_code_is_temporary(fake_sendmail, exit_code):
    sendmail = fake_sendmail(exit_code=exit_code, stderr="queue is full")

    with pytest.raises(MailDeliveryError) as info:
        SendmailMailer(str(sendmail.path)).send(SENDER, [BOB], MESSAGE)

    assert info.value.temporary
    assert str(exit_code) in str(info.value)
    assert "queue is full" in str(info.value)


@pytest.mark.parametrize("exit_code", [1, 64, 67])
def test_sendmail_other_exit_code_is_permanent(fake_sendmail, exit_code):
    sendmail = fake_sendmail(exit_code=exit_code, stderr="bad address")

    with pytest.raises(MailDeliveryError) as info:
        SendmailMailer(str(sendmail.path)).send(SENDER, [BOB], MESSAGE)

    assert not info.value.temporary
    assert "bad address" in str(info.value)


def test_missing_sendmail_binary_is_temporary(tmp_path):
    mailer = SendmailMailer(str(tmp_path / "no-such-sendmail"))

    with pytest.raises(MailDeliveryError) as info:
        mailer.send(SENDER, [BOB], MESSAGE)

    assert info.value.temporary
    assert "no-such-sendmail" in str(info.value)


def test_hung_sendmail_is_stopped_and_temporary(fake_sendmail):
    sendmail = fake_sendmail(sleep=60)

    with pytest.raises(MailDeliveryError) as info:
        SendmailMailer(str(sendmail.path), timeout=0.5).send(SENDER, [BOB], MESSAGE)

    assert info.value.temporary


# -- FileMailer -------------------------------------------------------------


def test_file_mailer_writes_one_eml_file_per_message(tmp_path):
    outbox = tmp_path / "outbox"
    mailer = FileMailer(str(outbox))

    first = mailer.send(SENDER, [BOB, CAROL], MESSAGE)
    mailer.send(SENDER, [CAROL], MESSAGE.replace(b"Hello", b"Again"))

    files = sorted(outbox.glob("*.eml"))
    assert len(files) == 2
    contents = {f.read_bytes() for f in files}
    assert contents == {
        b"X-Envelope-From: <ann@example.org>\r\n"
        b"X-Envelope-To: <bob@example.org>\r\n"
        b"X-Envelope-To: <carol@example.org>\r\n" + MESSAGE,
        b"X-Envelope-From: <ann@example.org>\r\n"
        b"X-Envelope-To: <carol@example.org>\r\n" + MESSAGE.replace(b"Hello", b"Again"),
    }
    assert first == SendResult(accepted=(BOB, CAROL))


def test_file_mailer_output_parses_as_the_message_with_envelope_headers(tmp_path):
    FileMailer(str(tmp_path)).send(SENDER, [BOB], MESSAGE)

    [path] = tmp_path.glob("*.eml")
    parsed = email.message_from_bytes(path.read_bytes())
    assert parsed["X-Envelope-To"] == "<bob@example.org>"
    assert parsed["Subject"] == "Hello"


# -- ConsoleMailer ----------------------------------------------------------


def test_console_mailer_prints_envelope_and_message(capsys):
    result = ConsoleMailer().send(SENDER, [BOB], MESSAGE)

    out = capsys.readouterr().out
    assert out.startswith("X-Envelope-From: <ann@example.org>\nX-Envelope-To: <bob@example.org>\n")
    assert "Subject: Hello\n" in out
    assert "\r" not in out
    assert result == SendResult(accepted=(BOB,))


def test_console_mailer_writes_to_the_given_stream(capsys):
    stream = io.StringIO()

    ConsoleMailer(stream).send(SENDER, [BOB], "Subject: Grüße\r\n\r\nhi\r\n".encode())

    assert "Subject: Grüße\n" in stream.getvalue()
    assert capsys.readouterr().out == ""


# -- all three --------------------------------------------------------------


def mailers(tmp_path: Path, sendmail: FakeSendmail) -> list[IMailer]:
    return [
        SendmailMailer(str(sendmail.path)),
        FileMailer(str(tmp_path / "files")),
        ConsoleMailer(io.StringIO()),
    ]


def test_each_mailer_provides_imailer(tmp_path, fake_sendmail):
    for mailer in mailers(tmp_path, fake_sendmail()):
        assert verifyObject(IMailer, mailer)


def test_each_mailer_sends_through_a_session(tmp_path, fake_sendmail):
    for mailer in mailers(tmp_path, fake_sendmail()):
        with mailer.session() as session:
            assert isinstance(session, OneShotSession)
            assert verifyObject(IMailSession, session)
            assert session.send(SENDER, [BOB], MESSAGE).accepted == (BOB,)


def test_one_shot_session_reports_each_outcome_and_a_bug_as_temporary(tmp_path, caplog):
    files = FileMailer(str(tmp_path / "files"))

    class Flaky:
        """Sends like the file mailer, but the second message hits a bug."""

        calls = 0

        def send(self, sender, recipients, message):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("a bug in the application's mailer")
            return files.send(sender, recipients, message)

    outcomes = []
    items = [(n, SENDER, [BOB], MESSAGE) for n in range(3)]
    with caplog.at_level(logging.ERROR), OneShotSession(Flaky()) as session:
        session.send_many(items, lambda token, outcome: outcomes.append((token, outcome)))

    assert [token for token, _ in outcomes] == [0, 1, 2]
    assert outcomes[0][1] == SendResult(accepted=(BOB,))
    assert isinstance(outcomes[1][1], MailDeliveryError)
    assert outcomes[1][1].temporary is True
    assert "a bug in the application's mailer" in str(outcomes[1][1])
    assert outcomes[2][1] == SendResult(accepted=(BOB,))
    assert len(list((tmp_path / "files").iterdir())) == 2
    assert "unexpected error" in caplog.text
