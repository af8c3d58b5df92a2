"""prepare(): from what the application passes to send() to the bytes sent."""

from __future__ import annotations

import email
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyramid_sendmail import Envelope, InvalidMessageError, Message
from pyramid_sendmail.message import prepare

PARSER = BytesParser(policy=policy.default)


def email_message(**headers: str) -> EmailMessage:
    msg = EmailMessage()
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("Hello,\nthis is the body.\n")
    return msg


def utf8_addr_spec(header) -> str:
    """The first address of a parsed header, as a reader of UTF-8 sees it.

    CPython 3.11's parser leaves the raw UTF-8 bytes of an SMTPUTF8 address
    as surrogate escapes in the Address objects; only ``str(header)`` decodes
    them.
    """
    spec = header.addresses[0].addr_spec
    return spec.encode("utf-8", "surrogateescape").decode("utf-8")


def snapshot(msg: EmailMessage) -> list[tuple[str, str]]:
    return [(name, str(value)) for name, value in msg.items()]


# --- the caller's object ------------------------------------------------------


def test_email_message_is_not_changed_by_prepare():
    msg = email_message(
        From="Ann <ann@example.org>",
        To="bob@example.org",
        Bcc="secret@example.org",
        Subject="Hi",
    )
    before = snapshot(msg)
    body_before = msg.get_content()
    envelope = prepare(msg, redirect_to="dev@example.org")
    assert snapshot(msg) == before
    assert msg.get_content() == body_before
    assert msg["Message-ID"] is None
    assert msg["Bcc"] == "secret@example.org"
    assert envelope.message is not msg


def test_later_changes_to_the_callers_object_do_not_reach_the_envelope():
    msg = email_message(From="ann@example.org", To="bob@example.org", Subject="One")
    message = Message(subject="One", sender="ann@example.org", recipients=["b@x.org"])
    prepared = [prepare(msg), prepare(message)]
    data = [envelope.data for envelope in prepared]
    msg.replace_header("Subject", "Two")
    message.subject = "Two"
    message.recipients.append("late@example.org")
    assert [envelope.data for envelope in prepared] == data
    assert all(b"Subject: One" in d for d in data)
    assert prepared[1].recipients == ("b@x.org",)


# --- Message-ID and Date ------------------------------------------------------


def test_message_id_and_date_are_added_when_missing():
    envelope = prepare(email_message(From="ann@example.org", To="bob@example.org"))
    msg = PARSER.parsebytes(envelope.data)
    assert re.fullmatch(r"<[^<>@\s]+@example\.org>", msg["Message-ID"])
    assert parsedate_to_datetime(msg["Date"]).tzinfo is not None


def test_message_id_is_returned_without_angle_brackets():
    envelope = prepare(email_message(From="ann@example.org", To="bob@example.org"))
    header = PARSER.parsebytes(envelope.data)["Message-ID"]
    assert header == f"<{envelope.message_id}>"
    assert "<" not in envelope.message_id
    assert ">" not in envelope.message_id


def test_each_message_gets_its_own_message_id():
    message = Message(sender="ann@example.org", recipients=["bob@example.org"])
    ids = {prepare(message).message_id for _ in range(20)}
    assert len(ids) == 20


def test_message_id_and_date_given_are_kept():
    msg = email_message(
        From="ann@example.org",
        To="bob@example.org",
        Message_ID="<order-42@shop.example.org>",
        Date="Mon, 02 Jan 2023 10:00:00 +0000",
    )
    envelope = prepare(msg)
    parsed = PARSER.parsebytes(envelope.data)
    assert envelope.message_id == "order-42@shop.example.org"
    assert parsed.get_all("Message-ID") == ["<order-42@shop.example.org>"]
    assert parsed.get_all("Date") == ["Mon, 02 Jan 2023 10:00:00 +0000"]


def test_message_id_domain_of_a_non_ascii_sender_is_idna_encoded():
    envelope = prepare(Message(sender="ann@bücher.example", recipients=["b@x.org"]))
    assert envelope.message_id.endswith("@xn--bcher-kva.example")


def test_message_id_falls_back_to_localhost_for_a_domain_idna_cannot_encode():
    # A label over 63 characters is a valid header address but no IDNA name.
    sender = "ann@" + "x" * 70 + ".example.org"
    envelope = prepare(Message(sender=sender, recipients=["bob@example.org"]))
    assert envelope.message_id.endswith("@localhost")


# --- sender -------------------------------------------------------------------


def test_default_sender_fills_a_missing_from():
    for message in (
        Message(recipients=["bob@example.org"], body="x"),
        email_message(To="bob@example.org"),
    ):
        envelope = prepare(message, default_sender="Shop <shop@example.org>")
        assert envelope.sender == "shop@example.org"
        assert PARSER.parsebytes(envelope.data)["From"] == "Shop <shop@example.org>"


def test_own_sender_wins_over_default_sender():
    envelope = prepare(
        Message(sender="ann@example.org", recipients=["bob@example.org"]),
        default_sender="shop@example.org",
    )
    assert envelope.sender == "ann@example.org"
    assert b"shop@example.org" not in envelope.data


def test_missing_sender_without_default_sender_is_refused():
    for message in (
        Message(recipients=["bob@example.org"]),
        email_message(To="bob@example.org"),
    ):
        with pytest.raises(InvalidMessageError, match=r"no sender.*default_sender"):
            prepare(message)


def test_invalid_default_sender_is_refused_naming_the_setting():
    with pytest.raises(InvalidMessageError, match=r"mail\.default_sender 'shop@'"):
        prepare(Message(recipients=["bob@example.org"]), default_sender="shop@")


def test_from_header_without_any_mailbox_is_refused():
    msg = email_message(To="bob@example.org")
    msg["From"] = "undisclosed-senders:;"
    with pytest.raises(InvalidMessageError, match="no sender address"):
        prepare(msg)


def test_sender_header_is_the_envelope_sender():
    msg = email_message(
        From="Ann <ann@example.org>",
        Sender="Mailing robot <bounces@lists.example.org>",
        To="bob@example.org",
    )
    assert prepare(msg).sender == "bounces@lists.example.org"
    message = Message(
        sender="ann@example.org",
        recipients=["bob@example.org"],
        extra_headers={"Sender": "bounces@lists.example.org"},
    )
    assert prepare(message).sender == "bounces@lists.example.org"


# --- recipients ---------------------------------------------------------------


def test_envelope_recipients_are_to_cc_and_bcc_without_duplicates_in_order():
    message = Message(
        sender="ann@example.org",
        recipients=["a@example.org", "Bee <b@example.org>"],
        cc=["b@example.org", "c@example.org"],
        bcc=["a@example.org", "d@example.org", "c@example.org"],
    )
    envelope = prepare(message)
    assert envelope.recipients == (
        "a@example.org",
        "b@example.org",
        "c@example.org",
        "d@example.org",
    )


def test_bcc_of_an_email_message_is_sent_to_but_removed_from_headers():
    msg = email_message(
        From="ann@example.org",
        To="bob@example.org",
        Bcc="Secret One <s1@example.org>, s2@example.org",
    )
    envelope = prepare(msg)
    assert envelope.recipients == ("bob@example.org", "s1@example.org", "s2@example.org")
    assert b"s1@" not in envelope.data
    assert b"s2@" not in envelope.data
    assert b"Bcc" not in envelope.data
    assert PARSER.parsebytes(envelope.data)["Bcc"] is None


def test_message_with_only_bcc_recipients_is_sent():
    envelope = prepare(email_message(From="ann@example.org", Bcc="hid@example.org"))
    assert envelope.recipients == ("hid@example.org",)
    assert b"hid@example.org" not in envelope.data


def test_message_without_recipients_is_refused():
    for message in (
        Message(sender="ann@example.org"),
        email_message(From="ann@example.org", Subject="nobody"),
    ):
        with pytest.raises(InvalidMessageError, match="no recipients"):
            prepare(message)


def test_redirect_to_sends_only_there_and_records_the_originals():
    message = Message(
        subject="Order",
        sender="shop@example.org",
        recipients=["ann@example.org"],
        cc=["bob@example.org"],
        bcc=["audit@example.org"],
    )
    envelope = prepare(message, redirect_to="Dev <dev@localhost.example>")
    assert envelope.recipients == ("dev@localhost.example",)
    parsed = PARSER.parsebytes(envelope.data)
    # To and Cc only: a Bcc address never reaches a header (it used to here).
    assert parsed["X-Original-Recipients"] == "ann@example.org, bob@example.org"
    assert b"audit@example.org" not in envelope.data
    # The headers still show who the message was written to.
    assert parsed["To"] == "ann@example.org"
    assert parsed["Cc"] == "bob@example.org"


def test_redirect_replaces_an_earlier_original_recipients_header():
    msg = email_message(From="a@example.org", To="b@example.org")
    msg["X-Original-Recipients"] = "forged@example.org"
    envelope = prepare(msg, redirect_to="dev@example.org")
    parsed = PARSER.parsebytes(envelope.data)
    assert parsed.get_all("X-Original-Recipients") == ["b@example.org"]


def test_invalid_redirect_to_is_refused_naming_the_setting():
    message = Message(sender="a@example.org", recipients=["b@example.org"])
    with pytest.raises(InvalidMessageError, match=r"mail\.redirect_to"):
        prepare(message, redirect_to="dev@example.org, other@example.org")


# --- headers of an EmailMessage -----------------------------------------------


@pytest.mark.parametrize(
    "name", ["X-Pyramid-Sendmail-To", "x-pyramid-sendmail-id", "X-PYRAMID-SENDMAIL-FROM"]
)
def test_reserved_header_on_an_email_message_is_refused(name):
    msg = email_message(From="a@example.org", To="b@example.org")
    msg[name] = "<eve@example.org>"
    with pytest.raises(InvalidMessageError, match=f"{name} is reserved"):
        prepare(msg)


@pytest.mark.parametrize(
    "value",
    [
        "alice@example.org)<bob@example.org>",
        "alice@example.org<bob@example.org>",
        "alice",
        "@example.org",
    ],
)
@pytest.mark.parametrize("header", ["To", "Cc", "Bcc", "From", "Sender", "Reply-To"])
def test_email_message_with_a_malformed_address_header_is_refused(header, value):
    headers = {"From": "a@example.org", "To": "b@example.org", header: value}
    msg = EmailMessage()
    for name, text in headers.items():
        msg[name] = text
    with pytest.raises(InvalidMessageError, match=f"header {header}|{header}"):
        prepare(msg)


@pytest.mark.parametrize(
    "raw_header",
    [
        b"Subject: =?utf-8?q?hi=0D=0ABcc:_eve@example.org?=",
        b"X-Note: =?utf-8?q?a=0AX-Injected:_1?=",
        b"From: =?utf-8?q?Eve=0D=0ABcc:_x@example.org?= <eve@example.org>",
    ],
)
def test_parsed_message_whose_header_decodes_to_a_line_break_is_refused(raw_header):
    data = b"From: a@example.org\r\nTo: b@example.org\r\n" + raw_header + b"\r\n\r\nbody\r\n"
    msg = PARSER.parsebytes(data)
    with pytest.raises(InvalidMessageError, match=r"line break|CR or LF"):
        prepare(msg)


def test_parsed_message_is_sent_with_its_own_headers():
    data = (
        b"From: Ann <ann@example.org>\r\nTo: bob@example.org\r\n"
        b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <m1@example.org>\r\n"
        b"\r\nbody\r\n"
    )
    envelope = prepare(PARSER.parsebytes(data))
    assert envelope.message_id == "m1@example.org"
    assert envelope.sender == "ann@example.org"
    assert PARSER.parsebytes(envelope.data)["Subject"] == "Grüße"


@pytest.mark.parametrize(
    "value",
    [
        "just text",
        b"From: a@example.org\r\n\r\nx",
        email.message_from_string("From: a@example.org\nTo: b@example.org\n\nx"),
        None,
    ],
)
def test_anything_but_a_message_is_refused(value):
    with pytest.raises(InvalidMessageError, match="Message or an EmailMessage"):
        prepare(value)  # type: ignore[arg-type]


# --- the bytes ----------------------------------------------------------------


def test_data_has_crlf_line_endings_and_no_line_over_998_bytes():
    message = Message(
        subject="S" * 1500,
        sender="ann@example.org",
        recipients=["bob@example.org"],
        body="x" * 5000 + "\nline two\rline three\n",
        html="<p>" + "y" * 5000 + "</p>",
        extra_headers={"X-Long": "z" * 3000, "X-Words": "word " * 600},
    )
    msg = email_message(From="a@example.org", To="b@example.org")
    msg.set_content("w" * 4000 + "\n" + "é" * 3000)
    for envelope in (prepare(message), prepare(msg)):
        data = envelope.data
        assert b"\n" not in data.replace(b"\r\n", b"")
        assert b"\r" not in data.replace(b"\r\n", b"")
        assert max(len(line) for line in data.split(b"\r\n")) <= 998
        assert data.endswith(b"\r\n")


def test_ascii_addresses_use_the_smtp_policy_and_need_no_smtputf8():
    envelope = prepare(
        Message(
            subject="Grüße",
            sender=("Jörg", "jorg@example.org"),
            recipients=["bob@example.org"],
        )
    )
    assert not envelope.needs_smtputf8
    assert envelope.data.isascii()


@pytest.mark.parametrize(
    "fields",
    [
        {"sender": "Jörg <jörg@example.org>"},
        {"recipients": ["zoë@example.org"]},
        {"bcc": ["zoë@example.org"]},
        # A non-ASCII domain alone needs no SMTPUTF8 (it is sent as IDNA).
        {"recipients": ["jörg@bücher.example"]},
    ],
)
def test_non_ascii_envelope_address_needs_smtputf8_and_is_written_raw(fields):
    values = {"sender": "ann@example.org", "recipients": ["bob@example.org"]}
    values.update(fields)
    envelope = prepare(Message(subject="Grüße", **values))
    assert envelope.needs_smtputf8
    header_block = envelope.data.split(b"\r\n\r\n")[0]
    # No encoded word hides an address: SMTPUTF8 allows raw UTF-8 headers.
    assert b"=?utf-8?" not in header_block.replace(b"Subject: =?utf-8?", b"")
    parsed = PARSER.parsebytes(envelope.data)
    if "sender" in fields:
        assert utf8_addr_spec(parsed["From"]) == "jörg@example.org"
        assert envelope.sender == "jörg@example.org"
    assert set(envelope.recipients) >= {a for a in values["recipients"] + values.get("bcc", [])}


def test_non_ascii_reply_to_address_is_written_raw_and_needs_smtputf8():
    envelope = prepare(
        Message(
            sender="ann@example.org",
            recipients=["bob@example.org"],
            reply_to="Jörg <jörg@example.org>",
        )
    )
    assert envelope.needs_smtputf8
    assert "Reply-To: Jörg <jörg@example.org>".encode() in envelope.data
    reply_to = PARSER.parsebytes(envelope.data)["Reply-To"]
    assert utf8_addr_spec(reply_to) == "jörg@example.org"
    assert str(reply_to) == "Jörg <jörg@example.org>"


def test_needs_smtputf8_is_known_from_the_bytes_alone():
    # As when the queue reads an envelope back from disk.
    prepared = prepare(
        Message(sender="a@example.org", recipients=["b@example.org"], cc=["zoë@x.org"])
    )
    reread = Envelope("a@example.org", ["b@example.org"], prepared.data, "id")
    assert reread.needs_smtputf8
    ascii_headers = b"From: a@example.org\r\nTo: b@example.org\r\n\r\n8bit body: \xc3\xa9\r\n"
    assert not Envelope("a@example.org", ["b@example.org"], ascii_headers, "id").needs_smtputf8


# --- the Envelope object ------------------------------------------------------


def test_envelope_message_is_the_sent_message_without_bcc():
    envelope = prepare(
        Message(
            subject="Hi",
            sender="a@example.org",
            recipients=["b@example.org"],
            bcc=["c@example.org"],
        )
    )
    assert envelope.message["Subject"] == "Hi"
    assert envelope.message["Bcc"] is None
    assert envelope.message["Message-ID"] == f"<{envelope.message_id}>"


def test_envelope_read_from_bytes_parses_its_message_when_asked():
    data = prepare(Message(subject="Hi", sender="a@x.org", recipients=["b@x.org"])).data
    envelope = Envelope("a@x.org", ["b@x.org"], data, "id@x.org")
    assert envelope.message["Subject"] == "Hi"
    assert envelope.message is envelope.message


def test_with_recipients_keeps_the_message_for_fewer_recipients():
    envelope = prepare(Message(sender="a@x.org", recipients=["b@x.org", "c@x.org", "d@x.org"]))
    retry = envelope.with_recipients(["c@x.org"])
    assert retry.recipients == ("c@x.org",)
    assert (retry.sender, retry.data, retry.message_id) == (
        envelope.sender,
        envelope.data,
        envelope.message_id,
    )
    assert envelope.recipients == ("b@x.org", "c@x.org", "d@x.org")


def test_envelope_repr_names_the_message_id_and_recipient_count():
    envelope = Envelope("a@x.org", ["b@x.org", "c@x.org"], b"", "m1@x.org")
    assert repr(envelope) == "<Envelope m1@x.org to 2 recipients>"


# --- raw header values: what the generator writes, not what items() shows -----

# Every line break str.splitlines() knows: the email package's generator
# splits a raw value on each of them and writes CR LF.
LINE_BREAKS = ["\r\n", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85"]
LINE_BREAKS += ["\u2028", "\u2029"]
# Folds that only a blank line would make a new header line or the body.
BLANK_CONTINUATIONS = ["hi\r\n\r\nBcc: v@example.net", "hi\r\n \r\n there", "hi\n\t", "hi\r\n"]


def addressed(msg: EmailMessage) -> EmailMessage:
    msg["From"] = "ann@example.org"
    msg["To"] = "bob@example.org"
    return msg


class MyEmailMessage(EmailMessage):
    """An application's own subclass."""


@pytest.mark.parametrize("brk", LINE_BREAKS)
@pytest.mark.parametrize("cls", [EmailMessage, MyEmailMessage])
def test_set_raw_header_with_a_line_break_is_refused(cls, brk):
    msg = addressed(cls())
    msg.set_raw("Subject", "hi" + brk + "Bcc: victim@example.net")
    with pytest.raises(InvalidMessageError, match="header Subject contains a line break"):
        prepare(msg)


@pytest.mark.parametrize("value", BLANK_CONTINUATIONS)
def test_set_raw_header_with_a_blank_continuation_line_is_refused(value):
    msg = addressed(EmailMessage())
    msg.set_raw("Subject", value)
    with pytest.raises(InvalidMessageError, match="line break"):
        prepare(msg)


def test_set_raw_header_name_with_a_line_break_is_refused():
    msg = addressed(EmailMessage())
    msg.set_raw("X-A: 1\r\nBcc", "victim@example.net")
    with pytest.raises(InvalidMessageError, match="is not a valid field name"):
        prepare(msg)


@pytest.mark.parametrize("brk", LINE_BREAKS)
def test_compat32_email_message_with_a_line_break_is_refused(brk):
    msg = addressed(EmailMessage(policy=policy.compat32))
    # compat32 stores and returns values as given: items() shows the break.
    msg["Subject"] = "hi" + brk + "Bcc: victim@example.net"
    with pytest.raises(InvalidMessageError, match="header Subject contains a line break"):
        prepare(msg)


def test_compat32_email_message_is_sent_with_its_folds():
    msg = addressed(EmailMessage(policy=policy.compat32))
    msg["Subject"] = "a long subject\r\n folded once"
    msg.set_payload("body\n")
    envelope = prepare(msg)
    assert b"\r\nSubject: a long subject\r\n folded once\r\n" in envelope.data
    assert envelope.recipients == ("bob@example.org",)
    assert PARSER.parsebytes(envelope.data)["Subject"] == "a long subject folded once"


@pytest.mark.parametrize("brk", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e"])
def test_parsed_message_with_a_line_break_inside_a_header_line_is_refused(brk):
    # The parser splits lines on CR and LF only; the generator on all of these.
    data = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi" + brk.encode()
    msg = PARSER.parsebytes(data + b"Bcc: victim@example.net\r\n\r\nbody\r\n")
    with pytest.raises(InvalidMessageError, match="header Subject contains a line break"):
        prepare(msg)


def test_parsed_message_with_folded_headers_is_sent_as_folded():
    data = (
        b"From: a@example.org\r\nTo: b@example.org,\r\n c@example.org\r\n"
        b"Subject: hi\r\n\tthere\r\n\r\nbody\r\n"
    )
    envelope = prepare(PARSER.parsebytes(data))
    assert envelope.recipients == ("b@example.org", "c@example.org")
    assert b"\r\nSubject: hi\r\n\tthere\r\n" in envelope.data


@pytest.mark.parametrize("cls", [email.message.Message, type("Mine", (email.message.Message,), {})])
def test_legacy_message_class_is_refused_with_a_hint(cls):
    msg = cls()
    msg["From"] = "ann@example.org"
    msg["To"] = "bob@example.org"
    msg["Subject"] = "hi\r\nBcc: victim@example.net"
    with pytest.raises(InvalidMessageError, match=r"not the legacy .*policy=email.policy.default"):
        prepare(msg)


# --- non-ASCII domains: IDNA, and no SMTPUTF8 ----------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"recipients": ["Ann <ann@bücher.example>"]},
        {"cc": ["ann@bücher.example"]},
        {"bcc": ["ann@Bücher.example"]},
    ],
)
def test_non_ascii_domain_is_sent_as_idna_without_smtputf8(fields):
    values = {"sender": "shop@bücher.example", "recipients": ["bob@example.org"]}
    values.update(fields)
    envelope = prepare(Message(subject="Grüße", body="Hallo", **values))
    assert not envelope.needs_smtputf8
    assert envelope.sender == "shop@xn--bcher-kva.example"
    assert "ann@xn--bcher-kva.example" in envelope.recipients
    header_block = envelope.data.split(b"\r\n\r\n")[0]
    assert header_block.isascii()
    # No encoded word in an address: a reader can answer it.
    assert b"?=.example" not in header_block
    assert PARSER.parsebytes(envelope.data)["From"] == "shop@xn--bcher-kva.example"


def test_non_ascii_domain_of_an_email_message_is_rewritten_as_idna_on_the_copy():
    msg = email_message(From="Shop <shop@bücher.example>", To="ann@bücher.example, b@x.org")
    msg["Cc"] = "c@x.org"
    envelope = prepare(msg, default_sender=None)
    assert not envelope.needs_smtputf8
    assert envelope.recipients == ("ann@xn--bcher-kva.example", "b@x.org", "c@x.org")
    parsed = PARSER.parsebytes(envelope.data)
    assert parsed["From"] == "Shop <shop@xn--bcher-kva.example>"
    assert parsed["To"] == "ann@xn--bcher-kva.example, b@x.org"
    # The headers keep their order; the caller's message is not changed.
    assert list(parsed)[:3] == ["From", "To", "Content-Type"]
    assert msg["To"] == "ann@bücher.example, b@x.org"


def test_non_ascii_local_part_keeps_its_domain_and_needs_smtputf8():
    envelope = prepare(Message(sender="a@example.org", recipients=["zoë@bücher.example"]))
    assert envelope.needs_smtputf8
    assert envelope.recipients == ("zoë@bücher.example",)


def test_domain_idna_cannot_encode_is_kept_and_needs_smtputf8():
    # A label over 63 characters is a valid header address but no IDNA name.
    recipient = "ann@b\u00fc" + "x" * 70 + ".example"
    envelope = prepare(Message(sender="a@example.org", recipients=[recipient]))
    assert envelope.recipients == (recipient,)
    assert envelope.needs_smtputf8


raw_text = st.lists(
    st.sampled_from(["a", " ", "\t", ":", "Bcc: v@example.net", "é", *LINE_BREAKS]), max_size=12
).map("".join)


@given(value=raw_text)
def test_a_raw_header_value_never_adds_a_header_line(value):
    msg = addressed(EmailMessage())
    msg.set_raw("Subject", value)
    msg.set_content("the body\n")
    try:
        envelope = prepare(msg)
    except InvalidMessageError:
        return
    parsed = PARSER.parsebytes(envelope.data)
    assert [n.lower() for n in parsed] == [
        "from", "to", "subject", "content-type", "content-transfer-encoding",
        "mime-version", "message-id", "date",
    ]  # fmt: skip
    assert parsed.get_content().rstrip() == "the body"
    assert envelope.recipients == ("bob@example.org",)
