"""The sans-I/O SIP core: messages, URIs, headers, digest auth, transactions, dialogs.

Nothing in this package does I/O, imports asyncio, or reads a clock: bytes and events go
in, bytes, events and deadlines come out. Time is always passed in as ``now`` (seconds,
any monotonic origin).
"""

from __future__ import annotations

from .headers import CSeq, Headers, NameAddr, Via, parse_name_addr, parse_via
from .message import Request, Response, parse_message
from .uri import AbsoluteURI, SipURI, parse_uri


__all__ = [
    "AbsoluteURI",
    "CSeq",
    "Headers",
    "NameAddr",
    "Request",
    "Response",
    "SipURI",
    "Via",
    "parse_message",
    "parse_name_addr",
    "parse_uri",
    "parse_via",
]
