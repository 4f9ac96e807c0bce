"""SIP over WebSocket (RFC 7118) on asyncio, built on ``websockets``.

:class:`WebSocketTransport` owns one WebSocket flow to a SIP server and does four things:

* connects with subprotocol ``sip``, verifying TLS certificates by default;
* hands every received message to its listener, which feeds the sans-I/O core;
* keeps an idle connection alive (WebSocket ping, or SIP double-CRLF);
* reconnects after a loss, with exponential backoff and jitter, until closed.

It knows nothing about SIP beyond the CRLF keepalive (RFC 5626 §4.4.1).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
from collections.abc import Callable
from typing import Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed as WsConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from ..config import KeepaliveConfig, ReconnectPolicy, TlsConfig
from ..exceptions import ConnectionClosed, TransportError


__all__ = ["TransportListener", "TransportState", "WebSocketTransport"]

logger = logging.getLogger(__name__)

#: Keepalive ping (double CRLF) and pong (single CRLF), RFC 5626 §4.4.1.
CRLF_PING = "\r\n\r\n"
CRLF_PONG = "\r\n"


class TransportState(enum.Enum):
    """Where a :class:`WebSocketTransport` is in its life."""

    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    CLOSED = "closed"


class TransportListener(Protocol):
    """What a transport tells its owner. Called on the event loop, never concurrently."""

    def transport_connected(self) -> None:
        """The WebSocket is open."""

    def transport_disconnected(self, error: TransportError, retry_in: float | None) -> None:
        """A connection attempt failed or an open connection was lost.

        Args:
            error: what happened.
            retry_in: seconds until the next attempt, or ``None`` if none will be made.
        """

    def message_received(self, data: str | bytes) -> None:
        """One WebSocket message arrived (one SIP message, RFC 7118 §5.2)."""


def _redact_url(url: str) -> str:
    # Userinfo or a query string may carry a token; neither is needed to identify the server.
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    rest = rest.split("?", 1)[0]
    if "@" in rest.split("/", 1)[0]:
        rest = "[secure]@" + rest.split("@", 1)[1]
    return f"{scheme}://{rest}"


class WebSocketTransport:
    """One reconnecting WebSocket flow to a SIP server.

    Args:
        url: ``ws://`` or ``wss://`` URL.
        listener: receives connection events and messages.
        tls: certificate verification settings for ``wss``.
        keepalive: keepalive settings.
        reconnect: reconnect policy; with ``enabled=False`` a lost connection stays lost.
        open_timeout: seconds allowed for the TCP, TLS and WebSocket handshakes.
        max_message_size: largest accepted WebSocket message, in bytes.
        rng: a ``random()`` function, injectable for tests.
    """

    def __init__(
        self,
        url: str,
        listener: TransportListener,
        *,
        tls: TlsConfig | None = None,
        keepalive: KeepaliveConfig | None = None,
        reconnect: ReconnectPolicy | None = None,
        open_timeout: float = 10.0,
        max_message_size: int = 1 << 20,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.url = url
        self.listener = listener
        self.tls = tls or TlsConfig()
        self.keepalive = keepalive or KeepaliveConfig()
        self.reconnect = reconnect or ReconnectPolicy()
        self.open_timeout = open_timeout
        self.max_message_size = max_message_size
        self._rng = rng
        self.state = TransportState.IDLE
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._wake = asyncio.Event()
        self._connected = asyncio.Event()
        self._pong_seen = False
        self._last_pong = 0.0
        self.attempts = 0
        self.connections = 0
        self.secure = url.lower().startswith("wss:")

    def __repr__(self) -> str:
        return f"<WebSocketTransport {_redact_url(self.url)} {self.state.value}>"

    # -- public API --------------------------------------------------------------------------
    def start(self) -> None:
        """Start connecting in the background (and reconnecting, per the policy)."""
        if self.state is TransportState.CLOSED:
            raise TransportError("cannot restart a closed transport; create a new one")
        if self._task is None:
            self._closing = False
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"exotel-voice ws {_redact_url(self.url)}"
            )

    @property
    def connected(self) -> bool:
        """Whether the WebSocket is open now."""
        return self.state is TransportState.CONNECTED

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the WebSocket is open.

        Raises:
            TimeoutError: not connected within ``timeout`` seconds.
        """
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def send(self, data: bytes | str) -> None:
        """Send one SIP message as one WebSocket message.

        Text frames are used when the message is valid UTF-8 (as browsers and Kamailio do),
        binary frames otherwise.

        Raises:
            TransportError: the WebSocket is not open, or the send failed.
        """
        ws = self._ws
        if ws is None or self.state is not TransportState.CONNECTED:
            raise TransportError(f"cannot send: transport is {self.state.value}")
        if isinstance(data, bytes):
            try:
                payload: str | bytes = data.decode("utf-8")
            except UnicodeDecodeError:
                payload = data
        else:
            payload = data
        try:
            await ws.send(payload)
        except WsConnectionClosed as exc:
            raise ConnectionClosed(
                exc.rcvd.code if exc.rcvd else None, exc.rcvd.reason if exc.rcvd else ""
            ) from exc
        except OSError as exc:
            raise TransportError(f"send failed: {exc.strerror or type(exc).__name__}") from exc

    def drop(self) -> None:
        """Abort the current connection without closing the transport (it will reconnect).

        Used when a keepalive or a registration refresh shows the flow is dead.
        """
        ws = self._ws
        if ws is not None:
            ws.transport.abort()

    async def close(self) -> None:
        """Close the WebSocket and stop reconnecting. Safe to call more than once."""
        self._closing = True
        self._wake.set()
        ws = self._ws
        if ws is not None:
            await self._close_quietly(ws)
        task = self._task
        if task is not None and task is not asyncio.current_task():
            try:
                await asyncio.wait_for(task, 5.0)
            except TimeoutError:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self._set_state(TransportState.CLOSED)

    # -- internals ---------------------------------------------------------------------------
    def _set_state(self, state: TransportState) -> None:
        if state is not self.state:
            logger.debug("= %s %s -> %s", _redact_url(self.url), self.state.value, state.value)
            self.state = state
        if state is TransportState.CONNECTED:
            self._connected.set()
        else:
            self._connected.clear()

    async def _connect_once(self) -> ClientConnection:
        ssl_ctx = None
        if self.secure:
            if self.tls.insecure_skip_verify:
                logger.warning(
                    "! TLS certificate verification is OFF for %s (insecure_skip_verify); "
                    "never use this in production",
                    _redact_url(self.url),
                )
            ssl_ctx = self.tls.ssl_context()
        ping = self.keepalive.mode == "ping" and bool(self.keepalive.interval)
        try:
            ws = await connect(
                self.url,
                subprotocols=[Subprotocol("sip")],
                ssl=ssl_ctx,
                open_timeout=self.open_timeout,
                ping_interval=self.keepalive.interval if ping else None,
                ping_timeout=self.keepalive.timeout if ping else None,
                close_timeout=2.0,
                max_size=self.max_message_size,
                compression=None,
                proxy=None,
                user_agent_header="exotel-voice",
            )
        except TimeoutError as exc:
            raise TransportError(
                f"WebSocket handshake with {_redact_url(self.url)} timed out after "
                f"{self.open_timeout:g} s"
            ) from exc
        except InvalidHandshake as exc:
            raise TransportError(
                f"WebSocket handshake with {_redact_url(self.url)} failed: {exc}"
            ) from exc
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise TransportError(f"cannot connect to {_redact_url(self.url)}: {reason}") from exc
        if ws.subprotocol != "sip":
            logger.warning(
                "! %s did not accept the 'sip' subprotocol (RFC 7118 §4); continuing",
                _redact_url(self.url),
            )
        return ws

    async def _run(self) -> None:
        failures = 0
        while not self._closing:
            self._set_state(TransportState.CONNECTING)
            self.attempts += 1
            error: TransportError
            try:
                ws = await self._connect_once()
            except TransportError as exc:
                error = exc
            except Exception as exc:  # an unexpected failure must not kill the loop
                error = TransportError(f"cannot connect: {type(exc).__name__}")
                error.__cause__ = exc
            else:
                if self._closing:
                    # close() was called while the handshake was in flight.
                    await self._close_quietly(ws)
                    break
                failures = 0
                error = await self._serve(ws)
            if self._closing:
                break
            failures += 1
            retry_in: float | None = None
            policy = self.reconnect
            if policy.enabled and (policy.max_attempts is None or failures <= policy.max_attempts):
                retry_in = policy.delay(failures, self._rng())
            self._set_state(
                TransportState.DISCONNECTED if retry_in is not None else TransportState.CLOSED
            )
            logger.info(
                "! %s: %s%s",
                _redact_url(self.url),
                error,
                f"; reconnecting in {retry_in:.2f} s" if retry_in is not None else "",
            )
            self._notify_disconnected(error, retry_in)
            if retry_in is None:
                self._closing = True
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), retry_in)
            except TimeoutError:
                pass
        self._set_state(TransportState.CLOSED)

    def _notify_disconnected(self, error: TransportError, retry_in: float | None) -> None:
        try:
            self.listener.transport_disconnected(error, retry_in)
        except Exception:
            logger.exception("! listener failed in transport_disconnected")

    async def _serve(self, ws: ClientConnection) -> TransportError:
        self._ws = ws
        self.connections += 1
        self._pong_seen = False
        self._set_state(TransportState.CONNECTED)
        logger.info("= connected to %s", _redact_url(self.url))
        try:
            self.listener.transport_connected()
        except Exception:
            logger.exception("! listener failed in transport_connected")
        keepalive: asyncio.Task[None] | None = None
        if self.keepalive.mode == "crlf" and self.keepalive.interval:
            keepalive = asyncio.get_running_loop().create_task(self._crlf_keepalive(ws))
        error: TransportError
        try:
            async for message in ws:
                if message in (CRLF_PING, CRLF_PING.encode()):
                    await ws.send(CRLF_PONG)
                    continue
                if message in (CRLF_PONG, CRLF_PONG.encode()):
                    self._pong_seen = True
                    self._last_pong = asyncio.get_running_loop().time()
                    continue
                try:
                    self.listener.message_received(message)
                except Exception:
                    # The core must survive anything; a listener bug is logged, not fatal.
                    logger.exception("! listener failed on a received message")
            rcvd = ws.protocol.close_rcvd
            error = ConnectionClosed(rcvd.code if rcvd else None, rcvd.reason if rcvd else "")
        except WsConnectionClosed as exc:
            rcvd = exc.rcvd
            if rcvd is None and exc.sent is None:
                error = TransportError("connection lost (no close frame)")
            else:
                error = ConnectionClosed(rcvd.code if rcvd else None, rcvd.reason if rcvd else "")
        except OSError as exc:
            error = TransportError(f"connection lost: {exc.strerror or type(exc).__name__}")
        except asyncio.CancelledError:
            ws.transport.abort()
            raise
        finally:
            if keepalive is not None:
                keepalive.cancel()
            self._ws = None
        return error

    @staticmethod
    async def _close_quietly(ws: ClientConnection) -> None:
        try:
            await asyncio.wait_for(ws.close(), 2.0)
        except (TimeoutError, OSError, WsConnectionClosed):
            ws.transport.abort()

    async def _crlf_keepalive(self, ws: ClientConnection) -> None:
        interval = float(self.keepalive.interval or 0)
        loop = asyncio.get_running_loop()
        try:
            while True:
                await asyncio.sleep(interval)
                sent_at = loop.time()
                await ws.send(CRLF_PING)
                if not self._pong_seen:
                    # The server has not shown it answers CRLF pings; don't judge it by one.
                    continue
                await asyncio.sleep(self.keepalive.timeout)
                if self._last_pong < sent_at:
                    logger.warning(
                        "! no CRLF keepalive pong from %s within %g s; dropping the connection",
                        _redact_url(self.url),
                        self.keepalive.timeout,
                    )
                    ws.transport.abort()
                    return
        except (WsConnectionClosed, OSError, asyncio.CancelledError):
            return
