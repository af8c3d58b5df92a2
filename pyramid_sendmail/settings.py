"""The ``mail.*`` settings: one table read by the include, the CLI and the docs."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pyramid.exceptions import ConfigurationError
from pyramid.settings import asbool

from .exceptions import InvalidMessageError
from .message import parse_address

__all__ = ["CLAIM_TIMEOUTS", "PREFIX", "SETTINGS", "Setting", "parse_settings"]

log = logging.getLogger(__name__)

PREFIX = "mail."
#: mail.claim_timeout must cover this many mail.timeout periods.
CLAIM_TIMEOUTS = 20


_BOOLEANS = frozenset(["true", "yes", "on", "1", "t", "y", "false", "no", "off", "0", "f", "n"])


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in _BOOLEANS:
        raise ValueError("a boolean (true or false)")
    return asbool(text)


def _int(value: Any) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError("an integer") from None


def _positive_int(value: Any) -> int:
    number = _int(value)
    if number < 1:
        raise ValueError("a positive integer")
    return number


def _seconds(value: Any) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ValueError("a number of seconds") from None
    # "nan" and "inf" parse as floats but are no duration: nan compares
    # false with everything, so it would slip past every check below.
    if not math.isfinite(number) or number <= 0:
        raise ValueError("a positive number of seconds")
    return number


def _port(value: Any) -> int:
    number = _int(value)
    if not 1 <= number <= 65535:
        raise ValueError("a port number between 1 and 65535")
    return number


def _text(value: Any) -> str | None:
    text = str(value).strip()
    return text or None


def _address(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    try:
        parse_address(text)
    except InvalidMessageError:
        raise ValueError("one valid email address") from None
    return text


def _choice(*choices: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ValueError("one of " + ", ".join(choices))
        return text

    return convert


def _path_prefix(value: Any) -> str:
    text = "/" + str(value).strip().strip("/")
    if text == "/" or any(c in text for c in "{}*?#"):
        raise ValueError("a URL path such as /_mail")
    return text


def _mailer_kind(value: Any) -> str:
    text = str(value).strip()
    if text.lower() in ("smtp", "sendmail", "file", "console"):
        return text.lower()
    if "." in text or ":" in text:
        return text
    raise ValueError("smtp, sendmail, file, console or a dotted name")


@dataclass(frozen=True)
class Setting:
    """One ``mail.*`` key: how to read it, its default, and what it means."""

    key: str
    convert: Callable[[Any], Any]
    default: Any
    type: str
    doc: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "mailer",
        _mailer_kind,
        "smtp",
        "choice",
        "What delivers mail: ``smtp``, ``sendmail``, ``file``, ``console``, "
        "or the dotted name of a factory taking the settings dict.",
    ),
    Setting("host", _text, "localhost", "string", "The SMTP relay's host name."),
    Setting(
        "port",
        _port,
        None,
        "integer",
        "The SMTP relay's port (default 25, or 465 with ``mail.ssl``).",
    ),
    Setting("username", _text, None, "string", "The login for SMTP AUTH."),
    Setting("password", _text, None, "string", "The password for SMTP AUTH; never logged."),
    Setting("tls", _bool, False, "boolean", "Require STARTTLS before anything else is sent."),
    Setting("ssl", _bool, False, "boolean", "Speak TLS from the start (implicit TLS)."),
    Setting("keyfile", _text, None, "path", "The private key of a client certificate."),
    Setting("certfile", _text, None, "path", "A client certificate (PEM)."),
    Setting(
        "cafile",
        _text,
        None,
        "path",
        "CA certificates to trust instead of the system's (PEM).",
    ),
    Setting(
        "verify",
        _bool,
        True,
        "boolean",
        "Verify the relay's certificate and host name. Leave it on.",
    ),
    Setting(
        "allow_insecure_auth",
        _bool,
        False,
        "boolean",
        "Allow sending the password over an unencrypted connection.",
    ),
    Setting(
        "timeout",
        _seconds,
        10.0,
        "seconds",
        (
            "The longest an SMTP connection may go without progress: each wait to "
            "connect, for a reply, or for room to send more of a message. A large "
            "message over a slow link takes as long as it needs."
        ),
    ),
    Setting(
        "local_hostname",
        _text,
        None,
        "string",
        "The name given in EHLO (default: this machine's FQDN).",
    ),
    Setting(
        "pipelining",
        _bool,
        True,
        "boolean",
        "Use ESMTP PIPELINING when the relay offers it.",
    ),
    Setting(
        "debug",
        _int,
        0,
        "integer",
        "smtplib's debug level: 1 or 2 prints the SMTP dialogue to stderr (never the password).",
    ),
    Setting(
        "sendmail_app",
        _text,
        "/usr/sbin/sendmail",
        "path",
        "The sendmail binary, for ``mail.mailer = sendmail``.",
    ),
    Setting(
        "file_path",
        _text,
        "mail",
        "path",
        "The folder that ``mail.mailer = file`` writes ``.eml`` files into.",
    ),
    Setting(
        "default_sender",
        _address,
        None,
        "address",
        "The sender of messages that have none.",
    ),
    Setting(
        "redirect_to",
        _address,
        None,
        "address",
        "Development: send every message to this one address instead, keeping "
        "the original recipients in an ``X-Original-Recipients`` header.",
    ),
    Setting(
        "delivery",
        _choice("direct", "queued"),
        None,
        "choice",
        "``direct`` or ``queued`` (default: queued when "
        "``mail.queue_path`` is set or ``mail.queue = sql``, otherwise direct).",
    ),
    Setting(
        "queue_path",
        _text,
        None,
        "path",
        "The Maildir queue's folder; created when missing.",
    ),
    Setting(
        "queue",
        _choice("maildir", "sql"),
        None,
        "choice",
        "Where queued mail waits: ``maildir`` (the folder ``mail.queue_path``; "
        "the default when it is set) or ``sql`` (tables in the application's "
        "database, written through its SQLAlchemy session: see :doc:`sql`).",
    ),
    Setting(
        "queue_sql_url",
        _text,
        None,
        "string",
        "What processors connect to the SQL queue with (default: the "
        "application's ``sqlalchemy.url``). The application writes through its "
        "own session.",
    ),
    Setting(
        "queue_sql_session",
        _text,
        None,
        "dotted name",
        "A callable taking the request and returning the SQLAlchemy session "
        "that ``request.mailer`` queues mail through (default: "
        "``request.dbsession``, as in the Pyramid cookiecutter).",
    ),
    Setting(
        "queue_processor",
        _choice("none", "thread"),
        "none",
        "choice",
        "``thread`` runs a queue processor thread in each application "
        "process; ``none`` leaves the queue to ``psendmail``.",
    ),
    Setting(
        "queue_interval",
        _seconds,
        3.0,
        "seconds",
        "How often the processor looks for due mail.",
    ),
    Setting(
        "queue_workers",
        _positive_int,
        4,
        "integer",
        "The most connections (threads) one processor delivers over at once. A "
        "pass starts with one and opens the others when it spends most of its "
        "time waiting for the relay: they hide the round trips to a distant "
        "relay, and against a relay that answers at once they would only slow "
        "it down.",
    ),
    Setting(
        "queue_processes",
        _positive_int,
        1,
        "integer",
        "Processes ``psendmail run`` forks, each a processor with its own "
        "``mail.queue_workers``; more use more cores against a fast relay. "
        "The processor thread in the application is always one.",
    ),
    Setting(
        "batch_size",
        _positive_int,
        100,
        "integer",
        "Messages sent over one connection before it is renewed.",
    ),
    Setting(
        "retry_min",
        _seconds,
        60.0,
        "seconds",
        "The shortest wait before retrying a deferred message.",
    ),
    Setting(
        "retry_max",
        _seconds,
        3600.0,
        "seconds",
        "The longest wait before retrying a deferred message.",
    ),
    Setting(
        "max_age",
        _seconds,
        5 * 24 * 3600.0,
        "seconds",
        "A message still undelivered after this long has failed.",
    ),
    Setting(
        "claim_timeout",
        _seconds,
        600.0,
        "seconds",
        "When a claim left by a dead processor goes back to the queue.",
    ),
    Setting(
        "devtools",
        _bool,
        False,
        "boolean",
        "Development only: serve the dev inbox and the mail previews at "
        "``mail.devtools_path`` and record this process's messages for them and "
        "for the debug toolbar's mail panel (see :doc:`devtools`).",
    ),
    Setting(
        "devtools_path",
        _path_prefix,
        "/_mail",
        "string",
        "Where the dev inbox and the previews are served.",
    ),
    Setting(
        "devtools_allow_production",
        _bool,
        False,
        "boolean",
        "Let ``mail.devtools`` start although neither ``pyramid.reload_templates`` "
        "nor any ``pyramid.debug_*`` setting is true (which looks like production).",
    ),
)

_BY_KEY = {s.key: s for s in SETTINGS}


def parse_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Read every ``mail.*`` key of *settings* into a dict keyed without prefix.

    Raises :class:`~pyramid.exceptions.ConfigurationError` naming the key and
    value for a bad value, or for an unknown key that looks like a misspelt
    known one; other unknown keys are logged as warnings.
    """
    values = {s.key: s.default for s in SETTINGS}
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
    _check_combinations(values, settings)
    return values


def _check_queue(values: dict[str, Any], settings: Mapping[str, Any]) -> None:
    if values["queue"] is None:
        values["queue"] = "maildir" if values["queue_path"] else None
    if values["queue"] == "sql":
        if values["queue_path"]:
            raise ConfigurationError(
                f"mail.queue = sql and mail.queue_path ({values['queue_path']!r}) are both "
                "set: choose the SQL queue or the Maildir"
            )
        if not values["queue_sql_url"]:
            values["queue_sql_url"] = _text(settings.get("sqlalchemy.url") or "")
        if not values["queue_sql_url"]:
            raise ConfigurationError(
                "mail.queue = sql needs the database: set mail.queue_sql_url or sqlalchemy.url"
            )
    elif values["queue"] == "maildir" and not values["queue_path"]:
        raise ConfigurationError("mail.queue = maildir needs mail.queue_path")


def _check_combinations(values: dict[str, Any], settings: Mapping[str, Any]) -> None:
    _check_queue(values, settings)
    if values["tls"] and values["ssl"]:
        raise ConfigurationError(
            "mail.tls and mail.ssl are both true: choose STARTTLS (mail.tls) "
            "or implicit TLS (mail.ssl)"
        )
    if (
        values["username"]
        and values["mailer"] == "smtp"
        and not (values["tls"] or values["ssl"] or values["allow_insecure_auth"])
    ):
        raise ConfigurationError(
            f"mail.username is set ({values['username']!r}) but neither mail.tls "
            "nor mail.ssl is true: "
            "the password would cross the network in clear text. Enable one, "
            "or set mail.allow_insecure_auth = true for a trusted local relay"
        )
    if values["keyfile"] and not values["certfile"]:
        raise ConfigurationError(
            f"mail.keyfile is set ({values['keyfile']!r}) but mail.certfile is not: "
            "a client certificate needs both"
        )
    if values["delivery"] == "queued" and not values["queue"]:
        raise ConfigurationError("mail.delivery = queued needs mail.queue_path")
    if values["retry_min"] > values["retry_max"]:
        raise ConfigurationError(
            f"mail.retry_min ({values['retry_min']}) is larger than "
            f"mail.retry_max ({values['retry_max']})"
        )
    if values["claim_timeout"] < CLAIM_TIMEOUTS * values["timeout"]:
        # A live send waits at most a few network operations of mail.timeout
        # each; a shorter claim could be taken back and sent twice.
        raise ConfigurationError(
            f"mail.claim_timeout ({values['claim_timeout']}) must be at least "
            f"{CLAIM_TIMEOUTS} times mail.timeout ({values['timeout']})"
        )
    if values["delivery"] is None:
        values["delivery"] = "queued" if values["queue"] else "direct"


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
