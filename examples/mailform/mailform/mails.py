"""The example's message: text and HTML, with the logo as an inline image."""

from __future__ import annotations

import html
from importlib.resources import files

from pyramid_sendmail import Attachment, Message

LOGO = files("mailform").joinpath("static/logo.png").read_bytes()

HTML = """<!doctype html>
<html><body style="margin:0;padding:24px;background:#f4f5f7;
font-family:Helvetica,Arial,sans-serif;color:#1d2330">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0"><tr><td align="center">
<table role="presentation" width="560" cellpadding="0" cellspacing="0"
 style="background:#ffffff;border-radius:10px;padding:32px;max-width:560px">
<tr><td><img src="cid:logo" width="48" height="48" alt="Mailform" style="display:block"></td></tr>
<tr><td style="padding-top:20px"><h1 style="margin:0 0 12px;font-size:22px">{subject}</h1>
<div style="font-size:16px;line-height:1.5">{body}</div></td></tr>
<tr><td style="padding-top:28px;font-size:13px;color:#6b7385">Sent by the pyramid_sendmail example
application.
<a href="https://example.com/unsubscribe" style="color:#3b5bdb">Unsubscribe</a></td></tr>
</table></td></tr></table></body></html>
"""

TEXT = """{subject}

{body}

--
Sent by the pyramid_sendmail example application.
Unsubscribe: https://example.com/unsubscribe
"""


def build_message(to: str, subject: str, body: str) -> Message:
    """The message the form sends: a text part, an HTML part and an inline logo."""
    paragraphs = "".join(
        f'<p style="margin:0 0 12px">{html.escape(p)}</p>' for p in body.split("\n\n") if p.strip()
    )
    return Message(
        subject=subject,
        recipients=[to],
        body=TEXT.format(subject=subject, body=body),
        html=HTML.format(subject=html.escape(subject), body=paragraphs),
        attachments=[Attachment("logo.png", "image/png", LOGO, content_id="logo")],
    )
