"""A call when the phone's WebSocket drops mid-call, against the in-process sandbox.

With ``connection_grace=0`` the sandbox ends a call whose client connection is lost (as a
server that notices the loss does), so the phone must not keep showing it connected: after
the reconnect and the new REGISTER, the call's dialog refresh (a re-INVITE with the new
Contact) is answered 481 and the call ends, naming why. The same after the sandbox is
killed and restarted on its port (it then knows neither the call nor the phone's nonce).
The far end that keeps the call (Kamailio with a UDP phone) is in
tests/interop/test_field_signalling.py; the sandbox that keeps it (its default grace
period) in tests/sandbox/test_connection_grace.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from exotel_voice.client import (
    CallConnected,
    CallEnded,
    CallRecovered,
    Phone,
    PhoneEvent,
    Reconnected,
    Reconnecting,
    RegistrationState,
    RegistrationStateChanged,
    TransportStateChanged,
)
from exotel_voice.config import AccountConfig, ReconnectPolicy
from exotel_voice.exceptions import InvalidState
from exotel_voice.media import ToneSource
from exotel_voice.sandbox import Sandbox
from tests.sandbox.conftest import LOOPBACK_MEDIA, MEDIA, sandbox_config


pytestmark = [pytest.mark.timeout(40)]
media = pytest.mark.media

#: How long a dead call may still look connected once the phone is registered again.
BOUND = 10.0


@pytest.fixture
async def world() -> AsyncIterator[tuple[list[Sandbox], Phone, list[PhoneEvent]]]:
    # No grace period: the sandbox drops the calls with the connection.
    sandbox = Sandbox(sandbox_config(wss_port=None, http_port=None, connection_grace=0.0))
    await sandbox.start()
    account = AccountConfig.from_sip_account_info(
        sandbox.sip_account_info("agent"),
        reconnect=ReconnectPolicy(initial_delay=0.05, max_delay=0.3),
    )
    phone = Phone(account, media=MEDIA, source=lambda: ToneSource(440, 0.3))
    events: list[PhoneEvent] = []
    phone.add_listener(events.append)
    await phone.register(timeout=10)
    sandboxes = [sandbox]
    yield sandboxes, phone, events
    await asyncio.wait_for(phone.close(), 5)
    for sb in sandboxes:
        await sb.close()


def kinds(events: list[PhoneEvent]) -> list[str]:
    out = []
    for e in events:
        name = type(e).__name__
        if isinstance(e, RegistrationStateChanged):
            name += f":{e.state}"
        elif isinstance(e, TransportStateChanged):
            name += f":{'up' if e.connected else 'down'}"
        out.append(name)
    return out


@media
@LOOPBACK_MEDIA
async def test_a_call_the_server_dropped_with_the_connection_ends_after_the_reconnect(
    world: tuple[list[Sandbox], Phone, list[PhoneEvent]],
) -> None:
    (sandbox,), phone, events = world
    call = await phone.dial("echo")
    await call.wait_connected(10)
    events.clear()
    binding = sandbox.binding("agent")
    assert binding is not None
    await binding.flow.close()  # the server closes the phone's WebSocket mid-call
    await asyncio.wait_for(call.wait_ended(), BOUND)

    seen = kinds(events)
    # The application was told, in order: reconnecting, reconnected, registered, ended.
    order = ["Reconnecting", "Reconnected", "RegistrationStateChanged:registered", "CallEnded"]
    assert [k for k in seen if k in order] == order, seen
    reconnecting = next(e for e in events if isinstance(e, Reconnecting))
    assert "1000" in reconnecting.error and reconnecting.retry_in > 0
    assert reconnecting.calls == 1
    reconnected = next(e for e in events if isinstance(e, Reconnected))
    assert reconnected.downtime >= 0 and reconnected.attempts >= 1
    ended = next(e for e in events if isinstance(e, CallEnded))
    assert ended.call is call and ended.status == 481, ended
    assert "no longer knows this call" in ended.reason and "connection was lost" in ended.reason
    assert not any(isinstance(e, CallRecovered) for e in events)
    # Nothing pretends the call is alive: its controls say it ended, plainly.
    with pytest.raises(InvalidState, match="ended"):
        await call.hold()
    assert phone.registration_state is RegistrationState.REGISTERED
    assert phone.calls == []


@media
@LOOPBACK_MEDIA
async def test_a_call_through_a_server_killed_and_restarted_ends_after_re_registering(
    world: tuple[list[Sandbox], Phone, list[PhoneEvent]],
) -> None:
    sandboxes, phone, events = world
    old = sandboxes[0]
    call = await phone.dial("echo")
    await call.wait_connected(10)
    events.clear()
    port = old.ports["ws"]
    await old.crash()  # no BYE, no close frame
    assert not call.ended and not any(isinstance(e, CallEnded) for e in events)
    new = Sandbox(
        sandbox_config(ws_port=port, wss_port=None, http_port=None, connection_grace=0.0)
    )
    sandboxes.append(new)
    await new.start()
    await asyncio.wait_for(call.wait_ended(), BOUND)
    assert await new.wait_registered("agent", timeout=5)
    seen = kinds(events)
    assert "RegistrationStateChanged:failed" not in seen, seen  # the old nonce: re-challenged
    order = ["Reconnecting", "Reconnected", "RegistrationStateChanged:registered", "CallEnded"]
    assert [k for k in seen if k in order][-len(order):] == order, seen
    assert call.end_status == 481 and "no longer knows this call" in call.end_reason
    assert [type(e) for e in events if isinstance(e, CallConnected)] == []


@media
@LOOPBACK_MEDIA
async def test_a_connection_lost_without_a_call_reports_reconnecting_and_reconnected(
    world: tuple[list[Sandbox], Phone, list[PhoneEvent]],
) -> None:
    (sandbox,), phone, events = world
    events.clear()
    binding = sandbox.binding("agent")
    assert binding is not None
    binding.flow.ws.transport.abort()  # a reset, no close frame
    async with asyncio.timeout(BOUND):
        while not any(isinstance(e, Reconnected) for e in events):
            await asyncio.sleep(0.05)
    await sandbox.wait_registered("agent", timeout=5)
    reconnecting = next(e for e in events if isinstance(e, Reconnecting))
    assert reconnecting.calls == 0 and reconnecting.error


def test_the_guide_face_hears_a_recovered_call_as_active_session() -> None:
    # Session continuity (the guide's 5.4): CallListenerCallback "activeSession", once the
    # call's dialog refresh succeeded; a call that could not be kept ends "terminated".
    from exotel_voice.client.facade import guide_call_event

    call: Any = object()
    assert guide_call_event(CallRecovered("agent", call)) == (None, "activeSession")
    ended = CallEnded("agent", call, "remote", 481, "the server no longer knows this call")
    assert guide_call_event(ended) == ("callEnded", "terminated")
