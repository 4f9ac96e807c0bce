"""SIP header fields: a case-insensitive multi-dict, compact forms, and structured values.

:class:`Headers` keeps fields in wire order, matches names case-insensitively and expands
compact forms (``i`` → ``Call-ID``, RFC 3261 §7.3.3). Values are stored as text; structured
views (:class:`NameAddr`, :class:`Via`, :class:`CSeq`) are parsed on demand.

``repr(headers)`` shows ``[secure]`` for ``Authorization`` and ``Proxy-Authorization``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ..exceptions import InvalidMessage
from .abnf import GEN_VALUE, PARAM_RE, QUOTED_PAIR_RE, QUOTED_STRING, TOKEN
from .uri import URI, SipURI, excerpt, parse_uri


__all__ = [
    "COMPACT_FORMS",
    "CSeq",
    "Headers",
    "NameAddr",
    "SENSITIVE_HEADERS",
    "Via",
    "canonical_name",
    "parse_cseq",
    "parse_name_addr",
    "parse_params",
    "parse_via",
    "split_header_values",
]

#: RFC 3261 §7.3.3 and later RFCs' compact forms.
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_SPECIAL_CASE = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
    "rack": "RAck",
    "rseq": "RSeq",
    "sip-etag": "SIP-ETag",
    "sip-if-match": "SIP-If-Match",
}

#: Header values that ``repr`` and logs never show.
SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization"})

#: Headers whose values may not be split on commas (RFC 3261 §7.3.1: they carry commas
#: inside unquoted values, or are not list-valued).
_NO_SPLIT = frozenset(
    {
        "www-authenticate",
        "authorization",
        "proxy-authenticate",
        "proxy-authorization",
        "date",
        "call-id",
        "cseq",
        "from",
        "to",
        "subject",
        "user-agent",
        "server",
        "content-length",
        "content-type",
        "max-forwards",
        "expires",
        "min-expires",
        "organization",
        "priority",
        "reply-to",
        "retry-after",
        "timestamp",
    }
)

@functools.lru_cache(maxsize=256)
def canonical_name(name: str) -> str:
    """Return the canonical spelling of a header name (memoised: a peer uses a few dozen).

    ``call-id`` → ``Call-ID``, ``m`` → ``Contact`` (compact forms, RFC 3261 §7.3.3),
    ``x-foo-bar`` → ``X-Foo-Bar``.
    """
    lower = name.lower()
    if len(lower) == 1 and lower in COMPACT_FORMS:
        return COMPACT_FORMS[lower]
    if lower in _SPECIAL_CASE:
        return _SPECIAL_CASE[lower]
    return "-".join(part[:1].upper() + part[1:] for part in lower.split("-"))


#: :data:`_NO_SPLIT` in canonical spelling (what :class:`Headers` stores).
_NO_SPLIT_CANONICAL = frozenset(canonical_name(n) for n in _NO_SPLIT)

# One list element: anything but "," / DQUOTE / "<", or a whole quoted-string, or a whole <URI>.
_ELEMENT_RE = re.compile(r'(?:[^,"<]+|"(?:[^"\\]|\\.)*"|<[^>]*>)*', re.DOTALL)


def split_header_values(value: str) -> list[str]:
    """Split a comma-joined header value (RFC 3261 §7.3.1).

    Commas inside quoted strings and inside ``<...>`` do not split. Empty elements are
    dropped. An unbalanced quote or ``<`` ends the splitting: the rest is returned as one
    element, for the structured parser to reject.

    Args:
        value: the header field value.

    Returns:
        The elements, stripped of surrounding whitespace.
    """
    out: list[str] = []
    pos = 0
    n = len(value)
    while True:
        m = _ELEMENT_RE.match(value, pos)
        end = m.end() if m is not None else pos
        if end < n and value[end] != ",":
            piece = value[pos:].strip()
            if piece:
                out.append(piece)
            return out
        piece = value[pos:end].strip()
        if piece:
            out.append(piece)
        if end >= n:
            return out
        pos = end + 1


class Headers:
    """An ordered, case-insensitive multi-dict of header fields.

    ``get``/``__getitem__`` return the first value; :meth:`get_all` returns every value,
    splitting comma-joined list headers (Via, Contact, Route ...).
    """

    __slots__ = ("_items", "_views")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(canonical_name(k), v) for k, v in items]
        #: Structured values parsed from these fields (see :class:`_Views`); dropped on
        #: every change, so they can never be stale.
        self._views: _Views | None = None

    @classmethod
    def _from_canonical(cls, items: list[tuple[str, str]]) -> Headers:
        """Wrap a list whose names are already canonical (no copy, no renaming)."""
        h = cls()
        h._items = items
        return h

    # -- reading -----------------------------------------------------------------------------
    def get(self, name: str, default: str | None = None) -> str | None:
        """Return the first value of ``name``, or ``default``."""
        key = canonical_name(name)
        for k, v in self._items:
            if k == key:
                return v
        return default

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def get_all(self, name: str) -> list[str]:
        """Return every value of ``name`` in order, splitting comma-joined list values."""
        key = canonical_name(name)
        values = [v for k, v in self._items if k == key]
        if not values or key in _NO_SPLIT_CANONICAL:
            return values
        if len(values) == 1:
            return split_header_values(values[0])
        out: list[str] = []
        for v in values:
            out.extend(split_header_values(v))
        return out

    def items(self) -> list[tuple[str, str]]:
        """Every field as ``(canonical name, value)``, in wire order."""
        return list(self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._items == other._items

    def to_dict(self) -> dict[str, str | list[str]]:
        """Every header name mapped to its raw value, or a list of values when repeated."""
        out: dict[str, str | list[str]] = {}
        for k, v in self._items:
            prev = out.get(k)
            if prev is None:
                out[k] = v
            elif isinstance(prev, list):
                prev.append(v)
            else:
                out[k] = [prev, v]
        return out

    # -- writing -----------------------------------------------------------------------------
    def add(self, name: str, value: str) -> None:
        """Append a field."""
        self._items.append((canonical_name(name), value))
        self._views = None

    def prepend(self, name: str, value: str) -> None:
        """Insert a field before every other (e.g. a new top Via)."""
        self._items.insert(0, (canonical_name(name), value))
        self._views = None

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` with one value, keeping the first one's position."""
        key = canonical_name(name)
        self._views = None
        for i, (k, _) in enumerate(self._items):
            if k == key:
                self._items[i] = (key, value)
                self._items[i + 1:] = [(kk, vv) for kk, vv in self._items[i + 1:] if kk != key]
                return
        self._items.append((key, value))

    def remove(self, name: str) -> None:
        """Remove every value of ``name``."""
        key = canonical_name(name)
        self._items = [(k, v) for k, v in self._items if k != key]
        self._views = None

    def remove_first(self, name: str) -> None:
        """Remove the first value of ``name`` (e.g. the top Via of a forwarded response)."""
        key = canonical_name(name)
        self._views = None
        for i, (k, v) in enumerate(self._items):
            if k == key:
                parts = split_header_values(v) if key not in _NO_SPLIT_CANONICAL else [v]
                if len(parts) > 1:
                    self._items[i] = (k, ", ".join(parts[1:]))
                else:
                    del self._items[i]
                return

    def copy(self) -> Headers:
        """A shallow copy."""
        return Headers._from_canonical(list(self._items))

    def __repr__(self) -> str:
        shown = [
            (k, "[secure]" if k.lower() in SENSITIVE_HEADERS else v) for k, v in self._items
        ]
        return f"Headers({shown!r})"


# --------------------------------------------------------------------------------------------
# Structured values
# --------------------------------------------------------------------------------------------

def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;name=value;flag`` generic parameters (RFC 3261 §25.1 ``generic-param``).

    The leading ``;`` is optional. Whitespace is allowed around ``;`` and ``=``. Names are
    lower-cased; a parameter without ``=`` maps to ``None``; a quoted value is returned
    without its quotes and with quoted-pairs resolved.

    Args:
        text: the parameter list.

    Returns:
        The parameters, in order.

    Raises:
        InvalidMessage: an empty parameter, a value that is neither token, host nor
            quoted-string, or trailing garbage.
    """
    if not text:
        return {}
    if text[0] != ";":
        stripped = text.lstrip(" \t")
        if not stripped:
            return {}
        if stripped[0] != ";":
            text = ";" + stripped
    params: dict[str, str | None] = {}
    pos = 0
    while pos < len(text):
        m = PARAM_RE.match(text, pos)
        if m is None:
            raise InvalidMessage(f"invalid parameter list at offset {pos} in {excerpt(text)}")
        name, value, quoted = m.groups()
        if quoted is not None:
            value = quoted[1:-1]
            if "\\" in value:
                value = QUOTED_PAIR_RE.sub(_unescape_pair, value)
        params[name.lower()] = value
        pos = m.end()
    return params


def _unescape_pair(m: re.Match[str]) -> str:
    return m.group(1)


_GEN_VALUE_RE = re.compile(GEN_VALUE)
# Characters a quoted-string must carry as a quoted-pair: DQUOTE, "\" and controls but HTAB.
_QUOTE_UNSAFE = re.compile(r'["\\\x00-\x08\x0b\x0c\x0e-\x1f\x7f]')


def _quote(value: str) -> str:
    """Format ``value`` as a quoted-string (RFC 3261 §25.1)."""
    return '"' + _QUOTE_UNSAFE.sub(lambda m: "\\" + m.group(), value) + '"'


def _format_params(params: dict[str, str | None]) -> str:
    out = []
    for k, v in params.items():
        if v is None:
            out.append(f";{k}")
        elif _GEN_VALUE_RE.fullmatch(v) is None:
            out.append(f";{k}={_quote(v)}")
        else:
            out.append(f";{k}={v}")
    return "".join(out)


@dataclass(eq=True)
class NameAddr:
    """A ``name-addr`` or ``addr-spec`` with header parameters (From, To, Contact, Route ...).

    Attributes:
        uri: the URI.
        display_name: the display name (unquoted), or ``None``.
        params: header parameters such as ``tag`` or ``expires``.
    """

    uri: URI
    display_name: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter."""
        return self.params.get("tag")

    @property
    def sip_uri(self) -> SipURI:
        """The URI as a :class:`SipURI`; raises :class:`InvalidMessage` for other schemes."""
        if not isinstance(self.uri, SipURI):
            raise InvalidMessage(f"expected a SIP URI, got {self.uri.scheme}:")
        return self.uri

    def __str__(self) -> str:
        name = "" if self.display_name is None else _quote(self.display_name) + " "
        return f"{name}<{self.uri}>{_format_params(self.params)}"

    def copy(self) -> NameAddr:
        """Return a deep copy (the URI and the parameter dict are copied too)."""
        uri = self.uri.copy() if isinstance(self.uri, SipURI) else self.uri
        return NameAddr(uri, self.display_name, dict(self.params))


# name-addr = [ display-name ] LAQUOT addr-spec RAQUOT ; display-name = *(token LWS) / quoted-string
# Groups: 1 quoted display name (with quotes), 2 token display name, 3 URI, 4 parameters.
_NAME_ADDR_RE = re.compile(
    r"[ \t]*(?:(" + QUOTED_STRING + r")[ \t]*|(" + TOKEN + r"(?:[ \t]+" + TOKEN + r")*)?[ \t]*)"
    r"<([^<>]*)>(.*)",
    re.DOTALL,
)


def parse_name_addr(text: str) -> NameAddr:
    """Parse ``"Name" <sip:a@b>;tag=x``, ``Name <sip:a@b>`` or ``sip:a@b;tag=x``.

    In the bare ``addr-spec`` form, parameters after the URI belong to the header
    (RFC 3261 §20.10), not to the URI, and the URI may not contain ``?`` or ``,``.

    Args:
        text: one header value (From, To, Contact, Route ...).

    Returns:
        The parsed value.

    Raises:
        InvalidMessage: the text is not a name-addr or addr-spec.
    """
    m = _NAME_ADDR_RE.match(text)
    if m is not None:
        quoted, token, uri_text, rest = m.groups()
        display: str | None
        if quoted is not None:
            display = quoted[1:-1]
            if "\\" in display:
                display = QUOTED_PAIR_RE.sub(_unescape_pair, display)
        else:
            display = token
        rest = rest.lstrip(" \t")
        if rest and rest[0] != ";":
            raise InvalidMessage(f"unexpected text after <URI> in {excerpt(text)}")
        return NameAddr(parse_uri(uri_text), display, parse_params(rest) if rest else {})
    s = text.strip(" \t")
    if not s or s[0] in "<\"" or "<" in s:
        raise InvalidMessage(f"invalid name-addr {excerpt(text)}")
    at = s.find("@")
    semi = s.find(";", at + 1 if at != -1 else 0)
    uri_text = s if semi == -1 else s[:semi].rstrip(" \t")
    if "?" in uri_text or "," in uri_text:
        raise InvalidMessage(f"a URI with '?' or ',' must be in <>: {excerpt(text)}")
    uri = parse_uri(uri_text)
    return NameAddr(uri, None, {} if semi == -1 else parse_params(s[semi:]))


@dataclass(eq=True)
class Via:
    """A Via header value (RFC 3261 §20.42).

    Attributes:
        transport: e.g. ``"WSS"``, ``"UDP"`` (upper case).
        host: sent-by host (IPv6 in brackets).
        port: sent-by port, or ``None``.
        params: ``branch``, ``received``, ``rport`` ...
    """

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def branch(self) -> str | None:
        """The ``branch`` parameter."""
        return self.params.get("branch")

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{_format_params(self.params)}"

    def copy(self) -> Via:
        """Return a copy with its own parameter dict."""
        return Via(self.transport, self.host, self.port, dict(self.params))


# via-parm = sent-protocol LWS sent-by *( SEMI via-params )
# sent-protocol = protocol-name SLASH protocol-version SLASH transport
# sent-by = host [ COLON port ]
_VIA_RE = re.compile(
    r"[ \t]*SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*(" + TOKEN + r")[ \t]+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?:[ \t]*:[ \t]*([0-9]{1,5}))?[ \t]*(;.*)?",
    re.IGNORECASE | re.DOTALL,
)


def parse_via(text: str) -> Via:
    """Parse one Via value (RFC 3261 §20.42); only ``SIP/2.0`` is accepted.

    Args:
        text: one Via value (after :func:`split_header_values`).

    Returns:
        The parsed Via; the transport is upper-cased.

    Raises:
        InvalidMessage: the value is not a valid Via.
    """
    m = _VIA_RE.fullmatch(text)
    if m is None:
        raise InvalidMessage(f"invalid Via: {excerpt(text)}")
    transport, host, port_text, rest = m.groups()
    port: int | None = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise InvalidMessage(f"invalid Via port: {port}")
    return Via(transport.upper(), host, port, parse_params(rest) if rest else {})


@dataclass(eq=True, frozen=True)
class CSeq:
    """A CSeq value: sequence number and method."""

    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


#: CSeq = 1*DIGIT LWS Method (RFC 3261 §20.16). Groups: 1 number, 2 method.
_CSEQ_RE = re.compile(r"[ \t]*([0-9]{1,10})[ \t]+(" + TOKEN + r")[ \t]*")


def parse_cseq(text: str) -> CSeq:
    """Parse a CSeq value.

    Raises:
        InvalidMessage: the value is not ``<number> <method>`` or the number exceeds 2**31-1.
    """
    m = _CSEQ_RE.fullmatch(text)
    if m is None:
        raise InvalidMessage(f"invalid CSeq: {excerpt(text)}")
    seq = int(m.group(1))
    if seq > 2**31 - 1:
        raise InvalidMessage(f"CSeq number too large: {seq}")
    return CSeq(seq, m.group(2))


class _Views:
    """Structured values of one :class:`Headers`, parsed once (``Headers._views``).

    :class:`~exotel_voice.sip.message.Message` keeps here what it parsed; every change to
    the headers drops the whole object, so a value here is never stale. The message hands
    out copies, never these objects.
    """

    def __init__(self) -> None:
        self.vias: list[Via] | None = None
        self.from_: NameAddr | None = None
        self.to: NameAddr | None = None
        self.cseq: CSeq | None = None
