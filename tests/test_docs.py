"""The documentation: its settings table matches the code, and its samples run.

Samples in ``docs/*.rst`` are checked by kind:

``.. code-block:: python``
    Executed in order, one namespace per page, in a fresh temporary folder
    that is also on ``sys.path``. A block starting with ``>>>`` runs as a
    doctest, so its shown output must match. A block with a ``:caption:``
    that names a relative ``.py`` path is written to that file instead (an
    ``app.py`` the next block imports); written ``test_*.py`` files are then
    run by pytest in a subprocess, and must pass. A block with
    ``:class: fragment`` is shown, not run: the page says why.
Blocks of any other language with a relative ``:caption:``
    Written to that file, in order with the Python blocks: the templates
    that an application on the page renders.
``.. code-block:: ini``
    Parsed; its ``mail.*`` keys must pass
    :func:`pyramid_sendmail.settings.parse_settings`. With a relative
    ``:caption:`` it is written to that file too.
``.. code-block:: console``
    Each ``$ psendmail ...`` line must be accepted by psendmail's parser.
"""

from __future__ import annotations

import configparser
import doctest
import os
import re
import shlex
import subprocess
import sys
import textwrap
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import transaction
from docutils.core import publish_doctree

from pyramid_sendmail import testing as sendmail_testing
from pyramid_sendmail.settings import SETTINGS, parse_settings

DOCS = Path(__file__).resolve().parent.parent / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

_DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. code-block::\s*(?P<language>\S+)\s*$")
_OPTION = re.compile(r"^\s*:(?P<name>[\w-]+):\s*(?P<value>.*)$")


@dataclass
class Block:
    page: str
    line: int
    language: str
    source: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def fragment(self) -> bool:
        return "fragment" in self.options.get("class", "").split()

    @property
    def file(self) -> str | None:
        caption = self.options.get("caption", "")
        if caption and not caption.startswith("/") and " " not in caption:
            return caption
        return None

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"


def read_blocks(path: Path) -> list[Block]:
    """Every ``code-block`` of a reST file, with its options and content."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        match = _DIRECTIVE.match(lines[index])
        index += 1
        if not match:
            continue
        indent = len(match["indent"])
        start = index
        options = {}
        while index < len(lines) and (option := _OPTION.match(lines[index])):
            options[option["name"]] = option["value"].strip()
            index += 1
        body = []
        while index < len(lines):
            line = lines[index]
            if line.strip() and len(line) - len(line.lstrip()) <= indent:
                break
            body.append(line)
            index += 1
        source = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
        blocks.append(Block(path.name, start, match["language"], source, options))
    return blocks


PAGES = sorted(DOCS.glob("*.rst"))
ALL_BLOCKS = [block for page in PAGES for block in read_blocks(page)]


def pages_with(*languages: str) -> list[str]:
    return sorted({b.page for b in ALL_BLOCKS if b.language in languages})


# -- the settings page -------------------------------------------------------


def rendered_settings_rows() -> dict[str, list[str]]:
    """Render settings.rst with docutils; return the table's rows by key."""
    import settings_table
    from docutils import nodes
    from docutils.parsers.rst import directives

    directives.register_directive("mail-settings", settings_table.MailSettingsDirective)
    text = (DOCS / "settings.rst").read_text(encoding="utf-8")
    doctree = publish_doctree(
        text,
        source_path=str(DOCS / "settings.rst"),
        settings_overrides={"report_level": 5, "halt_level": 5},
    )
    rows = {}
    for table in doctree.findall(nodes.table):
        if "mail-settings" not in table["classes"]:
            continue
        for row in table.findall(nodes.row):
            cells = [entry.astext().strip() for entry in row.findall(nodes.entry)]
            rows[cells[0]] = cells[1:]
    return rows


def test_settings_page_lists_every_setting_with_type_default_and_meaning() -> None:
    import settings_table

    rows = rendered_settings_rows()
    for setting in SETTINGS:
        assert f"mail.{setting.key}" in rows, f"mail.{setting.key} is missing"
        kind, default, meaning = rows[f"mail.{setting.key}"]
        assert kind == setting.type
        assert default == settings_table.format_default(setting.default).replace("``", "")
        assert meaning.split()[:3] == setting.doc.replace("``", "").split()[:3]
    assert set(rows) - {"Key"} == {f"mail.{s.key}" for s in SETTINGS}


def test_settings_page_renders_the_table_from_the_code() -> None:
    source = (DOCS / "settings.rst").read_text(encoding="utf-8")
    assert ".. mail-settings::" in source


def test_every_key_used_in_the_docs_is_a_real_setting() -> None:
    known = {s.key for s in SETTINGS}
    used = set()
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        # In running text (``mail.host``, ``mail.host = x``) and INI lines.
        used |= set(re.findall(r"``mail\.([a-z_]+)[`\s]", text))
        used |= set(re.findall(r"^\s*mail\.([a-z_]+)\s*=", text, re.MULTILINE))
    # pyramid_mailer keys that the migration page names as not taken over,
    # and the misspelling the settings page shows being refused.
    foreign = {"sendmail_template", "top_level_directory", "hots"}
    assert used - known - foreign == set()


# -- code samples ------------------------------------------------------------


def _ini_settings(block: Block, here: Path) -> list[dict[str, str]]:
    text = block.source
    if not text.lstrip().startswith("["):
        text = "[app:main]\n" + text
    parser = configparser.ConfigParser(
        strict=False,
        interpolation=configparser.BasicInterpolation(),
        defaults={"here": str(here)},
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text, source=str(block))
    # Interpolate only the mail.* keys (and the database that mail.queue =
    # sql reads): a systemd unit has its own "%i".
    return [
        {
            key: parser.get(name, key)
            for key, _ in parser.items(name, raw=True)
            if key.startswith("mail.") or key == "sqlalchemy.url"
        }
        for name in parser.sections()
    ]


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.language == "ini"], ids=str)
def test_ini_sample_has_valid_mail_settings(block: Block, tmp_path: Path) -> None:
    for section in _ini_settings(block, tmp_path):
        mail = {k: v for k, v in section.items() if k.startswith("mail.")}
        if mail:
            parse_settings(section)


def _psendmail_lines(block: Block) -> list[list[str]]:
    commands = []
    for line in block.source.splitlines():
        if line.startswith("$ psendmail "):
            commands.append(shlex.split(line[2:], comments=True)[1:])
    return commands


@pytest.mark.parametrize(
    "block",
    [b for b in ALL_BLOCKS if b.language == "console" and _psendmail_lines(b)],
    ids=str,
)
def test_psendmail_commands_in_the_docs_exist(block: Block) -> None:
    from pyramid_sendmail.cli import _parser

    for argv in _psendmail_lines(block):
        _parser().parse_args(argv)


def _run_doctest(block: Block, namespace: dict) -> None:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(block.source, namespace, str(block), block.page, block.line)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    runner.run(test, out=report.append, clear_globs=False)
    # DocTest works on a copy of the globals: keep what the block defined.
    namespace.update(test.globs)
    assert not runner.failures, "".join(report)


@pytest.mark.parametrize("page", pages_with("python", "ini"))
def test_python_samples_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    # A real module, so that code looking up its caller (Configurator) works.
    module = types.ModuleType(f"docs_{Path(page).stem}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    tests_written = 0
    try:
        for block in read_blocks(DOCS / page):
            if block.fragment or (block.language not in ("python", "ini") and not block.file):
                continue
            if block.file:
                target = tmp_path / block.file
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.source, encoding="utf-8")
                if Path(block.file).name.startswith("test_"):
                    tests_written += block.source.count("\ndef test_") + block.source.startswith(
                        "def test_"
                    )
            elif block.language != "python":
                continue
            elif block.source.lstrip().startswith(">>>"):
                _run_doctest(block, namespace)
            else:
                exec(compile(block.source, str(block), "exec"), namespace)
    finally:
        transaction.manager.abort()
        sendmail_testing.activate(None)
        for name in set(sys.modules) - before:
            module = sys.modules[name]
            if str(tmp_path) in (getattr(module, "__file__", None) or ""):
                del sys.modules[name]
    if tests_written:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(tmp_path)},
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"{tests_written} passed" in done.stdout, done.stdout


def test_python_blocks_are_either_run_or_marked_as_fragments() -> None:
    # A python sample is run unless marked; a marked one must say why nearby.
    for block in ALL_BLOCKS:
        if block.language == "python" and block.fragment:
            page = (DOCS / block.page).read_text(encoding="utf-8")
            prose = " ".join(page.replace("*", "").split())
            assert "not run by the test suite" in prose, block


def test_index_example_sends_the_welcome_message_after_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from webtest import TestApp

    [block] = [b for b in read_blocks(DOCS / "index.rst") if b.file == "app.py"]
    (tmp_path / "app.py").write_text(block.source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "app", raising=False)
    import app  # type: ignore[import-not-found]

    try:
        response = TestApp(app.main()).post("/signup", {"email": "ann@example.org"})
    finally:
        del sys.modules["app"]
    assert response.text == "Check your inbox."
    printed = capsys.readouterr().out
    assert "Subject: Welcome!" in printed
    assert "To: ann@example.org" in printed
    assert "From: Example <noreply@example.com>" in printed
