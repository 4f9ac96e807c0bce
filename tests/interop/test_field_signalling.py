"""Signalling lost mid-call, against Kamailio + rtpengine with baresip (UDP) as the far end.

A Python phone (over ws) calls baresip and the call is connected with audio both ways. Then
the signalling goes away while the media (through rtpengine) does not:

* ``killed``: Kamailio is killed (SIGKILL) and restarted on its ports: it has lost every
  registration and every nonce; rtpengine keeps the call's media;
* ``reset``: the phone's WebSocket to Kamailio is reset (``ss -K``), Kamailio stays up.

What the user must see: the phone reconnects and registers again (``Reconnecting``,
``Reconnected``, ``REGISTERED``), the call refreshes its dialog (a re-INVITE with the new
Contact reaches baresip, ``CallRecovered``), audio kept flowing (baresip's tone heard after
the fault, ours recorded by baresip at the end), hold works, and baresip's BYE reaches the
phone over the new connection (it would be lost on the dead one without the refresh).
baresip keeps its UDP address, so it is the far end that can reach us again (a browser
that reconnected would have to refresh its own target too).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from exotel_voice.client import (
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
from tests.rig.fixtures import BaresipFactory
from tests.rig.kamailio import Kamailio

from .test_calls import assert_recording_has, bs
from .test_calls_peers import (
    BARESIP_HZ,
    MEDIA,
    PY_HZ,
    Recorder,
    account,
    assert_python_hears,
)


pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(netns_skip_reason() is not None, reason=str(netns_skip_reason())),
    pytest.mark.timeout(120),
]

#: From the fault to the call's dialog refreshed (reconnect, REGISTER, re-INVITE).
BOUND = 15.0


@asynccontextmanager
async def py_phone(kamailio: Kamailio) -> AsyncIterator[tuple[Phone, Recorder]]:
    user, password = kamailio.new_user("py")
    config = account(kamailio, user, password, "ws").with_changes(
        reconnect=ReconnectPolicy(initial_delay=0.1, max_delay=0.5)
    )
    phone = Phone(config, media=MEDIA, source=lambda: ToneSource(PY_HZ))
    recorder = Recorder()
    phone.add_listener(recorder)
    async with phone:
        await phone.register(timeout=10)
        yield phone, recorder


async def wait_for(recorder: Recorder, kind: type, timeout: float) -> object:
    async with asyncio.timeout(timeout):
        while True:
            for event in recorder.events:
                if isinstance(event, kind):
                    return event
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("fault", ["killed", "reset"])
async def test_a_call_lives_through_lost_signalling_and_ends_cleanly_later(
    fresh_kamailio: Kamailio, baresip_factory: BaresipFactory, fault: str
) -> None:
    kamailio = fresh_kamailio
    async with py_phone(kamailio) as (phone, recorder):
        far = await asyncio.to_thread(baresip_factory, server=kamailio)
        call = await phone.dial(far.aor)
        await bs(far, "wait_event", "CALL_INCOMING")
        await bs(far, "accept")
        await call.wait_connected(10)
        await assert_python_hears(call, BARESIP_HZ)
        recorder.events.clear()

        if fault == "killed":
            await asyncio.to_thread(kamailio.kill)
            await wait_for(recorder, Reconnecting, 5)
            await asyncio.sleep(1.0)  # the server is down for a while
            assert not call.ended
            await asyncio.to_thread(kamailio.start)
        else:
            closed = await asyncio.to_thread(kamailio.reset_ws_connections)
            assert closed >= 1

        recovered = await wait_for(recorder, CallRecovered, BOUND)
        assert getattr(recovered, "call", None) is call
        kinds = [type(e).__name__ for e in recorder.events
                 if isinstance(e, (Reconnecting, Reconnected, CallRecovered, CallEnded))
                 or (isinstance(e, RegistrationStateChanged)
                     and e.state is RegistrationState.REGISTERED)]
        assert kinds[0] == "Reconnecting" and "CallEnded" not in kinds, kinds
        assert kinds.index("Reconnected") < kinds.index("RegistrationStateChanged") < (
            kinds.index("CallRecovered")), kinds
        assert call.state == "connected"
        # The re-INVITE reached baresip through Kamailio with our new Contact.
        reinvites = [e for e in kamailio.events("REQ", method="INVITE")
                     if e.get("callid") == call.call_id]
        assert len(reinvites) >= 2, reinvites

        # Audio kept flowing through rtpengine: we hear baresip after the fault.
        await assert_python_hears(call, BARESIP_HZ)
        # Hold and resume work end to end over the new connection.
        await asyncio.wait_for(call.hold(), 10)
        await asyncio.wait_for(call.unhold(), 10)
        await asyncio.sleep(1.5)  # our tone after the resume, for baresip's recording
        # baresip hangs up: its BYE must find the phone on the new connection.
        await bs(far, "hangup")
        await call.wait_ended(10)
        assert call.ended_by == "remote", call.end_reason
        await bs(far, "wait_event", "CALL_CLOSED")
        assert_recording_has(far, PY_HZ)
