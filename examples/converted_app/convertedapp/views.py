"""Views that send mail on commit, through the queue, and at once."""

import html
import logging

from pyramid.view import view_config

from pyramid_sendmail import Attachment, Message, get_mailer

log = logging.getLogger(__name__)

TEAM = "team@example.com"


@view_config(route_name="contact", request_method="POST", renderer="string")
def contact(request):
    """Forward the contact form to the team when the request commits."""
    text = request.POST["text"]
    message = Message(
        subject="Contact: " + request.POST["subject"],
        recipients=[TEAM],
        body=text,
        html="<p>" + html.escape(text) + "</p>",
        extra_headers={"Reply-To": request.POST["email"]},
    )
    message.attach(Attachment("form.txt", "text/plain", text))
    get_mailer(request).send(message)
    return "Thank you, we will answer soon."


@view_config(route_name="newsletter", request_method="POST", renderer="string")
def newsletter(request):
    """Queue one message per subscriber, for the queue processor to send."""
    addresses = request.POST.getall("to")
    for address in addresses:
        request.mailer.send_to_queue(
            Message(subject="Our news", recipients=[address], body="All is well.")
        )
    return f"{len(addresses)} message(s) queued"


@view_config(route_name="ping", renderer="string")
def ping(request):
    """Send a message at once, outside the transaction; ignore a relay that is down."""
    message = Message(subject="ping", recipients=[TEAM], body="ping")
    request.mailer.send_immediately(message, fail_silently=True)
    return "pong"
