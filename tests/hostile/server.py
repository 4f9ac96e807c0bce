"""A hostile SIP-over-WebSocket server (RFC 7118) for the SDK's robustness suite.

A phone under test connects here. By default the server is a transparent relay: for each phone
connection it opens one WebSocket to the sandbox (a real registrar and B2BUA with real media)
and passes every message both ways, so a sane REGISTER and a call to ``echo`` really work.
On top of that a test can:

* inject anything toward the phone (:meth:`HostileServer.inject`): valid or malformed SIP,
  invalid UTF-8 in a text frame, binary frames, floods; every injected frame counts as one
  hostile input;
* rewrite, drop, duplicate or add to the sandbox's messages (:attr:`upstream_hook`), or
  intercept the phone's (:attr:`phone_hook`);
* answer REGISTER itself as a misbehaving registrar (:class:`Registrar`: digest with or
  without ``qop``, nonce rotation, challenge loops, 423 with a growing Min-Expires, 3xx,
  503 with Retry-After, silence, closing the socket mid-transaction).

Everything the phone sends is kept in :attr:`HostileServer.from_phone` (parsed with our own
lenient reader, :mod:`.sipmsg`) for the tests' assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from .sipmsg import Msg, ack_for, response_to, token


Hook = Callable[["Flow", Msg], Awaitable[bool]]


@dataclass(eq=False)
class Flow:
    """One phone connection (and its upstream connection to the sandbox, when relaying)."""

    ws: ServerConnection
    upstream: ClientConnection | None = None
    pump: asyncio.Task[None] | None = None
    close_code: int | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class Registrar:
    """A registrar that misbehaves on purpose. ``mode`` picks how REGISTER is answered:

    * ``digest``: challenge (``qop`` if :attr:`qop`), then 200 for a right answer to the
      current nonce; with :attr:`rotate` a new nonce (no ``stale``) after every success, as
      Kamailio's stock nonces expire;
    * ``silent``: never answer; ``close``: close the WebSocket on receipt (once: the server
      then relays again);
    * ``challenge_loop``: 401 every time, a new nonce each time (``same_nonce``: the same one);
    * ``423_growing``: 423 with Min-Expires twice what was asked, every time;
    * ``423_once``: 423 with Min-Expires 600 until Expires >= 600, then as ``digest``
      (without a challenge);
    * ``302``: Moved Temporarily to another registrar; ``503``: 503 with Retry-After 30.
    """

    def __init__(self, mode: str, *, user: str, password: str, realm: str,
                 qop: bool = False, rotate: bool = False) -> None:
        self.mode = mode
        self.user, self.password, self.realm = user, password, realm
        self.qop, self.rotate = qop, rotate
        self.nonce = token(12)
        self.same_nonce = False
        self.seen: list[Msg] = []
        self.registered = 0

    def challenge(self, request: Msg, *, new_nonce: bool) -> Msg:
        if new_nonce:
            self.nonce = token(12)
        qop = ', qop="auth"' if self.qop else ""
        value = f'Digest realm="{self.realm}", nonce="{self.nonce}", algorithm=MD5{qop}'
        return response_to(request, 401, "Unauthorized",
                           headers=[("WWW-Authenticate", value)])

    def ok(self, request: Msg) -> Msg:
        expires = request.header("Expires") or "300"
        contact = request.header("Contact") or ""
        headers = [("Contact", f"{contact};expires={expires}")] if contact else []
        headers.append(("Expires", expires))
        self.registered += 1
        return response_to(request, 200, "OK", headers=headers)

    def answer(self, request: Msg) -> Msg | None:
        """The response to send, ``None`` for none (``close`` is the server's)."""
        self.seen.append(request)
        mode = self.mode
        if mode == "silent":
            return None
        if mode == "challenge_loop":
            return self.challenge(request, new_nonce=not self.same_nonce)
        if mode == "423_growing":
            asked = int(request.header("Expires") or "300")
            return response_to(request, 423, "Interval Too Brief",
                               headers=[("Min-Expires", str(max(asked, 1) * 2))])
        if mode == "423_once":
            if int(request.header("Expires") or "0") < 600:
                return response_to(request, 423, "Interval Too Brief",
                                   headers=[("Min-Expires", "600")])
            return self.ok(request)
        if mode == "302":
            return response_to(request, 302, "Moved Temporarily",
                               headers=[("Contact", "<sip:elsewhere.invalid;transport=ws>")])
        if mode == "503":
            return response_to(request, 503, "Service Unavailable",
                               headers=[("Retry-After", "30")])
        # digest
        from .sipmsg import digest_ok, digest_params

        auth = request.header("Authorization")
        if auth is None or digest_params(auth).get("nonce") != self.nonce:
            return self.challenge(request, new_nonce=False)
        if not digest_ok(auth, "REGISTER", self.realm, self.user, self.password):
            return response_to(request, 403, "Forbidden")
        response = self.ok(request)
        if self.rotate:
            self.nonce = token(12)  # the next REGISTER's credentials are stale: no stale=true
        return response


class HostileServer:
    """See the module docstring. ``upstream``: the sandbox's ws URL (``None``: no relay)."""

    def __init__(self, upstream: str | None) -> None:
        self.upstream = upstream
        self.server: Server | None = None
        self.flows: list[Flow] = []
        self.from_phone: list[Msg] = []
        self.raw_from_phone = 0
        self.inputs = 0
        self.registrar: Registrar | None = None
        self.phone_hook: Hook | None = None
        self.upstream_hook: Hook | None = None
        #: Call-IDs of requests we injected: the phone's answers stay here (and non-2xx
        #: answers to our INVITEs are ACKed, as a UAC would).
        self.injected: dict[str, str] = {}
        self._arrived = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- life cycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self.server = await serve(self._handle, "127.0.0.1", 0, subprotocols=["sip"],
                                  max_size=None, ping_interval=None)

    @property
    def url(self) -> str:
        assert self.server is not None
        port = next(iter(self.server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/ws"

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5)
        for flow in self.flows:
            if flow.upstream is not None:
                with contextlib.suppress(Exception):
                    await flow.upstream.close()
        for task in list(self._tasks):
            task.cancel()

    def reset(self) -> None:
        """Back to a transparent relay, and forget what was seen (between attacks)."""
        self.registrar = None
        self.phone_hook = None
        self.upstream_hook = None
        self.clear()

    def clear(self) -> None:
        self.from_phone.clear()
        self.injected.clear()
        # Only the live flow is worth keeping.
        self.flows[:] = [f for f in self.flows if not f.closed.is_set()]

    # -- what the phone said ------------------------------------------------------------------
    @property
    def flow(self) -> Flow | None:
        """The newest open phone connection."""
        live = [f for f in self.flows if not f.closed.is_set()]
        return live[-1] if live else None

    async def wait_flow(self, timeout: float = 10.0) -> Flow:
        async with asyncio.timeout(timeout):
            while self.flow is None:
                await asyncio.sleep(0.02)
        flow = self.flow
        assert flow is not None
        return flow

    def sent(self, pred: Callable[[Msg], bool], since: int = 0) -> list[Msg]:
        return [m for m in self.from_phone[since:] if pred(m)]

    async def wait_for(self, pred: Callable[[Msg], bool], timeout: float,
                       since: int = 0) -> Msg | None:
        """The first message from the phone (from index ``since``) matching ``pred``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        index = since
        while True:
            while index < len(self.from_phone):
                msg = self.from_phone[index]
                index += 1
                if pred(msg):
                    return msg
            left = deadline - loop.time()
            if left <= 0:
                return None
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    async def final_response(self, call_id: str, timeout: float = 3.0,
                             method: str | None = None) -> Msg | None:
        """The phone's final response to our request with this Call-ID."""
        return await self.wait_for(
            lambda m: (not m.is_request and m.call_id == call_id and m.status >= 200
                       and (method is None or m.cseq_method == method)), timeout)

    # -- attacking ----------------------------------------------------------------------------
    async def inject(self, data: str | bytes | Msg, *, text: bool | None = None,
                     track: Msg | None = None) -> None:
        """Send one frame to the phone (a :class:`Msg` is rendered; ``text`` forces the frame
        type for bytes). ``track``: a request whose answers must not go upstream."""
        flow = self.flow
        if flow is None:
            raise ConnectionError("no phone connected")
        if isinstance(data, Msg):
            if data.is_request:
                track = data
            data = data.render()
        if track is not None:
            self.injected[track.call_id] = track.start.split(" ")[1] if " " in track.start \
                else "sip:x"
        self.inputs += 1
        try:
            await flow.ws.send(data, text=text)
        except ConnectionClosed:
            pass

    async def inject_many(self, frames: list[str | bytes], *, text: bool | None = None) -> None:
        """Many frames in one go (floods): written without a round trip each."""
        flow = self.flow
        if flow is None:
            raise ConnectionError("no phone connected")
        for frame in frames:
            self.inputs += 1
            try:
                await flow.ws.send(frame, text=text)
            except ConnectionClosed:
                return

    async def close_phone(self, code: int = 1011, reason: str = "hostile close") -> None:
        flow = self.flow
        if flow is not None:
            await flow.ws.close(code, reason)

    # -- plumbing -----------------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        flow = Flow(ws)
        self.flows.append(flow)
        try:
            if self.upstream is not None:
                flow.upstream = await connect(self.upstream, subprotocols=["sip"],  # type: ignore[list-item]
                                              max_size=None, ping_interval=None)
                flow.pump = asyncio.create_task(self._pump_upstream(flow))
                self._tasks.add(flow.pump)
                flow.pump.add_done_callback(self._tasks.discard)
            async for raw in ws:
                await self._from_phone(flow, raw)
        except ConnectionClosed:
            pass
        finally:
            flow.close_code = ws.close_code
            flow.closed.set()
            if flow.upstream is not None:
                with contextlib.suppress(Exception):
                    await flow.upstream.close()
            self._arrived.set()

    async def _from_phone(self, flow: Flow, raw: str | bytes) -> None:
        self.raw_from_phone += 1
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        if not text.strip("\r\n"):
            if flow.upstream is not None:
                with contextlib.suppress(ConnectionClosed):
                    await flow.upstream.send(raw)
            return
        msg = Msg.parse(text)
        if msg is None:
            return
        self.from_phone.append(msg)
        self._arrived.set()
        if msg.is_request and msg.method == "REGISTER" and self.registrar is not None:
            if self.registrar.mode == "close":
                # Once: the phone then reconnects to a relay to the sandbox.
                self.registrar.seen.append(msg)
                self.registrar = None
                await flow.ws.close(1011, "closed mid-REGISTER")
                return
            response = self.registrar.answer(msg)
            if response is not None:
                with contextlib.suppress(ConnectionClosed):
                    await flow.ws.send(response.render())
            return
        if self.phone_hook is not None and await self.phone_hook(flow, msg):
            return
        target = self.injected.get(msg.call_id)
        if target is not None:
            # An answer (or ACK, BYE ...) about something we injected: ours, never upstream.
            if (not msg.is_request and msg.cseq_method == "INVITE" and msg.status >= 300):
                with contextlib.suppress(ConnectionClosed):
                    await flow.ws.send(ack_for(msg, target).render())
            elif msg.is_request and msg.method not in ("ACK",):
                with contextlib.suppress(ConnectionClosed):
                    await flow.ws.send(response_to(msg, 200, "OK").render())
            return
        if flow.upstream is not None:
            with contextlib.suppress(ConnectionClosed):
                await flow.upstream.send(raw)

    async def _pump_upstream(self, flow: Flow) -> None:
        assert flow.upstream is not None
        try:
            async for raw in flow.upstream:
                text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
                msg = Msg.parse(text) if text.strip("\r\n") else None
                if msg is not None and self.upstream_hook is not None:
                    if await self.upstream_hook(flow, msg):
                        continue
                await flow.ws.send(raw)
        except ConnectionClosed:
            pass
        finally:
            if not flow.closed.is_set():
                with contextlib.suppress(Exception):
                    await flow.ws.close(1001, "upstream closed")


def now() -> float:
    return time.monotonic()
