"""SIP requests and responses, and the one-message parser and serializer.

Over WebSocket one message carries exactly one SIP message (RFC 7118 §5.2), so
:func:`parse_message` is a pure function of one complete buffer, not a stream parser.

Parser contract: :func:`parse_message` returns a :class:`Request` or :class:`Response`, or
raises :class:`~exotel_voice.exceptions.InvalidMessage` (with a ``status_hint``). It raises
nothing else, on any input.

Size limits are module constants; each can be overridden by an environment variable of the
same name prefixed ``EXOTEL_VOICE_`` (e.g. ``EXOTEL_VOICE_MAX_MESSAGE_SIZE``).

``repr`` of a message shows only its start line, Call-ID, CSeq and top Via branch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..exceptions import InvalidMessage, LineTooLong, MessageTooLarge, TooManyHeaders
from .headers import CSeq, Headers, NameAddr, Via, parse_cseq, parse_name_addr, parse_via
from .uri import URI, SipURI, parse_uri


__all__ = [
    "MAX_LINE_LENGTH",
    "MAX_MESSAGE_SIZE",
    "MAX_NUM_HEADERS",
    "Message",
    "Request",
    "Response",
    "parse_message",
    "reason_phrase",
]


def _limit(name: str, default: int) -> int:
    try:
        return int(os.environ.get(f"EXOTEL_VOICE_{name}", default))
    except ValueError:
        return default


#: Largest accepted message, headers and body together, in bytes.
MAX_MESSAGE_SIZE = _limit("MAX_MESSAGE_SIZE", 65536)
#: Largest accepted start line or header line (after unfolding), in bytes.
MAX_LINE_LENGTH = _limit("MAX_LINE_LENGTH", 8192)
#: Most header fields accepted in one message.
MAX_NUM_HEADERS = _limit("MAX_NUM_HEADERS", 256)

_REASONS = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    603: "Decline",
}


def reason_phrase(status: int) -> str:
    """The RFC 3261 default reason phrase for a status code."""
    return _REASONS.get(status, "Unknown")


@dataclass(eq=False)
class Message:
    """Fields and helpers shared by requests and responses."""

    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    # -- convenience accessors (parsed on each call; cheap for the transaction path) --------
    @property
    def call_id(self) -> str:
        """The Call-ID value."""
        value = self.headers.get("Call-ID")
        if value is None:
            raise InvalidMessage("missing Call-ID")
        return value.strip()

    @property
    def cseq(self) -> CSeq:
        """The parsed CSeq."""
        value = self.headers.get("CSeq")
        if value is None:
            raise InvalidMessage("missing CSeq")
        return parse_cseq(value)

    @property
    def vias(self) -> list[Via]:
        """Every Via, top first."""
        return [parse_via(v) for v in self.headers.get_all("Via")]

    @property
    def via(self) -> Via:
        """The top Via."""
        values = self.headers.get_all("Via")
        if not values:
            raise InvalidMessage("missing Via")
        return parse_via(values[0])

    @property
    def branch(self) -> str | None:
        """The top Via's branch parameter."""
        values = self.headers.get_all("Via")
        return parse_via(values[0]).branch if values else None

    @property
    def from_(self) -> NameAddr:
        """The parsed From header."""
        value = self.headers.get("From")
        if value is None:
            raise InvalidMessage("missing From")
        return parse_name_addr(value)

    @property
    def to(self) -> NameAddr:
        """The parsed To header."""
        value = self.headers.get("To")
        if value is None:
            raise InvalidMessage("missing To")
        return parse_name_addr(value)

    @property
    def contacts(self) -> list[NameAddr]:
        """Every Contact (``*`` is skipped)."""
        return [parse_name_addr(v) for v in self.headers.get_all("Contact") if v.strip() != "*"]

    @property
    def content_type(self) -> str | None:
        """The media type of the body, lower-cased, without parameters."""
        value = self.headers.get("Content-Type")
        return value.split(";", 1)[0].strip().lower() if value else None

    def _serialize(self, start_line: str) -> bytes:
        lines = [start_line]
        has_length = False
        for k, v in self.headers:
            if k == "Content-Length":
                has_length = True
                v = str(len(self.body))
            lines.append(f"{k}: {v}")
        if not has_length:
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body

    def __bytes__(self) -> bytes:
        return self.serialize()

    def serialize(self) -> bytes:
        """The message as wire bytes; Content-Length is always set from the body."""
        raise NotImplementedError

    def _summary(self) -> str:
        parts = []
        for name in ("Call-ID", "CSeq"):
            value = self.headers.get(name)
            if value is not None:
                parts.append(f"{name}={value.strip()}")
        try:
            branch = self.branch
        except InvalidMessage:
            branch = None
        if branch:
            parts.append(f"branch={branch}")
        return " ".join(parts)


@dataclass(eq=False)
class Request(Message):
    """A SIP request.

    Attributes:
        method: the method, e.g. ``"INVITE"`` (case-sensitive, RFC 3261 §7.1).
        uri: the Request-URI.
        headers: the header fields.
        body: the body bytes.
    """

    method: str = ""
    uri: URI = field(default_factory=SipURI)

    def __init__(
        self, method: str, uri: URI | str, headers: Headers | None = None, body: bytes = b""
    ) -> None:
        self.method = method
        self.uri = parse_uri(uri) if isinstance(uri, str) else uri
        self.headers = headers if headers is not None else Headers()
        self.body = body

    def serialize(self) -> bytes:
        return self._serialize(f"{self.method} {self.uri} SIP/2.0")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return (
            self.method == other.method
            and str(self.uri) == str(other.uri)
            and self.headers == other.headers
            and self.body == other.body
        )

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri!r} {self._summary()}>"


@dataclass(eq=False)
class Response(Message):
    """A SIP response.

    Attributes:
        status: the status code (100-699).
        reason: the reason phrase.
        headers: the header fields.
        body: the body bytes.
    """

    status: int = 200
    reason: str = "OK"

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | None = None,
        body: bytes = b"",
    ) -> None:
        self.status = status
        self.reason = reason if reason is not None else reason_phrase(status)
        self.headers = headers if headers is not None else Headers()
        self.body = body

    def serialize(self) -> bytes:
        return self._serialize(f"SIP/2.0 {self.status} {self.reason}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Response):
            return NotImplemented
        return (
            self.status == other.status
            and self.reason == other.reason
            and self.headers == other.headers
            and self.body == other.body
        )

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason!r} {self._summary()}>"


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------

_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")


def parse_message(data: bytes | str) -> Request | Response:
    """Parse exactly one SIP message.

    Args:
        data: one complete message, as received in one WebSocket message.

    Returns:
        The parsed :class:`Request` or :class:`Response`.

    Raises:
        InvalidMessage: the data is not one valid SIP message; ``status_hint`` says how a
            server should answer. Nothing else is ever raised.
    """
    try:
        return _parse(data)
    except InvalidMessage:
        raise
    except Exception as exc:  # the contract: nothing but InvalidMessage escapes
        raise InvalidMessage(f"malformed message ({type(exc).__name__})") from None


def _parse(data: bytes | str) -> Request | Response:
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_MESSAGE_SIZE:
        raise MessageTooLarge(f"message of {len(raw)} bytes exceeds {MAX_MESSAGE_SIZE}")
    # RFC 3261 §7.5: ignore CRLFs before the start line (also keepalives, RFC 7118 §6).
    raw = raw.lstrip(b"\r\n")
    if not raw:
        raise InvalidMessage("empty message")
    end = raw.find(b"\r\n\r\n")
    sep = 4
    if end == -1:
        end = raw.find(b"\n\n")
        sep = 2
    if end == -1:
        head_bytes, body = raw, b""
        if not (raw.endswith(b"\r\n") or raw.endswith(b"\n")):
            raise InvalidMessage("no blank line after the headers")
    else:
        head_bytes, body = raw[:end], raw[end + sep:]
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidMessage("header section is not valid UTF-8") from None
    lines = head.replace("\r\n", "\n").split("\n")
    start = lines[0]
    if len(start) > MAX_LINE_LENGTH:
        raise LineTooLong(f"start line longer than {MAX_LINE_LENGTH}")
    headers = _parse_headers(lines[1:])
    message: Request | Response
    if start.startswith("SIP/"):
        message = _parse_status_line(start, headers)
    else:
        message = _parse_request_line(start, headers)
    clen = headers.get("Content-Length")
    if clen is not None:
        try:
            length = int(clen.strip())
        except ValueError:
            raise InvalidMessage(f"invalid Content-Length {clen[:20]!r}") from None
        if length < 0:
            raise InvalidMessage("negative Content-Length")
        if length > len(body):
            raise InvalidMessage(
                f"Content-Length {length} exceeds the {len(body)} body bytes received"
            )
        body = body[:length]
    message.body = body
    # The transaction layer cannot work without these (RFC 3261 §8.1.1).
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        if name not in headers:
            raise InvalidMessage(f"missing mandatory header {name}")
    cseq = parse_cseq(headers["CSeq"])
    if isinstance(message, Request) and cseq.method != message.method:
        raise InvalidMessage(f"CSeq method {cseq.method} does not match {message.method}")
    return message


def _parse_headers(lines: list[str]) -> Headers:
    items: list[tuple[str, str]] = []
    for line in lines:
        if len(line) > MAX_LINE_LENGTH:
            raise LineTooLong(f"header line longer than {MAX_LINE_LENGTH}")
        if not line:
            continue
        if line[0] in " \t":
            # RFC 3261 §7.3.1 line folding: continuation of the previous header value.
            if not items:
                raise InvalidMessage("continuation line before any header")
            name, value = items[-1]
            value = f"{value} {line.strip()}"
            if len(value) > MAX_LINE_LENGTH:
                raise LineTooLong(f"header line longer than {MAX_LINE_LENGTH}")
            items[-1] = (name, value)
            continue
        colon = line.find(":")
        if colon <= 0:
            raise InvalidMessage(f"invalid header line {line[:40]!r}")
        name = line[:colon].rstrip(" \t")
        if not name or not all(c in _TOKEN_CHARS for c in name):
            raise InvalidMessage(f"invalid header name {name[:40]!r}")
        items.append((name, line[colon + 1:].strip(" \t")))
        if len(items) > MAX_NUM_HEADERS:
            raise TooManyHeaders(f"more than {MAX_NUM_HEADERS} headers")
    return Headers(items)


def _parse_request_line(line: str, headers: Headers) -> Request:
    parts = line.split(" ")
    if len(parts) != 3:
        raise InvalidMessage(f"invalid request line {line[:80]!r}")
    method, uri_text, version = parts
    if not method or not all(c in _TOKEN_CHARS for c in method):
        raise InvalidMessage(f"invalid method {method[:40]!r}")
    if version.upper() != "SIP/2.0":
        raise InvalidMessage(f"unsupported version {version[:20]!r}", status_hint=505)
    try:
        uri = parse_uri(uri_text)
    except InvalidMessage as exc:
        raise InvalidMessage(str(exc), status_hint=416 if ":" not in uri_text else 400) from None
    return Request(method, uri, headers)


def _parse_status_line(line: str, headers: Headers) -> Response:
    parts = line.split(" ", 2)
    if len(parts) < 2 or parts[0].upper() != "SIP/2.0":
        raise InvalidMessage(f"invalid status line {line[:80]!r}", status_hint=505)
    code = parts[1]
    if len(code) != 3 or not code.isdigit():
        raise InvalidMessage(f"invalid status code {code[:10]!r}")
    status = int(code)
    if not 100 <= status <= 699:
        raise InvalidMessage(f"status code {status} out of range")
    return Response(status, parts[2] if len(parts) == 3 else "", headers)
