"""SMTPMailer against a real aiosmtpd server on 127.0.0.1 (see smtpserver.py)."""

from __future__ import annotations

import base64
import smtplib
import socket
import ssl

import pytest
from slow_relay import SlowRelay
from smtpserver import Faults
from zope.interface.verify import verifyObject

from pyramid_sendmail import SMTPMailer
from pyramid_sendmail.exceptions import MailDeliveryError, RelayUnavailable
from pyramid_sendmail.interfaces import IMailSession, ISMTPMailer
from pyramid_sendmail.results import SendResult

SENDER = "ann@example.org"
BOB = "bob@example.org"
CAROL = "carol@example.org"
DAN = "dan@example.org"

MESSAGE = b"From: Ann <ann@example.org>\r\nTo: bob@example.org\r\nSubject: Hello\r\n\r\nHi Bob,\r\n"


def message(body: bytes = b"Hi Bob,\r\n") -> bytes:
    return MESSAGE.replace(b"Hi Bob,\r\n", body)


def mailer_for(server, **options) -> SMTPMailer:
    options.setdefault("timeout", 5.0)
    return SMTPMailer(host=server.host, port=server.port, **options)


def tls_mailer_for(server, **options) -> SMTPMailer:
    options.setdefault("cafile", server.cafile)
    options.setdefault("username", server.username)
    options.setdefault("password", server.password)
    return mailer_for(server, **options)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- plain delivery ---------------------------------------------------------


def test_send_delivers_the_exact_bytes_to_the_envelope_recipients(smtp_server):
    result = mailer_for(smtp_server).send(SENDER, [BOB, CAROL], MESSAGE)

    assert result == SendResult(accepted=(BOB, CAROL), refused={})
    [received] = smtp_server.messages
    assert received.sender == SENDER
    assert received.recipients == (BOB, CAROL)
    assert received.data == MESSAGE


@pytest.mark.parametrize(
    "body",
    [
        b".starts with a dot\r\n",
        b"a lone dot follows\r\n.\r\nand the message goes on\r\n",
        b"..two dots\r\n...three\r\n",
        b"ends with a lone dot\r\n.\r\n",
    ],
)
def test_lines_starting_with_a_dot_arrive_unchanged(smtp_server, body):
    mailer_for(smtp_server).send(SENDER, [BOB], message(body))

    assert smtp_server.messages[0].data == message(body)


def test_message_starting_with_a_dot_arrives_unchanged(smtp_server):
    data = b".X-Odd: header\r\n\r\nbody\r\n"
    mailer_for(smtp_server).send(SENDER, [BOB], data)

    assert smtp_server.messages[0].data == data


def test_message_without_final_line_break_gets_one(smtp_server):
    mailer_for(smtp_server).send(SENDER, [BOB], MESSAGE + b"no line break")

    assert smtp_server.messages[0].data == MESSAGE + b"no line break\r\n"


def test_session_sends_many_messages_over_one_connection(smtp_server):
    with mailer_for(smtp_server).session() as session:
        for n in range(3):
            session.send(SENDER, [BOB], message(b"message %d\r\n" % n))

    assert smtp_server.connections == 1
    assert smtp_server.messages_per_connection == [3]
    assert [m.data for m in smtp_server.messages] == [
        message(b"message %d\r\n" % n) for n in range(3)
    ]


def test_each_send_outside_a_session_uses_a_connection_of_its_own(smtp_server):
    mailer = mailer_for(smtp_server)
    mailer.send(SENDER, [BOB], MESSAGE)
    mailer.send(SENDER, [BOB], MESSAGE)

    assert smtp_server.messages_per_connection == [1, 1]


def test_session_reconnects_after_the_server_drops_an_idle_connection(smtp_server):
    with mailer_for(smtp_server).session() as session:
        session.send(SENDER, [BOB], message(b"first\r\n"))
        smtp_server.drop_connections()
        result = session.send(SENDER, [BOB], message(b"second\r\n"))

    assert result.accepted == (BOB,)
    assert [m.data for m in smtp_server.messages] == [
        message(b"first\r\n"),
        message(b"second\r\n"),
    ]
    assert smtp_server.messages_per_connection == [1, 1]


def test_server_closing_a_fresh_connection_is_temporary(smtp_server):
    smtp_server.faults.drop_at_mail = True

    with pytest.raises(MailDeliveryError) as info:
        mailer_for(smtp_server).send(SENDER, [BOB], MESSAGE)

    assert info.value.temporary
    assert not isinstance(info.value, RelayUnavailable)
    assert smtp_server.connections == 1


def test_session_reconnects_only_once_when_the_server_keeps_closing(smtp_server):
    with mailer_for(smtp_server).session() as session:
        session.send(SENDER, [BOB], MESSAGE)
        smtp_server.faults.drop_at_mail = True
        with pytest.raises(MailDeliveryError) as info:
            session.send(SENDER, [BOB], MESSAGE)

    assert info.value.temporary
    assert smtp_server.connections == 2
    assert len(smtp_server.messages) == 1


def test_closing_a_session_the_server_already_dropped_is_quiet(smtp_server):
    session = mailer_for(smtp_server).session()
    session.send(SENDER, [BOB], MESSAGE)
    smtp_server.drop_connections()

    session.close()
    session.close()

    assert len(smtp_server.messages) == 1


def test_session_reconnects_after_a_failed_message(smtp_server):
    with mailer_for(smtp_server).session() as session:
        smtp_server.faults.drop_in_data = True
        with pytest.raises(MailDeliveryError):
            session.send(SENDER, [BOB], message(b"lost\r\n"))
        smtp_server.faults.drop_in_data = False
        session.send(SENDER, [BOB], message(b"delivered\r\n"))

    assert [m.data for m in smtp_server.messages] == [message(b"delivered\r\n")]
    assert smtp_server.connections == 2


# -- TLS and authentication -------------------------------------------------


def test_starttls_and_auth_deliver_with_the_servers_ca(tls_smtp_server):
    mailer = tls_mailer_for(tls_smtp_server, tls=True)

    mailer.send(SENDER, [BOB], MESSAGE)

    [received] = tls_smtp_server.messages
    assert received.tls
    assert received.login == tls_smtp_server.username
    assert received.data == MESSAGE


def test_implicit_tls_and_auth_deliver_with_the_servers_ca(ssl_smtp_server):
    mailer = tls_mailer_for(ssl_smtp_server, ssl=True)

    mailer.send(SENDER, [BOB], MESSAGE)

    [received] = ssl_smtp_server.messages
    assert received.tls
    assert received.login == ssl_smtp_server.username


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_each_auth_mechanism_logs_in(smtp_server_factory, mechanism):
    server = smtp_server_factory(starttls=True, auth=True, auth_mechanisms=(mechanism,))

    tls_mailer_for(server, tls=True).send(SENDER, [BOB], MESSAGE)

    assert server.messages[0].login == server.username


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_credentials_that_are_not_ascii_log_in_as_utf8(smtp_server_factory, capfd, mechanism):
    # smtplib alone fails them with a UnicodeEncodeError before a byte is sent.
    server = smtp_server_factory(starttls=True, auth=True, auth_mechanisms=(mechanism,))
    server.username, server.password = "jörg@example.org", "pässwörd ✓"

    mailer = tls_mailer_for(
        server, tls=True, username=server.username, password=server.password, debug=2
    )
    mailer.send(SENDER, [BOB], MESSAGE)

    assert server.messages[0].login == "jörg@example.org"
    encoded = base64.b64encode("pässwörd ✓".encode()).decode()
    assert encoded not in capfd.readouterr().err


@pytest.mark.parametrize("server_fixture", ["tls_smtp_server", "ssl_smtp_server"])
@pytest.mark.parametrize("trusted", ["system CAs", "another CA"])
def test_certificate_from_an_unknown_ca_is_refused(request, certificates, server_fixture, trusted):
    server = request.getfixturevalue(server_fixture)
    cafile = None if trusted == "system CAs" else certificates.other_cafile
    tls = {"tls": True} if server_fixture == "tls_smtp_server" else {"ssl": True}
    mailer = tls_mailer_for(server, cafile=cafile, **tls)

    with pytest.raises(MailDeliveryError) as info:
        mailer.send(SENDER, [BOB], MESSAGE)

    assert info.value.temporary
    assert isinstance(info.value, RelayUnavailable)
    assert "certificate" in str(info.value)
    assert server.messages == []


@pytest.mark.parametrize("server_fixture", ["tls_smtp_server", "ssl_smtp_server"])
def test_unknown_ca_is_accepted_when_verification_is_off(request, server_fixture):
    server = request.getfixturevalue(server_fixture)
    tls = {"tls": True} if server_fixture == "tls_smtp_server" else {"ssl": True}
    mailer = tls_mailer_for(server, cafile=None, verify=False, **tls)

    mailer.send(SENDER, [BOB], MESSAGE)

    assert server.messages[0].tls


def test_host_name_is_verified(tls_smtp_server):
    # The certificate names 127.0.0.1 and localhost, not this address.
    mailer = tls_mailer_for(tls_smtp_server, tls=True)
    mailer.host = "127.0.0.2"

    with pytest.raises(MailDeliveryError) as info:
        mailer.send(SENDER, [BOB], MESSAGE)

    assert info.value.temporary
    assert isinstance(info.value, RelayUnavailable)
    assert tls_smtp_server.messages == []


@pytest.mark.parametrize("tls", ["tls", "ssl"])
def test_client_certificate_is_presented_when_configured(smtp_server_factory, certificates, tls):
    server = smtp_server_factory(starttls=tls == "tls", implicit_tls=tls == "ssl", client_cert=True)
    mailer = mailer_for(
        server, cafile=server.cafile, certfile=certificates.client_certfile, **{tls: True}
    )

    mailer.send(SENDER, [BOB], MESSAGE)

    assert server.messages[0].client_cert == "client.example"


def test_server_requiring_a_client_certificate_refuses_one_without(smtp_server_factory):
    server = smtp_server_factory(implicit_tls=True, client_cert=True)

    with pytest.raises(MailDeliveryError) as info:
        mailer_for(server, ssl=True, cafile=server.cafile).send(SENDER, [BOB], MESSAGE)

    assert info.value.temporary
    assert server.messages == []


def test_tls_against_a_server_without_starttls_is_temporary(smtp_server):
    mailer = mailer_for(smtp_server, tls=True)

    with pytest.raises(MailDeliveryError) as info:
        mailer.send(SENDER, [BOB], MESSAGE)

    assert info.value.temporary
    assert isinstance(info.value, RelayUnavailable)
    assert "STARTTLS" in str(info.value)
    assert smtp_server.messages == []


def test_tls_and_ssl_together_are_refused():
    with pytest.raises(ValueError, match="not both"):
        SMTPMailer(tls=True, ssl=True)


def test_credentials_without_tls_are_refused_at_construction(smtp_server):
    with pytest.raises(ValueError, match="unencrypted"):
        mailer_for(smtp_server, username="mailer", password="secret")


def test_allow_insecure_auth_logs_in_without_tls(smtp_server_factory):
    server = smtp_server_factory(auth=True, auth_without_tls=True)
    mailer = mailer_for(
        server,
        username=server.username,
        password=server.password,
        allow_insecure_auth=True,
    )

    mailer.send(SENDER, [BOB], MESSAGE)

    assert not server.messages[0].tls
    assert server.messages[0].login == server.username


def test_wrong_password_is_temporary_and_not_shown(tls_smtp_server):
    mailer = tls_mailer_for(tls_smtp_server, tls=True, password="not-the-password")

    with pytest.raises(MailDeliveryError) as info:
        mailer.send(SENDER, [BOB], MESSAGE)

    assert info.value.temporary
    assert isinstance(info.value, RelayUnavailable)
    assert info.value.code == 535
    # The relay's own words, for the operator; never the password.
    assert "535 5.7.8" in str(info.value)
    assert "not-the-password" not in str(info.value)
    assert tls_smtp_server.messages == []


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_password_never_appears_in_debug_output(smtp_server_factory, capfd, mechanism):
    server = smtp_server_factory(starttls=True, auth=True, auth_mechanisms=(mechanism,))
    user, password = server.username, server.password
    secrets = [
        password,
        base64.b64encode(password.encode()).decode(),
        base64.b64encode(f"\0{user}\0{password}".encode()).decode(),
        base64.b64encode(f"{user}\0{user}\0{password}".encode()).decode(),
    ]

    mailer = tls_mailer_for(server, tls=True, debug=2)

    mailer.send(SENDER, [BOB], MESSAGE)

    err = capfd.readouterr().err
    assert "rcpt" in err.lower()  # debugging did print the dialogue
    for secret in secrets:
        assert secret not in err
    assert password not in repr(mailer)


def test_ssl_context_verifies_certificates_and_host_names_by_default():
    context = SMTPMailer().ssl_context()

    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_ssl_context_without_verification():
    context = SMTPMailer(verify=False).ssl_context()

    assert context.verify_mode == ssl.CERT_NONE
    assert not context.check_hostname


# -- replies and failures ---------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "temporary", "code"),
    [("451 4.3.0 Try again later", True, 451), ("550 5.7.1 Go away", False, 550)],
)
def test_reply_to_mail_from_is_classified(smtp_server, reply, temporary, code):
    smtp_server.faults.mail = reply

    with pytest.raises(MailDeliveryError) as info:
        mailer_for(smtp_server).send(SENDER, [BOB], MESSAGE)

    assert info.value.temporary is temporary
    assert info.value.code == code
    assert info.value.command == "MAIL"
    assert reply.split(" ", 1)[1] in str(info.value)
    assert smtp_server.messages == []


@pytest.mark.parametrize("pipelining", [True, False])
def test_recipients_over_the_relays_limit_get_the_message_in_further_transactions(
    smtp_server, pipelining
):
    smtp_server.faults.recipient_limit = 2
    recipients = [f"r{i}@example.org" for i in range(5)]

    result = mailer_for(smtp_server, pipelining=pipelining).send(SENDER, recipients, MESSAGE)

    assert result.accepted == tuple(recipients)
    assert result.refused == {}
    assert [m.recipients for m in smtp_server.messages] == [
        tuple(recipients[:2]),
        tuple(recipients[2:4]),
        tuple(recipients[4:]),
    ]
    assert smtp_server.connections == 1


@pytest.mark.parametrize("pipelining", [True, False])
def test_size_is_declared_and_a_message_over_the_relays_fails_before_its_upload(
    smtp_server, pipelining
):
    smtp_server.data_size_limit = len(MESSAGE) + 10
    big = MESSAGE + b"x" * 100 + b"\r\n"

    with mailer_for(smtp_server, pipelining=pipelining).session() as session:
        with pytest.raises(MailDeliveryError) as info:
            session.send(SENDER, [BOB], big)
        session.send(SENDER, [BOB], MESSAGE)

    assert not info.value.temporary
    assert info.value.code == 552
    assert f"over the {len(MESSAGE) + 10}" in str(info.value)
    # Only the message that fits arrived, on the same connection, and it
    # told the relay its size (RFC 1870).
    [received] = smtp_server.messages
    assert received.data == MESSAGE
    assert f"SIZE={len(MESSAGE)}" in received.mail_options
    assert smtp_server.connections == 1


@pytest.mark.parametrize(
    ("reply", "temporary", "code"),
    [("452 4.3.1 Out of space", True, 452), ("554 5.7.1 Spam", False, 554)],
)
def test_reply_after_data_is_classified(smtp_server, reply, temporary, code):
    smtp_server.faults.data_end = reply

    with pytest.raises(MailDeliveryError) as info:
        mailer_for(smtp_server).send(SENDER, [BOB, CAROL], MESSAGE)

    assert info.value.temporary is temporary
    assert info.value.code == code
    assert info.value.command == "DATA"
    # Nobody took the message: every recipient must be tried again.
    assert info.value.accepted == ()


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize(
    ("reply", "temporary"), [("451 4.3.2 Not now", True), ("554 5.3.4 No data", False)]
)
def test_reply_to_data_is_classified(smtp_server, pipelining, reply, temporary):
    smtp_server.faults.data = reply

    with pytest.raises(MailDeliveryError) as info:
        mailer_for(smtp_server, pipelining=pipelining).send(SENDER, [BOB], MESSAGE)

    assert info.value.temporary is temporary
    assert info.value.code == int(reply[:3])
    assert info.value.command == "DATA"
    assert info.value.accepted == ()


@pytest.mark.parametrize("pipelining", [True, False])
def test_some_recipients_refused_are_reported_and_others_receive(smtp_server, pipelining):
    smtp_server.faults.rcpt = {
        BOB: "550 5.1.1 No such user",
        DAN: "450 4.2.1 Mailbox busy",
    }

    result = mailer_for(smtp_server, pipelining=pipelining).send(SENDER, [BOB, CAROL, DAN], MESSAGE)

    assert result.accepted == (CAROL,)
    assert result.refused == {
        BOB: (550, b"5.1.1 No such user"),
        DAN: (450, b"4.2.1 Mailbox busy"),
    }
    assert smtp_server.messages[0].recipients == (CAROL,)


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize(
    ("replies", "temporary"),
    [
        (["550 5.1.1 No such user", "551 5.1.6 Moved"], False),
        (["550 5.1.1 No such user", "450 4.2.1 Busy"], True),
    ],
)
def test_all_recipients_refused_raises_with_the_refusals(
    smtp_server, pipelining, replies, temporary
):
    smtp_server.faults.rcpt = dict(zip([BOB, CAROL], replies, strict=True))

    with pytest.raises(MailDeliveryError) as info:
        mailer_for(smtp_server, pipelining=pipelining).send(SENDER, [BOB, CAROL], MESSAGE)

    assert info.value.temporary is temporary
    assert set(info.value.refused) == {BOB, CAROL}
    assert info.value.refused[BOB][0] == 550
    assert info.value.accepted == ()
    assert smtp_server.messages == []


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("odd", ["600 6.0.0 Beyond the standard", "a reply without a code"])
def test_a_refusal_outside_4xx_and_5xx_makes_every_refusal_worth_retrying(
    smtp_server, pipelining, odd
):
    # A code no standard gives a meaning to (smtplib reads a line without
    # one as -1) says nothing against the recipient: it is retried, as a
    # 4xx would be, even beside a 5xx.
    smtp_server.faults.rcpt = {BOB: "550 5.1.1 No such user", CAROL: odd}

    with pytest.raises(MailDeliveryError) as info:
        mailer_for(smtp_server, pipelining=pipelining).send(SENDER, [BOB, CAROL], MESSAGE)

    assert info.value.temporary is True
    assert info.value.refused[BOB].permanent
    assert info.value.refused[CAROL].temporary


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("fault", ["mail", "rcpt", "data", "data_end"])
def test_session_goes_on_after_a_refused_message(smtp_server, pipelining, fault):
    with mailer_for(smtp_server, pipelining=pipelining).session() as session:
        if fault == "rcpt":
            smtp_server.faults.rcpt = {BOB: "550 5.1.1 No such user"}
        else:
            setattr(smtp_server.faults, fault, "550 5.7.1 No")
        with pytest.raises(MailDeliveryError):
            session.send(SENDER, [BOB], message(b"refused\r\n"))
        smtp_server.faults = Faults()
        session.send(SENDER, [BOB], message(b"accepted\r\n"))

    assert [m.data for m in smtp_server.messages] == [message(b"accepted\r\n")]
    assert smtp_server.connections == 1


def test_server_inviting_data_without_recipients_is_handled(smtp_server):
    # Against RFC 2920 some servers answer a pipelined DATA with 354 even
    # though they refused every recipient: the client must end that data.
    smtp_server.faults.data_without_recipients = True
    smtp_server.faults.rcpt = {BOB: "550 5.1.1 No such user"}

    with mailer_for(smtp_server).session() as session:
        with pytest.raises(MailDeliveryError) as info:
            session.send(SENDER, [BOB], message(b"refused\r\n"))
        session.send(SENDER, [CAROL], message(b"accepted\r\n"))

    assert not info.value.temporary
    assert set(info.value.refused) == {BOB}
    assert info.value.command == "RCPT"
    assert [m.data for m in smtp_server.messages] == [message(b"accepted\r\n")]
    assert smtp_server.connections == 1


def test_connection_dropped_during_data_is_temporary(smtp_server):
    smtp_server.faults.drop_in_data = True

    with pytest.raises(MailDeliveryError) as info:
        mailer_for(smtp_server).send(SENDER, [BOB], MESSAGE * 50)

    assert info.value.temporary
    assert not isinstance(info.value, RelayUnavailable)
    assert info.value.accepted == ()
    assert smtp_server.messages == []


@pytest.mark.parametrize("stall", ["MAIL", "DATA_END"])
def test_server_that_stops_answering_times_out_temporarily(smtp_server, stall):
    smtp_server.faults.stall = stall

    with pytest.raises(MailDeliveryError) as info:
        mailer_for(smtp_server, timeout=0.5).send(SENDER, [BOB], MESSAGE)

    assert info.value.temporary
    assert not isinstance(info.value, RelayUnavailable)
    assert "timed out" in str(info.value)


def large_message(size: int) -> bytes:
    line = b"x" * 78 + b"\r\n"
    return MESSAGE + line * (size // len(line))


@pytest.mark.parametrize("tls", [False, True])
def test_large_message_over_a_slow_steady_link_is_delivered(smtp_server_factory, tls):
    # 1.5 MB at 1 MB/s: three times mail.timeout in all, but never half a
    # second without progress. The timeout bounds each wait, not the upload.
    server = smtp_server_factory(starttls=tls)
    data = large_message(1_500_000)
    with SlowRelay(server.port, rate=1_000_000) as relay:
        mailer = SMTPMailer(relay.host, relay.port, timeout=0.5, tls=tls, cafile=server.cafile)
        result = mailer.send(SENDER, [BOB], data)

    assert result.accepted == (BOB,)
    assert server.messages[0].data == data


@pytest.mark.slow
def test_ten_megabytes_at_two_megabytes_a_second_with_timeout_2_are_delivered(smtp_server):
    data = large_message(10_000_000)
    with SlowRelay(smtp_server.port, rate=2_000_000) as relay:
        result = SMTPMailer(relay.host, relay.port, timeout=2).send(SENDER, [BOB], data)

    assert result.accepted == (BOB,)
    assert smtp_server.messages[0].data == data


def test_refused_connection_is_temporary():
    mailer = SMTPMailer(host="127.0.0.1", port=closed_port(), timeout=5.0)

    with pytest.raises(MailDeliveryError) as info:
        mailer.send(SENDER, [BOB], MESSAGE)

    assert info.value.temporary
    assert isinstance(info.value, RelayUnavailable)
    assert info.value.code is None


# -- extensions -------------------------------------------------------------

UTF8_SENDER = "anné@example.org"
UTF8_RECIPIENT = "jörg@bücher.example"


def test_non_ascii_addresses_go_through_with_smtputf8(smtp_server):
    data = message("Grüße\r\n".encode())

    result = mailer_for(smtp_server).send(UTF8_SENDER, [UTF8_RECIPIENT], data)

    assert result.accepted == (UTF8_RECIPIENT,)
    [received] = smtp_server.messages
    assert received.sender == UTF8_SENDER
    assert received.recipients == (UTF8_RECIPIENT,)
    assert "SMTPUTF8" in received.mail_options
    assert received.data == data


def test_smtputf8_without_8bitmime_does_not_ask_for_it(smtp_server_factory):
    server = smtp_server_factory(eightbitmime=False)

    mailer_for(server).send(SENDER, [UTF8_RECIPIENT], MESSAGE)

    assert server.messages[0].mail_options == (f"SIZE={len(MESSAGE)}", "SMTPUTF8")


def test_ascii_addresses_do_not_ask_for_smtputf8(smtp_server):
    mailer_for(smtp_server).send(SENDER, [BOB], MESSAGE)

    assert "SMTPUTF8" not in smtp_server.messages[0].mail_options


def test_non_ascii_address_without_smtputf8_fails_permanently(smtp_server_factory):
    server = smtp_server_factory(smtputf8=False)

    with pytest.raises(MailDeliveryError) as info:
        mailer_for(server).send(SENDER, [UTF8_RECIPIENT], MESSAGE)

    assert not info.value.temporary
    assert "SMTPUTF8" in str(info.value)
    assert server.messages == []


def test_pipelining_sends_the_envelope_in_one_go_when_offered(smtp_server):
    mailer_for(smtp_server).send(SENDER, [BOB, CAROL], MESSAGE)

    assert smtp_server.messages[0].pipelined


def test_pipelining_can_be_turned_off(smtp_server):
    mailer_for(smtp_server, pipelining=False).send(SENDER, [BOB, CAROL], MESSAGE)

    [received] = smtp_server.messages
    assert not received.pipelined
    assert received.recipients == (BOB, CAROL)


def test_lock_step_when_the_server_does_not_offer_pipelining(smtp_server_factory):
    server = smtp_server_factory(pipelining=False)

    mailer_for(server).send(SENDER, [BOB, CAROL], MESSAGE)

    [received] = server.messages
    assert not received.pipelined
    assert received.recipients == (BOB, CAROL)


def test_smtp_mailer_provides_ismtpmailer(smtp_server):
    mailer = mailer_for(smtp_server)

    assert verifyObject(ISMTPMailer, mailer)
    assert (mailer.host, mailer.port) == (smtp_server.host, smtp_server.port)


def test_smtp_session_provides_imailsession(smtp_server):
    with mailer_for(smtp_server).session() as session:
        assert verifyObject(IMailSession, session)


def test_local_hostname_is_given_in_ehlo(smtp_server):
    mailer_for(smtp_server, local_hostname="app1.example.org").send(SENDER, [BOB], MESSAGE)

    assert smtp_server.messages[0].helo == "app1.example.org"


def test_smtp_factory_makes_the_connection(smtp_server):
    calls = []

    def factory(host, port, **options):
        calls.append((host, port, options))
        return smtplib.SMTP(smtp_server.host, smtp_server.port, **options)

    mailer = SMTPMailer(host="relay.invalid", port=2525, timeout=5.0, smtp_factory=factory)
    mailer.send(SENDER, [BOB], MESSAGE)

    [(host, port, kwargs)] = calls
    assert (host, port, kwargs["timeout"]) == ("relay.invalid", 2525, 5.0)
    # The EHLO name is looked up once per process, not by smtplib per connection.
    assert kwargs["local_hostname"]
    assert smtp_server.messages[0].data == MESSAGE


def test_default_ports():
    assert SMTPMailer().port == 25
    assert SMTPMailer(ssl=True).port == 465
