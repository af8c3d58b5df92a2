"""One message pipeline: from what ``send()`` is given to the bytes sent.

``send()`` hands a :class:`Message` (or an EmailMessage) to :func:`prepare`,
which validates it once (:mod:`.normalize`) into a draft, and gives the
draft to one of two writers: :mod:`.fast_writer` for simple messages,
:mod:`.email_writer` (the standard :mod:`email` package) for the rest. The
result is an :class:`Envelope`.
"""

from .addresses import AddressLike, parse_address
from .envelope import Envelope, prepare
from .headers import RESERVED_PREFIX
from .model import Attachment, HeadersLike, Message

__all__ = [
    "RESERVED_PREFIX",
    "AddressLike",
    "Attachment",
    "Envelope",
    "HeadersLike",
    "Message",
    "parse_address",
    "prepare",
]
