"""Proves the rig itself works: real daemons, real observations.

Run inside the loopback-only namespace::

    scripts/in-netns.sh .venv/bin/pytest tests/interop/test_rig.py -v
"""

from __future__ import annotations

import secrets
import socket
import ssl
import struct
from pathlib import Path

import pytest
import websockets
from tests.rig.audio import active_segment, dominant_frequency, read_wav, tone_ratio, write_tone_wav
from tests.rig.coturn import Coturn
from tests.rig.fixtures import BaresipFactory
from tests.rig.kamailio import Kamailio
from tests.rig.rtpengine import Rtpengine
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


def test_baresip_registers_over_udp(kamailio: Kamailio, baresip_factory: BaresipFactory) -> None:
    phone = baresip_factory()
    contacts = kamailio.wait_registered(phone.user, timeout=5)
    assert len(contacts) == 1
    assert f":{phone.sip_port}" in contacts[0]["Address"]
    saved = kamailio.events("SAVED", aor=phone.user)
    assert saved and saved[-1]["proto"] == "udp"


def test_baresip_call_carries_tone_through_rtpengine(
    kamailio: Kamailio,
    rtpengine: Rtpengine,
    baresip_factory: BaresipFactory,
    tmp_path: Path,
) -> None:
    tone = write_tone_wav(tmp_path / "a-440.wav", 440.0, rate=8000, seconds=10)
    silence_then_other = write_tone_wav(tmp_path / "b-1000.wav", 1000.0, rate=8000, seconds=10)
    caller = baresip_factory(audio_file=tone)
    callee = baresip_factory(audio_file=silence_then_other)

    caller.dial(f"sip:{callee.user}@{kamailio.info.domain}")
    callee.wait_event("CALL_INCOMING", timeout=5)
    callee.accept()
    caller.wait_event("CALL_ESTABLISHED", timeout=5)
    callee.wait_event("CALL_ESTABLISHED", timeout=5)

    invite = kamailio.wait_event("RTP", timeout=5)[-1]
    call_id = invite["callid"]
    assert invite["to_webrtc"] == "0"
    counts = rtpengine.wait_packets(call_id, minimum=75, timeout=5)  # 1.5 s each way
    assert len(counts) == 2

    caller.hangup()
    callee.wait_event("CALL_CLOSED", timeout=5)
    caller.wait_event("CALL_CLOSED", timeout=5)
    assert kamailio.events("REQ", method="BYE", callid=call_id)

    # What B received is A's 440 Hz tone (and not B's own 1000 Hz one).
    rate, samples = read_wav(callee.received_audio())
    heard = active_segment(samples)
    assert rate == 8000 and len(heard) > rate // 2  # more than half a second of audio
    assert abs(dominant_frequency(heard, rate) - 440.0) < 10
    assert tone_ratio(heard, rate, 440.0) > 0.5
    # ... and A received B's 1000 Hz tone.
    rate, samples = read_wav(caller.received_audio())
    assert abs(dominant_frequency(active_segment(samples), rate) - 1000.0) < 10


def test_coturn_answers_stun_binding(coturn: Coturn) -> None:
    txid = secrets.token_bytes(12)
    # Binding request: type 0x0001, length 0, magic cookie 0x2112A442, transaction id.
    request = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + txid
    assert len(request) == 20
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(2.0)
        s.sendto(request, (coturn.info.host, coturn.info.port))
        data, _ = s.recvfrom(2048)
        local_port = s.getsockname()[1]
    assert data[:2] == b"\x01\x01"  # Binding success response
    assert data[4:8] == b"\x21\x12\xa4\x42" and data[8:20] == txid
    # XOR-MAPPED-ADDRESS must reflect our own 127.0.0.1:<port>.
    attrs = data[20:]
    pos, mapped = 0, None
    while pos + 4 <= len(attrs):
        kind, length = struct.unpack("!HH", attrs[pos : pos + 4])
        if kind == 0x0020:
            value = attrs[pos + 4 : pos + 4 + length]
            port = struct.unpack("!H", value[2:4])[0] ^ 0x2112
            addr = bytes(b ^ m for b, m in zip(value[4:8], b"\x21\x12\xa4\x42", strict=True))
            mapped = (socket.inet_ntoa(addr), port)
        pos += 4 + length + (-length % 4)
    assert mapped == ("127.0.0.1", local_port)
