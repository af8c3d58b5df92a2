"""html_to_text(): the text part made from a message's HTML."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyramid_sendmail.html_text import html_to_text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("", ""),
        ("<p>   </p>", ""),
        ("<p>One</p><p>Two</p>", "One\n\nTwo\n"),
        ("<p>One<br>Two<br/><br>Three</p>", "One\nTwo\n\nThree\n"),
        ("<div>a</div><div>b</div>", "a\nb\n"),
        ("<br>a<div/>b", "a\nb\n"),
        ("<li>a</li><li>b</li>", "- a\n- b\n"),
        ("  Many \n\t spaces\n  here  ", "Many spaces here\n"),
        ("<p>a&nbsp;&amp;&nbsp;b &lt;c&gt; &eacute;</p>", "a & b <c> é\n"),
        ("<b>bold</b><i> and</i> <em>italic</em>", "bold and italic\n"),
        ("<h1>Title</h1><p>Text</p>", "Title\n=====\n\nText\n"),
        ("<h2>Sub  title</h2>", "Sub title\n---------\n"),
        ("<h3>Small</h3>text", "Small\n\ntext\n"),
        ("<ul><li><h2>In a list</h2>text</li></ul>", "- In a list\n  ---------\n\n  text\n"),
        ("<ul><li>a</li><li>b</li></ul>", "- a\n- b\n"),
        ("<ol><li>a</li><li>b</li></ol>", "1. a\n2. b\n"),
        ("<ul><li>a<li>b</ul>", "- a\n- b\n"),
        ("<ul><li>a<ul><li>b</li></ul></li><li>c</li></ul>", "- a\n  - b\n- c\n"),
        ("<ol><li>a<br>more</li></ol>", "1. a\n   more\n"),
        ("<p>Before</p><ul><li>a</li></ul><p>After</p>", "Before\n\n- a\n\nAfter\n"),
        ("<blockquote><p>a</p><p>b</p></blockquote><p>c</p>", "> a\n>\n> b\n\nc\n"),
        ("<pre>\n  x = 1\n    y</pre>", "  x = 1\n    y\n"),
        ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc\n"),
        ("<p>a</p><hr><p>b</p>", "a\n\n--------------------\n\nb\n"),
        ('<img src="logo.png" alt="ACME"> <img src="spacer.gif" alt="">', "ACME\n"),
    ],
)
def test_structure(html: str, text: str) -> None:
    assert html_to_text(html) == text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ('<a href="https://example.com/x">Read more</a>', "Read more (https://example.com/x)\n"),
        ('<a href="https://example.com/">https://example.com/</a>', "https://example.com/\n"),
        ('<a href="https://example.com/">https://example.com</a>', "https://example.com\n"),
        ('<a href="https://e.com/?a=1&amp;b=2">go</a>', "go (https://e.com/?a=1&b=2)\n"),
        ('<a href="mailto:help@e.com">help@e.com</a>', "help@e.com\n"),
        ('<a href="mailto:help@e.com?subject=Hi">Write</a>', "Write (help@e.com)\n"),
        ('<a href="https://e.com"><img src="cid:x" alt=""></a>', "https://e.com\n"),
        ('<a href="https://e.com"><img src="cid:x" alt="Logo"></a>', "Logo (https://e.com)\n"),
        ('<a href="#top">Top</a>', "Top\n"),
        ('<a href="javascript:void(0)">Click</a>', "Click\n"),
        ("<a>No target</a>", "No target\n"),
        ('<p>Go <a href="https://e.com">there', "Go there (https://e.com)\n"),
        (
            '<p><a href="https://e.com/a">A</a>, <a href="https://e.com/b">B</a>.</p>',
            "A (https://e.com/a), B (https://e.com/b).\n",
        ),
    ],
)
def test_links(html: str, text: str) -> None:
    assert html_to_text(html) == text


@pytest.mark.parametrize(
    "html",
    [
        "<script>alert('x')</script>Shown",
        "<style>p { color: red }</style>Shown",
        "<html><head><title>Title</title><meta charset=utf-8></head><body>Shown</body></html>",
        '<div style="display:none; max-height:0">Preheader <b>text</b></div>Shown',
        '<span style="DISPLAY: NONE">Hidden</span>Shown',
        "<div hidden><p>Hidden<p>more</div>Shown",
        "<template><p>Hidden</p></template>Shown",
        '<div style="display:none"><div>Hidden</div><br>still hidden</div>Shown',
    ],
)
def test_content_no_reader_sees_is_left_out(html: str) -> None:
    assert html_to_text(html) == "Shown\n"


def test_a_whole_mail() -> None:
    html = """<!DOCTYPE html>
    <html><head><title>Welcome</title><style>.x { color: red }</style></head>
    <body>
      <table role="presentation" width="100%"><tr><td>
        <h1>Welcome, Ann!</h1>
        <p>Thanks for signing up. Your account is ready:</p>
        <ul>
          <li>Your orders</li>
          <li>Your <a href="https://shop.example.com/settings">settings</a></li>
        </ul>
        <p>See you soon,<br>The Shop</p>
      </td></tr></table>
    </body></html>"""
    assert html_to_text(html) == (
        "Welcome, Ann!\n"
        "=============\n"
        "\n"
        "Thanks for signing up. Your account is ready:\n"
        "\n"
        "- Your orders\n"
        "- Your settings (https://shop.example.com/settings)\n"
        "\n"
        "See you soon,\n"
        "The Shop\n"
    )


def test_unclosed_and_stray_tags_do_not_break_the_text() -> None:
    assert html_to_text("<p>a<p>b</li></ol></blockquote></pre></a>c") == "a\n\nb\n\nc\n"


_TAGS = ["p", "br", "div", "ul", "ol", "li", "a", "h1", "pre", "script", "blockquote", "td", "tr"]
_pieces = st.one_of(
    st.text(max_size=12),
    st.sampled_from(_TAGS).map(lambda tag: f"<{tag}>"),
    st.sampled_from(_TAGS).map(lambda tag: f"</{tag}>"),
    st.just('<a href="https://e.com">'),
    st.just('<div style="display:none">'),
)


@given(st.lists(_pieces, max_size=30).map("".join))
def test_any_markup_gives_clean_lines(html: str) -> None:
    text = html_to_text(html)
    assert text == "" or (text.endswith("\n") and not text.startswith("\n"))
    assert all(line == line.rstrip() for line in text.split("\n"))
    assert "\n\n\n\n" not in text or "<br>" in html or "<pre>" in html
