"""SIP over WebSocket (RFC 7118) on asyncio, on websockets' own client.

:class:`WebSocketTransport` owns one WebSocket flow to a SIP server. Each connection is
``websockets.asyncio.client.connect()`` with subprotocol ``sip``, ``open_timeout``,
``max_size``, ``close_timeout``, TLS through ``ssl=`` (certificates verified, against
``ca_file`` if given) and websockets' WebSocket ping keepalive (``ping_interval``,
``ping_timeout``). websockets also follows handshake redirects (at most 10; never from
``wss`` to ``ws``), fails a connection that sends a message over ``max_size`` (close 1009)
or invalid UTF-8 in a text frame (close 1007), reassembles fragments and does the closing
handshake. One reader task hands each received message to the listener: a text frame as
``str``, a binary frame as ``bytes``.

What is here beyond plain ``connect()``, and why:

* **Our own reconnect loop**, not ``async for ws in connect(...)``. That iterator sleeps
  without telling anyone for how long, but the phone reports every loss with the delay
  until the next attempt (``transport_disconnected(error, retry_in)``, then the guide's
  registration events); it reconnects at once after a connection that ended without an
  exception, and otherwise continues the backoff of the failures *before* that connection,
  while :class:`~exotel_voice.config.ReconnectPolicy` restarts from ``initial_delay``
  after every successful connection; and it has no ``max_attempts``. So the loop is ours
  (``_run``); ``process_exception`` is not used, as it serves only that iterator:
  every failure is retried per the policy, a certificate failure included (the phone
  reports it once, by name).
* **The SIP CRLF keepalive** (``KeepaliveConfig(mode="crlf")``, RFC 5626 §4.4.1), which
  websockets does not know: a double CRLF every ``interval``; once the server has answered
  one with a CRLF pong, a missing pong within ``timeout`` closes the connection (1011, as
  websockets does for a missing WebSocket pong). A CRLF ping from the server is answered,
  and neither is handed on as a SIP message.
* **Errors named plainly**, without the URL's secrets: a TLS verification failure says
  ``TLS certificate of wss://... not accepted: certificate verify failed: <reason>`` and
  how to trust the CA, and a lost connection reports the close code and reason
  (``connection closed (code=1011, reason='...')``). Our log lines and error texts name
  the server without its userinfo and query (either may carry a token); websockets' own
  log records are masked by :mod:`exotel_voice.client.logbridge`.
* A ``bytes`` message goes out as a text frame when it is valid UTF-8 (as browsers and
  Kamailio send SIP), else as a binary frame.

Behaviour that differs from the sans-I/O protocol driver this module replaced, and why
it is kept:

* A server that stops answering keepalives is dropped up to ``timeout`` + 2 s
  (``close_timeout``) after the ping, not at ``timeout``: the connection is first closed
  with 1011, waiting for the TCP close. Registration refreshes and the reconnect backoff
  are in seconds to minutes, so 2 s more before a dead flow is replaced does not matter.
  A CRLF ping now goes ``interval`` after the previous pong rather than after the previous
  ping, as websockets times its WebSocket pings.
* A received message reaches the listener from the reader task: one more event-loop
  iteration per message. Measured when the driver was introduced: ``register()`` (two
  round trips) against Kamailio on loopback took 1.0 ms with the driver and 1.1-1.3 ms
  on websockets' connection; far below any real network round trip or call set-up time.
* A connection that redirects from ``ws`` to ``wss`` verifies the target against the
  system store (websockets' default context), not ``ca_file``.

``send()`` does not suspend unless the socket buffer is full (websockets' ``send`` only
awaits flow control). No system proxy and no permessage-deflate are used, as before.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import ssl
from collections.abc import Callable
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed as WsConnectionClosed,
    InvalidURI,
    WebSocketException,
)
from websockets.frames import CloseCode
from websockets.protocol import State
from websockets.typing import Subprotocol

from ..config import KeepaliveConfig, ReconnectPolicy, TlsConfig
from ..exceptions import ConnectionClosed, TransportError


__all__ = ["TransportListener", "TransportState", "WebSocketTransport"]

logger = logging.getLogger(__name__)

#: Keepalive ping (double CRLF) and pong (single CRLF), RFC 5626 §4.4.1.
CRLF_PING = "\r\n\r\n"
CRLF_PONG = "\r\n"
_CRLF_PING_BYTES = CRLF_PING.encode()
_KEEPALIVES = frozenset({CRLF_PING, CRLF_PONG, _CRLF_PING_BYTES, CRLF_PONG.encode()})

#: Seconds to wait for the server to close TCP after the closing handshake.
CLOSE_TIMEOUT = 2.0

#: The close reason (code 1011) when a keepalive ping is not answered in time: websockets'
#: own, which the CRLF keepalive uses too.
_PING_TIMEOUT_REASON = "keepalive ping timeout"


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


def _tls_error(name: str, exc: ssl.SSLError) -> TransportError:
    """A TLS failure, named plainly: ``certificate verify failed: self-signed certificate``.

    Retrying does not help until the server's certificate or our trust settings change, so
    the message says what to fix.
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = (exc.verify_message or "").rstrip(".") or exc.reason or "unknown reason"
        return TransportError(
            f"TLS certificate of {name} not accepted: certificate verify failed: {detail} "
            "(trust its CA with TlsConfig(ca_file=...) / sipAccountInfo caFile)"
        )
    detail = exc.reason or exc.strerror or type(exc).__name__
    return TransportError(f"TLS handshake with {name} failed: {detail}")


def _is_utf8(data: bytes) -> bool:
    if data.isascii():  # SIP messages nearly always are: no decode needed
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


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
        self._name = _redact_url(url)
        self.state = TransportState.IDLE
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._wake = asyncio.Event()
        self._connected = asyncio.Event()
        #: Connection attempts made so far.
        self.attempts = 0

    def __repr__(self) -> str:
        return f"<WebSocketTransport {self._name} {self.state.value}>"

    # -- public API --------------------------------------------------------------------------
    def start(self) -> None:
        """Start connecting in the background (and reconnecting, per the policy)."""
        if self.state is TransportState.CLOSED:
            raise TransportError("cannot restart a closed transport; create a new one")
        if self._task is None:
            self._closing = False
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"exotel-voice ws {self._name}"
            )

    @property
    def connected(self) -> bool:
        """Whether the WebSocket is open now."""
        return self.state is TransportState.CONNECTED

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server accepted on the open connection (``"sip"``), if any."""
        ws = self._ws
        return ws.subprotocol if ws is not None and self.connected else None

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the WebSocket is open.

        Raises:
            TimeoutError: not connected within ``timeout`` seconds.
        """
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def send(self, data: bytes | str) -> None:
        """Send one SIP message as one WebSocket message.

        The message is written to the socket before the first suspension point, so a
        caller that does not await this coroutine until the end still sends in order; it
        then waits only if the socket buffer is full (flow control).

        Text frames are used when the message is valid UTF-8 (as browsers and Kamailio do),
        binary frames otherwise.

        Raises:
            TransportError: the WebSocket is not open, or the connection was lost while
                waiting for the socket buffer to drain.
        """
        ws = self._ws
        if ws is None or self.state is not TransportState.CONNECTED:
            raise TransportError(f"cannot send: transport is {self.state.value}")
        if ws.state is not State.OPEN:
            # Checked here so that websockets' send never waits for a closing connection.
            raise TransportError(f"cannot send: connection is {ws.state.name.lower()}")
        try:
            if isinstance(data, str):
                await ws.send(data)
            else:
                await ws.send(data, text=_is_utf8(data))
        except WsConnectionClosed as exc:
            raise self._lost(exc) from exc

    async def close(self) -> None:
        """Close the WebSocket and stop reconnecting. Safe to call more than once."""
        self._closing = True
        self._wake.set()
        task, ws = self._task, self._ws
        if task is not None and task is not asyncio.current_task():
            if ws is not None:
                await ws.close()  # the closing handshake (1000); the reader task then ends
            else:
                task.cancel()  # connecting, or waiting to reconnect
            done, _ = await asyncio.wait({task}, timeout=CLOSE_TIMEOUT + 3.0)
            if not done:
                task.cancel()
        elif ws is not None:
            await ws.close()
        self._set_state(TransportState.CLOSED)

    # -- internals ---------------------------------------------------------------------------
    def _set_state(self, state: TransportState) -> None:
        if state is not self.state:
            logger.debug("= %s %s -> %s", self._name, self.state.value, state.value)
            self.state = state
        if state is TransportState.CONNECTED:
            self._connected.set()
        else:
            self._connected.clear()

    async def _run(self) -> None:
        failures = 0
        while not self._closing:
            self._set_state(TransportState.CONNECTING)
            self.attempts += 1
            try:
                ws = await self._connect()
            except TransportError as exc:
                error = exc
            else:
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
                self._name,
                error,
                f"; reconnecting in {retry_in:.2f} s" if retry_in is not None else "",
            )
            try:
                self.listener.transport_disconnected(error, retry_in)
            except Exception:
                logger.exception("! listener failed in transport_disconnected")
            if retry_in is None:
                self._closing = True
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), retry_in)
            except TimeoutError:
                pass
        self._set_state(TransportState.CLOSED)

    async def _connect(self) -> ClientConnection:
        """One connection (redirects followed by websockets), or the reason in plain words."""
        name = self._name
        keepalive = self.keepalive
        pings = keepalive.mode == "ping" and bool(keepalive.interval)
        options: dict[str, Any] = {}
        if self.url.lower().startswith("wss:"):
            if self.tls.insecure_skip_verify:
                logger.warning(
                    "! TLS certificate verification is OFF for %s (insecure_skip_verify); "
                    "never use this in production",
                    name,
                )
            options["ssl"] = self.tls.ssl_context()
        try:
            ws = await connect(
                self.url,
                subprotocols=[Subprotocol("sip")],
                compression=None,
                user_agent_header="exotel-voice",
                proxy=None,
                open_timeout=self.open_timeout,
                ping_interval=keepalive.interval if pings else None,
                ping_timeout=keepalive.timeout,
                close_timeout=CLOSE_TIMEOUT,
                max_size=self.max_message_size,
                **options,
            )
        except InvalidURI:
            # Its text repeats the URL, which may carry a token: not chained, not shown.
            raise TransportError(f"invalid WebSocket URL {name} (or redirect target)") from None
        except TimeoutError as exc:
            raise TransportError(
                f"WebSocket handshake with {name} timed out after {self.open_timeout:g} s"
            ) from exc
        except ssl.SSLError as exc:
            raise _tls_error(name, exc) from exc
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise TransportError(f"cannot connect to {name}: {reason}") from exc
        except WebSocketException as exc:
            if "non-secure" in str(exc):  # its text names the target, token and all
                raise TransportError(
                    f"refused a redirect from {name} to a ws:// URL: it would drop TLS"
                ) from None
            raise TransportError(f"WebSocket handshake with {name} failed: {exc}") from exc
        except Exception as exc:  # an unexpected failure must not end the reconnect loop
            raise TransportError(f"cannot connect to {name}: {type(exc).__name__}") from exc
        if ws.subprotocol != "sip":
            logger.warning(
                "! %s did not accept the 'sip' subprotocol (RFC 7118 §4); continuing", name
            )
        return ws

    async def _serve(self, ws: ClientConnection) -> TransportError:
        """Deliver messages until the connection ends; return how it ended."""
        if self._closing:  # close() was called while the handshake was in flight
            await ws.close()
            return TransportError("closed")
        self._ws = ws
        self._set_state(TransportState.CONNECTED)
        logger.info("= connected to %s", self._name)
        try:
            self.listener.transport_connected()
        except Exception:
            logger.exception("! listener failed in transport_connected")
        pong = asyncio.Event()
        crlf = self.keepalive.mode == "crlf" and bool(self.keepalive.interval)
        keepalive = asyncio.create_task(self._crlf_keepalive(ws, pong)) if crlf else None
        try:
            while True:
                message = await ws.recv()
                if len(message) <= 4 and message in _KEEPALIVES:  # not a SIP message
                    if message in (CRLF_PING, _CRLF_PING_BYTES):
                        await ws.send(CRLF_PONG)
                    else:
                        pong.set()
                    continue
                try:
                    self.listener.message_received(message)
                except Exception:
                    # The core must survive anything; a listener bug is logged, not fatal.
                    logger.exception("! listener failed on a received message")
        except WsConnectionClosed as exc:
            return self._lost(exc)
        finally:
            if keepalive is not None:
                keepalive.cancel()
            self._ws = None
            if ws.state is not State.CLOSED:  # cancelled: don't leave the socket open
                ws.transport.abort()

    async def _crlf_keepalive(self, ws: ClientConnection, pong: asyncio.Event) -> None:
        """A double CRLF every ``interval`` (RFC 5626 §4.4.1).

        Once the server has answered one, a pong missing for ``timeout`` closes the
        connection (1011) the way websockets' own keepalive does for WebSocket pings.
        """
        interval, timeout = self.keepalive.interval or 0.0, self.keepalive.timeout
        answered = False  # until the server has shown it answers CRLF pings, don't judge it
        try:
            while True:
                await asyncio.sleep(interval)
                answered = answered or pong.is_set()
                pong.clear()
                await ws.send(CRLF_PING)
                if answered:
                    try:
                        await asyncio.wait_for(pong.wait(), timeout)
                    except TimeoutError:
                        await ws.close(CloseCode.INTERNAL_ERROR, _PING_TIMEOUT_REASON)
                        return
        except WsConnectionClosed:
            pass

    def _lost(self, exc: WsConnectionClosed) -> TransportError:
        """What ended a connection, from websockets' ``ConnectionClosed``."""
        close = exc.rcvd or exc.sent  # the server's close frame, or ours (1009, 1007, ...)
        if exc.sent is not None and exc.sent.reason == _PING_TIMEOUT_REASON:
            kind = "CRLF keepalive" if self.keepalive.mode == "crlf" else "WebSocket"
            timeout = self.keepalive.timeout
            logger.warning("! no %s pong from %s within %g s", kind, self._name, timeout)
            error = TransportError(f"keepalive timed out: no {kind} pong within {timeout:g} s")
        elif close is not None:
            error = ConnectionClosed(close.code, close.reason)
        elif isinstance(exc.__cause__, OSError):
            cause = exc.__cause__
            error = TransportError(f"connection lost: {cause.strerror or type(cause).__name__}")
        else:
            error = TransportError("connection lost (no close frame)")
        error.__cause__ = exc
        return error
