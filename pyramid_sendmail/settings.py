"""The ``mail.*`` settings: one table read by the include, the CLI and the docs."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from pyramid.exceptions import ConfigurationError

from .setting_values import (
    choice_of,
    to_address,
    to_addresses,
    to_bool,
    to_count,
    to_int,
    to_mailer_kind,
    to_path_prefix,
    to_patterns,
    to_port,
    to_positive_int,
    to_rate,
    to_regex,
    to_seconds,
    to_text,
)

__all__ = [
    "CLAIM_TIMEOUTS",
    "PREFIX",
    "SETTINGS",
    "MailSettings",
    "Setting",
    "parse_settings",
]

log = logging.getLogger(__name__)

PREFIX = "mail."
#: mail.claim_timeout must cover this many mail.timeout periods.
CLAIM_TIMEOUTS = 20


def _setting(convert: Callable[[Any], Any], default: Any, kind: str, doc: str) -> Any:
    """Declare one ``mail.*`` key as a field of :class:`MailSettings`."""
    return field(default=default, metadata={"convert": convert, "type": kind, "doc": doc})


@dataclass(frozen=True)
class MailSettings:
    """The ``mail.*`` settings, parsed: one field per key, without the prefix.

    Each field is declared once, with its converter, default and meaning;
    :func:`parse_settings` reads a Pyramid settings mapping into one, and the
    documentation's settings table is rendered from the same declarations
    (``SETTINGS``). Creating one checks the combinations of values.
    """

    mailer: str = _setting(
        to_mailer_kind,
        "smtp",
        "choice",
        "What delivers mail: ``smtp``, ``sendmail``, ``file``, ``console``, "
        "or the dotted name of a factory taking the settings dict.",
    )
    host: str = _setting(
        to_text,
        "localhost",
        "string",
        "The SMTP relay's host name.",
    )
    port: int | None = _setting(
        to_port,
        None,
        "integer",
        "The SMTP relay's port (default 25, or 465 with ``mail.ssl``).",
    )
    username: str | None = _setting(
        to_text,
        None,
        "string",
        "The login for SMTP AUTH.",
    )
    password: str | None = _setting(
        to_text,
        None,
        "string",
        "The password for SMTP AUTH; never logged. Any characters: credentials "
        "that are not ASCII go as UTF-8, by AUTH PLAIN or LOGIN.",
    )
    tls: bool = _setting(
        to_bool,
        False,
        "boolean",
        "Require STARTTLS before anything else is sent.",
    )
    ssl: bool = _setting(
        to_bool,
        False,
        "boolean",
        "Speak TLS from the start (implicit TLS).",
    )
    keyfile: str | None = _setting(
        to_text,
        None,
        "path",
        "The private key of a client certificate.",
    )
    certfile: str | None = _setting(
        to_text,
        None,
        "path",
        "A client certificate (PEM).",
    )
    cafile: str | None = _setting(
        to_text,
        None,
        "path",
        "CA certificates to trust instead of the system's (PEM).",
    )
    verify: bool = _setting(
        to_bool,
        True,
        "boolean",
        "Verify the relay's certificate and host name. Leave it on.",
    )
    allow_insecure_auth: bool = _setting(
        to_bool,
        False,
        "boolean",
        "Allow sending the password over an unencrypted connection.",
    )
    timeout: float = _setting(
        to_seconds,
        10.0,
        "seconds",
        "The longest an SMTP connection may go without progress: each wait to "
        "connect, for a reply, or for room to send more of a message. A large "
        "message over a slow link takes as long as it needs.",
    )
    local_hostname: str | None = _setting(
        to_text,
        None,
        "string",
        "The name given in EHLO (default: this machine's FQDN).",
    )
    pipelining: bool = _setting(
        to_bool,
        True,
        "boolean",
        "Use ESMTP PIPELINING when the relay offers it.",
    )
    pool_size: int = _setting(
        to_count,
        4,
        "integer",
        "How many idle SMTP connections each process keeps ready for the next "
        "message (direct delivery and the processor alike); 0 connects anew "
        "for every session.",
    )
    pool_idle_timeout: float = _setting(
        to_seconds,
        30.0,
        "seconds",
        "How long an idle pooled connection is kept before it is closed with QUIT.",
    )
    debug: int = _setting(
        to_int,
        0,
        "integer",
        "smtplib's debug level: 1 or 2 prints the SMTP dialogue to stderr (never the password).",
    )
    sendmail_app: str = _setting(
        to_text,
        "/usr/sbin/sendmail",
        "path",
        "The sendmail binary, for ``mail.mailer = sendmail``.",
    )
    file_path: str = _setting(
        to_text,
        "mail",
        "path",
        "The folder that ``mail.mailer = file`` writes ``.eml`` files into.",
    )
    default_sender: str | None = _setting(
        to_address,
        None,
        "address",
        "The sender of messages that have none.",
    )
    redirect_to: tuple[str, ...] | None = _setting(
        to_addresses,
        None,
        "addresses",
        "Staging and development: send every message to these addresses "
        "(separated by commas) instead, keeping the original To and Cc "
        "recipients (never a Bcc) in an ``X-Original-Recipients`` header. Applied "
        "at ``send()`` and again by the queue processor (see :doc:`policies`).",
    )
    redirect_except: tuple[str, ...] | None = _setting(
        to_patterns,
        None,
        "patterns",
        "With ``mail.redirect_to``: recipients delivered normally, as addresses "
        "or shell patterns (``*@example.com``; a bare domain means every "
        "address there), separated by spaces or commas.",
    )
    subject_prefix: str | None = _setting(
        to_text,
        None,
        "string",
        "With ``mail.redirect_to``: put before the subject of redirected mail (``[staging]``).",
    )
    delivery: str | None = _setting(
        choice_of("direct", "queued"),
        None,
        "choice",
        "``direct`` or ``queued`` (default: queued when "
        "``mail.queue_path`` is set or ``mail.queue = sql``, otherwise direct).",
    )
    queue_path: str | None = _setting(
        to_text,
        None,
        "path",
        "The Maildir queue's folder, an absolute path (``%(here)s/...`` in an INI "
        "file); created when missing.",
    )
    queue: str | None = _setting(
        choice_of("maildir", "sql"),
        None,
        "choice",
        "Where queued mail waits: ``maildir`` (the folder ``mail.queue_path``; "
        "the default when it is set) or ``sql`` (tables in the application's "
        "database, written through its SQLAlchemy session: see :doc:`sql`).",
    )
    queue_sql_url: str | None = _setting(
        to_text,
        None,
        "string",
        "What processors connect to the SQL queue with (default: the "
        "application's ``sqlalchemy.url``). The application writes through its "
        "own session.",
    )
    queue_sql_session: str | None = _setting(
        to_text,
        None,
        "dotted name",
        "A callable taking the request and returning the SQLAlchemy session "
        "that ``request.mailer`` queues mail through (default: "
        "``request.dbsession``, as in the Pyramid cookiecutter).",
    )
    queue_notify: bool = _setting(
        to_bool,
        False,
        "boolean",
        "PostgreSQL's SQL queue: after a commit that queued mail, send a "
        "``NOTIFY`` on the queue's own connection, and have processors "
        "``LISTEN`` so they start at once on any machine instead of at the "
        "next ``mail.queue_interval``. Listening needs a direct connection, "
        "not one through a transaction-pooling PgBouncer.",
    )
    queue_processor: str = _setting(
        choice_of("none", "thread"),
        "none",
        "choice",
        "``thread`` runs a queue processor thread in each application "
        "process; ``none`` leaves the queue to ``psendmail``.",
    )
    queue_interval: float = _setting(
        to_seconds,
        3.0,
        "seconds",
        "How often the processor looks for due mail.",
    )
    queue_workers: int = _setting(
        to_positive_int,
        4,
        "integer",
        "The connections one processor delivers over at once, fewer when fewer "
        "messages are due: they hide the round trips to a distant relay. One "
        "thread drives them all with the Maildir queue and the SMTP mailer "
        "(each is a thread with the SQL queue, another mailer or "
        "``mail.rate_limit``). Against a relay that answers at once, more "
        "processes (``mail.queue_processes``) help where more connections do not.",
    )
    queue_processes: int = _setting(
        to_positive_int,
        1,
        "integer",
        "Processes ``psendmail run`` forks, each a processor with its own "
        "``mail.queue_workers``; more use more cores against a fast relay. "
        "The processor thread in the application is always one.",
    )
    batch_size: int = _setting(
        to_positive_int,
        100,
        "integer",
        "Messages sent over one connection before it is renewed.",
    )
    retry_min: float = _setting(
        to_seconds,
        60.0,
        "seconds",
        "The shortest wait before retrying a deferred message.",
    )
    retry_max: float = _setting(
        to_seconds,
        3600.0,
        "seconds",
        "The longest wait before retrying a deferred message.",
    )
    max_age: float = _setting(
        to_seconds,
        5 * 24 * 3600.0,
        "seconds",
        "A message still undelivered after this long has failed.",
    )
    rate_limit: tuple[float, float] | None = _setting(
        to_rate,
        None,
        "rate",
        "The most messages a processor hands to the relay: ``14/s``, ``500/min``, "
        "``2000/h`` or ``10000/day``; spread evenly, shared by its connections, "
        "and divided between the ``mail.queue_processes`` of ``psendmail run``.",
    )
    throttle_pattern: str = _setting(
        to_regex,
        r"(?i)throttl|\brate\b|rate.?limit|too many (messages|mails|emails|recipients)"
        r"|too much mail",
        "regex",
        "A 421, 451 or 454 reply (or a 450 to ``MAIL FROM``) whose text matches "
        "this regular expression is the relay throttling: the processor pauses "
        "for ``mail.throttle_pause`` and puts the message back without "
        "counting an attempt.",
    )
    throttle_pause: float = _setting(
        to_seconds,
        60.0,
        "seconds",
        "How long the processor pauses after a throttling reply.",
    )
    delivery_filter: str | None = _setting(
        to_text,
        None,
        "dotted name",
        "A callable the processor runs before each delivery, as "
        "``filter(envelope)``: it returns the envelope to send (possibly "
        "``envelope.with_recipients(fewer)``), or None, or raises "
        ":class:`~pyramid_sendmail.MailDropped`, to fail the message; any "
        "other exception defers it (see :doc:`policies`).",
    )
    claim_timeout: float = _setting(
        to_seconds,
        600.0,
        "seconds",
        "When a claim left by a dead processor goes back to the queue.",
    )
    devtools: bool = _setting(
        to_bool,
        False,
        "boolean",
        "Development only: serve the dev inbox and the mail previews at "
        "``mail.devtools_path`` and record this process's messages for them and "
        "for the debug toolbar's mail panel (see :doc:`devtools`).",
    )
    devtools_path: str = _setting(
        to_path_prefix,
        "/_mail",
        "string",
        "Where the dev inbox and the previews are served.",
    )
    devtools_allow_production: bool = _setting(
        to_bool,
        False,
        "boolean",
        "Let ``mail.devtools`` start although no ``pyramid.reload_*`` or "
        "``pyramid.debug_*`` setting is true (which looks like production).",
    )

    def __post_init__(self) -> None:
        # The defaults that follow from other keys.
        if self.queue is None and self.queue_path:
            object.__setattr__(self, "queue", "maildir")
        _check_combinations(self)
        if self.delivery is None:
            object.__setattr__(self, "delivery", "queued" if self.queue else "direct")


@dataclass(frozen=True)
class Setting:
    """One ``mail.*`` key: how to read it, its default, and what it means."""

    key: str
    convert: Callable[[Any], Any]
    default: Any
    type: str
    doc: str


#: Every ``mail.*`` key, in the order of :class:`MailSettings`' fields.
SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, f.metadata["convert"], f.default, f.metadata["type"], f.metadata["doc"])
    for f in fields(MailSettings)
)
_BY_KEY = {s.key: s for s in SETTINGS}


def parse_settings(settings: Mapping[str, Any]) -> MailSettings:
    """Read every ``mail.*`` key of *settings* into a :class:`MailSettings`.

    Raises :class:`~pyramid.exceptions.ConfigurationError` naming the key and
    value for a bad value, for a bad combination, or for an unknown key that
    looks like a misspelt known one; other unknown keys are logged as warnings.
    """
    values: dict[str, Any] = {}
    for name, raw in settings.items():
        if not name.startswith(PREFIX):
            continue
        key = name[len(PREFIX) :]
        setting = _BY_KEY.get(key)
        if setting is None:
            _unknown(name, key)
            continue
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        try:
            values[key] = setting.convert(raw)
        except ValueError as exc:
            raise ConfigurationError(f"{name} must be {exc}, not {raw!r}") from None
    if values.get("queue") == "sql" and not values.get("queue_sql_url"):
        # The SQL queue is the application's own database by default.
        values["queue_sql_url"] = to_text(settings.get("sqlalchemy.url") or "")
    return MailSettings(**values)


def _check_queue(s: MailSettings) -> None:
    if s.queue == "sql":
        if s.queue_path:
            raise ConfigurationError(
                f"mail.queue = sql and mail.queue_path ({s.queue_path!r}) are both "
                "set: choose the SQL queue or the Maildir"
            )
        if not s.queue_sql_url:
            raise ConfigurationError(
                "mail.queue = sql needs the database: set mail.queue_sql_url or sqlalchemy.url"
            )
    elif s.queue == "maildir" and not s.queue_path:
        raise ConfigurationError("mail.queue = maildir needs mail.queue_path")
    if s.queue_path and not os.path.isabs(s.queue_path):
        # Relative to the working folder: pserve and psendmail started from
        # different folders would each use a queue of their own.
        raise ConfigurationError(
            f"mail.queue_path = {s.queue_path!r} is a relative path: use an absolute "
            "path, or %(here)s/... in the INI file (the folder of the INI file)"
        )
    if s.queue_notify and not (
        s.queue == "sql" and (s.queue_sql_url or "").startswith(("postgresql", "postgres:"))
    ):
        raise ConfigurationError(
            "mail.queue_notify = true needs the SQL queue on PostgreSQL "
            "(mail.queue = sql and a postgresql:// URL)"
        )


def _check_policies(s: MailSettings) -> None:
    if not s.redirect_to:
        for key in ("redirect_except", "subject_prefix"):
            if getattr(s, key):
                raise ConfigurationError(
                    f"mail.{key} is set ({getattr(s, key)!r}) but mail.redirect_to is not: "
                    "it only applies to redirected mail"
                )


def _check_combinations(s: MailSettings) -> None:
    _check_queue(s)
    _check_policies(s)
    if s.tls and s.ssl:
        raise ConfigurationError(
            "mail.tls and mail.ssl are both true: choose STARTTLS (mail.tls) "
            "or implicit TLS (mail.ssl)"
        )
    if s.username and s.mailer == "smtp" and not (s.tls or s.ssl or s.allow_insecure_auth):
        raise ConfigurationError(
            f"mail.username is set ({s.username!r}) but neither mail.tls "
            "nor mail.ssl is true: "
            "the password would cross the network in clear text. Enable one, "
            "or set mail.allow_insecure_auth = true for a trusted local relay"
        )
    if s.keyfile and not s.certfile:
        raise ConfigurationError(
            f"mail.keyfile is set ({s.keyfile!r}) but mail.certfile is not: "
            "a client certificate needs both"
        )
    if s.delivery == "queued" and not s.queue:
        raise ConfigurationError("mail.delivery = queued needs mail.queue_path")
    if s.queue_processor == "thread" and not s.queue:
        # It would have nothing to process: say so rather than start nothing.
        raise ConfigurationError(
            "mail.queue_processor = thread needs mail.queue_path (or mail.queue = sql): "
            "a processor thread delivers from the queue"
        )
    if s.retry_min > s.retry_max:
        raise ConfigurationError(
            f"mail.retry_min ({s.retry_min}) is larger than mail.retry_max ({s.retry_max})"
        )
    if s.claim_timeout < CLAIM_TIMEOUTS * s.timeout:
        # Claims in hand are renewed every third of the timeout, whatever a
        # send lasts; a timeout this short would still let a renewal come
        # late while the processor waits through a few network timeouts.
        raise ConfigurationError(
            f"mail.claim_timeout ({s.claim_timeout}) must be at least "
            f"{CLAIM_TIMEOUTS} times mail.timeout ({s.timeout})"
        )


def _unknown(name: str, key: str) -> None:
    near = [s.key for s in SETTINGS if _distance(key, s.key) <= (1 if len(key) < 6 else 2)]
    if near:
        raise ConfigurationError(
            f"{name} is not a pyramid_sendmail setting; did you mean {PREFIX}{near[0]}?"
        )
    log.warning("%s is not a pyramid_sendmail setting; ignoring it", name)


def _distance(a: str, b: str) -> int:
    """Edit distance counting a swap of neighbours as one edit."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]
