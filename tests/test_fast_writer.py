"""The fast writer of simple messages: what it writes reads back exactly."""

from __future__ import annotations

import email.policy
from email.parser import BytesParser

from hypothesis import given
from hypothesis import strategies as st

from pyramid_sendmail import Message
from pyramid_sendmail.message import email_writer, fast_writer, prepare
from pyramid_sendmail.message.normalize import normalize

_parse = BytesParser(policy=email.policy.default).parsebytes

# Text without the characters the email package itself treats specially
# (control characters, surrogates, the exotic line breaks).
_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\x85"),
    max_size=120,
)
_body = st.text(
    st.characters(
        blacklist_categories=("Cs",), blacklist_characters="\v\f\x1c\x1d\x1e\x85\u2028\u2029"
    ),
    max_size=400,
)
_name = _text.map(lambda s: " ".join(s.split()))


def _read(data: bytes) -> dict[str, object]:
    msg = _parse(data)
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    return {
        "subject": str(msg["Subject"]).strip(),
        "from": _mailboxes(msg["From"]),
        "to": _mailboxes(msg["To"]),
        "reply_to": _mailboxes(msg["Reply-To"]),
        "x_note": str(msg["X-Note"]),
        "plain": _lf(plain.get_content()) if plain is not None else None,
        "html": _lf(html.get_content()) if html is not None else None,
        "content_type": msg.get_content_type(),
    }


def _squeeze(name: str) -> str:
    # Python 3.11's parser puts a space between adjacent encoded words of a
    # display name (CPython gh-128110); compare names without spaces.
    return "".join(name.split())


def _mailboxes(header: object) -> list[tuple[str, str]]:
    return [(_squeeze(a.display_name), a.addr_spec) for a in header.addresses]  # type: ignore[attr-defined]


def _lf(text: str) -> str:
    # The parser keeps a 7bit part's CRLF line ends; a QP part decodes to LF.
    return text.replace("\r\n", "\n")


def _as_read(text: str | None) -> str:
    # What a reader gets back: LF line ends, and a final line end.
    lines = (text or "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "" and len(lines) > 1:
        lines.pop()
    return "".join(line + "\n" for line in lines)


@given(
    subject=_text,
    sender_name=_name,
    to_name=_name,
    note=_name,
    body=st.none() | _body,
    html=st.none() | _body,
)
def test_direct_writer_output_reads_back_exactly(subject, sender_name, to_name, note, body, html):
    message = Message(
        subject=subject,
        sender=(sender_name, "sender@example.org"),
        recipients=[(to_name, "ann@example.org"), "bob@example.net"],
        reply_to="Help Desk <help@example.org>",
        body=body,
        html=html,
        extra_headers={"X-Note": note},
    )
    direct = build(message, None, None)
    assert direct is not None

    expected = {
        "subject": subject.strip(),
        "from": [(_squeeze(sender_name), "sender@example.org")],
        "to": [(_squeeze(to_name), "ann@example.org"), ("", "bob@example.net")],
        "reply_to": [("HelpDesk", "help@example.org")],
        "x_note": note,
        "plain": _as_read(body) if body is not None or html is None else None,
        "html": _as_read(html) if html is not None else None,
        "content_type": "multipart/alternative"
        if body is not None and html is not None
        else ("text/html" if html is not None else "text/plain"),
    }
    assert _read(direct) == expected
    assert all(len(line) <= 998 for line in direct.split(b"\r\n"))


def test_messages_the_writer_cannot_write_exactly_take_the_email_package():
    from pyramid_sendmail import Attachment

    assert (
        build(
            Message(
                recipients=["a@example.org"], attachments=[Attachment("a.txt", "text/plain", "x")]
            ),
            "s@example.org",
            None,
        )
        is None
    )
    assert build(Message(recipients=["jörg@example.org"]), "s@example.org", None) is None
    assert (
        build(Message(recipients=["a@example.org"], body="a\u2028b"), "s@example.org", None) is None
    )
    assert (
        build(
            Message(recipients=["a@example.org"], extra_headers={"Reply-To": "x@example.org"}),
            "s@example.org",
            None,
        )
        is None
    )


def test_address_lists_stay_lists_on_the_email_package_path():
    # With an attachment the email package writes the message; left alone it
    # would encode the comma after a long encoded display name, and readers
    # would see one recipient where there are two.
    from pyramid_sendmail import Attachment

    message = Message(
        sender="s@example.org",
        recipients=[("000000000000000000000¡¡ࠀࠀ", "ann@example.org"), "bob@example.net"],
        body="x",
        attachments=[Attachment("a.txt", "text/plain", "hi")],
    )
    data = prepare(message).data
    assert _mailboxes(_parse(data)["To"]) == [
        (_squeeze("000000000000000000000¡¡ࠀࠀ"), "ann@example.org"),
        ("", "bob@example.net"),
    ]
    assert b"=?utf-8?q?=2C?=" not in data


def build(message: Message, default_sender: str | None, redirect_to: str | None) -> bytes | None:
    """The fast writer's bytes for *message*, or None if it leaves it to the email package."""
    draft = normalize(message, default_sender, redirect_to)
    return fast_writer.write(draft) if fast_writer.can_write(draft) else None


def _summary(data: bytes) -> dict[str, object]:
    """What a reader gets from *data*: headers, and each leaf part's type,
    transfer encoding and decoded text."""
    msg = _parse(data)
    headers: list[tuple[str, object]] = []
    for name, value in msg.items():
        key = name.lower()
        if key == "content-type":
            value = (msg.get_content_type(), msg.get_param("charset"))
        elif hasattr(value, "addresses"):
            value = _mailboxes(value)
        else:
            value = str(value)
        headers.append((key, value))
    parts = [
        (p.get_content_type(), p["Content-Transfer-Encoding"], _lf(p.get_content()))
        for p in msg.walk()
        if not p.is_multipart()
    ]
    return {"headers": sorted(headers, key=repr), "parts": parts}


# Bodies at the edges of the transfer encoding rule: ASCII with control
# characters and "=", any text, and lines around the 998-character limit.
_ascii = st.text(st.characters(max_codepoint=0x7F), max_size=200)
_any_body = st.one_of(
    _ascii,
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=400),
    st.builds(lambda a, n, b: a + "x" * n + b, _ascii, st.integers(990, 1010), _ascii),
)


@given(
    subject=_text,
    sender_name=_name,
    to_name=_name,
    note=_name,
    body=st.none() | _any_body,
    html=st.none() | _any_body,
)
def test_both_writers_read_back_alike_with_the_same_transfer_encoding(
    subject, sender_name, to_name, note, body, html
):
    message = Message(
        subject=subject,
        sender=(sender_name, "sender@example.org"),
        recipients=[(to_name, "ann@example.org"), "bob@example.net"],
        cc=["Çé <cc@example.org>"],
        reply_to="Help Desk <help@example.org>",
        body=body,
        html=html,
        extra_headers={"X-Note": note},
    )
    draft = normalize(message, None, "redirect@example.org")
    email_package = email_writer.write(draft)
    if fast_writer.can_write(draft):
        assert _summary(fast_writer.write(draft)) == _summary(email_package)
    else:
        # Only the text the email package's own encoder splits is left to it.
        texts = (body or "") + (html or "")
        assert any(c in texts for c in "\v\f\x1c\x1d\x1e\x85\u2028\u2029")
