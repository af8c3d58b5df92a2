"""The dev tools' HTML pages, built from escaped strings (no template engine).

Every value that comes from a message or a request goes through
:func:`html.escape`; a message's own HTML is never placed in these pages,
only in a sandboxed iframe served by its own URL.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

from ..wording import counted
from .anatomy import Anatomy
from .previews import Preview

__all__ = [
    "Listing",
    "MessageLinks",
    "inbox_page",
    "message_page",
    "not_found_page",
    "previews_page",
]

#: The source tab shows this much of a message; the .eml download has it all.
_SOURCE_SHOWN = 256 * 1024
_OUTCOME_TITLES = {
    "pending": "The transaction has not ended yet",
    "sending": "Committed: handed to the mailer",
    "queued": "Committed into the queue: the queue processor sends it",
    "sent": "The mailer accepted it",
    "failed": "Delivery failed",
    "deferred": "Delivery failed for now; it will be retried",
    "discarded": "Not sent: the transaction did not commit",
    "preview": "Built by a preview: never sent",
    "file": "Written into the file mailer's folder",
}

#: MIME tree levels the stylesheet indents (deeper parts stay at the last one).
_TREE_LEVELS = 5


@dataclass
class Listing:
    """One row of the inbox."""

    url: str
    outcome: str
    detail: str
    created: float
    subject: str
    sender: str
    to: str
    size: int
    origin: str = ""


@dataclass
class MessageLinks:
    """The URLs the message page links to."""

    html: str
    eml: str
    part: str  # with "{index}" where the part number goes


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _when(stamp: float) -> str:
    today = time.strftime("%Y-%m-%d") == time.strftime("%Y-%m-%d", time.localtime(stamp))
    return time.strftime("%H:%M:%S" if today else "%Y-%m-%d %H:%M", time.localtime(stamp))


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def badge(outcome: str, detail: str = "") -> str:
    """A coloured label for an outcome, with its explanation as a tooltip."""
    title = _OUTCOME_TITLES.get(outcome, "")
    if detail:
        title = f"{title}: {detail}" if title else detail
    return f'<span class="badge {_e(outcome)}" title="{_e(title)}">{_e(outcome)}</span>'


def layout(title: str, body: str, base: str, active: str = "") -> str:
    """The page around *body*: the top bar with the inbox and previews tabs."""
    tabs = "".join(
        f'<a href="{_e(base)}/{href}"{" class=active" if name == active else ""}>{label}</a>'
        for name, href, label in (("inbox", "", "Inbox"), ("previews", "previews", "Previews"))
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)} · pyramid_sendmail</title>"
        f'<link rel="stylesheet" href="{_e(base)}/static/devtools.css">'
        "</head><body>"
        f'<header class="topbar"><a class="brand" href="{_e(base)}/">'
        '<span class="logo">✉</span> pyramid_sendmail <small>dev tools</small></a>'
        f"<nav>{tabs}</nav></header><main>{body}</main></body></html>\n"
    )


def inbox_page(
    base: str, records: Sequence[Listing], files: Sequence[Listing], folder: str | None
) -> str:
    """The inbox: this process's messages, then the file mailer's folder."""
    body = ['<div class="heading row"><div><h1>Inbox</h1>']
    taken = counted(len(records), "message")
    body.append(f'<p class="lead">{taken} taken by this process, newest first.</p></div>')
    if records:
        body.append(
            f'<form method="post" action="{_e(base)}/clear">'
            '<button class="button quiet">Clear</button></form>'
        )
    body.append("</div>")
    if records:
        body.append(_table(records, with_origin=True))
    else:
        body.append(
            '<div class="empty"><p><strong>No mail yet.</strong></p><p>Send a message from the '
            "application (<code>request.mailer.send(message)</code>) and it shows up here "
            "with what became of it: sent, queued, or discarded because the transaction "
            f'aborted. Or look at the <a href="{_e(base)}/previews">previews</a>.</p></div>'
        )
    if folder is not None:
        body.append(
            f'<h2>Files in <code>{_e(folder)}</code></h2><p class="lead">The file mailer\'s '
            ".eml files that are not listed above, newest first.</p>"
        )
        body.append(
            _table(files, with_origin=False) if files else '<p class="muted">No other files.</p>'
        )
    return layout("Inbox", "".join(body), base, "inbox")


def _table(rows: Iterable[Listing], with_origin: bool) -> str:
    head = "<th>Outcome</th><th>Time</th><th>Subject</th><th>From</th><th>To</th><th>Size</th>"
    if with_origin:
        head += "<th>Request</th>"
    lines = [f'<table class="list"><thead><tr>{head}</tr></thead><tbody>']
    for row in rows:
        origin = f'<td class="muted mono nowrap">{_e(row.origin)}</td>' if with_origin else ""
        lines.append(
            f"<tr><td>{badge(row.outcome, row.detail)}{_why(row)}</td>"
            f'<td class="muted nowrap">{_e(_when(row.created))}</td>'
            f'<td class="subject"><a href="{_e(row.url)}">'
            f"{_e(row.subject or '(no subject)')}</a></td>"
            f"<td>{_address(row.sender)}</td><td>{_e(row.to)}</td>"
            f'<td class="muted nowrap">{_e(_size(row.size))}</td>{origin}</tr>'
        )
    lines.append("</tbody></table>")
    return "".join(lines)


def _why(row: Listing) -> str:
    """The reason under the badge of a message that did not go out."""
    if row.outcome not in ("discarded", "failed", "deferred") or not row.detail:
        return ""
    return f'<div class="why">{_e(row.detail)}</div>'


def _address(value: str) -> str:
    """A From address as its display name, the address itself in a tooltip."""
    name, _, rest = value.partition(" <")
    if not rest:
        return _e(value)
    return f'<span title="{_e(value)}">{_e(name.strip(chr(34)))}</span>'


def previews_page(base: str, previews: Sequence[Preview]) -> str:
    """The list of registered previews."""
    body = ['<div class="heading"><h1>Previews</h1>']
    body.append(
        '<p class="lead">Messages built from sample data by factories registered with '
        "<code>config.add_mail_preview()</code> or <code>@mail_preview</code>. "
        "Nothing is sent and the transaction is doomed.</p></div>"
    )
    if not previews:
        body.append(
            '<div class="empty"><p><strong>No previews registered.</strong></p>'
            "<pre>from pyramid_sendmail.devtools.previews import mail_preview\n\n"
            '@mail_preview(title="Welcome")\n'
            "def welcome(request):\n"
            '    return Message(subject="Welcome", recipients=["ann@example.org"], ...)'
            "</pre><p>and <code>config.scan()</code>.</p></div>"
        )
    body.append('<ul class="cards">')
    for preview in previews:
        body.append(
            f'<li><a href="{_e(base)}/previews/{quote(preview.name)}">'
            f"<strong>{_e(preview.title)}</strong>"
            f'<span class="muted mono">{_e(preview.name)}</span>'
            f"<span>{_e(preview.description)}</span></a></li>"
        )
    body.append("</ul>")
    return layout("Previews", "".join(body), base, "previews")


def not_found_page(base: str, what: str) -> str:
    """The page for a message that is gone (beyond the inbox's cap) or never was."""
    body = (
        f'<div class="empty"><h1>Not here</h1><p>{_e(what)}</p>'
        f'<p><a href="{_e(base)}/">Back to the inbox</a></p></div>'
    )
    return layout("Not found", body, base)


def message_page(
    base: str,
    anatomy: Anatomy,
    links: MessageLinks,
    outcome: str,
    detail: str,
    facts: Sequence[tuple[str, str]],
    active: str = "inbox",
) -> str:
    """One message: envelope and headers, warnings, the parts, the source."""
    message = anatomy.message
    body = ['<div class="heading">']
    body.append(f"<h1>{_e(anatomy.subject)}</h1>")
    facts_html = "".join(f"<span>{_e(k)} <strong>{_e(v)}</strong></span>" for k, v in facts if v)
    detail_html = f'<span class="detail">{_e(detail)}</span>' if detail else ""
    body.append(f'<p class="facts">{badge(outcome, detail)}{detail_html}{facts_html}</p></div>')
    if anatomy.warnings:
        items = "".join(f"<li>{_e(w)}</li>" for w in anatomy.warnings)
        body.append(
            f'<div class="warnings"><strong>Check before sending</strong><ul>{items}</ul></div>'
        )
    body.append(_addresses(anatomy))
    body.append(_tabs(anatomy, links))
    parts = counted(len(anatomy.parts), "MIME part")
    body.append(
        f'<p class="downloads"><a class="button" href="{_e(links.eml)}">Download .eml</a> '
        f'<span class="muted">{_e(_size(anatomy.size))}, {parts}, '
        f"Message-ID {_e(str(message.get('Message-ID', '')))}</span></p>"
    )
    return layout(anatomy.subject, "".join(body), base, active)


def _addresses(anatomy: Anatomy) -> str:
    message = anatomy.message
    rows = []
    for name in ("From", "Reply-To", "To", "Cc", "Date"):
        for value in message.get_all(name, []):
            rows.append(f"<tr><th>{name}</th><td>{_e(value)}</td></tr>")
    envelope = [f"<tr><th>Sender</th><td>{_e(anatomy.sender or '(none)')}</td></tr>"]
    recipients = ", ".join(anatomy.recipients) or "(none)"
    envelope.append(f"<tr><th>Recipients</th><td>{_e(recipients)}</td></tr>")
    if anatomy.hidden_recipients:
        hidden = ", ".join(anatomy.hidden_recipients)
        envelope.append(
            f'<tr class="flag"><th>Not in the headers</th><td>{_e(hidden)} '
            '<span class="muted">(Bcc, or redirected)</span></td></tr>'
        )
    if anatomy.redirected_from is not None:
        envelope.append(
            f'<tr class="flag"><th>Redirected from</th><td>{_e(anatomy.redirected_from)}</td></tr>'
        )
    return (
        '<section class="addresses">'
        f'<div class="card"><h3>Headers</h3><table class="kv">{"".join(rows)}</table></div>'
        '<div class="card"><h3>Envelope <span class="muted">(what the relay is told)</span></h3>'
        f'<table class="kv">{"".join(envelope)}</table></div></section>'
    )


def _tabs(anatomy: Anatomy, links: MessageLinks) -> str:
    tabs: list[tuple[str, str, str]] = []
    if anatomy.html is not None:
        tabs.append(
            (
                "html",
                "HTML",
                # A width switch without script, as the tabs are.
                '<input type="radio" name="width" id="width-desktop" checked>'
                '<input type="radio" name="width" id="width-mobile">'
                '<div class="widths"><label for="width-desktop">Desktop</label>'
                '<label for="width-mobile">Phone (375 px)</label></div>'
                '<div class="viewport"><iframe title="The HTML part" '
                'sandbox="allow-popups allow-popups-to-escape-sandbox" '
                'referrerpolicy="no-referrer" '
                f'src="{_e(links.html)}"></iframe></div>',
            )
        )
    if anatomy.text is not None:
        tabs.append(("text", "Text", f'<pre class="text">{_e(anatomy.text)}</pre>'))
    if anatomy.attachments:
        items = "".join(
            f'<li><a href="{_e(links.part.format(index=p.index))}?download=1">'
            f"{_e(p.filename or 'part ' + str(p.index))}</a> "
            f'<span class="muted">{_e(p.content_type)}, {_e(_size(p.size))}</span></li>'
            for p in anatomy.attachments
        )
        label = f"Attachments ({len(anatomy.attachments)})"
        tabs.append(("attachments", label, f'<ul class="attachments">{items}</ul>'))
    headers = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in anatomy.headers)
    tabs.append(("headers", "Headers", f'<table class="kv headers">{headers}</table>'))
    tree = "".join(
        # A class per level, not a style attribute: the page's CSP forbids inline styles.
        f'<tr><td class="mono depth-{min(p.depth, _TREE_LEVELS)}">'
        f"{_e(p.content_type)}</td><td>{_e(p.charset or '')}</td><td>{_e(p.encoding or '')}</td>"
        f"<td>{_e(p.disposition or '')}</td>"
        f"<td class=mono>{_e(p.filename or p.content_id or '')}</td>"
        f'<td class="nowrap">{"" if p.content_type.startswith("multipart/") else _e(_size(p.size))}'
        "</td></tr>"
        for p in anatomy.parts
    )
    tabs.append(
        (
            "mime",
            "MIME tree",
            '<table class="list tree"><thead><tr><th>Type</th><th>Charset</th><th>Encoding</th>'
            f"<th>Disposition</th><th>Name</th><th>Size</th></tr></thead><tbody>{tree}</tbody></table>",
        )
    )
    raw = anatomy.data[:_SOURCE_SHOWN].decode("utf-8", "replace")
    if len(anatomy.data) > _SOURCE_SHOWN:
        raw += f"\n[... {len(anatomy.data) - _SOURCE_SHOWN} more bytes: download the .eml]"
    tabs.append(("source", "Source", f'<pre class="source">{_e(raw)}</pre>'))
    # Tabs without script: radio buttons and :checked (the pages allow none).
    inputs, labels, panels = [], [], []
    for number, (name, label, content) in enumerate(tabs):
        checked = " checked" if number == 0 else ""
        inputs.append(f'<input type="radio" name="tab" id="tab-{name}"{checked}>')
        labels.append(f'<label for="tab-{name}">{_e(label)}</label>')
        panels.append(f'<div class="panel" id="panel-{name}">{content}</div>')
    return (
        f'<section class="tabs">{"".join(inputs)}<div class="tablist">{"".join(labels)}</div>'
        f"{''.join(panels)}</section>"
    )
