"""What a mailer reports back about one message."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SendResult:
    """The outcome of one accepted message.

    *accepted* lists the recipients the server took; *refused* maps each
    recipient it refused to ``(code, reply)``. A message refused for every
    recipient raises :class:`~pyramid_sendmail.MailDeliveryError` instead.
    """

    accepted: tuple[str, ...]
    refused: dict[str, tuple[int, bytes]] = field(default_factory=dict)
