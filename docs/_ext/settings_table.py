"""The ``.. mail-settings::`` directive: the settings table, read from the code.

It renders :data:`pyramid_sendmail.settings.SETTINGS` (key, type, default and
meaning, read from the field declarations of
:class:`~pyramid_sendmail.settings.MailSettings`) as a table, so ``settings.rst`` cannot drift from what
``config.include('pyramid_sendmail')`` accepts. It is plain docutils, so the
test suite can render the page without Sphinx.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList

from pyramid_sendmail.settings import SETTINGS

__all__ = ["MailSettingsDirective", "format_default", "setup", "table_source"]


def format_default(value: Any) -> str:
    """The default as a reader would write it in an INI file."""
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "``true``" if value else "``false``"
    if isinstance(value, float) and value.is_integer():
        return f"``{int(value)}``"
    return f"``{value}``"


def table_source() -> list[str]:
    """The reST source of the table: one row per key."""
    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 22 10 14 54",
        "   :class: mail-settings",
        "",
        "   * - Key",
        "     - Type",
        "     - Default",
        "     - Meaning",
    ]
    for setting in SETTINGS:
        lines += [
            f"   * - .. _setting-{setting.key}:",
            "",
            f"       ``mail.{setting.key}``",
            f"     - {setting.type}",
            f"     - {format_default(setting.default)}",
            f"     - {setting.doc}",
        ]
    return lines


class MailSettingsDirective(Directive):
    """Insert the table of every ``mail.*`` setting."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        container = nodes.section()
        container.document = self.state.document
        source = StringList(table_source(), source="pyramid_sendmail.settings.SETTINGS")
        self.state.nested_parse(source, self.content_offset, container)
        return list(container.children)


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("mail-settings", MailSettingsDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
