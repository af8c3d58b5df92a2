"""SMTPSession.send_many: messages back to back, pipelined across messages."""

from __future__ import annotations

import pytest

from pyramid_sendmail import MailDeliveryError, SendResult, SMTPMailer


def _message(n: int) -> bytes:
    return (
        f"From: a@example.com\r\nTo: b@example.org\r\nSubject: {n}\r\n\r\n"
        f".line starting with a dot {n}\r\nbody {n}\r\n"
    ).encode()


def _items(count: int, recipients: tuple[str, ...] = ("b@example.org",)):
    return [(n, "a@example.com", recipients, _message(n)) for n in range(count)]


def _send_many(server, items, **options):
    outcomes: list[tuple[int, object]] = []
    mailer = SMTPMailer(server.host, server.port, **options)
    with mailer.session() as session:
        session.send_many(items, lambda token, outcome: outcomes.append((token, outcome)))
    return outcomes


@pytest.mark.parametrize("pipelining", [True, False])
def test_send_many_delivers_every_message_once_in_order_over_one_connection(
    smtp_server, pipelining
):
    outcomes = _send_many(smtp_server, _items(20), pipelining=pipelining)

    assert [token for token, _ in outcomes] == list(range(20))
    assert all(isinstance(o, SendResult) for _, o in outcomes)
    assert [m.data for m in smtp_server.messages] == [_message(n) for n in range(20)]
    assert smtp_server.connections == 1


def test_send_many_pipelines_envelopes_behind_the_previous_data(smtp_server):
    _send_many(smtp_server, _items(5))

    # From the second message on, MAIL arrived together with the data
    # before it (the client did not wait for the previous reply).
    assert [m.pipelined for m in smtp_server.messages[1:]] == [True] * 4


def test_send_many_reports_a_refused_message_and_goes_on(smtp_server):
    smtp_server.faults.rcpt["bad@example.org"] = "550 5.1.1 No such user"
    items = _items(3)
    items[1] = (1, "a@example.com", ("bad@example.org",), _message(1))

    outcomes = dict(_send_many(smtp_server, items))

    assert isinstance(outcomes[0], SendResult) and isinstance(outcomes[2], SendResult)
    assert isinstance(outcomes[1], MailDeliveryError)
    assert not outcomes[1].temporary
    assert outcomes[1].refused["bad@example.org"][0] == 550
    assert [m.data for m in smtp_server.messages] == [_message(0), _message(2)]


def test_send_many_reports_partial_refusal_per_recipient(smtp_server):
    smtp_server.faults.rcpt["later@example.org"] = "450 4.2.0 Mailbox busy"
    items = _items(2, recipients=("b@example.org", "later@example.org"))

    outcomes = dict(_send_many(smtp_server, items))

    for outcome in outcomes.values():
        assert isinstance(outcome, SendResult)
        assert outcome.accepted == ("b@example.org",)
        assert outcome.refused["later@example.org"][0] == 450


def test_send_many_reports_a_refusal_after_the_data(smtp_server):
    smtp_server.faults.data_end = "451 4.3.0 Try later"

    outcomes = _send_many(smtp_server, _items(3))

    assert len(outcomes) == 3
    for _, outcome in outcomes:
        assert isinstance(outcome, MailDeliveryError)
        assert outcome.temporary and outcome.code == 451
    assert smtp_server.messages == []


def test_send_many_reports_in_flight_messages_when_the_connection_drops(smtp_server):
    items = _items(4)
    delivered: list[int] = []

    def lazily():
        for item in items:
            if item[0] == 2:
                smtp_server.faults.drop_in_data = True
            yield item

    outcomes: list[tuple[int, object]] = []
    mailer = SMTPMailer(smtp_server.host, smtp_server.port)
    with mailer.session() as session:
        session.send_many(lazily(), lambda t, o: outcomes.append((t, o)))
    delivered = [int(m.data.split(b"Subject: ")[1].split(b"\r\n")[0]) for m in smtp_server.messages]

    assert sorted(t for t, _ in outcomes) == [0, 1, 2, 3]
    failed = [t for t, o in outcomes if isinstance(o, MailDeliveryError)]
    assert all(o.temporary for _, o in outcomes if isinstance(o, MailDeliveryError))
    # Every message is either reported sent and was received, or reported
    # as a temporary failure (and will be retried): none is lost.
    sent = [t for t, o in outcomes if isinstance(o, SendResult)]
    assert set(sent) <= set(delivered)
    assert set(sent) | set(failed) == {0, 1, 2, 3}


def _utf8_reply_to() -> bytes:
    return (
        "From: a@example.com\r\nTo: b@example.org\r\nReply-To: jörg@example.org\r\n"
        "Subject: hi\r\n\r\nbody\r\n"
    ).encode()


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_non_ascii_address_in_a_header_asks_for_smtputf8(smtp_server, pipelining):
    mailer = SMTPMailer(smtp_server.host, smtp_server.port, pipelining=pipelining)
    mailer.send("a@example.com", ["b@example.org"], _utf8_reply_to())

    [received] = smtp_server.messages
    assert "SMTPUTF8" in received.mail_options


def test_a_non_ascii_header_address_without_smtputf8_is_refused_clearly(smtp_server_factory):
    server = smtp_server_factory(smtputf8=False)
    mailer = SMTPMailer(server.host, server.port)
    with pytest.raises(MailDeliveryError, match="SMTPUTF8") as caught:
        mailer.send("a@example.com", ["b@example.org"], _utf8_reply_to())
    assert not caught.value.temporary
    assert server.messages == []


# -- a relay that says 421 and hangs up --------------------------------------

SHUTTING_DOWN = "421 4.3.2 Service shutting down"


@pytest.mark.parametrize("pipelining", [True, False])
def test_421_at_mail_from_is_reported_in_the_relays_words(smtp_server, pipelining):
    smtp_server.faults.mail = SHUTTING_DOWN
    smtp_server.faults.hang_up_after_mail = True

    with pytest.raises(MailDeliveryError) as info:
        SMTPMailer(smtp_server.host, smtp_server.port, pipelining=pipelining).send(
            "a@example.com", ["b@example.org"], _message(0)
        )

    assert info.value.temporary
    assert info.value.code == 421
    assert "Service shutting down" in str(info.value)
    assert smtp_server.messages == []


def test_421_at_mail_from_behind_a_pipelined_message_is_reported_in_the_relays_words(
    smtp_server,
):
    def lazily():
        yield from _items(1)
        # The second envelope goes out behind the first message's data.
        smtp_server.faults.mail = SHUTTING_DOWN
        smtp_server.faults.hang_up_after_mail = True
        yield (1, "a@example.com", ("b@example.org",), _message(1))

    outcomes: list[tuple[int, object]] = []
    with SMTPMailer(smtp_server.host, smtp_server.port).session() as session:
        session.send_many(lazily(), lambda t, o: outcomes.append((t, o)))

    [(_, first), (_, second)] = outcomes
    assert isinstance(first, SendResult)
    assert isinstance(second, MailDeliveryError)
    assert second.temporary and second.code == 421
    assert "Service shutting down" in str(second)
