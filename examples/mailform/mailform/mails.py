"""The example's message, built from two Jinja2 templates with render_message()."""

from __future__ import annotations

from pyramid_sendmail import Message, render_message


def build_message(request, to: str, subject: str, body: str) -> Message:
    """The message the form sends: text and HTML, the CSS inlined, the logo embedded."""
    return render_message(
        request,
        html="templates/message.jinja2",
        text="templates/message.txt",
        subject=subject,
        value={"subject": subject, "paragraphs": [p for p in body.split("\n\n") if p.strip()]},
        recipients=[to],
        # Mail clients ignore <style>: css_inline writes it into style="".
        inline_css=True,
    )
