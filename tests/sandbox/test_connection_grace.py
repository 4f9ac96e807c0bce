"""The sandbox keeps a client's calls through a lost connection (SandboxConfig.connection_grace).

As a proxy in front of a far end that stays up: the call's dialog and media wait for the
client's target refresh on its new connection, then go on (the phone reports
CallRecovered); what the sandbox sends the client after that (the other party's BYE) goes
to the new connection; a BYE while the client is away is held for its return; without a
refresh in time the call ends on both sides, naming why. With a grace of 0 the call ends
at once and the phone's refresh is answered 481: tests/client/test_phone_reconnect_call.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

from exotel_voice.client import Call, CallEnded, CallRecovered, Phone, PhoneEvent
from exotel_voice.config import AccountConfig, ReconnectPolicy
from exotel_voice.media import ToneSource
from exotel_voice.media.analysis import dominant_frequency, rms_dbfs
from exotel_voice.sandbox import Sandbox, SandboxConfig

from .conftest import LOOPBACK_MEDIA, MEDIA, listen, sandbox_config


pytestmark = [pytest.mark.timeout(45)]

#: Bounds on behaviour (not performance): a reconnect, a registration and a refresh.
BOUND = 10.0

MakePhone = Callable[..., Awaitable[tuple[Phone, list[PhoneEvent]]]]


@pytest_asyncio.fixture
async def world(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Sandbox, MakePhone]]:
    grace = getattr(request, "param", 10.0)
    sandbox = Sandbox(sandbox_config(wss_port=None, http_port=None, connection_grace=grace))
    await sandbox.start()
    made: list[Phone] = []

    async def make(
        user: str, *, tone_hz: float, reconnect_delay: float = 0.05
    ) -> tuple[Phone, list[PhoneEvent]]:
        account = AccountConfig.from_sip_account_info(
            sandbox.sip_account_info(user),
            reconnect=ReconnectPolicy(initial_delay=reconnect_delay, max_delay=reconnect_delay,
                                      jitter=0.0),
        )
        phone = Phone(account, media=MEDIA, source=lambda: ToneSource(tone_hz, 0.5))
        events: list[PhoneEvent] = []
        phone.add_listener(events.append)
        made.append(phone)
        await phone.register(timeout=10)
        return phone, events

    yield sandbox, make
    for phone in made:
        await asyncio.wait_for(phone.close(), 5)
    await sandbox.close()


async def drop_connection(sandbox: Sandbox, user: str) -> None:
    """The sandbox closes the user's WebSocket mid-call (the phone reconnects)."""
    binding = sandbox.binding(user)
    assert binding is not None
    await binding.flow.close()


async def wait_for(events: list[PhoneEvent], kind: type[PhoneEvent]) -> PhoneEvent:
    async with asyncio.timeout(BOUND):
        while True:
            for event in events:
                if isinstance(event, kind):
                    return event
            await asyncio.sleep(0.05)


async def call_bob(make: MakePhone, **agent: float) -> tuple[Call, list[PhoneEvent], Call,
                                                              list[PhoneEvent]]:
    agent_phone, agent_events = await make("agent", tone_hz=1000, **agent)
    bob_phone, bob_events = await make("bob", tone_hz=600)
    call = await agent_phone.dial("bob")
    incoming = await bob_phone.next_incoming_call(timeout=10)
    await incoming.answer()
    await call.wait_connected(10)
    return call, agent_events, incoming, bob_events


def test_grace_must_be_seconds() -> None:
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="connection_grace"):
            Sandbox(SandboxConfig(ws_port=0, wss_port=None, http_port=None,
                                  connection_grace=bad))


@pytest.mark.media
@LOOPBACK_MEDIA
async def test_an_echo_call_is_recovered_and_echoes_after_the_connection_drops(
    world: tuple[Sandbox, MakePhone],
) -> None:
    sandbox, make = world
    phone, events = await make("agent", tone_hz=1000)
    call = await phone.dial("echo")
    await call.wait_connected(10)
    record = sandbox.calls[-1]
    (leg,) = record.legs
    old_flow = leg.flow
    await drop_connection(sandbox, "agent")
    await wait_for(events, CallRecovered)
    assert not call.ended and record.status == "in-progress" and not leg.ended
    assert leg.flow is not old_flow and leg.flow is sandbox.bindings["agent"].flow
    # Audio taken after the recovery follows what the phone sends now: echo is still there.
    await call.set_source(ToneSource(700, 0.5))
    heard = await listen(call, 0.8, skip=0.5)
    assert abs(dominant_frequency(heard, 16000) - 700) < 15 and rms_dbfs(heard) > -25
    await call.hangup()  # its BYE on the new connection ends the sandbox's leg
    await record.wait_ended(5)
    assert record.status == "completed" and leg.ended_by == "remote"
    assert not any(isinstance(e, CallEnded) and e.status == 481 for e in events)


@pytest.mark.media
@LOOPBACK_MEDIA
async def test_the_other_party_hangs_up_after_the_recovery_and_its_bye_arrives(
    world: tuple[Sandbox, MakePhone],
) -> None:
    sandbox, make = world
    call, agent_events, incoming, _ = await call_bob(make)
    await drop_connection(sandbox, "agent")
    await wait_for(agent_events, CallRecovered)
    heard = await listen(call, 0.6, skip=0.3)  # bob's tone after the recovery
    assert abs(dominant_frequency(heard, 16000) - 600) < 15
    await incoming.hangup()
    ended = await wait_for(agent_events, CallEnded)
    assert isinstance(ended, CallEnded) and ended.call is call
    # A BYE reached the recovered phone on its new connection (not a 481 to anything).
    assert ended.by == "remote" and ended.status is None and "hung up" in ended.reason, ended
    await sandbox.calls[-1].wait_ended(5)
    assert sandbox.calls[-1].status == "completed"


@pytest.mark.media
@LOOPBACK_MEDIA
async def test_a_bye_while_the_client_is_away_reaches_it_when_it_returns(
    world: tuple[Sandbox, MakePhone],
) -> None:
    sandbox, make = world
    call, agent_events, incoming, _ = await call_bob(make, reconnect_delay=1.0)
    await drop_connection(sandbox, "agent")
    await incoming.hangup()  # while agent's connection is down
    ended = await wait_for(agent_events, CallEnded)
    assert isinstance(ended, CallEnded) and ended.call is call
    assert ended.by == "remote" and ended.status is None and "hung up" in ended.reason, ended
    assert not any(isinstance(e, CallRecovered) for e in agent_events)
    (a, b) = sandbox.calls[-1].legs
    assert a.ended and b.ended and sandbox.calls[-1].status == "completed"


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.parametrize("world", [0.3], indirect=True)
async def test_without_a_refresh_in_time_the_call_ends_on_both_sides_with_a_reason(
    world: tuple[Sandbox, MakePhone],
) -> None:
    sandbox, make = world
    # The phone comes back only after the sandbox's grace period is over.
    call, agent_events, incoming, bob_events = await call_bob(make, reconnect_delay=1.5)
    await drop_connection(sandbox, "agent")
    bob_ended = await wait_for(bob_events, CallEnded)  # the sandbox's BYE to bob
    assert isinstance(bob_ended, CallEnded) and bob_ended.call is incoming
    assert bob_ended.by == "remote" and bob_ended.reason
    (a, b) = sandbox.calls[-1].legs
    assert a.ended and "connection was lost" in a.end_reason and "0.3 s" in a.end_reason
    assert b.end_reason == "the other party hung up"
    assert sandbox.calls[-1].status == "completed"
    assert not sandbox.kept and not sandbox.legs
    # Once back, the phone finds no call to recover (its refresh, or its BYE, gets 481).
    await sandbox.wait_registered("agent", timeout=BOUND)
    await asyncio.sleep(1.0)
    assert not any(isinstance(e, CallRecovered) for e in agent_events)
    # Its media was closed with the sandbox's: no refresh can be offered, so the call
    # ends at once, by us, naming why (it used to stay "connected" until the media watch
    # gave up, 20 s later).
    ended = await wait_for(agent_events, CallEnded)
    assert isinstance(ended, CallEnded) and ended.call is call and ended.by == "local"
    assert ended.reason.startswith("the call could not be restored after the connection "
                                   "was lost: "), ended.reason
