"""Network diagnostics (guide 5.11, the network part): real checks, one typed report.

:func:`diagnose` runs every check concurrently, each under its own deadline, and returns a
:class:`DiagnosticsReport`: one :class:`Check` per line, with a :class:`Verdict`
(``ok``/``warning``/``failed``/``skipped``), the value found, a detail, what to do when it
failed (``remedy``), how long it took, and for ICE checks the candidate line that proved it.

The checks (their names are the guide's ``diagnosticsKeyValueCallback`` keys, plus ``rtt``
and ``relay``):

``wss``
    A WebSocket connection to the account's server (subprotocol ``sip``, TLS verified as
    the phone verifies it; failures named as the transport names them).
``rtt``
    The round trip to the SIP server: an ``OPTIONS`` request over that connection and the
    time to its response, whatever its status (a 200, 401/407 or 404 all prove the server
    read and answered it).
``userReg``
    With a ``phone``: its background registration's state (no REGISTER is sent, as the
    guide says). Without: a REGISTER with the account, then its removal.
``udp``
    A STUN Binding answered over UDP by the configured STUN (or TURN) server.
``tcp``
    A TURN allocation over TCP (``turn:...?transport=tcp`` or ``turns:``); with only UDP
    TURN servers, whether the TURN server's port accepts TCP.
``host``
    Local candidates: one UDP socket bound per local address
    (``IceConfig.host_addresses``, else every non-loopback address).
``srflx``
    The server-reflexive candidate from that STUN Binding (our address as the server sees
    it).
``relay``
    A TURN allocation (RFC 8656) with the configured user and password, over UDP, and over
    TCP when UDP fails or when only TCP is configured; the allocation is deleted at once.

Secrets: the TURN password and the SIP password go to the servers only (the TURN key is
derived inside aioice; the REGISTER's digest inside the SIP core); no check's value,
detail, remedy or candidate line carries either, nor do the log lines written here.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ipaddress
import json
import logging
import os
import platform
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from aioice import Candidate, stun, turn
from aioice.ice import get_host_addresses

from ..config import AccountConfig, KeepaliveConfig, ReconnectPolicy
from ..exceptions import AuthenticationError, SipError, TransportError
from ..media.config import IceServer, MediaConfig
from ..sip.message import Response, parse_message
from ..sip.registration import RegistrationState
from ..sip.utils import make_request, new_branch, new_call_id, new_tag
from ..transport.websocket import WebSocketTransport


if TYPE_CHECKING:
    from ..client.phone import Phone


__all__ = [
    "CHECK_NAMES",
    "Check",
    "DiagnosticsReport",
    "Verdict",
    "diagnose",
]

logger = logging.getLogger(__name__)

#: Every check of a report, in the order the report lists them.
CHECK_NAMES = ("wss", "rtt", "userReg", "udp", "tcp", "host", "srflx", "relay")

#: Default ports of RFC 7064/7065 URLs.
_STUN_PORT, _STUNS_PORT = 3478, 5349

_NO_SERVERS = "set MediaConfig.ice.servers (IceConfig(servers=[IceServer(...)]))"


class Verdict(enum.Enum):
    """How a check came out."""

    OK = "ok"
    WARNING = "warning"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Check:
    """One line of a :class:`DiagnosticsReport`.

    Attributes:
        name: the check (one of :data:`CHECK_NAMES`).
        verdict: ok, warning, failed or skipped.
        value: what was found: the URL, the registration state, ``12.3 ms``, an address.
        detail: how it was found, or why it failed.
        remedy: what to do about a failure or a warning (empty when ok).
        duration: seconds the check took.
        candidate: for ICE checks, the candidate line (``candidate:...``) that proved it;
            empty when none did.
    """

    name: str
    verdict: Verdict
    value: str = ""
    detail: str = ""
    remedy: str = ""
    duration: float = 0.0
    candidate: str = ""

    @property
    def ok(self) -> bool:
        """Whether the check passed (``ok``)."""
        return self.verdict is Verdict.OK

    def to_dict(self) -> dict[str, Any]:
        """The check as plain JSON types."""
        return {
            "name": self.name,
            "verdict": self.verdict.value,
            "value": self.value,
            "detail": self.detail,
            "remedy": self.remedy,
            "duration": round(self.duration, 4),
            "candidate": self.candidate,
        }


@dataclass(frozen=True)
class DiagnosticsReport:
    """What :func:`diagnose` found: one :class:`Check` per line, in :data:`CHECK_NAMES`
    order.

    Attributes:
        checks: the checks.
        account: the account's address of record (``sip:user@domain``).
        server: the WebSocket URL (without userinfo or query).
        started_at: when the checks started (seconds since the epoch).
        duration: seconds the whole report took.
        versions: the SDK, Python and platform versions (for a support ticket).
    """

    checks: tuple[Check, ...]
    account: str
    server: str
    started_at: float
    duration: float
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether no check failed (warnings and skipped checks do not count)."""
        return not self.failed

    @property
    def failed(self) -> list[Check]:
        """The checks whose verdict is ``failed``."""
        return [c for c in self.checks if c.verdict is Verdict.FAILED]

    def check(self, name: str) -> Check:
        """The check called ``name``.

        Raises:
            KeyError: there is no such check.
        """
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check {name!r} (checks: {', '.join(CHECK_NAMES)})")

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON types (what ``exotel-voice diagnose --json`` prints)."""
        return {
            "ok": self.ok,
            "account": self.account,
            "server": self.server,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at)),
            "duration": round(self.duration, 3),
            "versions": dict(self.versions),
            "checks": [c.to_dict() for c in self.checks],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)


def versions() -> dict[str, str]:
    """The SDK, Python and platform versions (the guide's ``browserVersion`` here)."""
    from .. import __version__

    return {
        "sdk": f"exotel-voice/{__version__}",
        "python": f"Python/{platform.python_version()}",
        "platform": f"{platform.system()}/{platform.release()} {platform.machine()}".strip(),
    }


# ============================================================================================
# ICE server URLs
# ============================================================================================
@dataclass(frozen=True)
class _Server:
    """One ``stun:``/``turn:``/``turns:`` URL, parsed. ``credential`` never shown."""

    kind: str  # "stun", "turn"
    secure: bool  # stuns:/turns:
    host: str
    port: int
    transport: str  # "udp" or "tcp"
    username: str | None = None
    credential: str | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def label(self) -> str:
        scheme = self.kind + ("s" if self.secure else "")
        return f"{scheme}:{self.where}" + (f"?transport={self.transport}"
                                           if self.kind == "turn" else "")


def _parse_url(url: str, server: IceServer) -> _Server:
    scheme, _, rest = url.partition(":")
    scheme = scheme.lower()
    rest, _, query = rest.partition("?")
    rest = rest.lstrip("/")
    secure = scheme in ("stuns", "turns")
    kind = "turn" if scheme.startswith("turn") else "stun"
    default_port = _STUNS_PORT if secure else _STUN_PORT
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    elif rest.count(":") == 1:
        host, port_text = rest.split(":")
    else:
        host, port_text = rest, ""
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise ValueError(f"bad port in ICE server URL {scheme}:{host}") from None
    transports = parse_qs(query).get("transport", [])
    transport = transports[0].lower() if transports else ("tcp" if secure else "udp")
    return _Server(kind, secure, host, port, transport, server.username, server.credential)


def _servers(media: MediaConfig) -> list[_Server]:
    out = []
    for server in media.ice.servers:
        for url in server.url_list:
            out.append(_parse_url(url, server))
    return out


# ============================================================================================
# The checks
# ============================================================================================
class _Clock:
    def __init__(self) -> None:
        self.start = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start


def _public_url(url: str) -> str:
    """The URL without userinfo or query (either may carry a token)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    rest = rest.split("?", 1)[0]
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = netloc.rsplit("@", 1)[1]
    return f"{scheme}://{netloc}{slash}{path}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class _WsListener:
    """Collects what the diagnostic WebSocket reports."""

    def __init__(self) -> None:
        self.up = asyncio.Event()
        self.down = asyncio.Event()
        self.error: TransportError | None = None
        self.responses: dict[str, asyncio.Future[Response]] = {}

    def transport_connected(self) -> None:
        self.up.set()

    def transport_disconnected(self, error: TransportError, retry_in: float | None) -> None:
        self.error = error
        self.down.set()

    def message_received(self, data: str | bytes) -> None:
        try:
            message = parse_message(data)
        except Exception:
            return
        if isinstance(message, Response):
            with contextlib.suppress(Exception):
                fut = self.responses.get(message.call_id)
                if fut is not None and not fut.done():
                    fut.set_result(message)


async def _wss_and_rtt(account: AccountConfig, timeout: float) -> tuple[Check, Check]:
    url = _public_url(account.ws_url)
    listener = _WsListener()
    clock = _Clock()
    transport = WebSocketTransport(
        account.ws_url,
        listener,
        tls=account.tls,
        keepalive=KeepaliveConfig(interval=None),
        reconnect=ReconnectPolicy(enabled=False),
        open_timeout=timeout,
    )
    try:
        transport.start()
        up = asyncio.ensure_future(listener.up.wait())
        down = asyncio.ensure_future(listener.down.wait())
        await asyncio.wait({up, down}, timeout=timeout + 0.5,
                           return_when=asyncio.FIRST_COMPLETED)
        up.cancel()
        down.cancel()
        connect_time = clock.elapsed
        if not transport.connected:
            reason = _transport_reason(listener.error) if listener.error else (
                f"no WebSocket connection within {timeout:g} s")
            wss = Check("wss", Verdict.FAILED, url, reason, _wss_remedy(reason, account),
                        connect_time)
            rtt = Check("rtt", Verdict.SKIPPED, "", "no WebSocket connection to send OPTIONS on",
                        "", 0.0)
            return wss, rtt
        sub = transport.subprotocol
        detail = f"WebSocket open in {connect_time * 1000:.0f} ms"
        if sub != "sip":
            wss = Check("wss", Verdict.WARNING, url,
                        f"{detail}, but the server did not accept the 'sip' subprotocol",
                        "check the server's WebSocket endpoint (docs: RFC 7118)", connect_time)
        else:
            wss = Check("wss", Verdict.OK, url, f"{detail}, subprotocol sip", "", connect_time)
        rtt = await _options_ping(account, transport, listener, timeout)
        return wss, rtt
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(transport.close(), 2.0)


def _transport_reason(error: TransportError) -> str:
    """The transport's text, plus the system's name of the error when the text lacks it
    (asyncio says "Connect call failed ('127.0.0.1', 5060)" for a refused connection)."""
    text = str(error)
    cause = error.__cause__
    if isinstance(cause, OSError) and cause.errno:
        name = os.strerror(cause.errno)
        if name.lower() not in text.lower():
            text = f"{text} ({name})"
    return text


def _wss_remedy(reason: str, account: AccountConfig) -> str:
    if "certificate" in reason:
        return ("trust the server's CA (sipAccountInfo caFile / TlsConfig(ca_file=...)) or "
                "fix the server's certificate")
    if "TLS" in reason:
        return "check that the server speaks TLS on this port (security 'wss' or 'ws')"
    if "refused" in reason.lower():
        return ("nothing listens there: check sipAccountInfo domain and port, and that the "
                "server is running")
    if "timed out" in reason or "within" in reason:
        return ("no answer: a firewall or proxy may block TCP to this port; check the "
                "domain, port and network")
    if "Name or service" in reason or "resolve" in reason or "getaddrinfo" in reason:
        return "the host name does not resolve: check sipAccountInfo domain and DNS"
    return "check sipAccountInfo domain, port, security and endpoint"


async def _options_ping(account: AccountConfig, transport: WebSocketTransport,
                        listener: _WsListener, timeout: float) -> Check:
    clock = _Clock()
    call_id = new_call_id()
    request = make_request(
        "OPTIONS",
        f"sip:{account.sip_domain}",
        from_=f"<{account.aor}>;tag={new_tag()}",
        to=f"<sip:{account.sip_domain}>",
        call_id=call_id,
        cseq=1,
        via=f"SIP/2.0/{'WSS' if account.secure else 'WS'} "
            f"{secrets.token_hex(6)}.invalid;branch={new_branch()}",
        headers=[("Accept", "application/sdp"), ("User-Agent", account.user_agent)],
    )
    fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
    listener.responses[call_id] = fut
    try:
        await transport.send(request.serialize())
        response = await asyncio.wait_for(fut, timeout)
    except (TimeoutError, TransportError) as exc:
        detail = (f"no response to OPTIONS within {timeout:g} s" if isinstance(exc, TimeoutError)
                  else f"OPTIONS not sent: {exc}")
        return Check("rtt", Verdict.WARNING, "", detail,
                     "the server may ignore OPTIONS; registration (userReg) tells whether "
                     "it answers SIP at all", clock.elapsed)
    elapsed = clock.elapsed
    return Check("rtt", Verdict.OK, f"{elapsed * 1000:.1f} ms",
                 f"OPTIONS answered {response.status} {response.reason}", "", elapsed)


async def _user_reg(account: AccountConfig, phone: Phone | None, timeout: float,
                    register: bool) -> Check:
    from ..client.phone import Phone as PhoneClass

    clock = _Clock()
    if phone is None and not register:
        return Check("userReg", Verdict.SKIPPED, "unregistered",
                     f"{account.aor}: no phone, and no REGISTER sent for this check",
                     "register first (Phone.register() / DoRegister()) to check the "
                     "registration", 0.0)
    if phone is not None:
        state = phone.registration_state
        source = "from the phone's background registration (no REGISTER sent)"
        if state is RegistrationState.REGISTERED:
            return Check("userReg", Verdict.OK, "registered", f"{account.aor} {source}", "",
                         clock.elapsed)
        error = phone.registration_error
        why = f": {error}" if error is not None else ""
        verdict = Verdict.FAILED if state is RegistrationState.FAILED else Verdict.WARNING
        return Check("userReg", verdict, state.name.lower(), f"{account.aor} {source}{why}",
                     _reg_remedy(error, registered_never=error is None), clock.elapsed)
    source = "a REGISTER sent for this check (and removed)"
    test_account = account.with_changes(
        reconnect=ReconnectPolicy(enabled=False), register_timeout=timeout,
        open_timeout=timeout, keepalive=KeepaliveConfig(interval=None),
    )
    test_phone = PhoneClass(test_account, network_poll=None)
    try:
        await test_phone.start()
        try:
            await asyncio.wait_for(test_phone.register(timeout=timeout), timeout + 0.5)
        except (SipError, TimeoutError, OSError) as exc:
            error = exc if isinstance(exc, SipError) else test_phone.registration_error
            reason = str(error) if error is not None else _reason(exc)
            if isinstance(exc, TimeoutError) and error is None:
                reason = f"no answer to REGISTER within {timeout:g} s"
            return Check("userReg", Verdict.FAILED, "unregistered",
                         f"{account.aor}, {source}: {reason}",
                         _reg_remedy(error or exc, registered_never=False), clock.elapsed)
        elapsed = clock.elapsed
        with contextlib.suppress(Exception):
            await test_phone.unregister(timeout=min(timeout, 2.0))
        return Check("userReg", Verdict.OK, "registered",
                     f"{account.aor}, {source}, in {elapsed * 1000:.0f} ms", "", elapsed)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(test_phone.close(), 3.0)


def _reg_remedy(error: BaseException | None, *, registered_never: bool) -> str:
    if isinstance(error, AuthenticationError):
        return "the server refused the credentials: check authUser/userName and secret"
    if isinstance(error, TransportError):
        return "the WebSocket connection failed: see wss"
    if isinstance(error, TimeoutError) or "timed out" in str(error or "") or "within" in str(
            error or ""):
        return "the registrar did not answer: check sipdomain and that the server is running"
    if registered_never:
        return "the phone is not registered: call register() / DoRegister()"
    return "check sipAccountInfo (userName, authUser, sipdomain, secret)"


# -- ICE -------------------------------------------------------------------------------------
@dataclass
class _Probe:
    """What one probe of an ICE server found."""

    server: _Server
    candidate: Candidate | None = None
    error: BaseException | None = None
    duration: float = 0.0
    mapped: tuple[str, int] | None = None

    @property
    def line(self) -> str:
        return f"candidate:{self.candidate.to_sdp()}" if self.candidate is not None else ""


class _BindingProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.answers: asyncio.Queue[bytes] = asyncio.Queue()
        self.refused: asyncio.Future[OSError] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.answers.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError) and not self.refused.done():
            self.refused.set_result(exc)


async def _resolve(host: str, port: int, kind: int, timeout: float) -> tuple[str, int]:
    try:
        ipaddress.ip_address(host)
        return host, port
    except ValueError:
        pass
    infos = await asyncio.wait_for(
        asyncio.get_running_loop().getaddrinfo(host, port, type=kind), timeout)
    address = infos[0][4]
    return str(address[0]), int(address[1])


async def _stun_binding(server: _Server, timeout: float) -> _Probe:
    """One STUN Binding over UDP, retransmitted (RFC 5389 7.2.1, shortened) until
    ``timeout``."""
    clock = _Clock()
    probe = _Probe(server)
    transport: asyncio.DatagramTransport | None = None
    try:
        addr = await _resolve(server.host, server.port, socket.SOCK_DGRAM, timeout)
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            _BindingProtocol, remote_addr=addr)
        request = stun.Message(message_method=stun.Method.BINDING,
                               message_class=stun.Class.REQUEST)
        data = bytes(request)
        deadline = loop.time() + timeout
        wait = 0.1
        while True:
            transport.sendto(data)
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError
            getter = asyncio.ensure_future(protocol.answers.get())
            waiting: set[asyncio.Future[Any]] = {getter, protocol.refused}
            done, _ = await asyncio.wait(waiting, timeout=min(wait, left),
                                         return_when=asyncio.FIRST_COMPLETED)
            if protocol.refused.done():
                getter.cancel()
                raise protocol.refused.result()
            if getter not in done:
                getter.cancel()
                wait = min(wait * 2, 1.0)
                continue
            with contextlib.suppress(ValueError):
                answer = stun.parse_message(getter.result())
                if answer.transaction_id != request.transaction_id:
                    continue
                if answer.message_class is stun.Class.ERROR:
                    raise stun.TransactionFailed(answer)
                mapped = answer.attributes.get("XOR-MAPPED-ADDRESS") or answer.attributes.get(
                    "MAPPED-ADDRESS")
                if mapped is None:
                    raise ValueError("the Binding response has no (XOR-)MAPPED-ADDRESS")
                local = transport.get_extra_info("sockname")
                probe.mapped = (str(mapped[0]), int(mapped[1]))
                probe.candidate = Candidate(
                    foundation=secrets.token_hex(4), component=1, transport="udp",
                    priority=_priority("srflx"), host=probe.mapped[0], port=probe.mapped[1],
                    type="srflx", related_address=str(local[0]), related_port=int(local[1]),
                )
                break
    except (OSError, TimeoutError, ValueError, stun.TransactionError) as exc:
        probe.error = exc
    finally:
        if transport is not None:
            transport.close()
        probe.duration = clock.elapsed
    return probe


class _RelayProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


async def _turn_allocation(server: _Server, timeout: float) -> _Probe:
    """A TURN allocation over the server's transport, deleted again at once."""
    clock = _Clock()
    probe = _Probe(server)
    try:
        # The name, not a resolved address: turns: checks the certificate against it.
        addr = (server.host, server.port)
        transport, protocol = await asyncio.wait_for(
            turn.create_turn_endpoint(
                _RelayProtocol, server_addr=addr, username=server.username,
                password=server.credential, ssl=True if server.secure else None,
                transport=server.transport,
            ),
            timeout,
        )
    except (OSError, TimeoutError, ValueError, ConnectionError, stun.TransactionError) as exc:
        probe.error = exc
        probe.duration = clock.elapsed
        return probe
    relayed = transport.get_extra_info("sockname")
    related = transport.get_extra_info("related_address")
    probe.mapped = related
    probe.candidate = Candidate(
        foundation=secrets.token_hex(4), component=1, transport="udp",
        priority=_priority("relay"), host=str(relayed[0]), port=int(relayed[1]), type="relay",
        related_address=str(related[0]) if related else None,
        related_port=int(related[1]) if related else None,
    )
    probe.duration = clock.elapsed
    transport.close()  # deletes the allocation (a Refresh with LIFETIME 0)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.shield(protocol.lost), 1.0)
    return probe


async def _tcp_connect(server: _Server, timeout: float) -> _Probe:
    clock = _Clock()
    probe = _Probe(server)
    try:
        addr = await _resolve(server.host, server.port, socket.SOCK_STREAM, timeout)
        _, writer = await asyncio.wait_for(asyncio.open_connection(*addr), timeout)
        probe.mapped = writer.get_extra_info("sockname")[:2]
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    except (OSError, TimeoutError) as exc:
        probe.error = exc
    probe.duration = clock.elapsed
    return probe


def _priority(kind: str) -> int:
    preference = {"host": 126, "srflx": 100, "relay": 0}[kind]
    return (preference << 24) + (65535 << 8) + 255


async def _host_candidates(media: MediaConfig) -> tuple[list[Candidate], list[str]]:
    addresses = (list(media.ice.host_addresses) if media.ice.host_addresses is not None
                 else get_host_addresses(use_ipv4=True, use_ipv6=True))
    loop = asyncio.get_running_loop()
    candidates: list[Candidate] = []
    errors: list[str] = []
    for address in addresses:
        try:
            transport, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=(address, 0))
        except OSError as exc:
            errors.append(f"{address}: {_reason(exc)}")
            continue
        try:
            local = transport.get_extra_info("sockname")
            candidates.append(Candidate(
                foundation=secrets.token_hex(4), component=1, transport="udp",
                priority=_priority("host"), host=str(local[0]), port=int(local[1]), type="host",
            ))
        finally:
            transport.close()
    return candidates, errors


def _udp_remedy(server: _Server) -> str:
    what = "TURN" if server.kind == "turn" else "STUN"
    return (f"UDP to the {what} server is blocked: allow UDP {server.port} or use TURN over "
            "TCP/TLS (turn:HOST:PORT?transport=tcp or turns:)")


def _probe_failure(probe: _Probe) -> tuple[str, str]:
    """(detail, remedy) of a failed STUN/TURN probe."""
    server, error = probe.server, probe.error
    if isinstance(error, stun.TransactionFailed):
        code, reason = error.response.attributes.get("ERROR-CODE", (0, ""))
        if code == 401:
            return (f"{server.label}: TURN refused the credentials ({code} {reason})",
                    "TURN refused the credentials (401): check the TURN user and password "
                    "(IceServer username and credential)")
        if code == 441:
            return (f"{server.label}: wrong credentials ({code} {reason})",
                    "check the TURN user and password")
        if code == 486:
            return (f"{server.label}: allocation quota reached ({code} {reason})",
                    "the TURN server refuses more allocations for this user: retry later "
                    "or raise its quota")
        return f"{server.label}: error response {code} {reason}".rstrip(), (
            "check the TURN server's configuration and logs")
    if server.kind == "turn" and server.username is None:
        hint = "; no username/credential configured for this TURN server"
    else:
        hint = ""
    if isinstance(error, TimeoutError | stun.TransactionTimeout):
        if server.transport == "udp":
            return (f"{server.label}: no answer over UDP within {probe.duration:.1f} s{hint}",
                    _udp_remedy(server))
        return (f"{server.label}: no answer over TCP within {probe.duration:.1f} s{hint}",
                f"allow TCP {server.port} to {server.host}, or check the TURN server")
    if isinstance(error, PermissionError) and server.transport == "udp":
        return (f"{server.label}: sending UDP is not permitted here ({_reason(error)}: a "
                "local firewall rule)", _udp_remedy(server))
    if isinstance(error, ConnectionRefusedError):
        return (f"{server.label}: connection refused",
                "nothing listens there: check the ICE server URL and that the server runs")
    if isinstance(error, OSError) and "resolve" in _reason(error).lower() or isinstance(
            error, socket.gaierror):
        return (f"{server.label}: the host name does not resolve",
                "check the ICE server URL and DNS")
    return f"{server.label}: {_reason(error) if error else 'failed'}{hint}", (
        "check the ICE server URL and that the server runs")


async def _ice_checks(media: MediaConfig, timeout: float,
                      report: Callable[[Check], None]) -> list[Check]:
    try:
        servers = _servers(media)
    except ValueError as exc:
        bad = [Check(name, Verdict.FAILED, "", str(exc), "fix MediaConfig.ice.servers")
               for name in ("udp", "tcp", "srflx", "relay")]
        for c in bad:
            report(c)
        host = await _host_check(media)
        report(host)
        return [*bad, host]
    stuns = [s for s in servers if s.kind == "stun" and not s.secure]
    turns = [s for s in servers if s.kind == "turn"]
    turn_udp = [s for s in turns if s.transport == "udp" and not s.secure]
    turn_tcp = [s for s in turns if s.transport == "tcp"]
    # Who answers a Binding over UDP: the STUN servers, else the TURN servers (which are
    # STUN servers too).
    binding_targets = stuns[:1] or [
        _Server("stun", False, s.host, s.port, "udp") for s in turn_udp[:1]]
    tcp_plain = [] if turn_tcp else [
        _Server("turn", False, s.host, s.port, "tcp", s.username, s.credential)
        for s in turn_udp[:1]]

    async def binding() -> list[_Probe]:
        return list(await asyncio.gather(*(_stun_binding(s, timeout) for s in binding_targets)))

    async def relay_udp() -> list[_Probe]:
        return list(await asyncio.gather(*(_turn_allocation(s, timeout) for s in turn_udp[:1])))

    async def relay_tcp() -> list[_Probe]:
        return list(await asyncio.gather(*(_turn_allocation(s, timeout) for s in turn_tcp[:1])))

    async def tcp_only() -> list[_Probe]:
        return list(await asyncio.gather(*(_tcp_connect(s, timeout) for s in tcp_plain)))

    clock = _Clock()
    host_task = asyncio.ensure_future(_host_check(media))
    bind_task = asyncio.ensure_future(binding())
    udp_task = asyncio.ensure_future(relay_udp())
    tcp_task = asyncio.ensure_future(relay_tcp())
    plain_task = asyncio.ensure_future(tcp_only())
    host = await host_task
    report(host)
    bindings = await bind_task
    relays_udp = await udp_task

    # udp: a Binding answered over UDP (or a UDP allocation).
    udp_ok = [p for p in (*bindings, *relays_udp) if p.candidate is not None]
    if not binding_targets and not turn_udp:
        udp = Check("udp", Verdict.SKIPPED, "", "no STUN/TURN server over UDP configured",
                    _NO_SERVERS if not servers else "", 0.0)
    elif udp_ok:
        p = udp_ok[0]
        udp = Check("udp", Verdict.OK, p.server.where,
                    f"{p.server.label} answered over UDP in {p.duration * 1000:.0f} ms",
                    "", p.duration, p.line)
    else:
        p = (bindings or relays_udp)[0]
        detail, remedy = _probe_failure(p)
        if isinstance(p.error, stun.TransactionFailed):
            # The server answered over UDP (with an error): UDP itself works.
            udp = Check("udp", Verdict.OK, p.server.where, f"{p.server.label} answered over "
                        "UDP (with an error, see relay)", "", p.duration)
        else:
            udp = Check("udp", Verdict.FAILED, p.server.where, detail, remedy, p.duration)
    report(udp)

    # srflx: the Binding's mapped address.
    if not binding_targets:
        srflx = Check("srflx", Verdict.SKIPPED, "", "no STUN server configured",
                      "no STUN server configured: " + _NO_SERVERS, 0.0)
    else:
        p = bindings[0]
        if p.candidate is not None:
            assert p.mapped is not None
            same = " (the same as a local address: no NAT in between)" if any(
                p.mapped[0] == c.host for c in _candidates_of(host)) else ""
            srflx = Check("srflx", Verdict.OK, f"{p.mapped[0]}:{p.mapped[1]}",
                          f"mapped address from {p.server.label}{same}", "", p.duration, p.line)
        else:
            detail, remedy = _probe_failure(p)
            srflx = Check("srflx", Verdict.FAILED, "", detail, remedy, p.duration)
    report(srflx)

    relays_tcp = await tcp_task
    plain = await plain_task
    # tcp: TURN over TCP (or a TCP connect to the TURN server's port).
    if relays_tcp:
        p = relays_tcp[0]
        if p.candidate is not None:
            tcp = Check("tcp", Verdict.OK, p.server.where,
                        f"TURN allocation over TCP at {p.server.label} in "
                        f"{p.duration * 1000:.0f} ms", "", p.duration, p.line)
        elif isinstance(p.error, stun.TransactionFailed):
            tcp = Check("tcp", Verdict.OK, p.server.where,
                        f"{p.server.label} answered over TCP (with an error, see relay)", "",
                        p.duration)
        else:
            detail, remedy = _probe_failure(p)
            tcp = Check("tcp", Verdict.FAILED, p.server.where, detail, remedy, p.duration)
    elif plain:
        p = plain[0]
        if p.error is None:
            tcp = Check("tcp", Verdict.OK, p.server.where,
                        f"TCP to {p.server.where} open (no TURN over TCP configured)",
                        "add turn:HOST:PORT?transport=tcp as a fallback for networks that "
                        "block UDP", p.duration)
        else:
            tcp = Check("tcp", Verdict.WARNING, p.server.where,
                        f"TCP to {p.server.where}: {_reason(p.error)} (no TURN over TCP "
                        "configured)",
                        "configure TURN over TCP or TLS for networks that block UDP",
                        p.duration)
    else:
        tcp = Check("tcp", Verdict.SKIPPED, "", "no TURN server configured (TCP is tried "
                    "against a TURN server)", _NO_SERVERS if not servers else
                    "add a TURN server over TCP (turn:HOST:PORT?transport=tcp) for networks "
                    "that block UDP", 0.0)
    report(tcp)

    # relay: the first allocation that worked (UDP preferred).
    done = [p for p in (*relays_udp, *relays_tcp) if p.candidate is not None]
    tried = [*relays_udp, *relays_tcp]
    if not turns:
        relay = Check("relay", Verdict.SKIPPED, "", "no TURN server configured",
                      "no TURN server configured: calls behind a strict NAT or firewall may "
                      "have no audio; add a turn: URL with username and credential to "
                      "MediaConfig.ice.servers", 0.0)
    elif done:
        p = done[0]
        others = [q for q in tried if q.candidate is None]
        note = "".join(f"; {_probe_failure(q)[0]}" for q in others)
        relay = Check("relay", Verdict.WARNING if others else Verdict.OK,
                      f"{p.candidate.host}:{p.candidate.port}" if p.candidate else "",
                      f"TURN allocation over {p.server.transport.upper()} at "
                      f"{p.server.label}{note}",
                      _probe_failure(others[0])[1] if others else "", p.duration, p.line)
    elif tried:
        # The most telling failure: a refusal of the credentials over a timeout.
        p = next((q for q in tried if isinstance(q.error, stun.TransactionFailed)), tried[0])
        detail, remedy = _probe_failure(p)
        relay = Check("relay", Verdict.FAILED, "", detail, remedy, p.duration)
    else:
        relay = Check("relay", Verdict.SKIPPED, "", "only TURN over TLS is configured, which "
                      "this check does not try", "", 0.0)
    report(relay)
    logger.debug("= ICE checks done in %.3f s", clock.elapsed)
    return [udp, tcp, host, srflx, relay]


def _candidates_of(check: Check) -> Iterable[Candidate]:
    if check.candidate:
        with contextlib.suppress(ValueError):
            yield Candidate.from_sdp(check.candidate.removeprefix("candidate:"))


async def _host_check(media: MediaConfig) -> Check:
    clock = _Clock()
    candidates, errors = await _host_candidates(media)
    if candidates:
        addresses = ", ".join(c.host for c in candidates)
        extra = f"; not usable: {'; '.join(errors)}" if errors else ""
        return Check("host", Verdict.OK, addresses, f"local UDP sockets on {addresses}{extra}",
                     "", clock.elapsed, f"candidate:{candidates[0].to_sdp()}")
    why = "; ".join(errors) if errors else "no network interface has an address (loopback " \
        "is left out unless MediaConfig.ice.host_addresses names it)"
    return Check("host", Verdict.FAILED, "", why,
                 "check the network connection, or set MediaConfig.ice.host_addresses",
                 clock.elapsed)


# ============================================================================================
# The report
# ============================================================================================
async def diagnose(
    account: AccountConfig,
    *,
    media: MediaConfig | None = None,
    phone: Phone | None = None,
    timeout: float = 3.0,
    register: bool = True,
    on_check: Callable[[Check], object] | None = None,
) -> DiagnosticsReport:
    """Run every network check concurrently and return the report.

    Args:
        account: the account whose server is checked (the guide's ``sipAccountInfo`` as an
            :class:`~exotel_voice.config.AccountConfig`).
        media: where the ICE servers and host addresses come from (``media.ice``); default
            ``phone.media_config`` or :class:`~exotel_voice.media.MediaConfig` (no servers:
            the STUN/TURN checks are skipped, saying so).
        phone: a phone of this account; its background registration answers ``userReg``
            (no REGISTER is sent). Without one a REGISTER is sent and removed again
            (unless ``register`` is false). Mind that a registrar keeping one contact per
            address of record replaces another device's registration of the same account
            with this one, and the removal leaves none: pass the phone, or
            ``register=False``, while the account is in use elsewhere.
        register: without a ``phone``, whether to send that REGISTER (``False``: userReg
            is ``skipped``).
        timeout: each check's deadline in seconds (the report takes about this long at
            most when something does not answer).
        on_check: called with each :class:`Check` as it completes (in completion order).

    Returns:
        The :class:`DiagnosticsReport`, its checks in :data:`CHECK_NAMES` order. A check
        that raised unexpectedly is ``failed`` with the exception's type and text.
    """
    if not timeout > 0:
        raise ValueError("timeout must be a positive number of seconds")
    if media is None:
        media = phone.media_config if phone is not None else MediaConfig()
    started = time.time()
    clock = _Clock()
    found: dict[str, Check] = {}

    def report(check: Check) -> None:
        found[check.name] = check
        if on_check is not None:
            try:
                on_check(check)
            except Exception:
                logger.exception("! diagnose: on_check raised")

    async def guarded(names: tuple[str, ...], work: Awaitable[object]) -> None:
        try:
            result = await work
        except Exception as exc:  # a bug or a surprise: the report still comes back
            logger.exception("! diagnose: %s", "/".join(names))
            for name in names:
                if name not in found:
                    report(Check(name, Verdict.FAILED, "", f"{type(exc).__name__}: {exc}",
                                 "report this as a bug of exotel-voice", clock.elapsed))
            return
        if isinstance(result, Check):
            report(result)
        elif isinstance(result, tuple):
            for c in result:
                report(c)

    await asyncio.gather(
        guarded(("wss", "rtt"), _wss_and_rtt(account, timeout)),
        guarded(("userReg",), _user_reg(account, phone, timeout, register)),
        guarded(("udp", "tcp", "host", "srflx", "relay"), _ice_checks(media, timeout, report)),
    )
    checks = tuple(found[name] for name in CHECK_NAMES if name in found)
    return DiagnosticsReport(
        checks=checks,
        account=account.aor,
        server=_public_url(account.ws_url),
        started_at=started,
        duration=clock.elapsed,
        versions=versions(),
    )

