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
  method): they are checked when first read, by :meth:`Message.check_from_to` (the
  connection calls it for every response that a dialog may need) or by a full parse;
* the body: RFC 7118 frames one SIP message per WebSocket message, so a Content-Length
  larger than the body received is an error, and a body longer than Content-Length is cut
  to Content-Length (the extra octets are dropped, as RFC 3261 §18.3 says for datagrams).
  Without Content-Length the whole rest of the frame is the body.

Via, a request's From and To, and the Request-URI are *checked* while parsing (one regex
match each for the common shapes, the full grammar otherwise); their objects are built from
those matches when first read. Every other header is kept as text and parsed when first asked for.
``parse_message(data, full=True)`` or :meth:`Message.parse_all` parses and checks *every*
header the SDK understands (Contact, Route, Record-Route, Max-Forwards, Expires,
Content-Type ...) and an ``application/sdp`` body.

Parsed views (``.via``, ``.from_``, ``.to``, ``.cseq`` ...) are cached with the message's
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

When the optional C accelerator ``exotel_voice.sip._cmessage`` is built (see
:mod:`exotel_voice.sip._speedups`), :func:`parse_message` tries it first: for the usual
messages it builds the same objects this module builds (the views then hold the parsed
Via/From/To objects rather than regex matches, and a full parse also holds the SDP); for
anything else it answers ``None`` and the Python parser below decides, so every error comes
from here.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter

from ..exceptions import InvalidMessage, LineTooLong, MessageTooLarge, TooManyHeaders
from . import _speedups
from .abnf import TOKEN, TOKEN_P
from .headers import (
    CSEQ_RE,
    FAST_NAME_ADDR_RE,
    FAST_VIA_RE,
    CSeq,
    Headers,
    NameAddr,
    Via,
    _Views,
    canonical_name,
    name_addr_from_match,
    parse_cseq,
    parse_name_addr,
    parse_params,
    parse_via,
    split_header_values,
    via_from_match,
)
from .uri import FAST_SIP_URI_RE, URI, SipURI, excerpt, parse_uri, sip_uri_from_match


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
    :attr:`contacts` ...) parse their header from its text. Values parsed ahead of time
    (by :func:`parse_message` or :meth:`parse_all`) are kept until the headers change (any
    :class:`Headers` mutation, or assigning a new ``headers``), and each is handed out once:
    every access returns an object that nobody else holds, so mutating it never changes
    the message or what the next access returns. To change a header, build a new value
    and ``headers.set()`` its ``str()``.
    """

    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def _views(self) -> _Views:
        # The parsed values live on the Headers object, which drops them on every change
        # (and a new ``headers`` brings its own), so they are never stale.
        h = self.headers
        views = h._views
        if views is None:
            views = h._views = _new(_Views)
        return views

    def _vias(self) -> list[Via]:
        views = self.headers._views or self._views()
        vias = views.vias
        if vias is None:
            matches = views.via_m
            if matches is not None:
                vias = [via_from_match(m) for m in matches]
                views.via_m = None  # (only one of via_m and vias is ever set)
            else:
                vias = [parse_via(v) for v in self.headers.get_all("Via")]
            views.vias = vias
        return vias

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
        views = self.headers._views or self._views()
        value = views.call_id
        if value is None:
            header = self.headers.get("Call-ID")
            if header is None:
                raise InvalidMessage("missing Call-ID")
            value = views.call_id = header.strip()
        return value

    @property
    def cseq(self) -> CSeq:
        """The parsed CSeq."""
        views = self.headers._views or self._views()
        if views.cseq is None:
            value = self.headers.get("CSeq")
            if value is None:
                raise InvalidMessage("missing CSeq")
            views.cseq = parse_cseq(value)
        return views.cseq

    @property
    def vias(self) -> list[Via]:
        """Every Via, top first."""
        via_m = (self.headers._views or self._views()).via_m
        if via_m is not None:
            return [via_from_match(m) for m in via_m]
        return [v.copy() for v in self._vias()]

    @property
    def via(self) -> Via:
        """The top Via."""
        via_m = (self.headers._views or self._views()).via_m
        if via_m:
            return via_from_match(via_m[0])
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
        """Check From and To against the grammar, once (later reads build from the check).

        :func:`parse_message` does this for a request; a response's From and To are checked
        here or when first read.

        Raises:
            InvalidMessage: From or To is missing or malformed.
        """
        views = self.headers._views or self._views()
        if (views.from_m is None and views.from_ is None) or (
            views.to_m is None and views.to is None
        ):
            from_value = self.headers.get("From")
            to_value = self.headers.get("To")
            if from_value is None or to_value is None:
                raise InvalidMessage(f"missing {'From' if from_value is None else 'To'}")
            _check_from_to(views, from_value, to_value)

    @property
    def from_(self) -> NameAddr:
        """The parsed From header."""
        views = self.headers._views or self._views()
        if views.from_m is not None:
            return name_addr_from_match(views.from_m)
        value = views.from_
        if value is None:
            return self._name_addr("From")
        views.from_ = None  # handed out: the caller owns it now
        return value

    @property
    def to(self) -> NameAddr:
        """The parsed To header."""
        views = self.headers._views or self._views()
        if views.to_m is not None:
            return name_addr_from_match(views.to_m)
        value = views.to
        if value is None:
            return self._name_addr("To")
        views.to = None  # handed out: the caller owns it now
        return value

    def _take_list(self, field: str, header: str) -> list[NameAddr]:
        # A list parsed with the message is handed out once (the caller owns it then);
        # later reads parse the header again.
        views = self.headers._views or self._views()
        value: list[NameAddr] | None = getattr(views, field)
        if value is None:
            return self._name_addrs(header)
        setattr(views, field, None)
        return value

    @property
    def contacts(self) -> list[NameAddr]:
        """Every Contact (``*`` is skipped)."""
        return self._take_list("contacts", "Contact")

    @property
    def routes(self) -> list[NameAddr]:
        """Every Route value, top first."""
        return self._take_list("routes", "Route")

    @property
    def record_routes(self) -> list[NameAddr]:
        """Every Record-Route value, top first."""
        return self._take_list("record_routes", "Record-Route")

    @property
    def max_forwards(self) -> int | None:
        """The Max-Forwards value (0-255), or ``None`` when absent."""
        value = self.headers.get("Max-Forwards")
        return None if value is None else _parse_max_forwards(value)

    @property
    def content_type(self) -> str | None:
        """The media type of the body, lower-cased, without parameters."""
        value = self.headers.get("Content-Type")
        return value.split(";", 1)[0].strip().lower() if value else None

    @property
    def sdp(self) -> object:
        """The body parsed by :func:`exotel_voice.sip.sdp.parse_sdp`, or ``None``.

        ``None`` when the body is empty or not ``application/sdp``. Parsed once per body and
        shared: treat the result as read-only.

        Raises:
            InvalidMessage: the SDP body does not parse, or no SDP parser is installed.
        """
        if not self.body or self.content_type != "application/sdp":
            return None
        views = self.headers._views or self._views()
        if views.sdp_body is not self.body:
            parse_sdp = _sdp_parser()
            try:
                views.sdp = parse_sdp(self.body)  # (bytes: it decodes them, or its C path)
            except InvalidMessage:
                raise
            except Exception as exc:  # InvalidSDP (also for invalid UTF-8), parser bugs
                raise InvalidMessage(f"invalid SDP body ({type(exc).__name__})") from None
            views.sdp_body = self.body
        return views.sdp

    def parse_all(self) -> Message:
        """Parse and check every header the SDK understands, and an SDP body.

        After this, every structured accessor answers from the cache. This is what
        ``parse_message(data, full=True)`` does.

        Returns:
            The message itself.

        Raises:
            InvalidMessage: a header or the SDP body is malformed.
        """
        views = self.headers._views or self._views()
        if views.via_m is None:  # (fast-path matches are already checked)
            self._vias()
        self.cseq  # noqa: B018 - parsed for the side effect of caching and checking
        if views.from_ is None and views.from_m is None:
            views.from_ = self._name_addr("From")
        if views.to is None and views.to_m is None:
            views.to = self._name_addr("To")
        contacts: list[NameAddr] = []
        routes: list[NameAddr] = []
        record_routes: list[NameAddr] = []
        lists = {"Contact": contacts, "Route": routes, "Record-Route": record_routes}
        for name, value in self.headers:
            target = lists.get(name)
            if target is not None:
                if target is contacts and value == "*":
                    continue
                for part in split_header_values(value):
                    target.append(parse_name_addr(part))
                continue
            check = _FULL_CHECKS.get(name)
            if check is not None:
                check(value)
        views.contacts = contacts
        views.routes = routes
        views.record_routes = record_routes
        self.sdp  # noqa: B018
        return self

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

    def __init__(
        self, method: str, uri: URI | str, headers: Headers | None = None, body: bytes = b""
    ) -> None:
        self.method = method
        self.uri = parse_uri(uri) if isinstance(uri, str) else uri
        self.headers = headers if headers is not None else Headers()
        self.body = body

    # The parser checks the Request-URI with a regex and builds the SipURI on first read.
    _uri: URI | None = field(default=None, init=False, repr=False, compare=False)
    _uri_m: re.Match[str] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def uri(self) -> URI:
        """The Request-URI (built once, then the same object on every read)."""
        uri = self._uri
        if uri is None:
            m = self._uri_m
            uri = self._uri = sip_uri_from_match(m, 1) if m is not None else SipURI()
        return uri

    @uri.setter
    def uri(self, value: URI) -> None:
        self._uri = value
        self._uri_m = None

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
# Full-parse checks for headers that have no cached view
# --------------------------------------------------------------------------------------------


def _parse_max_forwards(value: str) -> int:
    # Max-Forwards = 1*DIGIT ; RFC 3261 §20.22 "range 0-255"
    v = value.strip(" \t")
    if not (v.isascii() and v.isdigit()) or int(v) > 255:
        raise InvalidMessage(f"invalid Max-Forwards {excerpt(value, 20)}")
    return int(v)


def _check_delta_seconds(value: str) -> None:
    # Expires = delta-seconds ; RFC 3261 §20.19: 1*DIGIT, at most 2**32-1 (§25.1).
    v = value.strip(" \t")
    if not (v.isascii() and v.isdigit()) or int(v) > 2**32 - 1:
        raise InvalidMessage(f"invalid delta-seconds {excerpt(value, 20)}")


# Possessive repeats ("*+", "++"): a token is followed by SP/HTAB, "/", ";" or the end, none
# of which is a token character, so giving characters back never finds another match (it
# only costs time when a match fails).
_MEDIA_TYPE_RE = re.compile(
    r"[ \t]*+(" + TOKEN_P + r")[ \t]*+/[ \t]*+(" + TOKEN_P + r")[ \t]*+(;.*)?", re.DOTALL
)


def _check_media_type(value: str) -> None:
    # media-type = m-type SLASH m-subtype *(SEMI m-parameter) ; RFC 3261 §20.15
    m = _MEDIA_TYPE_RE.fullmatch(value)
    if m is None:
        raise InvalidMessage(f"invalid media type {excerpt(value, 40)}")
    if m.group(3):
        parse_params(m.group(3))


# (Possessive, as _MEDIA_TYPE_RE: a token is followed by SP/HTAB, "," or the end.)
_TOKEN_LIST_RE = re.compile(
    r"[ \t]*+(?:" + TOKEN_P + r"[ \t]*+(?:,[ \t]*+" + TOKEN_P + r"[ \t]*+)*+)?+"
)


def _check_token_list(value: str) -> None:
    # Allow / Supported / Require / Proxy-Require / Unsupported = [token *(COMMA token)]
    if _TOKEN_LIST_RE.fullmatch(value) is None:
        raise InvalidMessage(f"invalid token list {excerpt(value, 40)}")


def _check_name_addrs(value: str) -> None:
    for item in split_header_values(value):
        parse_name_addr(item)


_FULL_CHECKS: dict[str, Callable[[str], object]] = {
    "Max-Forwards": _parse_max_forwards,
    "Expires": _check_delta_seconds,
    "Min-Expires": _check_delta_seconds,
    "Content-Type": _check_media_type,
    "Allow": _check_token_list,
    "Supported": _check_token_list,
    "Require": _check_token_list,
    "Proxy-Require": _check_token_list,
    "Unsupported": _check_token_list,
    "Path": _check_name_addrs,
    "Service-Route": _check_name_addrs,
    "Reply-To": parse_name_addr,
    "Refer-To": parse_name_addr,
    "Referred-By": parse_name_addr,
    "P-Asserted-Identity": _check_name_addrs,
}

_sdp_parse: Callable[[bytes], object] | None = None


def _sdp_parser() -> Callable[[bytes], object]:
    """Find ``exotel_voice.sip.sdp.parse_sdp`` (imported lazily: it is an optional peer)."""
    global _sdp_parse
    if _sdp_parse is None:
        try:
            module = importlib.import_module("exotel_voice.sip.sdp")
        except ImportError:
            raise InvalidMessage("no SDP parser available (exotel_voice.sip.sdp)") from None
        parse: Callable[[bytes], object] = module.parse_sdp
        _sdp_parse = parse
    return _sdp_parse


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------

_METHOD_RE = re.compile(TOKEN)
_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
_BLANK_LINE_RE = re.compile(rb"\r?\n\r?\n")
_LINE_SPLIT_RE = re.compile(r"\r?\n")

#: Header names seen before, mapped to their canonical form (only valid tokens get in).
_known_names: dict[str, str] = {}

#: Headers the transaction layer needs; parse_message parses them eagerly.
_SINGLE = ("From", "To", "Call-ID", "CSeq")
_AT_MOST_ONCE = ("From", "To", "Call-ID", "CSeq", "Content-Length")


def _header_name(raw: str) -> str:
    name = _known_names.get(raw)
    if name is not None:
        return name
    stripped = raw.rstrip(" \t")
    if _METHOD_RE.fullmatch(stripped) is None:
        raise InvalidMessage(f"invalid header name {excerpt(raw, 40)}")
    name = canonical_name(stripped)
    if len(_known_names) < 2048:
        _known_names[raw] = name
    return name


def parse_message(
    data: bytes | bytearray | memoryview | str, full: bool = False
) -> Request | Response:
    """Parse exactly one SIP message.

    Args:
        data: one complete message, as received in one WebSocket message.
        full: also parse and check every header the SDK understands and an SDP body
            (see :meth:`Message.parse_all`); by default only the transaction-path headers
            (Via, From, To, Call-ID, CSeq, Content-Length) are parsed up front.

    Returns:
        The parsed :class:`Request` or :class:`Response`.

    Raises:
        InvalidMessage: the data is not one valid SIP message; ``status_hint`` says how a
            server should answer. Nothing else is ever raised.
    """
    try:
        if _c_parse is not None:
            # The C accelerator: the usual shapes, or None (then the Python parser decides).
            fast = _c_parse(_as_bytes(data), full)
            if fast is not None:
                if full and not _c_parses_sdp:
                    fast.sdp  # noqa: B018 - parsed and checked as parse_all() does
                return fast
        message = _parse(data)
        if full:
            message.parse_all()
        return message
    except InvalidMessage:
        raise
    except Exception as exc:  # the contract: nothing but InvalidMessage escapes
        raise InvalidMessage(f"malformed message ({type(exc).__name__})") from None


_name = itemgetter(0)
_COLONS = repeat(":")
_new = object.__new__


def _parse(data: bytes | bytearray | memoryview | str) -> Request | Response:
    if type(data) is bytes:
        raw = data
    elif isinstance(data, str):
        raw = data.encode("utf-8")
    else:
        raw = bytes(data)
    if len(raw) > MAX_MESSAGE_SIZE:
        raise MessageTooLarge(f"message of {len(raw)} bytes exceeds {MAX_MESSAGE_SIZE}")
    # RFC 3261 §7.5: ignore CRLFs before the start line (also keepalives, RFC 7118 §6).
    if raw[:1] in (b"\r", b"\n"):
        raw = raw.lstrip(b"\r\n")
    end = raw.find(b"\r\n\r\n")
    if end != -1:
        head_bytes = raw[:end]
        body = raw[end + 4:]
    else:
        m = _BLANK_LINE_RE.search(raw)
        if m is not None:
            head_bytes = raw[:m.start()]
            body = raw[m.end():]
        else:
            raise InvalidMessage("no blank line after the headers" if raw else "empty message")
    if not head_bytes:
        raise InvalidMessage("empty message")
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidMessage("header section is not valid UTF-8") from None
    lines = head.split("\r\n")
    n_lines = len(lines)
    # Any CR or LF left inside a line is a bare one (joining the lines and two memchr-based
    # searches cost a third of counting CRs and LFs over the header section).
    joined = "".join(lines)
    crlf_only = "\r" not in joined and "\n" not in joined
    if not crlf_only:
        # Bare LF line ends (tolerated), or a blank line that only LF-based splitting finds.
        if "\r" in head.replace("\r\n", ""):
            raise InvalidMessage("bare CR in the header section")
        m = _BLANK_LINE_RE.search(raw)
        if m is not None and m.start() < len(head_bytes):
            head_bytes = raw[:m.start()]
            body = raw[m.end():]
            try:
                head = head_bytes.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidMessage("header section is not valid UTF-8") from None
        lines = _LINE_SPLIT_RE.split(head)
    if len(head) > MAX_LINE_LENGTH:
        if len(lines[0]) > MAX_LINE_LENGTH:
            raise _start_line_too_long(lines[0])
        for line in lines:
            if len(line) > MAX_LINE_LENGTH:
                raise LineTooLong(f"line longer than {MAX_LINE_LENGTH}")

    start = lines[0]
    message: Request | Response
    first = start[:1]
    if (first == "S" or first == "s") and start[:4].upper() == "SIP/":
        message = _parse_status_line(start)
    else:
        message = _parse_request_line(start)
    del lines[0]

    # Header fields. The usual message (CRLF line ends, no folding, every name spelled as in
    # an earlier message) takes one loop: partition each line at its first ":" and look the
    # name up in _known_names, which only ever holds names that passed the token check, as
    # they were spelled (so a name with a leading SP/HTAB - a folded line - or any other
    # character outside a token is never found there). Anything else - a line without ":",
    # a name not seen before, folding, bare LF line ends - takes _header_items, the general
    # path, which checks, unfolds and reports exactly (and remembers the new spellings).
    items: list[tuple[str, str]] | None = None
    if crlf_only and n_lines <= MAX_NUM_HEADERS + 1:
        items = []
        append = items.append
        known = _known_names
        try:
            for line in lines:
                # Split at the usual ": " first: the value then needs no new string from
                # strip(). A name is a token (no ":"), so if the line has an earlier ":",
                # "name" holds it and is not in _known_names: the general path decides.
                name, colon, value = line.partition(": ")
                if not colon:
                    name, colon, value = line.partition(":")
                    if not colon:
                        raise KeyError(name)  # a line without ":": the general path reports it
                append((known[name], value.strip(" \t")))
        except KeyError:
            items = None
    if items is None:
        items = _header_items(lines, head)
    headers = _new(Headers)  # Headers._from_canonical(items), inlined
    headers._items = items
    views = headers._views = _new(_Views)
    message.headers = headers

    # The transaction-path headers (RFC 3261 §8.1.1: mandatory in every request).
    found = dict(items)
    via_values: list[str]
    if len(found) == len(items):  # no name repeats: one Via, and every single header once
        via = found.get("Via")
        via_values = [via] if via is not None else []
    else:
        names = list(map(_name, items))
        for name in _AT_MOST_ONCE:
            if names.count(name) > 1:
                raise InvalidMessage(f"more than one {name} header")
        via_values = [v for k, v in items if k == "Via"]
    if not via_values:
        raise InvalidMessage("missing mandatory header Via")
    try:
        from_value = found["From"]
        to_value = found["To"]
        call_id = found["Call-ID"]
        cseq_value = found["CSeq"]
    except KeyError:
        for name in _SINGLE:
            if name not in found:
                raise InvalidMessage(f"missing mandatory header {name}") from None
        raise

    # Checked here by one regex match each (the common shapes) or by the general grammar;
    # the structured objects are built from the matches when first read (see _Views).
    vm = _FAST_VIA_FULLMATCH(via_values[0]) if len(via_values) == 1 else None
    if vm is not None:
        views.via_m = [vm]
    else:
        _check_vias(views, via_values)
    if type(message) is Request:
        # A response's From and To are not on its transaction path (RFC 3261 §17.1.3 matches
        # on the top Via's branch and the CSeq method): they are checked when first read, or
        # by Message.check_from_to(), which the connection calls where a dialog needs them.
        _check_from_to(views, from_value, to_value)
    if not call_id:
        raise InvalidMessage("empty Call-ID")
    views.call_id = call_id
    # CSeq = 1*DIGIT LWS Method. The usual "<digits> <standard method>" is checked with
    # string methods (cheaper than a regex call); anything else goes through CSEQ_RE.
    seq_text, _, method = cseq_value.partition(" ")
    if not (
        method in _METHODS and len(seq_text) <= 10 and seq_text.isdigit() and seq_text.isascii()
    ):
        cm = _CSEQ_FULLMATCH(cseq_value)
        if cm is None:
            raise InvalidMessage(f"invalid CSeq: {excerpt(cseq_value)}")
        seq_text, method = cm.groups()
    seq = int(seq_text)
    if seq > 2**31 - 1:
        raise InvalidMessage(f"CSeq number too large: {seq_text}")
    cseq = _new(CSeq)  # new_cseq(seq, method), inlined: fill the frozen instance's dict
    fields = cseq.__dict__
    fields["seq"] = seq
    fields["method"] = method
    views.cseq = cseq
    if type(message) is Request and cseq.method != message.method:
        raise InvalidMessage(f"CSeq method {cseq.method} does not match {message.method}")

    clen = found.get("Content-Length")
    if clen is not None:
        if not (clen.isascii() and clen.isdigit()):
            raise InvalidMessage(f"invalid Content-Length {excerpt(clen, 20)}")
        length = int(clen)
        if length > len(body):
            raise InvalidMessage(
                f"Content-Length {length} exceeds the {len(body)} body bytes received"
            )
        if length < len(body):
            body = body[:length]
    message.body = body
    return message


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


def _check_from_to(views: _Views, from_value: str, to_value: str) -> None:
    """Check From and To (one regex match each, the general grammar otherwise) and keep what
    the check found; raises InvalidMessage."""
    nm = _FAST_NAME_ADDR_FULLMATCH(from_value)
    if nm is not None:
        views.from_m = nm
    else:
        views.from_ = _header_name_addr("From", from_value)
    nm = _FAST_NAME_ADDR_FULLMATCH(to_value)
    if nm is not None:
        views.to_m = nm
    else:
        views.to = _header_name_addr("To", to_value)


def _header_name_addr(name: str, value: str) -> NameAddr:
    """:func:`parse_name_addr`, with the header's name in the error."""
    try:
        return parse_name_addr(value)
    except InvalidMessage as exc:
        raise InvalidMessage(f"invalid {name} header: {exc}", status_hint=exc.status_hint) from None


_FAST_VIA_FULLMATCH = FAST_VIA_RE.fullmatch
_CSEQ_FULLMATCH = CSEQ_RE.fullmatch
_FAST_NAME_ADDR_FULLMATCH = FAST_NAME_ADDR_RE.fullmatch


def _header_items(lines: list[str], head: str) -> list[tuple[str, str]]:
    """The header lines as ``(canonical name, value)``: the general path of :func:`_parse`.

    Unfolds continuation lines, checks every name (a token) and the header count, and
    remembers each new valid spelling in ``_known_names`` for the fast path.
    """
    if "\n " in head or "\n\t" in head:
        lines = _unfold(lines)
    if len(lines) > MAX_NUM_HEADERS:
        raise TooManyHeaders(f"more than {MAX_NUM_HEADERS} headers")
    known = _known_names
    items = [
        (known.get(n) or _header_name(n), v.strip(" \t"))
        for n, c, v in map(str.partition, lines, _COLONS)
        if c
    ]
    if len(items) != len(lines):  # a line without ":"
        for line in lines:
            if ":" not in line:
                raise InvalidMessage(f"invalid header line {excerpt(line, 40)}")
    return items


def _check_vias(views: _Views, values: list[str]) -> None:
    """Check every Via value (several lines, or comma-joined) and keep what the check found.

    All fast-path matches: kept as matches (objects built on read); else every Via is
    parsed by the general grammar.
    """
    via_m: list[re.Match[str]] | None = []
    vias: list[Via] = []
    for value in values:
        vm = _FAST_VIA_FULLMATCH(value)
        if vm is not None and via_m is not None:
            via_m.append(vm)
            continue
        for part in split_header_values(value):
            vm = _FAST_VIA_FULLMATCH(part)
            if vm is not None and via_m is not None:
                via_m.append(vm)
            else:
                if via_m is not None:  # leave the fast path: parse every Via
                    vias = [via_from_match(x) for x in via_m]
                    via_m = None
                vias.append(parse_via(part))
    if via_m:
        views.via_m = via_m
    elif vias:
        views.vias = vias
    else:
        raise InvalidMessage("empty Via")


def _unfold(lines: list[str]) -> list[str]:
    """Undo RFC 3261 §7.3.1 line folding: a line starting with SP/HTAB continues the last."""
    out: list[str] = []
    for line in lines:
        if not line:
            raise InvalidMessage("empty line inside the header section")
        if line[0] == " " or line[0] == "\t":
            if not out:
                raise InvalidMessage("continuation line before any header")
            joined = out[-1].rstrip(" \t") + " " + line.strip(" \t")
            if len(joined) > MAX_LINE_LENGTH:
                raise LineTooLong(f"header line longer than {MAX_LINE_LENGTH}")
            out[-1] = joined
        else:
            out.append(line)
    return out


_METHODS = frozenset(
    {"ACK", "BYE", "CANCEL", "INFO", "INVITE", "MESSAGE", "NOTIFY", "OPTIONS", "PRACK",
     "PUBLISH", "REFER", "REGISTER", "SUBSCRIBE", "UPDATE"}
)


def _parse_request_line(line: str) -> Request:
    # Request-Line = Method SP Request-URI SP SIP-Version   (RFC 3261 §25.1: exactly one SP)
    parts = line.split(" ")
    if len(parts) != 3:
        raise InvalidMessage(f"invalid request line {excerpt(line, 80)}")
    method, uri_text, version = parts
    if method not in _METHODS and _METHOD_RE.fullmatch(method) is None:
        raise InvalidMessage(f"invalid method {excerpt(method, 40)}")
    if version != "SIP/2.0" and version.upper() != "SIP/2.0":
        if _VERSION_RE.fullmatch(version):
            raise InvalidMessage(f"unsupported version {excerpt(version, 20)}", status_hint=505)
        raise InvalidMessage(f"invalid request line {excerpt(line, 80)}")
    # Built without the dataclass __init__; _parse sets headers and body. (_uri defaults
    # to None on the class.)
    request = _new(Request)
    request.method = method
    m = _FAST_SIP_URI_FULLMATCH(uri_text)
    if m is not None:
        request._uri_m = m
    else:
        uri = parse_uri(uri_text)
        if isinstance(uri, SipURI) and uri.headers:
            # RFC 3261 §19.1.5: no headers in a Request-URI (RFC 4475 §3.1.2.11).
            raise InvalidMessage("Request-URI has URI headers")
        request._uri = uri
    return request


_FAST_SIP_URI_FULLMATCH = FAST_SIP_URI_RE.fullmatch


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
    response = _new(Response)  # _parse sets headers and body
    response.status = status
    response.reason = parts[2] if len(parts) == 3 else ""
    return response


def _as_bytes(data: bytes | bytearray | memoryview | str) -> bytes:
    if type(data) is bytes:
        return data
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def _load_c_parser() -> Callable[[bytes, bool], Request | Response | None] | None:
    """``_cmessage.parse`` with this module's classes and tables registered, or ``None``."""
    module = _speedups.load("_cmessage")
    if module is None:
        return None
    for name, obj in (
        ("Request", Request),
        ("Response", Response),
        ("Headers", Headers),
        ("Views", _Views),
        ("CSeq", CSeq),
        ("known_names", _known_names),
        ("full_checks", _FULL_CHECKS),
    ):
        module.register(name, obj)
    module.set_limits(MAX_MESSAGE_SIZE, MAX_LINE_LENGTH, MAX_NUM_HEADERS)
    global _c_parses_sdp
    try:  # a full parse parses an SDP body in the same call (else Message.sdp does it)
        module.register("sdp_parser", _sdp_parser())
        _c_parses_sdp = True
    except InvalidMessage:  # no SDP parser installed
        pass
    parse: Callable[[bytes, bool], Request | Response | None] = module.parse
    return parse


#: Whether the C message parser parses an SDP body in a full parse (see _load_c_parser).
_c_parses_sdp = False
#: The C message parser (see :mod:`exotel_voice.sip._speedups`), or ``None``.
_c_parse = _load_c_parser()
