"""render_message(): mail rendered from an application's own templates.

The application (tests/mailapp) renders with real pyramid_jinja2 and
pyramid_chameleon renderers, in real requests through WebTest and pyramid_tm;
what it sends is read back from the testing mailer's delivered bytes.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mailapp
import pytest
import webtest
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import IRendererFactory
from pyramid.request import Request
from pyramid.threadlocal import get_current_request

from pyramid_sendmail import Attachment, InvalidMessageError, render_message
from pyramid_sendmail.testing import DeliveredMail, get_testing_mailer

LOGO = Path(mailapp.__file__).parent / "images" / "logo.png"
ENGINES = ["jinja2", "chameleon"]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app(engine: str) -> webtest.TestApp:
    return webtest.TestApp(mailapp.make_app(engine))


def sent(app: webtest.TestApp, query: str) -> DeliveredMail:
    assert app.get("/welcome?" + query).text == "sent"
    delivered = get_testing_mailer(app.app.registry).delivered
    assert len(delivered) == 1
    return delivered[0]


@pytest.fixture
def blank_request() -> Iterator[Request]:
    """A request outside any router, as a script or a test builds one."""
    with Configurator(settings={"jinja2.i18n.domain": "mailapp"}) as config:
        config.include("pyramid_jinja2")
        config.include("pyramid_chameleon")
        config.add_translation_dirs("mailapp:locale")
        config.add_route("confirm", "/confirm/{token}")
    request = Request.blank("/", base_url="https://shop.example.com")
    request.registry = config.registry
    yield request


def test_html_and_text_are_rendered_in_the_request(app: webtest.TestApp) -> None:
    mail = sent(app, "name=Ann")
    assert mail.subject == "Welcome, Ann!"
    assert mail.recipients == ["ann@example.org"]
    assert mail.message["To"] == "Ann <ann@example.org>"
    assert mail.html is not None and mail.body is not None
    # request.route_url() gives the absolute URL of the request's host.
    assert '<a href="http://localhost/confirm/t0k3n">Confirm your address</a>' in mail.html
    assert "Confirm your address: http://localhost/confirm/t0k3n" in mail.body
    # The HTML is escaped, the text part is not.
    assert "one &amp; two" in mail.html
    assert "one & two" in mail.body
    assert "&amp;" not in mail.body


def test_templates_and_subject_follow_the_request_locale(app: webtest.TestApp) -> None:
    mail = sent(app, "name=Ann&_LOCALE_=fr")
    assert mail.subject == "Bienvenue, Ann !"
    assert mail.html is not None
    assert "<h1>Bonjour Ann</h1>" in mail.html
    assert "Confirmez votre adresse</a>" in mail.html


def test_embedded_logo_is_an_inline_image_beside_the_html(app: webtest.TestApp) -> None:
    mail = sent(app, "name=Ann")
    [image] = [part for part in mail.message.walk() if part.get_content_type() == "image/png"]
    assert image.get_content() == LOGO.read_bytes()
    assert image.get_content_disposition() == "inline"
    assert image.get_filename() == "logo.png"
    content_id = image["Content-ID"].strip("<>")
    # Embedded twice in the template, attached once.
    assert mail.html is not None
    assert mail.html.count(f'src="cid:{content_id}"') == 2
    related = next(p for p in mail.message.walk() if p.get_content_type() == "multipart/related")
    assert [p.get_content_type() for p in related.iter_parts()] == ["text/html", "image/png"]


def test_text_part_is_generated_from_the_html_when_none_is_given(app: webtest.TestApp) -> None:
    mail = sent(app, "name=Ann&text=generated")
    assert mail.body is not None
    body = mail.body.replace("\r\n", "\n")  # as read back from the wire
    assert "Hello Ann\n=========" in body
    assert "Confirm your address (http://localhost/confirm/t0k3n)" in body
    assert "- one & two\n- three" in body
    assert "preheader" not in body
    assert "p.lead" not in body


def test_relative_names_resolve_against_the_callers_package(blank_request: Request) -> None:
    # This test module is not mailapp: its relative names would not resolve
    # here, so it names the package the way a helper library would.
    message = render_message(
        blank_request,
        html="templates/jinja2/welcome.jinja2",
        value={"name": "Ann", "token": "x", "items": []},
        package="mailapp",
    )
    assert message.html is not None and "<h1>Hello Ann</h1>" in message.html
    with pytest.raises(InvalidMessageError, match=r"looked for .*tests/templates/jinja2"):
        render_message(blank_request, html="templates/jinja2/welcome.jinja2", value={})


def test_package_may_be_a_module(blank_request: Request) -> None:
    message = render_message(
        blank_request, text="templates/chameleon/welcome.txt", value=_VALUE, package=mailapp
    )
    assert message.body is not None and message.body.startswith("Ann, thanks")


@pytest.mark.parametrize(
    ("result", "error"), [(b"\xff", "rendered bytes that are not UTF-8"), (42, "rendered int")]
)
def test_a_renderer_must_render_text(blank_request: Request, result: Any, error: str) -> None:
    blank_request.registry.registerUtility(
        lambda info: lambda value, system: result, IRendererFactory, name=".bin"
    )
    with pytest.raises(InvalidMessageError, match=f"^html='x.bin' {error}"):
        render_message(blank_request, html="x.bin")


def test_translations_work_outside_a_router(blank_request: Request) -> None:
    blank_request._LOCALE_ = "fr"
    message = render_message(
        blank_request,
        html="templates/chameleon/welcome.pt",
        package="mailapp",
        subject=mailapp._("Welcome, ${name}!", mapping={"name": "Ann"}),
        value={"name": "Ann", "token": "x", "items": []},
    )
    assert message.subject == "Bienvenue, Ann !"
    assert message.html is not None
    assert "<h1>Bonjour Ann</h1>" in message.html
    assert 'href="https://shop.example.com/confirm/x"' in message.html
    # The request was made current for rendering only.
    assert get_current_request() is None


def test_locale_renders_in_another_locale_than_the_requests(blank_request: Request) -> None:
    english = blank_request.localizer
    for _attempt in range(2):  # the second time with the French localizer kept
        message = render_message(
            blank_request,
            html="templates/chameleon/welcome.pt",
            subject=mailapp._("Welcome, ${name}!", mapping={"name": "Ann"}),
            value=_VALUE,
            package="mailapp",
            locale="fr",
        )
        assert message.subject == "Bienvenue, Ann !"
        assert message.html is not None and "<h1>Bonjour Ann</h1>" in message.html
    # The request has its own locale back.
    assert blank_request.localizer is english
    assert blank_request.locale_name == "en"
    fresh = Request.blank("/")
    fresh.registry = blank_request.registry
    render_message(fresh, text="mailapp:templates/chameleon/welcome.txt", value=_VALUE, locale="fr")
    assert fresh.localizer.locale_name == "en"


def test_locale_applies_in_a_request_with_either_engine(app: webtest.TestApp, engine: str) -> None:
    mail = sent(app, "name=Ann&to_locale=fr")
    assert mail.subject == "Bienvenue, Ann !"
    assert mail.html is not None and "Confirmez votre adresse</a>" in mail.html


def test_a_message_needs_html_or_text(blank_request: Request) -> None:
    with pytest.raises(InvalidMessageError, match=r"needs html= or text="):
        render_message(blank_request, subject="Hi", recipients=["ann@example.org"])


@pytest.mark.parametrize(
    "name", ["mailapp:templates/jinja2/missing.jinja2", "mailapp:templates/missing.pt"]
)
def test_a_missing_template_names_the_argument_and_the_path(
    blank_request: Request, name: str
) -> None:
    with pytest.raises(InvalidMessageError) as raised:
        render_message(blank_request, text="mailapp:templates/chameleon/welcome.txt", html=name)
    assert str(raised.value).startswith(f"html={name!r}: no such template (looked for ")
    assert name.split(":")[1] in str(raised.value)


def test_a_template_of_a_package_that_does_not_exist(blank_request: Request) -> None:
    with pytest.raises(InvalidMessageError, match=r"^text='nopackage:a.txt': .*cannot be imported"):
        render_message(blank_request, text="nopackage:a.txt")


def test_a_name_without_a_renderer_is_a_configuration_error(blank_request: Request) -> None:
    with pytest.raises(
        ConfigurationError, match=r"^text='mailapp:welcome.mustache': .*'.mustache'"
    ):
        render_message(blank_request, text="mailapp:welcome.mustache")


def test_errors_inside_an_existing_template_pass_through(blank_request: Request) -> None:
    import jinja2

    with pytest.raises(jinja2.TemplateNotFound, match="no_such_partial"):
        render_message(blank_request, html="mailapp:templates/jinja2/includes_missing.jinja2")
    with pytest.raises(jinja2.UndefinedError):
        render_message(blank_request, html="mailapp:templates/jinja2/broken.jinja2")


def test_a_subject_of_several_lines_is_refused(blank_request: Request) -> None:
    with pytest.raises(InvalidMessageError, match="subject must be one line"):
        render_message(
            blank_request,
            text="mailapp:templates/chameleon/welcome.txt",
            subject="Hi\nBcc: eve@example.org",
            value=_VALUE,
        )


_VALUE = {"name": "Ann", "token": "x", "items": ["a"]}


def test_subject_is_stripped(blank_request: Request) -> None:
    message = render_message(
        blank_request,
        text="mailapp:templates/chameleon/welcome.txt",
        subject="  Hi \n",
        value=_VALUE,
    )
    assert message.subject == "Hi"
    assert message.html is None
    assert message.body is not None and message.body.startswith("Ann, thanks")


def test_value_cannot_take_the_name_embed(blank_request: Request) -> None:
    with pytest.raises(InvalidMessageError, match="'embed'"):
        render_message(
            blank_request, text="mailapp:templates/chameleon/welcome.txt", value={"embed": None}
        )


def test_no_text_part_when_generation_is_off(blank_request: Request) -> None:
    message = render_message(
        blank_request,
        html="templates/jinja2/welcome.jinja2",
        value=_VALUE,
        package="mailapp",
        text_from_html=False,
    )
    assert message.body is None
    assert message.to_message().get_content_type() == "multipart/related"


# -- CSS inlining --------------------------------------------------------------


def test_inline_css_moves_the_stylesheet_into_style_attributes(blank_request: Request) -> None:
    message = render_message(
        blank_request,
        html="templates/jinja2/welcome.jinja2",
        value=_VALUE,
        package="mailapp",
        inline_css=True,
    )
    assert message.html is not None
    assert '<p class="lead" style="color: #336699;">' in message.html
    assert "<style>" not in message.html


def test_inline_css_takes_a_callable(blank_request: Request) -> None:
    message = render_message(
        blank_request,
        html="templates/jinja2/welcome.jinja2",
        value=_VALUE,
        package="mailapp",
        inline_css=str.upper,
    )
    assert message.html is not None and "<H1>HELLO ANN</H1>" in message.html


def test_inline_css_without_css_inline_names_the_extra(
    blank_request: Request, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes "import css_inline" fail as if not installed.
    monkeypatch.setitem(sys.modules, "css_inline", None)
    with pytest.raises(ConfigurationError, match=r"pip install .pyramid-sendmail-tx\[templates\]."):
        render_message(
            blank_request,
            html="templates/jinja2/welcome.jinja2",
            value=_VALUE,
            package="mailapp",
            inline_css=True,
        )


def test_css_that_cannot_be_inlined_is_an_invalid_message(blank_request: Request) -> None:
    import css_inline

    # This inliner reads linked stylesheets; the template links a missing one.
    inliner = css_inline.CSSInliner().inline
    with pytest.raises(InvalidMessageError, match=r"^inline_css: .*/nonexistent/mail\.css"):
        render_message(
            blank_request,
            html="mailapp:templates/jinja2/linked_stylesheet.jinja2",
            inline_css=inliner,
        )


def test_default_inliner_reads_no_linked_stylesheet(blank_request: Request) -> None:
    message = render_message(
        blank_request, html="mailapp:templates/jinja2/linked_stylesheet.jinja2", inline_css=True
    )
    assert message.html is not None
    assert "<p>Hello</p>" in message.html
    assert "<link" not in message.html


# -- embed() and attachments -----------------------------------------------------


@pytest.fixture
def embedding(blank_request: Request) -> Any:
    """Render a template that embeds each source given; return its message."""

    def render(*sources: Any, **options: Any) -> Any:
        return render_message(
            blank_request,
            html="mailapp:templates/jinja2/embed.jinja2",
            value={"sources": sources, "options": options},
        )

    return render


def inline_parts(message: Any) -> list[Any]:
    return [p for p in message.to_message().walk() if p["Content-ID"]]


def test_embed_takes_a_path_a_file_object_and_bytes(embedding: Any) -> None:
    with LOGO.open("rb") as file:
        message = embedding(LOGO, file, LOGO.read_bytes(), filename="x.png")
    parts = inline_parts(message)
    assert len(parts) == 3
    assert {p.get_filename() for p in parts} == {"x.png"}
    assert all(p.get_content() == LOGO.read_bytes() for p in parts)
    assert all(f'src="cid:{p["Content-ID"].strip("<>")}"' in message.html for p in parts)


def test_embed_names_and_types_a_file_from_its_name(embedding: Any) -> None:
    with LOGO.open("rb") as file:
        message = embedding(file, "mailapp:images/logo.png")
    assert [(p.get_filename(), p.get_content_type()) for p in inline_parts(message)] == [
        ("logo.png", "image/png"),
        ("logo.png", "image/png"),
    ]


def test_embed_of_bytes_needs_a_name_or_a_type(embedding: Any) -> None:
    with pytest.raises(InvalidMessageError, match="filename= or content_type="):
        embedding(b"\x89PNG")
    [part] = inline_parts(embedding(b"\x89PNG", content_type="image/png"))
    assert part.get_content_type() == "image/png"


def test_embed_of_a_missing_file_names_it(embedding: Any) -> None:
    with pytest.raises(InvalidMessageError, match=r"^embed\(\): cannot read .*images/nope.png"):
        embedding("images/nope.png")
    with pytest.raises(InvalidMessageError, match=r"^embed\(\): cannot import"):
        embedding("nopackage:logo.png")


def test_embed_refuses_a_text_file_object(embedding: Any) -> None:
    with pytest.raises(InvalidMessageError, match=r"binary mode \('rb'\)"):
        embedding(io.StringIO("x"), filename="x.png")


def test_attachments_from_a_path_an_asset_a_file_object_or_an_attachment(
    blank_request: Request, tmp_path: Path
) -> None:
    terms = tmp_path / "terms.pdf"
    terms.write_bytes(b"%PDF-1.4 terms")
    with terms.open("rb") as file:
        message = render_message(
            blank_request,
            text="mailapp:templates/chameleon/welcome.txt",
            value=_VALUE,
            attachments=[
                terms,
                "mailapp:images/logo.png",
                file,
                Attachment("notes.txt", "text/plain", "notes"),
            ],
        )
    parts = list(message.to_message().iter_attachments())
    assert [(p.get_filename(), p.get_content_type()) for p in parts] == [
        ("terms.pdf", "application/pdf"),
        ("logo.png", "image/png"),
        ("terms.pdf", "application/pdf"),
        ("notes.txt", "text/plain"),
    ]
    assert parts[0].get_content() == b"%PDF-1.4 terms"
    assert all(p.get_content_disposition() == "attachment" for p in parts)
