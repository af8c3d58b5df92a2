"""A plain-text rendering of an HTML mail body, for its text part."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

__all__ = ["html_to_text"]

# Elements whose content is never shown to a reader.
_SKIPPED = frozenset({"script", "style", "title", "template"})
# Elements that start on a line of their own, and how many line breaks
# separate them from their neighbours (2: a blank line between).
_BLOCKS = {
    **dict.fromkeys(("p", "ul", "ol", "dl", "table", "pre", "blockquote", "hr"), 2),
    **dict.fromkeys(("h1", "h2", "h3", "h4", "h5", "h6", "address", "figure"), 2),
    **dict.fromkeys(("div", "li", "tr", "dt", "dd", "section", "article"), 1),
    **dict.fromkeys(("header", "footer", "main", "nav", "aside", "center", "form"), 1),
    **dict.fromkeys(("caption", "figcaption", "tbody", "thead", "tfoot", "body"), 1),
}
_VOID = frozenset({"br", "img", "hr", "meta", "link", "input", "wbr", "col", "area", "source"})
# HTML collapses ASCII whitespace only; a no-break space stays a space.
_WHITESPACE = re.compile(r"[ \t\n\r\f]+")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
# Links whose target says nothing a reader of the text part can follow.
_UNSHOWN_HREF = ("#", "javascript:", "cid:")


def html_to_text(html: str) -> str:
    """Return a readable plain-text version of *html*.

    Paragraphs, headings, list items, table rows and block quotes start on
    lines of their own; ``<br>`` breaks a line; ``<h1>`` and ``<h2>`` are
    underlined with ``=`` and ``-``; list items start with ``-`` (or
    ``1.`` in an ordered list), nested ones indented; a link reads
    ``text (url)``, or just the URL when the text is the URL; an image is
    its ``alt`` text. Script, style and title content, and elements hidden
    with ``hidden`` or ``display: none`` (a mail's preheader), are left out.
    Whitespace is collapsed as a browser does, except in ``<pre>``. Lines
    are not wrapped: mail clients wrap plain text themselves.
    """
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    return parser.text()


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._out: list[str] = []
        self._breaks = 0  # line breaks owed before the next word
        self._space = False  # a space owed before the next word
        self._prefixes: list[str] = []  # indentation of list items, quotes
        self._line_prefix = ""  # what the current line started with
        self._marker: str | None = None  # a list item's "- " not yet written
        self._lists: list[_List] = []
        self._pre = 0
        self._pre_start = False  # a newline right after <pre> is not content
        self._skip: list[str] = []  # open elements whose content is left out
        self._links: list[tuple[str | None, list[str]]] = []  # href, its text
        self._heading: tuple[str, int] | None = None  # tag, start in _out

    # -- output ---------------------------------------------------------------

    def close(self) -> None:
        super().close()
        # A link left open at the end still shows where it leads.
        while self._links:
            self._end_link(*self._links.pop())

    def text(self) -> str:
        lines = [line.rstrip() for line in "".join(self._out).split("\n")]
        return "\n".join(lines).strip("\n") + "\n" if any(lines) else ""

    def _block(self, breaks: int) -> None:
        if self._out:
            self._breaks = max(self._breaks, breaks)
        self._space = False

    def _write(self, text: str) -> None:
        if self._breaks:
            # A blank line inside a quote stays quoted; one before it does not.
            blank = _common_start(self._line_prefix, "".join(self._prefixes))
            self._out.append("\n" + (blank.rstrip() + "\n") * (self._breaks - 1))
            self._breaks = 0
            self._start_line()
        elif not self._out:
            self._start_line()
        elif self._space:
            self._out.append(" ")
        self._space = False
        self._out.append(text)
        for _href, words in self._links:
            words.append(" " + text)

    def _start_line(self) -> None:
        prefix = "".join(self._prefixes)
        if self._marker is not None:
            # The marker takes the place of its own indentation.
            prefix = prefix[: len(prefix) - len(self._marker)] + self._marker
            self._marker = None
        self._line_prefix = prefix
        self._out.append(prefix)

    # -- parser events --------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if self._skip:
            if tag not in _VOID:
                self._skip.append(tag)
            return
        hidden = "hidden" in attributes or _HIDDEN_STYLE.search(attributes.get("style") or "")
        if tag in _SKIPPED or (hidden and tag not in _VOID):
            self._skip.append(tag)
            return
        if tag in _BLOCKS:
            self._block(_BLOCKS[tag] if not (tag in ("ul", "ol") and self._lists) else 1)
        if tag == "br":
            self._breaks += 1
            if not self._out:
                self._out.append("")
        elif tag == "hr":
            self._write("-" * 20)
            self._block(2)
        elif tag == "img" and (alt := (attributes.get("alt") or "").strip()):
            self._inline(alt)
        elif tag in ("ul", "ol"):
            self._lists.append(_List(1 if tag == "ol" else None))
        elif tag == "li":
            if not self._lists:
                self._lists.append(_List(None))
            self._start_item(self._lists[-1])
        elif tag == "blockquote":
            self._prefixes.append("> ")
        elif tag == "pre":
            self._pre += 1
            self._pre_start = True
        elif tag == "a":
            self._links.append((attributes.get("href"), []))
        elif tag in ("h1", "h2"):
            self._heading = (tag, len(self._out))
        elif tag in ("td", "th") and self._out:
            self._space = True

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            # Close the innermost open element of that name, and what it holds.
            if tag in self._skip:
                del self._skip[len(self._skip) - 1 - self._skip[::-1].index(tag) :]
            return
        if tag in ("ul", "ol") and self._lists:
            self._end_item(self._lists.pop())
        elif tag == "li" and self._lists:
            self._end_item(self._lists[-1])
        elif tag == "blockquote" and self._prefixes:
            self._prefixes.pop()
        elif tag == "pre" and self._pre:
            self._pre -= 1
        elif tag == "a" and self._links:
            self._end_link(*self._links.pop())
        elif self._heading and tag == self._heading[0]:
            written = "".join(self._out[self._heading[1] :])
            self._heading = None
            if written.strip():
                # Underline the heading's last line, after its indentation.
                width = len(written.rsplit("\n", 1)[-1].rstrip()) - len(self._line_prefix)
                indent = "".join(self._prefixes)
                self._out.append("\n" + indent + ("=" if tag == "h1" else "-") * width)
        if tag in _BLOCKS:
            self._block(_BLOCKS[tag] if not (tag in ("ul", "ol") and self._lists) else 1)

    def handle_data(self, data: str) -> None:
        if self._skip or not data:
            return
        if self._pre:
            if self._pre_start and data.startswith("\n"):
                data = data[1:]
            self._pre_start = False
            lines = data.split("\n")
            for index, line in enumerate(lines):
                if index:
                    self._breaks += 1
                if line:
                    self._write(line)
            return
        self._inline(data)

    def _inline(self, data: str) -> None:
        # Words were separated by whitespace: each one after the first owes
        # a space, which a line break or a block boundary may then cancel.
        for index, word in enumerate(_WHITESPACE.split(data.replace("\xa0", " "))):
            if index:
                self._space = True
            if word:
                self._write(word)

    def _start_item(self, items: _List) -> None:
        # </li> may be left out: a new item closes the one before.
        self._end_item(items)
        marker = "- " if items.number is None else f"{items.number}. "
        if items.number is not None:
            items.number += 1
        self._prefixes.append(" " * len(marker))
        self._marker = marker
        items.open_item = True

    def _end_item(self, items: _List) -> None:
        if items.open_item:
            self._prefixes.pop()
            self._marker = None
            items.open_item = False

    def _end_link(self, href: str | None, words: list[str]) -> None:
        href = (href or "").strip()
        if not href or href.startswith(_UNSHOWN_HREF):
            return
        shown = " ".join("".join(words).split())
        # "Write to ann@example.org (ann@example.org)" says it twice.
        target = href[len("mailto:") :].split("?", 1)[0] if href.startswith("mailto:") else href
        if not shown:
            self._inline(target)
        elif shown not in (href, target, href.rstrip("/")):
            self._inline(f" ({target})")


def _common_start(a: str, b: str) -> str:
    length = 0
    while length < min(len(a), len(b)) and a[length] == b[length]:
        length += 1
    return a[:length]


@dataclass
class _List:
    number: int | None  # an <ol>'s next item number; None in a <ul>
    open_item: bool = False
