"""The sandbox: an embedded Exotel-like server on 127.0.0.1.

Theory of operation
-------------------
:class:`Sandbox` runs, in the caller's event loop:

* SIP over WebSocket (RFC 7118, subprotocol ``sip``) on ``ws://`` and ``wss://`` (a
  self-signed certificate made at start-up), one :class:`~.flow.Flow` per connection;
* a registrar with digest authentication (:class:`~.digest.DigestServer`, MD5 + qop=auth)
  for the configured users; a user's newest binding wins; bindings die with their flow;
* calls that outlive their client's connection, as behind a proxy whose far end stays up:
  when a flow closes, its established legs are kept (dialog and media) for
  :attr:`SandboxConfig.connection_grace` seconds; an in-dialog request of the client on a
  new flow (its target-refresh re-INVITE, or a BYE, INFO, UPDATE) moves the leg there
  (:meth:`Sandbox.resume_dialog`), and a leg not moved in time ends as at once before;
* a back-to-back user agent that terminates media (:mod:`.legs`): a client's INVITE to a
  test number (:mod:`.numbers`) is answered by the sandbox; an INVITE to another user
  makes a second leg to that user and bridges the audio and DTMF of the two. The SIP side
  of every leg is a call of one :class:`~exotel_voice.sip.calls.CallLayer`
  (:attr:`Sandbox.call_layer`), the same sans-I/O core the phone uses; the sandbox only
  authenticates, routes and hands new INVITEs to it (``accept_calls=False``);
* the REST emulation of Exotel's ``Calls/connect`` (:mod:`.rest`), which calls ``From``
  first with an ``X-Exotel-Callsid`` header and, once answered, connects ``To``.

Every call, whichever way it started, is a :class:`SandboxCall` in :attr:`Sandbox.calls`,
which tests can inspect (status, legs, the IVR's digits).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import secrets
import shutil
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.typing import Subprotocol

from ..exceptions import InvalidMessage, InvalidState, SipError
from ..media import IceConfig, MediaConfig, SilenceSource
from ..sip.calls import ALLOW, CallLayer, SessionState
from ..sip.dialog import DialogId, request_dialog_id
from ..sip.events import Event, RequestReceived
from ..sip.headers import NameAddr
from ..sip.message import Request, parse_message
from ..sip.transaction import ServerTransaction
from ..sip.uri import URI, SipURI, parse_uri
from ..sip.utils import KNOWN_METHODS, make_response
from .certs import SelfSignedCertificate, make_certificate
from .digest import DigestServer, Verdict
from .flow import Flow
from .legs import Leg
from .numbers import TEST_NUMBERS, Bridge, NumberApp, make_app


__all__ = ["Binding", "Sandbox", "SandboxCall", "SandboxConfig", "normalise_party"]

logger = logging.getLogger(__name__)

#: Methods that only exist inside a dialog (or a subscription, for NOTIFY: the sandbox holds
#: none): outside one the sandbox answers 481, not 405.
_IN_DIALOG_ONLY = frozenset({"BYE", "INFO", "UPDATE", "PRACK", "NOTIFY"})

#: The longest registration the sandbox grants, in seconds.
MAX_EXPIRES = 3600


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


@dataclass
class SandboxConfig:
    """How the sandbox listens and who may use it.

    Port ``0`` picks a free port; ``None`` turns that listener off.

    Attributes:
        host: the address to listen on (and the only ICE address of its media).
        ws_port: SIP over ``ws://``.
        wss_port: SIP over ``wss://`` (self-signed certificate).
        http_port: the REST emulation (plain HTTP).
        domain: the SIP domain and digest realm (the guide's ``sipdomain``).
        users: SIP user -> password. Empty: one user ``agent`` with a random password.
        account_sid: the REST account SID (the path's ``<sid>``).
        api_key: the REST Basic-auth user name. ``None``: random.
        api_token: the REST Basic-auth password. ``None``: random.
        tone_hz: the ``tone`` test number's frequency.
        ring_timeout: seconds a REST call rings a leg before giving up (no-answer),
            unless the request's ``TimeOut`` says otherwise.
        auth_invites: challenge INVITEs with 407 (as real proxies do).
        codecs: the sandbox media's codecs, in order of preference.
        cert_dir: where to write the TLS certificate; a temporary folder when ``None``.
        connection_grace: seconds a client's established calls outlive its lost
            WebSocket, waiting for an in-dialog request of the client (its target-refresh
            re-INVITE) on a new connection, as a proxy in front of a far end that stays up
            does; then they end, the other party getting a BYE. ``0`` ends them at once.
    """

    host: str = "127.0.0.1"
    ws_port: int | None = 8088
    wss_port: int | None = 8089
    http_port: int | None = 8090
    domain: str = "sandbox.exotel.test"
    users: dict[str, str] = field(default_factory=dict, repr=False)
    account_sid: str = "sandbox"
    api_key: str | None = None
    api_token: str | None = field(default=None, repr=False)
    tone_hz: float = 440.0
    ring_timeout: float = 30.0
    auth_invites: bool = True
    codecs: list[str] = field(default_factory=lambda: ["opus", "PCMU", "PCMA"])
    cert_dir: Path | None = None
    connection_grace: float = 30.0


@dataclass
class Binding:
    """A registered contact: where to send a user's calls."""

    user: str
    flow: Flow
    contact: NameAddr
    expires_at: float


@dataclass(eq=False)
class SandboxCall:
    """One call through the sandbox, as the REST API and tests see it.

    Attributes:
        sid: the call SID (``X-Exotel-Callsid`` on REST calls).
        from_: the REST ``From`` or the calling user.
        to: the REST ``To`` or the dialled number.
        caller_id: the REST ``CallerId`` (``PhoneNumberSid``).
        direction: ``"outbound-api"`` (REST) or ``"inbound"`` (a client's INVITE).
        status: ``queued``, ``ringing``, ``in-progress``, ``completed``, ``busy``,
            ``no-answer``, ``failed`` or ``canceled``.
        legs: the SIP legs, first leg first.
        app: the test number's app when ``to`` is one (``.digits`` for the IVR).
    """

    sid: str
    from_: str
    to: str
    caller_id: str
    direction: str
    status: str = "queued"
    date_created: datetime.datetime = field(default_factory=_now)
    date_updated: datetime.datetime = field(default_factory=_now)
    start_time: datetime.datetime | None = None
    end_time: datetime.datetime | None = None
    legs: list[Leg] = field(default_factory=list)
    app: NumberApp | None = None
    _done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    FINAL = ("completed", "busy", "no-answer", "failed", "canceled")

    @property
    def ended(self) -> bool:
        """Whether the call reached a final status."""
        return self.status in self.FINAL

    @property
    def duration(self) -> int | None:
        """Seconds from answer to end, once ended after an answer."""
        if self.start_time is None or self.end_time is None:
            return None
        return int((self.end_time - self.start_time).total_seconds())

    def set_status(self, status: str) -> None:
        """Move to ``status`` (a final status sticks)."""
        if self.ended:
            return
        self.status = status
        self.date_updated = _now()
        if status == "in-progress" and self.start_time is None:
            self.start_time = self.date_updated
        if self.ended:
            self.end_time = self.date_updated
            self._done.set()
        logger.info("call %s %s -> %s: %s", self.sid, self.from_, self.to, status)

    async def wait_ended(self, timeout: float | None = None) -> None:
        """Wait for a final status."""
        await asyncio.wait_for(self._done.wait(), timeout)

    def hangup(self) -> None:
        """End every leg (the sandbox hangs up)."""
        for leg in self.legs:
            leg.hangup()


def _status_for(leg: Leg) -> str:
    """The REST status of a call whose leg ended before it connected."""
    if leg.end_status in (486, 600):
        return "busy"
    if leg.end_status in (408, 480, 487) or leg.end_reason == "no answer":
        return "no-answer"
    if leg.end_status == 603:
        return "busy"
    return "failed"


class Sandbox:
    """An Exotel-like SIP + REST server for tests and demos.

    Use as ``async with Sandbox(config) as sandbox:`` (or :meth:`start`/:meth:`close`).

    Args:
        config: listeners, users and behaviour; defaults to :class:`SandboxConfig`'s.
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        grace = self.config.connection_grace
        if not isinstance(grace, (int, float)) or not 0 <= grace < math.inf:
            raise ValueError(
                f"SandboxConfig.connection_grace must be finite seconds >= 0, not {grace!r}"
            )
        if not self.config.users:
            self.config.users = {"agent": secrets.token_urlsafe(12)}
        if self.config.api_key is None:
            self.config.api_key = "key_" + secrets.token_hex(8)
        if self.config.api_token is None:
            self.config.api_token = secrets.token_hex(16)
        self.media_config = MediaConfig(
            ice=IceConfig(host_addresses=[self.config.host], gather_timeout=1.0),
            codecs=list(self.config.codecs),
        )
        self.bindings: dict[str, Binding] = {}
        self.calls: list[SandboxCall] = []
        self.flows: set[Flow] = set()
        #: The SIP side of every leg: one call layer over all client flows. New INVITEs
        #: are the sandbox's (authenticate, route), then handed over with accept_invite.
        self.call_layer = CallLayer(
            aor=self.uri("sandbox"), accept_calls=False, ring_timeout=None
        )
        #: Live legs by their call-layer session id.
        self.legs: dict[str, Leg] = {}
        #: Legs whose client's connection is lost, waiting for it on a new one, by the
        #: dialog id an in-dialog request of the client names (Call-ID, our tag, its tag).
        self.kept: dict[DialogId, Leg] = {}
        self._dispatching_calls = False
        self.certificate: SelfSignedCertificate | None = None
        self._servers: list[Server] = []
        self._rest: Any = None
        self._ports: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._registered = asyncio.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._temp_dir: Path | None = None
        self.digest: DigestServer | None = None
        self._started = False
        self._closed = False

    def __repr__(self) -> str:
        return f"<Sandbox {self.config.host} ports={self._ports} users={sorted(self.users)}>"

    # ========================================================================================
    # Life cycle
    # ========================================================================================
    async def start(self) -> None:
        """Open the listeners."""
        if self._closed:
            raise InvalidState("cannot restart a closed Sandbox; create a new one")
        if self._started:
            return
        self._started = True
        self._loop = asyncio.get_running_loop()
        loop = self._loop
        self.digest = DigestServer(self.config.domain, self.config.users, clock=loop.time)
        host = self.config.host
        if self.config.ws_port is not None:
            server = await serve(
                self._ws_handler(secure=False),
                host,
                self.config.ws_port,
                subprotocols=[Subprotocol("sip")],
            )
            self._servers.append(server)
            self._ports["ws"] = _port_of(server)
        if self.config.wss_port is not None:
            hosts = [host] + (["localhost"] if host in ("127.0.0.1", "::1") else [])
            if self.config.cert_dir is None:
                self.certificate = make_certificate(hosts)
                self._temp_dir = self.certificate.cert_file.parent
            else:
                self.certificate = make_certificate(hosts, self.config.cert_dir)
            server = await serve(
                self._ws_handler(secure=True),
                host,
                self.config.wss_port,
                subprotocols=[Subprotocol("sip")],
                ssl=self.certificate.server_context(),
            )
            self._servers.append(server)
            self._ports["wss"] = _port_of(server)
        if self.config.http_port is not None:
            from .rest import RestServer

            self._rest = RestServer(self)
            self._ports["http"] = await self._rest.start(host, self.config.http_port)
        logger.info("sandbox listening: %s", self._ports)

    async def close(self) -> None:
        """Hang up every call, close every connection and listener."""
        if self._closed:
            return
        self._closed = True
        for leg in list(self.kept.values()):
            leg.give_up("the sandbox closed")
        for call in self.calls:
            call.hangup()
        await asyncio.sleep(0.05)  # let the BYEs go out
        for server in self._servers:
            server.close()
        await self._shut_down()

    async def crash(self) -> None:
        """Stop at once, as a killed server process would: no BYE, no closing handshake.

        Every client's TCP connection is aborted and the listeners close; the calls' media
        stops. To see what clients do when the server comes back, start a new
        :class:`Sandbox` with the same ports and users: it knows none of the old
        registrations, calls or nonces.
        """
        if self._closed:
            return
        self._closed = True
        for leg in list(self.kept.values()):
            leg.give_up("the sandbox crashed")
        for server in self._servers:
            server.close(close_connections=False)
        for flow in list(self.flows):
            # Before any flow's end is handled, so that no BYE reaches another client.
            flow.ws.transport.abort()
        await self._shut_down()

    async def _shut_down(self) -> None:
        for server in self._servers:
            await server.wait_closed()
        if self._rest is not None:
            await self._rest.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a task the sandbox keeps, logs and cancels on close."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                logger.error("! %s failed", name, exc_info=t.exception())

        task.add_done_callback(done)
        return task

    # ========================================================================================
    # Addresses and credentials
    # ========================================================================================
    @property
    def users(self) -> dict[str, str]:
        """SIP user -> password."""
        return self.config.users

    @property
    def ports(self) -> dict[str, int]:
        """The bound ports: ``ws``, ``wss``, ``http`` (those enabled)."""
        return dict(self._ports)

    def _url(self, scheme: str, key: str, path: str) -> str:
        if key not in self._ports:
            raise InvalidState(f"the sandbox has no {key} listener")
        host = self.config.host
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{self._ports[key]}{path}"

    @property
    def ws_url(self) -> str:
        """``ws://host:port/ws``."""
        return self._url("ws", "ws", "/ws")

    @property
    def wss_url(self) -> str:
        """``wss://host:port/wss``."""
        return self._url("wss", "wss", "/wss")

    @property
    def rest_url(self) -> str:
        """The account's REST base, ``http://host:port/v1/Accounts/<sid>``."""
        return self._url("http", "http", f"/v1/Accounts/{self.config.account_sid}")

    @property
    def ca_file(self) -> str | None:
        """The PEM file a client should trust for ``wss://``."""
        return str(self.certificate.cert_file) if self.certificate is not None else None

    def add_user(self, name: str, password: str | None = None) -> str:
        """Add (or reset) a SIP user; returns its password."""
        if not name or name in TEST_NUMBERS:
            raise ValueError(f"{name!r} cannot be a user name")
        self.config.users[name] = password if password is not None else secrets.token_urlsafe(12)
        return self.config.users[name]

    def sip_account_info(self, user: str = "agent", *, secure: bool = False) -> dict[str, Any]:
        """The guide's ``sipAccountInfo`` for ``user`` (with ``wsUrl``/``caFile`` extras)."""
        return {
            "userName": user,
            "authUser": user,
            "sipdomain": self.config.domain,
            "domain": f"{self.config.host}:{self._ports['wss' if secure else 'ws']}",
            "port": str(self._ports["wss" if secure else "ws"]),
            "security": "wss" if secure else "ws",
            "endpoint": "wss" if secure else "ws",
            "secret": self.users[user],
            "wsUrl": self.wss_url if secure else self.ws_url,
            **({"caFile": self.ca_file} if secure and self.ca_file else {}),
        }

    def uri(self, user: str) -> SipURI:
        """``sip:<user>@<domain>``."""
        return SipURI("sip", user, self.config.domain)

    def contact(self, secure: bool) -> NameAddr:
        """The sandbox's own Contact on a ws (or wss) flow."""
        key = "wss" if secure else "ws"
        uri = SipURI(
            "sip",
            "sandbox",
            self.config.host,
            self._ports.get(key),
            {"transport": key},
        )
        return NameAddr(uri)

    # ========================================================================================
    # WebSocket
    # ========================================================================================
    def _ws_handler(self, *, secure: bool) -> Any:
        async def handler(ws: ServerConnection) -> None:
            flow = Flow(self, ws, secure=secure)
            self.flows.add(flow)
            logger.info("%r connected", flow)
            await flow.serve()

        return handler

    def flow_closed(self, flow: Flow) -> None:
        """A client's WebSocket closed: its bindings go; its established legs are kept for
        :attr:`SandboxConfig.connection_grace` seconds (see :meth:`resume_dialog`), the
        others (ringing, or every leg when the grace is 0) end at once."""
        self.flows.discard(flow)
        logger.info("%r closed", flow)
        for user, binding in list(self.bindings.items()):
            if binding.flow is flow:
                del self.bindings[user]
        grace = self.config.connection_grace
        if grace > 0 and not self._closed:
            for leg in list(self.legs.values()):
                dialog = leg.dialog
                if (
                    leg.flow is flow
                    and leg.connected
                    and leg.session.state is SessionState.ESTABLISHED
                    and dialog is not None
                ):
                    leg.keep(grace)
                    self.kept[dialog.id] = leg
        flow.pump.run(
            lambda now: self.call_layer.connection_lost(
                flow.conn, now, end_calls=True, reason="client connection lost"
            )
        )

    def resume_dialog(self, flow: Flow, data: str | bytes) -> None:
        """Before ``flow``'s connection sees ``data``: if it is an in-dialog request of a
        kept leg (its client's old connection was lost), move that leg onto ``flow``, so
        the request, and all that follows in the dialog either way, is the leg's.

        The leg is found by the request's dialog id (Call-ID, our tag in To, the client's
        in From), as a proxy routes an in-dialog request by its route set without
        challenging it; the target refresh then gives the dialog the client's new Contact.
        """
        if not self.kept:
            return
        try:
            message = parse_message(data)
            if not isinstance(message, Request) or message.method == "CANCEL":
                return
            dialog_id = request_dialog_id(message)
        except SipError:
            return  # the connection answers what is wrong with it
        if dialog_id is None:
            return
        leg = self.kept.pop(dialog_id, None)
        if leg is not None:
            leg.resume(flow)

    def dispatch_call_events(self) -> bool:
        """Hand the call layer's events to their legs; ``True`` if there were any.

        Flows call this after their own events. Re-entrant calls (a leg's command flushes
        its flow from inside a dispatch) return at once: the outer loop picks new events up.
        """
        if self._dispatching_calls:
            return False
        self._dispatching_calls = True
        found = False
        try:
            while events := self.call_layer.events_received():
                found = True
                for event in events:
                    leg = self.legs.get(event.call.id)
                    if leg is None:
                        continue
                    try:
                        leg.on_call_event(event)
                    except Exception:
                        logger.exception("! %r: error handling %s", leg, type(event).__name__)
        finally:
            self._dispatching_calls = False
        return found

    # ========================================================================================
    # SIP dispatch
    # ========================================================================================
    def handle_event(self, flow: Flow, event: Event) -> None:
        """Act on one event from a flow's SIP connection that the call layer did not take:
        REGISTER, new INVITEs, out-of-dialog requests.

        Outside any call: OPTIONS gets 200 with ``Allow``; BYE, INFO, UPDATE, PRACK and
        NOTIFY (the sandbox holds no subscription, RFC 6665 §4.1.3), or any request with a To
        tag, name a dialog the sandbox does not have: 481 (RFC 3261 §12.2.2); a MESSAGE is
        taken (200) and logged, not relayed; an unknown method gets 501 (§8.2.1), and 405
        with ``Allow`` is only for a method that ``Allow`` does not list."""
        if isinstance(event, RequestReceived):
            if event.dialog is not None:
                return  # a dialog with no live call: the layer answers those
            request, tx = event.request, event.transaction
            if tx is None:  # an ACK outside any dialog we know
                return
            if request.method == "REGISTER":
                self._register(flow, request)
            elif request.method == "INVITE" and request.to.tag is None:
                self._invite(flow, request, tx)
            elif request.method == "OPTIONS":
                flow.send_response(make_response(request, 200, headers=[("Allow", ALLOW)]))
            elif request.method not in KNOWN_METHODS:
                flow.send_response(make_response(request, 501))
            elif request.to.tag is not None or request.method in _IN_DIALOG_ONLY:
                flow.send_response(make_response(request, 481))
            elif request.method == "MESSAGE":
                logger.info("MESSAGE from %s to %s taken (the sandbox does not relay messages)",
                            request.from_.uri, request.uri)
                flow.send_response(make_response(request, 200))
            else:
                flow.send_response(make_response(request, 405, headers=[("Allow", ALLOW)]))

    # -- registrar ---------------------------------------------------------------------------
    def _challenge(self, flow: Flow, request: Request, *, proxy: bool, stale: bool) -> None:
        assert self.digest is not None
        header = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        status = 407 if proxy else 401
        flow.send_response(
            make_response(
                request, status, headers=[(header, self.digest.challenge_header(stale=stale))]
            )
        )

    def _authenticate(self, flow: Flow, request: Request, *, proxy: bool) -> str | None:
        """The authenticated user, or ``None`` after answering 401/407/403."""
        assert self.digest is not None
        result = self.digest.verify(
            request, "Proxy-Authorization" if proxy else "Authorization"
        )
        # A nonce we did not issue (from before a restart) is challenged afresh, never
        # refused: only a wrong digest on our own nonce is a 403.
        if result.verdict in (Verdict.MISSING, Verdict.STALE, Verdict.FOREIGN):
            self._challenge(flow, request, proxy=proxy, stale=result.verdict is Verdict.STALE)
            return None
        if not result.ok:
            logger.info(
                "%r: %s from %r refused: %s",
                flow, request.method, result.username, result.verdict.value,
            )
            flow.send_response(make_response(request, 403, "Forbidden"))
            return None
        return result.username

    def _register(self, flow: Flow, request: Request) -> None:
        user = self._authenticate(flow, request, proxy=False)
        if user is None:
            return
        to_user = getattr(request.to.uri, "user", None)
        if to_user != user:
            flow.send_response(make_response(request, 403, "Forbidden (To is not the user)"))
            return
        raw = [v.strip() for v in request.headers.get_all("Contact")]
        if raw == ["*"]:
            self.bindings.pop(user, None)
            flow.send_response(make_response(request, 200))
            return
        try:
            contacts = request.contacts
            header_expires = request.headers.get("Expires")
            default = int(header_expires) if header_expires is not None else MAX_EXPIRES
        except (InvalidMessage, ValueError):
            flow.send_response(make_response(request, 400, "Bad Contact or Expires"))
            return
        granted: list[str] = []
        for contact in contacts:
            try:
                expires = int(contact.params.get("expires") or default)
            except ValueError:
                expires = default
            expires = max(0, min(expires, MAX_EXPIRES))
            current = self.bindings.get(user)
            if expires == 0:
                if current is not None and str(current.contact.uri) == str(contact.uri):
                    del self.bindings[user]
                    logger.info("%s unregistered", user)
                continue
            self.bindings[user] = Binding(user, flow, contact, flow.now() + expires)
            bound = NameAddr(contact.uri, contact.display_name, dict(contact.params))
            bound.params["expires"] = str(expires)
            granted.append(str(bound))
            logger.info("%s registered from %r for %d s", user, flow, expires)
        headers = [("Contact", value) for value in granted]
        flow.send_response(make_response(request, 200, headers=headers))
        self.spawn(self._notify_registered(), "registration notify")

    async def _notify_registered(self) -> None:
        async with self._registered:
            self._registered.notify_all()

    def binding(self, user: str) -> Binding | None:
        """The user's live binding, or ``None`` (offline or expired)."""
        binding = self.bindings.get(user)
        if binding is None:
            return None
        if binding.flow.closed or binding.expires_at < binding.flow.now():
            self.bindings.pop(user, None)
            return None
        return binding

    async def wait_registered(self, user: str, timeout: float = 10.0) -> Binding:
        """Wait until ``user`` has a binding."""
        async with asyncio.timeout(timeout), self._registered:
            while True:
                binding = self.binding(user)
                if binding is not None:
                    return binding
                await self._registered.wait()

    # -- calls from clients ------------------------------------------------------------------
    def _invite(self, flow: Flow, request: Request, tx: ServerTransaction) -> None:
        if self.config.auth_invites:
            caller = self._authenticate(flow, request, proxy=True)
            if caller is None:
                return
        else:
            caller = getattr(request.from_.uri, "user", None) or ""
            if self.binding(caller) is None or self.bindings[caller].flow is not flow:
                flow.send_response(make_response(request, 403, "Forbidden (not registered)"))
                return
        target = _user_of(request.uri) or _user_of(request.to.uri) or ""
        if target not in TEST_NUMBERS and target not in self.users:
            flow.send_response(make_response(request, 404, "Not Found"))
            return
        leg = Leg.incoming(self, flow, request, tx, caller)
        if leg is None:
            return  # refused by the call layer (400, 415)
        call = SandboxCall(
            sid=secrets.token_hex(16),
            from_=caller,
            to=target,
            caller_id=caller,
            direction="inbound",
        )
        call.legs.append(leg)
        self.calls.append(call)
        if target in TEST_NUMBERS:
            self.spawn(self._answer_number(call, leg, target), f"call {call.sid} {target}")
        else:
            self.spawn(self._call_user(call, leg, target), f"call {call.sid} {target}")

    async def _answer_number(self, call: SandboxCall, leg: Leg, number: str) -> None:
        leg.end_listeners.append(lambda _: self._leg_ended(call))
        if number == "busy":
            leg.reject(486, "Busy Here")
            call.set_status("busy")
            return
        leg.ring()
        call.set_status("ringing")
        if number == "noanswer":
            return  # rings until the caller cancels (487)
        app = make_app(number, tone_hz=self.config.tone_hz)
        assert app is not None
        call.app = app
        try:
            await leg.answer(app.source())
        except InvalidState:
            call.set_status("failed")
            return
        app.attach(leg)
        call.set_status("in-progress")

    async def _call_user(self, call: SandboxCall, a: Leg, user: str) -> None:
        a.end_listeners.append(lambda _: self._leg_ended(call))
        binding = self.binding(user)
        if binding is None:
            a.reject(480, "Temporarily Unavailable")
            call.set_status("failed")
            return
        a.ring()
        call.set_status("ringing")
        b = await Leg.outgoing(
            self,
            binding.flow,
            user=user,
            target=binding.contact.uri,
            caller=a.user,
            caller_name=a.invite.from_.display_name,
            headers=[("X-Exotel-Callsid", call.sid)],
            source=SilenceSource(),
            ring_timeout=self.config.ring_timeout,
        )
        call.legs.append(b)
        b.end_listeners.append(lambda _: self._leg_ended(call))
        if a.ended:
            b.hangup("caller gave up")
        if not await b.wait_connected():
            if not a.ended:
                status = b.end_status if b.end_status and b.end_status >= 400 else 480
                a.reject(status, None)
            call.set_status(_status_for(b))
            return
        try:
            await a.answer(SilenceSource())
        except InvalidState:
            b.hangup("caller gave up")
            return
        await Bridge(a, b).start()
        call.set_status("in-progress")

    def _leg_ended(self, call: SandboxCall) -> None:
        """A leg ended: end the others and settle the call's status."""
        for leg in call.legs:
            if not leg.ended:
                leg.hangup("the other party hung up")
        if call.ended:
            return
        if call.status == "in-progress":
            call.set_status("completed")
        else:
            first = call.legs[0]
            ended = [leg for leg in call.legs if leg.ended]
            last = ended[-1] if ended else first
            if first.direction == "incoming" and first.end_status == 487:
                call.set_status("canceled")
            else:
                call.set_status(_status_for(last))

    # ========================================================================================
    # Calls/connect
    # ========================================================================================
    def find_call(self, sid: str) -> SandboxCall | None:
        """The call with this SID."""
        for call in self.calls:
            if call.sid == sid:
                return call
        return None

    def connect(
        self,
        from_: str,
        to: str,
        caller_id: str = "",
        *,
        time_out: float | None = None,
        time_limit: float | None = None,
    ) -> SandboxCall:
        """Start a click-to-call, as ``POST Calls/connect`` does: ring ``from_`` (a user),
        then connect ``to`` (a test number or another user). Returns at once.

        Raises:
            ValueError: ``from_`` is not a user, or ``to`` neither a user nor a test number.
        """
        from_user = normalise_party(from_)
        to_user = normalise_party(to)
        if from_user not in self.users:
            raise ValueError(f"From {from_!r} is not a sandbox user")
        if to_user not in self.users and to_user not in TEST_NUMBERS:
            raise ValueError(f"To {to!r} is neither a sandbox user nor a test number")
        call = SandboxCall(
            sid=secrets.token_hex(16),
            from_=from_,
            to=to,
            caller_id=caller_id,
            direction="outbound-api",
        )
        self.calls.append(call)
        self.spawn(
            self._run_connect(call, from_user, to_user, time_out, time_limit),
            f"connect {call.sid}",
        )
        return call

    async def _dial_user(
        self,
        call: SandboxCall,
        user: str,
        caller: str,
        time_out: float | None,
        app: NumberApp | None = None,
    ) -> Leg | None:
        binding = self.binding(user)
        if binding is None:
            logger.info("call %s: %s is not registered", call.sid, user)
            call.set_status("failed")
            return None
        leg = await Leg.outgoing(
            self,
            binding.flow,
            user=user,
            target=binding.contact.uri,
            caller=caller,
            headers=[("X-Exotel-Callsid", call.sid)],
            source=app.source() if app is not None else SilenceSource(),
            ring_timeout=time_out if time_out is not None else self.config.ring_timeout,
        )
        if app is not None:
            # Listen before the answer: the client may send DTMF the moment it answers.
            call.app = app
            app.attach(leg)
        call.legs.append(leg)
        leg.end_listeners.append(lambda _: self._leg_ended(call))
        return leg

    async def _run_connect(
        self,
        call: SandboxCall,
        from_user: str,
        to: str,
        time_out: float | None,
        time_limit: float | None,
    ) -> None:
        caller = normalise_party(call.caller_id) or "sandbox"
        # A test number answers at once, so its app serves the first leg from the start.
        app = make_app(to, tone_hz=self.config.tone_hz) if to in TEST_NUMBERS else None
        first = await self._dial_user(call, from_user, caller, time_out, app)
        if first is None:
            return
        call.set_status("ringing")
        if not await first.wait_connected():
            return  # _leg_ended set the status
        call.set_status("in-progress")
        if time_limit is not None:
            asyncio.get_running_loop().call_later(time_limit, call.hangup)
        if to in TEST_NUMBERS:
            await self._connect_number(call, first, to, time_out)
            return
        if first.ended:
            return
        second = await self._dial_user(call, to, caller, time_out)
        if second is None:
            first.bye("the second party is not registered")
            return
        if first.ended:
            second.hangup("the first party hung up")
            return
        if await second.wait_connected() and not first.ended:
            await Bridge(first, second).start()

    async def _connect_number(
        self, call: SandboxCall, leg: Leg, number: str, time_out: float | None
    ) -> None:
        if number == "busy":
            # The From leg hears a moment of silence, then the sandbox hangs up.
            await asyncio.sleep(0.5)
            call.set_status("busy")
            leg.bye("the number is busy")
            return
        if number == "noanswer":
            wait = time_out if time_out is not None else self.config.ring_timeout
            try:
                await leg.wait_ended(wait)
            except TimeoutError:
                call.set_status("no-answer")
                leg.bye("no answer")
            return
        # echo, tone, ivr: their app has served the leg since it was created.


def normalise_party(value: str) -> str:
    """The user part of a REST ``From``/``To``: ``sip:agent@x``, ``agent@x`` or ``agent``."""
    value = value.strip()
    if value.lower().startswith(("sip:", "sips:")):
        try:
            uri = parse_uri(value)
        except SipError:
            return value
        return _user_of(uri) or value
    return value.split("@", 1)[0]


def _user_of(uri: URI) -> str | None:
    return uri.user if isinstance(uri, SipURI) else None


def _port_of(server: Server) -> int:
    for sock in server.sockets:
        port: int = sock.getsockname()[1]
        return port
    raise InvalidState("the server has no socket")

