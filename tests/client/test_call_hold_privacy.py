"""Hold is private: while we hold a call the far end hears silence or hold music, never us.

An agent (sending a 1000 Hz tone as its "microphone") calls bob through the sandbox; bob
records. While the agent holds, bob hears no 1000 Hz (silence, or the hold music's
frequency when ``Call.hold(music=...)`` gave one); after resume bob hears the tone again;
mute is untouched by hold and resume. Real media on 127.0.0.1:
``scripts/in-netns.sh .venv/bin/python -m pytest tests/client/test_call_hold_privacy.py``.
"""

from __future__ import annotations

import asyncio

import pytest

from exotel_voice import Call, CallHeld, CallResumed, MediaError, ToneSource
from exotel_voice.media.analysis import detect_tone, rms_dbfs
from exotel_voice.sandbox import Sandbox
from tests.media.conftest import LOOPBACK_MEDIA
from tests.sandbox import conftest as sandbox_fixtures
from tests.sandbox.conftest import PhoneFactory, listen


sandbox = sandbox_fixtures.sandbox
phones = sandbox_fixtures.phones

TONE = 1000.0
MUSIC = 600.0


async def connected_pair(phones: PhoneFactory) -> tuple[Call, Call]:
    """agent (its source: a 1000 Hz tone) calls bob; both connected."""
    agent = await phones("agent", tone_hz=TONE)
    bob = await phones("bob")
    call = await agent.dial("bob")
    incoming = await bob.next_incoming_call(timeout=10)
    await incoming.answer()
    await call.wait_connected(10)
    return call, incoming


def hears(pcm: object, frequency: float) -> bool:
    return detect_tone(pcm, 16000, frequency, min_ratio=0.5)  # type: ignore[arg-type]


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(60)
async def test_the_held_party_hears_silence_then_us_again_after_resume(
    sandbox: Sandbox, phones: PhoneFactory
) -> None:
    call, far = await connected_pair(phones)
    events: list[object] = []
    call.phone.add_listener(events.append)
    assert hears(await listen(far, 1.0), TONE)

    await call.hold()
    assert call.on_hold and call.media is not None and call.media.held
    during = await listen(far, 1.0)
    assert not hears(during, TONE), "the held party still hears our microphone"
    assert rms_dbfs(during) < -50

    await call.unhold()
    assert not call.on_hold and not call.media.held
    assert hears(await listen(far, 1.0), TONE)
    assert [type(e) for e in events if isinstance(e, CallHeld | CallResumed)] == [
        CallHeld, CallResumed
    ]
    await call.hangup()


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(60)
async def test_hold_music_is_heard_while_held_and_mute_survives_hold_and_resume(
    sandbox: Sandbox, phones: PhoneFactory
) -> None:
    call, far = await connected_pair(phones)
    call.mute()
    assert rms_dbfs(await listen(far, 0.6)) < -50  # muted: silence

    music = ToneSource(MUSIC, 0.5)
    await call.hold(music=music)
    during = await listen(far, 1.0)
    assert hears(during, MUSIC) and not hears(during, TONE)

    await call.unhold()
    assert call.muted and call.media is not None and call.media.muted
    after = await listen(far, 0.8)
    assert rms_dbfs(after) < -50, "resume unmuted the call or left the hold music on"
    call.unmute()
    assert hears(await listen(far, 1.0), TONE)
    await call.hangup()


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(60)
async def test_a_refused_hold_gives_the_far_end_our_audio_back(
    sandbox: Sandbox, phones: PhoneFactory
) -> None:
    call, far = await connected_pair(phones)
    # The hold's re-offer cannot be made (aiortc failed): the hold fails before any SIP.
    media = call.media
    assert media is not None

    async def broken(direction: str = "sendrecv") -> str:
        raise MediaError("cannot create an offer: test")

    original = media.create_reoffer
    media.create_reoffer = broken  # type: ignore[method-assign]
    with pytest.raises(MediaError):
        await asyncio.wait_for(call.hold(), 5)
    media.create_reoffer = original  # type: ignore[method-assign]
    assert not call.on_hold and not media.held
    assert hears(await listen(far, 1.0), TONE)
    await call.hangup()
