"""SMTPMailer's pool of warm connections, against the aiosmtpd server."""

from __future__ import annotations

import os
import threading
import time

import pytest
import transaction

from pyramid_sendmail import MailDeliveryError, SMTPMailer
from pyramid_sendmail.delivery import DirectMailDelivery
from pyramid_sendmail.message import Message, prepare

SENDER = "ann@example.org"
BOB = "bob@example.org"


def message(n: int) -> bytes:
    return b"From: ann@example.org\r\nSubject: %d\r\n\r\nmessage %d\r\n" % (n, n)


def pooled(server, **options) -> SMTPMailer:
    options.setdefault("timeout", 5.0)
    options.setdefault("pool_size", 2)
    return SMTPMailer(server.host, server.port, **options)


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_sessions_reuse_one_warm_connection(smtp_server):
    mailer = pooled(smtp_server)
    for n in range(3):
        mailer.send(SENDER, [BOB], message(n))

    assert smtp_server.messages_per_connection == [3]
    assert [m.data for m in smtp_server.messages] == [message(n) for n in range(3)]


def test_direct_delivery_commits_reuse_one_connection(smtp_server):
    delivery = DirectMailDelivery(pooled(smtp_server))
    manager = transaction.TransactionManager(explicit=True)
    for n in range(3):
        with manager:
            delivery.send(
                prepare(Message(subject=str(n), sender=SENDER, recipients=[BOB], body="hi")),
                manager,
            )

    assert smtp_server.messages_per_connection == [3]


def test_without_a_pool_each_session_says_quit(smtp_server):
    mailer = pooled(smtp_server, pool_size=0)
    mailer.send(SENDER, [BOB], message(0))
    mailer.send(SENDER, [BOB], message(1))

    assert smtp_server.messages_per_connection == [1, 1]
    assert wait_until(lambda: smtp_server.open_connections == 0)


@pytest.mark.parametrize("reply", [None, "421 4.4.2 Idle for too long"])
def test_a_connection_the_relay_closed_while_idle_is_replaced(smtp_server, reply):
    mailer = pooled(smtp_server)
    mailer.send(SENDER, [BOB], message(0))
    smtp_server.drop_connections(reply)

    result = mailer.send(SENDER, [BOB], message(1))

    assert result.accepted == (BOB,)
    # Delivered once each, the second over a new connection.
    assert [m.data for m in smtp_server.messages] == [message(0), message(1)]
    assert smtp_server.messages_per_connection == [1, 1]


def test_a_connection_closed_just_as_it_is_reused_is_replaced_once(smtp_server):
    # The relay hangs up at MAIL FROM, as when it closes an idle connection
    # just as the client reuses it: nothing was taken, so one retry over a
    # new connection delivers the message once.
    mailer = pooled(smtp_server)
    mailer.send(SENDER, [BOB], message(0))
    smtp_server.faults.drop_at_mail_on = 1

    result = mailer.send(SENDER, [BOB], message(1))

    assert result.accepted == (BOB,)
    assert [m.data for m in smtp_server.messages] == [message(0), message(1)]
    assert smtp_server.messages_per_connection == [1, 1]


def test_a_421_at_mail_from_on_a_reused_connection_is_replaced_once(smtp_server):
    mailer = pooled(smtp_server)
    mailer.send(SENDER, [BOB], message(0))
    smtp_server.faults.mail = "421 4.3.2 Closing"
    smtp_server.faults.hang_up_after_mail = True
    # The new connection is refused too: one retry, then the relay's words.
    with pytest.raises(MailDeliveryError, match=r"421 4\.3\.2 Closing"):
        mailer.send(SENDER, [BOB], message(1))

    assert smtp_server.connections == 2
    assert [m.data for m in smtp_server.messages] == [message(0)]


def test_idle_connections_are_closed_after_the_idle_timeout(smtp_server):
    mailer = pooled(smtp_server, pool_idle_timeout=0.2)
    mailer.send(SENDER, [BOB], message(0))
    assert smtp_server.open_connections == 1

    assert wait_until(lambda: smtp_server.open_connections == 0)
    mailer.send(SENDER, [BOB], message(1))
    assert smtp_server.messages_per_connection == [1, 1]


def test_the_pool_keeps_at_most_pool_size_idle_connections(smtp_server):
    mailer = pooled(smtp_server, pool_size=1)
    with mailer.session() as first, mailer.session() as second:
        first.send(SENDER, [BOB], message(0))
        second.send(SENDER, [BOB], message(1))
    assert smtp_server.connections == 2

    assert wait_until(lambda: smtp_server.open_connections == 1)
    assert mailer.pool is not None and len(mailer.pool) == 1


def test_close_says_quit_on_every_idle_connection(smtp_server):
    mailer = pooled(smtp_server)
    mailer.send(SENDER, [BOB], message(0))

    mailer.close()

    assert wait_until(lambda: smtp_server.open_connections == 0)


def test_threads_share_the_pool_and_each_message_arrives_once(smtp_server):
    mailer = pooled(smtp_server, pool_size=4)

    def send(base: int) -> None:
        for n in range(base, base + 10):
            mailer.send(SENDER, [BOB], message(n))

    threads = [threading.Thread(target=send, args=(100 * t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(m.data for m in smtp_server.messages) == sorted(
        message(100 * t + n) for t in range(4) for n in range(10)
    )
    assert smtp_server.connections <= 4


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with threads, 3.12+
def test_a_forked_child_never_uses_its_parents_connection(smtp_server):
    mailer = pooled(smtp_server)
    mailer.send(SENDER, [BOB], message(0))

    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            mailer.send(SENDER, [BOB], message(1))
            mailer.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0

    # The parent's connection is untouched by the child, and still warm.
    mailer.send(SENDER, [BOB], message(2))
    assert [m.data for m in smtp_server.messages] == [message(n) for n in range(3)]
    assert smtp_server.messages_per_connection == [2, 1]
