"""Hold while the call ends: the application is told the call ended (``InvalidState``), never
an error of the media stack's (aiortc's "RTCPeerConnection is closed").

An agent calls bob through the sandbox; the agent's ``hold()`` starts, and in the same
moment the call ends: bob hangs up (his BYE crosses our re-INVITE), or the agent's own
``hangup()`` runs. Real media on 127.0.0.1:
``scripts/in-netns.sh .venv/bin/python -m pytest tests/client/test_call_hold_race.py``.
"""

from __future__ import annotations

import asyncio

import pytest

from exotel_voice import Call, InvalidState, MediaError
from exotel_voice.sandbox import Sandbox
from tests.media.conftest import LOOPBACK_MEDIA
from tests.sandbox import conftest as sandbox_fixtures
from tests.sandbox.conftest import PhoneFactory


sandbox = sandbox_fixtures.sandbox
phones = sandbox_fixtures.phones


async def connected_pair(phones: PhoneFactory) -> tuple[Call, Call]:
    agent = await phones("agent", tone_hz=1000)
    bob = await phones("bob")
    call = await agent.dial("bob")
    incoming = await bob.next_incoming_call(timeout=10)
    await incoming.answer()
    await call.wait_connected(10)
    return call, incoming


def assert_told_the_call_ended(error: BaseException | None) -> None:
    assert isinstance(error, InvalidState), repr(error)
    assert not isinstance(error, MediaError)
    assert "ended" in str(error), str(error)
    assert "RTCPeerConnection" not in str(error)


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(60)
@pytest.mark.parametrize("steps", [0, 1, 3, 10])
async def test_hold_while_the_far_end_hangs_up(
    sandbox: Sandbox, phones: PhoneFactory, steps: int
) -> None:
    call, far = await connected_pair(phones)
    hold = asyncio.ensure_future(call.hold())
    for _ in range(steps):  # the hold gets this far before bob's BYE goes out
        await asyncio.sleep(0)
    await far.hangup()
    await call.wait_ended(10)
    error = (await asyncio.gather(hold, return_exceptions=True))[0]
    assert_told_the_call_ended(error)
    assert call.ended_by == "remote"


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(60)
@pytest.mark.parametrize("steps", [0, 1, 3, 10])
async def test_hold_while_we_hang_up(
    sandbox: Sandbox, phones: PhoneFactory, steps: int
) -> None:
    call, far = await connected_pair(phones)
    hold = asyncio.ensure_future(call.hold())
    for _ in range(steps):
        await asyncio.sleep(0)
    await call.hangup()
    error = (await asyncio.gather(hold, return_exceptions=True))[0]
    assert_told_the_call_ended(error)
    await far.wait_ended(10)

