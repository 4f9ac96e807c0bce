"""WebSocketTransport against real WebSocket servers on 127.0.0.1.

Integration with a real SIP server (Kamailio) is in tests/interop/test_registration_kamailio.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import trustme
from websockets.asyncio.server import Server, ServerConnection, serve

from exotel_voice.config import KeepaliveConfig, ReconnectPolicy, TlsConfig
from exotel_voice.exceptions import TransportError
from exotel_voice.transport import TransportState, WebSocketTransport


FAST = ReconnectPolicy(initial_delay=0.05, max_delay=0.2, jitter=0.0)


@dataclass
class Recorder:
    """A TransportListener that records what it is told."""

    events: list[str] = field(default_factory=list)
    messages: list[str | bytes] = field(default_factory=list)
    errors: list[TransportError] = field(default_factory=list)
    retries: list[float | None] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def transport_connected(self) -> None:
        self.events.append("connected")
        self.changed.set()

    def transport_disconnected(self, error: TransportError, retry_in: float | None) -> None:
        self.events.append("disconnected")
        self.errors.append(error)
        self.retries.append(retry_in)
        self.changed.set()

    def message_received(self, data: str | bytes) -> None:
        self.messages.append(data)
        self.changed.set()

    async def wait_for(self, predicate: object, timeout: float = 5.0) -> None:
        assert callable(predicate)
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


async def echo_handler(ws: ServerConnection) -> None:
    async for message in ws:
        if message == "\r\n\r\n":
            await ws.send("\r\n")
        else:
            await ws.send(f"echo:{message}")


@pytest.fixture
async def echo_server() -> AsyncIterator[Server]:
    async with serve(echo_handler, "127.0.0.1", 0, subprotocols=["sip"]) as server:  # type: ignore[list-item]
        yield server


def url_of(server: Server, scheme: str = "ws") -> str:
    port = next(iter(server.sockets)).getsockname()[1]
    return f"{scheme}://127.0.0.1:{port}/ws"


async def test_connects_with_sip_subprotocol_and_round_trips(echo_server: Server) -> None:
    rec = Recorder()
    t = WebSocketTransport(url_of(echo_server), rec, reconnect=FAST)
    t.start()
    await t.wait_connected(5)
    assert t.subprotocol == "sip"
    await t.send(b"OPTIONS sip:x SIP/2.0\r\n\r\n")
    await rec.wait_for(lambda: rec.messages)
    assert rec.messages == ["echo:OPTIONS sip:x SIP/2.0\r\n\r\n"]
    await t.close()
    assert t.state is TransportState.CLOSED
    assert rec.events == ["connected"]


async def test_send_when_not_connected_is_a_clear_error() -> None:
    t = WebSocketTransport("ws://127.0.0.1:9/ws", Recorder())
    with pytest.raises(TransportError, match="transport is idle"):
        await t.send("x")


async def test_reconnects_after_server_closes_the_connection() -> None:
    connections = 0

    async def close_first(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:
            await ws.close(1011, "going away for the test")
            return
        await echo_handler(ws)

    async with serve(close_first, "127.0.0.1", 0, subprotocols=["sip"]) as server:  # type: ignore[list-item]
        rec = Recorder()
        t = WebSocketTransport(url_of(server), rec, reconnect=FAST)
        t.start()
        await rec.wait_for(lambda: rec.events.count("connected") == 2)
        assert rec.events == ["connected", "disconnected", "connected"]
        assert "1011" in str(rec.errors[0])
        assert rec.retries[0] is not None and rec.retries[0] <= 0.2
        await t.close()


async def test_retries_until_the_server_appears_then_close_stops_retrying() -> None:
    # Reserve a port, then leave it closed: connection attempts are refused.
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    rec = Recorder()
    t = WebSocketTransport(f"ws://127.0.0.1:{port}/ws", rec, reconnect=FAST)
    t.start()
    await rec.wait_for(lambda: rec.events.count("disconnected") >= 2)
    assert "cannot connect" in str(rec.errors[0])
    assert t.state in (TransportState.DISCONNECTED, TransportState.CONNECTING)
    async with serve(echo_handler, "127.0.0.1", port, subprotocols=["sip"]):  # type: ignore[list-item]
        await rec.wait_for(lambda: "connected" in rec.events, timeout=5)
        await t.close()
    attempts = t.attempts
    await asyncio.sleep(0.3)
    assert t.attempts == attempts, "a closed transport must not retry"


async def test_backoff_grows_and_respects_the_cap() -> None:
    policy = ReconnectPolicy(initial_delay=1.0, max_delay=8.0, factor=2.0, jitter=0.5)
    assert [policy.delay(n, 0.5) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert policy.delay(1, 0.0) == 0.5 and policy.delay(1, 0.999999) == pytest.approx(1.5, 1e-3)


async def test_disabled_reconnect_reports_no_retry() -> None:
    rec = Recorder()
    t = WebSocketTransport(
        "ws://127.0.0.1:9/ws", rec, reconnect=ReconnectPolicy(enabled=False), open_timeout=1
    )
    t.start()
    await rec.wait_for(lambda: rec.events == ["disconnected"])
    assert rec.retries == [None]
    await t.close()


# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def wss_server(ca: trustme.CA) -> AsyncIterator[Server]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    async with serve(echo_handler, "127.0.0.1", 0, subprotocols=["sip"], ssl=ctx) as server:  # type: ignore[list-item]
        yield server


async def test_wss_trusts_a_given_ca_file(wss_server: Server, ca: trustme.CA) -> None:
    with ca.cert_pem.tempfile() as ca_file:
        rec = Recorder()
        t = WebSocketTransport(
            url_of(wss_server, "wss"), rec, tls=TlsConfig(ca_file=ca_file), reconnect=FAST
        )
        t.start()
        await t.wait_connected(5)
        await t.send("hello")
        await rec.wait_for(lambda: rec.messages == ["echo:hello"])
        await t.close()


async def test_wss_rejects_an_untrusted_certificate(wss_server: Server) -> None:
    rec = Recorder()
    t = WebSocketTransport(
        url_of(wss_server, "wss"), rec, reconnect=ReconnectPolicy(enabled=False)
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    t.start()
    await rec.wait_for(lambda: rec.events == ["disconnected"])
    assert loop.time() - started < 2.0, "a verification failure is not a timeout"
    message = str(rec.errors[0])
    assert isinstance(rec.errors[0], TransportError)
    # The reason in plain words, with the server named; no OpenSSL source location.
    assert "certificate verify failed: unable to get local issuer certificate" in message
    assert url_of(wss_server, "wss") in message
    assert "_ssl.c" not in message and "[SSL:" not in message
    assert "ca_file" in message, "the message says how to trust the server's CA"
    await t.close()


async def test_insecure_mode_connects_and_warns_on_every_connection(
    ca: trustme.CA, caplog: pytest.LogCaptureFixture
) -> None:
    async def close_at_once(ws: ServerConnection) -> None:
        await ws.close(1011, "again")

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    async with serve(close_at_once, "127.0.0.1", 0, subprotocols=["sip"], ssl=ctx) as server:  # type: ignore[list-item]
        rec = Recorder()
        t = WebSocketTransport(
            url_of(server, "wss"), rec, tls=TlsConfig(insecure_skip_verify=True), reconnect=FAST
        )
        with caplog.at_level(logging.WARNING, logger="exotel_voice"):
            t.start()
            await rec.wait_for(lambda: rec.events.count("connected") >= 2)
        await t.close()
    assert caplog.text.count("verification is OFF") >= 2


# -- keepalive ---------------------------------------------------------------------------------


class SilentServer:
    """Completes the WebSocket handshake, then never sends a byte (not even a pong)."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(
            hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        )
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
        )
        await writer.drain()
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass

    async def close(self) -> None:
        for w in self.writers:
            w.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_ping_keepalive_detects_a_silent_server() -> None:
    silent = SilentServer()
    port = await silent.start()
    rec = Recorder()
    t = WebSocketTransport(
        f"ws://127.0.0.1:{port}/ws",
        rec,
        keepalive=KeepaliveConfig(interval=0.2, mode="ping", timeout=0.3),
        reconnect=ReconnectPolicy(enabled=False),
    )
    t.start()
    await rec.wait_for(lambda: rec.events == ["connected", "disconnected"], timeout=5)
    assert "keepalive timed out: no WebSocket pong within 0.3 s" in str(rec.errors[0])
    await t.close()
    await silent.close()


async def test_crlf_keepalive_detects_a_server_that_stops_answering() -> None:
    answering = True
    pings = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal pings
        async for message in ws:
            if message == "\r\n\r\n":
                pings += 1
                if answering:
                    await ws.send("\r\n")

    async with serve(handler, "127.0.0.1", 0, subprotocols=["sip"]) as server:  # type: ignore[list-item]
        rec = Recorder()
        t = WebSocketTransport(
            url_of(server),
            rec,
            keepalive=KeepaliveConfig(interval=0.1, mode="crlf", timeout=0.2),
            reconnect=ReconnectPolicy(enabled=False),
        )
        t.start()
        await t.wait_connected(5)
        await asyncio.sleep(0.5)
        assert pings >= 2 and rec.events == ["connected"], "answered pings keep it alive"
        answering = False
        await rec.wait_for(lambda: rec.events == ["connected", "disconnected"], timeout=5)
        assert "no CRLF keepalive pong within 0.2 s" in str(rec.errors[0])
        await t.close()


async def test_server_crlf_ping_gets_a_pong(echo_server: Server) -> None:
    got: list[str | bytes] = []

    async def handler(ws: ServerConnection) -> None:
        await ws.send("\r\n\r\n")
        got.append(await ws.recv())

    async with serve(handler, "127.0.0.1", 0, subprotocols=["sip"]) as server:  # type: ignore[list-item]
        rec = Recorder()
        t = WebSocketTransport(url_of(server), rec, reconnect=ReconnectPolicy(enabled=False))
        t.start()
        await rec.wait_for(lambda: "disconnected" in rec.events)
        await t.close()
    assert got == ["\r\n"]
    assert rec.messages == [], "keepalives are not SIP messages"


# -- handshake, framing and closing -----------------------------------------------------------


async def test_a_rejected_handshake_is_a_clear_error() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()

    def reject(connection: ServerConnection, request: object) -> object:
        return connection.respond(404, "no SIP here\n")

    async with serve(handler, "127.0.0.1", 0, process_request=reject) as server:  # type: ignore[arg-type]
        rec = Recorder()
        t = WebSocketTransport(url_of(server), rec, reconnect=ReconnectPolicy(enabled=False))
        t.start()
        await rec.wait_for(lambda: rec.events == ["disconnected"])
        assert "handshake" in str(rec.errors[0]) and "404" in str(rec.errors[0])
        await t.close()


async def test_messages_sent_right_after_the_handshake_follow_transport_connected() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send("first")
        await ws.send(b"\x00binary")
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, subprotocols=["sip"]) as server:  # type: ignore[list-item]
        order: list[str] = []
        rec = Recorder()
        real_connected, real_received = rec.transport_connected, rec.message_received
        rec.transport_connected = lambda: (order.append("connected"), real_connected())[-1]  # type: ignore[method-assign]
        rec.message_received = lambda d: (order.append(repr(d)), real_received(d))[-1]  # type: ignore[method-assign]
        t = WebSocketTransport(url_of(server), rec, reconnect=FAST)
        t.start()
        await rec.wait_for(lambda: len(rec.messages) == 2)
        assert order == ["connected", "'first'", "b'\\x00binary'"]
        await t.close()


async def test_fragmented_messages_are_reassembled(echo_server: Server) -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(["INVITE sip:a ", "SIP/2.0\r\n", "\r\n"])
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, subprotocols=["sip"]) as server:  # type: ignore[list-item]
        rec = Recorder()
        t = WebSocketTransport(url_of(server), rec, reconnect=FAST)
        t.start()
        await rec.wait_for(lambda: rec.messages)
        assert rec.messages == ["INVITE sip:a SIP/2.0\r\n\r\n"]
        await t.close()


async def test_a_message_over_the_size_limit_fails_the_connection() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send("x" * 2000)
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, subprotocols=["sip"]) as server:  # type: ignore[list-item]
        rec = Recorder()
        t = WebSocketTransport(
            url_of(server), rec, reconnect=ReconnectPolicy(enabled=False), max_message_size=1000
        )
        t.start()
        await rec.wait_for(lambda: "disconnected" in rec.events)
        assert rec.messages == []
        assert "code=1009" in str(rec.errors[0]) and "1000" in str(rec.errors[0])
        await t.close()


async def test_invalid_utf8_in_a_text_frame_fails_the_connection_with_1007() -> None:
    codes: list[int | None] = []

    async def handler(ws: ServerConnection) -> None:
        await ws.send(b"OPTIONS sip:\xff\xfe SIP/2.0\r\n\r\n", text=True)
        await ws.wait_closed()
        codes.append(ws.close_code)

    async with serve(handler, "127.0.0.1", 0, subprotocols=["sip"]) as server:  # type: ignore[list-item]
        rec = Recorder()
        t = WebSocketTransport(url_of(server), rec, reconnect=ReconnectPolicy(enabled=False))
        t.start()
        await rec.wait_for(lambda: "disconnected" in rec.events)
        assert rec.messages == []
        assert "code=1007" in str(rec.errors[0])
        await t.close()
    assert codes == [1007]


async def test_close_does_the_closing_handshake(echo_server: Server) -> None:
    codes: list[int | None] = []

    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()
        codes.append(ws.close_code)

    async with serve(handler, "127.0.0.1", 0, subprotocols=["sip"]) as server:  # type: ignore[list-item]
        t = WebSocketTransport(url_of(server), Recorder(), reconnect=FAST)
        t.start()
        await t.wait_connected(5)
        await t.close()
        async with asyncio.timeout(5):
            while not codes:
                await asyncio.sleep(0.01)
    assert codes == [1000]
    with pytest.raises(TransportError, match="transport is closed"):
        await t.send("x")


async def test_send_waits_while_the_socket_buffer_is_full(echo_server: Server) -> None:
    rec = Recorder()
    t = WebSocketTransport(url_of(echo_server), rec, reconnect=FAST)
    t.start()
    await t.wait_connected(5)
    ws = t._ws
    assert ws is not None
    ws.pause_writing()  # as asyncio does above the transport's high-water mark
    sending = asyncio.ensure_future(t.send("queued"))
    await asyncio.sleep(0.05)
    assert not sending.done(), "send waits for the buffer to drain"
    ws.resume_writing()
    await asyncio.wait_for(sending, 2)
    await rec.wait_for(lambda: rec.messages == ["echo:queued"])
    await t.close()


async def test_invalid_url_is_reported_without_its_secrets() -> None:
    rec = Recorder()
    t = WebSocketTransport(
        "ws://user:s3cret@/ws?token=abc", rec, reconnect=ReconnectPolicy(enabled=False)
    )
    t.start()
    await rec.wait_for(lambda: rec.events == ["disconnected"])
    text = str(rec.errors[0])
    assert "invalid WebSocket URL" in text
    assert "s3cret" not in text and "abc" not in text
    await t.close()


# -- handshake redirects ----------------------------------------------------------------------


def redirect_to(location: str | None = None) -> object:
    """A process_request that answers every handshake with 302 to ``location`` (or itself)."""

    def respond(connection: ServerConnection, request: object) -> object:
        response = connection.respond(302, "moved\n")
        response.headers["Location"] = location if location is not None else "/again"
        return response

    return respond


async def test_a_handshake_redirect_is_followed(echo_server: Server) -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()

    target = url_of(echo_server)
    async with serve(handler, "127.0.0.1", 0, process_request=redirect_to(target)) as mover:  # type: ignore[arg-type]
        rec = Recorder()
        t = WebSocketTransport(url_of(mover) + "?token=s3cret", rec, reconnect=FAST)
        t.start()
        await t.wait_connected(5)
        await t.send("hello")
        await rec.wait_for(lambda: rec.messages == ["echo:hello"])
        assert rec.events == ["connected"]
        assert t.url == url_of(mover) + "?token=s3cret"  # the next attempt starts there again
        await t.close()


async def test_a_redirect_loop_is_a_clear_error() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, process_request=redirect_to()) as loop_server:  # type: ignore[arg-type]
        rec = Recorder()
        t = WebSocketTransport(url_of(loop_server), rec, reconnect=ReconnectPolicy(enabled=False))
        t.start()
        await rec.wait_for(lambda: rec.events == ["disconnected"])
        assert "more than 10 redirects" in str(rec.errors[0])
        await t.close()


async def test_a_redirect_from_wss_to_ws_is_refused(
    ca: trustme.CA, echo_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    target = url_of(echo_server) + "?token=s3cret"
    async with serve(
        handler, "127.0.0.1", 0, ssl=ctx, process_request=redirect_to(target)  # type: ignore[arg-type]
    ) as mover:
        with ca.cert_pem.tempfile() as ca_file, caplog.at_level(logging.DEBUG):
            rec = Recorder()
            t = WebSocketTransport(
                url_of(mover, "wss"), rec, tls=TlsConfig(ca_file=ca_file),
                reconnect=ReconnectPolicy(enabled=False),
            )
            t.start()
            await rec.wait_for(lambda: rec.events == ["disconnected"])
            await t.close()
    assert "would drop TLS" in str(rec.errors[0])
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("exotel_voice")]
    assert ours and not any("s3cret" in m for m in ours)
    assert "s3cret" not in str(rec.errors[0])
