"""SIP and SIPS URIs (RFC 3261 §19.1), with IPv6 hosts, parameters and headers.

``parse_uri`` returns a :class:`SipURI` for ``sip:``/``sips:`` and an :class:`AbsoluteURI`
for any other scheme (``tel:``, ``urn:`` ...), which is kept verbatim.

A URI's ``repr`` never shows a password (RFC 3261 §19.1.1 deprecates it, but a peer may send one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from ..exceptions import InvalidMessage


__all__ = ["AbsoluteURI", "SipURI", "URI", "parse_uri"]

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
# hostport: IPv6 reference, or a hostname / IPv4 address, then an optional port.
_HOSTPORT_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?::([0-9]{1,5}))?$")


@dataclass(eq=True)
class SipURI:
    """A ``sip:`` or ``sips:`` URI.

    Attributes:
        scheme: ``"sip"`` or ``"sips"`` (lower case).
        user: the user part, percent-decoded, or ``None``.
        host: the host; IPv6 addresses keep their brackets (``"[::1]"``).
        port: the port, or ``None`` when absent.
        params: URI parameters in order; a flag parameter (``;lr``) maps to ``None``.
        headers: URI headers (``?name=value``), percent-decoded.
        password: the deprecated ``user:password`` part; never shown by ``repr``.
    """

    scheme: str = "sip"
    user: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(_escape_user(self.user))
            if self.password is not None:
                out.append(":" + _escape_user(self.password))
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        for name, value in self.params.items():
            out.append(f";{name}" if value is None else f";{name}={value}")
        if self.headers:
            out.append("?" + "&".join(f"{k}={_escape_hvalue(v)}" for k, v in self.headers.items()))
        return "".join(out)

    def __repr__(self) -> str:
        user = self.user if self.user is not None else ""
        masked = f"{user}:[secure]@" if self.password is not None else (f"{user}@" if user else "")
        port = f":{self.port}" if self.port is not None else ""
        return f"SipURI('{self.scheme}:{masked}{self.host}{port}', params={self.params!r})"

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, lower-cased, if any."""
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def aor(self) -> str:
        """The address of record: ``scheme:user@host`` without port or parameters."""
        user = f"{self.user}@" if self.user is not None else ""
        return f"{self.scheme}:{user}{self.host}"

    def copy(self, **changes: object) -> SipURI:
        """Return a copy with some attributes replaced."""
        data: dict[str, object] = {
            "scheme": self.scheme,
            "user": self.user,
            "host": self.host,
            "port": self.port,
            "params": dict(self.params),
            "headers": dict(self.headers),
            "password": self.password,
        }
        data.update(changes)
        return SipURI(**data)  # type: ignore[arg-type]


@dataclass(eq=True, frozen=True)
class AbsoluteURI:
    """Any URI that is not ``sip:``/``sips:``, kept verbatim (``tel:+911234``)."""

    text: str

    def __str__(self) -> str:
        return self.text

    @property
    def scheme(self) -> str:
        """The URI scheme, lower-cased."""
        return self.text.split(":", 1)[0].lower()


URI = SipURI | AbsoluteURI

_USER_SAFE = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/]")


def _escape_user(value: str) -> str:
    return "".join(c if _USER_SAFE.match(c) else "".join(f"%{b:02X}" for b in c.encode()) for c in value)


def _escape_hvalue(value: str) -> str:
    return "".join(
        c if re.match(r"[A-Za-z0-9\-_.!~*'()\[\]/?:+$]", c) else "".join(f"%{b:02X}" for b in c.encode())
        for c in value
    )


def parse_uri(text: str) -> URI:
    """Parse a URI.

    Args:
        text: the URI, without surrounding ``<>``.

    Returns:
        A :class:`SipURI` for ``sip:``/``sips:``, else an :class:`AbsoluteURI`.

    Raises:
        InvalidMessage: the text is not a valid URI.
    """
    m = _SCHEME_RE.match(text)
    if m is None:
        raise InvalidMessage(f"invalid URI: no scheme in {text[:80]!r}")
    scheme = m.group(1).lower()
    if scheme not in ("sip", "sips"):
        if any(c in text for c in " \t\r\n<>\""):
            raise InvalidMessage(f"invalid URI: {text[:80]!r}")
        return AbsoluteURI(text)
    rest = text[m.end():]
    if any(c in rest for c in " \t\r\n<>\""):
        raise InvalidMessage(f"invalid SIP URI: forbidden character in {text[:80]!r}")
    headers: dict[str, str] = {}
    if "?" in rest:
        rest, _, hpart = rest.partition("?")
        for item in hpart.split("&"):
            if not item:
                continue
            k, _, v = item.partition("=")
            headers[unquote(k)] = unquote(v)
    user: str | None = None
    password: str | None = None
    at = rest.rfind("@")
    if at != -1:
        userinfo, rest = rest[:at], rest[at + 1:]
        if not userinfo:
            raise InvalidMessage("invalid SIP URI: empty userinfo")
        u, sep, p = userinfo.partition(":")
        user = unquote(u)
        password = unquote(p) if sep else None
    hostport, _, pstr = rest.partition(";")
    hm = _HOSTPORT_RE.match(hostport)
    if hm is None:
        raise InvalidMessage(f"invalid SIP URI host: {hostport[:80]!r}")
    host = hm.group(1)
    port = int(hm.group(2)) if hm.group(2) else None
    if port is not None and port > 65535:
        raise InvalidMessage(f"invalid SIP URI port: {port}")
    params: dict[str, str | None] = {}
    if pstr:
        for item in pstr.split(";"):
            if not item:
                raise InvalidMessage("invalid SIP URI: empty parameter")
            k, sep, v = item.partition("=")
            params[k.lower()] = v if sep else None
    return SipURI(scheme, user, host, port, params, headers, password)
