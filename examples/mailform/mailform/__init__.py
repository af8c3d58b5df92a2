"""A one-page Pyramid application: a form that sends a message on commit."""

from __future__ import annotations

import html
import os

from pyramid.config import Configurator
from pyramid.threadlocal import get_current_registry
from pyramid.view import view_config

from pyramid_sendmail import InvalidMessageError, MailSent
from pyramid_sendmail.devtools import get_devtools, message_url

from .mails import build_message

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pyramid_sendmail example</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{margin:0;background:#f5f6f8;color:#1d2330;line-height:1.45;
  font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}}
main{{max-width:38rem;margin:2.5rem auto;padding:0 1.5rem}}
h1{{font-size:1.6rem;margin:0 0 .3rem}} .lead{{color:#6b7385;margin:0 0 1.5rem}}
form{{background:#fff;border:1px solid #e3e6ec;border-radius:.6rem;padding:1.2rem 1.5rem}}
label{{display:block;margin:.2rem 0 1rem;font-weight:500}}
input,textarea{{display:block;width:100%;box-sizing:border-box;margin-top:.3rem;font:inherit;
  padding:.45rem .6rem;border:1px solid #cfd5df;border-radius:.4rem;font-weight:400}}
label.check{{font-weight:400;color:#48505f}}
label.check input{{display:inline;width:auto;margin:0 .4rem 0 0}}
button{{font:inherit;font-weight:600;background:#3b5bdb;color:#fff;border:0;border-radius:.4rem;
  padding:.5rem 1.3rem;cursor:pointer}}
.note,.error{{border-radius:.6rem;padding:.8rem 1.1rem;margin:0 0 1rem}}
.note{{background:#edf1ff;border:1px solid #c9d4fb}}
.error{{background:#fde8e8;border:1px solid #f5b5b5}}
.note a.go{{display:inline-block;margin-top:.4rem;font-weight:600;color:#3b5bdb}}
code{{font-size:.85em;word-break:break-all}} .muted{{color:#6b7385}} a{{color:#3b5bdb}}
</style>
</head><body><main>
<h1>Send a message</h1>
<p class="lead">A Pyramid form that sends mail with pyramid_sendmail, on commit.
{links}</p>
{notice}
<form method="post">
<label>To <input name="to" value="{to}" required></label>
<label>Subject <input name="subject" value="{subject}"></label>
<label>Message <textarea name="body" rows="5">{body}</textarea></label>
<label class="check"><input type="checkbox" name="abort" value="1">Abort the transaction
after <code>send()</code>: nothing is sent</label>
<button>Send</button>
</form>
<p class="muted">Sent so far by this process: {sent}.</p>
</main></body></html>
"""


@view_config(route_name="home")
def home(request):
    """Show the form; on POST, send the message when the request commits."""
    params = request.POST
    notice = ""
    if request.method == "POST":
        try:
            message = build_message(
                request, params.get("to", ""), params.get("subject", ""), params.get("body", "")
            )
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
                notice = notice.replace(
                    "</p>",
                    f'<br><a class="go" id="inbox-link" href="{html.escape(url)}">'
                    "See it in the dev inbox &rarr;</a></p>",
                )
    links = ""
    devtools = get_devtools(request.registry)
    if devtools is not None:  # mail.devtools is on
        links = (
            f'Everything it sends is in the <a href="{devtools.path}/">dev inbox</a>; '
            f'the message itself is in the <a href="{devtools.path}/previews">previews</a>.'
        )
    body = PAGE.format(
        links=links,
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
    settings.setdefault("jinja2.text.autoescape", "false")
    config = Configurator(settings=settings)
    config.registry.mailform_sent = 0
    config.include("pyramid_tm")
    config.include("pyramid_sendmail")
    config.include("pyramid_jinja2")
    # The text template must not be HTML-escaped.
    config.add_jinja2_renderer(".txt", settings_prefix="jinja2.text.")
    config.add_route("home", "/")
    config.add_subscriber(count_sent, MailSent)
    config.scan(".")
    return config.make_wsgi_app()
