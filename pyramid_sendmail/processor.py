"""The queue processor: claim due messages and deliver them in batches."""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeGuard

from zope.interface import implementer

from .delivery import describe, log_attempt, log_refused
from .events import MailDeferred, MailFailed, MailSent, notify_with_registry
from .exceptions import CorruptEntry, MailDeliveryError, MailDropped, RelayUnavailable
from .interfaces import IMailer, IMailEvent, IMailQueue, IMailQueueProcessor
from .lanes import Lane, run_lanes
from .mailers.session import ReportSteps
from .mailers.smtp import SMTPMailer
from .mailers.smtp_session import SMTPSession
from .policies import DeliveryFilter, Redirect, resolve_delivery_filter
from .queue.entry import QueueEntry
from .ratelimit import RateLimit, ThrottleRule
from .results import SendResult, SMTPReply
from .settings import MailSettings
from .wording import counted

__all__ = [
    "ALSO_COUNTED",
    "HOUSEKEEPING",
    "OUTCOMES",
    "RELIST_SECONDS",
    "QueueProcessor",
]

log = logging.getLogger(__name__)

Notify = Callable[[IMailEvent], None]
#: What became of the messages of a pass (:attr:`QueueProcessor.last_pass`).
#: Each message handled is counted once, so the counts add up to the messages
#: handled: under ``failed`` when some recipient will never get it (refused
#: for good, expired, dropped by the delivery filter, given up on), else
#: ``deferred`` when some recipient is to be tried again, else ``throttled``
#: when a throttling reply put it back untried, else ``sent``.
OUTCOMES = ("sent", "deferred", "failed", "throttled")
#: The order in which :data:`OUTCOMES` claim a message that had several.
_WORST_FIRST = ("failed", "deferred", "throttled", "sent")
#: What the queue tidied up in a pass, counted in :attr:`QueueProcessor.last_pass`
#: too: unreadable messages set aside and stale claims recovered.
HOUSEKEEPING = ("set_aside", "recovered")
#: Everything :attr:`QueueProcessor.last_pass` counts beside :data:`OUTCOMES`:
#: the messages some recipients accepted while they went under ``deferred``
#: or ``failed`` (already counted there once), then :data:`HOUSEKEEPING`.
ALSO_COUNTED = ("partly_sent", *HOUSEKEEPING)
#: A pass lists the due mail again after this many seconds, so a
#: high-priority message queued meanwhile waits no longer than that behind
#: a backlog of low-priority mail.
RELIST_SECONDS = 1.0


@implementer(IMailQueueProcessor)
class QueueProcessor:
    """Deliver a queue's due messages through a mailer.

    Each of up to *workers* keeps one mailer session (one SMTP connection)
    for up to *batch_size* messages; a pass starts them all (fewer when
    fewer messages are due). With an SMTP mailer, a queue that settles
    locally (the Maildir) or in steps (SQL on psycopg) and no *rate_limit*,
    one thread drives them all (:mod:`pyramid_sendmail.lanes`); otherwise
    each is a thread. A message is claimed just before it is sent, so a
    claim lasts one send. Temporary failures are deferred by the
    message's age clamped between *retry_min* and *retry_max* seconds, until
    it is *max_age* old; permanent failures go to ``failed/``. *notify*
    receives each event; by default events are dispatched through
    *registry* in a fresh transaction each.

    Before each delivery, a message past its ``expires_at`` fails, the
    *delivery_filter* may drop recipients or the message, and *redirect* is
    applied (a queue written without it is redirected all the same). A
    *rate_limit* spaces the messages handed to the relay; a reply that
    *throttle* recognises pauses the processor for *throttle_pause* seconds
    and puts the message back without counting an attempt.
    """

    def __init__(
        self,
        queue: IMailQueue,
        mailer: IMailer,
        *,
        workers: int = 4,
        batch_size: int = 100,
        retry_min: float = 60.0,
        retry_max: float = 3600.0,
        max_age: float = 5 * 24 * 3600.0,
        registry: Any = None,
        notify: Notify | None = None,
        clock: Callable[[], float] = time.time,
        redirect: Redirect | None = None,
        delivery_filter: DeliveryFilter | None = None,
        rate_limit: RateLimit | None = None,
        throttle: ThrottleRule | None = None,
        throttle_pause: float = 60.0,
    ) -> None:
        self.queue = queue
        self.redirect = redirect if redirect is not None and redirect.active else None
        self.delivery_filter = delivery_filter
        self.rate_limit = rate_limit
        self.throttle = throttle
        self.throttle_pause = throttle_pause
        #: Until when (by *clock*) a throttling reply paused delivery.
        self.paused_until = 0.0
        self._throttled = threading.Event()
        self.mailer = mailer
        self.workers = workers
        self.batch_size = batch_size
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.max_age = max_age
        self.registry = registry
        self.notify = notify or self._notify_registry
        self.clock = clock
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self._relay_down = threading.Event()
        #: Counts of the last :meth:`process_once`, keyed by :data:`OUTCOMES`.
        self.last_pass: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        #: What messages of this pass had before they are counted, added to
        #: their count: ``failed`` for the recipients the delivery filter
        #: dropped, and the outcomes of the batches of recipients sent so far
        #: of a message whose next batch is due at once (see :meth:`_failed`).
        self._carried: dict[str, tuple[str, ...]] = {}

    @classmethod
    def from_settings(
        cls, queue: IMailQueue, mailer: IMailer, settings: MailSettings, registry: Any = None
    ) -> QueueProcessor:
        """A processor configured by the parsed ``mail.*`` *settings*."""
        return cls(
            queue,
            mailer,
            workers=settings.queue_workers,
            batch_size=settings.batch_size,
            retry_min=settings.retry_min,
            retry_max=settings.retry_max,
            max_age=settings.max_age,
            registry=registry,
            redirect=Redirect.from_settings(settings),
            delivery_filter=resolve_delivery_filter(settings.delivery_filter),
            rate_limit=RateLimit(*settings.rate_limit) if settings.rate_limit else None,
            throttle=ThrottleRule(settings.throttle_pattern),
            throttle_pause=settings.throttle_pause,
        )

    def run(self, interval: float, keep_going: Callable[[], bool] | None = None) -> None:
        """Deliver what is due every *interval* seconds until :meth:`stop`.

        The one run loop, of the processor thread and of ``psendmail run``.
        :meth:`wake` starts the next pass at once; :meth:`stop` ends the loop
        once the message in hand is settled. *keep_going* is asked after each
        wait; the loop ends when it returns false.
        """
        while True:
            # Clear, then look: a stop() that sets its wake-up after the
            # clear ends the wait below at once; checking before the clear
            # could wipe that wake-up and sleep a whole interval.
            self._wake.clear()
            if self.stopping.is_set():
                return
            try:
                self.process_once()
            except Exception:
                log.exception("the queue pass failed; trying again in %ss", interval)
            self._wake.wait(interval)
            if keep_going is not None and not keep_going():
                return

    def wake(self) -> None:
        """Start the next pass of :meth:`run` now instead of at the interval."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the message in hand, then end :meth:`run` and :meth:`process_once`."""
        self.stopping.set()
        self._wake.set()

    def reset(self) -> None:
        """Forget a :meth:`stop`, so that :meth:`run` can run again.

        New events rather than cleared ones: after ``fork()`` the old ones
        may be held by a thread that does not exist in the child.
        """
        self.stopping = threading.Event()
        self._wake = threading.Event()

    def process_once(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Deliver what is due now, until nothing is due; return the count
        handled (the sum of :attr:`last_pass`'s :data:`OUTCOMES`).

        *progress* is called as ``progress(done, total)`` after each message.
        Returns early, after the messages in hand, once :attr:`stopping` is set.
        """
        self.last_pass = Counter(dict.fromkeys(OUTCOMES + ALSO_COUNTED, 0))
        self.last_pass["recovered"] = self.queue.recover(self.clock())
        self._carried.clear()
        handled = 0
        self._throttled.clear()
        if self.clock() < self.paused_until:
            log.debug("the relay throttled us; paused until %.0f", self.paused_until)
            return 0
        try:
            while not self.stopping.is_set():
                names = self.queue.claimable(self.clock())
                if not names:
                    break
                done = self._deliver_all(names, progress, handled)
                if done == 0 or self._relay_down.is_set() or self._throttled.is_set():
                    break
                handled += done
                # Listed again: what was listed and not taken goes back first.
                self.queue.release()
        finally:
            # A pass that stopped early gives back what it listed and did
            # not take (a SQL queue claims when it lists).
            self.queue.release()
            # Those whose next batch of recipients this pass did not reach
            # (their earlier ones were sent) wait in the queue.
            for outcomes in self._carried.values():
                if "sent" in outcomes:
                    self._tally((*outcomes, "deferred"))
            self._carried.clear()
        return sum(self.last_pass[k] for k in OUTCOMES)

    @property
    def relay_was_down(self) -> bool:
        """True when the last pass ended early: the relay was unavailable."""
        return self._relay_down.is_set()

    def backoff(self, age: float) -> float:
        """Seconds to wait after a temporary failure of a message this old."""
        return min(max(age, self.retry_min), self.retry_max)

    def _deliver_all(
        self, names: list[str], progress: Callable[[int, int], None] | None, before: int
    ) -> int:
        self._relay_down.clear()
        feed = _SharedFeed(names, time.monotonic() + RELIST_SECONDS)
        counter = _Counter(before, before + len(names), progress)
        mailer = self.mailer
        if self._multiplexed(mailer):
            # One thread drives every connection (see lanes.py). The
            # connections open together first: opened in the lanes, each
            # would stop the others meanwhile.
            sessions = _connected([mailer.session() for _ in range(min(self.workers, len(names)))])
            claims = self._claims(feed, counter)
            lanes = [self._lane(mailer, session, claims, counter) for session in sessions]
            try:
                run_lanes(lanes, mailer.timeout)
            finally:
                for session in sessions:
                    session.close()  # a lane that never started leaves its own
            return counter.value - before
        # The calling thread is the first worker; the others join it at once.
        # Until 0.1 a CPU-time probe held them back while the relay answered
        # fast; it measured no faster (bench/results/20261202-061754.txt).
        first, *others = self._first_sessions(mailer, min(self.workers, len(names)))
        helpers = [
            threading.Thread(
                target=self._work, args=(feed, counter, session), name=f"psendmail-worker-{i}"
            )
            for i, session in enumerate(others, 1)
        ]
        for thread in helpers:
            thread.start()
        try:
            self._work(feed, counter, first)
        finally:
            for thread in helpers:
                thread.join()
        return counter.value - before

    def _first_sessions(self, mailer: IMailer, count: int) -> list[Any]:
        """The workers' first sessions: SMTP sessions opened together (see
        :func:`_connected`), or None for each worker of another mailer."""
        if count > 1 and isinstance(mailer, SMTPMailer):
            return _connected([self._session() for _ in range(count)])
        return [None] * count

    def _session(self) -> Any:
        """A session of the mailer for a worker thread. Under
        ``mail.rate_limit`` an SMTP session sends each message's data at
        once: taking the next message waits for its slot, and the one before
        must not wait with it (see :class:`SMTPSession`)."""
        session = self.mailer.session()
        if isinstance(session, SMTPSession):
            session.hold_data = self.rate_limit is None
        return session

    def _multiplexed(self, mailer: IMailer) -> TypeGuard[SMTPMailer]:
        """Whether one thread drives the connections: an SMTP mailer, and
        nothing else that blocks the loop. A queue whose settles block on a
        server (SQL without psycopg), and ``mail.rate_limit``'s pauses, keep
        the worker threads, which go on while one of them waits."""
        return (
            isinstance(mailer, SMTPMailer)
            and (getattr(self.queue, "settles_locally", False) or self._settles_in_steps)
            and self.rate_limit is None
        )

    @functools.cached_property
    def _settles_in_steps(self) -> bool:
        return bool(getattr(self.queue, "settles_in_steps", False))

    def _lane(
        self,
        mailer: SMTPMailer,
        session: SMTPSession,
        claims: Iterator[QueueEntry],
        counter: _Counter,
    ) -> Lane:
        """One connection's worth of :meth:`_work`, as steps for :func:`run_lanes`.

        When the queue settles in steps, each outcome is settled as the
        session's own steps (the DELETE's wait is one): the other
        connections go on meanwhile, and this one sends nothing more until
        the message the relay accepted is settled.
        """

        report = functools.partial(self._reporting, counter, in_steps=self._settles_in_steps)
        while True:
            batch = _Batch(claims, self.batch_size)
            with session:
                yield from session.send_many_steps(batch, report)
            if batch.taken < self.batch_size:
                return
            session = mailer.session()

    def _work(self, feed: _SharedFeed, counter: _Counter, session: Any = None) -> None:
        """One worker: a session per :attr:`batch_size` messages, until the
        feed is dry; *session*, when given, is the first."""
        claims = self._claims(feed, counter)
        report = functools.partial(self._report, counter)
        while True:
            batch = _Batch(claims, self.batch_size)
            current = session if session is not None else self._session()
            with current:
                current.send_many(batch, report)
            session = None
            if batch.taken < self.batch_size:
                return

    def _report(
        self,
        counter: _Counter,
        token: tuple[QueueEntry, float],
        outcome: SendResult | MailDeliveryError,
    ) -> None:
        """The session's *report*: settle one message; it must not raise."""
        for _step in self._reporting(counter, token, outcome, in_steps=False):
            pass

    def _reporting(
        self,
        counter: _Counter,
        token: tuple[QueueEntry, float],
        outcome: SendResult | MailDeliveryError,
        in_steps: bool,
    ) -> ReportSteps:
        """:meth:`_report`, as steps when *in_steps* (see :meth:`_settling`)."""
        entry, started = token
        try:
            yield from self._settling(entry, started, outcome, in_steps)
        except Exception:
            # A bug or an unwritable queue must not kill the worker;
            # the claim times out and the message is tried again.
            log.exception("could not settle queued mail %s", entry.name)
            with self._count_lock:
                self._carried.pop(entry.name, None)
        counter.add()

    def _claims(self, feed: _SharedFeed, counter: _Counter) -> Iterator[QueueEntry]:
        for name in feed:
            if self.stopping.is_set() or self._relay_down.is_set() or self._throttled.is_set():
                return
            claimed = self.queue.claim(name, on_corrupt=self._set_aside)
            if claimed is None:
                continue
            entry = self._policed(claimed)
            if entry is None:
                # Settled without a send (expired, dropped): handled all the same.
                counter.add()
                continue
            if self.rate_limit is not None and not self.rate_limit.wait(self.stopping):
                self._put_back(entry, self.clock(), "stopped while waiting for mail.rate_limit")
                return
            yield entry

    def _policed(self, entry: QueueEntry) -> QueueEntry | None:
        """*entry* as it is to be sent, or None when it was settled instead:
        expired, dropped by the delivery filter, or deferred by its error."""
        now = self.clock()
        if entry.schedule.expired(now):
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.schedule.expires_at))
            self._refuse(entry, entry.envelope.recipients, f"expired at {when}: not sent late")
            self._count(entry, "failed")
            return None
        if self.delivery_filter is not None:
            recipients = entry.envelope.recipients
            try:
                result = self.delivery_filter(entry.envelope)
            except MailDropped as exc:
                self._refuse(entry, recipients, f"dropped by mail.delivery_filter: {exc.reason}")
                self._count(entry, "failed")
                return None
            except Exception as exc:
                log.exception("mail.delivery_filter failed on %s; deferring it", entry.name)
                error = MailDeliveryError(f"mail.delivery_filter raised {exc!r}", temporary=True)
                self._count(entry, *self._failed(entry, error, dict.fromkeys(recipients)))
                return None
            kept = [] if result is None else [r for r in recipients if r in result.recipients]
            dropped = [r for r in recipients if r not in kept]
            if dropped:
                self._refuse(entry, dropped, "dropped by mail.delivery_filter", keep=bool(kept))
                if not kept:
                    self._count(entry, "failed")
                    return None
                with self._count_lock:
                    self._carried[entry.name] = ("failed",)
                entry.envelope = entry.envelope.with_recipients(kept)
        if self.redirect is not None:
            # Applied to the claimed copy only: the file keeps what was
            # queued until an outcome rewrites it, redirected.
            entry.envelope = self.redirect(entry.envelope)
        return entry

    def _refuse(
        self, entry: QueueEntry, recipients: Sequence[str], reason: str, keep: bool = False
    ) -> None:
        """Fail *recipients* of *entry* for *reason*; with *keep*, the claim
        stays for the others."""
        error = MailDeliveryError(reason, temporary=False)
        log.info(
            "queued mail %s not sent to %s: %s",
            entry.name,
            counted(len(recipients), "recipient"),
            reason,
        )
        failed = replace(entry, envelope=entry.envelope.with_recipients(recipients))
        self.queue.fail(failed, reason, keep_claim=keep)
        self.notify(MailFailed(entry.envelope, error, list(recipients)))

    def _put_back(self, entry: QueueEntry, until: float, reason: str) -> None:
        """Return *entry* to the queue, due at *until*, as no attempt."""
        # defer() counts an attempt; this was none.
        entry.attempts -= 1
        self.queue.defer(entry, until, entry.error or reason)

    def _was_throttled(self, entry: QueueEntry, outcome: MailDeliveryError) -> bool:
        """Pause after a throttling reply and put the message back, unless
        it is past mail.max_age (then it fails as any temporary failure)."""
        if self.throttle is None or outcome.accepted or not self.throttle(outcome, outcome.refused):
            return False
        now = self.clock()
        if now - entry.queued_at >= self.max_age:
            return False
        self.paused_until = max(self.paused_until, now + self.throttle_pause)
        self._throttled.set()
        log.warning(
            "the relay is throttling (%s); pausing %.0fs, %s goes back to the queue",
            outcome,
            self.throttle_pause,
            entry.name,
        )
        self._put_back(entry, self.paused_until, f"throttled: {outcome}")
        self._count(entry, "throttled")
        self.notify(
            MailDeferred(entry.envelope, outcome, self.paused_until, entry.envelope.recipients)
        )
        return True

    def _settling(
        self,
        entry: QueueEntry,
        started: float,
        outcome: SendResult | MailDeliveryError,
        in_steps: bool,
    ) -> ReportSteps:
        """Act on one message's outcome: complete, defer, fail or release it.

        With *in_steps*, a delivered message is completed through the
        queue's ``complete_steps``, whose steps are passed on; otherwise
        this generator blocks and yields nothing.
        """
        envelope = entry.envelope
        if isinstance(outcome, RelayUnavailable):
            # The rest of this pass would fail the same way, one connection
            # attempt each: this message is deferred like any temporary
            # failure, and the others wait, still due, for the next pass.
            self._relay_down.set()
        if isinstance(outcome, MailDeliveryError) and self._was_throttled(entry, outcome):
            return
        if isinstance(outcome, MailDeliveryError):
            log_attempt(envelope, started, f"failed ({outcome})", logging.WARNING)
            refused = {r: outcome.refused.get(r) for r in envelope.recipients}
            self._count(entry, *self._failed(entry, outcome, refused))
            return
        log_attempt(envelope, started, describe(outcome))
        log_refused(envelope, outcome, queued=True)
        if outcome.refused:
            error = MailDeliveryError(
                "some recipients were refused", temporary=False, refused=outcome.refused
            )
            outcomes = self._failed(entry, error, outcome.refused, some_accepted=True)
            self._count(entry, "sent", *outcomes)
        else:
            if in_steps:
                yield from self.queue.complete_steps(entry)  # type: ignore[attr-defined]
            else:
                self.queue.complete(entry)
            self._count(entry, "sent")
        self.notify(MailSent(envelope, outcome.accepted))

    def _failed(
        self,
        entry: QueueEntry,
        error: MailDeliveryError,
        refused: Mapping[str, SMTPReply | None],
        some_accepted: bool = False,
    ) -> list[str]:
        """Defer the temporarily refused recipients and fail the rest;
        return what became of them (``failed``, ``deferred`` or both).

        When *some_accepted* and the relay refused some recipients for
        their number alone (``452 4.5.3``), the deferred ones are due at
        once: a new transaction sends them the next batch (RFC 5321,
        4.5.3.1.10), as Postfix does.
        """
        outcomes = []
        temporary = [r for r, reply in refused.items() if _is_temporary(reply, error)]
        permanent = [r for r in refused if r not in temporary]
        now = self.clock()
        age = now - entry.queued_at
        gave_up = ""
        if temporary and age >= self.max_age:
            log.warning(
                "giving up on queued mail %s after %.0fs (max_age %.0fs): %s",
                entry.name,
                age,
                self.max_age,
                error,
            )
            permanent += temporary
            temporary = []
            gave_up = f"gave up after {_duration(age)} in the queue; last error: "
            error = MailDeliveryError(
                gave_up + str(error),
                temporary=False,
                code=error.code,
                refused=error.refused,
            )
        original = entry.envelope
        if permanent:
            failed = replace(entry, envelope=original.with_recipients(permanent))
            text = _error_text(error, permanent, refused)
            if gave_up and not text.startswith(gave_up):
                # The replies alone would read as an ordinary refusal.
                text = gave_up + text
            failed.attempted(text)
            try:
                self.queue.fail(failed, text, keep_claim=bool(temporary))
            except OSError:
                if not temporary:
                    raise
                # No dead letter (a full disk): those recipients wait with
                # the deferred ones, so that the deferral below still keeps
                # the recipients that accepted from a second copy.
                log.exception("could not set aside the refused recipients of %s", entry.name)
                temporary += permanent
            else:
                outcomes.append("failed")
                self.notify(MailFailed(original, error, permanent))
        if temporary:
            entry.envelope = original.with_recipients(temporary)
            over_limit = some_accepted and any(
                (reply := refused[r]) is not None and reply.too_many_recipients for r in temporary
            )
            retry_at = now if over_limit else now + self.backoff(age)
            self.queue.defer(entry, retry_at, _error_text(error, temporary, refused))
            outcomes.append("next batch" if over_limit else "deferred")
            self.notify(MailDeferred(original, error, retry_at, temporary))
        return outcomes

    def _set_aside(self, corrupt: CorruptEntry) -> None:
        # The queue has logged it and moved it to the failed mail.
        with self._count_lock:
            self.last_pass["set_aside"] += 1

    def _count(self, entry: QueueEntry, *outcomes: str) -> None:
        """Count *entry* once, under the worst of *outcomes* it had, and as
        ``partly_sent`` too when that is not ``sent`` but some recipient
        accepted it. A message sent in batches of recipients is counted
        with its last batch, under the worst outcome of them all."""
        with self._count_lock:
            outcomes += self._carried.pop(entry.name, ())
            if "next batch" in outcomes:
                self._carried[entry.name] = tuple(k for k in outcomes if k != "next batch")
                return
            self._tally(outcomes)

    def _tally(self, outcomes: tuple[str, ...]) -> None:
        """Count one message under the worst of *outcomes* (see :meth:`_count`)."""
        worst = next((k for k in _WORST_FIRST if k in outcomes), None)
        if worst is not None:
            self.last_pass[worst] += 1
            if worst != "sent" and "sent" in outcomes:
                self.last_pass["partly_sent"] += 1

    def _notify_registry(self, event: IMailEvent) -> None:
        if self.registry is not None:
            notify_with_registry(self.registry, event)


def _connected(sessions: list[SMTPSession]) -> list[SMTPSession]:
    """*sessions*, opened together, less those the relay refused while it
    took others (a relay that limits each client's connections answers the
    extra ones ``421 Too many connections``): the pass goes on over the
    connections it has. When none connected they all stay, and the first
    send reports why, as for a relay that is down."""
    _open_together(sessions)
    connected = [s for s in sessions if s.open_error is None]
    if not connected or len(connected) == len(sessions):
        return sessions
    refused = next(s.open_error for s in sessions if s.open_error is not None)
    log.warning(
        "the relay took %d of %d connections (%s); sending over those",
        len(connected),
        len(sessions),
        refused,
    )
    return connected


def _open_together(sessions: Sequence[SMTPSession]) -> None:
    """Open *sessions*' connections at the same time (a TLS handshake and a
    login each, to a distant relay), one thread each."""
    if len(sessions) == 1:
        sessions[0].open()
        return
    openers = [threading.Thread(target=s.open, name="psendmail-connect") for s in sessions]
    for thread in openers:
        thread.start()
    for thread in openers:
        thread.join()


def _is_temporary(reply: SMTPReply | None, error: MailDeliveryError) -> bool:
    """A recipient's own reply decides; one without a reply shares the error's fate."""
    return reply.temporary if reply is not None else error.temporary


def _duration(seconds: float) -> str:
    """*seconds* as a person reads a queue age: ``5d 0h``, ``3h 20m``, ``45s``."""
    whole = int(seconds)
    days, hours, minutes = whole // 86400, whole % 86400 // 3600, whole % 3600 // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {whole % 60}s"
    return f"{whole}s"


def _error_text(
    error: MailDeliveryError, recipients: list[str], refused: Mapping[str, SMTPReply | None]
) -> str:
    """What the queue file keeps: the server's own words for each recipient."""
    replies = []
    for recipient in recipients:
        reply = refused.get(recipient)
        if reply is not None:
            replies.append(f"{recipient}: {reply}")
    if not replies:
        return str(error)
    return "refused: " + "; ".join(replies)


class _Batch:
    """Up to *size* of a worker's *claims*, as a session's ``send_many`` items.

    :attr:`taken` tells the worker whether the feed ran dry before the batch
    was full (then it is done) or whether another session should follow.
    """

    def __init__(self, claims: Iterator[QueueEntry], size: int) -> None:
        self._claims = claims
        self._size = size
        self.taken = 0

    def __iter__(self) -> Iterator[tuple[tuple[QueueEntry, float], str, Sequence[str], bytes]]:
        for entry in self._claims:
            envelope = entry.envelope
            yield (entry, time.monotonic()), envelope.sender, envelope.recipients, envelope.data
            self.taken += 1
            if self.taken >= self._size:
                return


class _SharedFeed:
    """Hands each name to exactly one worker thread."""

    def __init__(self, names: list[str], deadline: float = math.inf) -> None:
        self._names = iter(names)
        self._lock = threading.Lock()
        self._deadline = deadline

    def __iter__(self) -> Iterator[str]:
        while True:
            if time.monotonic() > self._deadline:
                # The pass lists the queue again (priorities may have changed).
                return
            with self._lock:
                name = next(self._names, None)
            if name is None:
                return
            yield name


class _Counter:
    def __init__(self, value: int, total: int, progress: Callable[[int, int], None] | None):
        self.value = value
        self.total = total
        self.progress = progress
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.value += 1
            if self.progress is not None:
                self.progress(self.value, self.total)
