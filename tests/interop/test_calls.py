"""Calls between the Python SDK and real peers, through the rig's Kamailio + rtpengine.

Peers: SIP.js 0.21 in headless Chromium (WebRTC over ws/wss) and baresip 1.0 (plain RTP over
UDP, bridged by rtpengine).  Every scenario runs with the Python phone on ws and on wss (the
wss phone trusts the rig's CA through ``caFile``).  What is asserted is what a user would
observe: the far end's known tone is heard, the digits sent are the digits received, hold is
seen at the far end, and a hang-up or CANCEL ends both sides.

Needs the loopback-only namespace::

    scripts/in-netns.sh .venv/bin/pytest tests/interop/test_calls.py -v
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from exotel_voice.exceptions import InvalidState
from exotel_voice.media import MediaState
from tests.interop.test_calls_peers import (
    BARESIP_HZ,
    BROWSER_HZ,
    PY_HZ,
    SCHEMES,
    TOLERANCE_HZ,
    assert_ack_delivered,
    assert_browser_hears,
    assert_python_hears,
    browser_phone,
    close_browser_phones,
    events_of,
    kamailio_events,
    python_phone,
    uri_user,
    wait_call_event,
    wait_digits,
)
from tests.labels import call_label
from tests.rig import netns_skip_reason
from tests.rig.audio import active_segment, dominant_frequency, read_wav, rms
from tests.rig.baresip import BaresipPhone
from tests.rig.browser import BrowserHost
from tests.rig.fixtures import BaresipFactory
from tests.rig.kamailio import Kamailio


pytestmark = [
    pytest.mark.interop,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(netns_skip_reason() is not None, reason=str(netns_skip_reason())),
    pytest.mark.timeout(90),
    pytest.mark.parametrize("scheme", SCHEMES),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def host(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BrowserHost]:
    """One Chromium for the whole module; each test makes its own pages."""
    async with BrowserHost(tmp_path_factory.mktemp("browser")) as browser_host:
        yield browser_host


# ---------------------------------------------------------------------------------------------
# Python <-> browser (SIP.js)


async def test_python_calls_browser(kamailio: Kamailio, host: BrowserHost, scheme: str) -> None:
    async with python_phone(kamailio, scheme) as py:
        browser, browser_aor = await browser_phone(host, kamailio, scheme, "callee")
        try:
            call = await py.phone.dial(browser_aor, headers={"X-Exotel-Callsid": f"out-{scheme}"})
            incoming = await browser.wait_for("incoming")
            assert incoming["headers"]["X-Exotel-Callsid"] == [f"out-{scheme}"]
            assert uri_user(incoming["from"]) == py.user
            await wait_call_event(py.recorder, call, "ringing")
            await browser.answer()
            await call.wait_connected(10)
            await browser.wait_for("established")
            assert call.state == "connected"

            # Audio both ways, by content.
            await assert_browser_hears(browser, PY_HZ)
            await assert_python_hears(call, BROWSER_HZ)
            await assert_ack_delivered(kamailio, call.call_id)

            # DTMF by SIP INFO both ways.
            await call.send_dtmf("19#", method="info")
            for digit in "19#":
                info = await browser.wait_for("info")
                assert info["digit"] == digit, info
                assert info["content_type"].startswith("application/dtmf-relay"), info
            for digit in "*7":
                assert await browser.send_dtmf_info(digit) == 200
            assert await wait_digits(py.recorder, call, 2) == [("*", "info"), ("7", "info")]

            # RFC 4733 from the browser (RTCDTMFSender) reaches our media layer.
            await browser.send_dtmf_rtp("4A0", duration_ms=100, gap_ms=70)
            got = await wait_digits(py.recorder, call, 5)
            assert got[2:] == [("4", "rfc4733"), ("A", "rfc4733"), ("0", "rfc4733")], got

            # We hold: the browser sees a sendonly/inactive offer; resume: sendrecv again.
            await call.hold()
            assert call.on_hold
            held = await browser.wait_for("hold")
            assert held["held"] is True and held["direction"] in ("sendonly", "inactive"), held
            await call.unhold()
            assert not call.on_hold
            resumed = await browser.wait_for("hold")
            assert resumed["held"] is False and resumed["direction"] == "sendrecv", resumed
            await assert_browser_hears(browser, PY_HZ)

            # The browser holds us: our Call reports remote_hold, then remote_unhold.
            answer = await browser.hold()
            assert answer["status"] == 200, answer
            await wait_call_event(py.recorder, call, "remote_held")
            assert call.remote_hold
            answer = await browser.unhold()
            assert answer["status"] == 200, answer
            await wait_call_event(py.recorder, call, "remote_resumed")
            assert not call.remote_hold
            await assert_python_hears(call, BROWSER_HZ)

            # We hang up: both ends are over.
            await call.hangup()
            assert call.ended and call.ended_by == "local"
            assert (await browser.wait_for("terminated"))["by"] == "remote"
            assert py.phone.calls == []
        finally:
            await close_browser_phones(browser)


async def test_browser_calls_python(kamailio: Kamailio, host: BrowserHost, scheme: str) -> None:
    async with python_phone(kamailio, scheme) as py:
        browser, _ = await browser_phone(host, kamailio, scheme, "caller")
        try:
            await browser.call(py.aor, extra_headers={"X-Exotel-Callsid": f"in-{scheme}"})
            call = await py.phone.next_incoming_call(10)
            assert call.direction == "incoming"
            assert call.call_sid == f"in-{scheme}"
            assert call.remote_display_name == "Caller"
            await browser.wait_for("ringing")
            await call.answer()
            await browser.wait_for("established")

            await assert_python_hears(call, BROWSER_HZ)
            await assert_browser_hears(browser, PY_HZ)

            # INFO both ways, this time with us as the callee.
            for digit in "50":
                assert await browser.send_dtmf_info(digit) == 200
            await call.send_dtmf("B", method="info")
            assert (await browser.wait_for("info"))["digit"] == "B"
            await browser.send_dtmf_rtp("#9", duration_ms=100, gap_ms=70)
            assert await wait_digits(py.recorder, call, 4) == [
                ("5", "info"), ("0", "info"), ("#", "rfc4733"), ("9", "rfc4733")
            ]

            # The caller holds us: our Call reports remote_hold, then remote_unhold.
            assert (await browser.hold())["status"] == 200
            await wait_call_event(py.recorder, call, "remote_held")
            assert call.remote_hold
            assert (await browser.unhold())["status"] == 200
            await wait_call_event(py.recorder, call, "remote_resumed")
            assert not call.remote_hold
            await assert_browser_hears(browser, PY_HZ)
            await assert_python_hears(call, BROWSER_HZ)

            # The browser hangs up: our call ends, reported as ended by the far end.
            await browser.hangup()
            await call.wait_ended(10)
            assert call.ended_by == "remote"
            assert (await browser.wait_for("terminated"))["by"] == "local"
            await wait_call_event(py.recorder, call, "ended_remote")
        finally:
            await close_browser_phones(browser)


async def test_python_callee_holds_browser(
    kamailio: Kamailio, host: BrowserHost, scheme: str
) -> None:
    async with python_phone(kamailio, scheme) as py:
        browser, _ = await browser_phone(host, kamailio, scheme, "caller")
        try:
            await browser.call(py.aor)
            call = await py.phone.next_incoming_call(10)
            await call.answer()
            await browser.wait_for("established")
            await call.hold()
            held = await browser.wait_for("hold")
            assert held["held"] is True and held["direction"] in ("sendonly", "inactive"), held
            await call.unhold()
            assert (await browser.wait_for("hold"))["held"] is False
            await assert_browser_hears(browser, PY_HZ)
            await call.hangup()
            assert (await browser.wait_for("terminated"))["by"] == "remote"
        finally:
            await close_browser_phones(browser)


async def test_python_cancels_call_to_browser(
    kamailio: Kamailio, host: BrowserHost, scheme: str
) -> None:
    async with python_phone(kamailio, scheme) as py:
        browser, browser_aor = await browser_phone(host, kamailio, scheme, "callee")
        try:
            call = await py.phone.dial(browser_aor)
            await browser.wait_for("incoming")
            await wait_call_event(py.recorder, call, "ringing")
            await call.hangup()
            assert call.ended and call.ended_by == "local"
            assert call.end_status == 487, (call.end_status, call.end_reason)
            await browser.wait_for("cancelled")
            assert (await browser.wait_for("terminated"))["by"] == "remote"
            assert py.recorder.call_events(call) == ["ringing", "ended_local"], [
                (call_label(e), e.status, e.reason) for e in events_of(py.recorder, call)
            ]

            # Hang up before any provisional response has arrived: the CANCEL goes out as
            # soon as one does, and the browser is not left ringing.
            call = await py.phone.dial(browser_aor)
            t0 = time.monotonic()
            await call.hangup()
            assert call.ended and call.ended_by == "local"
            assert time.monotonic() - t0 < 5.0
            await asyncio.sleep(0.5)
            state = await browser.state()
            assert not state["session"], state
            if browser.seen("incoming"):
                await browser.wait_for("cancelled")
        finally:
            await close_browser_phones(browser)


async def test_browser_cancels_call_to_python(
    kamailio: Kamailio, host: BrowserHost, scheme: str
) -> None:
    async with python_phone(kamailio, scheme) as py:
        browser, _ = await browser_phone(host, kamailio, scheme, "caller")
        try:
            await browser.call(py.aor)
            call = await py.phone.next_incoming_call(10)
            await browser.wait_for("ringing")
            await browser.hangup()  # CANCEL
            await call.wait_ended(10)
            assert call.ended_by == "remote"
            assert "cancel" in call.end_reason.lower(), call.end_reason
            assert py.recorder.call_events(call) == ["incoming", "ringing", "ended_remote"]
            assert (await browser.wait_for("terminated"))["by"] == "local"
            with pytest.raises(InvalidState):
                await call.answer()
        finally:
            await close_browser_phones(browser)


# ---------------------------------------------------------------------------------------------
# Python <-> baresip (plain RTP, PCMU, bridged by rtpengine)


async def bs(phone: BaresipPhone, method: str, *args: object) -> object:
    """Run a blocking BaresipPhone method off the event loop."""
    return await asyncio.to_thread(getattr(phone, method), *args)


def assert_recording_has(phone: BaresipPhone, hz: float) -> None:
    rate, samples = read_wav(phone.received_audio())
    active = active_segment(samples)
    assert len(active) > rate // 2, f"{phone.user} recorded {len(active)} active samples"
    middle = active[len(active) // 4 : 3 * len(active) // 4]
    assert abs(dominant_frequency(middle, rate) - hz) <= TOLERANCE_HZ
    assert rms(middle) > 0.01


async def test_baresip_calls_python(
    kamailio: Kamailio, baresip_factory: BaresipFactory, scheme: str
) -> None:
    async with python_phone(kamailio, scheme) as py:
        phone = await asyncio.to_thread(baresip_factory)
        await bs(phone, "dial", py.aor)
        call = await py.phone.next_incoming_call(10)
        assert call.remote_number == phone.user
        await bs(phone, "wait_event", "CALL_RINGING")
        await call.answer()
        await bs(phone, "wait_event", "CALL_ESTABLISHED")
        await assert_python_hears(call, BARESIP_HZ)

        # RFC 4733 to a plain-RTP phone: baresip reports each telephone-event it decodes.
        assert call.media is not None and call.media.telephone_event
        await call.send_dtmf("3*", method="rfc4733", duration_ms=120)
        for digit in "3*":
            event = await bs(phone, "wait_event", "CALL_DTMF_START")
            assert event.param == digit, event  # type: ignore[attr-defined]

        # baresip hangs up: the BYE crosses Kamailio from UDP to our WebSocket.
        await asyncio.sleep(0.5)
        await bs(phone, "hangup")
        await call.wait_ended(10)
        assert call.ended_by == "remote"
        await bs(phone, "wait_event", "CALL_CLOSED")
        assert_recording_has(phone, PY_HZ)


async def test_python_calls_baresip(
    kamailio: Kamailio, baresip_factory: BaresipFactory, scheme: str
) -> None:
    async with python_phone(kamailio, scheme) as py:
        phone = await asyncio.to_thread(baresip_factory)
        call = await py.phone.dial(phone.aor)
        await bs(phone, "wait_event", "CALL_INCOMING")
        await bs(phone, "accept")
        await call.wait_connected(10)
        await assert_python_hears(call, BARESIP_HZ)
        await assert_ack_delivered(kamailio, call.call_id)  # UDP: baresip would repeat its 200
        await call.send_dtmf("7", method="rfc4733", duration_ms=120)
        assert (await bs(phone, "wait_event", "CALL_DTMF_START")).param == "7"  # type: ignore[attr-defined]

        # We hang up: the BYE must reach baresip over UDP through Kamailio's record-route.
        await asyncio.sleep(0.5)
        await call.hangup()
        assert call.ended_by == "local"
        closed = await bs(phone, "wait_event", "CALL_CLOSED")
        assert closed is not None
        assert_recording_has(phone, PY_HZ)


# ---------------------------------------------------------------------------------------------
# Call waiting: a second call is offered while one is connected


async def test_call_waiting(
    kamailio: Kamailio, host: BrowserHost, baresip_factory: BaresipFactory, scheme: str
) -> None:
    async with python_phone(kamailio, scheme) as py:
        browser, browser_aor = await browser_phone(host, kamailio, scheme, "first")
        try:
            first = await py.phone.dial(browser_aor)
            await browser.wait_for("incoming")
            await browser.answer()
            await first.wait_connected(10)

            phone = await asyncio.to_thread(baresip_factory)
            await bs(phone, "dial", py.aor)
            second = await py.phone.next_incoming_call(10)
            await bs(phone, "wait_event", "CALL_RINGING")
            assert py.phone.calls == [first, second]
            assert py.phone.current_call is second
            assert first.state == "connected" and second.state == "incoming"
            assert py.recorder.call_events(second) == ["incoming", "ringing"]

            # Hold the first (the browser stops sending to us), take the second.
            await first.hold()
            assert (await browser.wait_for("hold"))["held"] is True
            await second.answer()
            await bs(phone, "wait_event", "CALL_ESTABLISHED")
            await assert_python_hears(second, BARESIP_HZ)

            # Finish the second (we hang up: BYE to baresip over UDP), resume the first.
            await second.hangup()
            await bs(phone, "wait_event", "CALL_CLOSED")
            assert py.phone.calls == [first]
            await first.unhold()
            assert (await browser.wait_for("hold"))["held"] is False
            await assert_browser_hears(browser, PY_HZ)
            await assert_python_hears(first, BROWSER_HZ)
            await browser.hangup()
            await first.wait_ended(10)
            assert first.ended_by == "remote"
            assert py.phone.calls == []
            assert_recording_has(phone, PY_HZ)
        finally:
            await close_browser_phones(browser)


async def test_hangup_when_callee_never_rings(
    kamailio: Kamailio, baresip_factory: BaresipFactory, scheme: str
) -> None:
    # The callee is frozen (SIGSTOP): only Kamailio's 100 Trying comes back.  Hanging up
    # must send the CANCEL right after that 100 (RFC 3261 §9.1), not wait for a 180 that
    # never comes; the call then ends with the 487 Kamailio sends when its branch timer
    # (fr_timer, 8 s in the rig) gives up on the silent callee -- not after our Timer B.
    async with python_phone(kamailio, scheme) as py:
        phone = await asyncio.to_thread(baresip_factory)
        pid = phone._daemon.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            call = await py.phone.dial(phone.aor)
            await asyncio.sleep(0.5)  # the 407 round, the INVITE forwarded, 100 Trying back
            assert not call.ended
            hangup = asyncio.create_task(call.hangup())
            cancels = await kamailio_events(kamailio, "REQ", timeout=1.5, method="CANCEL",
                                            callid=call.call_id)
            assert cancels, "no CANCEL reached Kamailio"
            await asyncio.wait_for(hangup, 12.0)
            assert call.ended and call.ended_by == "local"
            assert call.end_status == 487, (call.end_status, call.end_reason)
            assert py.recorder.call_events(call) == ["ended_local"]
        finally:
            os.kill(pid, signal.SIGCONT)


async def test_early_media_then_answer(
    kamailio: Kamailio, baresip_factory: BaresipFactory, scheme: str
) -> None:
    # baresip in "early" answer mode sends 183 Session Progress with SDP (anchored by
    # rtpengine): we apply it as a provisional answer, and the 200 then completes the same
    # session (RFC 3261 §13.2.1: same o= line) with audio both ways.
    async with python_phone(kamailio, scheme) as py:
        phone = await asyncio.to_thread(baresip_factory, answer_mode="early")
        call = await py.phone.dial(phone.aor)
        progress = await wait_call_event(py.recorder, call, "progress")
        assert progress.status == 183
        assert call.state == "ringing" and not call.ended
        # The 183's answer is applied: media runs early (we send; baresip 1.0 sends no audio
        # before its 200 even in early mode -- rtpengine counts 0 packets on its leg).
        media = call.media
        assert media is not None
        for _ in range(100):
            if media.state is MediaState.EARLY:
                break
            await asyncio.sleep(0.02)
        assert media.state is MediaState.EARLY
        await bs(phone, "accept")
        await call.wait_connected(10)
        assert media.state is MediaState.ACTIVE
        await assert_python_hears(call, BARESIP_HZ)
        await call.hangup()
        await bs(phone, "wait_event", "CALL_CLOSED")
        assert_recording_has(phone, PY_HZ)

