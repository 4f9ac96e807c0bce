"""The browser SIP peer (SIP.js 0.21.2 in headless Chromium, tests/rig/browser.py) works.

Two BrowserPhones register and call each other; the callee hears the caller's known tone, INFO
DTMF digits arrive, hold is seen at the far end, and a hangup from either side ends both.

Signalling runs through:

* ``relay``: a tiny SIP-over-WebSocket registrar/relay defined in this file (no auth, no
  media anchoring: SDP passes untouched, so the browsers talk DTLS-SRTP directly on loopback).
  It proves the harness on its own.
* ``kamailio``: the real rig (tests/rig/kamailio.py + rtpengine), over ws and wss, when present.

Needs the loopback-only namespace: ``scripts/in-netns.sh .venv/bin/pytest tests/interop``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tests.rig import netns_skip_reason
from tests.rig.audio import write_tone_wav
from tests.rig.browser import BrowserHost, BrowserPeerError, BrowserPhone
from tests.rig.kamailio import Kamailio


pytestmark = [
    pytest.mark.interop,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(netns_skip_reason() is not None, reason=str(netns_skip_reason())),
    pytest.mark.timeout(90),
]

CALLER_HZ = 1000.0
CALLEE_HZ = 600.0
TONE_TOLERANCE_HZ = 30.0


# ---------------------------------------------------------------------------------------------
# A minimal SIP-over-WebSocket registrar + relay (RFC 7118 framing: one message per frame).
# Requests go to the connection that registered the Request-URI's user (AOR user or Contact
# user); responses go back to the connection that sent the request with that Via branch.  It
# adds no Via/Record-Route, so both SIP.js user agents see each other's Contact directly.

_HEADER_RE = re.compile(r"^([A-Za-z0-9.!%*_+`'~-]+)\s*:\s*(.*)$")
_COMPACT = {"v": "via", "t": "to", "f": "from", "m": "contact", "i": "call-id"}


def _parse(message: str) -> tuple[str, dict[str, list[str]]]:
    head = message.split("\r\n\r\n", 1)[0]
    lines = head.split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        match = _HEADER_RE.match(line)
        if match:
            name = match.group(1).lower()
            headers.setdefault(_COMPACT.get(name, name), []).append(match.group(2))
    return lines[0], headers


def _uri_user(value: str) -> str | None:
    match = re.search(r"sips?:([^@;>:]+)@", value)
    return match.group(1) if match else None


def _branch(via: str) -> str | None:
    match = re.search(r";\s*branch=([^;,\s]+)", via)
    return match.group(1) if match else None


class SipRelay:
    """The in-file signalling server (see the comment above)."""

    def __init__(self) -> None:
        self.bindings: dict[str, ServerConnection] = {}
        self.transactions: dict[str, ServerConnection] = {}
        self.log: list[str] = []  # start lines seen, for debugging failures
        self._server: Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    async def start(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", 0, subprotocols=["sip"])  # type: ignore[list-item]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for data in ws:
                text = data if isinstance(data, str) else data.decode()
                await self._route(ws, text)

    async def _route(self, ws: ServerConnection, message: str) -> None:
        start, headers = _parse(message)
        self.log.append(start)
        vias = headers.get("via", [])
        branch = _branch(vias[0]) if vias else None
        if start.startswith("SIP/2.0 "):
            target = self.transactions.get(branch or "")
            if target is not None:
                await target.send(message)
            return
        method, ruri, _ = start.split(" ", 2)
        if method == "REGISTER":
            await ws.send(self._register(ws, message, headers))
            return
        user = _uri_user(ruri)
        target = self.bindings.get(user or "")
        if target is None:
            if method != "ACK":
                await ws.send(self._reply(message, headers, 404, "Not Found"))
            return
        if branch:
            self.transactions[branch] = ws
        await target.send(message)

    def _register(self, ws: ServerConnection, message: str, headers: dict[str, list[str]]) -> str:
        aor_user = _uri_user(headers["to"][0])
        contact = headers.get("contact", [""])[0]
        contact_user = _uri_user(contact)
        expires = 0 if re.search(r"expires=0\b", contact) else 600
        for user in (aor_user, contact_user):
            if user is None:
                continue
            if expires:
                self.bindings[user] = ws
            else:
                self.bindings.pop(user, None)
        extra = [f"Contact: {contact.split(';expires=')[0]};expires={expires}"] if contact else []
        return self._reply(message, headers, 200, "OK", extra)

    def _reply(
        self,
        message: str,
        headers: dict[str, list[str]],
        code: int,
        reason: str,
        extra: list[str] | None = None,
    ) -> str:
        to = headers["to"][0]
        if code >= 200 and ";tag=" not in to:
            to += ";tag=relay1"
        lines = [f"SIP/2.0 {code} {reason}"]
        lines += [f"Via: {v}" for v in headers.get("via", [])]
        lines += [f"From: {headers['from'][0]}", f"To: {to}"]
        lines += [f"Call-ID: {headers['call-id'][0]}", f"CSeq: {headers['cseq'][0]}"]
        lines += extra or []
        lines += ["Content-Length: 0", "", ""]
        return "\r\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def host(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BrowserHost]:
    async with BrowserHost(tmp_path_factory.mktemp("browser")) as browser_host:
        yield browser_host


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def relay() -> AsyncIterator[SipRelay]:
    server = SipRelay()
    await server.start()
    yield server
    await server.close()


@pytest_asyncio.fixture(loop_scope="module")
async def phones(host: BrowserHost) -> AsyncIterator[tuple[BrowserPhone, BrowserPhone]]:
    alice = await host.new_phone("alice", tone_hz=CALLER_HZ)
    bob = await host.new_phone("bob", tone_hz=CALLEE_HZ)
    yield alice, bob
    for phone in (alice, bob):
        errors = phone.seen("pageerror")
        await phone.close()
        assert not errors, f"{phone.name}: page errors {errors}"


# ---------------------------------------------------------------------------------------------
# Scenarios (shared by the relay and the Kamailio tests)


async def establish(
    caller: BrowserPhone,
    callee: BrowserPhone,
    callee_uri: str,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    await caller.call(callee_uri, extra_headers=headers)
    incoming = await callee.wait_for("incoming")
    await caller.wait_for("ringing")
    await callee.answer()
    await caller.wait_for("established")
    await callee.wait_for("established")
    return incoming


async def assert_hears(phone: BrowserPhone, hz: float) -> None:
    await phone.wait_for_media(min_packets=25)
    tone = await phone.received_tone(0.6)
    assert abs(tone.frequency - hz) <= TONE_TOLERANCE_HZ, (phone.name, tone)
    assert tone.level_db > -40, (phone.name, tone)
    stats = await phone.media_stats()
    assert stats is not None and stats["inbound"]["totalAudioEnergy"] > 0, stats


async def full_call(
    alice: BrowserPhone, bob: BrowserPhone, bob_uri: str, alice_uri_user: str
) -> None:
    incoming = await establish(alice, bob, bob_uri, {"X-Exotel-Callsid": "browser-rig-42"})
    assert incoming["headers"]["X-Exotel-Callsid"] == ["browser-rig-42"]
    assert _uri_user(incoming["from"]) == alice_uri_user

    # Media both ways: each side hears the other's oscillator.
    await assert_hears(bob, CALLER_HZ)
    await assert_hears(alice, CALLEE_HZ)

    # DTMF over SIP INFO (application/dtmf-relay).
    for digit in "5#":
        assert await alice.send_dtmf_info(digit) == 200
        info = await bob.wait_for("info")
        assert info["digit"] == digit
        assert info["content_type"].startswith("application/dtmf-relay")
    # RFC 4733 through RTCDTMFSender: only the sending side is observable in a browser.
    await alice.send_dtmf_rtp("12", duration_ms=80, gap_ms=50)
    await alice.wait_for("dtmf_rtp_sent", digits="12")

    # Hold / unhold by re-INVITE, seen at the far end.
    answer = await alice.hold()
    assert answer["status"] == 200
    held = await bob.wait_for("hold")
    assert held["held"] is True and held["direction"] in ("sendonly", "inactive"), held
    answer = await alice.unhold()
    assert answer["status"] == 200
    resumed = await bob.wait_for("hold")
    assert resumed["held"] is False and resumed["direction"] == "sendrecv", resumed
    await assert_hears(bob, CALLER_HZ)

    # Callee hangs up: both sides end, each knows who ended it.
    await bob.hangup()
    assert (await bob.wait_for("terminated"))["by"] == "local"
    assert (await alice.wait_for("terminated"))["by"] == "remote"


async def caller_hangs_up(alice: BrowserPhone, bob: BrowserPhone, bob_uri: str) -> None:
    await establish(alice, bob, bob_uri)
    await alice.hangup()
    assert (await alice.wait_for("terminated"))["by"] == "local"
    assert (await bob.wait_for("terminated"))["by"] == "remote"


async def reject_and_cancel(alice: BrowserPhone, bob: BrowserPhone, bob_uri: str) -> None:
    await alice.call(bob_uri)
    await bob.wait_for("incoming")
    await bob.reject(486)
    assert (await alice.wait_for("rejected"))["status"] == 486
    assert (await alice.wait_for("terminated"))["by"] == "remote"
    assert (await bob.wait_for("terminated"))["by"] == "local"

    await alice.call(bob_uri)
    await bob.wait_for("incoming")
    await alice.wait_for("ringing")
    await alice.hangup()  # CANCEL before answer
    await bob.wait_for("cancelled")
    assert (await bob.wait_for("terminated"))["by"] == "remote"
    assert (await alice.wait_for("terminated"))["by"] == "local"


# ---------------------------------------------------------------------------------------------
# Through the in-file relay


async def register_on_relay(relay: SipRelay, *phones: BrowserPhone) -> None:
    for phone in phones:
        event = await phone.register(
            relay.url, f"sip:{phone.name}@localhost", phone.name, "unused", phone.name.title()
        )
        assert event is not None and event["type"] == "registered"


async def test_relay_full_call(relay: SipRelay, phones: tuple[BrowserPhone, BrowserPhone]) -> None:
    alice, bob = phones
    await register_on_relay(relay, alice, bob)
    await full_call(alice, bob, "sip:bob@localhost", "alice")
    await alice.unregister()
    await bob.unregister()


async def test_relay_caller_hangup_reject_cancel(
    relay: SipRelay, phones: tuple[BrowserPhone, BrowserPhone]
) -> None:
    alice, bob = phones
    await register_on_relay(relay, alice, bob)
    await caller_hangs_up(alice, bob, "sip:bob@localhost")
    await reject_and_cancel(alice, bob, "sip:bob@localhost")


async def test_relay_tone_detector_tells_tones_apart(
    relay: SipRelay, phones: tuple[BrowserPhone, BrowserPhone]
) -> None:
    # Guard against a detector that always reports the expected value: each side must hear
    # the *other* side's frequency, and not its own.
    alice, bob = phones
    await register_on_relay(relay, alice, bob)
    await establish(alice, bob, "sip:bob@localhost")
    heard_by_bob = await bob.received_tone(0.5)
    heard_by_alice = await alice.received_tone(0.5)
    assert abs(heard_by_bob.frequency - CALLER_HZ) <= TONE_TOLERANCE_HZ, heard_by_bob
    assert abs(heard_by_alice.frequency - CALLEE_HZ) <= TONE_TOLERANCE_HZ, heard_by_alice
    await alice.hangup()
    await bob.wait_for("terminated")


# ---------------------------------------------------------------------------------------------
# Through the real rig: Kamailio (digest auth, ws + wss) with rtpengine anchoring the media.


async def register_on_kamailio(
    kamailio: Kamailio, phone: BrowserPhone, scheme: str
) -> tuple[str, str]:
    user, password = kamailio.new_user(phone.name)
    info = kamailio.info
    url = info.ws_url if scheme == "ws" else info.wss_url
    event = await phone.register(url, info.aor(user), user, password, phone.name.title())
    assert event is not None and event["type"] == "registered"
    contacts = kamailio.wait_registered(user, timeout=5)
    assert contacts, f"Kamailio has no binding for {user}"
    return user, info.aor(user)


async def test_kamailio_wss_caller_ws_callee_full_call(
    kamailio: Kamailio, phones: tuple[BrowserPhone, BrowserPhone]
) -> None:
    alice, bob = phones
    alice_user, _ = await register_on_kamailio(kamailio, alice, "wss")
    _, bob_aor = await register_on_kamailio(kamailio, bob, "ws")
    await full_call(alice, bob, bob_aor, alice_user)
    # The server saw the INVITE over wss and the INFOs / re-INVITEs inside the dialog.
    invites = kamailio.events("REQ", method="INVITE")
    assert any(e["proto"] == "wss" for e in invites), invites
    assert kamailio.events("REQ", method="INFO")
    # rtpengine anchored the media: Kamailio asked it for WebRTC offers toward the browsers.
    assert kamailio.events("RTP", to_webrtc="1")
    await alice.unregister()
    await bob.unregister()


async def test_kamailio_caller_hangup_reject_cancel(
    kamailio: Kamailio, phones: tuple[BrowserPhone, BrowserPhone]
) -> None:
    alice, bob = phones
    await register_on_kamailio(kamailio, alice, "ws")
    _, bob_aor = await register_on_kamailio(kamailio, bob, "wss")
    await caller_hangs_up(alice, bob, bob_aor)
    await reject_and_cancel(alice, bob, bob_aor)


# ---------------------------------------------------------------------------------------------
# The other way to send a known tone: Chromium's fake capture device playing a WAV file.


async def test_fake_capture_wav_is_sent(relay: SipRelay, host: BrowserHost, tmp_path: Path) -> None:
    wav = write_tone_wav(tmp_path / "800.wav", 800.0, rate=48000, seconds=5)
    # --use-file-for-fake-audio-capture is browser-wide, so this needs its own browser.
    async with BrowserHost(tmp_path / "wav-browser", fake_audio_wav=wav) as wav_host:
        carol = await wav_host.new_phone("carol")  # no tone_hz: the fake device
        alice = await host.new_phone("alice", tone_hz=CALLER_HZ)
        try:
            await register_on_relay(relay, alice, carol)
            await establish(carol, alice, "sip:alice@localhost")
            await assert_hears(alice, 800.0)
            await assert_hears(carol, CALLER_HZ)
            await carol.hangup()
            await alice.wait_for("terminated", by="remote")
        finally:
            await alice.close()


async def test_kamailio_wrong_password_is_reported(
    kamailio: Kamailio, phones: tuple[BrowserPhone, BrowserPhone]
) -> None:
    alice, _ = phones
    user, password = kamailio.new_user("wrongpw")
    wrong = password[::-1] + "x"
    with pytest.raises(BrowserPeerError, match="register_failed") as failure:
        await alice.register(kamailio.info.ws_url, kamailio.info.aor(user), user, wrong)
    assert wrong not in str(failure.value) and password not in str(failure.value)
    assert alice.seen("register_failed")[0]["status"] in (401, 403)
    assert not alice.seen("registered")
