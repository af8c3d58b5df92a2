"""``psendmail CONFIG_URI [command]``: run and inspect the mail queue.

Exit codes (:data:`EXIT_CODES`): 0 success, 1 the command failed (a message
names why; for ``run --once``: some mail failed for good), 2 bad usage or
configuration, 75 (``EX_TEMPFAIL``) ``run --once`` deferred or throttled mail
or found the relay down: run again later.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from pyramid.exceptions import ConfigurationError

from .cli_sql import open_sql_queue, sql_command
from .components import (
    IMailComponents,
    MailComponents,
    build_components,
    build_mailer,
    open_configured_queue,
)
from .exceptions import CorruptEntry, SendmailError, UnknownEntry
from .interfaces import IMailer, IMailQueue
from .message import Message, prepare
from .policies import Redirect
from .processor import ALSO_COUNTED, OUTCOMES, QueueProcessor
from .processor_thread import without_threads
from .queue.entry import PRIORITIES
from .settings import MailSettings, parse_settings
from .supervisor import (
    START_FAILED,
    STARTUP_ERRORS,
    PassResult,
    drain_in_processes,
    run_forever,
    serve_in_processes,
)
from .wording import counted

__all__ = ["EXIT_CODES", "EXIT_FAILED", "EXIT_OK", "EXIT_TEMPFAIL", "EXIT_USAGE", "main"]

EXIT_OK = 0
#: The command failed; for ``run --once``: some mail failed for good.
EXIT_FAILED = 1
EXIT_USAGE = 2
#: ``run --once`` deferred or throttled mail, or found the relay down (sysexits' EX_TEMPFAIL).
EXIT_TEMPFAIL = 75
EXIT_CODES = {
    EXIT_OK: "success (run --once: every message due was sent, or none was due)",
    EXIT_FAILED: "the command failed (run --once: some mail failed for good, see 'failed')",
    EXIT_USAGE: "bad usage or configuration",
    EXIT_TEMPFAIL: "run --once deferred or throttled mail, or the relay was down: try again later",
}
#: The commands that only look at the queue: they never create its folder.
_INSPECTING = ("status", "failed", "retry")

# Named explicitly: under ``python -m`` __name__ would be "__main__".
log = logging.getLogger("pyramid_sendmail.cli")
#: How ``run --once`` words the other counts of a pass, when there were any.
_ALSO_COUNTED_WORDS = {
    "partly_sent": ("message", "partly delivered"),
    "set_aside": ("unreadable message", "set aside"),
    "recovered": ("stale claim", "recovered"),
}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; return the exit code."""
    out = out or sys.stdout
    parser = _parser()
    args = parser.parse_args(argv)
    from plaster.exceptions import PlasterError

    try:
        return _dispatch(args, out)
    except STARTUP_ERRORS as exc:
        print(f"psendmail: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PlasterError as exc:
        print(f"psendmail: cannot read {args.config_uri} as an INI file: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except _MissingQueue as exc:
        print(f"psendmail: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (``psendmail status | head``): say nothing,
        # and keep Python from reporting the pipe again when it flushes.
        if out is sys.stdout:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED


class _MissingQueue(Exception):
    """An inspecting command was pointed at a queue folder that does not exist."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="psendmail",
        description="Deliver and inspect pyramid_sendmail's mail queue.",
        epilog="exit codes:\n"
        + "\n".join(f"  {code:<3} {meaning}" for code, meaning in EXIT_CODES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config_uri", help="the application's INI file, e.g. production.ini")
    parser.add_argument("--app-name", default="main", help="the app section (default: main)")
    parser.add_argument(
        "--no-app",
        action="store_true",
        help="do not load the application (events then reach no subscriber)",
    )
    # "psendmail production.ini" alone means "run", which then has no --once.
    parser.set_defaults(once=False, processes=None)
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="deliver queued mail (default)")
    run.add_argument("--once", action="store_true", help="deliver what is due, then exit")
    run.add_argument(
        "--processes",
        type=_positive,
        metavar="N",
        help="processor processes to fork (default: mail.queue_processes)",
    )
    status = commands.add_parser("status", help="count queued, deferred and failed mail")
    status.add_argument("--json", action="store_true", help="print JSON")
    failed = commands.add_parser("failed", help="list failed mail with its errors")
    failed.add_argument("--json", action="store_true", help="print JSON")
    retry = commands.add_parser("retry", help="put failed mail back in the queue")
    retry.add_argument("ids", nargs="*", help="the failed messages' file names")
    retry.add_argument("--all", action="store_true", help="every failed message")
    sql = commands.add_parser("sql", help="the SQL queue's tables (mail.queue = sql)")
    sql.add_argument(
        "action",
        choices=["create", "ddl", "check"],
        help="create: create the missing tables; ddl: print the SQL that creates them; "
        "check: say what differs from what this version expects",
    )
    sql.add_argument(
        "--dialect", help="for ddl: the database kind (postgresql, sqlite; default: the URL's)"
    )
    send_test = commands.add_parser("send-test", help="send a test message now")
    send_test.add_argument("address", help="the recipient")
    return parser


def _dispatch(args: argparse.Namespace, out: TextIO) -> int:
    _config_loader(args.config_uri).setup_logging()
    settings = _read_settings(args.config_uri, args.app_name)
    values = parse_settings(settings)
    command = args.command or "run"
    if command == "send-test":
        return _send_test(values, settings, args.address, out)
    if command == "sql":
        return sql_command(values, args.config_uri, args.action, args.dialect, out)
    queue = _open_queue(values, args.config_uri, create=command not in _INSPECTING)
    try:
        return _queue_command(command, args, values, settings, queue, out)
    finally:
        queue.close()


def _queue_command(
    command: str,
    args: argparse.Namespace,
    values: MailSettings,
    settings: Mapping[str, Any],
    queue: IMailQueue,
    out: TextIO,
) -> int:
    if command == "status":
        return _status(queue, args.json, out, values)
    if command == "failed":
        return _failed(queue, args.json, out)
    if command == "retry":
        return _retry(queue, args.ids, args.all, out)
    processes = args.processes or values.queue_processes
    make_processor = _ProcessorFactory(
        args.config_uri, args.app_name, values, settings, args.no_app, processes
    )
    if processes > 1 and not hasattr(os, "fork"):
        raise ConfigurationError(
            f"mail.queue_processes = {processes} needs os.fork(), which this system lacks"
        )
    if args.once:
        return _run_once(queue, make_processor, processes, out)
    if processes > 1:
        return serve_in_processes(processes, make_processor, values.queue_interval)
    return run_forever(make_processor(), values.queue_interval)


def _open_queue(values: MailSettings, config_uri: str, create: bool = True) -> IMailQueue:
    if values.queue == "sql":
        queue: IMailQueue = open_sql_queue(values, config_uri)
        return queue
    if not values.queue_path:
        raise ConfigurationError(f"mail.queue_path is not set in {config_uri}")
    if not create and not os.path.exists(values.queue_path):
        # Creating it would report a healthy empty queue for a mistyped path.
        raise _MissingQueue(
            f"the mail queue folder {values.queue_path!r} (mail.queue_path in "
            f"{config_uri}) does not exist; the application or 'psendmail run' creates it"
        )
    return open_configured_queue(values.queue_path, values.claim_timeout)


class _ProcessorFactory:
    """Builds the processor of ``psendmail run``: the application's own when
    it is loaded (its mailer, whether built from ``mail.mailer`` or
    registered by the application, and its registry for events), otherwise
    one built from the settings alone. Called in each forked child."""

    def __init__(
        self,
        config_uri: str,
        app_name: str,
        settings: MailSettings,
        app_settings: Mapping[str, Any],
        no_app: bool,
        processes: int = 1,
    ) -> None:
        self.processes = processes
        self.config_uri = config_uri
        self.app_name = app_name
        self.settings = settings
        self.app_settings = app_settings
        self.no_app = no_app

    def __call__(self) -> QueueProcessor:
        processor = self._processor()
        if processor.rate_limit is not None and self.processes > 1:
            # mail.rate_limit is the whole psendmail's: each process takes its share.
            processor.rate_limit = processor.rate_limit.split(self.processes)
        return processor

    def _processor(self) -> QueueProcessor:
        if self.no_app:
            return self._built(build_components(self.settings, app_settings=self.app_settings))
        registry = _load_registry(self.config_uri, self.app_name)
        if registry is None:
            return self._built(build_components(self.settings, app_settings=self.app_settings))
        components = registry.queryUtility(IMailComponents)
        if components is None or components.processor is None:
            # The application did not include pyramid_sendmail (or not
            # with this queue): build around its mailer, if it has one.
            components = build_components(
                self.settings,
                mailer=registry.queryUtility(IMailer),
                registry=registry,
                app_settings=self.app_settings,
            )
        return self._built(components)

    @staticmethod
    def _built(components: MailComponents) -> QueueProcessor:
        # The settings have a queue (checked before), so it has a processor.
        assert components.processor is not None
        return components.processor


def _run_once(
    queue: IMailQueue, make_processor: Callable[[], QueueProcessor], processes: int, out: TextIO
) -> int:
    progress = _ProgressBar(sys.stderr) if sys.stderr.isatty() else None
    if processes > 1:
        # Counted, not listed: listing a SQL queue claims.
        total = queue.status()["queued"]["count"] if progress is not None else 0
        result = drain_in_processes(processes, make_processor, progress, total)
        if result.failed_to_start:
            return START_FAILED
    else:
        processor = make_processor()
        processor.process_once(progress)
        result = PassResult(processor.last_pass, processor.relay_was_down)
    if progress is not None:
        progress.finish()
    print(_summary(result), file=out)
    if result.relay_was_down:
        print("the relay could not be reached; the rest waits for the next run", file=out)
    if result.crashed:
        codes = ", ".join(map(str, result.crashed))
        print(
            f"psendmail: {len(result.crashed)} processor process(es) failed (exit {codes}); "
            "their messages wait for the claim timeout",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return _exit_code(result)


def _summary(result: PassResult) -> str:
    """One line: what became of each message handled, then the messages
    partly delivered and the housekeeping.

    Each message is counted once (see :data:`~pyramid_sendmail.processor.OUTCOMES`),
    so the counts add up to the total after ``=``.
    """
    counts = result.counts
    summary = ", ".join(f"{counts[k]} {k}" for k in OUTCOMES)
    summary += f" = {sum(counts[k] for k in OUTCOMES)} handled"
    chores = [
        f"{counted(counts[k], _ALSO_COUNTED_WORDS[k][0])} {_ALSO_COUNTED_WORDS[k][1]}"
        for k in ALSO_COUNTED
        if counts[k]
    ]
    return summary + ("; " + ", ".join(chores) if chores else "")


def _exit_code(result: PassResult) -> int:
    """``run --once``'s exit code, from the counts of :func:`_summary`."""
    if result.counts["failed"]:
        return EXIT_FAILED
    if result.relay_was_down or result.counts["deferred"] or result.counts["throttled"]:
        return EXIT_TEMPFAIL
    return EXIT_OK


@functools.cache
def _config_loader(config_uri: str) -> Any:
    """The file's plaster loader, found once.

    An INI file's loader is Pyramid's own (plaster_pastedeploy), taken
    directly: plaster's lookup reads every installed distribution's
    metadata, a tenth of a second of each psendmail command.
    """
    import plaster

    uri = plaster.parse_uri(config_uri)
    if uri.scheme == "file+ini":
        import plaster_pastedeploy

        return plaster_pastedeploy.Loader(uri)
    return plaster.get_loader(uri, protocols=["wsgi"])


def _read_settings(config_uri: str, name: str) -> Any:
    loader = _config_loader(config_uri)
    try:
        return loader.get_wsgi_app_settings(name)
    except LookupError as exc:
        section = f"app:{name}"
        if section not in loader.get_sections():
            raise ConfigurationError(f"{config_uri} has no [{section}] section") from exc
        # A section of settings alone (no "use ="): enough unless the
        # application must be loaded, which _load_registry reports.
        return loader.get_settings(section)


def _load_registry(config_uri: str, name: str) -> Any:
    # Loading the app must not start a second processor in this process.
    try:
        with without_threads():
            app = _config_loader(config_uri).get_wsgi_app(name)
    except LookupError as exc:
        raise ConfigurationError(
            f"cannot load the application from {config_uri}: {exc} "
            "(give --no-app to deliver without it)"
        ) from exc
    registry = getattr(app, "registry", None)
    if registry is None:
        log.warning("the application has no registry; mail events reach no subscriber")
    return registry


def _status(
    queue: IMailQueue, as_json: bool, out: TextIO, values: MailSettings | None = None
) -> int:
    report = queue.status()
    # Both queues report scheduled mail and priorities (Maildir: from its
    # names; SQL: from its columns).
    schedule = queue.schedule_status() if hasattr(queue, "schedule_status") else None
    if schedule is not None and not (schedule["scheduled"] or schedule["high"] or schedule["low"]):
        # Nothing scheduled, all of one class: the report stays as it was.
        schedule = None
    redirect = Redirect.from_settings(values) if values is not None else Redirect()
    if as_json:
        extra: dict[str, Any] = {}
        if schedule is not None:
            extra["schedule"] = schedule
        if redirect.active:
            extra["redirect"] = redirect.describe()
        json.dump({"queue": queue.location, **report, **extra}, out, indent=2)
        out.write("\n")
        return 0
    print(f"queue {queue.location}", file=out)
    for kind, item in report.items():
        oldest = f"  oldest {_age(item['oldest'])}" if item["count"] else ""
        print(f"{kind.replace('_', ' '):<10} {item['count']:>8}{oldest}", file=out)
    if schedule is not None:
        due = schedule["next_due"]
        nxt = f"  next in {_age(due)}" if due is not None else ""
        print(f"{'scheduled':<10} {schedule['scheduled']:>8}{nxt}", file=out)
        counts = ", ".join(f"{schedule[p]} {p}" for p in PRIORITIES)
        print(f"waiting by priority: {counts}", file=out)
    if redirect.active:
        print(redirect.describe(), file=out)
    return 0


def _failed(queue: IMailQueue, as_json: bool, out: TextIO) -> int:
    now = time.time()
    entries: list[dict[str, Any]] = [
        {
            "id": e.name,
            "message_id": e.envelope.message_id,
            "age": now - e.queued_at,
            "attempts": e.attempts,
            "recipients": list(e.envelope.recipients),
            "error": e.error,
        }
        for e in queue.list("failed")
    ]
    entries += [
        {
            "id": name,
            "message_id": None,
            "age": None,
            "attempts": None,
            "recipients": [],
            "error": reason,
        }
        for name, reason in sorted(queue.unreadable().items())
    ]
    if as_json:
        json.dump(entries, out, indent=2)
        out.write("\n")
        return 0
    for entry in entries:
        if entry["message_id"] is None:
            print(f"{entry['id']}  (unreadable)", file=out)
        else:
            age, attempts = _age(entry["age"]), entry["attempts"]
            print(f"{entry['id']}  {age} old, {counted(attempts, 'attempt')}", file=out)
            print(f"  to: {', '.join(entry['recipients'])}", file=out)
        print(f"  error: {entry['error']}", file=out)
    print(f"{counted(len(entries), 'failed message')} in {queue.location}", file=out)
    return 0


def _retry(queue: IMailQueue, ids: list[str], every: bool, out: TextIO) -> int:
    if not ids and not every:
        print("psendmail retry: name the messages to retry, or give --all", file=sys.stderr)
        return 2
    try:
        moved = queue.retry(None if every else ids)
    except UnknownEntry as exc:
        print(f"psendmail retry: no failed message {exc.name!r}", file=sys.stderr)
        return 1
    except CorruptEntry as exc:
        print(f"psendmail retry: {exc}; it stays with the failed mail", file=sys.stderr)
        return 1
    print(f"put {counted(len(moved), 'message')} back in the queue", file=out)
    # What --all left behind is what cannot be read (list() skips it).
    left = len(queue.unreadable()) if every else 0
    if left:
        stay = "stays where it is" if left == 1 else "stay where they are"
        print(
            f"psendmail retry: {counted(left, 'failed message')} cannot be read and {stay}",
            file=sys.stderr,
        )
        return 1
    return 0


def _send_test(values: MailSettings, settings: Mapping[str, Any], address: str, out: TextIO) -> int:
    sender = values.default_sender or address
    envelope = prepare(
        Message(
            subject="pyramid_sendmail test message",
            sender=sender,
            recipients=[address],
            body="This message was sent by `psendmail send-test` to check the mail settings.\n",
        ),
    )
    envelope = Redirect.from_settings(values)(envelope)
    mailer = build_mailer(values, settings)
    try:
        result = mailer.send(envelope.sender, envelope.recipients, envelope.data)
    except SendmailError as exc:
        print(f"psendmail send-test: not sent: {exc}", file=sys.stderr)
        return 1
    if result.refused:
        print(f"psendmail send-test: refused: {result.refused}", file=sys.stderr)
        return 1
    print(f"sent {envelope.message_id} to {address}", file=out)
    return 0


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


class _ProgressBar:
    """A one-line bar on a terminal that log lines to the same terminal do not
    overwrite: while it is shown, the logging handlers writing to its stream
    write through :class:`_BarAwareStream`, which clears the bar's line before a
    record and redraws the bar after it.
    """

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.line = ""
        self._swapped: list[tuple[logging.StreamHandler[Any], Any]] = []
        proxy = _BarAwareStream(self)
        for handler in _stream_handlers():
            if handler.stream is stream:
                self._swapped.append((handler, handler.stream))
                handler.setStream(proxy)

    def __call__(self, done: int, total: int) -> None:
        filled = self.width * done // max(total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        self.line = f"[{bar}] {done}/{total}"
        self.stream.write("\r" + self.line)
        self.stream.flush()

    def finish(self) -> None:
        for handler, original in self._swapped:
            handler.setStream(original)
        self._swapped = []
        if self.line:
            self.stream.write("\n")
        self.line = ""
        self.stream.flush()


class _BarAwareStream:
    """What a logging handler writes to while a :class:`_ProgressBar` is shown."""

    def __init__(self, bar: _ProgressBar) -> None:
        self.bar = bar
        self.cleared = False

    def write(self, text: str) -> int:
        if self.bar.line and not self.cleared:
            # Carriage return, then erase to the end of the line (ANSI EL).
            self.bar.stream.write("\r\x1b[K")
            self.cleared = True
        return self.bar.stream.write(text)

    def flush(self) -> None:
        # StreamHandler flushes once per record, after its terminator.
        if self.cleared:
            self.bar.stream.write("\r" + self.bar.line)
            self.cleared = False
        self.bar.stream.flush()


def _stream_handlers() -> list[logging.StreamHandler[Any]]:
    loggers: list[Any] = [logging.getLogger()]
    loggers += logging.Logger.manager.loggerDict.values()
    return [
        handler
        for logger in loggers
        for handler in getattr(logger, "handlers", ())
        if isinstance(handler, logging.StreamHandler)
    ]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
