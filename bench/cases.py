"""One measurement in a fresh process: ``python cases.py CASE VARIANT [options]``.

run.py starts this once per measurement, with a fresh queue directory, and
reads the one JSON line it prints last. Only the packages a variant needs are
imported, so the pyramid_sendmail variants run without the other packages.

Cases and what is timed (nothing else is):

``enqueue``
    *n* messages, each built and sent in its own committed transaction.
``enqueue-paired``
    pyramid_sendmail and the raw loop in this one process, each into its own
    fresh queue, alternating in chunks of 100 messages: both meet the same
    moments of a noisy disk and the same process, so their ratio is paired.
``request``
    *n* pairs of WebTest GETs through pyramid_tm, one to a view that queues
    a message and one to the same view sending nothing, alternating.
``drain``
    a queue of *n* messages (filled first, untimed) delivered until empty by
    the package's own queue processor.
``direct``
    *n* messages, each sent in its own committed transaction by the
    package's direct delivery (sent in the commit, no queue), to ``--port``.
``fill``
    (backlog) write *n* queue files directly, in pyramid_sendmail's format;
    untimed preparation, reported for information.
``status``
    (backlog) ``MaildirQueue.status()`` in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from email.policy import SMTP
from typing import Any

import payload
from sqlcases import SQL_CASES

PSM = "pyramid_sendmail"

# -- helpers -------------------------------------------------------------------


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class _FsyncCounter:
    """Counts os.fsync calls, to show which packages make the queue durable."""

    def __init__(self) -> None:
        self.calls = 0
        self._real = os.fsync

    def __call__(self, fd: int) -> None:
        self.calls += 1
        self._real(fd)

    def install(self) -> _FsyncCounter:
        os.fsync = self  # type: ignore[assignment]
        return self


def _queued_files(qdir: str, subdirs: tuple[str, ...] = ("new", "cur")) -> int:
    count = 0
    for sub in subdirs:
        path = os.path.join(qdir, sub)
        if os.path.isdir(path):
            count += sum(1 for name in os.listdir(path) if not name.startswith("."))
    return count


def _email_message(message_id: str | None = None):
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["Subject"] = payload.SUBJECT
    msg["From"] = payload.SENDER
    msg["To"] = payload.RECIPIENT
    if message_id:
        msg["Message-ID"] = message_id
    msg.set_content(payload.BODY)
    return msg


class _Profile:
    """cProfile around the timed section when --profile is given."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.profile = None

    def __enter__(self) -> _Profile:
        if self.path:
            import cProfile

            self.profile = cProfile.Profile()
            self.profile.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.profile is not None:
            self.profile.disable()
            self.profile.dump_stats(self.path)


# -- enqueue -------------------------------------------------------------------


def _enqueue_raw(qdir: str) -> Callable[[int], None]:
    """The floor: write a tmp file, fsync, rename into new/, fsync new/."""
    tmp, new = os.path.join(qdir, "tmp"), os.path.join(qdir, "new")
    os.makedirs(tmp)
    os.makedirs(new)
    data = payload.message_bytes()
    pid = os.getpid()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    dir_flags = os.O_RDONLY | os.O_DIRECTORY

    def send(i: int) -> None:
        name = f"{time.time_ns():020d}.{pid}_{i}.bench"
        path = os.path.join(tmp, name)
        fd = os.open(path, flags, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(path, os.path.join(new, name))
        dfd = os.open(new, dir_flags)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    return send


def _enqueue_pyramid_sendmail(qdir: str) -> Callable[[int], None]:
    from pyramid.config import Configurator

    from pyramid_sendmail import Message, get_mailer

    config = Configurator(settings={"mail.queue_path": qdir})
    config.include("pyramid_sendmail")
    config.commit()
    return _queue_in_transactions(get_mailer(config.registry), Message)


def _enqueue_pyramid_mailer(qdir: str) -> Callable[[int], None]:
    from pyramid_mailer.mailer import Mailer
    from pyramid_mailer.message import Message

    return _queue_in_transactions(Mailer(queue_path=qdir), Message)


def _queue_in_transactions(mailer: Any, message_class: Any) -> Callable[[int], None]:
    """``send(i)``: build the message with pyramid_mailer's arguments (which
    pyramid_sendmail shares) and queue it in a committed transaction."""
    import transaction

    def send(i: int) -> None:
        with transaction.manager:
            mailer.send_to_queue(
                message_class(
                    subject=payload.SUBJECT,
                    sender=payload.SENDER,
                    recipients=[payload.RECIPIENT],
                    body=payload.BODY,
                )
            )

    return send


def _enqueue_repoze(qdir: str) -> Callable[[int], None]:
    from email.mime.text import MIMEText

    import transaction
    from repoze.sendmail.delivery import QueuedMailDelivery

    delivery = QueuedMailDelivery(qdir)

    def send(i: int) -> None:
        with transaction.manager:
            msg = MIMEText(payload.BODY)
            msg["Subject"] = payload.SUBJECT
            msg["From"] = payload.SENDER
            msg["To"] = payload.RECIPIENT
            delivery.send(payload.SENDER, [payload.RECIPIENT], msg)

    return send


def _enqueue_zope(qdir: str) -> Callable[[int], None]:
    import transaction
    from zope.sendmail.delivery import QueuedMailDelivery

    delivery = QueuedMailDelivery(qdir)

    def send(i: int) -> None:
        # zope.sendmail takes the message as bytes; an application builds
        # them with the email package, as here.
        with transaction.manager:
            delivery.send(
                payload.SENDER, [payload.RECIPIENT], _email_message().as_bytes(policy=SMTP)
            )

    return send


ENQUEUE = {
    "raw": _enqueue_raw,
    "pyramid_sendmail": _enqueue_pyramid_sendmail,
    "pyramid_mailer": _enqueue_pyramid_mailer,
    "repoze.sendmail": _enqueue_repoze,
    "zope.sendmail": _enqueue_zope,
}


def case_enqueue(args: argparse.Namespace) -> dict:
    send = ENQUEUE[args.variant](args.dir)
    warm = max(5, args.n // 50)
    for i in range(warm):
        send(i)
    counter = _FsyncCounter().install()
    with _Profile(args.profile):
        started = time.perf_counter()
        for i in range(args.n):
            send(warm + i)
        elapsed = time.perf_counter() - started
    queued = _queued_files(args.dir, ("new",))
    return {
        "n": args.n,
        "seconds": elapsed,
        "rate": args.n / elapsed,
        "fsyncs_per_message": counter.calls / args.n,
        "queued_ok": queued == args.n + warm,
    }


PAIRED_CHUNK = 100


def case_enqueue_paired(args: argparse.Namespace) -> dict:
    loops = {"raw": _enqueue_raw(args.dir + "-raw"), PSM: _enqueue_pyramid_sendmail(args.dir)}
    warm = max(5, args.n // 50)
    for send in loops.values():
        for i in range(warm):
            send(i)
    spent = dict.fromkeys(loops, 0.0)
    counter = _FsyncCounter().install()
    for chunk, start in enumerate(range(0, args.n, PAIRED_CHUNK)):
        order = list(loops) if chunk % 2 else list(reversed(loops))
        for name in order:
            send = loops[name]
            started = time.perf_counter()
            for i in range(start, min(start + PAIRED_CHUNK, args.n)):
                send(warm + i)
            spent[name] += time.perf_counter() - started
    return {
        "n": args.n,
        "seconds": spent[PSM],
        "rate": args.n / spent[PSM],
        "raw_rate": args.n / spent["raw"],
        "of_raw": spent["raw"] / spent[PSM],
        "fsyncs_per_message": counter.calls / (2 * args.n),
        "queued_ok": _queued_files(args.dir, ("new",)) == args.n + warm,
    }


# -- request -------------------------------------------------------------------


def case_request(args: argparse.Namespace) -> dict:
    from pyramid.config import Configurator
    from pyramid.response import Response
    from webtest import TestApp

    settings = {"mail.queue_path": args.dir, "mail.default_sender": payload.SENDER}
    config = Configurator(settings=settings)
    config.include("pyramid_tm")
    if args.variant == "pyramid_sendmail":
        from pyramid_sendmail import Message

        config.include("pyramid_sendmail")

        def queue_one(request) -> None:
            request.mailer.send_to_queue(
                Message(
                    subject=payload.SUBJECT,
                    recipients=[payload.RECIPIENT],
                    body=payload.BODY,
                )
            )

    elif args.variant == "pyramid_mailer":
        from pyramid_mailer import get_mailer
        from pyramid_mailer.message import Message as PMMessage

        config.include("pyramid_mailer")

        def queue_one(request) -> None:
            get_mailer(request).send_to_queue(
                PMMessage(
                    subject=payload.SUBJECT,
                    sender=payload.SENDER,
                    recipients=[payload.RECIPIENT],
                    body=payload.BODY,
                )
            )

    else:
        raise SystemExit(f"no request variant {args.variant!r}")

    def view(request):
        if request.matchdict["what"] == "send":
            queue_one(request)
        return Response("ok")

    config.add_route("page", "/{what}")
    config.add_view(view, route_name="page")
    app = TestApp(config.make_wsgi_app())
    for _ in range(max(20, args.n // 20)):
        app.get("/send")
        app.get("/nothing")
    send_ns: list[int] = []
    nothing_ns: list[int] = []
    clock = time.perf_counter_ns
    with _Profile(args.profile):
        for i in range(args.n):
            # Alternate which goes first, so neither always follows the other.
            for what in ("send", "nothing") if i % 2 else ("nothing", "send"):
                started = clock()
                app.get("/" + what)
                (send_ns if what == "send" else nothing_ns).append(clock() - started)
    send_ns.sort()
    nothing_ns.sort()
    send_ms = send_ns[len(send_ns) // 2] / 1e6
    nothing_ms = nothing_ns[len(nothing_ns) // 2] / 1e6
    return {
        "n": args.n,
        "send_ms": send_ms,
        "nothing_ms": nothing_ms,
        "added_ms": send_ms - nothing_ms,
        "send_p90_ms": send_ns[len(send_ns) * 9 // 10] / 1e6,
        "nothing_p90_ms": nothing_ns[len(nothing_ns) * 9 // 10] / 1e6,
        "queued_ok": _queued_files(args.dir, ("new",)) >= args.n,
    }


# -- drain ---------------------------------------------------------------------


def _psm_envelope(i: int):
    from pyramid_sendmail.message import prepare

    return prepare(_email_message(f"<bench-{i:08d}@example.com>"))


def fill_fast(qdir: str, n: int) -> dict:
    """Write *n* queue files straight into ``new/``, without fsync.

    The bytes come from one file written by ``MaildirQueue.add`` (the public
    API) with only the message id changed (same length), and the names from
    the queue's own name generator: files identical to what ``add`` writes,
    a hundred times faster, for the backlog case.
    """
    from pyramid_sendmail.queue import MaildirQueue

    template_dir = qdir + "-template"
    template_queue = MaildirQueue(template_dir)
    name = template_queue.add(_psm_envelope(0))
    with open(os.path.join(template_dir, "new", name), "rb") as f:
        template = f.read()
    marker = b"bench-00000000@example.com"
    if template.count(marker) < 2:
        raise SystemExit("the queue file format changed: the message id is not where expected")
    queue = MaildirQueue(qdir)
    new_name = getattr(queue, "_new_name", None)
    pid = os.getpid()
    new = os.path.join(qdir, "new")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    started = time.perf_counter()
    for i in range(n):
        data = template.replace(marker, f"bench-{i:08d}@example.com".encode())
        file_name = new_name() if new_name else f"{time.time_ns():020d}.{pid}_{i}.bench"
        fd = os.open(os.path.join(new, file_name), flags, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    elapsed = time.perf_counter() - started
    due = len(queue.claimable())
    return {"n": n, "seconds": elapsed, "claimable": due, "file_bytes": len(template)}


def _fill_repoze(qdir: str, n: int) -> None:
    import transaction
    from repoze.sendmail.delivery import QueuedMailDelivery

    delivery = QueuedMailDelivery(qdir)
    for i in range(n):
        with transaction.manager:
            delivery.send(
                payload.SENDER, [payload.RECIPIENT], _email_message(f"<bench-{i:08d}@example.com>")
            )


def _fill_zope(qdir: str, n: int) -> None:
    import transaction
    from zope.sendmail.delivery import QueuedMailDelivery

    delivery = QueuedMailDelivery(qdir)
    for i in range(n):
        with transaction.manager:
            msg = _email_message(f"<bench-{i:08d}@example.com>")
            delivery.send(payload.SENDER, [payload.RECIPIENT], msg.as_bytes(policy=SMTP))


def _drain_pyramid_sendmail(args: argparse.Namespace) -> Callable[[], object]:
    from pyramid_sendmail import SMTPMailer
    from pyramid_sendmail.processor import QueueProcessor
    from pyramid_sendmail.queue import MaildirQueue

    mailer = SMTPMailer(
        host="127.0.0.1",
        port=args.port,
        tls=args.tls,
        username=payload.USERNAME if args.tls else None,
        password=payload.PASSWORD if args.tls else None,
        cafile=args.cafile,
        timeout=30.0,
    )
    options = {} if args.workers is None else {"workers": args.workers}
    queue = MaildirQueue(args.dir)
    if args.processes > 1:
        # What `psendmail run --once` does with mail.queue_processes > 1.
        from pyramid_sendmail.supervisor import drain_in_processes

        return lambda: drain_in_processes(
            args.processes, lambda: QueueProcessor(queue, mailer, **options)
        )
    processor = QueueProcessor(queue, mailer, **options)
    return processor.process_once


def _drain_repoze(args: argparse.Namespace) -> Callable[[], object]:
    # What pyramid_mailer's `qp` (repoze.sendmail.queue:run_console) builds.
    # repoze.sendmail calls starttls() without an SSL context: smtplib then
    # does not verify the certificate at all (no way to pass a CA).
    from repoze.sendmail.mailer import SMTPMailer
    from repoze.sendmail.queue import QueueProcessor

    mailer = SMTPMailer(
        hostname="127.0.0.1",
        port=args.port,
        username=payload.USERNAME if args.tls else None,
        password=payload.PASSWORD if args.tls else None,
        force_tls=args.tls,
        no_tls=False,
    )
    processor = QueueProcessor(mailer, args.dir)
    return processor.send_messages


def _drain_zope(args: argparse.Namespace) -> Callable[[], object]:
    # What zope-sendmail's console script (zope.sendmail.queue:run) builds.
    # Like repoze.sendmail, starttls() without a context: not verified.
    from zope.sendmail.mailer import SMTPMailer
    from zope.sendmail.queue import QueueProcessorThread

    mailer = SMTPMailer(
        "127.0.0.1",
        args.port,
        payload.USERNAME if args.tls else None,
        payload.PASSWORD if args.tls else None,
        False,
        args.tls,
    )
    processor = QueueProcessorThread()
    processor.setMailer(mailer)
    processor.setQueuePath(args.dir)
    return lambda: processor.run(forever=False)


DRAIN = {
    # fill_fast writes the files MaildirQueue.add would, without N fsyncs.
    "pyramid_sendmail": (fill_fast, _drain_pyramid_sendmail),
    "repoze.sendmail": (_fill_repoze, _drain_repoze),
    "zope.sendmail": (_fill_zope, _drain_zope),
}


def case_drain(args: argparse.Namespace) -> dict:
    fill, make_drain = DRAIN[args.variant]
    if not args.prefilled:
        fill(args.dir, args.n)
    queued = _queued_files(args.dir)
    drain = make_drain(args)
    rss_before = _maxrss_mb()
    with _Profile(args.profile):
        started, cpu_started = time.perf_counter(), time.process_time()
        drain()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    left = _queued_files(args.dir)
    return {
        "n": queued,
        "seconds": elapsed,
        "rate": (queued - left) / elapsed,
        "left": left,
        "maxrss_before_mb": rss_before,
        # This process's CPU time a message (user and system): steadier
        # than the rate on a shared machine (forked processes not counted).
        "cpu_us_per_message": cpu / max(queued - left, 1) * 1e6,
    }


# -- direct delivery -----------------------------------------------------------


def _direct_pyramid_sendmail(args: argparse.Namespace) -> Callable[[int], None]:
    from pyramid.config import Configurator

    from pyramid_sendmail import Message, get_mailer

    settings = {"mail.host": "127.0.0.1", "mail.port": str(args.port), "mail.timeout": "30"}
    if args.tls:
        settings.update(
            {
                "mail.tls": "true",
                "mail.username": payload.USERNAME,
                "mail.password": payload.PASSWORD,
                "mail.cafile": args.cafile,
            }
        )
    if args.variant.endswith("-nopool"):
        settings["mail.pool_size"] = "0"
    config = Configurator(settings=settings)
    config.include("pyramid_sendmail")
    config.commit()
    return _send_in_transactions(get_mailer(config.registry), Message)


def _direct_pyramid_mailer(args: argparse.Namespace) -> Callable[[int], None]:
    # pyramid_mailer's Mailer.send: repoze.sendmail's direct delivery, which
    # opens a connection per message (and, like repoze.sendmail's queue
    # processor, calls starttls() without a context: not verified).
    from pyramid_mailer.mailer import Mailer
    from pyramid_mailer.message import Message

    mailer = Mailer(
        host="127.0.0.1",
        port=args.port,
        username=payload.USERNAME if args.tls else None,
        password=payload.PASSWORD if args.tls else None,
        tls=args.tls,
    )
    return _send_in_transactions(mailer, Message)


def _send_in_transactions(mailer: Any, message_class: Any) -> Callable[[int], None]:
    import transaction

    def send(i: int) -> None:
        with transaction.manager:
            mailer.send(
                message_class(
                    subject=payload.SUBJECT,
                    sender=payload.SENDER,
                    recipients=[payload.RECIPIENT],
                    body=payload.BODY,
                )
            )

    return send


def _direct_zope(args: argparse.Namespace) -> Callable[[int], None]:
    import transaction
    from zope.sendmail.delivery import DirectMailDelivery
    from zope.sendmail.mailer import SMTPMailer

    mailer = SMTPMailer(
        "127.0.0.1",
        args.port,
        payload.USERNAME if args.tls else None,
        payload.PASSWORD if args.tls else None,
        False,
        args.tls,
    )
    delivery = DirectMailDelivery(mailer)

    def send(i: int) -> None:
        with transaction.manager:
            delivery.send(
                payload.SENDER, [payload.RECIPIENT], _email_message().as_bytes(policy=SMTP)
            )

    return send


DIRECT = {
    "pyramid_sendmail": _direct_pyramid_sendmail,
    "pyramid_sendmail-nopool": _direct_pyramid_sendmail,
    "pyramid_mailer": _direct_pyramid_mailer,
    "zope.sendmail": _direct_zope,
}


def case_direct(args: argparse.Namespace) -> dict:
    send = DIRECT[args.variant](args)
    times = []
    with _Profile(args.profile):
        started = time.perf_counter()
        for i in range(args.n):
            begun = time.perf_counter()
            send(i)
            times.append(time.perf_counter() - begun)
        elapsed = time.perf_counter() - started
    times.sort()
    return {
        "n": args.n,
        "seconds": elapsed,
        "rate": args.n / elapsed,
        "left": 0,
        # A warm request: the median commit, past the first connection.
        "median_ms": 1000 * times[len(times) // 2],
    }


# -- backlog helpers -----------------------------------------------------------


def case_fill(args: argparse.Namespace) -> dict:
    return fill_fast(args.dir, args.n)


def case_status(args: argparse.Namespace) -> dict:
    from pyramid_sendmail.queue import MaildirQueue

    queue = MaildirQueue(args.dir)
    started = time.perf_counter()
    report = queue.status()
    return {"seconds": time.perf_counter() - started, "queued": report["queued"]["count"]}


CASES = {
    "enqueue": case_enqueue,
    "enqueue-paired": case_enqueue_paired,
    "request": case_request,
    "drain": case_drain,
    "direct": case_direct,
    "fill": case_fill,
    "status": case_status,
}
# The SQL queue's cases (PostgreSQL; issue 10) live in sqlcases.py.
CASES.update(SQL_CASES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("variant")
    parser.add_argument("--dir", required=True, help="the queue directory (fresh)")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--port", type=int)
    parser.add_argument("--tls", action="store_true", help="STARTTLS and AUTH")
    parser.add_argument("--cafile")
    parser.add_argument("--workers", type=int, help="pyramid_sendmail workers (default: its own)")
    parser.add_argument(
        "--processes", type=int, default=1, help="pyramid_sendmail processes (forked)"
    )
    parser.add_argument("--url", help="the SQL queue's database (sql-* cases)")
    parser.add_argument("--prefilled", action="store_true", help="drain the queue as it is")
    parser.add_argument("--profile", help="write cProfile stats of the timed section here")
    args = parser.parse_args(argv)
    result = CASES[args.case](args)
    result["maxrss_mb"] = _maxrss_mb()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
