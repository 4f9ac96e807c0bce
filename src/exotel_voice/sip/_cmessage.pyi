"""Typing stub of the optional C accelerator ``exotel_voice.sip._cmessage`` (see _cmessage.h).

Every function answers ``None`` when its input is outside the fast subset (or not ASCII):
the caller then falls back to the pure-Python parser, the reference.
"""

from .headers import NameAddr, Via
from .message import Request, Response
from .uri import SipURI

def register(name: str, obj: object) -> None:
    """Hand over a class or table the parser builds or reads (``"SipURI"``, ``"Via"`` ...)."""

def sip_uri(text: str) -> SipURI | None:
    """``FAST_SIP_URI_RE.fullmatch`` + ``sip_uri_from_match``, or ``None``."""

def name_addr(text: str) -> NameAddr | None:
    """``FAST_NAME_ADDR_RE.fullmatch`` + ``name_addr_from_match``, or ``None``."""

def via(text: str) -> Via | None:
    """``FAST_VIA_RE.fullmatch`` + ``via_from_match``, or ``None``."""

def parse(data: bytes, full: bool) -> Request | Response | None:
    """A whole message, or ``None`` when it is outside the fast subset."""

def set_limits(max_message_size: int, max_line_length: int, max_num_headers: int) -> None:
    """The size limits of ``exotel_voice.sip.message`` (beyond them: ``None``)."""
