"""Staying under the relay's limits: a processor's send rate, and the
replies that say the relay is throttling.

:class:`RateLimit` is ``mail.rate_limit``: the processor asks it before
handing each message to the relay, from every worker thread, and it spaces
the messages evenly (no burst above the rate, whatever the window a
provider counts in). :class:`ThrottleRule` recognises a throttling reply
(SES: ``454 Throttling failure: Maximum sending rate exceeded``), after
which the processor pauses and puts the message back as it was.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping

from .exceptions import MailDeliveryError
from .results import SMTPReply

__all__ = ["SENDER_THROTTLE_CODES", "THROTTLE_CODES", "RateLimit", "ThrottleRule"]

#: The reply codes that may mean throttling, when their text says so.
THROTTLE_CODES = frozenset([421, 451, 454])
#: And a 450 to ``MAIL FROM``: it refuses the client or the sender, not a
#: mailbox (Postfix's client rate limits: ``450 4.7.1 Error: too much mail from``).
SENDER_THROTTLE_CODES = THROTTLE_CODES | {450}


class RateLimit:
    """At most *count* messages per *period* seconds, spaced evenly.

    Shared by the threads of one processor; each :meth:`wait` reserves the
    next free slot, ``period / count`` seconds after the one before.
    """

    def __init__(
        self, count: float, period: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if count <= 0 or period <= 0:
            raise ValueError("a rate limit needs a positive count and period")
        self.count = count
        self.period = period
        self.interval = period / count
        self.clock = clock
        self._next = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<RateLimit {self.count:g}/{self.period:g}s>"

    def split(self, parts: int) -> RateLimit:
        """The share of one of *parts* processors (``psendmail`` processes)."""
        return RateLimit(self.count / max(parts, 1), self.period, self.clock)

    def reserve(self) -> float:
        """Reserve the next slot; return the seconds to wait for it (0 if none)."""
        with self._lock:
            now = self.clock()
            # An idle limiter does not save up slots: no burst after a pause.
            slot = max(now, self._next)
            self._next = slot + self.interval
        return slot - now

    def wait(self, stopping: threading.Event) -> bool:
        """Wait for the next slot; False when *stopping* was set meanwhile."""
        delay = self.reserve()
        if delay > 0:
            return not stopping.wait(delay)
        return not stopping.is_set()


class ThrottleRule:
    """Tells a throttling reply from other temporary failures.

    A reply is throttling when its code is one of :data:`THROTTLE_CODES`
    (:data:`SENDER_THROTTLE_CODES` for the reply to ``MAIL FROM``) and its
    text matches *pattern* (``mail.throttle_pattern``).
    """

    def __init__(self, pattern: str) -> None:
        self.pattern = re.compile(pattern)

    def reply(self, reply: SMTPReply | None) -> bool:
        """True for a throttling *reply*."""
        if reply is None or reply.code not in THROTTLE_CODES:
            return False
        return self.pattern.search(reply.message.decode("utf-8", "replace")) is not None

    def __call__(self, error: MailDeliveryError, refused: Mapping[str, SMTPReply | None]) -> bool:
        """True when *error* (or a refused recipient's reply) is throttling."""
        if not error.temporary:
            return False
        codes = SENDER_THROTTLE_CODES if error.command == "MAIL" else THROTTLE_CODES
        if error.code in codes and self.pattern.search(error.reason):
            return True
        return any(self.reply(r) for r in refused.values())
