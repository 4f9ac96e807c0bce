"""Configuration value objects, and the guide's ``sipAccountInfo`` dict turned into them.

:class:`AccountConfig` is the typed form of Exotel's ``sipAccountInfo``::

    AccountConfig.from_sip_account_info({
        "userName": "agent1", "authUser": "agent1", "sipdomain": "example.exotel.in",
        "domain": "voip.exotel.in:443", "displayname": "Agent One", "secret": "...",
        "port": "443", "security": "wss", "endpoint": "wss",
    })

The WebSocket URL is built as Exotel's SDK builds it: ``security://host:port/endpoint``, where
``host:port`` comes from ``domain``. ``secret`` never appears in a ``repr``, a log line or an
exception message.

On a server the same account comes from the environment (twelve-factor style)::

    account = AccountConfig.from_env()          # EXOTEL_USERNAME, EXOTEL_SECRET ...
    info = AccountConfig.sip_account_info_from_env()   # the guide's dict, for initWebrtc

:attr:`AccountConfig.ENV_VARIABLES` lists the variables (after the prefix, ``EXOTEL_`` by
default), the ``sipAccountInfo`` key each one gives and what it is for; errors name the
variable.
"""

from __future__ import annotations

import os
import ssl
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from .exceptions import ConfigurationError


__all__ = [
    "AccountConfig",
    "KeepaliveConfig",
    "ReconnectPolicy",
    "TlsConfig",
]

#: :attr:`AccountConfig.ENV_VARIABLES`.
_ENV_VARIABLES: Mapping[str, tuple[str, str]] = MappingProxyType({
    "USERNAME": ("userName", "the SIP user name (the guide's userName)"),
    "AUTHUSER": ("authUser", "the digest user name (the guide's authUser; default USERNAME)"),
    "SIPDOMAIN": ("sipdomain", "the SIP domain of the account (the guide's sipdomain)"),
    "DOMAIN": ("domain", "the WebSocket proxy's host:port (the guide's domain; default "
                         "SIPDOMAIN)"),
    "PORT": ("port", "the WebSocket proxy's port (the guide's port)"),
    "SECURITY": ("security", "wss or ws (the guide's security; default wss)"),
    "ENDPOINT": ("endpoint", "the WebSocket URL path (the guide's endpoint; default wss)"),
    "DISPLAYNAME": ("displayname", "the display name (the guide's displayname)"),
    "SECRET": ("secret", "the SIP password (the guide's secret)"),
    "CA_FILE": ("caFile", "a PEM file of CA certificates to trust for wss"),
    "WS_URL": ("wsUrl", "the whole WebSocket URL, instead of DOMAIN, SECURITY and ENDPOINT"),
})

#: ConfigurationError fields (guide keys and AccountConfig fields) -> ENV_VARIABLES names.
_ENV_FIELDS = {
    **{key: name for name, (key, _) in _ENV_VARIABLES.items()},
    "user_name": "USERNAME", "auth_user": "AUTHUSER", "sip_domain": "SIPDOMAIN",
    "ws_url": "WS_URL", "display_name": "DISPLAYNAME",
}

#: Exotel's SDK defaults when ``domain`` has no port: 8089 for wss, 8088 for ws.
_DEFAULT_WS_PORTS = {"wss": 8089, "ws": 8088}


@dataclass(frozen=True)
class ReconnectPolicy:
    """How the transport reconnects after losing the WebSocket.

    Delays grow exponentially from ``initial_delay`` by ``factor`` up to ``max_delay``; each
    is spread by ±``jitter`` (a fraction) so that a fleet does not reconnect in lock-step.

    Attributes:
        enabled: reconnect automatically (default ``True``).
        initial_delay: first delay in seconds.
        max_delay: the cap, in seconds.
        factor: growth factor between attempts.
        jitter: relative random spread, 0 to 1.
        max_attempts: give up after this many failed attempts in a row (``None``: never).
    """

    enabled: bool = True
    initial_delay: float = 0.5
    max_delay: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    max_attempts: int | None = None

    def delay(self, attempt: int, random: float) -> float:
        """The delay before reconnect attempt ``attempt`` (1-based).

        Args:
            attempt: how many attempts have failed in a row, starting at 1.
            random: a uniform random number in [0, 1), passed in to keep this pure.
        """
        base = min(self.max_delay, self.initial_delay * self.factor ** max(0, attempt - 1))
        return max(0.0, base * (1.0 + self.jitter * (2.0 * random - 1.0)))


@dataclass(frozen=True)
class KeepaliveConfig:
    """Keepalive on an idle WebSocket.

    Attributes:
        interval: seconds between keepalives; ``None`` or 0 disables them.
        mode: ``"ping"`` sends WebSocket pings and closes the connection when no pong
            arrives within ``timeout``; ``"crlf"`` sends a SIP double-CRLF (RFC 5626 §4.4.1)
            and, once the server has answered one with a CRLF pong, treats a missing pong
            within ``timeout`` as a dead connection.
        timeout: seconds to wait for the pong.
    """

    interval: float | None = 25.0
    mode: Literal["ping", "crlf"] = "ping"
    timeout: float = 10.0


@dataclass(frozen=True)
class TlsConfig:
    """TLS settings for ``wss``.

    Certificates are verified by default, against the system store or ``ca_file``.

    Attributes:
        ca_file: a PEM file of CA certificates to trust instead of the system store.
        insecure_skip_verify: turn verification off. For development only; it logs a
            warning every time a connection is made.
    """

    ca_file: str | None = None
    insecure_skip_verify: bool = False

    def ssl_context(self) -> ssl.SSLContext:
        """Build the client SSL context these settings describe."""
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


@dataclass(frozen=True)
class AccountConfig:
    """One SIP account ("phone"): who to register as, and where.

    Attributes:
        user_name: the guide's ``userName``: the phone's name in callbacks, and the From
            display name.
        auth_user: the guide's ``authUser``: the digest username and the AOR user part.
        sip_domain: the guide's ``sipdomain``: the registrar and AOR domain.
        ws_url: the WebSocket URL (``wss://host:port/endpoint``).
        secret: the SIP password. Never shown in a repr.
        display_name: the guide's ``displayname``.
        register_expires: the Expires asked for, in seconds (Exotel's SDK uses 300).
        register_refresh: refresh at this fraction of the granted expiry (0.8 = 80%).
        tls: TLS settings for wss.
        keepalive: keepalive settings.
        reconnect: reconnect policy.
        instance_id: the RFC 5626 ``+sip.instance`` UUID (stable per phone).
        user_agent: the User-Agent header.
        register_timeout: seconds to wait for a REGISTER response before reporting a timeout.
        open_timeout: seconds to wait for the WebSocket handshake.
    """

    #: The variables :meth:`from_env` reads, without their prefix (``EXOTEL_`` by default):
    #: the ``sipAccountInfo`` key each gives, and what it is for. ``SECRET`` is the SIP
    #: password; it never appears in an error, a repr or a log line.
    ENV_VARIABLES: ClassVar[Mapping[str, tuple[str, str]]] = _ENV_VARIABLES

    user_name: str
    auth_user: str
    sip_domain: str
    ws_url: str
    secret: str = field(default="", repr=False)
    display_name: str | None = None
    register_expires: int = 300
    register_refresh: float = 0.8
    tls: TlsConfig = field(default_factory=TlsConfig)
    keepalive: KeepaliveConfig = field(default_factory=KeepaliveConfig)
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)
    instance_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    user_agent: str = "exotel-voice/0.1"
    register_timeout: float = 10.0
    open_timeout: float = 10.0

    def __post_init__(self) -> None:
        for name in ("user_name", "auth_user", "sip_domain"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigurationError(name, "must be a non-empty string")
        _check_ws_url(self.ws_url)
        if not isinstance(self.secret, str):
            raise ConfigurationError("secret", "must be a string")
        if not 1 <= self.register_expires <= 2**31 - 1:
            raise ConfigurationError("register_expires", "must be a positive number of seconds")
        if not 0.1 <= self.register_refresh < 1.0:
            raise ConfigurationError("register_refresh", "must be between 0.1 and 1 (exclusive)")

    @property
    def secure(self) -> bool:
        """Whether the transport is ``wss``."""
        return self.ws_url.lower().startswith("wss:")

    @property
    def aor(self) -> str:
        """The address of record, ``sip:<authUser>@<sipdomain>``."""
        return f"sip:{self.auth_user}@{self.sip_domain}"

    def with_changes(self, **changes: Any) -> AccountConfig:
        """A copy with some fields replaced (validated again)."""
        return replace(self, **changes)

    @classmethod
    def from_sip_account_info(cls, info: Mapping[str, Any], **overrides: Any) -> AccountConfig:
        """Build a config from the guide's ``sipAccountInfo`` dict.

        Required (the guide's, as Exotel's SDK checks them, plus the password): ``userName``,
        ``sipdomain``, ``secret`` and ``port`` (validated, but the URL's port comes from
        ``domain``, as in Exotel's SDK; not required when ``wsUrl`` is given). Optional:
        ``authUser`` (default ``userName``), ``domain`` ("host:port" of the WebSocket proxy;
        default ``sipdomain``), ``security`` ("wss" or "ws", default "wss"), ``endpoint``
        (URL path, default "wss"), ``displayname`` / ``displayName``. Python extras:
        ``wsUrl`` (a full URL, overriding the derived one), ``caFile`` and
        ``insecureSkipVerify``.

        Args:
            info: the ``sipAccountInfo`` mapping.
            **overrides: any :class:`AccountConfig` field, by its Python name.

        Raises:
            ConfigurationError: a field is missing or invalid; ``.field`` names it using the
                guide's key (e.g. ``"sipdomain"``); when several required keys are missing it
                names them all (``"secret, port"``).
        """
        if not isinstance(info, Mapping):
            raise ConfigurationError("sipAccountInfo", "must be a dict")
        # The guide's required keys, all reported at once (never their values: one may be
        # the secret). ``port`` is not needed when ``wsUrl`` gives the whole URL.
        required = ["userName", "sipdomain", "secret"]
        if _optional_str(info, "wsUrl") is None:
            required.append("port")
        missing = [key for key in required if _is_blank(info.get(key))]
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            raise ConfigurationError(
                ", ".join(missing), f"{verb} required (missing from sipAccountInfo)"
            )
        user_name = _required_str(info, "userName")
        auth_user = _optional_str(info, "authUser") or user_name
        sip_domain = _required_str(info, "sipdomain")
        security = (_optional_str(info, "security") or "wss").strip().lower()
        if security not in ("wss", "ws"):
            raise ConfigurationError(
                "security", f"must be 'wss' or 'ws', not {info.get('security')!r}"
            )
        if "port" in info and info["port"] not in (None, ""):
            _parse_port("port", info["port"])
        ws_url = _optional_str(info, "wsUrl")
        if ws_url is None:
            domain = _optional_str(info, "domain") or sip_domain
            host, port = _split_hostport("domain", domain, _DEFAULT_WS_PORTS[security])
            endpoint = (_optional_str(info, "endpoint") or "wss").lstrip("/")
            ws_url = f"{security}://{host}:{port}/{endpoint}"
        secret = info["secret"]
        if not isinstance(secret, str):
            raise ConfigurationError("secret", "must be a string")
        display = _optional_str(info, "displayname") or _optional_str(info, "displayName")
        insecure = info.get("insecureSkipVerify", False)
        if not isinstance(insecure, bool):
            # A string such as "false" must not silently turn verification off.
            raise ConfigurationError(
                "insecureSkipVerify", f"must be True or False, not {insecure!r}"
            )
        tls = TlsConfig(ca_file=_optional_str(info, "caFile"), insecure_skip_verify=insecure)
        kwargs: dict[str, Any] = {
            "user_name": user_name,
            "auth_user": auth_user,
            "sip_domain": sip_domain,
            "ws_url": ws_url,
            "secret": secret,
            "display_name": display,
            "tls": tls,
        }
        known = {f.name for f in fields(cls)}
        for key in overrides:
            if key not in known:
                raise ConfigurationError(key, "is not an AccountConfig field")
        kwargs.update(overrides)
        return cls(**kwargs)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, prefix: str = "EXOTEL_",
        **overrides: Any,
    ) -> AccountConfig:
        """Build a config from environment variables (``EXOTEL_USERNAME``, ``EXOTEL_SECRET`` ...).

        Each variable of :attr:`ENV_VARIABLES`, with ``prefix`` before it, gives one key of the
        guide's ``sipAccountInfo``, which is then read as :meth:`from_sip_account_info` reads
        it (same defaults; the URL's port comes from ``EXOTEL_DOMAIN``, as in Exotel's SDK).
        A variable set to the empty string counts as unset. Required: ``EXOTEL_USERNAME``,
        ``EXOTEL_SIPDOMAIN``, ``EXOTEL_SECRET`` and ``EXOTEL_PORT`` (not needed with
        ``EXOTEL_WS_URL``)::

            EXOTEL_USERNAME=agent1 EXOTEL_SIPDOMAIN=example.exotel.in \\
            EXOTEL_DOMAIN=voip.exotel.in:443 EXOTEL_PORT=443 EXOTEL_SECURITY=wss \\
            EXOTEL_SECRET=... python bot.py      # bot.py: AccountConfig.from_env()

        Args:
            environ: where to read the variables (default :data:`os.environ`).
            prefix: put before each name of :attr:`ENV_VARIABLES` (``"EXOTEL_"``; e.g.
                ``"AGENT2_"`` for a second account in the same environment).
            **overrides: any :class:`AccountConfig` field, by its Python name.

        Raises:
            ConfigurationError: a variable is missing or its value is invalid; ``.field``
                names the variable (every missing required one at once, e.g.
                ``"EXOTEL_USERNAME, EXOTEL_SECRET"``) and the message says what it is for, or
                shows the bad value (never the secret's).
        """
        return cls._from_env_info(_sip_account_info_from_env(environ, prefix), prefix, overrides)

    @classmethod
    def _from_env_info(
        cls, info: dict[str, str], prefix: str, overrides: Mapping[str, Any]
    ) -> AccountConfig:
        """:meth:`from_sip_account_info`, its errors naming the variables."""
        try:
            return cls.from_sip_account_info(info, **overrides)
        except ConfigurationError as exc:
            name = _ENV_FIELDS.get(exc.field)
            if name is None or exc.field in overrides:
                raise
            if name == "WS_URL" and "wsUrl" not in info:
                name = "DOMAIN"  # the URL was built from DOMAIN (and SECURITY, ENDPOINT)
            message = str(exc).removeprefix(f"{exc.field}: ")
            raise ConfigurationError(prefix + name, message) from None

    @staticmethod
    def sip_account_info_from_env(
        environ: Mapping[str, str] | None = None, *, prefix: str = "EXOTEL_",
        check: bool = True,
    ) -> dict[str, str]:
        """The guide's ``sipAccountInfo`` dict from the same variables as :meth:`from_env`.

        For the guide's face: ``client.initWebrtc(AccountConfig.sip_account_info_from_env(),
        ...)``. Only the keys whose variables are set are in it. The dict holds the secret,
        as the guide's does: do not print or log it.

        Args:
            environ: as for :meth:`from_env`.
            prefix: as for :meth:`from_env`.
            check: check the account as :meth:`from_env` does, so that a bad environment
                fails here, naming the variable. ``False``: only read the variables, and
                leave the checks to ``initWebrtc`` (which names the guide's keys).

        Raises:
            ConfigurationError: as :meth:`from_env` (with ``check=False``: only a bad
                ``environ`` or ``prefix``, or a value that is not a string).
        """
        info = _sip_account_info_from_env(environ, prefix, required=check)
        if check:
            AccountConfig._from_env_info(info, prefix, {})
        return info


def _sip_account_info_from_env(
    environ: Mapping[str, str] | None, prefix: str, *, required: bool = True
) -> dict[str, str]:
    """The ``sipAccountInfo`` keys whose variables are set; with ``required``, every missing
    required one is named."""
    if not isinstance(prefix, str):
        raise ConfigurationError("prefix", f"must be a string, not {type(prefix).__name__}")
    if environ is None:
        environ = os.environ
    elif not isinstance(environ, Mapping):
        raise ConfigurationError("environ", "must be a mapping of variable names to values")
    info: dict[str, str] = {}
    for name, (key, _) in _ENV_VARIABLES.items():
        value = environ.get(prefix + name)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise ConfigurationError(prefix + name, f"must be a string, not {type(value).__name__}")
        info[key] = value
    if not required:
        return info
    needed = ["USERNAME", "SIPDOMAIN", "SECRET"]
    if "wsUrl" not in info:
        needed.append("PORT")
    missing = [name for name in needed if _is_blank(info.get(_ENV_VARIABLES[name][0]))]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        what = "; ".join(f"{prefix}{name}: {_ENV_VARIABLES[name][1]}" for name in missing)
        raise ConfigurationError(
            ", ".join(prefix + name for name in missing),
            f"{verb} required (not set in the environment; {what})",
        )
    return info


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _required_str(info: Mapping[str, Any], key: str) -> str:
    value = info.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ConfigurationError(key, "is required")
    if not isinstance(value, str):
        raise ConfigurationError(key, f"must be a string, not {type(value).__name__}")
    return value.strip()


def _optional_str(info: Mapping[str, Any], key: str) -> str | None:
    value = info.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigurationError(key, f"must be a string, not {type(value).__name__}")
    return value.strip()


def _parse_port(fieldname: str, value: object) -> int:
    try:
        port = int(str(value).strip())
    except ValueError:
        raise ConfigurationError(fieldname, f"is not a port number: {value!r}") from None
    if not 1 <= port <= 65535:
        raise ConfigurationError(fieldname, f"must be between 1 and 65535, not {port}")
    return port


def _split_hostport(fieldname: str, text: str, default_port: int) -> tuple[str, int]:
    text = text.strip()
    if "://" in text or "/" in text:
        raise ConfigurationError(fieldname, f"must be 'host:port', not a URL: {text!r}")
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            raise ConfigurationError(fieldname, f"unterminated IPv6 address in {text!r}")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ConfigurationError(fieldname, f"must be 'host:port', not {text!r}")
        port = _parse_port(fieldname, rest[1:]) if rest else default_port
        return host, port
    host, sep, port_text = text.partition(":")
    if not host:
        raise ConfigurationError(fieldname, f"has no host: {text!r}")
    return host, (_parse_port(fieldname, port_text) if sep else default_port)


def _check_ws_url(url: str) -> None:
    if not isinstance(url, str):
        raise ConfigurationError("ws_url", "must be a string")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("ws", "wss"):
        raise ConfigurationError("ws_url", f"must start with ws:// or wss://, not {parts.scheme!r}")
    if not parts.hostname:
        raise ConfigurationError("ws_url", "has no host")
    try:
        _ = parts.port
    except ValueError:
        raise ConfigurationError("ws_url", "has an invalid port") from None
