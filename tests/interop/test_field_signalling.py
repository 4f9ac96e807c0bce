"""Signalling lost mid-call, against Kamailio + rtpengine with real far ends.

A Python phone (over ws, sending a 700 Hz tone) is in a call through Kamailio + rtpengine
with audio both ways. Then the signalling goes away while the media (through rtpengine)
does not:

* ``killed``: Kamailio is killed (SIGKILL) and restarted on its ports: it has lost every
  registration, every nonce and every connection; rtpengine keeps the call's media;
* ``reset``: the phone's WebSocket to Kamailio is reset (``ss -K``), Kamailio stays up.

What the user must see: the phone reconnects and registers again (``Reconnecting``,
``Reconnected``, ``REGISTERED``), the call refreshes its dialog (a re-INVITE with the new
Contact reaches the far end, ``CallRecovered``), each side hears the other in audio taken
after that refresh, hold and resume work, and the far end's BYE reaches the phone over the
new connection (on the dead one it would be lost without the refresh).

Kamailio reaches a WebSocket client through the connection named in its Contact (an
``alias``), so the far end must keep a way in that outlives the fault:

* baresip (UDP) keeps its address whatever happens to Kamailio: it is the far end of both
  faults.  baresip 1.0 stops its own recording of what it decodes at the first re-INVITE
  (the refresh), so what it receives after the refresh is read on the wire instead: the
  RTP rtpengine sends to baresip's ports, tapped on ``lo`` (:class:`RtpTap`) and decoded
  (PCMU).
* SIP.js in Chromium (its tone monitor samples what it plays every 10 ms, with the time)
  is the far end of the WebSocket reset, which takes our connection only.  When Kamailio is
  killed the browser's own WebSocket goes too: after it reconnects, our refresh is sent to
  its old connection and its own refresh (if the application makes one) to ours, and
  Kamailio answers both 500, so no browser far end can be reached again through a
  restarted Kamailio; that case is left to baresip, and the last test checks that our
  call then ends (the refresh tried three times, then a BYE and ``CallEnded``).

``scripts/in-netns.sh .venv/bin/python -m pytest -q tests/interop/test_field_signalling.py``
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest

from exotel_voice.client import (
    Call,
    CallEnded,
    CallRecovered,
    Phone,
    Reconnected,
    Reconnecting,
    RegistrationState,
    RegistrationStateChanged,
)
from exotel_voice.config import ReconnectPolicy
from exotel_voice.media import ToneSource
from tests.rig import netns_skip_reason
from tests.rig.audio import dominant_frequency, rms, write_tone_wav
from tests.rig.baresip import BaresipPhone
from tests.rig.browser import BrowserHost, tone_share
from tests.rig.faults import kill_tcp
from tests.rig.fixtures import BaresipFactory
from tests.rig.kamailio import Kamailio

from .test_calls import bs
from .test_calls_peers import (
    BARESIP_HZ,
    BROWSER_HZ,
    MEDIA,
    PY_HZ,
    TOLERANCE_HZ,
    Recorder,
    account,
    assert_browser_hears,
    assert_python_hears,
    browser_phone,
    close_browser_phones,
)


pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(netns_skip_reason() is not None, reason=str(netns_skip_reason())),
    pytest.mark.timeout(120),
]

#: From the fault to the call's dialog refreshed (reconnect, REGISTER, re-INVITE).
BOUND = 15.0
#: The window after CallRecovered in which the far end must hear our tone (it starts a
#: little after the event: the far end's jitter buffer and the tone monitor's window).
AFTER = (0.2, 1.2)


@asynccontextmanager
async def py_phone(kamailio: Kamailio) -> AsyncIterator[tuple[Phone, Recorder, str]]:
    """A registered phone that reconnects fast; yields it, its events and its user."""
    user, password = kamailio.new_user("py")
    config = account(kamailio, user, password, "ws").with_changes(
        reconnect=ReconnectPolicy(initial_delay=0.1, max_delay=0.5)
    )
    phone = Phone(config, media=MEDIA, source=lambda: ToneSource(PY_HZ))
    recorder = Recorder()
    phone.add_listener(recorder)
    async with phone:
        await phone.register(timeout=10)
        yield phone, recorder, user


async def wait_for(recorder: Recorder, kind: type, timeout: float) -> object:
    async with asyncio.timeout(timeout):
        while True:
            for event in recorder.events:
                if isinstance(event, kind):
                    return event
            await asyncio.sleep(0.05)


async def lose_signalling(
    fault: str, kamailio: Kamailio, recorder: Recorder, call: Call, user: str
) -> float:
    """Make ``fault`` happen, wait for the call's dialog refresh and check the events that
    led to it; returns when (epoch seconds) ``CallRecovered`` was seen."""
    recorder.events.clear()
    if fault == "killed":
        await asyncio.to_thread(kamailio.kill)
        await wait_for(recorder, Reconnecting, 5)
        await asyncio.sleep(1.0)  # the server is down for a while
        assert not call.ended
        await asyncio.to_thread(kamailio.start)
    else:
        # Our connection only (a far end on a WebSocket keeps its own).
        closed = await asyncio.to_thread(
            kill_tcp, local_port=ws_port_of(kamailio, user), remote_port=kamailio.info.ws_port
        )
        assert closed == 1, closed

    recovered = await wait_for(recorder, CallRecovered, BOUND)
    recovered_at = time.time()
    assert getattr(recovered, "call", None) is call
    kinds = [type(e).__name__ for e in recorder.events
             if isinstance(e, (Reconnecting, Reconnected, CallRecovered, CallEnded))
             or (isinstance(e, RegistrationStateChanged)
                 and e.state is RegistrationState.REGISTERED)]
    assert kinds[0] == "Reconnecting" and "CallEnded" not in kinds, kinds
    assert kinds.index("Reconnected") < kinds.index("RegistrationStateChanged") < (
        kinds.index("CallRecovered")), kinds
    assert call.state == "connected"
    # The re-INVITE crossed Kamailio with our new Contact.
    reinvites = [e for e in kamailio.events("REQ", method="INVITE")
                 if e.get("callid") == call.call_id]
    assert len(reinvites) >= 2, reinvites
    return recovered_at


def ws_port_of(kamailio: Kamailio, user: str) -> int:
    """The local port of ``user``'s WebSocket to Kamailio, as its last REGISTER came in."""
    saved = [e for e in kamailio.events("SAVED") if e.get("aor") == user and e.get("proto") == "ws"]
    assert saved, f"no ws registration of {user} at Kamailio"
    return int(saved[-1]["src"].rsplit(":", 1)[1])


# -- what reaches baresip, on the wire ---------------------------------------------------------


def _ulaw_table() -> np.ndarray:
    """G.711 mu-law byte -> linear sample in [-1, 1]."""
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = ((mantissa << 3) + 0x84 << exponent) - 0x84
    return np.where(codes & 0x80, -magnitude, magnitude).astype(np.float64) / 32768.0


ULAW = _ulaw_table()


class RtpTap:
    """Every RTP packet to UDP ports ``first``..``last`` on ``lo`` (an ``AF_PACKET`` socket,
    root), with the time it was seen: what the far end on those ports receives."""

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last = first, last
        self.packets: list[tuple[float, int, bytes]] = []  # (epoch s, seq, payload)
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
        self._sock.bind(("lo", 0))
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._run, name="rtp-tap", daemon=True)

    def __enter__(self) -> RtpTap:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, address = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if address[2] == socket.PACKET_OUTGOING:  # lo shows each packet twice
                continue
            packet = self._rtp(frame[14:])  # after lo's Ethernet header
            if packet is not None:
                self.packets.append((time.time(), *packet))

    def _rtp(self, ip: bytes) -> tuple[int, bytes] | None:
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_UDP:
            return None
        udp = ip[(ip[0] & 0x0F) * 4 :]
        if len(udp) < 8 + 12:
            return None
        port = struct.unpack("!H", udp[2:4])[0]
        rtp = udp[8:]
        if not self.first <= port <= self.last or rtp[0] >> 6 != 2 or rtp[1] & 0x7F != 0:
            return None  # not RTP, or not PCMU (RTCP, telephone-event ...)
        start = 12 + 4 * (rtp[0] & 0x0F)
        if rtp[0] & 0x10:  # a header extension
            start += 4 + 4 * struct.unpack("!H", rtp[start + 2 : start + 4])[0]
        return struct.unpack("!H", rtp[2:4])[0], rtp[start:]

    def audio(self, start: float, end: float) -> np.ndarray:
        """The PCMU audio (8 kHz) of the packets seen between ``start`` and ``end``."""
        chosen = sorted((seq, payload) for t, seq, payload in list(self.packets)
                        if start <= t <= end)
        data = b"".join(payload for _, payload in chosen)
        return ULAW[np.frombuffer(data, dtype=np.uint8)]


def rtp_ports(far: BaresipPhone) -> tuple[int, int]:
    """The RTP port range baresip was given (its ``rtp_ports`` setting)."""
    for line in (far.run_dir / "config").read_text().splitlines():
        if line.startswith("rtp_ports "):
            first, last = line.split()[1].split("-")
            return int(first), int(last)
    raise AssertionError(f"no rtp_ports in {far.run_dir / 'config'}")


def assert_tone(samples: np.ndarray, hz: float, what: str) -> None:
    assert len(samples) >= 0.8 * 8000, f"{what}: {len(samples) / 8000:.2f} s of audio"
    frequency, level = dominant_frequency(samples, 8000), rms(samples)
    assert abs(frequency - hz) <= TOLERANCE_HZ and level > 0.05, (what, frequency, level)


@pytest.mark.parametrize("fault", ["killed", "reset"])
async def test_a_call_lives_through_lost_signalling_and_ends_cleanly_later(
    fresh_kamailio: Kamailio, baresip_factory: BaresipFactory, tmp_path: Path, fault: str
) -> None:
    """baresip (UDP) as the far end: it receives our tone after the refresh, we hear it,
    hold and resume work, and its BYE reaches us over the new connection."""
    kamailio = fresh_kamailio
    async with py_phone(kamailio) as (phone, recorder, user):
        # baresip hangs up when its audio file ends: a minute of tone (the rig's is 10 s).
        wav = write_tone_wav(tmp_path / "tone-440-60s.wav", BARESIP_HZ, 8000, 60.0)
        far = await asyncio.to_thread(baresip_factory, server=kamailio, audio_file=wav)
        with RtpTap(*rtp_ports(far)) as tap:
            call = await phone.dial(far.aor)
            await bs(far, "wait_event", "CALL_INCOMING")
            await bs(far, "accept")
            await call.wait_connected(10)
            await assert_python_hears(call, BARESIP_HZ)
            before = time.time()
            assert_tone(tap.audio(before - 1.0, before), PY_HZ, "baresip before the fault")

            recovered = await lose_signalling(fault, kamailio, recorder, call, user)

            # Audio kept flowing through rtpengine, after the refresh too: we hear
            # baresip, and rtpengine sends baresip our tone.
            await assert_python_hears(call, BARESIP_HZ)
            await asyncio.sleep(max(0.0, recovered + AFTER[1] - time.time()))
            assert_tone(tap.audio(recovered + AFTER[0], recovered + AFTER[1]), PY_HZ,
                        "baresip after the refresh")
        # Hold and resume work end to end over the new connection.
        await asyncio.wait_for(call.hold(), 10)
        await asyncio.wait_for(call.unhold(), 10)
        # baresip hangs up: its BYE must find the phone on the new connection.
        await bs(far, "hangup")
        await call.wait_ended(10)
        assert call.ended_by == "remote", call.end_reason
        await bs(far, "wait_event", "CALL_CLOSED")


async def test_after_a_websocket_reset_sipjs_and_we_hear_each_other_and_it_can_hang_up(
    kamailio: Kamailio, tmp_path: Path
) -> None:
    """SIP.js in Chromium as the far end of a reset of our WebSocket (its own stays up):
    what each side plays after the refresh is the other's tone, hold and resume work, and
    the browser's BYE reaches us over the new connection."""
    async with py_phone(kamailio) as (phone, recorder, user), BrowserHost(
        tmp_path / "browser"
    ) as host:
        page, aor = await browser_phone(host, kamailio, "ws", "far")
        try:
            call = await phone.dial(aor)
            await page.wait_for("incoming")
            await page.answer()
            await call.wait_connected(10)
            await assert_browser_hears(page, PY_HZ)
            await page.start_tone_monitor(PY_HZ, 10)
            await asyncio.sleep(0.5)
            before = time.time()

            recovered = await lose_signalling("reset", kamailio, recorder, call, user)
            # The refresh reached the browser (its dialog now targets our new connection).
            assert page.seen("reinvite"), page.events

            # We hear the browser after the refresh ...
            await assert_python_hears(call, BROWSER_HZ)
            await asyncio.sleep(max(0.0, recovered + AFTER[1] - time.time()))
            log = await page.take_tone_log()
            # ... and the browser plays our tone before the fault and after the refresh.
            count, heard = tone_share(log, before - 0.5, before)
            assert count > 20 and heard > 0.8, (count, heard)
            count, heard = tone_share(log, recovered + AFTER[0], recovered + AFTER[1])
            assert count > 50 and heard > 0.8, (count, heard)

            # Hold and resume work end to end over the new connection.
            await asyncio.wait_for(call.hold(), 10)
            await asyncio.wait_for(call.unhold(), 10)
            assert not page.seen("terminated")
            # The browser hangs up: its BYE must find us on the new connection.
            await page.hangup()
            await call.wait_ended(10)
            assert call.ended_by == "remote", call.end_reason
            await page.wait_for("terminated")
            byes = [e for e in kamailio.events("REQ", method="BYE")
                    if e.get("callid") == call.call_id]
            assert [e.get("proto") for e in byes] == ["ws"], byes  # the browser's, relayed
        finally:
            await close_browser_phones(page)


async def test_a_refresh_that_cannot_reach_the_far_end_ends_the_call(
    fresh_kamailio: Kamailio, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Kamailio killed and restarted with SIP.js in Chromium as the far end: the browser's
    WebSocket dies too, and Kamailio can relay nothing to it any more (its Contact names the
    dead connection), so our refresh cannot go through: Kamailio answers it 500.  The call
    must not stay ``connected`` as if nothing happened: the refresh is tried three times
    (the call layer's default back-off, 2 s then 4 s), then the call ends with our BYE and
    a reason naming the refusal.  The BYE cannot reach the browser either (Kamailio has no
    way to it): only the far end's own application can refresh its side, and SIP.js does
    not; what we check on that side is that our BYE was sent through Kamailio."""
    kamailio = fresh_kamailio
    async with py_phone(kamailio) as (phone, recorder, user), BrowserHost(
        tmp_path / "browser"
    ) as host:
        page, aor = await browser_phone(host, kamailio, "ws", "gone")
        try:
            call = await phone.dial(aor)
            await page.wait_for("incoming")
            await page.answer()
            await call.wait_connected(10)
            await assert_browser_hears(page, PY_HZ)
            invites_before = len(kamailio.events("REQ", method="INVITE", callid=call.call_id))
            recorder.events.clear()
            await asyncio.to_thread(kamailio.kill)
            await wait_for(recorder, Reconnecting, 5)
            await asyncio.to_thread(kamailio.start)
            await wait_for(recorder, Reconnected, BOUND)
            # Kamailio refused our refresh (its own 500): it cannot reach the browser.
            async with asyncio.timeout(BOUND):
                while "refresh got 500" not in caplog.text:
                    await asyncio.sleep(0.05)
            assert not call.ended  # a refusal is tried again first

            # Two more attempts over 6 s, then the end: well within the bound.
            ended = await wait_for(recorder, CallEnded, BOUND)
            assert isinstance(ended, CallEnded), ended
            assert (ended.by, ended.status) == ("remote", 500), ended
            assert ended.reason.startswith(
                "the call's signalling could not be restored after the connection was lost: "
                "its refresh got 500 "), ended.reason
            assert ended.reason.endswith("(3 attempts)"), ended.reason
            assert call.ended and call.end_reason == ended.reason
            kinds = [type(e).__name__ for e in recorder.events
                     if isinstance(e, (Reconnecting, Reconnected, CallRecovered, CallEnded))]
            # (one Reconnecting per attempt while Kamailio was down)
            assert set(kinds[:-2]) == {"Reconnecting"}, kinds
            assert kinds[-2:] == ["Reconnected", "CallEnded"], kinds
            # Three refresh re-INVITEs crossed Kamailio after the restart, then our BYE.
            refreshes = kamailio.events("REQ", method="INVITE", callid=call.call_id)
            assert len(refreshes) - invites_before == 3, refreshes
            await asyncio.to_thread(
                kamailio.wait_event, "REQ", 5.0, method="BYE", callid=call.call_id
            )
            # Nothing of the call is left behind.
            assert phone.calls == []
        finally:
            await close_browser_phones(page)
