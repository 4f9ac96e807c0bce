"""SIP header fields: a case-insensitive multi-dict, compact forms, and structured values.

:class:`Headers` keeps fields in wire order, matches names case-insensitively and expands
compact forms (``i`` → ``Call-ID``, RFC 3261 §7.3.3). Values are stored as text; structured
views (:class:`NameAddr`, :class:`Via`, :class:`CSeq`) are parsed on demand.

``repr(headers)`` shows ``[secure]`` for ``Authorization`` and ``Proxy-Authorization``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ..exceptions import InvalidMessage
from .uri import URI, SipURI, parse_uri


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

_canon_cache: dict[str, str] = {}


def canonical_name(name: str) -> str:
    """Return the canonical spelling of a header name (``call-id`` → ``Call-ID``, ``m`` → ``Contact``)."""
    cached = _canon_cache.get(name)
    if cached is not None:
        return cached
    lower = name.lower()
    if len(lower) == 1 and lower in COMPACT_FORMS:
        result = COMPACT_FORMS[lower]
    elif lower in _SPECIAL_CASE:
        result = _SPECIAL_CASE[lower]
    else:
        result = "-".join(part[:1].upper() + part[1:] for part in lower.split("-"))
    if len(_canon_cache) < 4096:
        _canon_cache[name] = result
    return result


def split_header_values(value: str) -> list[str]:
    """Split a comma-joined header value, ignoring commas inside quotes and ``<...>``."""
    if "," not in value:
        return [value.strip()]
    out: list[str] = []
    depth = 0
    quoted = False
    start = 0
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "<":
            depth += 1
        elif c == ">":
            depth = max(0, depth - 1)
        elif c == "," and depth == 0:
            out.append(value[start:i].strip())
            start = i + 1
        i += 1
    out.append(value[start:].strip())
    return [v for v in out if v]


class Headers:
    """An ordered, case-insensitive multi-dict of header fields.

    ``get``/``__getitem__`` return the first value; :meth:`get_all` returns every value,
    splitting comma-joined list headers (Via, Contact, Route ...).
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(canonical_name(k), v) for k, v in items]

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
        if key.lower() in _NO_SPLIT:
            return values
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

    def prepend(self, name: str, value: str) -> None:
        """Insert a field before every other (e.g. a new top Via)."""
        self._items.insert(0, (canonical_name(name), value))

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` with one value, keeping the first one's position."""
        key = canonical_name(name)
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

    def remove_first(self, name: str) -> None:
        """Remove the first value of ``name`` (e.g. the top Via of a forwarded response)."""
        key = canonical_name(name)
        for i, (k, v) in enumerate(self._items):
            if k == key:
                parts = split_header_values(v) if key.lower() not in _NO_SPLIT else [v]
                if len(parts) > 1:
                    self._items[i] = (k, ", ".join(parts[1:]))
                else:
                    del self._items[i]
                return

    def copy(self) -> Headers:
        """A shallow copy."""
        h = Headers()
        h._items = list(self._items)
        return h

    def __repr__(self) -> str:
        shown = [
            (k, "[secure]" if k.lower() in SENSITIVE_HEADERS else v) for k, v in self._items
        ]
        return f"Headers({shown!r})"


# --------------------------------------------------------------------------------------------
# Structured values
# --------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;name=value;flag`` generic parameters (leading ``;`` optional).

    Names are lower-cased; quoted values keep their quotes removed and escapes resolved.
    """
    params: dict[str, str | None] = {}
    i = 0
    n = len(text)
    while i < n:
        while i < n and text[i] in " \t;":
            i += 1
        if i >= n:
            break
        m = _TOKEN_RE.match(text, i)
        if m is None:
            raise InvalidMessage(f"invalid parameter near {text[i:i + 40]!r}")
        name = m.group(0).lower()
        i = m.end()
        while i < n and text[i] in " \t":
            i += 1
        value: str | None = None
        if i < n and text[i] == "=":
            i += 1
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] == '"':
                value, i = _read_quoted(text, i)
            else:
                start = i
                while i < n and text[i] not in ";, \t":
                    i += 1
                value = text[start:i]
                if not value:
                    raise InvalidMessage(f"empty value for parameter {name!r}")
        params[name] = value
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] != ";":
            raise InvalidMessage(f"invalid parameter list near {text[i:i + 40]!r}")
    return params


def _read_quoted(text: str, i: int) -> tuple[str, int]:
    """Read a quoted-string starting at ``text[i] == '"'``; return (unescaped, index after)."""
    out: list[str] = []
    i += 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 >= n:
                break
            out.append(text[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    raise InvalidMessage("unterminated quoted string")


def _format_params(params: dict[str, str | None]) -> str:
    out = []
    for k, v in params.items():
        if v is None:
            out.append(f";{k}")
        elif v == "" or any(c in v for c in ' \t;,"'):
            escaped = v.replace("\\", "\\\\").replace('"', '\\"')
            out.append(f';{k}="{escaped}"')
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
        name = ""
        if self.display_name is not None:
            escaped = self.display_name.replace("\\", "\\\\").replace('"', '\\"')
            name = f'"{escaped}" '
        return f"{name}<{self.uri}>{_format_params(self.params)}"


def parse_name_addr(text: str) -> NameAddr:
    """Parse ``"Name" <sip:a@b>;tag=x``, ``Name <sip:a@b>`` or ``sip:a@b;tag=x``.

    In the bare ``addr-spec`` form, parameters after the URI belong to the header
    (RFC 3261 §20.10), not to the URI.

    Raises:
        InvalidMessage: the text is not a name-addr or addr-spec.
    """
    s = text.strip()
    if s == "*":
        raise InvalidMessage("'*' is not a name-addr")
    display: str | None = None
    if s.startswith('"'):
        display, i = _read_quoted(s, 0)
        rest = s[i:].lstrip()
        if not rest.startswith("<"):
            raise InvalidMessage("quoted display name not followed by <URI>")
        s = rest
    lt = s.find("<")
    if lt != -1:
        if lt > 0:
            token = s[:lt].strip()
            display = token if display is None else display
            if token and not re.fullmatch(r"[A-Za-z0-9\-.!%*_+`'~ \t]+", token):
                raise InvalidMessage(f"invalid display name {token[:40]!r}")
        gt = s.find(">", lt)
        if gt == -1:
            raise InvalidMessage("unterminated <URI>")
        uri = parse_uri(s[lt + 1:gt].strip())
        params = parse_params(s[gt + 1:])
        return NameAddr(uri, display, params)
    semi = s.find(";")
    if semi == -1:
        return NameAddr(parse_uri(s), None, {})
    return NameAddr(parse_uri(s[:semi].strip()), None, parse_params(s[semi:]))


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


_VIA_RE = re.compile(
    r"^SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?:\s*:\s*([0-9]{1,5}))?\s*(.*)$",
    re.IGNORECASE | re.DOTALL,
)


def parse_via(text: str) -> Via:
    """Parse one Via value.

    Raises:
        InvalidMessage: the value is not a valid Via.
    """
    m = _VIA_RE.match(text.strip())
    if m is None:
        raise InvalidMessage(f"invalid Via: {text[:80]!r}")
    rest = m.group(4)
    if rest and not rest.startswith(";"):
        raise InvalidMessage(f"invalid Via: {text[:80]!r}")
    port = int(m.group(3)) if m.group(3) else None
    if port is not None and port > 65535:
        raise InvalidMessage(f"invalid Via port: {port}")
    return Via(m.group(1).upper(), m.group(2), port, parse_params(rest))


@dataclass(eq=True, frozen=True)
class CSeq:
    """A CSeq value: sequence number and method."""

    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


_CSEQ_RE = re.compile(r"^\s*([0-9]{1,10})\s+([A-Za-z0-9\-.!%*_+`'~]+)\s*$")


def parse_cseq(text: str) -> CSeq:
    """Parse a CSeq value.

    Raises:
        InvalidMessage: the value is not ``<number> <method>`` or the number exceeds 2**31-1.
    """
    m = _CSEQ_RE.match(text)
    if m is None:
        raise InvalidMessage(f"invalid CSeq: {text[:80]!r}")
    seq = int(m.group(1))
    if seq > 2**31 - 1:
        raise InvalidMessage(f"CSeq number too large: {seq}")
    return CSeq(seq, m.group(2))
