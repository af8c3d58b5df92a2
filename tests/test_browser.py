"""The dev tools in a real browser: headless Chromium driven by selenium.

The example application is served by waitress on a free loopback port, with
its development settings (dev inbox, previews, debug toolbar). Screenshots
of every page go to ``$PYRAMID_SENDMAIL_SCREENSHOTS`` (default: a folder
under the system's temporary directory). Without Chromium the tests are
skipped, except in CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOTS = Path(
    os.environ.get("PYRAMID_SENDMAIL_SCREENSHOTS")
    or os.path.join(tempfile.gettempdir(), "pyramid_sendmail-screenshots")
)
EXAMPLE_INI = Path(__file__).parent.parent / "examples" / "mailform" / "development.ini"

pytestmark = pytest.mark.slow


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1366,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def serve(app: Any) -> tuple[str, Callable[[], None]]:
    """Serve *app* with waitress on a free loopback port, in a thread."""
    import waitress.server

    server = waitress.server.create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, name="test-waitress", daemon=True)
    thread.start()
    port = server.effective_port  # type: ignore[union-attr]

    def stop() -> None:
        server.close()
        thread.join(5)

    return f"http://127.0.0.1:{port}", stop


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The example application with its development settings."""
    import mailform
    from plaster import get_settings

    folder = tmp_path_factory.mktemp("mailform")
    settings = dict(get_settings(str(EXAMPLE_INI), "app:main"))
    settings.pop("use", None)
    settings["mail.file_path"] = str(folder / "mail")
    settings["mail.queue_path"] = str(folder / "queue")
    settings["mail.queue_interval"] = "0.2"
    app = mailform.main({}, **settings)
    url, stop = serve(app)
    try:
        yield url
    finally:
        stop()
        app.registry.mail_queue_processor.stop()


def shoot(driver: Any, name: str) -> Path:
    """Save a screenshot of the whole page as *name*.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    height = driver.execute_script("return document.documentElement.scrollHeight") or 900
    driver.set_window_size(1366, max(900, min(int(height), 3000)))
    driver.save_screenshot(str(path))
    driver.set_window_size(1366, 900)
    return path


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def send_from_form(driver: Any, url: str, subject: str, abort: bool = False) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "/")
    field = driver.find_element(By.NAME, "subject")
    field.clear()
    field.send_keys(subject)
    if abort:
        driver.find_element(By.NAME, "abort").click()
    driver.find_element(By.TAG_NAME, "button").click()
    wait_for(lambda: driver.find_elements(By.ID, "inbox-link"))


def test_form_message_shows_in_inbox_with_inline_logo(browser: Any, example: str) -> None:
    from selenium.webdriver.common.by import By

    send_from_form(browser, example, "Hello from the browser test")
    shoot(browser, "01-form-sent")
    browser.find_element(By.ID, "inbox-link").click()
    assert browser.find_element(By.TAG_NAME, "h1").text == "Hello from the browser test"
    # The queue processor thread sends it within a moment.
    assert wait_for(lambda: _refreshed_badge(browser) == "sent"), _refreshed_badge(browser)
    frame = browser.find_element(By.CSS_SELECTOR, ".viewport iframe")
    assert "allow-scripts" not in frame.get_attribute("sandbox")
    assert "allow-same-origin" not in frame.get_attribute("sandbox")
    browser.switch_to.frame(frame)
    try:
        logo = browser.find_element(By.CSS_SELECTOR, "img[alt=Mailform]")
        assert wait_for(lambda: logo.get_property("naturalWidth")) == 96
        assert "It works." in browser.find_element(By.TAG_NAME, "body").text
    finally:
        browser.switch_to.default_content()
    shoot(browser, "03-message")
    browser.find_element(By.CSS_SELECTOR, "label[for=tab-text]").click()
    assert "It works." in browser.find_element(By.CSS_SELECTOR, "#panel-text").text
    browser.find_element(By.CSS_SELECTOR, "label[for=tab-mime]").click()
    assert "multipart/related" in browser.find_element(By.CSS_SELECTOR, "#panel-mime").text
    # The tree is indented by the stylesheet (the page's CSP blocks inline styles):
    # the inline logo sits two levels below the top multipart/alternative.
    cells = browser.find_elements(By.CSS_SELECTOR, "#panel-mime tbody td:first-child")
    indent = {
        c.text.lstrip("\u2514\u00a0 "): float(c.value_of_css_property("padding-left")[:-2])
        for c in cells
    }
    assert indent["image/png"] > indent["multipart/related"] > indent["multipart/alternative"]
    shoot(browser, "04-message-mime")
    browser.get(example + "/_mail/")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.list tbody tr")
    assert "Hello from the browser test" in rows[0].text
    shoot(browser, "02-inbox")


def _refreshed_badge(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    driver.refresh()
    return str(driver.find_element(By.CSS_SELECTOR, ".facts .badge").text)


def test_aborted_request_shows_as_discarded(browser: Any, example: str) -> None:
    from selenium.webdriver.common.by import By

    send_from_form(browser, example, "Never sent", abort=True)
    browser.find_element(By.ID, "inbox-link").click()
    badge = browser.find_element(By.CSS_SELECTOR, ".facts .badge")
    assert badge.text == "discarded"
    assert "transaction doomed" in browser.find_element(By.CSS_SELECTOR, ".facts").text
    browser.get(example + "/_mail/")
    row = browser.find_elements(By.CSS_SELECTOR, "table.list tbody tr")[0]
    assert "Never sent" in row.text and "discarded" in row.text
    shoot(browser, "05-inbox-discarded")


def test_preview_renders(browser: Any, example: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(example + "/_mail/previews")
    shoot(browser, "06-previews")
    browser.find_element(By.PARTIAL_LINK_TEXT, "Form message").click()
    assert browser.find_element(By.TAG_NAME, "h1").text == "Hello from Pyramid"
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, ".viewport iframe"))
    try:
        logo = browser.find_element(By.CSS_SELECTOR, "img[alt=Mailform]")
        assert wait_for(lambda: logo.get_property("naturalWidth")) == 96
    finally:
        browser.switch_to.default_content()
    shoot(browser, "07-preview")
    browser.get(example + "/_mail/previews/form_message?subject=Variant")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Variant"


def test_toolbar_panel_lists_the_requests_message(browser: Any, example: str) -> None:
    from selenium.webdriver.common.by import By

    send_from_form(browser, example, "Seen by the toolbar")
    button = browser.find_element(By.ID, "pShowToolBarButton")
    browser.get(button.get_attribute("href"))
    tab = wait_for(lambda: browser.find_elements(By.ID, "pDebugPanel-pyramid_sendmail"))
    assert tab, browser.page_source[:3000]
    tab[0].click()
    content = wait_for(
        lambda: [
            e
            for e in browser.find_elements(By.CSS_SELECTOR, "#pDebugPanel-pyramid_sendmail-content")
            if "Seen by the toolbar" in e.text
        ]
    )
    assert content, browser.page_source[:2000]
    assert re.search(r"(queued|sent)", content[0].text)
    shoot(browser, "08-toolbar-panel")
    browser.find_element(By.LINK_TEXT, "Global").click()
    tab = wait_for(lambda: browser.find_elements(By.ID, "pDebugPanel-pyramid_sendmail_previews"))
    tab[0].click()
    panel = browser.find_element(By.ID, "pDebugPanel-pyramid_sendmail_previews-content")
    assert wait_for(lambda: "Form message" in panel.text), panel.text
    assert "queued" in panel.text
    shoot(browser, "10-toolbar-global-panel")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """An app whose message HTML tries to run script; /beacon counts hits."""
    from pyramid.config import Configurator
    from pyramid.response import Response

    from pyramid_sendmail import Message

    hits: list[str] = []
    script = "new Image().src='/beacon?'+document.domain; parent.document.title='pwned';"
    html = (
        f"<p>Hello</p><script>{script}</script>"
        '<img src="/missing" onerror="new Image().src=\'/beacon?onerror\'">'
        "<svg onload=\"new Image().src='/beacon?svg'\"></svg>"
        "<iframe src=\"javascript:new Image().src='/beacon?js'\"></iframe>"
    )

    def send(request: Any) -> Response:
        request.mailer.send(
            Message(subject="Hostile", recipients=["a@example.org"], body="hi", html=html)
        )
        return Response("sent")

    def beacon(request: Any) -> Response:
        hits.append(request.query_string)
        return Response("")

    settings = {
        "mail.devtools": "true",
        "pyramid.reload_templates": "true",
        "mail.mailer": "file",
        "mail.file_path": str(tmp_path_factory.mktemp("hostile")),
        "mail.default_sender": "app@example.com",
    }
    with Configurator(settings=settings) as config:
        config.include("pyramid_tm")
        config.include("pyramid_sendmail")
        config.add_route("send", "/send")
        config.add_view(send, route_name="send")
        config.add_route("beacon", "/beacon")
        config.add_view(beacon, route_name="beacon")
    url, stop = serve(config.make_wsgi_app())
    try:
        yield url, hits
    finally:
        stop()


def test_message_html_cannot_run_script(browser: Any, hostile: tuple[str, list[str]]) -> None:
    from selenium.webdriver.common.by import By

    url, hits = hostile
    browser.get(url + "/send")
    browser.get(url + "/_mail/")
    browser.find_element(By.LINK_TEXT, "Hostile").click()
    page = browser.current_url
    time.sleep(1)
    assert browser.title.startswith("Hostile")
    # Opened directly rather than framed, the HTML is sandboxed all the same.
    browser.get(page + "/html")
    time.sleep(1)
    assert browser.find_element(By.TAG_NAME, "body").text.startswith("Hello")
    # The CSP's sandbox puts the document in an opaque origin, not the inbox's
    # (selenium's probe may run; the message's own scripts may not).
    assert browser.execute_script("return window.origin") == "null"
    assert hits == []


def test_phone_width_narrows_the_html_part(browser: Any, example: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(example + "/_mail/previews/form_message")
    frame = browser.find_element(By.CSS_SELECTOR, ".viewport iframe")
    wide = frame.size["width"]
    browser.find_element(By.CSS_SELECTOR, "label[for=width-mobile]").click()
    assert wide > 600 and frame.size["width"] == 375
    shoot(browser, "09-preview-phone")
