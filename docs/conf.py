"""Sphinx configuration for pyramid_sendmail's documentation."""

import os
import sys
from importlib.metadata import version as _version

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "_ext"))

project = "pyramid_sendmail"
author = "The pyramid_sendmail developers"
copyright = "the pyramid_sendmail developers"
release = _version("pyramid-sendmail-tx")
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "settings_table",
    "zope_interfaces",
]
# No intersphinx: the build must work offline. References to the standard
# library, Pyramid and transaction are listed in nitpick_ignore instead.

root_doc = "index"
exclude_patterns = ["_build"]
templates_path: list[str] = []
html_static_path: list[str] = []
html_theme = "alabaster"
html_theme_options = {"description": "Transactional email for Pyramid"}
pygments_style = "sphinx"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True}

nitpicky = True
nitpick_ignore_regex = [
    # Outside this package and not resolvable without intersphinx.
    ("py:class", r"(email|collections\.abc|typing|types|io|ssl|smtplib|socket|os|pathlib|datetime)\..*"),
    ("py:class", r"(pyramid|transaction|zope\.interface)\..*"),
    ("py:(class|exc|func|meth|data)", r"(sqlalchemy|sa)\..*"),
    # Private classes named in signatures, and the entry the queue issue documents.
    ("py:class", r"pyramid_sendmail\..*\._\w+"),
    ("py:class", r"pyramid_sendmail\.queue\.entry\..*"),
    ("py:exc", r"(pyramid|transaction)\..*"),
    ("py:func", r"(pyramid|transaction)\..*"),
    ("py:meth", r"(pyramid|transaction)\..*"),
    ("py:class", r"(EmailMessage|Address|TextIO|IO|Callable|Sequence|Mapping|Any|ModuleType)"),
    # Type aliases and return types that are not public API.
    ("py:class", r"(AddressLike|HeadersLike|EventSink|SMTPFactory|MessageLike)"),
    ("py:class", r"(pyramid_sendmail\.mailers\.(session\.|smtp_session\.)?)?(T|_S|_B)"),
    ("py:class", r"(pyramid_sendmail\.mailers\.(session|smtp_session)\.)?(Outcome|Report|Relay|_Sender)"),
    ("py:class", r"(pyramid_sendmail\.results\.)?ReplyLike"),
    ("py:class", r"<InterfaceClass .*>"),
]
