"""Dead media is noticed: a call whose packets stop warns at once and then ends with a reason.

Against the sandbox, real aiortc media on 127.0.0.1, blackouts made with ``iptables`` DROP
rules on our media port inside the loopback-only namespace (thresholds set low: these tests
are about the behaviour, the defaults are checked in tests/media/test_liveness.py):

* a 3 s blackout: ``NoMediaWarning``, then ``MediaWarningCleared``, the call goes on and the
  far end's tone is heard again;
* a blackout that does not end: the call ends (ours by the liveness timer, with the reason;
  the sandbox's by our BYE);
* ICE that never connects (every UDP datagram dropped): a call reported connected is ended
  with a reason instead of staying "connected" in silence;
* ICE and DTLS states arrive as ``MediaStateChanged`` events, ``disconnected`` during a
  blackout (as a browser reports it) and ``completed`` again once packets come back.

``scripts/in-netns.sh .venv/bin/python -m pytest tests/client/test_call_liveness.py``
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from exotel_voice import CallEnded, Phone
from exotel_voice.client import Call
from exotel_voice.client.events import (
    MediaStateChanged,
    MediaWarningCleared,
    NoMediaWarning,
    PhoneEvent,
)
from exotel_voice.config import AccountConfig
from exotel_voice.media import DtlsState, IceConfig, IceState, LivenessConfig, MediaConfig
from exotel_voice.media.analysis import detect_tone
from exotel_voice.sandbox import Sandbox
from tests.media.conftest import NEEDS_NETNS_ROOT
from tests.sandbox import conftest as sandbox_fixtures
from tests.sandbox.conftest import listen


sandbox = sandbox_fixtures.sandbox

LOOPBACK = IceConfig(host_addresses=["127.0.0.1"], gather_timeout=1.0)


def media_port(call: Call) -> int:
    """The UDP port our media receives on (the one host candidate on 127.0.0.1)."""
    assert call.media is not None
    _, ice = call.media._iter_transports()
    return int(ice.iceGatherer.getLocalCandidates()[0].port)


@contextlib.contextmanager
def dropped(*match: str) -> Iterator[None]:
    """Drop incoming UDP matching ``match`` (iptables INPUT) until the block exits."""
    rule = ["INPUT", "-p", "udp", *match, "-j", "DROP"]
    subprocess.run(["iptables", "-A", *rule], check=True)
    try:
        yield
    finally:
        subprocess.run(["iptables", "-D", *rule], check=True)


@pytest_asyncio.fixture
async def phone(sandbox: Sandbox, request: pytest.FixtureRequest) -> AsyncIterator[Phone]:
    liveness: LivenessConfig = request.param
    account = AccountConfig.from_sip_account_info(sandbox.sip_account_info("agent"))
    phone = Phone(account, media=MediaConfig(ice=LOOPBACK, liveness=liveness))
    await phone.register(timeout=10)
    try:
        yield phone
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(phone.close(), 5)


def recorder(phone: Phone) -> list[PhoneEvent]:
    events: list[PhoneEvent] = []
    phone.add_listener(events.append)
    return events


async def wait_for(events: list[Any], kind: type, timeout: float) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            for event in events:
                if isinstance(event, kind):
                    return event
            await asyncio.sleep(0.05)


SHORT = LivenessConfig(no_media_warning=1.0, no_media_grace=10.0, connect_timeout=5.0)
ENDING = LivenessConfig(no_media_warning=1.0, no_media_grace=2.0, connect_timeout=2.0)


@pytest.mark.media
@NEEDS_NETNS_ROOT
@pytest.mark.timeout(60)
@pytest.mark.parametrize("phone", [SHORT], indirect=True)
async def test_a_3_s_blackout_warns_clears_and_the_tone_comes_back(
    sandbox: Sandbox, phone: Phone
) -> None:
    events = recorder(phone)
    call = await phone.dial("tone")
    await call.wait_connected(10)
    assert detect_tone(await listen(call, 0.6), 16000, 440.0)
    states = [e for e in events if isinstance(e, MediaStateChanged)]
    assert states and (states[-1].ice, states[-1].dtls) == (IceState.COMPLETED,
                                                             DtlsState.CONNECTED)

    with dropped("--dport", str(media_port(call))):
        warning = await wait_for(events, NoMediaWarning, 3.0)
        await asyncio.sleep(3.0 - 1.0)
    assert warning.silent_for >= 1.0 and "no audio received" in warning.reason
    cleared = await wait_for(events, MediaWarningCleared, 3.0)
    assert cleared.silent_for >= 2.5
    # The ICE state as a browser reports it: disconnected in the blackout, then up again.
    ice = [e.ice for e in events if isinstance(e, MediaStateChanged) and e.ice_changed]
    assert ice[-2:] == [IceState.DISCONNECTED, IceState.COMPLETED], ice
    assert detect_tone(await listen(call, 0.6), 16000, 440.0)
    assert call.state == "connected" and not any(isinstance(e, CallEnded) for e in events)
    kinds = [type(e) for e in events if isinstance(e, NoMediaWarning | MediaWarningCleared)]
    assert kinds == [NoMediaWarning, MediaWarningCleared]
    await call.hangup()


@pytest.mark.media
@NEEDS_NETNS_ROOT
@pytest.mark.timeout(60)
@pytest.mark.parametrize("phone", [ENDING], indirect=True)
async def test_a_blackout_that_lasts_ends_the_call_on_both_sides_with_the_reason(
    sandbox: Sandbox, phone: Phone
) -> None:
    events = recorder(phone)
    call = await phone.dial("tone")
    await call.wait_connected(10)
    leg = next(leg for leg in sandbox.legs.values() if leg.call_id == call.call_id)
    assert detect_tone(await listen(call, 0.6), 16000, 440.0)
    with dropped("--dport", str(media_port(call))):
        await call.wait_ended(15)  # 1 s to the warning, 2 s of grace
        await leg.wait_ended(5)
    assert call.end_reason == "no audio received for 3 s: the media path is down"
    ended = [e for e in events if isinstance(e, CallEnded)]
    assert [e.reason for e in ended] == [call.end_reason]
    assert leg.ended_by == "remote"  # our BYE
    kinds = [type(e) for e in events if isinstance(e, NoMediaWarning | CallEnded)]
    assert kinds == [NoMediaWarning, CallEnded]


@pytest.mark.media
@NEEDS_NETNS_ROOT
@pytest.mark.timeout(60)
@pytest.mark.parametrize("phone", [ENDING], indirect=True)
async def test_ice_that_never_connects_ends_a_connected_call_with_a_reason(
    sandbox: Sandbox, phone: Phone
) -> None:
    events = recorder(phone)
    with dropped():  # every UDP datagram: no ICE check gets through (SIP is on TCP)
        call = await phone.dial("tone")
        await call.wait_connected(10)  # SIP connects; the media never does
        await call.wait_ended(15)
    assert call.end_reason.startswith("media did not connect within 2 s after the answer")
    assert call.ended_by == "local" and any(isinstance(e, CallEnded) for e in events)


def test_the_guide_face_reports_media_states_as_the_js_sdk_does() -> None:
    from exotel_voice.client.facade import guide_call_event

    call: Any = object()
    assert guide_call_event(
        MediaStateChanged("agent", call, IceState.COMPLETED, DtlsState.CONNECTING)
    ) == ("ice_connection_state_completed", None)
    # Only the DTLS state changed: the browser's ICE state did not.
    assert guide_call_event(
        MediaStateChanged("agent", call, IceState.COMPLETED, DtlsState.CONNECTED, False)
    ) == (None, None)
    # A blackout: "disconnected" at 5 s, as a browser says it; the silence warning at 10 s
    # and its end add nothing (the state change says it).
    assert guide_call_event(
        MediaStateChanged("agent", call, IceState.DISCONNECTED, DtlsState.CONNECTED)
    ) == ("ice_connection_state_disconnected", None)
    assert guide_call_event(NoMediaWarning("agent", call, "no audio", 10.0)) == (None, None)
    assert guide_call_event(MediaWarningCleared("agent", call, "back", 3.0)) == (None, None)
