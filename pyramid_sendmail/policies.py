"""Email policies whose header registry builds each header class once.

The standard library's ``HeaderRegistry`` creates a new class every time a
header is set or parsed, which is a fifth of the cost of building a message.
These policies behave exactly like :data:`email.policy.default`,
:data:`email.policy.SMTP` and :data:`email.policy.SMTPUTF8`.
"""

from __future__ import annotations

from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry


class _CachingHeaderRegistry(HeaderRegistry):
    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls


_registry = _CachingHeaderRegistry()

DEFAULT = policy.default.clone(header_factory=_registry)
SMTP = policy.SMTP.clone(header_factory=_registry)
SMTPUTF8 = policy.SMTPUTF8.clone(header_factory=_registry)
