"""Messages built from Pyramid renderers: ``render_message()`` and ``embed()``."""

from __future__ import annotations

import importlib
import os
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import IO, Any, Union

from pyramid.exceptions import ConfigurationError
from pyramid.i18n import TranslationString, get_localizer, make_localizer
from pyramid.interfaces import ILocalizer, IRendererFactory, ITranslationDirectories
from pyramid.path import AssetResolver, caller_package
from pyramid.renderers import render
from pyramid.request import Request
from pyramid.threadlocal import get_current_request, manager

from .exceptions import InvalidMessageError, SendmailError
from .html_text import html_to_text
from .message import AddressLike, Attachment, HeadersLike, Message

__all__ = ["AttachmentSource", "Embedder", "render_message"]

#: A file to attach or embed: an asset spec or path (resolved against the
#: caller's package when relative), a :class:`~pathlib.Path`, or a binary
#: file object.
AttachmentSource = Union[str, "os.PathLike[str]", IO[bytes]]

_EXTRA = "pip install 'pyramid-sendmail-tx[templates]'"


def render_message(
    request: Request,
    *,
    html: str | None = None,
    text: str | None = None,
    subject: str = "",
    value: Mapping[str, Any] | None = None,
    recipients: Sequence[AddressLike] | None = None,
    sender: AddressLike | None = None,
    cc: Sequence[AddressLike] | None = None,
    bcc: Sequence[AddressLike] | None = None,
    reply_to: AddressLike | Sequence[AddressLike] | None = None,
    extra_headers: HeadersLike | None = None,
    attachments: Sequence[Attachment | AttachmentSource] | None = None,
    inline_css: bool | Callable[[str], str] = False,
    text_from_html: bool = True,
    locale: str | None = None,
    package: ModuleType | str | None = None,
) -> Message:
    """Render a :class:`~pyramid_sendmail.Message` with Pyramid renderers.

    *html* and *text* are renderer names, as a view's ``renderer=`` takes
    them (``'myapp:templates/welcome.jinja2'``, ``'templates/welcome.pt'``);
    at least one is needed. Both are rendered with
    :func:`pyramid.renderers.render` in *request*, with *value* plus
    ``embed`` (an :class:`Embedder`), so ``request.route_url``, renderer
    globals and translations work as in a view. Relative names and paths
    resolve against *package*, by default the caller's package.

    *subject* is a string or a :class:`~pyramid.i18n.TranslationString`,
    translated with the request's localizer. *locale* (``'fr'``) renders
    the templates and the subject in that locale instead of the request's,
    for a message to someone else than the user making the request.
    *inline_css* moves the
    stylesheets of the HTML into ``style`` attributes with css_inline (the
    ``templates`` extra), or through a callable given instead of ``True``.
    Without *text*, the text part is made from the HTML
    (:func:`~pyramid_sendmail.html_text.html_to_text`) unless
    *text_from_html* is false. *attachments* are
    :class:`~pyramid_sendmail.Attachment` objects or files to attach. The
    other arguments are :class:`~pyramid_sendmail.Message`'s.

    Raises :class:`~pyramid_sendmail.InvalidMessageError` without *html* and
    *text*, for a template that does not exist or a subject of several lines;
    :class:`pyramid.exceptions.ConfigurationError` for a name no renderer is
    registered for, or *inline_css* without css_inline.
    """
    if html is None and text is None:
        raise InvalidMessageError(
            "render_message() needs html= or text= (a renderer name such as "
            "'myapp:templates/welcome.jinja2'), or both"
        )
    where: ModuleType
    if package is None:
        where = caller_package()
    elif isinstance(package, str):
        where = importlib.import_module(package)
    else:
        where = package
    inliner = _inliner(inline_css)
    values = dict(value or {})
    if "embed" in values:
        raise InvalidMessageError(
            "value has a key 'embed': render_message() gives that name to its embed() function"
        )
    embedder = values["embed"] = Embedder(where)
    registry = request.registry
    # pyramid_jinja2's gettext and other helpers read the current request,
    # not the one given to render(): make it current while rendering.
    pushed = get_current_request() is not request
    if pushed:
        manager.push({"request": request, "registry": registry})
    try:
        with _in_locale(request, locale):
            html_body = None if html is None else _render("html", html, values, request, where)
            text_body = None if text is None else _render("text", text, values, request, where)
            subject_line = _subject(request, subject)
    finally:
        if pushed:
            manager.pop()
    if html_body is not None and inliner is not None:
        html_body = _inline(inliner, html_body)
    if text_body is None and html_body is not None and text_from_html:
        text_body = html_to_text(html_body)
    files = [
        item if isinstance(item, Attachment) else _attachment(item, where)
        for item in attachments or ()
    ]
    return Message(
        subject=subject_line,
        recipients=recipients,
        body=text_body,
        html=html_body,
        sender=sender,
        cc=cc,
        bcc=bcc,
        extra_headers=extra_headers,
        attachments=[*embedder.attachments, *files],
        reply_to=reply_to,
    )


class Embedder:
    """The ``embed`` a template calls to show an image inline.

    ``embed(source)`` adds *source* (an asset spec or path, relative to the
    caller's package, a :class:`~pathlib.Path`, bytes or a binary file
    object) to the message as an inline attachment, and returns its
    ``cid:`` URL for an ``src`` attribute. A file embedded twice is attached
    once. Bytes and nameless file objects need *filename* or
    *content_type*, so that mail clients know what they are.
    """

    def __init__(self, package: ModuleType | str | None = None) -> None:
        self.package = package
        self.attachments: list[Attachment] = []
        self._known: dict[tuple[str, str | None, str | None], str] = {}

    def __call__(
        self,
        source: AttachmentSource | bytes,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str:
        if isinstance(source, (str, os.PathLike)):
            path = _resolve(source, self.package, "embed()")
            key = (path, filename, content_type)
            if key in self._known:
                return "cid:" + self._known[key]
            data, name = _read(path, "embed()"), os.path.basename(path)
        elif isinstance(source, bytes):
            key, data, name = None, source, None
        else:
            key, (data, name) = None, _read_file(source, "embed()")
        filename = filename or name
        if filename is None and content_type is None:
            raise InvalidMessageError(
                "embed() of data without a file name needs filename= or content_type="
            )
        # Unique across messages, so that a client's cache never mixes them.
        content_id = f"{secrets.token_hex(12)}@pyramid-sendmail.invalid"
        self.attachments.append(
            Attachment(filename, content_type, data, disposition="inline", content_id=content_id)
        )
        if key is not None:
            self._known[key] = content_id
        return "cid:" + content_id


def _render(
    argument: str, name: str, value: dict[str, Any], request: Request, package: ModuleType
) -> str:
    # Pyramid picks the renderer by the name's extension (or the whole name).
    kind = os.path.splitext(name)[1] if "." in name else name
    if request.registry.queryUtility(IRendererFactory, name=kind) is None:
        raise ConfigurationError(
            f"{argument}={name!r}: no renderer is registered for {kind!r}; "
            "include the add-on that renders it (config.include('pyramid_jinja2'), "
            "config.include('pyramid_chameleon'))"
        )
    try:
        result = render(name, value, request=request, package=package)
    except SendmailError:
        raise
    except (LookupError, OSError, ValueError, ImportError) as exc:
        # Engines report a missing template in their own ways; an error
        # raised inside a template that exists must pass through unchanged.
        missing = _missing(name, package)
        if missing is None:
            raise
        raise InvalidMessageError(f"{argument}={name!r}: {missing} ({exc})") from exc
    if isinstance(result, bytes):
        # pyramid_chameleon's text templates render bytes.
        try:
            result = result.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidMessageError(
                f"{argument}={name!r} rendered bytes that are not UTF-8"
            ) from exc
    if not isinstance(result, str):
        raise InvalidMessageError(f"{argument}={name!r} rendered {type(result).__name__}, not text")
    return result


def _missing(name: str, package: ModuleType) -> str | None:
    """Say why the template *name* cannot be found, or None if it exists."""
    try:
        path = AssetResolver(package).resolve(name).abspath()
    except ImportError:
        return f"no such template: its package {name.split(':', 1)[0]!r} cannot be imported"
    return None if os.path.exists(path) else f"no such template (looked for {path})"


@contextmanager
def _in_locale(request: Request, locale: str | None) -> Iterator[None]:
    """Give *request* another locale while rendering, then its own back."""
    if locale is None:
        yield
        return
    registry = request.registry
    # As Pyramid's request.localizer does: one localizer per locale, kept.
    localizer = registry.queryUtility(ILocalizer, name=locale)
    if localizer is None:
        directories = registry.queryUtility(ITranslationDirectories, default=[])
        localizer = make_localizer(locale, directories)
        registry.registerUtility(localizer, ILocalizer, name=locale)
    # Both are reified on the request: every translation helper reads them.
    attributes = vars(request)
    saved = {name: attributes[name] for name in ("localizer", "locale_name") if name in attributes}
    attributes.update(localizer=localizer, locale_name=locale)
    try:
        yield
    finally:
        for name in ("localizer", "locale_name"):
            if name in saved:
                attributes[name] = saved[name]
            else:
                del attributes[name]


def _subject(request: Request, subject: str) -> str:
    if isinstance(subject, TranslationString):
        subject = get_localizer(request).translate(subject)
    subject = subject.strip()
    if "\n" in subject or "\r" in subject:
        raise InvalidMessageError(f"subject must be one line, not {subject!r}")
    return subject


def _inliner(option: bool | Callable[[str], str]) -> Callable[[str], str] | None:
    if option is False:
        return None
    if option is not True:
        return option
    try:
        import css_inline
    except ImportError as exc:
        raise ConfigurationError(f"inline_css=True needs the css_inline package: {_EXTRA}") from exc
    # No network while rendering: a remote stylesheet is not fetched (it is
    # dropped, as clients would). @media rules stay in a style tag for the
    # clients that honour them.
    inline: Callable[[str], str] = css_inline.CSSInliner(
        load_remote_stylesheets=False, keep_at_rules=True
    ).inline
    return inline


def _inline(inliner: Callable[[str], str], html: str) -> str:
    try:
        return inliner(html)
    except ValueError as exc:  # css_inline.InlineError is a ValueError
        raise InvalidMessageError(f"inline_css: the HTML's CSS cannot be inlined: {exc}") from exc


def _attachment(source: AttachmentSource, package: ModuleType) -> Attachment:
    if isinstance(source, (str, os.PathLike)):
        path = _resolve(source, package, "attachments")
        return Attachment(os.path.basename(path), None, _read(path, "attachments"))
    data, name = _read_file(source, "attachments")
    return Attachment(name, None, data)


def _resolve(source: str | os.PathLike[str], package: ModuleType | str | None, what: str) -> str:
    if isinstance(source, os.PathLike):
        return os.fspath(source)
    try:
        return str(AssetResolver(package).resolve(source).abspath())
    except ImportError as exc:
        raise InvalidMessageError(f"{what}: cannot import the package of {source!r}") from exc


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidMessageError(f"{what}: cannot read {path!r}: {exc.strerror}") from exc


def _read_file(file: IO[bytes], what: str) -> tuple[bytes, str | None]:
    data = file.read()
    if not isinstance(data, bytes):
        raise InvalidMessageError(f"{what}: a file object must be opened in binary mode ('rb')")
    name = getattr(file, "name", None)
    return data, os.path.basename(name) if isinstance(name, str) else None
