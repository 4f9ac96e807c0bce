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
from .abnf import BAD_ESCAPE_RE
from .redact import SECURE, redact


__all__ = [
    "AbsoluteURI",
    "SipURI",
    "URI",
    "excerpt",
    "parse_uri",
]

# Secrets in malformed input (see excerpt()). Pass 1: "scheme:user:" then anything up to the
# last "@" (the password of a URI, however malformed). Pass 2: "user:" then anything up to
# the last "@", for userinfo without a scheme ("alice:pw@host"); "sip:"/"sips:"/"tel:" are
# schemes there, not users, so "sip:alice@host" keeps its user.
_SCHEME_USERINFO_RE = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*:[^:@\s<>\"',;]*:)[^@]*@")
_BARE_USERINFO_RE = re.compile(
    r"((?:^|(?<=[\s<>\"',;]))(?!(?i:sips?|tel):)[^:@\s<>\"',;]*:)(?!\[secure\]@)[^@]*@"
)


def excerpt(text: str, limit: int = 80) -> str:
    """Quote (part of) malformed input for an exception message, with secrets masked.

    Exception texts reach logs (the connection logs ``str(exc)``), so they must never carry
    a secret (RFC 3261 §19.1.1 deprecates ``user:password@`` but a peer may still send one).
    Masked, on the *whole* text before it is cut (so a cut can never leave part of a secret
    unmasked): everything :func:`exotel_voice.sip.redact.redact` masks (Authorization
    values, digest ``response=``, ``a=ice-pwd`` ...), and anything between a userinfo ``:``
    and the last ``@`` after it, however malformed the URI is.

    Args:
        text: the offending input.
        limit: the most characters of the masked text shown.

    Returns:
        The ``repr`` of the masked, cut text.
    """
    text = redact(text, limit=-1)
    if "@" in text:
        text = _SCHEME_USERINFO_RE.sub(r"\1" + SECURE + "@", text)
        text = _BARE_USERINFO_RE.sub(r"\1" + SECURE + "@", text)
    return repr(text[:limit])

# RFC 3261 §19.1.1 / §25.1, applied to what follows "sip:" / "sips:".
#   userinfo = ( user / telephone-subscriber ) [ ":" password ] "@"
#   user     = 1*( unreserved / escaped / user-unreserved )   ; user-unreserved has & = + $ , ; ? /
#   password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
#   hostport = host [ ":" port ]
#   uri-parameters = *( ";" uri-parameter ) ; paramchar = param-unreserved / unreserved / escaped
#   headers  = "?" header *( "&" header ) ; header = hname "=" hvalue
_USER_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+")
_PASSWORD_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,%]*")
_HOSTPORT_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?::([0-9]{1,5}))?")
_PARAMCHARS = r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$%]"
_PARAMS_RE = re.compile(r"(?:;" + _PARAMCHARS + r"+(?:=" + _PARAMCHARS + r"+)?)*")
_HEADERS_RE = re.compile(
    r"[A-Za-z0-9\-_.!~*'()\[\]/?:+$%]+=[A-Za-z0-9\-_.!~*'()\[\]/?:+$%]*"
    r"(?:&[A-Za-z0-9\-_.!~*'()\[\]/?:+$%]+=[A-Za-z0-9\-_.!~*'()\[\]/?:+$%]*)*"
)
# absoluteURI = scheme ":" ( hier-part / opaque-part ), made of uric characters.
_ABSOLUTE_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[A-Za-z0-9\-_.!~*'();/?:@&=+$,%\[\]#]+")


@dataclass(eq=True)
class SipURI:
    """A ``sip:`` or ``sips:`` URI.

    Attributes:
        scheme: ``"sip"`` or ``"sips"`` (lower case).
        user: the user part, percent-decoded, or ``None``.
        host: the host; IPv6 addresses keep their brackets (``"[::1]"``).
        port: the port, or ``None`` when absent.
        params: URI parameters in order, percent-decoded, names lower-cased; a flag
            parameter (``;lr``) maps to ``None``.
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
                out.append(":" + _escape_password(self.password))
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        for name, value in self.params.items():
            name = _escape_param(name)
            out.append(f";{name}" if value is None else f";{name}={_escape_param(value)}")
        if self.headers:
            pairs = (f"{_escape_hvalue(k)}={_escape_hvalue(v)}" for k, v in self.headers.items())
            out.append("?" + "&".join(pairs))
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
        """Return a copy with some attributes replaced (params and headers are copied)."""
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

_USER_UNSAFE = re.compile(r"[^A-Za-z0-9\-_.!~*'()&=+$,;?/]")
_PASSWORD_UNSAFE = re.compile(r"[^A-Za-z0-9\-_.!~*'()&=+$,]")
_HVALUE_UNSAFE = re.compile(r"[^A-Za-z0-9\-_.!~*'()\[\]/?:+$]")


def _percent(m: re.Match[str]) -> str:
    return "".join(f"%{b:02X}" for b in m.group().encode("utf-8", "surrogatepass"))


def _escape_user(value: str) -> str:
    return _USER_UNSAFE.sub(_percent, value)


def _escape_password(value: str) -> str:
    return _PASSWORD_UNSAFE.sub(_percent, value)


_PARAM_UNSAFE = re.compile(r"[^A-Za-z0-9\-_.!~*'()\[\]/:&+$]")


def _escape_param(value: str) -> str:
    return _PARAM_UNSAFE.sub(_percent, value)


def _escape_hvalue(value: str) -> str:
    return _HVALUE_UNSAFE.sub(_percent, value)


def parse_uri(text: str) -> URI:
    """Parse a URI (RFC 3261 §19.1.1 for ``sip:``/``sips:``, RFC 3986 shape for the rest).

    The user part, password, parameters and header values are percent-decoded
    (RFC 3261 §19.1.4: ``%6C%72`` and ``lr`` are the same parameter). Escapes must be
    well formed (``%`` followed by two hex digits).

    Args:
        text: the URI, without surrounding ``<>`` and without surrounding whitespace.

    Returns:
        A :class:`SipURI` for ``sip:``/``sips:``, else an :class:`AbsoluteURI`.

    Raises:
        InvalidMessage: the text is not a valid URI.
    """
    colon = text.find(":")
    scheme = text[:colon].lower() if colon > 0 else ""  # (no colon: no scheme, not text[:-1])
    if scheme != "sip" and scheme != "sips":
        if colon <= 0 or _ABSOLUTE_RE.fullmatch(text) is None or BAD_ESCAPE_RE.search(text):
            raise InvalidMessage(f"invalid URI {excerpt(text)}")
        return AbsoluteURI(text)
    rest = text[colon + 1:]
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at != -1:
        userinfo = rest[:at]
        rest = rest[at + 1:]
        u, sep, p = userinfo.partition(":")
        if _USER_RE.fullmatch(u) is None or _PASSWORD_RE.fullmatch(p) is None:
            raise InvalidMessage(f"invalid SIP URI user part in {excerpt(text)}")
        if "%" in userinfo:
            if BAD_ESCAPE_RE.search(userinfo):
                raise InvalidMessage(f"invalid escape in SIP URI {excerpt(text)}")
            u = unquote(u)
            p = unquote(p)
        user = u
        password = p if sep else None
    headers: dict[str, str] = {}
    q = rest.find("?")
    if q != -1:
        hpart = rest[q + 1:]
        rest = rest[:q]
        if _HEADERS_RE.fullmatch(hpart) is None or BAD_ESCAPE_RE.search(hpart):
            raise InvalidMessage(f"invalid SIP URI headers in {excerpt(text)}")
        for item in hpart.split("&"):
            k, _, v = item.partition("=")
            headers[unquote(k)] = unquote(v)
    semi = rest.find(";")
    if semi == -1:
        hostport, pstr = rest, ""
    else:
        hostport, pstr = rest[:semi], rest[semi:]
    hm = _HOSTPORT_RE.fullmatch(hostport)
    if hm is None:
        raise InvalidMessage(f"invalid SIP URI host in {excerpt(text)}")
    host, port_text = hm.groups()
    port: int | None = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise InvalidMessage(f"invalid SIP URI port {port}")
    params: dict[str, str | None] = {}
    if pstr:
        if _PARAMS_RE.fullmatch(pstr) is None or BAD_ESCAPE_RE.search(pstr):
            raise InvalidMessage(f"invalid SIP URI parameters in {excerpt(text)}")
        escaped = "%" in pstr
        for item in pstr[1:].split(";"):
            k, sep, v = item.partition("=")
            if escaped:
                # RFC 3261 §19.1.4: escaped and unescaped forms are equal ("%6C%72" is "lr").
                k, v = unquote(k), unquote(v)
            params[k.lower()] = v if sep else None
    return SipURI(scheme, user, host, port, params, headers, password)

