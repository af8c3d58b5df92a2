"""The message page's analysis: MIME tree, envelope comparison, warnings."""

from __future__ import annotations

from devtools_app import rich_message

from pyramid_sendmail import Message
from pyramid_sendmail.devtools.anatomy import dissect, rewrite_cids
from pyramid_sendmail.message import prepare


def _anatomy(message: Message, redirect_to: str | None = None):  # type: ignore[no-untyped-def]
    envelope = prepare(message, "app@example.com", redirect_to)
    return dissect(envelope.data, envelope.sender, envelope.recipients)


def _warned(anatomy, text: str) -> bool:  # type: ignore[no-untyped-def]
    return any(text in warning for warning in anatomy.warnings)


def test_tree_lists_every_part_with_depth_and_inline_images_by_cid() -> None:
    anatomy = _anatomy(rich_message())
    assert [(p.depth, p.content_type) for p in anatomy.parts] == [
        (0, "multipart/mixed"),
        (1, "multipart/alternative"),
        (2, "text/plain"),
        (2, "multipart/related"),
        (3, "text/html"),
        (3, "image/png"),
        (1, "text/plain"),
    ]
    assert anatomy.cids == {"logo": 5}
    assert [p.filename for p in anatomy.attachments] == ["terms.txt"]
    assert anatomy.hidden_recipients == ["audit@example.com"]
    assert anatomy.warnings == []


def test_cid_references_point_at_part_urls() -> None:
    html = '<img src="cid:Logo"><img src="cid:other">'
    assert rewrite_cids(html, {"logo": "/p/5"}) == '<img src="/p/5"><img src="cid:other">'


def test_html_only_message_warns_about_the_missing_text_part() -> None:
    anatomy = _anatomy(Message("s", ["a@example.org"], html="<p>hi</p>"))
    assert _warned(anatomy, "No text part")


def test_relative_and_localhost_links_are_flagged() -> None:
    html = '<a href="/account">a</a> <a href="http://localhost:6543/x">b</a> <a href="https://example.com/">c</a>'
    anatomy = _anatomy(Message("s", ["a@example.org"], body="t", html=html))
    assert _warned(
        anatomy,
        "Relative or localhost links do not work in a mail client: /account, http://localhost:6543/x",
    )
    assert "example.com/" not in " ".join(anatomy.warnings)


def test_remote_images_and_missing_inline_parts_are_flagged() -> None:
    html = '<img src="https://cdn.example.com/logo.png"><img src="cid:gone">'
    anatomy = _anatomy(Message("s", ["a@example.org"], body="t", html=html))
    assert _warned(anatomy, "1 remote image:")
    assert _warned(anatomy, "missing inline parts: cid:gone")


def test_smtputf8_large_html_and_redirect_are_flagged() -> None:
    message = Message("s", ["ann@example.org"], body="t", html="<p>" + "x" * 110_000 + "</p>")
    anatomy = _anatomy(message, redirect_to="dev@example.com")
    assert _warned(anatomy, "Gmail clips HTML over 102 KB")
    assert _warned(anatomy, "mail.redirect_to is active")
    assert anatomy.redirected_from == "ann@example.org"
    assert _warned(_anatomy(Message("s", ["zoë@exämple.org"], body="t")), "Needs SMTPUTF8")
