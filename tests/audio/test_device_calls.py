"""Audio devices during calls, on a real PulseAudio server (tests/rig/pulse.py) and the
sandbox: our phone ("agent") records from a virtual microphone and plays on a null sink;
the far end is a second SDK phone ("bob"). What is played into the microphone is heard by
bob; bob's tone is read back from the chosen speaker's monitor; switching the speaker or
the microphone mid-call moves the audio without dropping the call, the far end hears no gap
over 100 ms, and a muted call stays muted.

Every session stays on 127.0.0.1: no root or namespace needed (PulseAudio runs on a unix
socket)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from tests.rig.marks import LOOPBACK_MEDIA
from tests.rig.pulse import PulseServer, pulse_server

from exotel_voice.client import AudioDevicesChanged, Call, CallState, Phone, PhoneEvent
from exotel_voice.config import AccountConfig
from exotel_voice.media import DeviceSink, DeviceSource, IceConfig, MediaConfig, ToneSource
from exotel_voice.media.analysis import dominant_frequency, rms_dbfs
from exotel_voice.sandbox import Sandbox, SandboxConfig


__all__ = ["pulse_server"]

pytestmark = [pytest.mark.media, LOOPBACK_MEDIA, pytest.mark.timeout(90)]

MEDIA = MediaConfig(ice=IceConfig(host_addresses=["127.0.0.1"], gather_timeout=1.0))
PASSWORDS = {"agent": "agent-secret-1", "bob": "bob-secret-2"}
RATE = 48000


def tone(freq: float, seconds: float, amplitude: float = 0.4) -> np.ndarray[Any, Any]:
    t = np.arange(int(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype(np.int16)


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    config = SandboxConfig(ws_port=0, wss_port=0, http_port=0, users=dict(PASSWORDS))
    async with Sandbox(config) as sb:
        yield sb


@pytest_asyncio.fixture
async def pair(sandbox: Sandbox, pulse_server: PulseServer
               ) -> AsyncIterator[tuple[Phone, Phone]]:
    """(agent, bob), both registered; agent will use the PulseAudio devices."""
    made = []
    for user in ("agent", "bob"):
        account = AccountConfig.from_sip_account_info(sandbox.sip_account_info(user))
        phone = Phone(account, media=MEDIA, network_poll=None)
        await phone.register(timeout=10)
        made.append(phone)
    try:
        yield made[0], made[1]
    finally:
        for phone in made:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(phone.close(), 5)


async def connect(agent: Phone, bob: Phone, bob_source: Any = None) -> tuple[Call, Call]:
    call = await agent.dial("bob")
    incoming = await bob.next_incoming_call(timeout=10)
    await incoming.answer(source=bob_source)
    await call.wait_connected(10)
    return call, incoming


async def frames_heard(call: Call, seconds: float) -> list[np.ndarray[Any, Any]]:
    """``seconds`` of what ``call`` receives, as 20 ms frames at 16 kHz, in order."""
    frames: list[np.ndarray[Any, Any]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds + 3):
            async for frame in call.received_frames(sample_rate=16000):
                frames.append(frame)
                if len(frames) >= int(seconds * 50):
                    break
    return frames


async def steady_audio(call: Call, seconds: float = 0.5, timeout: float = 10.0
                       ) -> np.ndarray[Any, Any]:
    """The first ``seconds`` of audio ``call`` receives without a quiet frame (16 kHz);
    fails if none comes within ``timeout``."""
    run: list[np.ndarray[Any, Any]] = []
    async with asyncio.timeout(timeout):
        async for frame in call.received_frames(sample_rate=16000):
            run = [*run, frame] if loud(frame) else []
            if len(run) >= int(seconds * 50):
                return np.concatenate(run)
    raise AssertionError("the call ended")


def loud(frame: np.ndarray[Any, Any]) -> bool:
    return rms_dbfs(frame) > -30.0


async def test_the_microphone_is_heard_and_the_far_end_plays_on_the_chosen_speaker(
    pair: tuple[Phone, Phone], pulse_server: PulseServer,
) -> None:
    agent, bob = pair
    mic = await agent.set_input_device("mic_1")
    speaker = await agent.set_output_device("Speaker_A")
    assert (mic.id, speaker.id) == ("pulse:source:mic_1", "pulse:sink:spk_a")
    assert agent.input_device == mic and agent.output_device == speaker
    pulse_server.play("feed_1", tone(1000, 20))  # what the microphone hears
    call, far = await connect(agent, bob, ToneSource(440, 0.5))
    assert isinstance(call.media.source, DeviceSource)  # type: ignore[union-attr]

    heard = await steady_audio(far)
    assert abs(dominant_frequency(heard, 16000) - 1000) < 20

    played = (await pulse_server.record("spk_a.monitor", 1.5))[8000:]
    assert rms_dbfs(played) > -30 and abs(dominant_frequency(played, 16000) - 440) < 10
    assert rms_dbfs(await pulse_server.record("spk_b.monitor", 0.5)) < -60

    # Switch the speaker mid-call: bob's tone moves from spk_a to spk_b.
    await agent.set_output_device("spk_b")
    moved = (await pulse_server.record("spk_b.monitor", 1.5))[8000:]
    assert rms_dbfs(moved) > -30 and abs(dominant_frequency(moved, 16000) - 440) < 10
    assert rms_dbfs(await pulse_server.record("spk_a.monitor", 0.5)) < -60
    sinks = [s for s in call.media._sinks if isinstance(s, DeviceSink)]  # type: ignore[union-attr]
    assert len(sinks) == 1  # moved, not doubled
    assert call.state is CallState.CONNECTED and far.state is CallState.CONNECTED


async def test_switching_the_microphone_mid_call_leaves_no_gap_and_mute_stays_muted(
    pair: tuple[Phone, Phone], pulse_server: PulseServer,
) -> None:
    agent, bob = pair
    pulse_server.play("feed_1", tone(1000, 30))
    pulse_server.play("feed_2", tone(600, 30))
    await agent.set_input_device("mic_1")
    call, far = await connect(agent, bob)
    frames: list[np.ndarray[Any, Any]] = []

    async def listen() -> None:
        async for frame in far.received_frames(sample_rate=16000):
            frames.append(frame)

    listening = asyncio.ensure_future(listen())
    try:
        # Once bob has heard the microphone steadily for 0.5 s, switch to the other one.
        async with asyncio.timeout(15):
            while not (len(frames) > 25 and all(loud(f) for f in frames[-25:])):
                await asyncio.sleep(0.02)
        at = len(frames)
        switched = await agent.set_input_device("Microphone_2")
        assert switched.id == "pulse:source:mic_2"
        await asyncio.sleep(2.0)
    finally:
        listening.cancel()

    # Bob heard 1000 Hz, then 600 Hz, and around the switch no run of quiet frames
    # longer than 100 ms (5 frames of 20 ms).
    first = at - 25
    longest = run = 0
    for frame in frames[first:]:
        run = 0 if loud(frame) else run + 1
        longest = max(longest, run)
    pattern = "".join("#" if loud(f) else "." for f in frames[first:])
    assert longest <= 5, f"a gap of {longest * 20} ms: {pattern}"
    early = np.concatenate(frames[first:at])
    late = np.concatenate(frames[-30:])
    assert abs(dominant_frequency(early, 16000) - 1000) < 20
    assert abs(dominant_frequency(late, 16000) - 600) < 20

    # Muted stays muted across a device change (Exotel's SDK unmutes here).
    call.mute()
    await agent.set_input_device("mic_1")
    assert call.muted
    quiet = np.concatenate((await frames_heard(far, 1.0))[10:])
    assert rms_dbfs(quiet) < -50
    call.unmute()
    back = await steady_audio(far)
    assert abs(dominant_frequency(back, 16000) - 1000) < 20
    assert call.state is CallState.CONNECTED and far.state is CallState.CONNECTED


async def test_the_speaker_in_use_unplugged_falls_back_to_the_default(
    pair: tuple[Phone, Phone], pulse_server: PulseServer, caplog: pytest.LogCaptureFixture,
) -> None:
    from exotel_voice.client import AudioDeviceFallback

    agent, bob = pair
    module = pulse_server.load_null_sink("usb_headset", "USB_Headset")
    events: list[PhoneEvent] = []
    agent.add_listener(events.append)
    await agent.set_output_device("usb_headset")
    call, far = await connect(agent, bob, ToneSource(440, 0.5))
    await asyncio.sleep(0.5)
    await asyncio.to_thread(pulse_server.unload_module, module)
    async with asyncio.timeout(10):
        while not any(isinstance(e, AudioDeviceFallback) for e in events):
            await asyncio.sleep(0.05)
    fallback = next(e for e in events if isinstance(e, AudioDeviceFallback))
    assert fallback.lost.id == "pulse:sink:usb_headset"
    assert fallback.device is not None and fallback.device.id == "pulse:sink:spk_a"
    changed = [e for e in events if isinstance(e, AudioDevicesChanged)]
    assert any("pulse:sink:usb_headset" in {d.id for d in e.removed} for e in changed)
    assert "went away" in caplog.text
    assert agent.output_device is not None and agent.output_device.id == "pulse:sink:spk_a"
    await asyncio.sleep(0.5)
    played = (await pulse_server.record("spk_a.monitor", 1.5))[8000:]
    assert abs(dominant_frequency(played, 16000) - 440) < 10
    assert call.state is CallState.CONNECTED
