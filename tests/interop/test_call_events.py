"""The guide's call events and call object, as a listener sees them in real calls.

``phone.add_listener(cb)`` gets a :class:`CallEvent` per step, whose ``.event`` is the guide's
CallListenerCallback name.  Each scenario runs against SIP.js in Chromium, through Kamailio +
rtpengine, with the Python phone on ws and on wss, and checks the exact sequence of guide
events (``incoming``, ``ringing``, ``connected``, ``callEnded`` for a local hang-up,
``terminated`` for a remote one) plus the fields of ``call.details()``.

    scripts/in-netns.sh .venv/bin/pytest tests/interop/test_call_events.py -v
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
import pytest_asyncio

from exotel_voice.client import CallEvent
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
            assert first.event == "incoming"

            details = call.details()
            assert details["callId"] == sent["call_id"] == call.call_id
            assert details["callState"] == "incoming"
            assert details["callDirection"] == "incoming"
            started = datetime.strptime(details["callStartTime"], "%Y-%m-%dT%H:%M:%S")
            assert abs(started.timestamp() - before) < 5
            assert details["remoteDisplayName"] == "Caller" == call.remote_display_name
            assert details["callSid"] == "sid-42" == call.call_sid
            headers = details["sipHeaders"]
            assert headers["X-Exotel-Callsid"] == "sid-42"
            assert headers["X-Ticket"] == "T-7"
            # All the INVITE's headers, as Kamailio relayed them (its Via and Record-Route too).
            for name in ("Via", "From", "To", "Call-ID", "CSeq", "Contact", "Record-Route"):
                assert name in headers, (name, sorted(headers))
            assert call.header("x-exotel-callsid") == "sid-42"

            await call.answer()
            await browser.wait_for("established")
            assert call.details()["callState"] == "connected"
            assert py.recorder.call_events(call) == ["incoming", "ringing", "connected"]

            if hangup_by == "local":
                await call.hangup()
                await browser.wait_for("terminated")
                expected_end = "callEnded"
            else:
                await browser.hangup()
                await call.wait_ended(10)
                expected_end = "terminated"
            await wait_call_event(py.recorder, call, expected_end)
            assert call.ended_by == hangup_by
            assert call.details()["callState"] == "ended"
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
            details = call.details()
            assert details["callDirection"] == "outgoing"
            assert details["callState"] == "ringing"
            assert details["callId"] == call.call_id
            assert details["remoteId"] == browser_aor.split(":", 1)[1].split("@", 1)[0]

            await browser.answer()
            await call.wait_connected(10)
            assert call.details()["callState"] == "connected"
            if hangup_by == "local":
                await call.hangup()
                expected_end = "callEnded"
            else:
                await browser.hangup()
                await call.wait_ended(10)
                expected_end = "terminated"
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
            await wait_call_event(py.recorder, cancelled, "terminated")
            assert py.recorder.call_events(cancelled) == ["incoming", "ringing", "terminated"]
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
            assert py.recorder.call_events(rejected) == ["incoming", "ringing", "callEnded"]
            await browser.wait_for("terminated")

            # The browser rejects our call: ringing, terminated (the far end's decision).
            call = await py.phone.dial(browser_aor)
            await browser.wait_for("incoming")
            await wait_call_event(py.recorder, call, "ringing")
            await browser.reject(603)
            await call.wait_ended(10)
            await wait_call_event(py.recorder, call, "terminated")
            assert py.recorder.call_events(call) == ["ringing", "terminated"]
            assert call.end_status == 603 and call.ended_by == "remote"

            # We cancel our call: ringing, callEnded.
            call = await py.phone.dial(browser_aor)
            await browser.wait_for("incoming")
            await wait_call_event(py.recorder, call, "ringing")
            await call.hangup()
            assert py.recorder.call_events(call) == ["ringing", "callEnded"]
            await browser.wait_for("cancelled")
        finally:
            await close_browser_phones(browser)
