"""The mail.* settings: defaults, conversions, and errors at start-up."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from pyramid.exceptions import ConfigurationError

from pyramid_sendmail.settings import PREFIX, SETTINGS, MailSettings, parse_settings


def as_ini(value: object) -> str:
    """*value* as it would be written in an INI file."""
    return str(value).lower() if isinstance(value, bool) else str(value)


# --- defaults -----------------------------------------------------------------


def test_no_settings_give_every_default():
    values = parse_settings({})
    for setting in SETTINGS:
        if setting.key != "delivery":
            assert getattr(values, setting.key) == setting.default, setting.key
    assert values.delivery == "direct"


WITH_DEFAULT = [s for s in SETTINGS if s.default is not None]


@pytest.mark.parametrize("setting", WITH_DEFAULT, ids=lambda s: s.key)
def test_every_default_written_in_an_ini_file_reads_back_as_itself(setting):
    values = parse_settings({PREFIX + setting.key: as_ini(setting.default)})
    assert getattr(values, setting.key) == setting.default


@pytest.mark.parametrize("setting", WITH_DEFAULT, ids=lambda s: s.key)
def test_every_default_given_as_a_python_value_is_accepted(setting):
    # Settings built in code (tests, config.add_settings) hold typed values.
    values = parse_settings({PREFIX + setting.key: setting.default})
    assert getattr(values, setting.key) == setting.default


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.key)
def test_every_setting_is_documented(setting):
    assert setting.doc.strip()
    assert setting.type


def test_blank_value_means_the_default():
    values = parse_settings({"mail.host": "  ", "mail.port": "", "mail.tls": None})
    assert values.host == "localhost"
    assert values.port is None
    assert values.tls is False


def test_other_settings_are_ignored_silently(caplog):
    caplog.set_level(logging.WARNING, logger="pyramid_sendmail")
    values = parse_settings({"pyramid.reload_templates": "true", "sqlalchemy.url": "x"})
    assert values == parse_settings({})
    assert caplog.records == []


# --- conversions --------------------------------------------------------------


def test_values_are_converted_to_their_types():
    values = parse_settings(
        {
            "mail.host": " smtp.example.org ",
            "mail.port": "587",
            "mail.timeout": "2.5",
            "mail.queue_workers": "4",
            "mail.debug": "1",
            "mail.default_sender": "Shop <shop@example.org>",
            "mail.delivery": "Queued",
            "mail.queue_path": "/var/spool/app-mail",
            "mail.mailer": "SMTP",
        }
    )
    assert values.host == "smtp.example.org"
    assert values.port == 587
    assert values.timeout == 2.5
    assert values.queue_workers == 4
    assert values.debug == 1
    assert values.default_sender == "Shop <shop@example.org>"
    assert values.delivery == "queued"
    assert values.mailer == "smtp"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("True", True),
        (" yes ", True),
        ("on", True),
        ("1", True),
        ("t", True),
        ("y", True),
        (True, True),
        ("false", False),
        ("FALSE", False),
        ("no", False),
        ("off", False),
        ("0", False),
        ("f", False),
        ("n", False),
        (False, False),
    ],
)
def test_booleans_read_like_pyramid_asbool(raw, expected):
    assert parse_settings({"mail.ssl": raw}).ssl is expected


def test_mailer_may_be_a_dotted_name():
    for name in ("myapp.mail:make_mailer", "myapp.mail.make_mailer"):
        assert parse_settings({"mail.mailer": name}).mailer == name


# --- bad values ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("mail.port", "abc", "mail.port must be an integer, not 'abc'"),
        ("mail.port", "0", "mail.port must be a port number between 1 and 65535"),
        ("mail.port", "70000", "mail.port must be a port number between 1 and 65535"),
        ("mail.port", "25.5", "mail.port must be an integer, not '25.5'"),
        ("mail.tls", "maybe", "mail.tls must be a boolean (true or false), not 'maybe'"),
        ("mail.verify", "2", "mail.verify must be a boolean"),
        ("mail.timeout", "soon", "mail.timeout must be a number of seconds, not 'soon'"),
        ("mail.timeout", "0", "mail.timeout must be a positive number of seconds"),
        ("mail.retry_min", "-5", "mail.retry_min must be a positive number of seconds"),
        ("mail.max_age", "nan", "mail.max_age must be a positive number of seconds"),
        ("mail.claim_timeout", "inf", "mail.claim_timeout must be a positive number"),
        ("mail.queue_workers", "0", "mail.queue_workers must be a positive integer"),
        ("mail.queue_processes", "-1", "mail.queue_processes must be a positive integer"),
        ("mail.batch_size", "many", "mail.batch_size must be an integer, not 'many'"),
        ("mail.debug", "loud", "mail.debug must be an integer, not 'loud'"),
        ("mail.delivery", "later", "mail.delivery must be one of direct, queued"),
        ("mail.queue_processor", "cron", "mail.queue_processor must be one of none"),
        ("mail.mailer", "pigeon", "mail.mailer must be smtp, sendmail, file, console"),
        ("mail.default_sender", "shop@", "mail.default_sender must be one valid email"),
        (
            "mail.redirect_to",
            "a@example.org, b@",
            "mail.redirect_to must be valid email addresses",
        ),
        (
            "mail.default_sender",
            "alice@example.org)<bob@example.org>",
            "mail.default_sender must be one valid email address",
        ),
    ],
)
def test_bad_value_raises_configuration_error_naming_key_and_value(key, value, expected):
    with pytest.raises(ConfigurationError) as info:
        parse_settings({key: value})
    message = str(info.value)
    assert expected in message
    assert key in message
    assert repr(value) in message


def test_tls_and_ssl_together_are_refused():
    with pytest.raises(ConfigurationError, match=r"mail\.tls and mail\.ssl"):
        parse_settings({"mail.tls": "true", "mail.ssl": "true"})


def test_username_without_encryption_is_refused():
    with pytest.raises(ConfigurationError) as info:
        parse_settings({"mail.username": "app", "mail.password": "s3cret"})
    message = str(info.value)
    assert "mail.username" in message
    assert "'app'" in message
    assert "mail.allow_insecure_auth" in message
    # The password never appears in an error that may reach a log.
    assert "s3cret" not in message


@pytest.mark.parametrize(
    "extra",
    [
        {"mail.tls": "true"},
        {"mail.ssl": "true"},
        {"mail.allow_insecure_auth": "true"},
        {"mail.mailer": "sendmail"},
    ],
)
def test_username_is_accepted_with_encryption_or_explicit_consent(extra):
    values = parse_settings({"mail.username": "app", "mail.password": "pw", **extra})
    assert values.username == "app"


def test_keyfile_without_certfile_is_refused():
    with pytest.raises(ConfigurationError, match=r"mail\.keyfile .*'/etc/key\.pem'"):
        parse_settings({"mail.keyfile": "/etc/key.pem"})


def test_client_certificate_with_both_files_is_accepted():
    values = parse_settings({"mail.keyfile": "/k.pem", "mail.certfile": "/c.pem"})
    assert (values.keyfile, values.certfile) == ("/k.pem", "/c.pem")


def test_retry_min_larger_than_retry_max_is_refused():
    with pytest.raises(ConfigurationError) as info:
        parse_settings({"mail.retry_min": "600", "mail.retry_max": "60"})
    message = str(info.value)
    assert "mail.retry_min (600.0)" in message
    assert "mail.retry_max (60.0)" in message


def test_retry_min_equal_to_retry_max_is_accepted():
    values = parse_settings({"mail.retry_min": "120", "mail.retry_max": "120"})
    assert values.retry_min == values.retry_max == 120.0


# --- delivery -----------------------------------------------------------------


def test_delivery_defaults_to_queued_when_queue_path_is_set(tmp_path):
    values = parse_settings({"mail.queue_path": str(tmp_path / "queue")})
    assert values.delivery == "queued"
    assert values.queue_path == str(tmp_path / "queue")


def test_delivery_defaults_to_direct_without_queue_path():
    assert parse_settings({}).delivery == "direct"


def test_direct_delivery_can_be_chosen_despite_a_queue_path(tmp_path):
    values = parse_settings({"mail.queue_path": str(tmp_path), "mail.delivery": "direct"})
    assert values.delivery == "direct"


def test_queued_delivery_without_queue_path_is_refused():
    with pytest.raises(ConfigurationError, match=r"mail\.delivery = queued needs"):
        parse_settings({"mail.delivery": "queued"})


# --- unknown keys -------------------------------------------------------------


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("mail.hots", "mail.host"),
        ("mail.prot", "mail.port"),
        ("mail.tsl", "mail.tls"),
        ("mail.pasword", "mail.password"),
        ("mail.defualt_sender", "mail.default_sender"),
        ("mail.queue_paht", "mail.queue_path"),
        ("mail.timeouts", "mail.timeout"),
    ],
)
def test_misspelt_key_is_refused_naming_the_key_it_resembles(typo, meant):
    with pytest.raises(ConfigurationError) as info:
        parse_settings({typo: "value"})
    message = str(info.value)
    assert typo in message
    assert f"did you mean {meant}?" in message


@pytest.mark.parametrize(
    "key", ["mail.admin_email", "mail.signature_html", "mail.support", "mail.from"]
)
def test_unrelated_unknown_key_only_logs_a_warning(key, caplog):
    caplog.set_level(logging.WARNING, logger="pyramid_sendmail")
    values = parse_settings({key: "ops@example.org", "mail.host": "smtp.example.org"})
    assert values.host == "smtp.example.org"
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.name == "pyramid_sendmail.settings"
    assert key in record.getMessage()
    assert "not a pyramid_sendmail setting" in record.getMessage()


def test_claim_timeout_shorter_than_a_send_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"mail\.claim_timeout .* mail\.timeout"):
        parse_settings({"mail.claim_timeout": "30", "mail.timeout": "10"})


# --- the settings object ------------------------------------------------------


def test_settings_object_is_frozen():
    values = parse_settings({"mail.host": "smtp.example.org"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        values.host = "elsewhere.example.org"  # type: ignore[misc]
    assert values.host == "smtp.example.org"


def test_every_key_is_one_field_of_the_settings_object():
    assert [s.key for s in SETTINGS] == [f.name for f in dataclasses.fields(MailSettings)]


def test_settings_object_built_in_code_checks_combinations_too():
    with pytest.raises(ConfigurationError, match=r"mail\.tls and mail\.ssl"):
        MailSettings(tls=True, ssl=True)


def test_processor_thread_without_a_queue_names_both_settings():
    with pytest.raises(ConfigurationError) as info:
        parse_settings({"mail.queue_processor": "thread"})
    assert "mail.queue_processor" in str(info.value)
    assert "mail.queue_path" in str(info.value)


def test_processor_thread_with_a_queue_is_accepted(tmp_path):
    values = parse_settings(
        {"mail.queue_processor": "thread", "mail.queue_path": str(tmp_path / "queue")}
    )
    assert values.queue_processor == "thread"


def test_a_relative_queue_path_is_refused_naming_key_and_value() -> None:
    from pyramid.config import Configurator

    config = Configurator(settings={"mail.queue_path": "var/mail-queue"})
    with pytest.raises(ConfigurationError) as info:
        config.include("pyramid_sendmail")
        config.commit()
    text = str(info.value)
    assert "mail.queue_path" in text and "'var/mail-queue'" in text
    assert "absolute" in text and "%(here)s" in text
