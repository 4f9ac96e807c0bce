"""Proves the rig itself works: real daemons, real observations.

Run inside the loopback-only namespace::

    scripts/in-netns.sh .venv/bin/pytest tests/interop/test_rig.py -v
"""

from __future__ import annotations

import asyncio
import hashlib
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


# --- WebRTC <-> plain SIP through rtpengine (uses the browser peer of tests/rig/browser.py) ----

BROWSER_HZ = 1000.0
BARESIP_HZ = 440.0


@pytest.mark.timeout(60)
async def test_webrtc_browser_and_baresip_call_both_ways(
    kamailio: Kamailio,
    baresip_factory: BaresipFactory,
    tmp_path: Path,
) -> None:
    # wss only: plain ws through Kamailio is covered by tests/interop/test_browser_rig.py.
    browser = pytest.importorskip("tests.rig.browser")
    try:
        browser.check_bundle()
    except browser.BrowserPeerError as exc:
        pytest.skip(f"browser peer not built: {exc}")
    phone = baresip_factory(
        audio_file=write_tone_wav(tmp_path / "440.wav", BARESIP_HZ, rate=8000, seconds=20)
    )
    info = kamailio.info
    user, password = kamailio.new_user("webrtc")
    async with browser.BrowserHost(tmp_path / "chromium") as host:
        peer = await host.new_phone("webrtc", tone_hz=BROWSER_HZ)
        await peer.register(info.wss_url, info.aor(user), user, password)

        # 1. WebRTC calls plain: offer toward baresip is RTP/AVP, answer back is DTLS/ICE.
        await peer.call(info.aor(phone.user))
        await asyncio.to_thread(phone.wait_event, "CALL_INCOMING", 5)
        await asyncio.to_thread(phone.accept)
        await peer.wait_for("established")
        await peer.wait_for_media(min_packets=25)
        heard = await peer.received_tone(0.6)
        assert abs(heard.frequency - BARESIP_HZ) <= 30, heard
        await asyncio.sleep(1.0)
        await peer.hangup()
        await asyncio.to_thread(phone.wait_event, "CALL_CLOSED", 5)
        rate, samples = read_wav(phone.received_audio())
        got = active_segment(samples)
        assert len(got) > rate // 2
        assert abs(dominant_frequency(got, rate) - BROWSER_HZ) < 30

        # 2. Plain calls WebRTC: offer toward the browser is ICE/DTLS, answer back RTP/AVP.
        await asyncio.to_thread(phone.dial, info.aor(user))
        await peer.wait_for("incoming")
        await peer.answer()
        await asyncio.to_thread(phone.wait_event, "CALL_ESTABLISHED", 5)
        await peer.wait_for_media(min_packets=25)
        heard = await peer.received_tone(0.6)
        assert abs(heard.frequency - BARESIP_HZ) <= 30, heard
        await asyncio.to_thread(phone.hangup)
        await peer.wait_for("terminated", by="remote")
        await peer.close()

    offers = kamailio.events("RTP")
    assert any(e["to_webrtc"] == "1" for e in offers) and any(
        e["to_webrtc"] == "0" for e in offers
    )


def test_fresh_kamailio_kill_and_restart(
    fresh_kamailio: Kamailio, baresip_factory: BaresipFactory
) -> None:
    k = fresh_kamailio
    phone = baresip_factory(server=k)
    assert k.wait_registered(phone.user, timeout=5)
    ports = (k.info.udp_port, k.info.ws_port, k.info.wss_port)
    first_pid = k.pid

    k.kill()
    assert not k.is_running and not k.ping()

    k.start()
    assert k.is_running and k.pid != first_pid
    assert (k.info.udp_port, k.info.ws_port, k.info.wss_port) == ports
    # usrloc lives in memory: the binding is gone until the phone refreshes.
    assert k.registered_contacts(phone.user) == []
    # Users survive (they are rendered into the config): a new phone can register.
    assert k.info.users[phone.user]
    again = baresip_factory(phone.user, server=k)
    assert k.wait_registered(again.user, timeout=5)



def _udp_exchange(sock: socket.socket, port: int, message: str) -> str:
    sock.sendto(message.encode(), ("127.0.0.1", port))
    while True:
        data = sock.recv(65535).decode()
        if not data.startswith("SIP/2.0 1"):  # skip provisional replies
            return data


def test_register_below_min_expires_gets_423(kamailio: Kamailio) -> None:
    # Registrar mode: expires below min_expires (10) is answered 423 + Min-Expires, not raised.
    info = kamailio.info
    user, password = kamailio.new_user("short")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2.0)
        local = f"127.0.0.1:{sock.getsockname()[1]}"
        call_id, tag = secrets.token_hex(8), secrets.token_hex(4)

        def register(cseq: int, auth: str = "") -> str:
            return (
                f"REGISTER sip:{info.domain} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {local};branch=z9hG4bK{secrets.token_hex(6)};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:{user}@{info.domain}>;tag={tag}\r\n"
                f"To: <sip:{user}@{info.domain}>\r\n"
                f"Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
                f"Contact: <sip:{user}@{local}>\r\nExpires: 5\r\n{auth}"
                "Content-Length: 0\r\n\r\n"
            )

        challenge = _udp_exchange(sock, info.udp_port, register(1))
        assert challenge.startswith("SIP/2.0 401 ")
        nonce = challenge.split('nonce="', 1)[1].split('"', 1)[0]
        uri, cnonce = f"sip:{info.domain}", secrets.token_hex(4)
        ha1 = hashlib.md5(f"{user}:{info.domain}:{password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"REGISTER:{uri}".encode()).hexdigest()
        response = hashlib.md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}".encode()).hexdigest()
        auth = (
            f'Authorization: Digest username="{user}", realm="{info.domain}", '
            f'nonce="{nonce}", uri="{uri}", response="{response}", algorithm=MD5, '
            f"qop=auth, nc=00000001, cnonce=\"{cnonce}\"\r\n"
        )
        reply = _udp_exchange(sock, info.udp_port, register(2, auth))
    assert reply.startswith("SIP/2.0 423 "), reply.splitlines()[0]
    assert "\r\nMin-Expires: 10\r\n" in reply
    assert kamailio.events("AUTHED", method="REGISTER", user=user)
    assert kamailio.registered_contacts(user) == []
