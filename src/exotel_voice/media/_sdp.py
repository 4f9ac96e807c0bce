"""Line-level SDP helpers for the audio m-section (private to the media layer).

aiortc builds and parses the descriptions (``aiortc.sdp``); what it does not do is here.
:func:`check_remote` refuses, naming why, a remote SDP that is not valid SDP or that aiortc
would take but could not use. aiortc knows nothing about RFC 4733 ``telephone-event``, so
the session adds it to the SDP it sends and reads it from the SDP it receives here; nor
does it announce Opus in-band FEC (:func:`with_opus_fec`). The
functions work on plain strings and keep every line they do not understand, in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..exceptions import InvalidSDP
from ..sip.uri import excerpt


DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")

#: The ``a=fingerprint`` hash functions aiortc's DTLS can check (RFC 8122 §5).
FINGERPRINT_HASHES = ("sha-256", "sha-384", "sha-512")

# (ASCII digits, at most 10: int() takes other digits, and refuses over 4300 of them.)
_RTPMAP = re.compile(r"a=rtpmap:([0-9]{1,10})\s+([^/\s]+)/([0-9]{1,10})(?![0-9])", re.IGNORECASE)


@dataclass(frozen=True)
class PayloadFormat:
    """One ``a=rtpmap`` entry: payload type, encoding name and clock rate."""

    payload_type: int
    name: str
    clock_rate: int


def check_remote(sdp: str) -> None:
    """Refuse, naming why, a remote SDP that the session cannot use.

    It must be valid SDP (RFC 8866 §5: the line types and their order, the fields of
    ``o=``, ``c=``, ``b=``, ``t=`` and ``m=``), have an audio m-line with a format, and
    every m-section in use (port not 0) needs a usable ``a=fingerprint`` (its own or the
    session's): aiortc applies a description without one and then fails inside a task of its
    own (the DTLS start), leaving a session that looks up and carries no audio.

    Raises:
        InvalidSDP: what is wrong; a quoted line is masked as the logs are (``a=ice-pwd``).
    """
    sections = _sections(sdp)
    if not audio_formats(sdp):
        raise InvalidSDP("the SDP has no usable audio m-line")
    session_fingerprints = _values(sections[0], "a=fingerprint:")
    for section in sections[1:]:
        kind, port = section[0][2:].split()[:2]
        if int(port.partition("/")[0]) == 0:
            continue  # a declined stream
        fingerprints = _values(section, "a=fingerprint:") or session_fingerprints
        if not fingerprints:
            raise InvalidSDP(
                f"the SDP's {kind} section has no a=fingerprint "
                "(DTLS-SRTP needs one; plain RTP is not supported)"
            )
        if not any(
            len(v.split()) == 2 and v.split()[0].lower() in FINGERPRINT_HASHES
            for v in fingerprints
        ):
            raise InvalidSDP(
                f"the SDP's a=fingerprint is not usable (expected one with "
                f"{', '.join(FINGERPRINT_HASHES)} and a value)"
            )


#: RFC 8866 §5 line types, and those allowed only before the first m= line.
_LINE_TYPES = frozenset("vosiuepcbtrzkam")
_SESSION_ONLY = frozenset("vostrzuep")


def _sections(sdp: str) -> list[list[str]]:
    """The session's lines, then each m-section's (its m= line first); checks the syntax."""
    lines = sdp.replace("\r\n", "\n").split("\n")
    if not lines[0].startswith("v="):
        raise _unparsable("it must start with a v= line")
    sections: list[list[str]] = [[]]
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        kind, value = line[0], line[2:]
        problem: str | None
        if line[1:2] != "=":
            problem = f"expected <type>=<value>, got {excerpt(line, 40)}"
        elif kind not in _LINE_TYPES:
            problem = f"unknown SDP line type {kind!r}"
        elif len(sections) > 1 and kind in _SESSION_ONLY:
            problem = f"{kind}= is not allowed in a media section"
        elif kind == "v" and number != 1:
            problem = "repeated v= line"
        elif kind == "r" and "t" not in seen:
            problem = "r= line before any t= line"
        elif kind == "c" and any(other.startswith("c=") for other in sections[-1]):
            problem = "more than one c= line in a section"
        else:
            problem = _FIELD_CHECKS.get(kind, _no_problem)(value)
        if problem is not None:
            raise _unparsable(f"line {number}: {problem}")
        seen.add(kind)
        if kind == "m":
            sections.append([])
        sections[-1].append(line)
    for kind in "os":
        if kind not in seen:
            raise _unparsable(f"it has no {kind}= line")
    return sections


def _unparsable(problem: str) -> InvalidSDP:
    return InvalidSDP(f"the SDP cannot be parsed: {problem}")


def _no_problem(value: str) -> None:
    return None


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _version_problem(value: str) -> str | None:
    return None if value.strip() == "0" else f"unsupported SDP version {excerpt(value, 10)}"


def _origin_problem(value: str) -> str | None:
    fields = value.split()
    if len(fields) != 6:
        return f"o= needs 6 fields, got {excerpt(value, 80)}"
    if not _is_number(fields[2]):
        return f"o= session version is not a number: {excerpt(fields[2], 20)}"
    return None


def _connection_problem(value: str) -> str | None:
    return None if len(value.split()) == 3 else f"c= needs 3 fields, got {excerpt(value, 80)}"


def _bandwidth_problem(value: str) -> str | None:
    kind, colon, number = value.partition(":")
    if colon and kind and _is_number(number.strip(" \t")):
        return None
    return f"invalid b= line {excerpt(value, 40)}"


def _timing_problem(value: str) -> str | None:
    fields = value.split()
    if len(fields) == 2 and all(map(_is_number, fields)):
        return None
    return f"invalid t= line {excerpt(value, 40)}"


def _attribute_problem(value: str) -> str | None:
    return None if value.partition(":")[0] else "empty attribute name"


def _media_problem(value: str) -> str | None:
    fields = value.split()
    if len(fields) < 3:
        return f"invalid m= line {excerpt(value, 80)}"
    port, slash, count = fields[1].partition("/")
    if not _is_number(port) or (slash and not _is_number(count)):
        return f"m= port is not a number: {excerpt(fields[1], 20)}"
    if len(port) > 5 or int(port) > 65535:
        return f"m= port {excerpt(port, 20)} out of range"
    return None


_FIELD_CHECKS = {
    "v": _version_problem,
    "o": _origin_problem,
    "c": _connection_problem,
    "b": _bandwidth_problem,
    "t": _timing_problem,
    "a": _attribute_problem,
    "m": _media_problem,
}


def _values(lines: list[str], prefix: str) -> list[str]:
    return [line[len(prefix):] for line in lines if line.startswith(prefix)]


def _split(sdp: str) -> list[str]:
    return [line for line in sdp.replace("\r\n", "\n").split("\n") if line]


def _join(lines: list[str]) -> str:
    return "\r\n".join(lines) + "\r\n"


def _audio_bounds(lines: list[str]) -> tuple[int, int] | None:
    """Index of the first ``m=audio`` line and the end of its section."""
    start = next((i for i, line in enumerate(lines) if line.startswith("m=audio")), None)
    if start is None:
        return None
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith("m=")), len(lines)
    )
    return start, end


def audio_formats(sdp: str) -> list[PayloadFormat]:
    """Payload formats of the audio section, in ``m=`` line order.

    Static payload types without an ``a=rtpmap`` (0 and 8) are filled in.
    """
    lines = _split(sdp)
    bounds = _audio_bounds(lines)
    if bounds is None:
        return []
    start, end = bounds
    mapped: dict[int, PayloadFormat] = {}
    for line in lines[start:end]:
        match = _RTPMAP.match(line)
        if match:
            pt = int(match.group(1))
            mapped[pt] = PayloadFormat(pt, match.group(2), int(match.group(3)))
    static = {0: PayloadFormat(0, "PCMU", 8000), 8: PayloadFormat(8, "PCMA", 8000)}
    formats = []
    for token in lines[start].split()[3:]:
        if _is_number(token) and len(token) <= 10:
            pt = int(token)
            fmt = mapped.get(pt) or static.get(pt)
            if fmt is not None:
                formats.append(fmt)
    return formats


def telephone_events(sdp: str) -> list[PayloadFormat]:
    """The ``telephone-event`` formats of the audio section."""
    return [f for f in audio_formats(sdp) if f.name.lower() == "telephone-event"]


def add_telephone_events(sdp: str, events: list[PayloadFormat]) -> str:
    """Return ``sdp`` with ``events`` appended to the audio section's formats."""
    if not events:
        return sdp
    lines = _split(sdp)
    bounds = _audio_bounds(lines)
    if bounds is None:
        return sdp
    start, end = bounds
    existing = set(lines[start].split()[3:])
    new = [e for e in events if str(e.payload_type) not in existing]
    if not new:
        return sdp
    lines[start] = lines[start] + "".join(f" {e.payload_type}" for e in new)
    # Insert after the last rtpmap/fmtp/rtcp-fb of the section, else right after m=.
    insert_at = start + 1
    for i in range(start + 1, end):
        if lines[i].startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:")):
            insert_at = i + 1
    added: list[str] = []
    for e in new:
        added.append(f"a=rtpmap:{e.payload_type} telephone-event/{e.clock_rate}")
        added.append(f"a=fmtp:{e.payload_type} 0-16")
    lines[insert_at:insert_at] = added
    return _join(lines)


def with_opus_fec(sdp: str) -> str:
    """Return ``sdp`` with ``useinbandfec=1`` in the ``a=fmtp`` of each Opus format of the
    audio section (RFC 7587 §6.1: the receiver can use the sender's in-band FEC).

    aiortc's Opus codec has no format parameters (and ``setCodecPreferences`` only takes
    its own capabilities), so the line is added here.  An existing ``a=fmtp`` keeps its
    other parameters (``minptime=10`` ...) and gets ``useinbandfec=1`` appended, or set
    if it said ``useinbandfec=0``; without one, ``a=fmtp:<pt> useinbandfec=1`` follows
    the format's ``a=rtpmap``.
    """
    lines = _split(sdp)
    bounds = _audio_bounds(lines)
    if bounds is None:
        return sdp
    start, end = bounds
    changed = False
    for fmt in audio_formats(sdp):
        if fmt.name.lower() != "opus":
            continue
        prefix = f"a=fmtp:{fmt.payload_type} "
        fmtp = next((i for i in range(start + 1, end) if lines[i].startswith(prefix)), None)
        if fmtp is None:
            rtpmap = next(
                (i for i in range(start + 1, end)
                 if lines[i].lower().startswith(f"a=rtpmap:{fmt.payload_type} ")),
                None,
            )
            at = start + 1 if rtpmap is None else rtpmap + 1
            lines.insert(at, f"{prefix}useinbandfec=1")
            end += 1
            changed = True
            continue
        params = [p.strip() for p in lines[fmtp][len(prefix):].split(";") if p.strip()]
        keys = [p.split("=", 1)[0].strip().lower() for p in params]
        if "useinbandfec" in keys:
            at = keys.index("useinbandfec")
            if params[at].replace(" ", "").lower() == "useinbandfec=1":
                continue
            params[at] = "useinbandfec=1"
        else:
            params.append("useinbandfec=1")
        lines[fmtp] = prefix + ";".join(params)
        changed = True
    return _join(lines) if changed else sdp


def free_payload_type(sdp: str, preferred: int) -> int:
    """``preferred`` if the audio section does not use it, else the next free dynamic type."""
    used = {f.payload_type for f in audio_formats(sdp)}
    lines = _split(sdp)
    bounds = _audio_bounds(lines)
    if bounds is not None:
        used |= {int(t) for t in lines[bounds[0]].split()[3:] if _is_number(t) and len(t) <= 10}
    candidate = preferred
    while candidate in used:
        candidate = 96 + (candidate - 95) % 32
    return candidate


def audio_direction(sdp: str) -> str:
    """Direction attribute of the audio section, falling back to session level, then sendrecv."""
    lines = _split(sdp)
    bounds = _audio_bounds(lines)
    session_end = bounds[0] if bounds else len(lines)
    if bounds is not None:
        for line in lines[bounds[0] : bounds[1]]:
            if line[2:] in DIRECTIONS and line.startswith("a="):
                return line[2:]
    for line in lines[:session_end]:
        if line[2:] in DIRECTIONS and line.startswith("a="):
            return line[2:]
    return "sendrecv"


def origin(sdp: str) -> tuple[str, str, str] | None:
    """``(username, sess-id, sess-version)`` from the ``o=`` line."""
    for line in _split(sdp):
        if line.startswith("o="):
            parts = line[2:].split()
            if len(parts) >= 3:
                return parts[0], parts[1], parts[2]
    return None


def with_origin(sdp: str, username: str, session_id: str, version: int) -> str:
    """``sdp`` with its ``o=`` line's username, session id and version replaced."""
    lines = _split(sdp)
    for i, line in enumerate(lines):
        if line.startswith("o="):
            parts = line[2:].split()
            if len(parts) >= 3:
                parts[0:3] = [username, session_id, str(version)]
                lines[i] = "o=" + " ".join(parts)
            break
    return _join(lines)


def without_origin(sdp: str) -> list[str]:
    """The lines of ``sdp`` except the ``o=`` line (to tell whether a description changed)."""
    return [line for line in _split(sdp) if not line.startswith("o=")]


def candidates(sdp: str) -> list[tuple[str, str]]:
    """``(connection address, type)`` of every ``a=candidate`` line, in order.

    The type is ``host``, ``srflx``, ``prflx`` or ``relay`` (RFC 8839 §5.1), ``""`` when
    the line has none.
    """
    found = []
    for line in _split(sdp):
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) >= 5:
                kind = parts[7] if len(parts) >= 8 and parts[6] == "typ" else ""
                found.append((parts[4], kind))
    return found


def candidate_addresses(sdp: str) -> list[str]:
    """Connection addresses of every ``a=candidate`` line, in order."""
    return [address for address, _ in candidates(sdp)]


def redact(sdp: str) -> str:
    """``sdp`` with ``a=ice-pwd`` and ``a=crypto`` values masked, for logs."""
    out = []
    for line in _split(sdp):
        if line.startswith("a=ice-pwd:"):
            line = "a=ice-pwd:[secure]"
        elif line.startswith("a=crypto:"):
            line = "a=crypto:[secure]"
        out.append(line)
    return _join(out)
