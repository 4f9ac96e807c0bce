"""Secrets stay out of the logs of the libraries the SDK drives, not only out of ours.

aiortc dumps whole SDPs (``a=ice-pwd`` included) on ``aiortc.rtcpeerconnection`` at DEBUG;
websockets logs the handshake's headers (``Authorization: Basic`` for a URL with userinfo)
and request line (a ``?token=`` query) on ``websockets.client``. The SDK puts a redacting
filter on those loggers (exotel_voice.client.logbridge.protect_library_loggers). Each test
here turns DEBUG on for every logger, captures every record at the root logger, and looks
for the secrets in the formatted text.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections.abc import Iterator

import pytest
from websockets.asyncio.server import ServerConnection, serve

from exotel_voice.client import Phone
from exotel_voice.client.logbridge import LIBRARY_LOGGERS, RedactingFilter
from exotel_voice.config import AccountConfig, ReconnectPolicy
from exotel_voice.media import MediaSession
from exotel_voice.sandbox import Sandbox
from exotel_voice.transport import WebSocketTransport

from ..sandbox.conftest import LOOPBACK_MEDIA, MEDIA, PASSWORDS, sandbox_config


ICE_PWD = "IcePwdSentinel0123456789ab"
PASSWORD = "Ws-Pa55word-Sentinel"
TOKEN = "tok3n-Sentinel-xyz"

REMOTE_OFFER = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 127.0.0.1\r\na=mid:0\r\na=rtcp-mux\r\n"
    "a=ice-ufrag:AfWL\r\n"
    f"a=ice-pwd:{ICE_PWD}\r\n"
    "a=fingerprint:sha-256 "
    + ":".join(["AB"] * 32)
    + "\r\na=setup:actpass\r\na=sendrecv\r\na=rtpmap:0 PCMU/8000\r\n"
)


class Everything(logging.Handler):
    """Formats every record that reaches the root logger, traceback included."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []
        self.names: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.names.add(record.name)
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def everything() -> Iterator[Everything]:
    root = logging.getLogger()
    handler = Everything()
    saved = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    # Every logger at DEBUG, whatever an earlier test (the CLI's, say) set on one of them.
    loggers = [logging.getLogger(name) for name in ("exotel_voice", *LIBRARY_LOGGERS)]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def test_the_filter_is_on_every_library_logger() -> None:
    for name in LIBRARY_LOGGERS:
        filters = logging.getLogger(name).filters
        assert sum(isinstance(f, RedactingFilter) for f in filters) == 1, name


async def test_aiortc_sdp_dump_has_no_ice_pwd(everything: Everything) -> None:
    from aiortc import RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection()
    try:
        await pc.setRemoteDescription(RTCSessionDescription(REMOTE_OFFER, "offer"))
    finally:
        await pc.close()
    assert "aiortc.rtcpeerconnection" in everything.names, "aiortc logged its SDP dump"
    assert "setRemoteDescription(offer)" in everything.text
    assert "a=ice-ufrag:AfWL" in everything.text, "the dump is still there, masked"
    assert ICE_PWD not in everything.text
    assert "a=ice-pwd:[secure]" in everything.text


async def test_websockets_handshake_has_no_credentials(everything: Everything) -> None:
    seen: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        seen.append(ws.request.headers.get("Authorization", "") if ws.request else "")
        async for message in ws:
            await ws.send(message)

    class Listener:
        def __init__(self) -> None:
            self.got = asyncio.Event()

        def transport_connected(self) -> None:
            pass

        def transport_disconnected(self, error: object, retry_in: float | None) -> None:
            pass

        def message_received(self, data: str | bytes) -> None:
            self.got.set()

    async with serve(handler, "127.0.0.1", 0, subprotocols=["sip"]) as server:  # type: ignore[list-item]
        port = next(iter(server.sockets)).getsockname()[1]
        listener = Listener()
        transport = WebSocketTransport(
            f"ws://alice:{PASSWORD}@127.0.0.1:{port}/ws?token={TOKEN}", listener,
            reconnect=ReconnectPolicy(enabled=False),
        )
        transport.start()
        await transport.wait_connected(5)
        await transport.send(f"OPTIONS sip:x SIP/2.0\r\nX-Ice: a=ice-pwd:{ICE_PWD}\r\n\r\n")
        await asyncio.wait_for(listener.got.wait(), 5)
        await transport.close()
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert seen and basic in seen[0], "the credentials did go to the server"
    assert "websockets.client" in everything.names and "websockets.server" in everything.names
    text = everything.text
    assert re.search(r"> Authorization: \[secure\]", text), "the header line is kept, masked"
    for secret in (PASSWORD, basic, TOKEN, ICE_PWD):
        assert secret not in text, secret


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(60)
async def test_a_real_call_at_debug_leaks_no_secret(everything: Everything) -> None:
    """A call to the sandbox's echo number with every logger at DEBUG: neither side's
    ice-pwd nor the SIP password appears in any record of any logger."""
    async with Sandbox(sandbox_config()) as sandbox:
        info = sandbox.sip_account_info("agent", secure=False)
        async with Phone(AccountConfig.from_sip_account_info(info), media=MEDIA) as phone:
            await phone.register(timeout=10)
            call = await phone.dial("echo")
            await call.wait_connected(10)
            media = call.media
            assert isinstance(media, MediaSession)
            local = media._pc.localDescription.sdp
            remote = media._pc.remoteDescription.sdp
            await asyncio.sleep(0.5)
            await call.hangup()
    pwds = re.findall(r"a=ice-pwd:(\S+)", local + remote)
    assert len(set(pwds)) >= 2, "both sides' ice-pwd are known"
    names = everything.names
    assert "aiortc.rtcpeerconnection" in names and any(n.startswith("aioice") for n in names)
    text = everything.text
    assert "a=ice-pwd:[secure]" in text, "the SDP dumps were logged, masked"
    for secret in (*pwds, PASSWORDS["agent"]):
        assert secret not in text, f"{secret!r} reached the logs"
