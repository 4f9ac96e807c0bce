"""Proves the rig itself works: real daemons, real observations.

Run inside the loopback-only namespace::

    scripts/in-netns.sh .venv/bin/pytest tests/interop/test_rig.py -v
"""

from __future__ import annotations

import secrets
import ssl

import pytest
import websockets
from tests.rig.kamailio import Kamailio
from tests.rig.sipprobe import udp_options


pytestmark = pytest.mark.interop


def _register(domain: str, user: str, via_host: str, transport: str) -> tuple[str, str]:
    call_id = secrets.token_hex(8)
    msg = (
        f"REGISTER sip:{domain} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {via_host};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{user}@{domain}>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:{user}@{domain}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 REGISTER\r\n"
        f"Contact: <sip:{user}@{via_host};transport={transport.lower()}>;expires=60\r\n"
        "Expires: 60\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    return msg, call_id


def test_kamailio_answers_options_over_udp(kamailio: Kamailio) -> None:
    status, raw = udp_options(kamailio.info.udp_port, timeout=2.0)
    assert status == 200
    assert b"Server: exotel-voice-rig-kamailio" in raw
    assert kamailio.events("REQ", method="OPTIONS")


@pytest.mark.parametrize("scheme", ["ws", "wss"])
async def test_websocket_register_is_challenged(kamailio: Kamailio, scheme: str) -> None:
    info = kamailio.info
    url = info.ws_url if scheme == "ws" else info.wss_url
    ssl_context: ssl.SSLContext | None = None
    if scheme == "wss":
        # Trust exactly the generated CA, with hostname verification on.
        ssl_context = ssl.create_default_context(cafile=str(info.ca_file))
    user = "alice"
    msg, call_id = _register(info.domain, user, "abcdef.invalid", scheme.upper())
    async with websockets.connect(url, subprotocols=["sip"], ssl=ssl_context) as ws:
        assert ws.subprotocol == "sip"
        await ws.send(msg)
        reply = await ws.recv(decode=True)
    assert isinstance(reply, str)
    assert reply.startswith("SIP/2.0 401 "), reply.splitlines()[0]
    assert call_id in reply
    challenge = [
        line for line in reply.split("\r\n") if line.lower().startswith("www-authenticate:")
    ]
    assert len(challenge) == 1
    assert "Digest" in challenge[0]
    assert f'realm="{info.domain}"' in challenge[0]
    assert "nonce=" in challenge[0] and 'qop="auth"' in challenge[0]
    seen = kamailio.events("REQ", method="REGISTER", callid=call_id)
    assert len(seen) == 1 and seen[0]["proto"] == scheme
