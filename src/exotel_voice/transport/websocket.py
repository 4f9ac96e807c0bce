"""SIP over WebSocket (RFC 7118) on asyncio, built on websockets' sans-I/O protocol.

:class:`WebSocketTransport` owns one WebSocket flow to a SIP server and does four things:

* connects with subprotocol ``sip``, verifying TLS certificates by default;
* hands every received message to its listener, which feeds the sans-I/O core;
* keeps an idle connection alive (WebSocket ping, or SIP double-CRLF);
* reconnects after a loss, with exponential backoff and jitter, until closed.

It knows nothing about SIP beyond the CRLF keepalive (RFC 5626 §4.4.1).

Each connection is a :class:`_Connection`: an :class:`asyncio.Protocol` that drives
``websockets.client.ClientProtocol`` (websockets' sans-I/O WebSocket client) itself, the way
style guide §3.2 asks us to drive our own SIP core: feed ``receive_data()``, write
``data_to_send()``, handle ``events_received()``. A received message reaches the listener
inside ``data_received`` and a sent message is written inside :meth:`WebSocketTransport.send`,
with no task or queue in between, so a SIP round trip costs no extra event-loop iterations.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import random
import ssl
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urljoin

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus, InvalidURI
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import SEND_EOF, State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from ..config import KeepaliveConfig, ReconnectPolicy, TlsConfig
from ..exceptions import ConnectionClosed, TransportError


__all__ = ["TransportListener", "TransportState", "WebSocketTransport"]

logger = logging.getLogger(__name__)

#: Keepalive ping (double CRLF) and pong (single CRLF), RFC 5626 §4.4.1.
CRLF_PING = "\r\n\r\n"
CRLF_PONG = "\r\n"
_CRLF_PING = CRLF_PING.encode()
_CRLF_PONG = CRLF_PONG.encode()

#: Seconds to wait for the server to close TCP after the closing handshake.
CLOSE_TIMEOUT = 2.0

#: Handshake redirects followed in one connection attempt (as websockets' own client does).
MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

_TEXT, _BINARY, _CONT, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG


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


class _Connection(asyncio.Protocol):
    """One WebSocket connection: websockets' sans-I/O client protocol on an asyncio transport.

    Received messages go to ``on_message`` from :meth:`data_received` itself, once
    :meth:`start_delivery` was called (those that arrive earlier are held until then).
    CRLF keepalives are answered and consumed here. :attr:`closed` resolves with the
    :class:`TransportError` that describes how the connection ended.
    """

    def __init__(
        self,
        protocol: ClientProtocol,
        *,
        name: str,
        keepalive: KeepaliveConfig,
        on_message: Callable[[str | bytes], None],
    ) -> None:
        self.protocol = protocol
        self.name = name
        self.keepalive = keepalive
        self._on_message = on_message
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = self._loop.create_future()
        self.closed: asyncio.Future[TransportError] = self._loop.create_future()
        self._held: list[str | bytes] | None = []  # None once delivery has started
        self._fragments: list[bytes] = []
        self._fragmented_text = False
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._failure: TransportError | None = None
        self._keepalive_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._ping_data = b""
        self._crlf_answered = False  # the server has answered a CRLF ping at least once
        self._last_crlf_pong = 0.0
        #: Where the server redirected the handshake (a 3xx with Location), if it did.
        self.redirect: str | None = None

    @property
    def subprotocol(self) -> Subprotocol | None:
        """The subprotocol the server chose."""
        return self.protocol.subprotocol

    @property
    def is_open(self) -> bool:
        """Whether messages can be sent."""
        return (
            self.protocol.state is State.OPEN
            and self.transport is not None
            and not self.transport.is_closing()
        )

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        request = self.protocol.connect()
        request.headers["User-Agent"] = "exotel-voice"
        self.protocol.send_request(request)
        self._write_pending()

    def data_received(self, data: bytes) -> None:  # noqa: D102
        self.protocol.receive_data(data)
        self._after_receive()

    def eof_received(self) -> bool | None:  # noqa: D102
        self.protocol.receive_eof()
        self._after_receive()
        return None  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        for timer in (self._keepalive_timer, self._pong_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        error = self._ending(exc)
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_exception(error)
        self._drain_waiters.clear()
        self._fail_opening(error)
        if not self.closed.done():
            self.closed.set_result(error)

    def pause_writing(self) -> None:  # noqa: D102
        self._paused = True

    def resume_writing(self) -> None:  # noqa: D102
        self._paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()

    # -- sending -------------------------------------------------------------------------
    def send(self, payload: bytes, *, text: bool) -> None:
        """Write one message now, as a text frame (``payload`` is UTF-8) or a binary frame.

        Raises:
            TransportError: the connection is not open.
        """
        if not self.is_open:
            rcvd = self.protocol.close_rcvd
            if rcvd is not None:
                raise ConnectionClosed(rcvd.code, rcvd.reason)
            raise TransportError(f"cannot send: connection is {self._state_name()}")
        if text:
            self.protocol.send_text(payload)
        else:
            self.protocol.send_binary(payload)
        self._write_pending()

    @property
    def writing_paused(self) -> bool:
        """Whether the socket buffer is over its high-water mark (see :meth:`drained`)."""
        return self._paused

    async def drained(self) -> None:
        """Wait until the socket buffer is below its low-water mark again.

        Raises:
            TransportError: the connection was lost first.
        """
        if not self._paused:
            return
        if self.closed.done():
            raise self.closed.result()
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def close(self) -> None:
        """Start the closing handshake (code 1000); :attr:`closed` resolves when done."""
        if self.protocol.state is State.OPEN and self.transport is not None:
            self.protocol.send_close(CloseCode.NORMAL_CLOSURE)
            self._write_pending()
            self._expect_close()
        else:
            self.abort()

    def abort(self, failure: TransportError | None = None) -> None:
        """Drop the TCP connection now."""
        if failure is not None and self._failure is None:
            self._failure = failure
        if self.transport is not None:
            self.transport.abort()

    # -- internals -----------------------------------------------------------------------
    def _state_name(self) -> str:
        if self.transport is not None and self.transport.is_closing():
            return "closed"
        return self.protocol.state.name.lower()

    def _write_pending(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for data in self.protocol.data_to_send():
            if data == SEND_EOF:
                if transport.can_write_eof():
                    transport.write_eof()
            else:
                transport.write(data)

    def _after_receive(self) -> None:
        self._write_pending()
        for event in self.protocol.events_received():
            if isinstance(event, Frame):
                self._on_frame(event)
            elif isinstance(event, Response):
                self._on_handshake()
        if not self.opened.done() and self.protocol.handshake_exc is not None:
            self._on_handshake()
        if self.protocol.close_expected():
            self._expect_close()

    def _on_handshake(self) -> None:
        if self.opened.done():
            return
        exc = self.protocol.handshake_exc
        if exc is None:
            self.opened.set_result(None)
            self._arm_keepalive()
            return
        if isinstance(exc, InvalidStatus) and exc.response.status_code in _REDIRECTS:
            self.redirect = exc.response.headers.get("Location")
        error = TransportError(f"WebSocket handshake with {self.name} failed: {exc}")
        error.__cause__ = exc
        self._fail_opening(error)
        self.abort()

    def _fail_opening(self, error: TransportError) -> None:
        if not self.opened.done():
            self.opened.set_exception(error)
            # Whoever awaits it still gets the error; nobody may (the attempt timed out).
            self.opened.exception()

    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        data = frame.data if isinstance(frame.data, bytes) else bytes(frame.data)
        if opcode is _TEXT or opcode is _BINARY:
            if not frame.fin:
                self._fragments = [data]
                self._fragmented_text = opcode is _TEXT
                return
            self._deliver(data, opcode is _TEXT)
        elif opcode is _CONT:
            self._fragments.append(data)
            if frame.fin:
                data, self._fragments = b"".join(self._fragments), []
                self._deliver(data, self._fragmented_text)
        elif opcode is _PONG:
            if self._pong_timer is not None and frame.data == self._ping_data:
                self._pong_timer.cancel()
                self._pong_timer = None
        # PING is answered by the protocol; CLOSE is handled by it and by close_expected().

    def _deliver(self, data: bytes, text: bool) -> None:
        if len(data) <= 4:  # text or binary, a keepalive is not a SIP message
            if data == _CRLF_PING:
                if self.is_open:
                    self.send(_CRLF_PONG, text=True)
                return
            if data == _CRLF_PONG:
                self._crlf_answered = True
                self._last_crlf_pong = self._loop.time()
                return
        message: str | bytes
        if text:
            try:
                message = data.decode("utf-8")
            except UnicodeDecodeError:
                self.protocol.fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text frame")
                self._write_pending()
                return
        else:
            message = data
        if self._held is not None:
            self._held.append(message)
        elif self.transport is not None and not self.transport.is_closing():
            self._on_message(message)

    def start_delivery(self) -> None:
        """Hand held messages, then every later one, to ``on_message``."""
        held, self._held = self._held or [], None
        for message in held:
            if self.transport is not None and self.transport.is_closing():
                return
            self._on_message(message)

    def _expect_close(self) -> None:
        # A client waits for the server to close TCP; don't wait forever (RFC 6455 §7.1.1).
        if self._close_timer is None and self.transport is not None:
            self._close_timer = self._loop.call_later(CLOSE_TIMEOUT, self.abort)

    def _ending(self, exc: Exception | None) -> TransportError:
        protocol = self.protocol
        rcvd = protocol.close_rcvd
        if rcvd is not None:
            return ConnectionClosed(rcvd.code, rcvd.reason)
        if self._failure is not None:
            return self._failure
        parser_exc = protocol.parser_exc
        if parser_exc is not None and not isinstance(parser_exc, EOFError):
            error = TransportError(f"connection failed: {parser_exc}")
            error.__cause__ = parser_exc
            return error
        if protocol.close_sent is not None:
            return ConnectionClosed(None, "")
        if isinstance(exc, OSError):
            error = TransportError(f"connection lost: {exc.strerror or type(exc).__name__}")
            error.__cause__ = exc
            return error
        return TransportError("connection lost (no close frame)")

    # -- keepalive -----------------------------------------------------------------------
    def _arm_keepalive(self) -> None:
        interval = self.keepalive.interval
        if interval:
            self._keepalive_timer = self._loop.call_later(interval, self._send_keepalive)

    def _send_keepalive(self) -> None:
        self._keepalive_timer = None
        if not self.is_open:
            return
        timeout = self.keepalive.timeout
        if self.keepalive.mode == "ping":
            if self._pong_timer is None:  # else the previous ping is still unanswered
                self._ping_data = os.urandom(4)
                self.protocol.send_ping(self._ping_data)
                self._write_pending()
                self._pong_timer = self._loop.call_later(timeout, self._no_pong, "WebSocket")
        else:
            sent_at = self._loop.time()
            self.send(_CRLF_PING, text=True)
            # Until the server has shown it answers CRLF pings, don't judge it by one.
            if self._crlf_answered and self._pong_timer is None:
                self._pong_timer = self._loop.call_later(timeout, self._check_crlf_pong, sent_at)
        self._arm_keepalive()

    def _check_crlf_pong(self, sent_at: float) -> None:
        self._pong_timer = None
        if self._last_crlf_pong < sent_at:
            self._no_pong("CRLF keepalive")

    def _no_pong(self, kind: str) -> None:
        self._pong_timer = None
        timeout = self.keepalive.timeout
        logger.warning(
            "! no %s pong from %s within %g s; dropping the connection", kind, self.name, timeout
        )
        self.abort(TransportError(f"keepalive timed out: no {kind} pong within {timeout:g} s"))


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
        self._conn: _Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._wake = asyncio.Event()
        self._connected = asyncio.Event()
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

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server accepted on the open connection (``"sip"``), if any."""
        conn = self._conn
        return conn.subprotocol if conn is not None and self.connected else None

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
        conn = self._conn
        if conn is None or self.state is not TransportState.CONNECTED:
            raise TransportError(f"cannot send: transport is {self.state.value}")
        if isinstance(data, str):
            conn.send(data.encode("utf-8"), text=True)
        else:
            conn.send(data, text=_is_utf8(data))
        if conn.writing_paused:
            await conn.drained()

    def drop(self) -> None:
        """Abort the current connection without closing the transport (it will reconnect).

        Used when a keepalive or a registration refresh shows the flow is dead.
        """
        conn = self._conn
        if conn is not None:
            conn.abort()

    async def close(self) -> None:
        """Close the WebSocket and stop reconnecting. Safe to call more than once."""
        self._closing = True
        self._wake.set()
        conn = self._conn
        if conn is not None:
            await self._close_quietly(conn)
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

    def _message_received(self, data: str | bytes) -> None:
        try:
            self.listener.message_received(data)
        except Exception:
            # The core must survive anything; a listener bug is logged, not fatal.
            logger.exception("! listener failed on a received message")

    async def _connect_once(self) -> _Connection:
        """Open the WebSocket, following the handshake's redirects (3xx with Location).

        Every attempt starts at the configured URL. A redirect from ``wss`` to ``ws`` is
        refused: it would drop TLS.
        """
        url = self.url
        for _ in range(MAX_REDIRECTS + 1):
            conn, location = await self._open(url)
            if conn is not None:
                return conn
            assert location is not None
            target = urljoin(url, location)
            if url.lower().startswith("wss:") and not target.lower().startswith("wss:"):
                raise TransportError(
                    f"refused a redirect from {_redact_url(url)} to {_redact_url(target)}: "
                    "it would drop TLS"
                )
            logger.info("= %s redirects to %s", _redact_url(url), _redact_url(target))
            url = target
        raise TransportError(
            f"WebSocket handshake with {_redact_url(self.url)}: more than {MAX_REDIRECTS} redirects"
        )

    async def _open(self, url: str) -> tuple[_Connection | None, str | None]:
        """One TCP connection and handshake: the connection, or ``(None, redirect target)``."""
        name = _redact_url(url)
        try:
            uri = parse_uri(url)
        except InvalidURI:
            # Its text repeats the URL, which may carry a token: not chained, not shown.
            raise TransportError(f"invalid WebSocket URL {name}") from None
        ssl_ctx = None
        if uri.secure:
            if self.tls.insecure_skip_verify:
                logger.warning(
                    "! TLS certificate verification is OFF for %s (insecure_skip_verify); "
                    "never use this in production",
                    name,
                )
            ssl_ctx = self.tls.ssl_context()
        protocol = ClientProtocol(
            uri, subprotocols=[Subprotocol("sip")], max_size=self.max_message_size
        )
        conn = _Connection(
            protocol, name=name, keepalive=self.keepalive, on_message=self._message_received
        )
        self._conn = conn
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.open_timeout):
                await loop.create_connection(
                    lambda: conn,
                    uri.host,
                    uri.port,
                    ssl=ssl_ctx,
                    server_hostname=uri.host if ssl_ctx is not None else None,
                )
                await conn.opened
        except BaseException as exc:
            self._conn = None
            conn.abort()
            if isinstance(exc, TransportError) and conn.redirect:
                return None, conn.redirect
            if isinstance(exc, TimeoutError):
                raise TransportError(
                    f"WebSocket handshake with {name} timed out after {self.open_timeout:g} s"
                ) from exc
            if isinstance(exc, ssl.SSLError):
                raise _tls_error(name, exc) from exc
            if isinstance(exc, OSError):
                reason = exc.strerror or str(exc) or type(exc).__name__
                raise TransportError(f"cannot connect to {name}: {reason}") from exc
            raise
        if conn.subprotocol != "sip":
            logger.warning(
                "! %s did not accept the 'sip' subprotocol (RFC 7118 §4); continuing", name
            )
        return conn, None

    async def _run(self) -> None:
        failures = 0
        while not self._closing:
            self._set_state(TransportState.CONNECTING)
            self.attempts += 1
            error: TransportError
            try:
                conn = await self._connect_once()
            except TransportError as exc:
                error = exc
            except Exception as exc:  # an unexpected failure must not kill the loop
                error = TransportError(f"cannot connect: {type(exc).__name__}")
                error.__cause__ = exc
            else:
                if self._closing:
                    # close() was called while the handshake was in flight.
                    await self._close_quietly(conn)
                    self._conn = None
                    break
                failures = 0
                error = await self._serve(conn)
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

    async def _serve(self, conn: _Connection) -> TransportError:
        self._conn = conn
        self.connections += 1
        self._set_state(TransportState.CONNECTED)
        logger.info("= connected to %s", _redact_url(self.url))
        try:
            self.listener.transport_connected()
        except Exception:
            logger.exception("! listener failed in transport_connected")
        conn.start_delivery()
        try:
            return await asyncio.shield(conn.closed)
        except asyncio.CancelledError:
            conn.abort()
            raise
        finally:
            self._conn = None

    @staticmethod
    async def _close_quietly(conn: _Connection) -> None:
        if conn.transport is None or conn.closed.done():
            return  # not connected yet (the attempt sees ``_closing``), or already closed
        conn.close()
        try:
            await asyncio.wait_for(asyncio.shield(conn.closed), CLOSE_TIMEOUT + 0.5)
        except TimeoutError:
            conn.abort()
