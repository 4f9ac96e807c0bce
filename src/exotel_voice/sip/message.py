"""SIP requests and responses, and the one-message parser and serializer.

Over WebSocket one message carries exactly one SIP message (RFC 7118 §5.2), so
:func:`parse_message` is a pure function of one complete buffer, not a stream parser.

Parser contract: :func:`parse_message` returns a :class:`Request` or :class:`Response`, or
raises :class:`~exotel_voice.exceptions.InvalidMessage` (with a ``status_hint``). It raises
nothing else, on any input.

What :func:`parse_message` checks (and so what a returned message guarantees):

* the start line: ``Method SP Request-URI SP SIP/2.0`` with exactly one space between the
  elements, a token method and a valid URI without URI headers; or
  ``SIP/2.0 SP 3DIGIT SP Reason-Phrase`` with a code in 100-699. Another SIP version gives
  ``status_hint=505``;
* the header section: UTF-8, ``name: value`` lines with token names, line folding
  (RFC 3261 §7.3.1) undone, CRLF line ends (bare LF is tolerated, a bare CR is not);
* the *transaction-path* headers, fully parsed: every Via, From, To, Call-ID, CSeq
  (present exactly once, number below 2**31, method equal to a request's method) and
  Content-Length (at most once). A response's From and To must be present once, but are
  not on its transaction path (RFC 3261 §17.1.3 matches responses by Via branch and CSeq
  method): they are checked when first read, or by :meth:`Message.check_from_to` (the
  connection calls it for every response that a dialog may need);
* the body: RFC 7118 frames one SIP message per WebSocket message, so a Content-Length
  larger than the body received is an error, and a body longer than Content-Length is cut
  to Content-Length (the extra octets are dropped, as RFC 3261 §18.3 says for datagrams).
  Without Content-Length the whole rest of the frame is the body, kept as bytes (an SDP
  body is opaque text to the SIP core).

Every other header is kept as text and parsed when asked for (``.contacts``, ``.routes``,
``.max_forwards`` ...), which raises :class:`~exotel_voice.exceptions.InvalidMessage` if it
is malformed. The parsed Via, From, To and CSeq are kept with the message's
:class:`~exotel_voice.sip.headers.Headers` and dropped when they change (or when the message
gets another ``headers``); each access returns a fresh copy, so changing the returned object
never changes the message.

Size limits (module constants; each can be overridden by an environment variable of the
same name prefixed ``EXOTEL_VOICE_``, e.g. ``EXOTEL_VOICE_MAX_MESSAGE_SIZE``):

* :data:`MAX_MESSAGE_SIZE` (65536 bytes): the whole message, headers and body
  (:class:`~exotel_voice.exceptions.MessageTooLarge`, ``status_hint=513``);
* :data:`MAX_LINE_LENGTH` (8192 characters): the start line and each header line after
  unfolding (:class:`~exotel_voice.exceptions.LineTooLong`; ``status_hint=414`` when it is
  a request line made long by its Request-URI);
* :data:`MAX_NUM_HEADERS` (256): header fields, counting each line, not each
  comma-separated value (:class:`~exotel_voice.exceptions.TooManyHeaders`).

``repr`` of a message shows only its start line, Call-ID, CSeq and top Via branch.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..exceptions import InvalidMessage, LineTooLong, MessageTooLarge, TooManyHeaders
from .abnf import TOKEN
from .headers import (
    CSeq,
    Headers,
    NameAddr,
    Via,
    _Views,
    canonical_name,
    parse_cseq,
    parse_name_addr,
    parse_via,
)
from .uri import URI, SipURI, excerpt, parse_uri


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
    414: "Request-URI Too Long",
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
    """Fields and helpers shared by requests and responses.

    Structured accessors (:attr:`via`, :attr:`from_`, :attr:`to`, :attr:`cseq`,
    :attr:`contacts` ...) parse their header from its text. Via, From, To and CSeq are
    parsed once and kept until the headers change (any :class:`Headers` mutation, or
    assigning a new ``headers``); every access returns an object that nobody else holds, so
    mutating it never changes the message or what the next access returns. To change a
    header, build a new value and ``headers.set()`` its ``str()``.
    """

    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def _views(self) -> _Views:
        # The parsed values live on the Headers object, which drops them on every change
        # (and a new ``headers`` brings its own), so they are never stale.
        views = self.headers._views
        if views is None:
            views = self.headers._views = _Views()
        return views

    def _vias(self) -> list[Via]:
        views = self._views()
        if views.vias is None:
            views.vias = [parse_via(v) for v in self.headers.get_all("Via")]
        return views.vias

    def _name_addr(self, name: str) -> NameAddr:
        value = self.headers.get(name)
        if value is None:
            raise InvalidMessage(f"missing {name}")
        return _header_name_addr(name, value)

    def _name_addrs(self, name: str) -> list[NameAddr]:
        return [parse_name_addr(v) for v in self.headers.get_all(name) if v != "*"]

    # -- convenience accessors ----------------------------------------------------------------
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
        views = self._views()
        if views.cseq is None:
            value = self.headers.get("CSeq")
            if value is None:
                raise InvalidMessage("missing CSeq")
            views.cseq = parse_cseq(value)
        return views.cseq

    @property
    def vias(self) -> list[Via]:
        """Every Via, top first."""
        return [v.copy() for v in self._vias()]

    @property
    def via(self) -> Via:
        """The top Via."""
        vias = self._vias()
        if not vias:
            raise InvalidMessage("missing Via")
        return vias[0].copy()

    @property
    def branch(self) -> str | None:
        """The top Via's branch parameter."""
        vias = self._vias()
        return vias[0].branch if vias else None

    def check_from_to(self) -> None:
        """Check From and To against the grammar, once (later reads use what it parsed).

        :func:`parse_message` does this for a request; a response's From and To are checked
        here or when first read.

        Raises:
            InvalidMessage: From or To is missing or malformed.
        """
        views = self._views()
        if views.from_ is None:
            views.from_ = self._name_addr("From")
        if views.to is None:
            views.to = self._name_addr("To")

    @property
    def from_(self) -> NameAddr:
        """The parsed From header."""
        views = self._views()
        if views.from_ is None:
            views.from_ = self._name_addr("From")
        return views.from_.copy()

    @property
    def to(self) -> NameAddr:
        """The parsed To header."""
        views = self._views()
        if views.to is None:
            views.to = self._name_addr("To")
        return views.to.copy()

    @property
    def contacts(self) -> list[NameAddr]:
        """Every Contact (``*`` is skipped)."""
        return self._name_addrs("Contact")

    @property
    def routes(self) -> list[NameAddr]:
        """Every Route value, top first."""
        return self._name_addrs("Route")

    @property
    def record_routes(self) -> list[NameAddr]:
        """Every Record-Route value, top first."""
        return self._name_addrs("Record-Route")

    @property
    def max_forwards(self) -> int | None:
        """The Max-Forwards value (0-255), or ``None`` when absent."""
        value = self.headers.get("Max-Forwards")
        if value is None:
            return None
        # Max-Forwards = 1*DIGIT ; RFC 3261 §20.22 "range 0-255"
        v = value.strip(" \t")
        if not (v.isascii() and v.isdigit()) or int(v) > 255:
            raise InvalidMessage(f"invalid Max-Forwards {excerpt(value, 20)}")
        return int(v)

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
                if has_length:
                    continue
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
        """The request as wire bytes; Content-Length is always set from the body."""
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
        """The response as wire bytes; Content-Length is always set from the body."""
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

_TOKEN_RE = re.compile(TOKEN)
_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
_BLANK_LINE_RE = re.compile(rb"\r?\n\r?\n")
_LINE_SPLIT_RE = re.compile(r"\r?\n")

#: Headers every message must carry exactly once (RFC 3261 §8.1.1), besides Via.
_SINGLE = ("From", "To", "Call-ID", "CSeq")
_AT_MOST_ONCE = ("From", "To", "Call-ID", "CSeq", "Content-Length")


def parse_message(data: bytes | bytearray | memoryview | str) -> Request | Response:
    """Parse exactly one SIP message.

    Only the transaction-path headers (Via, From, To, Call-ID, CSeq, Content-Length) are
    parsed up front; the others when first read.

    Args:
        data: one complete message, as received in one WebSocket message.

    Returns:
        The parsed :class:`Request` or :class:`Response`.

    Raises:
        InvalidMessage: the data is not one valid SIP message; ``status_hint`` says how a
            server should answer. Nothing else is ever raised.
    """
    try:
        return _parse(data.encode("utf-8") if isinstance(data, str) else bytes(data))
    except InvalidMessage:
        raise
    except Exception as exc:  # the contract: nothing but InvalidMessage escapes
        raise InvalidMessage(f"malformed message ({type(exc).__name__})") from None


def _parse(raw: bytes) -> Request | Response:
    if len(raw) > MAX_MESSAGE_SIZE:
        raise MessageTooLarge(f"message of {len(raw)} bytes exceeds {MAX_MESSAGE_SIZE}")
    # RFC 3261 §7.5: ignore CRLFs before the start line (also keepalives, RFC 7118 §6).
    raw = raw.lstrip(b"\r\n")
    # The header section ends at the first blank line (CRLF CRLF, or with bare LFs).
    blank = _BLANK_LINE_RE.search(raw)
    if blank is None:
        raise InvalidMessage("no blank line after the headers" if raw else "empty message")
    head_bytes, body = raw[:blank.start()], raw[blank.end():]
    if not head_bytes:
        raise InvalidMessage("empty message")
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidMessage("header section is not valid UTF-8") from None
    if "\r" in head.replace("\r\n", ""):
        raise InvalidMessage("bare CR in the header section")
    lines = _LINE_SPLIT_RE.split(head)
    if len(lines[0]) > MAX_LINE_LENGTH:
        raise _start_line_too_long(lines[0])
    for line in lines:
        if len(line) > MAX_LINE_LENGTH:
            raise LineTooLong(f"line longer than {MAX_LINE_LENGTH}")

    start = lines.pop(0)
    message: Request | Response
    if start[:4].upper() == "SIP/":
        message = _parse_status_line(start)
    else:
        message = _parse_request_line(start)
    items = _header_items(lines)
    message.headers = Headers._from_canonical(items)
    _check_transaction_headers(message, items)

    clen = message.headers.get("Content-Length")
    if clen is not None:
        if not (clen.isascii() and clen.isdigit()):
            raise InvalidMessage(f"invalid Content-Length {excerpt(clen, 20)}")
        length = int(clen)
        if length > len(body):
            raise InvalidMessage(
                f"Content-Length {length} exceeds the {len(body)} body bytes received"
            )
        body = body[:length]
    message.body = body
    return message


def _check_transaction_headers(message: Request | Response, items: list[tuple[str, str]]) -> None:
    """Parse and check Via, CSeq, Call-ID (and a request's From and To); raises InvalidMessage.

    What they parse into is kept with the headers (see :class:`Message`).
    """
    names = [name for name, _ in items]
    for name in _AT_MOST_ONCE:
        if names.count(name) > 1:
            raise InvalidMessage(f"more than one {name} header")
    for name in ("Via", *_SINGLE):
        if name not in names:
            raise InvalidMessage(f"missing mandatory header {name}")
    if not message._vias():
        raise InvalidMessage("empty Via")
    if isinstance(message, Request):
        # A response's From and To are not on its transaction path (RFC 3261 §17.1.3 matches
        # on the top Via's branch and the CSeq method): they are checked when first read, or
        # by Message.check_from_to(), which the connection calls where a dialog needs them.
        message.check_from_to()
    if not message.call_id:
        raise InvalidMessage("empty Call-ID")
    cseq = message.cseq
    if isinstance(message, Request) and cseq.method != message.method:
        raise InvalidMessage(f"CSeq method {cseq.method} does not match {message.method}")


def _start_line_too_long(line: str) -> LineTooLong:
    """The error for a start line longer than :data:`MAX_LINE_LENGTH`.

    A request line that would fit without its Request-URI gets ``status_hint=414``
    (RFC 3261 §21.4.12: "the Request-URI is longer than the server is willing to
    interpret"); any other start line 400.
    """
    parts = line.split(None, 2)
    if (
        line[:4].upper() != "SIP/"
        and len(parts) >= 2
        and len(line) - len(parts[1]) <= MAX_LINE_LENGTH
    ):
        return LineTooLong(
            f"Request-URI of {len(parts[1])} characters: request line longer than "
            f"{MAX_LINE_LENGTH}",
            status_hint=414,
        )
    return LineTooLong(f"start line longer than {MAX_LINE_LENGTH}")


def _header_name_addr(name: str, value: str) -> NameAddr:
    """:func:`parse_name_addr`, with the header's name in the error."""
    try:
        return parse_name_addr(value)
    except InvalidMessage as exc:
        raise InvalidMessage(f"invalid {name} header: {exc}", status_hint=exc.status_hint) from None


def _header_items(lines: list[str]) -> list[tuple[str, str]]:
    """The header lines as ``(canonical name, value)``, unfolded, names checked."""
    lines = _unfold(lines)
    if len(lines) > MAX_NUM_HEADERS:
        raise TooManyHeaders(f"more than {MAX_NUM_HEADERS} headers")
    items = []
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon:
            raise InvalidMessage(f"invalid header line {excerpt(line, 40)}")
        name = name.rstrip(" \t")
        if _TOKEN_RE.fullmatch(name) is None:
            raise InvalidMessage(f"invalid header name {excerpt(name, 40)}")
        items.append((canonical_name(name), value.strip(" \t")))
    return items


def _unfold(lines: list[str]) -> list[str]:
    """Undo RFC 3261 §7.3.1 line folding: a line starting with SP/HTAB continues the last."""
    out: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if not out:
                raise InvalidMessage("continuation line before any header")
            joined = out[-1].rstrip(" \t") + " " + line.strip(" \t")
            if len(joined) > MAX_LINE_LENGTH:
                raise LineTooLong(f"header line longer than {MAX_LINE_LENGTH}")
            out[-1] = joined
        else:
            out.append(line)
    return out


def _parse_request_line(line: str) -> Request:
    # Request-Line = Method SP Request-URI SP SIP-Version   (RFC 3261 §25.1: exactly one SP)
    parts = line.split(" ")
    if len(parts) != 3:
        raise InvalidMessage(f"invalid request line {excerpt(line, 80)}")
    method, uri_text, version = parts
    if _TOKEN_RE.fullmatch(method) is None:
        raise InvalidMessage(f"invalid method {excerpt(method, 40)}")
    if version.upper() != "SIP/2.0":
        if _VERSION_RE.fullmatch(version):
            raise InvalidMessage(f"unsupported version {excerpt(version, 20)}", status_hint=505)
        raise InvalidMessage(f"invalid request line {excerpt(line, 80)}")
    uri = parse_uri(uri_text)
    if isinstance(uri, SipURI) and uri.headers:
        # RFC 3261 §19.1.5: no headers in a Request-URI (RFC 4475 §3.1.2.11).
        raise InvalidMessage("Request-URI has URI headers")
    return Request(method, uri)


def _parse_status_line(line: str) -> Response:
    # Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
    parts = line.split(" ", 2)
    version = parts[0]
    if version.upper() != "SIP/2.0":
        if _VERSION_RE.fullmatch(version):
            raise InvalidMessage(f"unsupported version {excerpt(version, 20)}", status_hint=505)
        raise InvalidMessage(f"invalid status line {excerpt(line, 80)}")
    code = parts[1] if len(parts) > 1 else ""
    if len(code) != 3 or not (code.isascii() and code.isdigit()):
        raise InvalidMessage(f"invalid status code {excerpt(code, 10)}")
    status = int(code)
    if not 100 <= status <= 699:
        raise InvalidMessage(f"status code {status} out of range")
    return Response(status, parts[2] if len(parts) == 3 else "")
