"""A one-page Pyramid application: a form that sends a message on commit."""

from __future__ import annotations

import html
import os

from pyramid.config import Configurator
from pyramid.threadlocal import get_current_registry
from pyramid.view import view_config

from pyramid_sendmail import InvalidMessageError, MailSent
from pyramid_sendmail.devtools import message_url

from .mails import build_message

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pyramid_sendmail example</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}
label{{display:block;margin-top:1em}}input,textarea{{width:100%}}
label.check input{{width:auto}}
.note{{background:#eef;padding:.5em 1em}}.error{{background:#fee;padding:.5em 1em}}</style>
</head><body>
<h1>Send a message</h1>
{notice}
<form method="post">
<label>To <input name="to" value="{to}" required></label>
<label>Subject <input name="subject" value="{subject}"></label>
<label>Message <textarea name="body" rows="6">{body}</textarea></label>
<label class="check"><input type="checkbox" name="abort" value="1"> Abort the transaction
after <code>send()</code>: nothing is sent</label>
<p><button>Send</button></p>
</form>
<p>Sent so far by this process: {sent}.</p>
</body></html>
"""


@view_config(route_name="home")
def home(request):
    """Show the form; on POST, send the message when the request commits."""
    params = request.POST
    notice = ""
    if request.method == "POST":
        message = build_message(
            params.get("to", ""), params.get("subject", ""), params.get("body", "")
        )
        try:
            message_id = request.mailer.send(message)
        except InvalidMessageError as exc:
            request.response.status = 400
            notice = f'<p class="error">Not sent: {html.escape(str(exc))}</p>'
        else:
            folder = request.registry.settings["mail.file_path"]
            notice = (
                f'<p class="note">Message <code>{html.escape(message_id)}</code> is queued. '
                f"In a moment the queue processor writes it as an <code>.eml</code> file "
                f"into <code>{html.escape(os.path.abspath(folder))}</code>.</p>"
            )
            if params.get("abort"):
                # pyramid_tm aborts a doomed transaction: the message is discarded.
                request.tm.doom()
                notice = (
                    f'<p class="note">Message <code>{html.escape(message_id)}</code> was '
                    "discarded: the transaction was doomed, so nothing is sent.</p>"
                )
            url = message_url(request, message_id)
            if url is not None:  # mail.devtools is on
                notice += (
                    f'<p class="note"><a id="inbox-link" href="{html.escape(url)}">'
                    "See it in the dev inbox</a>.</p>"
                )
    body = PAGE.format(
        notice=notice,
        to=html.escape(params.get("to", "ann@example.org")),
        subject=html.escape(params.get("subject", "Hello from Pyramid")),
        body=html.escape(params.get("body", "It works.")),
        sent=request.registry.mailform_sent,
    )
    response = request.response
    response.text = body
    return response


def count_sent(event):
    """A MailSent subscriber: runs after the commit, in a transaction of its own."""
    get_current_registry().mailform_sent += 1


def main(global_config, **settings):
    """Create the WSGI application."""
    config = Configurator(settings=settings)
    config.registry.mailform_sent = 0
    config.include("pyramid_tm")
    config.include("pyramid_sendmail")
    config.add_route("home", "/")
    config.add_subscriber(count_sent, MailSent)
    config.scan(".")
    return config.make_wsgi_app()
