"""Line-level SDP helpers for the audio m-section (private to the media layer).

aiortc knows nothing about RFC 4733 ``telephone-event``, so the session adds it to
the SDP it sends and reads it from the SDP it receives here. The functions work on
plain strings and keep every line they do not understand, in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")

_RTPMAP = re.compile(r"a=rtpmap:(\d+)\s+([^/\s]+)/(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class PayloadFormat:
    """One ``a=rtpmap`` entry: payload type, encoding name and clock rate."""

    payload_type: int
    name: str
    clock_rate: int


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
        if token.isdigit():
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


def free_payload_type(sdp: str, preferred: int) -> int:
    """``preferred`` if the audio section does not use it, else the next free dynamic type."""
    used = {f.payload_type for f in audio_formats(sdp)}
    lines = _split(sdp)
    bounds = _audio_bounds(lines)
    if bounds is not None:
        used |= {int(t) for t in lines[bounds[0]].split()[3:] if t.isdigit()}
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


def candidate_addresses(sdp: str) -> list[str]:
    """Connection addresses of every ``a=candidate`` line, in order."""
    addresses = []
    for line in _split(sdp):
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) >= 5:
                addresses.append(parts[4])
    return addresses


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
