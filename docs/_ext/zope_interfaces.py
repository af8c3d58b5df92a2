"""The ``.. autointerface::`` directive: document a zope.interface contract.

Sphinx's autodoc does not recognise ``InterfaceClass`` objects, so this
renders one as a Python class with its attributes and methods, taken from
the interface itself (docstrings, method signatures, bases).
"""

from __future__ import annotations

import inspect
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList
from pyramid.path import DottedNameResolver
from zope.interface.interface import Method


def _indent(text: str, prefix: str = "   ") -> list[str]:
    return [prefix + line if line else "" for line in inspect.cleandoc(text).splitlines()]


def interface_source(dotted: str) -> list[str]:
    """The reST source documenting the interface named *dotted*."""
    iface = DottedNameResolver().resolve(dotted)
    module, _, name = dotted.rpartition(".")
    lines = [f".. py:class:: {name}", f"   :module: {module}", ""]
    bases = [b for b in iface.__bases__ if b.__name__ != "Interface"]
    if bases:
        names = ", ".join(f":class:`{b.__module__}.{b.__name__}`" for b in bases)
        lines += [f"   Extends {names}.", ""]
    lines += [*_indent(iface.__doc__ or ""), ""]
    # names(all=False): only what this interface adds, in definition order.
    for attr_name, attr in iface.namesAndDescriptions(all=False):
        doc = attr.getDoc() or ""
        if isinstance(attr, Method):
            signature = attr.getSignatureString()
            lines += [f"   .. py:method:: {attr_name}{signature}", ""]
        else:
            lines += [f"   .. py:attribute:: {attr_name}", ""]
        lines += [*_indent(doc, "      "), ""]
    return lines


class AutoInterfaceDirective(Directive):
    """Document the interface named in the argument."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        container = nodes.section()
        container.document = self.state.document
        source = StringList(interface_source(self.arguments[0]), source=self.arguments[0])
        self.state.nested_parse(source, self.content_offset, container)
        return list(container.children)


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("autointerface", AutoInterfaceDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
