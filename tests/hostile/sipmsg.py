"""Just enough SIP text handling for a hostile server: our own, independent of the SDK's parser.

The hostile server must be able to read what the phone sends and to write anything at all,
valid or not, so it works on text: a start line, ``(name, value)`` header pairs and a body.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field


COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l":
           "content-length", "c": "content-type", "k": "supported", "s": "subject"}

SERVER_HOST = "hostile.invalid"


def token(n: int = 8) -> str:
    return secrets.token_hex(n)


@dataclass
class Msg:
    """One SIP message as text. ``headers`` keep their order and spelling."""

    start: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: str = ""

    # -- reading ------------------------------------------------------------------------------
    @classmethod
    def parse(cls, data: str | bytes) -> Msg | None:
        """A lenient parse of what the phone sent; ``None`` if it is not SIP-like at all."""
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        head, _, body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        if not lines or not lines[0] or lines[0].strip() == "":
            return None
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers.append((name.strip(), value.strip()))
        return cls(lines[0], headers, body)

    @property
    def is_request(self) -> bool:
        return not self.start.startswith("SIP/2.0 ")

    @property
    def method(self) -> str:
        return self.start.split(" ", 1)[0] if self.is_request else self.cseq_method

    @property
    def status(self) -> int:
        if self.is_request:
            return 0
        try:
            return int(self.start.split(" ")[1])
        except (IndexError, ValueError):
            return 0

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        want = name.lower()
        return [v for n, v in self.headers if COMPACT.get(n.lower(), n.lower()) == want]

    @property
    def call_id(self) -> str:
        return self.header("Call-ID") or ""

    @property
    def cseq_method(self) -> str:
        parts = (self.header("CSeq") or "").split()
        return parts[1] if len(parts) == 2 else ""

    @property
    def cseq_seq(self) -> int:
        parts = (self.header("CSeq") or "").split()
        return int(parts[0]) if parts and parts[0].isdigit() else 0

    def tag(self, name: str) -> str | None:
        m = re.search(r";\s*tag=([^;>\s]+)", self.header(name) or "")
        return m.group(1) if m else None

    def via_host(self) -> str:
        m = re.match(r"SIP/2\.0/\S+\s+([^;:\s]+)", self.header("Via") or "")
        return m.group(1) if m else ""

    # -- writing ------------------------------------------------------------------------------
    def set(self, name: str, value: str | None) -> Msg:
        """Replace the first ``name`` field (all of them for ``None``: removed)."""
        want = name.lower()
        out, done = [], False
        for n, v in self.headers:
            if COMPACT.get(n.lower(), n.lower()) == want:
                if value is None or done:
                    continue
                out.append((n, value))
                done = True
            else:
                out.append((n, v))
        if value is not None and not done:
            out.append((name, value))
        self.headers = out
        return self

    def copy(self) -> Msg:
        return Msg(self.start, list(self.headers), self.body)

    def render(self, *, content_length: bool = True) -> str:
        headers = [(n, v) for n, v in self.headers if n.lower() not in ("content-length", "l")]
        if content_length:
            headers.append(("Content-Length", str(len(self.body.encode("utf-8", "replace")))))
        lines = [self.start, *(f"{n}: {v}" for n, v in headers)]
        return "\r\n".join(lines) + "\r\n\r\n" + self.body


def response_to(request: Msg, status: int, reason: str, *, to_tag: str | None = "auto",
                headers: list[tuple[str, str]] | None = None, body: str = "") -> Msg:
    """A response copying Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2)."""
    out = Msg(f"SIP/2.0 {status} {reason}")
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        for value in request.all(name):
            if name == "To" and to_tag and "tag=" not in value:
                value = f"{value};tag={token(4) if to_tag == 'auto' else to_tag}"
            out.headers.append((name, value))
    out.headers.extend(headers or [])
    out.body = body
    return out


def request(method: str, uri: str, *, to: str, call_id: str | None = None, cseq: int = 1,
            from_: str = f"<sip:hostile@{SERVER_HOST}>", from_tag: str | None = None,
            to_tag: str | None = None, headers: list[tuple[str, str]] | None = None,
            body: str = "", branch: str | None = None) -> Msg:
    """A request from the hostile server toward the phone."""
    to_value = f"<{to}>" + (f";tag={to_tag}" if to_tag else "")
    msg = Msg(f"{method} {uri} SIP/2.0", [
        ("Via", f"SIP/2.0/WS {SERVER_HOST};branch=z9hG4bK{branch or token()}"),
        ("Max-Forwards", "70"),
        ("From", f"{from_};tag={from_tag or token(4)}"),
        ("To", to_value),
        ("Call-ID", call_id or token(10)),
        ("CSeq", f"{cseq} {method}"),
        ("Contact", f"<sip:hostile@{SERVER_HOST};transport=ws>"),
    ])
    msg.headers.extend(headers or [])
    if body:
        msg.headers.append(("Content-Type", "application/sdp"))
    msg.body = body
    return msg


def ack_for(response: Msg, request_uri: str) -> Msg:
    """The ACK a UAC sends for a non-2xx final response to its INVITE (§17.1.1.3)."""
    out = Msg(f"ACK {request_uri} SIP/2.0")
    for name in ("Via", "From", "To", "Call-ID"):
        value = response.header(name)
        if value is not None:
            out.headers.append((name, value))
    out.headers.append(("Max-Forwards", "70"))
    out.headers.append(("CSeq", f"{response.cseq_seq} ACK"))
    return out


# -- digest (RFC 2617 / 7616, MD5) ------------------------------------------------------------


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def digest_params(value: str) -> dict[str, str]:
    return {k.lower(): (q if q else t) for k, q, t in
            re.findall(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))', value)}


def digest_ok(auth: str, method: str, realm: str, user: str, password: str) -> bool:
    p = digest_params(auth)
    ha1 = _md5(f"{user}:{realm}:{password}")
    ha2 = _md5(f"{method}:{p.get('uri', '')}")
    if p.get("qop"):
        expected = _md5(f"{ha1}:{p.get('nonce')}:{p.get('nc')}:{p.get('cnonce')}:"
                        f"{p.get('qop')}:{ha2}")
    else:
        expected = _md5(f"{ha1}:{p.get('nonce')}:{ha2}")
    return p.get("response") == expected and p.get("username") == user


# -- SDP bodies -----------------------------------------------------------------------------

GARBAGE_SDP = "this is not SDP\r\nv=banana\r\nm=audio lots of ports\r\n"

FAKE_SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "a=group:BUNDLE 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    "a=rtcp-mux\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\na=setup:actpass\r\n"
    "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n"
)


def without_fingerprint(sdp: str) -> str:
    return "".join(line + "\r\n" for line in sdp.split("\r\n")
                   if line and not line.startswith("a=fingerprint"))
