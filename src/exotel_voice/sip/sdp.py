"""Session Description Protocol (RFC 8866): parse, inspect, change and serialize.

Enough of SDP for WebRTC audio over SIP: every line type of RFC 8866 §5 is kept, in order,
so ``parse_sdp(str(sdp)) == sdp``; attributes are kept verbatim (``a=ssrc``, ``a=msid``,
``a=extmap`` ... are not interpreted) and typed views are computed on demand:
ICE (RFC 8839), DTLS fingerprint and setup (RFC 8122, RFC 8842), ``mid`` and ``BUNDLE``
(RFC 9143), ``rtpmap``/``fmtp`` (RFC 8866 §6.6, §6.15), ``rtcp-mux`` (RFC 5761),
direction attributes (RFC 8866 §6.7) and ``telephone-event`` (RFC 4733).

The parser is line based (``split``/``partition``, no per-character loop) because it sits
on the call set-up path next to the SIP parser. It raises
:class:`~exotel_voice.exceptions.InvalidSDP` and nothing else.

An optional C accelerator, ``exotel_voice.sip._csdp`` (built by ``setup.py`` when a C
compiler is there; ``EXOTEL_VOICE_NO_SPEEDUPS=1`` turns it off), parses the common subset
(ASCII, no control characters but the line ends, valid SDP) into the very same objects and
declines everything else. The Python code here is the reference: it parses whatever the
accelerator declines, including every error, and ``tests/sip/test_speedups_sdp.py`` checks
the accelerator against it.

``repr`` of any object here masks ``a=ice-pwd``, ``a=crypto`` keys, ``a=key-mgmt`` and
``k=`` lines; ``str`` of a :class:`SessionDescription` is the wire form, secrets included.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from ..exceptions import InvalidSDP
from . import _speedups
from .uri import excerpt


__all__ = [
    "DIRECTIONS",
    "STATIC_PAYLOAD_TYPES",
    "Attribute",
    "Bandwidth",
    "Candidate",
    "Connection",
    "Fingerprint",
    "MediaDescription",
    "Origin",
    "RtpMap",
    "SessionDescription",
    "Timing",
    "parse_candidate",
    "parse_sdp",
    "reverse_direction",
]

#: RFC 8866 §6.7 direction attributes.
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_DIRECTION_SET = frozenset(DIRECTIONS)

_SECRET_ATTRIBUTES = frozenset({"ice-pwd", "key-mgmt"})
_CRYPTO_KEY_RE = re.compile(r"inline:[^;\s]*")


class RtpMap(NamedTuple):
    """An ``a=rtpmap`` value (RFC 8866 §6.6): ``<encoding>/<clock rate>[/<channels>]``."""

    encoding: str
    clock_rate: int
    channels: int | None = None


#: RFC 3551 §6 Table 4 static audio payload types, used when a format has no ``a=rtpmap``.
STATIC_PAYLOAD_TYPES: dict[int, RtpMap] = {
    0: RtpMap("PCMU", 8000, 1),
    3: RtpMap("GSM", 8000, 1),
    4: RtpMap("G723", 8000, 1),
    8: RtpMap("PCMA", 8000, 1),
    9: RtpMap("G722", 8000, 1),
    13: RtpMap("CN", 8000, 1),
    18: RtpMap("G729", 8000, 1),
}


class Fingerprint(NamedTuple):
    """An ``a=fingerprint`` value (RFC 8122 §5): hash function and colon-hex value."""

    hash: str
    value: str


@dataclass
class Attribute:
    """One ``a=`` line: ``a=<name>`` (flag, ``value is None``) or ``a=<name>:<value>``.

    ``repr`` masks ``ice-pwd``, ``key-mgmt`` and the key material of ``crypto``.
    """

    name: str
    value: str | None = None

    def __repr__(self) -> str:
        value = self.value
        if value is not None:
            if self.name in _SECRET_ATTRIBUTES:
                value = "[secure]"
            elif self.name == "crypto":
                value = _CRYPTO_KEY_RE.sub("inline:[secure]", value)
        return f"Attribute({self.name!r}, {value!r})"

    def line(self) -> str:
        """The attribute as it appears on the wire, without CRLF (``a=rtcp-mux``)."""
        return f"a={self.name}" if self.value is None else f"a={self.name}:{self.value}"


@dataclass
class Origin:
    """The ``o=`` line (RFC 8866 §5.2)."""

    username: str = "-"
    session_id: str = "0"
    session_version: int = 0
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "127.0.0.1"


@dataclass
class Connection:
    """A ``c=`` line (RFC 8866 §5.7); ``address`` keeps any ``/ttl/count`` suffix."""

    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"


@dataclass
class Bandwidth:
    """A ``b=<type>:<kbps>`` line (RFC 8866 §5.8), e.g. ``b=AS:64`` or ``b=TIAS:64000``."""

    type: str
    value: int


@dataclass
class Timing:
    """A ``t=`` line (RFC 8866 §5.9) with its ``r=`` repeat lines kept verbatim."""

    start: int = 0
    stop: int = 0
    repeats: list[str] = field(default_factory=list)


@dataclass
class Candidate:
    """An ICE candidate (RFC 8839 §5.1), the value of ``a=candidate:``.

    Attributes:
        foundation: the foundation string.
        component: 1 for RTP, 2 for RTCP.
        transport: ``"udp"``/``"tcp"`` as written (case kept).
        priority: the candidate priority.
        ip: the connection address (an IP or an mDNS ``.local`` name).
        port: the port.
        type: ``host``, ``srflx``, ``prflx`` or ``relay``.
        raddr: the related address, if any.
        rport: the related port, if any.
        extensions: the remaining ``name value`` pairs in order
            (``generation``, ``ufrag``, ``network-id``, ``tcptype`` ...).
    """

    foundation: str
    component: int
    transport: str
    priority: int
    ip: str
    port: int
    type: str
    raddr: str | None = None
    rport: int | None = None
    extensions: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = [
            self.foundation,
            str(self.component),
            self.transport,
            str(self.priority),
            self.ip,
            str(self.port),
            "typ",
            self.type,
        ]
        if self.raddr is not None:
            parts += ["raddr", self.raddr]
        if self.rport is not None:
            parts += ["rport", str(self.rport)]
        for name, value in self.extensions.items():
            parts += [name, value]
        return " ".join(parts)


def parse_candidate(value: str) -> Candidate:
    """Parse the value of an ``a=candidate:`` attribute (RFC 8839 §5.1).

    Args:
        value: e.g. ``"842163049 1 udp 1677729535 192.0.2.1 55440 typ srflx raddr 10.0.0.1
            rport 55440 generation 0"``; a leading ``candidate:`` is accepted.

    Returns:
        The parsed :class:`Candidate`.

    Raises:
        InvalidSDP: fewer than eight fields, no ``typ``, non-numeric numbers, or an
            extension name without a value.
    """
    if value.startswith("candidate:"):
        value = value[10:]
    tokens = value.split()
    if len(tokens) < 8 or tokens[6] != "typ":
        raise InvalidSDP(f"invalid ICE candidate {excerpt(value, 80)}")
    try:
        component = int(tokens[1])
        priority = int(tokens[3])
        port = int(tokens[5])
    except ValueError:
        raise InvalidSDP(f"invalid number in ICE candidate {excerpt(value, 80)}") from None
    rest = tokens[8:]
    if len(rest) % 2:
        raise InvalidSDP(f"ICE candidate extension without value in {excerpt(value, 80)}")
    raddr: str | None = None
    rport: int | None = None
    extensions: dict[str, str] = {}
    for i in range(0, len(rest), 2):
        name, ext = rest[i], rest[i + 1]
        if name == "raddr":
            raddr = ext
        elif name == "rport":
            try:
                rport = int(ext)
            except ValueError:
                raise InvalidSDP(f"invalid rport in ICE candidate {excerpt(value, 80)}") from None
        else:
            extensions[name] = ext
    return Candidate(
        tokens[0], component, tokens[2], priority, tokens[4], port, tokens[7], raddr, rport,
        extensions,
    )


def reverse_direction(direction: str) -> str:
    """The answerer's direction for an offered one (RFC 3264 §6.1): sendonly ↔ recvonly."""
    return {"sendonly": "recvonly", "recvonly": "sendonly"}.get(direction, direction)


class _Attributes:
    """Attribute look-ups shared by the session and media levels."""

    attributes: list[Attribute]

    def get(self, name: str) -> str | None:
        """The value of the first ``a=<name>``; ``""`` for a flag; ``None`` if absent."""
        for a in self.attributes:
            if a.name == name:
                return a.value if a.value is not None else ""
        return None

    def get_all(self, name: str) -> list[str]:
        """Every value of ``a=<name>``, in order (``""`` for flags)."""
        return [a.value if a.value is not None else "" for a in self.attributes if a.name == name]

    def has(self, name: str) -> bool:
        """Whether an ``a=<name>`` line is present."""
        return any(a.name == name for a in self.attributes)

    @property
    def direction(self) -> str | None:
        """The direction attribute at this level, or ``None`` when absent.

        See :meth:`SessionDescription.effective_direction` for the value that applies.
        """
        for a in self.attributes:
            if a.name in _DIRECTION_SET and a.value is None:
                return a.name
        return None

    @property
    def ice_ufrag(self) -> str | None:
        """``a=ice-ufrag`` at this level (RFC 8839 §5.4)."""
        return self.get("ice-ufrag")

    @property
    def ice_pwd(self) -> str | None:
        """``a=ice-pwd`` at this level (RFC 8839 §5.4); a secret, never logged."""
        return self.get("ice-pwd")

    @property
    def fingerprint(self) -> Fingerprint | None:
        """The first ``a=fingerprint`` at this level (RFC 8122 §5)."""
        value = self.get("fingerprint")
        if not value:
            return None
        hash_name, _, fp = value.partition(" ")
        return Fingerprint(hash_name.lower(), fp.strip())

    @property
    def setup(self) -> str | None:
        """``a=setup`` at this level: ``actpass``, ``active``, ``passive`` (RFC 4145 §4)."""
        return self.get("setup")

    def _set_direction(self, direction: str) -> None:
        for i, a in enumerate(self.attributes):
            if a.name in _DIRECTION_SET and a.value is None:
                self.attributes[i] = Attribute(direction)
                # RFC 8866 §6.7: at most one direction attribute per level.
                self.attributes[i + 1:] = [
                    b
                    for b in self.attributes[i + 1:]
                    if not (b.name in _DIRECTION_SET and b.value is None)
                ]
                return
        self.attributes.append(Attribute(direction))


@dataclass
class MediaDescription(_Attributes):
    """One media section: an ``m=`` line and the lines after it (RFC 8866 §5.14).

    Attributes:
        kind: ``audio``, ``video``, ``application`` ...
        port: the transport port (``9`` in WebRTC offers, ``0`` for a rejected stream).
        port_count: the ``/<number of ports>`` suffix, or ``None``.
        proto: e.g. ``UDP/TLS/RTP/SAVPF`` or ``RTP/AVP``.
        formats: the media formats (RTP payload types as strings).
        information: the ``i=`` line, if any.
        connection: the ``c=`` line, if any.
        bandwidths: the ``b=`` lines.
        encryption_key: the ``k=`` line, if any (obsolete; masked by ``repr``).
        attributes: the ``a=`` lines, in order.
    """

    kind: str = "audio"
    port: int = 9
    port_count: int | None = None
    proto: str = "UDP/TLS/RTP/SAVPF"
    formats: list[str] = field(default_factory=list)
    information: str | None = None
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    encryption_key: str | None = field(default=None, repr=False)
    attributes: list[Attribute] = field(default_factory=list)

    @property
    def mid(self) -> str | None:
        """``a=mid`` (RFC 5888 §4)."""
        return self.get("mid")

    @property
    def rtcp_mux(self) -> bool:
        """Whether ``a=rtcp-mux`` is present (RFC 5761 §5.1.1)."""
        return self.has("rtcp-mux")

    @property
    def candidates(self) -> list[Candidate]:
        """The ``a=candidate`` lines, parsed; malformed ones are skipped (RFC 8839 §5.1
        lets an agent ignore candidates it cannot use)."""
        out: list[Candidate] = []
        for a in self.attributes:
            if a.name == "candidate" and a.value is not None:
                try:
                    out.append(parse_candidate(a.value))
                except InvalidSDP:
                    continue
        return out

    @property
    def rtpmaps(self) -> dict[int, RtpMap]:
        """Payload type → :class:`RtpMap`, in ``m=`` format order.

        Formats without ``a=rtpmap`` get their RFC 3551 static mapping (``0`` → PCMU).
        Only payload types listed on the ``m=`` line are included.
        """
        explicit: dict[int, RtpMap] = {}
        for a in self.attributes:
            if a.name == "rtpmap" and a.value:
                pt_text, _, spec = a.value.partition(" ")
                parts = spec.strip().split("/")
                try:
                    explicit[int(pt_text)] = RtpMap(
                        parts[0],
                        int(parts[1]),
                        int(parts[2]) if len(parts) > 2 and parts[2] else None,
                    )
                except (ValueError, IndexError):
                    continue
        out: dict[int, RtpMap] = {}
        for fmt in self.formats:
            if not _is_num(fmt):
                continue
            pt = int(fmt)
            rtpmap = explicit.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)
            if rtpmap is not None:
                out[pt] = rtpmap
        return out

    @property
    def fmtp(self) -> dict[int, str]:
        """Payload type → its ``a=fmtp`` parameters string (RFC 8866 §6.15)."""
        out: dict[int, str] = {}
        for a in self.attributes:
            if a.name == "fmtp" and a.value:
                pt, _, params = a.value.partition(" ")
                if _is_num(pt):
                    out[int(pt)] = params.strip()
        return out

    @property
    def codec_names(self) -> list[str]:
        """Encoding names in preference (``m=`` line) order, e.g. ``["opus", "PCMU"]``."""
        return [r.encoding for r in self.rtpmaps.values()]

    @property
    def telephone_event(self) -> int | None:
        """The first ``telephone-event`` payload type (RFC 4733 §7.1.1), or ``None``."""
        for pt, r in self.rtpmaps.items():
            if r.encoding.lower() == "telephone-event":
                return pt
        return None

    def telephone_event_for(self, clock_rate: int) -> int | None:
        """The ``telephone-event`` payload type with this clock rate (RFC 4733 §2.5.1.2:
        events use the clock rate of the audio codec), or ``None``."""
        for pt, r in self.rtpmaps.items():
            if r.encoding.lower() == "telephone-event" and r.clock_rate == clock_rate:
                return pt
        return None

    def lines(self) -> list[str]:
        """The media section as wire lines, without line endings."""
        port = self.port if self.port_count is None else f"{self.port}/{self.port_count}"
        out = [" ".join([f"m={self.kind}", str(port), self.proto, *self.formats])]
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.connection is not None:
            c = self.connection
            out.append(f"c={c.nettype} {c.addrtype} {c.address}")
        for b in self.bandwidths:
            out.append(f"b={b.type}:{b.value}")
        if self.encryption_key is not None:
            out.append(f"k={self.encryption_key}")
        for a in self.attributes:
            out.append(f"a={a.name}" if a.value is None else f"a={a.name}:{a.value}")
        return out


@dataclass
class SessionDescription(_Attributes):
    """A parsed SDP session description (RFC 8866 §5).

    Attributes:
        version: ``v=`` (always 0).
        origin: ``o=``.
        session_name: ``s=`` (``"-"`` in WebRTC).
        connection: the session-level ``c=``, if any.
        timing: the ``t=`` lines (each with its ``r=`` lines).
        bandwidths: session-level ``b=`` lines.
        attributes: session-level ``a=`` lines, in order.
        media: the media sections, in order.
        information: ``i=``, if any.
        uri: ``u=``, if any.
        emails: ``e=`` lines.
        phones: ``p=`` lines.
        time_zones: ``z=``, if any.
        encryption_key: session-level ``k=``, if any (masked by ``repr``).
    """

    version: int = 0
    origin: Origin = field(default_factory=Origin)
    session_name: str = "-"
    connection: Connection | None = None
    timing: list[Timing] = field(default_factory=lambda: [Timing()])
    bandwidths: list[Bandwidth] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    information: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    time_zones: str | None = None
    encryption_key: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        o = self.origin
        out = [
            f"v={self.version}",
            f"o={o.username} {o.session_id} {o.session_version} {o.nettype} {o.addrtype} "
            f"{o.address}",
            f"s={self.session_name}",
        ]
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.uri is not None:
            out.append(f"u={self.uri}")
        out.extend(f"e={e}" for e in self.emails)
        out.extend(f"p={p}" for p in self.phones)
        if self.connection is not None:
            c = self.connection
            out.append(f"c={c.nettype} {c.addrtype} {c.address}")
        out.extend(f"b={b.type}:{b.value}" for b in self.bandwidths)
        for t in self.timing:
            out.append(f"t={t.start} {t.stop}")
            out.extend(f"r={r}" for r in t.repeats)
        if self.time_zones is not None:
            out.append(f"z={self.time_zones}")
        if self.encryption_key is not None:
            out.append(f"k={self.encryption_key}")
        for a in self.attributes:
            out.append(f"a={a.name}" if a.value is None else f"a={a.name}:{a.value}")
        for m in self.media:
            out.extend(m.lines())
        return "\r\n".join(out) + "\r\n"

    def __bytes__(self) -> bytes:
        return str(self).encode("utf-8")

    @property
    def bundle(self) -> list[str]:
        """The mids of the first ``a=group:BUNDLE`` (RFC 9143 §7.1), or ``[]``."""
        for value in self.get_all("group"):
            semantics, _, mids = value.partition(" ")
            if semantics.upper() == "BUNDLE":
                return mids.split()
        return []

    def effective_direction(self, media_index: int) -> str:
        """The direction that applies to one media section (RFC 8866 §6.7).

        The media-level attribute wins, then the session-level one, else ``sendrecv``.

        Raises:
            IndexError: no media section with that index.
        """
        return self.media[media_index].direction or self.direction or "sendrecv"

    def effective_value(self, media_index: int, name: str) -> str | None:
        """``a=<name>`` from a media section, falling back to the session level.

        For attributes that may appear at both levels: ``ice-ufrag``, ``ice-pwd``,
        ``fingerprint``, ``setup``, ``ice-options`` (RFC 8839 §5.4, RFC 8122 §5).
        """
        value = self.media[media_index].get(name)
        return value if value is not None else self.get(name)

    def effective_fingerprint(self, media_index: int) -> Fingerprint | None:
        """The DTLS fingerprint for a media section, media level first (RFC 8122 §5)."""
        return self.media[media_index].fingerprint or self.fingerprint

    def copy(self) -> SessionDescription:
        """A deep copy."""
        return copy.deepcopy(self)

    def with_direction(
        self, direction: str, media_index: int | None = None
    ) -> SessionDescription:
        """A copy with a new direction, e.g. ``sendonly`` for hold (RFC 3264 §8.4).

        The media-level direction attribute is replaced in place (or appended). With
        ``media_index=None`` every media section changes, and a session-level direction
        attribute, if present, is changed too so the levels agree. The origin version is
        *not* changed: call :meth:`with_next_version` when this becomes a new offer.

        Args:
            direction: ``sendrecv``, ``sendonly``, ``recvonly`` or ``inactive``.
            media_index: which media section to change; ``None`` for all.

        Raises:
            ValueError: ``direction`` is not one of the four.
            IndexError: no media section with that index.
        """
        if direction not in _DIRECTION_SET:
            raise ValueError(f"invalid SDP direction {direction!r}; expected one of {DIRECTIONS}")
        new = self.copy()
        if media_index is None:
            if new.direction is not None:
                new._set_direction(direction)
            for m in new.media:
                m._set_direction(direction)
        else:
            new.media[media_index]._set_direction(direction)
        return new

    def with_next_version(self) -> SessionDescription:
        """A copy with ``o=`` session version + 1 (RFC 3264 §8: a changed offer MUST)."""
        new = self.copy()
        new.origin.session_version += 1
        return new

    def __repr__(self) -> str:
        # The dataclass repr would be fine (Attribute masks itself), but it is huge; keep
        # it short and useful.
        media = ", ".join(
            f"{m.kind} {m.port} {m.proto} {m.codec_names}" for m in self.media
        )
        return (
            f"SessionDescription(origin={self.origin!r}, attributes={self.attributes!r}, "
            f"media=[{media}])"
        )


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------

_SESSION_ONLY = frozenset("vostrzuep")
_new = object.__new__


def _is_num(text: str) -> bool:
    return text.isascii() and text.isdigit()


def parse_sdp(text: str | bytes) -> SessionDescription:
    """Parse an SDP session description.

    Lines may end in CRLF or LF; blank lines are ignored. Line types that RFC 8866 does
    not define are rejected (RFC 8866 §5: a parser "MUST completely ignore or reject").

    Args:
        text: the SDP body, as text or UTF-8 bytes.

    Returns:
        The parsed :class:`SessionDescription`.

    Raises:
        InvalidSDP: the text is not valid SDP; the message names the line number and what
            is wrong. Nothing else is raised.
    """
    if _fast_parse is not None:
        sdp = _fast_parse(text)
        if sdp is not None:
            return sdp
    try:
        return _parse_sdp_python(text)
    except ValueError:  # int() on a number past CPython's 4300-digit limit
        raise InvalidSDP("SDP has a number too long to convert") from None


def _parse_sdp_python(text: str | bytes) -> SessionDescription:
    """:func:`parse_sdp` in pure Python: the reference, and the fallback of the C parser."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidSDP("SDP is not valid UTF-8") from None
    if "\r" in text:
        # CRLF or LF line ends; only the CR of a CRLF goes (a lone CR stays in its line).
        text = text.replace("\r\n", "\n")
        if text.endswith("\r"):
            text = text[:-1]
    lines = text.split("\n")
    if not lines[0].startswith("v="):
        raise InvalidSDP("SDP must start with a v= line")
    sdp = SessionDescription(timing=[])
    media: MediaDescription | None = None
    attributes = sdp.attributes
    seen_origin = seen_name = False
    new = _new
    for lineno, line in enumerate(lines, 1):
        if line[1:2] != "=":
            if not line:
                continue
            raise InvalidSDP(f"line {lineno}: expected <type>=<value>, got {excerpt(line, 40)}")
        kind = line[0]
        if kind == "a":  # most lines: one partition, one object (no dataclass __init__)
            name, sep, avalue = line[2:].partition(":")
            if not name:
                raise InvalidSDP(f"line {lineno}: empty attribute name")
            attr = new(Attribute)
            attr.name = name
            attr.value = avalue if sep else None
            attributes.append(attr)
            continue
        value = line[2:]
        if kind == "m":
            media = _parse_media(value, lineno)
            sdp.media.append(media)
            attributes = media.attributes
        elif kind == "c":
            conn = _parse_connection(value, lineno)
            if media is not None:
                if media.connection is not None:
                    raise InvalidSDP(f"line {lineno}: more than one c= line in a media section")
                media.connection = conn
            else:
                if sdp.connection is not None:
                    raise InvalidSDP(f"line {lineno}: more than one session-level c= line")
                sdp.connection = conn
        elif kind == "b":
            btype, sep, bvalue = value.partition(":")
            # (SP/HTAB only: str.strip() would also take \x1c-\x1f, which int() refuses)
            bvalue = bvalue.strip(" \t")
            if not sep or not btype or not _is_num(bvalue):
                raise InvalidSDP(f"line {lineno}: invalid b= line {excerpt(value, 40)}")
            bw = Bandwidth(btype, int(bvalue))
            (media.bandwidths if media is not None else sdp.bandwidths).append(bw)
        elif kind == "i":
            if media is not None:
                media.information = value
            else:
                sdp.information = value
        elif kind == "k":
            if media is not None:
                media.encryption_key = value
            else:
                sdp.encryption_key = value
        elif media is not None and kind in _SESSION_ONLY:
            raise InvalidSDP(f"line {lineno}: {kind}= is not allowed in a media section")
        elif kind == "v":
            if lineno != 1:
                raise InvalidSDP(f"line {lineno}: repeated v= line")
            if value.strip() != "0":
                raise InvalidSDP(f"line {lineno}: unsupported SDP version {excerpt(value, 10)}")
        elif kind == "o":
            sdp.origin = _parse_origin(value, lineno)
            seen_origin = True
        elif kind == "s":
            sdp.session_name = value
            seen_name = True
        elif kind == "t":
            parts = value.split()
            if len(parts) != 2 or not _is_num(parts[0]) or not _is_num(parts[1]):
                raise InvalidSDP(f"line {lineno}: invalid t= line {excerpt(value, 40)}")
            sdp.timing.append(Timing(int(parts[0]), int(parts[1])))
        elif kind == "r":
            if not sdp.timing:
                raise InvalidSDP(f"line {lineno}: r= line before any t= line")
            sdp.timing[-1].repeats.append(value)
        elif kind == "z":
            sdp.time_zones = value
        elif kind == "u":
            sdp.uri = value
        elif kind == "e":
            sdp.emails.append(value)
        elif kind == "p":
            sdp.phones.append(value)
        else:
            raise InvalidSDP(f"line {lineno}: unknown SDP line type {kind!r}")
    if not seen_origin:
        raise InvalidSDP("SDP has no o= line")
    if not seen_name:
        raise InvalidSDP("SDP has no s= line")
    return sdp


def _parse_origin(value: str, lineno: int) -> Origin:
    parts = value.split()
    if len(parts) != 6:
        raise InvalidSDP(f"line {lineno}: o= needs 6 fields, got {excerpt(value, 80)}")
    if not _is_num(parts[2]):
        raise InvalidSDP(
            f"line {lineno}: o= session version is not a number: {excerpt(parts[2], 20)}"
        )
    return Origin(parts[0], parts[1], int(parts[2]), parts[3], parts[4], parts[5])


def _parse_connection(value: str, lineno: int) -> Connection:
    parts = value.split()
    if len(parts) != 3:
        raise InvalidSDP(f"line {lineno}: c= needs 3 fields, got {excerpt(value, 80)}")
    return Connection(parts[0], parts[1], parts[2])


def _parse_media(value: str, lineno: int) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise InvalidSDP(f"line {lineno}: invalid m= line {excerpt(value, 80)}")
    port_text, slash, count_text = parts[1].partition("/")
    if not _is_num(port_text) or (slash and not _is_num(count_text)):
        raise InvalidSDP(f"line {lineno}: m= port is not a number: {excerpt(parts[1], 20)}")
    port = int(port_text)
    if port > 65535:
        raise InvalidSDP(f"line {lineno}: m= port {port} out of range")
    return MediaDescription(
        kind=parts[0],
        port=port,
        port_count=int(count_text) if slash else None,
        proto=parts[2],
        formats=parts[3:],
        attributes=[],
    )


# The optional C accelerator (see the module docstring); parse_sdp falls back to
# _parse_sdp_python whenever it returns None.
_fast_parse: Callable[[str | bytes], SessionDescription | None] | None = None
_csdp = _speedups.load("_csdp")
if _csdp is not None:
    _csdp.setup(SessionDescription, MediaDescription, Attribute, Origin, Connection, Bandwidth,
                Timing)
    _fast_parse = _csdp.parse
