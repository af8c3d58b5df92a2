"""Mail events: what they carry, and when subscribers see them in a request."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import transaction
import webtest
from pyramid.config import Configurator
from pyramid.response import Response
from pyramid.threadlocal import get_current_request
from transaction.interfaces import IDataManager
from zope.interface import implementer
from zope.interface.verify import verifyObject

from pyramid_sendmail import MailDeferred, MailDeliveryError, MailFailed, MailSent, Message
from pyramid_sendmail.interfaces import (
    IMailDeferredEvent,
    IMailErrorEvent,
    IMailEvent,
    IMailSentEvent,
)
from pyramid_sendmail.message import prepare
from pyramid_sendmail.testing import get_testing_mailer


def make_envelope(subject: str = "Welcome"):
    return prepare(
        Message(
            subject=subject,
            sender="ann@example.org",
            recipients=["bob@example.org", "cy@example.org"],
            body="Hello",
        )
    )


# --- what an event carries -------------------------------------------------


def test_mail_sent_provides_its_interface():
    envelope = make_envelope()
    event = MailSent(envelope, ["bob@example.org"])
    assert verifyObject(IMailSentEvent, event)
    assert verifyObject(IMailEvent, event)
    assert event.message_id == envelope.message_id
    assert event.recipients == ("bob@example.org",)
    assert event.message["Subject"] == "Welcome"


def test_mail_failed_provides_its_interface():
    error = MailDeliveryError("no such user", temporary=False, code=550)
    event = MailFailed(make_envelope(), error)
    assert verifyObject(IMailErrorEvent, event)
    assert event.error is error
    assert event.recipients == ("bob@example.org", "cy@example.org")


def test_mail_deferred_provides_its_interface():
    error = MailDeliveryError("try later", temporary=True, code=451)
    event = MailDeferred(make_envelope(), error, retry_at=1700000000.0)
    assert verifyObject(IMailDeferredEvent, event)
    assert event.error is error
    assert event.retry_at == 1700000000.0
    assert not IMailErrorEvent.providedBy(event)


def test_event_repr_names_message_and_recipients():
    event = MailSent(make_envelope(), ["bob@example.org"])
    assert event.message_id in repr(event)
    assert "bob@example.org" in repr(event)


# --- dispatch in a request -------------------------------------------------


@implementer(IDataManager)
class RecordingResource:
    """A resource that remembers what its transaction did to it."""

    def __init__(self, manager: Any, log: list[str], name: str) -> None:
        self.transaction_manager = manager
        self.log = log
        self.name = name
        self.committed = False

    def sortKey(self) -> str:  # the transaction package's method name
        return self.name

    def abort(self, txn: Any) -> None:
        # The transaction also aborts every resource after its after-commit
        # hooks; like any real resource, this one ignores that.
        if not self.committed:
            self.log.append(f"{self.name} aborted")

    def tpc_begin(self, txn: Any) -> None:
        pass

    def commit(self, txn: Any) -> None:
        pass

    def tpc_vote(self, txn: Any) -> None:
        pass

    def tpc_finish(self, txn: Any) -> None:
        self.committed = True
        self.log.append(f"{self.name} committed")

    def tpc_abort(self, txn: Any) -> None:
        self.abort(txn)


def make_app(
    subscribers: list[tuple[Callable[[Any], None], Any]],
    views: dict[str, Callable[[Any], Any]],
) -> webtest.TestApp:
    settings = {"tm.manager_hook": "pyramid_tm.explicit_manager"}
    with Configurator(settings=settings) as config:
        config.include("pyramid_tm")
        config.include("pyramid_sendmail.testing")
        for subscriber, event_type in subscribers:
            config.add_subscriber(subscriber, event_type)
        for name, view in views.items():
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
        app = config.make_wsgi_app()
    return webtest.TestApp(app)


def send_welcome(request: Any, *names: str) -> None:
    for name in names or ("bob",):
        request.mailer.send(
            Message(
                subject=f"Welcome {name}",
                sender="ann@example.org",
                recipients=[f"{name}@example.org"],
                body="Hello",
            )
        )


def test_subscriber_runs_after_request_transaction_in_a_fresh_transaction():
    log: list[str] = []
    seen: dict[str, Any] = {}

    def view(request):
        seen["request transaction"] = request.tm.get()
        request.tm.get().join(RecordingResource(request.tm, log, "view"))
        send_welcome(request)
        log.append("view returned")
        return Response("ok")

    def on_sent(event):
        request = get_current_request()
        txn = request.tm.get()  # an explicit manager: raises if none began
        seen["subscriber transaction"] = txn
        log.append(f"subscriber saw {event.message['Subject']}")
        txn.join(RecordingResource(request.tm, log, "subscriber"))

    app = make_app([(on_sent, IMailSentEvent)], {"send": view})
    assert app.get("/send").text == "ok"
    assert log == [
        "view returned",
        "view committed",
        "subscriber saw Welcome bob",
        "subscriber committed",
    ]
    assert seen["subscriber transaction"] is not seen["request transaction"]


def test_each_event_gets_its_own_transaction():
    transactions: list[Any] = []

    def view(request):
        send_welcome(request, "bob", "cy")
        return Response("ok")

    def on_sent(event):
        transactions.append(get_current_request().tm.get())

    app = make_app([(on_sent, MailSent)], {"send": view})
    app.get("/send")
    assert len(transactions) == 2
    assert transactions[0] is not transactions[1]


def test_failing_subscriber_is_logged_and_rolled_back_and_others_still_run(caplog):
    log: list[str] = []

    def view(request):
        send_welcome(request, "bob", "cy")
        return Response("ok")

    def on_sent(event):
        name = event.recipients[0].partition("@")[0]
        request = get_current_request()
        request.tm.get().join(RecordingResource(request.tm, log, name))
        if name == "bob":
            raise RuntimeError("subscriber bug")

    app = make_app([(on_sent, IMailSentEvent)], {"send": view})
    with caplog.at_level(logging.ERROR, "pyramid_sendmail"):
        response = app.get("/send")
    assert response.status_code == 200
    assert log == ["bob aborted", "cy committed"]
    [record] = caplog.records
    assert "subscriber" in record.getMessage()
    assert record.exc_info is not None
    assert "subscriber bug" in str(record.exc_info[1])
    assert len(get_testing_mailer(app.app.registry).delivered) == 2


def test_subscriber_may_send_mail_in_its_own_transaction():
    def view(request):
        send_welcome(request)
        return Response("ok")

    def on_sent(event):
        if event.message["Subject"].startswith("Welcome"):
            get_current_request().mailer.send(
                Message(
                    subject=f"Audit: {event.message_id}",
                    sender="ann@example.org",
                    recipients=["audit@example.org"],
                    body="sent",
                )
            )

    app = make_app([(on_sent, MailSent)], {"send": view})
    app.get("/send")
    mailer = get_testing_mailer(app.app.registry)
    assert [mail.subject.split(":")[0] for mail in mailer.delivered] == [
        "Welcome bob",
        "Audit",
    ]


def test_mail_failed_reaches_subscribers_and_response_is_unchanged():
    failures: list[Any] = []

    def view(request):
        send_welcome(request)
        return Response("ok")

    app = make_app([(failures.append, IMailErrorEvent)], {"send": view})
    mailer = get_testing_mailer(app.app.registry)
    mailer.fail_with = MailDeliveryError("relay down", temporary=True)
    assert app.get("/send").text == "ok"
    [event] = failures
    assert event.error is mailer.fail_with
    assert event.recipients == ("bob@example.org",)


def test_aborted_request_announces_nothing():
    events: list[Any] = []

    def view(request):
        send_welcome(request)
        request.tm.doom()
        return Response("ok")

    app = make_app([(events.append, IMailEvent)], {"send": view})
    app.get("/send")
    assert events == []


def test_send_immediately_in_a_request_announces_after_the_request():
    log: list[str] = []

    def view(request):
        request.mailer.send_immediately(
            Message(
                subject="Now",
                sender="ann@example.org",
                recipients=["bob@example.org"],
                body="Hello",
            )
        )
        log.append("view returned")
        return Response("ok")

    def on_sent(event):
        log.append(f"subscriber saw {event.message['Subject']}")

    app = make_app([(on_sent, MailSent)], {"send": view})
    app.get("/send")
    assert log == ["view returned", "subscriber saw Now"]


def test_events_are_dispatched_even_when_the_view_raises_after_send_immediately():
    events: list[Any] = []

    def view(request):
        request.mailer.send_immediately(
            Message(
                subject="Now",
                sender="ann@example.org",
                recipients=["bob@example.org"],
                body="Hello",
            )
        )
        raise LookupError("view bug")

    app = make_app([(events.append, MailSent)], {"send": view})
    with pytest.raises(LookupError):
        app.get("/send")
    [event] = events
    assert event.message["Subject"] == "Now"


def test_events_outside_a_request_are_announced_at_once():
    with Configurator() as config:
        config.include("pyramid_sendmail.testing")
        events: list[Any] = []
        config.add_subscriber(events.append, MailSent)
    from pyramid_sendmail import get_mailer

    mailer = get_mailer(config.registry)
    with transaction.manager:
        mailer.send(
            Message(
                subject="Cron",
                sender="ann@example.org",
                recipients=["bob@example.org"],
                body="Hello",
            )
        )
        assert events == []
    [event] = events
    assert event.message["Subject"] == "Cron"


def test_outside_a_request_a_subscriber_writes_in_a_fresh_transaction_of_its_own():
    log: list[str] = []

    def record_delivery(event: Any) -> None:
        # What a subscriber writing to a database does: join the thread's
        # current transaction. It must be a fresh one, not the committed one.
        current = transaction.get()
        current.join(RecordingResource(transaction.manager, log, "subscriber"))
        log.append(f"subscriber saw {current.status}")

    with Configurator() as config:
        config.include("pyramid_sendmail.testing")
        config.add_subscriber(record_delivery, MailSent)
    from pyramid_sendmail import get_mailer

    mailer = get_mailer(config.registry)
    with transaction.manager:
        mailer.send(Message(subject="Cron", sender="ann@example.org", recipients=["b@example.org"]))

    assert log == ["subscriber saw Active", "subscriber committed"]


def test_dispatch_while_a_transaction_is_still_open_is_logged_not_raised(caplog):
    from pyramid.registry import Registry

    from pyramid_sendmail.events import notify_in_transaction

    registry = Registry("events")
    seen: list[Any] = []
    registry.registerHandler(seen.append, (MailSent,))
    manager = transaction.TransactionManager(explicit=True)
    manager.begin()  # left open by code outside pyramid_tm's control
    with caplog.at_level(logging.ERROR, "pyramid_sendmail"):
        notify_in_transaction(registry, MailSent(make_envelope()), manager)
    assert seen == []
    assert "could not begin a transaction" in caplog.text
    manager.abort()
