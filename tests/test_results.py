"""SMTPReply's one rule for temporary and permanent, and typed results."""

from __future__ import annotations

import pytest

from pyramid_sendmail import MailDeliveryError, SendResult, SMTPReply


@pytest.mark.parametrize(
    ("code", "temporary"),
    [
        # smtplib's code for a reply line it could not parse.
        (-1, True),
        (250, True),
        (354, True),
        (399, True),
        (400, True),
        (421, True),
        (499, True),
        (500, False),
        (550, False),
        (599, False),
        (600, True),
    ],
)
def test_only_a_5xx_reply_is_permanent(code, temporary):
    reply = SMTPReply(code, b"words")

    assert reply.temporary is temporary
    assert reply.permanent is not temporary


def test_a_reply_is_the_pair_it_holds():
    reply = SMTPReply(550, b"5.1.1 No such user")

    code, message = reply
    assert (code, message) == (550, b"5.1.1 No such user")
    assert reply == (550, b"5.1.1 No such user")
    assert str(reply) == "550 5.1.1 No such user"


def test_a_text_message_becomes_bytes_and_undecodable_bytes_still_print():
    assert SMTPReply.of((450, "4.2.1 Busy")) == SMTPReply(450, b"4.2.1 Busy")
    assert SMTPReply(550, b"caf\xe9").text == "caf\ufffd"


def test_refusals_given_as_pairs_arrive_as_replies():
    result = SendResult(accepted=("a@example.org",), refused={"b@example.org": (450, b"busy")})
    error = MailDeliveryError("no", temporary=True, refused={"b@example.org": (550, "gone")})

    assert isinstance(result.refused["b@example.org"], SMTPReply)
    assert result.refused["b@example.org"].temporary
    assert error.refused == {"b@example.org": SMTPReply(550, b"gone")}
    assert error.refused["b@example.org"].permanent
