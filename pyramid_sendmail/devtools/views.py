"""The dev tools' views: the inbox, a message and its parts, the previews.

A message's HTML is served from a URL of its own with a Content Security
Policy that forbids scripts, plugins, forms and every fetch but the
message's own inline images, and sandboxes the document; the message page
shows it in an iframe sandboxed as well. So an HTML part can never run
script in the dev tools' origin, whether it is framed or opened directly.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPFound
from pyramid.response import Response
from transaction.interfaces import NoTransaction

from ..message import prepare
from .anatomy import Anatomy, dissect, rewrite_cids
from .pages import Listing, MessageLinks, inbox_page, message_page, not_found_page, previews_page
from .previews import IMailPreviews, PreviewMailer
from .recorder import PREVIEW, Record

__all__ = ["PAGE_CSP", "add_views", "html_csp"]

_R = "pyramid_sendmail.devtools."
#: The dev tools' own pages: no script at all; styles, images and frames
#: from this origin only.
PAGE_CSP = (
    "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'self'"
)
#: What a message's parts (attachments, inline images) may do: nothing.
PART_CSP = "default-src 'none'; sandbox"
_SOURCES = "{kind:m|file}/{key}"


def html_csp(image_prefix: str) -> str:
    """The policy of a message's HTML: inline styles and its own images, no more."""
    return (
        f"default-src 'none'; img-src {image_prefix}; style-src 'unsafe-inline'; "
        "font-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'; "
        "sandbox allow-popups allow-popups-to-escape-sandbox"
    )


def add_views(config: Configurator, path: str) -> None:
    """Serve the dev tools under *path*."""
    routes = (
        ("root", path, _root),
        ("inbox", f"{path}/", _inbox),
        ("by_id", f"{path}/id/{{message_id}}", _by_id),
        ("previews", f"{path}/previews", _previews),
        ("preview", f"{path}/previews/{{name}}", _preview),
        ("message", f"{path}/{_SOURCES}", _message),
        ("html", f"{path}/{_SOURCES}/html", _html),
        ("part", f"{path}/{_SOURCES}/part/{{index:\\d+}}", _part),
        ("eml", f"{path}/{_SOURCES}/eml", _eml),
    )
    for name, pattern, view in routes:
        config.add_route(_R + name, pattern)
        config.add_view(view, route_name=_R + name, request_method="GET")
    config.add_route(_R + "clear", f"{path}/clear")
    config.add_view(_clear, route_name=_R + "clear", request_method="POST")
    # A filesystem path rather than an asset spec: pkg_resources cannot read
    # assets of a package imported through an import hook (pytest's).
    static = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
    config.add_static_view(path.lstrip("/") + "/static", static, cache_max_age=60)


def _devtools(request: Any) -> Any:
    from . import get_devtools

    return get_devtools(request.registry)


def _page(request: Any, body: str, status: int = 200) -> Response:
    response = Response(body, status=status, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.cache_control = "no-store"
    return response


def _base(request: Any) -> str:
    return str(request.route_path(_R + "root"))


def _root(request: Any) -> HTTPFound:
    return HTTPFound(request.route_path(_R + "inbox"))


def _by_id(request: Any) -> Response:
    record = _devtools(request).inbox.by_message_id(request.matchdict["message_id"])
    if record is None:
        return _gone(request)
    return HTTPFound(request.route_path(_R + "message", kind="m", key=record.key))


def _clear(request: Any) -> HTTPFound:
    # Forgets this process's records only; the file mailer's files stay.
    _devtools(request).inbox.clear()
    return HTTPFound(request.route_path(_R + "inbox"))


def _inbox(request: Any) -> Response:
    devtools = _devtools(request)
    records = [
        _listing(request, "m", r.key, r.envelope.data, r.envelope.sender, r.created, r)
        for r in devtools.inbox.records()
    ]
    files: list[Listing] = []
    folder = devtools.folder
    if folder is not None:
        for name in folder.names():
            mail = folder.load(name)
            if mail is None or (
                mail.message_id and devtools.inbox.by_message_id(mail.message_id) is not None
            ):
                continue
            files.append(_listing(request, "file", name, mail.data, mail.sender, mail.modified))
    page = inbox_page(_base(request), records, files, folder.path if folder else None)
    return _page(request, page)


def _listing(
    request: Any,
    kind: str,
    key: str,
    data: bytes,
    sender: str,
    created: float,
    record: Record | None = None,
) -> Listing:
    head = data.partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
    anatomy = dissect(head, sender, ())
    message = anatomy.message
    to = ", ".join(str(v) for name in ("To", "Cc") for v in message.get_all(name, []))
    return Listing(
        url=request.route_path(_R + "message", kind=kind, key=key),
        outcome=record.outcome if record else "file",
        detail=record.detail if record else key,
        created=created,
        subject=str(message.get("Subject", "")),
        sender=str(message.get("From", "")) or sender,
        to=to or ", ".join(record.envelope.recipients if record else ()),
        size=len(data),
        origin=record.origin if record else "",
    )


@dataclass
class _Loaded:
    anatomy: Anatomy
    outcome: str
    detail: str
    facts: list[tuple[str, str]]
    key: str
    kind: str


def _load(request: Any) -> _Loaded | None:
    devtools = _devtools(request)
    kind, key = request.matchdict["kind"], request.matchdict["key"]
    if kind == "m":
        record = devtools.find(key)
        if record is None:
            return None
        envelope = record.envelope
        anatomy = dissect(envelope.data, envelope.sender, envelope.recipients)
        facts = [
            ("at", time.strftime("%H:%M:%S", time.localtime(record.created))),
            ("by", f"{record.method}()"),
            ("in", record.origin),
        ]
        return _Loaded(anatomy, record.outcome, record.detail, facts, key, kind)
    folder = devtools.folder
    mail = folder.load(key) if folder is not None else None
    if mail is None:
        return None
    anatomy = dissect(mail.data, mail.sender, mail.recipients)
    written = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(mail.modified))
    return _Loaded(anatomy, "file", "", [("written", written), ("file", key)], key, kind)


def _gone(request: Any) -> Response:
    what = "This message is not in the inbox: it was never there, or older messages "
    what += "were dropped to keep the inbox within its size."
    return _page(request, not_found_page(_base(request), what), status=404)


def _message(request: Any) -> Response:
    loaded = _load(request)
    if loaded is None:
        return _gone(request)
    return _render_message(request, loaded, "inbox")


def _render_message(request: Any, loaded: _Loaded, active: str) -> Response:
    kw = {"kind": loaded.kind, "key": loaded.key}
    links = MessageLinks(
        html=request.route_path(_R + "html", **kw),
        eml=request.route_path(_R + "eml", **kw),
        part=request.route_path(_R + "part", index="0", **kw).replace("/part/0", "/part/{index}"),
    )
    page = message_page(
        _base(request), loaded.anatomy, links, loaded.outcome, loaded.detail, loaded.facts, active
    )
    return _page(request, page)


def _html(request: Any) -> Response:
    loaded = _load(request)
    if loaded is None or loaded.anatomy.html is None:
        return _gone(request)
    kw = {"kind": loaded.kind, "key": loaded.key}
    urls = {
        cid: request.route_url(_R + "part", index=str(index), **kw)
        for cid, index in loaded.anatomy.cids.items()
    }
    html = rewrite_cids(loaded.anatomy.html, urls)
    # Links open in a new tab rather than inside the frame.
    html = '<base target="_blank">' + html
    response = Response(html, content_type="text/html", charset="utf-8")
    prefix = request.route_url(_R + "part", index="0", **kw)[: -len("0")]
    response.headers["Content-Security-Policy"] = html_csp(prefix)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.cache_control = "no-store"
    return response


def _part(request: Any) -> Response:
    loaded = _load(request)
    index = int(request.matchdict["index"])
    part = loaded.anatomy.part(index) if loaded is not None else None
    if part is None or part.is_multipart():
        return _gone(request)
    content_type = part.get_content_type()
    response = Response(part.get_payload(decode=True) or b"", content_type=content_type)
    response.headers["Content-Security-Policy"] = PART_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.cache_control = "no-store"
    if "download" in request.GET or not content_type.startswith("image/"):
        filename = part.get_filename() or f"part-{index}"
        response.content_disposition = _attachment(filename)
    return response


def _eml(request: Any) -> Response:
    loaded = _load(request)
    if loaded is None:
        return _gone(request)
    response = Response(loaded.anatomy.data, content_type="message/rfc822")
    name = loaded.key if loaded.kind == "file" else f"message-{loaded.key}.eml"
    response.content_disposition = _attachment(name)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _attachment(filename: str) -> str:
    safe = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    return f"attachment; filename=\"{safe}\"; filename*=UTF-8''{quote(filename)}"


def _previews(request: Any) -> Response:
    previews = request.registry.queryUtility(IMailPreviews) or {}
    ordered = sorted(previews.values(), key=lambda p: p.title.lower())
    return _page(request, previews_page(_base(request), ordered))


def _preview(request: Any) -> Response:
    devtools = _devtools(request)
    previews = request.registry.queryUtility(IMailPreviews) or {}
    preview = previews.get(request.matchdict["name"])
    if preview is None:
        body = not_found_page(_base(request), f"No preview is named {request.matchdict['name']!r}.")
        return _page(request, body, status=404)
    tm = getattr(request, "tm", None)
    if tm is not None:
        # Whatever the sample-data code writes is rolled back.
        with contextlib.suppress(NoTransaction):
            tm.doom()
    setup = devtools.setup

    def keep(envelope: Any, method: str) -> None:
        detail = f"the preview called {method}(): nothing was sent"
        devtools.previews.add(Record(envelope, method, PREVIEW, detail, origin=preview.name))

    request.mailer = PreviewMailer(request.registry, keep)
    message = preview.factory(request)
    envelope = setup.redirect(prepare(message, setup.default_sender))
    origin = request.path_qs
    record = Record(envelope, "preview", PREVIEW, "nothing is sent", origin=origin)
    devtools.previews.add(record)
    facts = [("preview", preview.name), ("variant", request.query_string)]
    loaded = _Loaded(
        dissect(envelope.data, envelope.sender, envelope.recipients),
        PREVIEW,
        "",
        facts,
        record.key,
        "m",
    )
    return _render_message(request, loaded, "previews")
