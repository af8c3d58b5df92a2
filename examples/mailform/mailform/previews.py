"""Mail previews: open /_mail/previews while the example runs."""

from __future__ import annotations

from pyramid_sendmail import mail_preview

from .mails import build_message


@mail_preview(title="Form message")
def form_message(request):
    """The message the form sends, with sample text.

    Add ``?subject=...`` or ``?body=...`` to the URL to try other words.
    """
    params = request.params
    return build_message(
        request,
        to="ann@example.org",
        subject=params.get("subject", "Hello from Pyramid"),
        body=params.get(
            "body", "It works.\n\nThis message has a text part, an HTML part and an inline logo."
        ),
    )
