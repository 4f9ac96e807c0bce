"""The guide's call events and call object, as a listener sees them in real calls.

``phone.add_listener(cb)`` gets a typed :class:`CallEvent` per step (``CallIncoming``,
``CallRinging``, ``CallConnected``, ``CallEnded`` with ``by="local"`` or ``"remote"``).
Each scenario runs against SIP.js in Chromium, through Kamailio + rtpengine, with the Python
phone on ws and on wss, and checks the exact sequence of the events the guide's
CallListenerCallback hears of, plus the call's state and fields.

    scripts/in-netns.sh .venv/bin/pytest tests/interop/test_call_events.py -v
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from exotel_voice.client import CallEvent, CallIncoming, CallState
from tests.interop.test_calls_peers import (
    SCHEMES,
    browser_phone,
    close_browser_phones,
    python_phone,
    wait_call_event,
)
from tests.rig import netns_skip_reason
from tests.rig.browser import BrowserHost
from tests.rig.kamailio import Kamailio


pytestmark = [
    pytest.mark.interop,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(netns_skip_reason() is not None, reason=str(netns_skip_reason())),
    pytest.mark.timeout(60),
    pytest.mark.parametrize("scheme", SCHEMES),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def host(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BrowserHost]:
    """One Chromium for the whole module; each test makes its own pages."""
    async with BrowserHost(tmp_path_factory.mktemp("browser")) as browser_host:
        yield browser_host


@pytest.mark.parametrize("hangup_by", ["local", "remote"])
async def test_incoming_call_events_and_details(
    kamailio: Kamailio, host: BrowserHost, scheme: str, hangup_by: str
) -> None:
    async with python_phone(kamailio, scheme) as py:
        browser, _ = await browser_phone(host, kamailio, scheme, "caller")
        try:
            before = time.time()
            sent = await browser.call(
                py.aor, extra_headers={"X-Exotel-Callsid": "sid-42", "X-Ticket": "T-7"}
            )
            call = await py.phone.next_incoming_call(10)
            assert py.recorder.call_events(call) == ["incoming", "ringing"]
            # Every event is a CallEvent carrying the phone's name and the call itself.
            first = [e for e in py.recorder.events if isinstance(e, CallEvent)][0]
            assert first.phone == py.phone.name and first.call is call
            assert isinstance(first, CallIncoming)

            assert call.call_id == sent["call_id"]
            assert call.state is CallState.INCOMING
            assert call.direction == "incoming"
            assert abs(call.start_time - before) < 5
            assert call.remote_display_name == "Caller"
            assert call.call_sid == "sid-42"
            headers = call.headers
            assert headers["X-Exotel-Callsid"] == "sid-42"
            assert headers["X-Ticket"] == "T-7"
            # All the INVITE's headers, as Kamailio relayed them (its Via and Record-Route too).
            for name in ("Via", "From", "To", "Call-ID", "CSeq", "Contact", "Record-Route"):
                assert name in headers, (name, sorted(headers))
            assert call.header("x-exotel-callsid") == "sid-42"

            await call.answer()
            await browser.wait_for("established")
            assert call.state is CallState.CONNECTED
            assert py.recorder.call_events(call) == ["incoming", "ringing", "connected"]

            if hangup_by == "local":
                await call.hangup()
                await browser.wait_for("terminated")
                expected_end = "ended_local"
            else:
                await browser.hangup()
                await call.wait_ended(10)
                expected_end = "ended_remote"
            await wait_call_event(py.recorder, call, expected_end)
            assert call.ended_by == hangup_by
            assert call.state is CallState.ENDED
            assert py.recorder.call_events(call) == ["incoming", "ringing", "connected",
                                                     expected_end]
        finally:
            await close_browser_phones(browser)


@pytest.mark.parametrize("hangup_by", ["local", "remote"])
async def test_outgoing_call_events_and_details(
    kamailio: Kamailio, host: BrowserHost, scheme: str, hangup_by: str
) -> None:
    async with python_phone(kamailio, scheme, display_name="Py Agent") as py:
        browser, browser_aor = await browser_phone(host, kamailio, scheme, "callee")
        try:
            call = await py.phone.dial(browser_aor, headers={"X-Exotel-Callsid": "out-9"})
            incoming = await browser.wait_for("incoming")
            assert incoming["call_id"] == call.call_id
            await wait_call_event(py.recorder, call, "ringing")
            assert call.direction == "outgoing"
            assert call.state is CallState.RINGING
            assert call.remote_number == browser_aor.split(":", 1)[1].split("@", 1)[0]

            await browser.answer()
            await call.wait_connected(10)
            assert call.state is CallState.CONNECTED
            if hangup_by == "local":
                await call.hangup()
                expected_end = "ended_local"
            else:
                await browser.hangup()
                await call.wait_ended(10)
                expected_end = "ended_remote"
            await wait_call_event(py.recorder, call, expected_end)
            assert py.recorder.call_events(call) == ["ringing", "connected", expected_end]
            assert call.ended_by == hangup_by
        finally:
            await close_browser_phones(browser)


async def test_cancelled_and_rejected_call_events(
    kamailio: Kamailio, host: BrowserHost, scheme: str
) -> None:
    async with python_phone(kamailio, scheme) as py:
        browser, browser_aor = await browser_phone(host, kamailio, scheme, "peer")
        try:
            # The browser cancels its call to us: incoming, ringing, terminated.
            await browser.call(py.aor)
            cancelled = await py.phone.next_incoming_call(10)
            await browser.wait_for("ringing")
            await browser.hangup()
            await cancelled.wait_ended(10)
            await wait_call_event(py.recorder, cancelled, "ended_remote")
            assert py.recorder.call_events(cancelled) == ["incoming", "ringing", "ended_remote"]
            ended = [e for e in py.recorder.events
                     if isinstance(e, CallEvent) and e.call is cancelled][-1]
            assert ended.status == 487 and "cancel" in ended.reason.lower(), ended
            await browser.wait_for("rejected", status=487)  # our 487 to its INVITE
            await browser.wait_for("terminated")

            # We reject a call: incoming, ringing, callEnded (our decision), 486 at the caller.
            await browser.call(py.aor)
            rejected = await py.phone.next_incoming_call(10)
            await rejected.reject(486)
            assert (await browser.wait_for("rejected"))["status"] == 486
            assert py.recorder.call_events(rejected) == ["incoming", "ringing", "ended_local"]
            await browser.wait_for("terminated")

            # The browser rejects our call: ringing, terminated (the far end's decision).
            call = await py.phone.dial(browser_aor)
            await browser.wait_for("incoming")
            await wait_call_event(py.recorder, call, "ringing")
            await browser.reject(603)
            await call.wait_ended(10)
            await wait_call_event(py.recorder, call, "ended_remote")
            assert py.recorder.call_events(call) == ["ringing", "ended_remote"]
            assert call.end_status == 603 and call.ended_by == "remote"

            # We cancel our call: ringing, callEnded.
            call = await py.phone.dial(browser_aor)
            await browser.wait_for("incoming")
            await wait_call_event(py.recorder, call, "ringing")
            await call.hangup()
            assert py.recorder.call_events(call) == ["ringing", "ended_local"]
            await browser.wait_for("cancelled")
        finally:
            await close_browser_phones(browser)
