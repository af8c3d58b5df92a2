"""The dev inbox's pages through WebTest: what is shown, and what is refused."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from devtools_app import PNG, make_app
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError

from pyramid_sendmail.devtools import get_devtools
from pyramid_sendmail.mailers import FileMailer

PATHS = [
    "/_mail",
    "/_mail/",
    "/_mail/m/1",
    "/_mail/m/1/html",
    "/_mail/previews",
    "/_mail/static/devtools.css",
]


def _message_url(app: object) -> str:
    app.post("/send")  # type: ignore[attr-defined]
    inbox = app.get("/_mail/")  # type: ignore[attr-defined]
    match = re.search(r'href="(/_mail/m/\d+)"', inbox.text)
    assert match is not None
    return match.group(1)


@pytest.mark.parametrize("path", PATHS)
def test_devtools_paths_are_not_found_when_off(path: str) -> None:
    app = make_app({"mail.devtools": "false"})
    app.post("/send")
    app.get(path, status=404)


def test_inbox_lists_the_message_with_outcome() -> None:
    app = make_app()
    app.post("/send")
    page = app.get("/_mail/")
    row = page.html.select_one("table.list tbody tr")
    assert "Welcome <Ann>" in row.text
    assert row.select_one(".badge").text == "sent"
    assert "POST /send" in row.text
    assert page.html.select_one("p.lead").text == "1 message taken by this process, newest first."
    app.post("/send")
    assert app.get("/_mail/").html.select_one("p.lead").text.startswith("2 messages taken")
    assert page.headers["Content-Security-Policy"].startswith(
        "default-src 'self'; script-src 'none'"
    )


def test_inbox_says_why_a_message_was_discarded() -> None:
    app = make_app()
    app.post("/send", {"abort": "1"})
    row = app.get("/_mail/").html.select_one("table.list tbody tr")
    assert row.select_one(".badge").text == "discarded"
    assert row.select_one(".why").text == "transaction doomed"


def test_clear_empties_the_inbox() -> None:
    app = make_app()
    app.post("/send")
    page = app.get("/_mail/").forms[0].submit().follow()
    assert "No mail yet." in page.text
    app.get("/_mail/clear", status=404)  # POST only


def test_empty_inbox_says_how_to_fill_it() -> None:
    page = make_app().get("/_mail")
    page = page.follow()
    assert "No mail yet." in page.text


def test_message_page_shows_envelope_beside_headers_and_flags_bcc() -> None:
    app = make_app()
    page = app.get(_message_url(app))
    assert page.html.select_one("h1").text == "Welcome <Ann>"
    assert "Welcome &lt;Ann&gt;" in page.text  # escaped, never markup
    flagged = page.html.select_one("tr.flag")
    assert "audit@example.com" in flagged.text
    labels = [label.text for label in page.html.select(".tablist label")]
    assert labels == ["HTML", "Text", "Attachments (1)", "Headers", "MIME tree", "Source"]
    frame = page.html.select_one(".viewport iframe")
    assert frame["sandbox"] == ["allow-popups", "allow-popups-to-escape-sandbox"]
    assert "multipart/related" in page.html.select_one("#panel-mime").text


def test_html_part_is_served_sandboxed_with_cid_images_from_the_message() -> None:
    app = make_app()
    url = _message_url(app)
    html = app.get(url + "/html")
    policy = html.headers["Content-Security-Policy"]
    assert policy.startswith(f"default-src 'none'; img-src http://localhost{url}/part/;")
    assert "sandbox allow-popups" in policy and "allow-scripts" not in policy
    image = re.search(r'src="http://localhost(/_mail/m/\d+/part/\d+)"', html.text)
    assert image is not None, html.text
    served = app.get(image.group(1))
    assert served.body == PNG
    assert served.content_type == "image/png"
    assert served.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert "Content-Disposition" not in served.headers


def test_attachment_downloads_and_eml_has_the_sent_bytes() -> None:
    app = make_app()
    url = _message_url(app)
    page = app.get(url)
    link = page.html.select_one("#panel-attachments a")["href"]
    download = app.get(link)
    assert download.body.rstrip() == b"The terms."
    assert download.headers["Content-Disposition"].startswith('attachment; filename="terms.txt"')
    eml = app.get(url + "/eml")
    record = get_devtools(app.app.registry).inbox.records()[0]  # type: ignore[union-attr]
    assert eml.body == record.envelope.data
    assert eml.content_type == "message/rfc822"


def test_unknown_message_and_part_are_not_found() -> None:
    app = make_app()
    url = _message_url(app)
    app.get("/_mail/m/999999", status=404)
    app.get(url + "/part/99", status=404)
    app.get(url + "/part/0", status=404)  # multipart: nothing to serve


def test_message_id_link_redirects_to_the_message() -> None:
    app = make_app()
    message_id = app.post("/send").text
    page = app.get(f"/_mail/id/{message_id}").follow()
    assert page.html.select_one("h1").text == "Welcome <Ann>"
    app.get("/_mail/id/nobody@example.com", status=404)


def test_file_mailer_folder_is_listed_and_shown(tmp_path: Path) -> None:
    FileMailer(str(tmp_path)).send(
        "x@example.com", ["y@example.org"], b"Subject: From disk\r\n\r\nhi\r\n"
    )
    (tmp_path / "notes.txt").write_text("not mail")
    app = make_app({"mail.mailer": "file", "mail.file_path": str(tmp_path)}, testing=False)
    inbox = app.get("/_mail/")
    link = inbox.html.find("a", string="From disk")
    assert link is not None and "notes" not in inbox.text
    page = app.get(link["href"])
    assert "y@example.org" in page.html.select_one(".addresses").text
    assert page.html.select_one(".facts .badge").text == "file"


def test_file_mailer_message_sent_by_this_process_is_listed_once(tmp_path: Path) -> None:
    app = make_app({"mail.mailer": "file", "mail.file_path": str(tmp_path)}, testing=False)
    app.post("/send")
    inbox = app.get("/_mail/")
    assert len(list(tmp_path.iterdir())) == 1
    assert inbox.text.count("Welcome &lt;Ann&gt;") == 1


@pytest.mark.parametrize("name", ["..%2Fsecret.eml", ".hidden.eml", "x.txt", "missing.eml"])
def test_file_pages_only_serve_eml_files_of_the_folder(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "mail"
    folder.mkdir()
    (tmp_path / "secret.eml").write_bytes(b"Subject: secret\r\n\r\n")
    (folder / ".hidden.eml").write_bytes(b"Subject: hidden\r\n\r\n")
    app = make_app({"mail.mailer": "file", "mail.file_path": str(folder)}, testing=False)
    app.get(f"/_mail/file/{name}", status=404)


def test_devtools_refuse_to_start_where_setup_looks_like_production() -> None:
    config = Configurator(settings={"mail.devtools": "true"})
    with pytest.raises(ConfigurationError, match="looks like production"):
        config.include("pyramid_sendmail")


def test_override_lets_devtools_start_without_debug_settings() -> None:
    config = Configurator(
        settings={"mail.devtools": "true", "mail.devtools_allow_production": "true"}
    )
    config.include("pyramid_sendmail")
    assert get_devtools(config.registry) is not None


def test_devtools_warn_at_start_up(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "pyramid_sendmail.devtools"):
        make_app()
    assert "mail.devtools is on" in caplog.text


def test_devtools_path_moves_the_pages() -> None:
    app = make_app({"mail.devtools_path": "/dev/mail/"})
    app.post("/send")
    assert "Welcome &lt;Ann&gt;" in app.get("/dev/mail/").text
    app.get("/_mail/", status=404)


def test_bad_devtools_path_is_refused() -> None:
    config = Configurator(settings={"mail.devtools_path": "/"})
    with pytest.raises(ConfigurationError, match=r"mail\.devtools_path must be a URL path"):
        config.include("pyramid_sendmail")


def test_toolbar_is_kept_off_the_devtools_pages() -> None:
    app = make_app({"debugtoolbar.exclude_prefixes": "/static"})
    assert app.app.registry.settings["debugtoolbar.exclude_prefixes"] == "/static\n/_mail"


def test_stylesheet_is_served() -> None:
    css = make_app().get("/_mail/static/devtools.css")
    assert css.content_type == "text/css" and b".topbar" in css.body
