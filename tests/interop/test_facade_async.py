"""The scenarios of tests/interop/test_facade_sync.py through the asyncio API (Phone/Call).

Both files assert the lists in :mod:`tests.interop.scenarios`: the facade's callbacks are a
mapping of the Phone's events, so the two faces show the same events in the same order.
"""

from __future__ import annotations

import asyncio

import pytest

from exotel_voice import AccountConfig, Phone
from exotel_voice.client import (
    DtmfReceived,
    PhoneEvent,
    RegistrationState,
    RegistrationStateChanged,
)
from exotel_voice.media import IceConfig, MediaConfig
from tests.interop.scenarios import (
    ANSWERED_REMOTE_HANGUP_CALLEE,
    CALLEE_PHONE_EVENTS_FULL,
    CALLEE_SESSION_FULL,
    CALLER_LOCAL_HANGUP,
    PHONE_REGISTER_UNREGISTER,
    REJECTED_CALLEE,
    collapse,
    facade_view,
)
from tests.interop.test_facade_sync import account
from tests.labels import call_label, is_flow
from tests.rig import netns_skip_reason
from tests.rig.kamailio import Kamailio


pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(netns_skip_reason() is not None, reason=str(netns_skip_reason())),
    pytest.mark.timeout(60),
]

MEDIA = MediaConfig(ice=IceConfig(host_addresses=["127.0.0.1"]))


class Events:
    def __init__(self) -> None:
        self.items: list[PhoneEvent] = []

    def __call__(self, event: PhoneEvent) -> None:
        self.items.append(event)

    def registration(self) -> list[RegistrationState]:
        return [e.state for e in self.items if isinstance(e, RegistrationStateChanged)]

    def calls(self) -> list[str]:
        return [call_label(e) for e in self.items if is_flow(e)]

    def dtmf(self) -> list[str]:
        return [e.digit for e in self.items if isinstance(e, DtmfReceived)]


def phone_for(kamailio: Kamailio, user: str, password: str) -> tuple[Phone, Events]:
    phone = Phone(AccountConfig.from_sip_account_info(account(kamailio, user, password)),
                  media=MEDIA)
    events = Events()
    phone.add_listener(events)
    return phone, events


async def test_register_and_unregister(kamailio: Kamailio) -> None:
    user, password = kamailio.new_user("fasync")
    phone, events = phone_for(kamailio, user, password)
    try:
        await phone.register(timeout=10)
        assert phone.status() == "registered"
        await phone.unregister()
        assert collapse(events.registration()) == PHONE_REGISTER_UNREGISTER
        assert not kamailio.registered_contacts(user)
    finally:
        await phone.close()


async def test_incoming_call_answer_hold_mute_dtmf_remote_hangup(kamailio: Kamailio) -> None:
    callee_user, callee_pw = kamailio.new_user("fasyncee")
    caller_user, caller_pw = kamailio.new_user("fasyncer")
    callee, events = phone_for(kamailio, callee_user, callee_pw)
    caller, caller_events = phone_for(kamailio, caller_user, caller_pw)
    try:
        await asyncio.gather(callee.register(timeout=10), caller.register(timeout=10))
        out = await caller.dial(callee_user, headers={"X-Exotel-Callsid": "sid-123"})
        call = await callee.next_incoming_call(10)
        assert call.call_sid == "sid-123"
        await call.answer()
        await out.wait_connected(10)
        call.mute()
        call.mute()
        call.unmute()
        call.toggle_mute()
        call.toggle_mute()
        await call.hold()
        await call.toggle_hold()
        await call.send_dtmf("1")
        await call.send_dtmf("#")
        for _ in range(100):
            if len(caller_events.dtmf()) >= 2:
                break
            await asyncio.sleep(0.05)
        await out.hangup()
        await call.wait_ended(10)

        assert events.calls() == CALLEE_PHONE_EVENTS_FULL
        session, calls = facade_view(events.calls())
        assert calls == ANSWERED_REMOTE_HANGUP_CALLEE
        assert session == CALLEE_SESSION_FULL
        assert facade_view(caller_events.calls())[1] == CALLER_LOCAL_HANGUP
        assert caller_events.dtmf() == ["1", "#"]
    finally:
        await asyncio.gather(callee.close(), caller.close())


async def test_reject_incoming_call(kamailio: Kamailio) -> None:
    callee_user, callee_pw = kamailio.new_user("fasyncrej")
    caller_user, caller_pw = kamailio.new_user("fasyncrejer")
    callee, events = phone_for(kamailio, callee_user, callee_pw)
    caller, _ = phone_for(kamailio, caller_user, caller_pw)
    try:
        await asyncio.gather(callee.register(timeout=10), caller.register(timeout=10))
        out = await caller.dial(callee_user)
        call = await callee.next_incoming_call(10)
        await call.hangup()
        await out.wait_ended(10)
        assert out.end_status == 486
        assert facade_view(events.calls())[1] == REJECTED_CALLEE
    finally:
        await asyncio.gather(callee.close(), caller.close())


