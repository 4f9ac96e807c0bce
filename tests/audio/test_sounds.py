"""The phone's own sounds: ringtone, ringback and the DTMF beep (exotel_voice.audio.sounds).

* without devices: the built-in tones (frequencies, cadence, DTMF pairs), WAV
  replacements and ``None``, bad settings named in the error;
* through the sandbox, each phone's sounds recorded by a sink standing in for the speaker
  (the same player, only the sink differs): the ringtone while an incoming call rings,
  stopped by the answer and by the caller cancelling; the ringback while our call rings,
  stopped by the hang-up; a DTMF beep per digit sent; early media stops our ringback;
  no extra, no device: sounds off with one INFO line, the call unharmed.

The tests that play into real PulseAudio sinks are in test_sounds_pulse below (marked by
the rig's PulseAudio availability).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from tests.rig.pulse import PulseServer, pulse_server
from tests.sandbox import conftest as sandbox_fixtures
from tests.sandbox.conftest import LOOPBACK_MEDIA, MEDIA, PhoneFactory

from exotel_voice.audio.sounds import (
    DTMF_PAIRS,
    DTMF_TONES,
    RINGBACK_NORTH_AMERICA,
    RINGBACK_UK,
    RINGTONE,
    SOUND_RATE,
    DtmfTones,
    SoundPlayer,
    Sounds,
    Tone,
    WavSound,
)
from exotel_voice.client import Phone
from exotel_voice.client.events import CallProgress, CallRinging
from exotel_voice.config import AccountConfig
from exotel_voice.exceptions import ConfigurationError, MediaError
from exotel_voice.media.analysis import goertzel_power, rms
from exotel_voice.media.pcm import Samples
from exotel_voice.media.sinks import AudioSink
from exotel_voice.sandbox import Sandbox


sandbox = sandbox_fixtures.sandbox
phones = sandbox_fixtures.phones
__all__ = ["pulse_server"]


def power_share(samples: Samples, freqs: tuple[float, ...]) -> float:
    """The share of the signal's power at ``freqs`` (1.0: nothing else)."""
    total = rms(samples) ** 2
    if total == 0:
        return 0.0
    # A sine of amplitude A: RMS^2 = A^2 / 2, Goertzel power A^2 / 4.
    return 2.0 * sum(goertzel_power(samples, SOUND_RATE, f) for f in freqs) / total


def write_wav(path: Path, samples: Samples, rate: int, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(samples, channels).astype("<i2").tobytes())
    return path


# -- tones, without devices ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("tone", "freqs", "cadence"),
    [
        (RINGTONE, (660.0, 880.0), (0.4, 0.2, 0.4, 2.0)),
        (RINGBACK_NORTH_AMERICA, (440.0, 480.0), (2.0, 4.0)),
        (RINGBACK_UK, (400.0, 450.0), (0.4, 0.2, 0.4, 2.0)),
    ],
)
def test_builtin_tone_has_its_frequencies_and_cadence(
    tone: Tone, freqs: tuple[float, ...], cadence: tuple[float, ...]
) -> None:
    samples = tone.render(SOUND_RATE)
    assert samples.dtype == np.int16
    assert samples.size == round(sum(cadence) * SOUND_RATE)
    t = 0.0
    for i, seconds in enumerate(cadence):
        # The middle of each part, away from the fades.
        part = samples[int((t + 0.05) * SOUND_RATE): int((t + seconds - 0.05) * SOUND_RATE)]
        if i % 2:
            assert not part.any(), f"part {i} should be silent"
        else:
            assert power_share(part, freqs) > 0.95
            # Both tones, in equal parts.
            powers = [goertzel_power(part, SOUND_RATE, f) for f in freqs]
            assert min(powers) > 0.8 * max(powers)
        t += seconds


def test_tone_starts_and_stops_without_a_click() -> None:
    samples = RINGTONE.render(SOUND_RATE)
    assert abs(int(samples[0])) < 100
    end_of_burst = int(0.4 * SOUND_RATE) - 1
    assert abs(int(samples[end_of_burst])) < 100


def test_dtmf_beep_is_the_digits_own_pair() -> None:
    assert DTMF_PAIRS["5"] == (770.0, 1336.0)
    assert DTMF_PAIRS["#"] == (941.0, 1477.0)
    assert len(DTMF_PAIRS) == 16
    for digit in "159#*D":
        beep = DTMF_TONES.render(digit)
        assert beep.size == int(0.1 * SOUND_RATE)
        assert power_share(beep, DTMF_PAIRS[digit]) > 0.9
    other = DTMF_TONES.render("1")
    assert power_share(other, DTMF_PAIRS["9"]) < 0.05


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"frequencies": (), "cadence": (1, 1)}, "frequencies"),
        ({"frequencies": (30000,), "cadence": (1, 1)}, "frequencies"),
        ({"frequencies": (440,), "cadence": (1,)}, "cadence"),
        ({"frequencies": (440,), "cadence": (1, -1)}, "cadence"),
        ({"frequencies": (440,), "cadence": (1, 1), "amplitude": 2}, "amplitude"),
    ],
)
def test_bad_tone_names_the_setting(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Tone(**kwargs)
    assert info.value.field == field


def test_bad_sounds_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="ringtone.*missing.wav") as info:
        Sounds(ringtone=tmp_path / "missing.wav")
    assert info.value.field == "ringtone"
    not_wav = tmp_path / "x.wav"
    not_wav.write_text("not a wav")
    with pytest.raises(ConfigurationError) as info:
        Sounds(ringback=str(not_wav))
    assert info.value.field == "ringback"
    with pytest.raises(ConfigurationError) as info:
        Sounds(dtmf_beep=42)  # type: ignore[arg-type]
    assert info.value.field == "dtmf_beep"
    with pytest.raises(ConfigurationError) as info:
        Sounds(ringtone=DtmfTones())  # type: ignore[arg-type]
    assert info.value.field == "ringtone"
    with pytest.raises(ConfigurationError):
        DtmfTones(duration=5)
    with pytest.raises(TypeError, match="sounds must be a Sounds"):
        Phone(AccountConfig.from_sip_account_info(ACCOUNT), sounds="loud")  # type: ignore[arg-type]


def test_wav_replacement_is_read_once_mixed_down_and_resampled(tmp_path: Path) -> None:
    t = np.arange(8000) / 8000
    tone = np.round(np.sin(2 * np.pi * 1000 * t) * 10000).astype(np.int16)
    path = write_wav(tmp_path / "ring.wav", tone, 8000, channels=2)
    sounds = Sounds(ringtone=path, ringback=str(path))
    assert isinstance(sounds.ringtone, WavSound)
    assert isinstance(sounds.ringback, WavSound)
    rendered = sounds.ringtone.render(SOUND_RATE)
    assert abs(rendered.size - SOUND_RATE) < 10
    assert power_share(rendered[1000:-1000], (1000.0,)) > 0.95
    off = Sounds.off()
    assert (off.ringtone, off.ringback, off.dtmf_beep) == (None, None, None)


# -- the player, with a recording sink -------------------------------------------------------
class Recorder(AudioSink):
    """Stands in for the speaker: keeps what was played, and whether it was closed."""

    def __init__(self, device: object = None) -> None:
        self.device = device
        self.frames: list[Samples] = []
        self.closed = False

    def write(self, samples: Samples, sample_rate: int) -> None:
        assert sample_rate == SOUND_RATE
        self.frames.append(samples.copy())

    def close(self) -> None:
        self.closed = True

    @property
    def audio(self) -> Samples:
        return np.concatenate(self.frames) if self.frames else np.zeros(0, np.int16)


class Speaker:
    """A sink factory keeping every sink it made (one per sound played)."""

    def __init__(self) -> None:
        self.sinks: list[Recorder] = []

    def __call__(self, device: object) -> AudioSink:
        sink = Recorder(device)
        self.sinks.append(sink)
        return sink

    @property
    def audio(self) -> Samples:
        parts = [s.audio for s in self.sinks]
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)

    def open(self) -> list[Recorder]:
        return [s for s in self.sinks if not s.closed]


ACCOUNT = {
    "userName": "agent", "authUser": "agent", "sipdomain": "example.test",
    "domain": "127.0.0.1:5060", "secret": "x", "security": "ws", "port": 5060,
}


async def until(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_player_plays_in_real_time_on_the_chosen_device_and_stops() -> None:
    speaker = Speaker()
    player = SoundPlayer(Sounds(device="headset"), sink_factory=speaker)
    assert player.start_ringtone()
    assert player.playing == "ringtone"
    await asyncio.sleep(0.5)
    player.stop()
    await until(lambda: speaker.sinks and speaker.sinks[0].closed)
    played = speaker.audio
    assert speaker.sinks[0].device == "headset"
    # Paced in real time: about half a second of audio in half a second, not the whole tone.
    assert 0.3 * SOUND_RATE < played.size < 0.8 * SOUND_RATE
    assert power_share(played[: int(0.35 * SOUND_RATE)], (660.0, 880.0)) > 0.9
    assert player.playing is None


async def test_player_follows_the_selected_output() -> None:
    speaker = Speaker()
    selected = ["first"]
    player = SoundPlayer(Sounds(), output=lambda: selected[0], sink_factory=speaker)
    player.start_ringback()
    await until(lambda: speaker.sinks)
    selected[0] = "second"
    player.start_ringtone()  # replaces the ringback, on the device selected now
    await until(lambda: len(speaker.sinks) == 2)
    await player.aclose()
    assert [s.device for s in speaker.sinks] == ["first", "second"]
    assert all(s.closed for s in speaker.sinks)


async def test_beep_plays_each_digit_once_then_closes_the_device() -> None:
    speaker = Speaker()
    player = SoundPlayer(Sounds(), sink_factory=speaker)
    player.beep("19")
    await player.wait_done()
    assert speaker.sinks[0].closed
    played = speaker.audio
    first, second = played[: int(0.1 * SOUND_RATE)], played[int(0.15 * SOUND_RATE):
                                                           int(0.25 * SOUND_RATE)]
    assert power_share(first, DTMF_PAIRS["1"]) > 0.9
    assert power_share(second, DTMF_PAIRS["9"]) > 0.9
    assert played.size < 0.5 * SOUND_RATE


async def test_sound_set_to_none_plays_nothing() -> None:
    speaker = Speaker()
    player = SoundPlayer(Sounds.off(), sink_factory=speaker)
    assert not player.start_ringtone()
    assert not player.start_ringback()
    assert not player.beep("5")
    await asyncio.sleep(0.1)
    assert speaker.sinks == []


async def test_without_the_audio_extra_sounds_are_off_with_one_info_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    made = []
    errors: list[str] = []

    def no_sounddevice(device: object) -> AudioSink:
        made.append(device)
        raise MediaError("audio devices need the optional 'sounddevice' package")

    player = SoundPlayer(Sounds(), sink_factory=no_sounddevice, on_error=errors.append)
    with caplog.at_level(logging.INFO, logger="exotel_voice.audio.sounds"):
        player.start_ringtone()
        await player.wait_done()
        player.start_ringback()
        player.beep("1")
        await player.wait_done()
    assert made == [None]  # tried once, then off
    assert not player.available
    lines = [r for r in caplog.records if r.name == "exotel_voice.audio.sounds"]
    assert len(lines) == 1
    assert lines[0].levelno == logging.INFO
    assert "sounds are off" in lines[0].getMessage()
    assert "sounddevice" in lines[0].getMessage()
    assert errors == ["audio devices need the optional 'sounddevice' package"]


async def test_a_device_that_cannot_open_is_a_warning_not_an_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(device: object) -> AudioSink:
        raise OSError("Device unavailable")

    player = SoundPlayer(Sounds(device="gone"), sink_factory=broken)
    with caplog.at_level(logging.WARNING, logger="exotel_voice.audio.sounds"):
        player.start_ringtone()
        await player.wait_done()
    assert "cannot play the ringtone on 'gone': Device unavailable" in caplog.text
    assert player.available  # another device may work next time


# -- wiring: the phone's calls ring -----------------------------------------------------------
def recorded_phone(phone: Phone, sounds: Sounds | None = None) -> Speaker:
    speaker = Speaker()
    phone.sound_player = SoundPlayer(sounds or Sounds(), sink_factory=speaker)
    return speaker


@LOOPBACK_MEDIA
async def test_incoming_call_rings_until_answered(phones: PhoneFactory) -> None:
    agent = await phones("agent")
    bob = await phones("bob", tone_hz=1000)
    speaker = recorded_phone(agent)
    recorded_phone(bob)  # bob's ringback goes nowhere near agent's speaker
    await bob.dial("agent")
    call = await agent.next_incoming_call(timeout=5)
    await asyncio.sleep(0.5)
    assert agent.sound_player is not None
    assert agent.sound_player.playing == "ringtone"
    assert len(speaker.open()) == 1
    await call.answer()
    await until(lambda: not speaker.open())
    assert agent.sound_player.playing is None
    heard = speaker.audio
    assert heard.size >= 0.3 * SOUND_RATE
    assert power_share(heard[: int(0.35 * SOUND_RATE)], (660.0, 880.0)) > 0.9
    size = heard.size
    await asyncio.sleep(0.3)
    assert speaker.audio.size == size  # nothing more once answered
    await call.hangup()


@LOOPBACK_MEDIA
async def test_ringtone_stops_when_the_caller_cancels(phones: PhoneFactory) -> None:
    agent = await phones("agent")
    bob = await phones("bob")
    speaker = recorded_phone(agent)
    out = await bob.dial("agent")
    call = await agent.next_incoming_call(timeout=5)
    await until(lambda: speaker.sinks)
    await out.hangup()
    await call.wait_ended(5)
    await until(lambda: not speaker.open())
    assert agent.sound_player is not None and agent.sound_player.playing is None


@LOOPBACK_MEDIA
async def test_ringback_while_our_call_rings_stops_on_hangup(phones: PhoneFactory) -> None:
    agent = await phones("agent")
    speaker = recorded_phone(agent)
    call = await agent.dial("noanswer")
    await until(lambda: speaker.sinks)
    await asyncio.sleep(0.5)
    assert agent.sound_player is not None and agent.sound_player.playing == "ringback"
    await call.hangup()
    await until(lambda: not speaker.open())
    heard = speaker.audio
    assert power_share(heard[: int(0.4 * SOUND_RATE)], (440.0, 480.0)) > 0.9


@LOOPBACK_MEDIA
async def test_ringback_stops_when_the_call_is_answered(phones: PhoneFactory) -> None:
    agent = await phones("agent")
    bob = await phones("bob")
    speaker = recorded_phone(agent, Sounds(ringback=RINGBACK_UK))
    recorded_phone(bob, Sounds.off())
    out = await agent.dial("bob")
    call = await bob.next_incoming_call(timeout=5)
    await until(lambda: speaker.sinks)
    await asyncio.sleep(0.3)
    await call.answer()
    await out.wait_connected(5)
    await until(lambda: not speaker.open())
    assert power_share(speaker.audio[: int(0.3 * SOUND_RATE)], (400.0, 450.0)) > 0.9
    await out.hangup()


@LOOPBACK_MEDIA
async def test_each_dtmf_digit_sent_beeps(phones: PhoneFactory) -> None:
    agent = await phones("agent")
    speaker = recorded_phone(agent)
    call = await agent.dial("ivr")
    await call.wait_connected(5)
    await until(lambda: not speaker.open())  # a ringback while it rang, if it did
    rang = len(speaker.sinks)
    await call.send_dtmf("5")
    assert agent.sound_player is not None
    await agent.sound_player.wait_done()
    await call.send_dtmf("#", method="rfc4733")
    await agent.sound_player.wait_done()
    beeps = speaker.sinks[rang:]
    assert len(beeps) == 2
    assert power_share(beeps[0].audio[: int(0.1 * SOUND_RATE)], DTMF_PAIRS["5"]) > 0.9
    assert power_share(beeps[1].audio[: int(0.1 * SOUND_RATE)], DTMF_PAIRS["#"]) > 0.9
    await call.hangup()


async def test_early_media_replaces_our_ringback() -> None:
    """A 180 without SDP starts the ringback; a 183 with SDP (the far end's media) stops it."""
    phone = Phone(AccountConfig.from_sip_account_info(ACCOUNT))
    speaker = recorded_phone(phone)
    call: Any = SimpleNamespace(direction="outgoing", early_media=False)
    phone._publish(CallRinging("agent", call, 180, "Ringing"))
    await until(lambda: speaker.sinks)
    call.early_media = True
    phone._publish(CallProgress("agent", call, 183, "Session Progress"))
    await until(lambda: not speaker.open())
    assert phone.sound_player is not None and phone.sound_player.playing is None
    # A call that starts with early media never plays our ringback.
    other: Any = SimpleNamespace(direction="outgoing", early_media=True)
    phone._publish(CallRinging("agent", other, 180, "Ringing"))
    await asyncio.sleep(0.1)
    assert len(speaker.sinks) == 1


def test_call_notes_early_media_from_a_provisional_answer() -> None:
    from tests.client.test_call_api import make_call

    from exotel_voice.sip import calls as core

    call, _ = make_call("outgoing")
    call._media.handle = lambda event: None  # type: ignore[method-assign]
    call._on_event(core.CallProgress(call._session, 180, "Ringing"))
    assert not call.early_media
    call._on_event(core.CallProgress(call._session, 183, "Session Progress", "v=0\r\n"))
    assert call.early_media


def test_phone_has_no_sounds_unless_asked() -> None:
    account = AccountConfig.from_sip_account_info(ACCOUNT)
    assert Phone(account).sound_player is None
    assert Phone(account, sounds=Sounds()).sound_player is not None


# -- on real devices: PulseAudio null sinks (tests/rig/pulse.py) ------------------------------
MONITOR_RATE = 16000


def loud_share(
    samples: Samples, freqs: tuple[float, ...], rate: int = MONITOR_RATE, window: float = 0.1
) -> float:
    """The share of ``freqs`` in the loudest 0.1 s windows of a recording (0.0: none loud)."""
    n = int(window * rate)
    windows = [samples[i:i + n] for i in range(0, samples.size - n + 1, n)]
    peak = max((rms(w) for w in windows), default=0.0)
    # Loud (and whole: a window half in a burst has half the share).
    loud = [w for w in windows if rms(w) > max(0.02, 0.7 * peak)]
    if not loud:
        return 0.0
    shares = [2.0 * sum(goertzel_power(w, rate, f) for f in freqs) / rms(w) ** 2 for w in loud]
    return float(np.median(shares))


@contextlib.asynccontextmanager
async def sounding_phone(
    sandbox: Sandbox, user: str, sounds: Sounds | None
) -> AsyncIterator[Phone]:
    account = AccountConfig.from_sip_account_info(sandbox.sip_account_info(user))
    phone = Phone(account, media=MEDIA, sounds=sounds)
    try:
        await phone.register(timeout=10)
        yield phone
    finally:
        await asyncio.wait_for(phone.close(), 10)


@LOOPBACK_MEDIA
async def test_ringtone_heard_on_the_selected_sink_until_answered(
    pulse_server: PulseServer, sandbox: Sandbox
) -> None:
    async with sounding_phone(sandbox, "agent", Sounds()) as agent, \
            sounding_phone(sandbox, "bob", None) as bob:
        await agent.set_output_device("spk_b")
        ringing_b = asyncio.create_task(pulse_server.record("spk_b.monitor", 2.5, MONITOR_RATE))
        ringing_a = asyncio.create_task(pulse_server.record("spk_a.monitor", 2.5, MONITOR_RATE))
        await bob.dial("agent")
        call = await agent.next_incoming_call(timeout=5)
        heard, elsewhere = await ringing_b, await ringing_a
        assert loud_share(heard, (660.0, 880.0)) > 0.8
        assert rms(elsewhere) < 0.002  # only the selected sink rings
        await call.answer()
        await asyncio.sleep(0.3)
        after = await pulse_server.record("spk_b.monitor", 1.5, MONITOR_RATE)
        assert loud_share(after, (660.0, 880.0)) == 0.0  # bob sends silence: nothing loud
        await call.hangup()


@LOOPBACK_MEDIA
async def test_ringback_and_dtmf_beep_heard_on_the_default_sink(
    pulse_server: PulseServer, sandbox: Sandbox
) -> None:
    async with sounding_phone(sandbox, "agent", Sounds()) as agent:
        recording = asyncio.create_task(pulse_server.record("spk_a.monitor", 2.0, MONITOR_RATE))
        ringing = await agent.dial("noanswer")
        assert loud_share(await recording, (440.0, 480.0)) > 0.8
        await ringing.hangup()
        await asyncio.sleep(0.3)
        assert rms(await pulse_server.record("spk_a.monitor", 0.5, MONITOR_RATE)) < 0.002

        call = await agent.dial("ivr")
        await call.wait_connected(5)
        await asyncio.sleep(0.3)
        recording = asyncio.create_task(pulse_server.record("spk_a.monitor", 2.0, MONITOR_RATE))
        await asyncio.sleep(0.7)  # pacat is recording
        await call.send_dtmf("5")
        beep = await recording
        # The monitor source of an idle null sink gives only the first 20-40 ms of a short
        # sound (a continuous one, the ringtone, comes through whole), so this checks that
        # the digit's pair is what was heard, not how long.
        assert loud_share(beep, DTMF_PAIRS["5"], window=0.02) > 0.8
        assert loud_share(beep, (440.0, 480.0), window=0.02) < 0.1
        await call.hangup()


@LOOPBACK_MEDIA
async def test_a_wav_ringtone_is_played_and_none_plays_nothing(
    pulse_server: PulseServer, sandbox: Sandbox, tmp_path: Path
) -> None:
    t = np.arange(24000) / 24000
    wav = write_wav(tmp_path / "bell.wav",
                    np.round(np.sin(2 * np.pi * 1000 * t) * 8000).astype(np.int16), 24000)
    async with sounding_phone(sandbox, "agent", Sounds(ringtone=wav)) as agent, \
            sounding_phone(sandbox, "bob", Sounds(ringtone=None)) as bob:
        await bob.set_output_device("spk_b")
        heard_a = asyncio.create_task(pulse_server.record("spk_a.monitor", 2.0, MONITOR_RATE))
        heard_b = asyncio.create_task(pulse_server.record("spk_b.monitor", 2.0, MONITOR_RATE))
        out = await agent.dial("bob")  # agent's ringback: on spk_a
        await bob.next_incoming_call(timeout=5)  # bob's ringtone is off: spk_b stays silent
        await heard_b
        assert rms(heard_b.result()) < 0.002
        await heard_a
        await out.hangup()

        heard = asyncio.create_task(pulse_server.record("spk_a.monitor", 2.0, MONITOR_RATE))
        await bob.dial("agent")
        call = await agent.next_incoming_call(timeout=5)
        assert loud_share(await heard, (1000.0,)) > 0.8
        await call.reject()


async def test_a_sound_stopped_while_its_device_opens_closes_the_device() -> None:
    """Stopping a sound while its device is still opening (in a thread) must not drop the
    open stream: PortAudio would go on calling its freed callback."""
    opening = threading.Event()
    release = threading.Event()
    made: list[Recorder] = []

    def slow_device(device: object) -> AudioSink:
        opening.set()
        release.wait(5)
        sink = Recorder(device)
        made.append(sink)
        return sink

    player = SoundPlayer(Sounds(), sink_factory=slow_device)
    player.start_ringtone()
    await asyncio.to_thread(opening.wait, 5)
    await player.aclose()  # stopped while the device opens
    release.set()
    await until(lambda: made and made[0].closed)
    assert player.playing is None


async def test_no_output_device_is_one_info_line_not_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A server with the [audio] extra but no sound card: sounds are off, said once."""
    monkeypatch.setattr("exotel_voice.audio.sounds.default_device",
                        lambda kind, devices=None: None)
    player = SoundPlayer(Sounds())  # the real device sink factory
    with caplog.at_level(logging.INFO, logger="exotel_voice.audio.sounds"):
        for _ in range(2):
            player.start_ringtone()
            await player.wait_done()
            assert player.playing is None
    lines = [r for r in caplog.records if r.name == "exotel_voice.audio.sounds"]
    assert [(r.levelno, r.getMessage()) for r in lines] == [
        (logging.INFO, "= sounds are off while there is no output device: "
                       "there is no output device")]


async def test_a_sound_that_cannot_start_is_not_left_playing() -> None:
    def broken(device: object) -> AudioSink:
        raise OSError("Device unavailable")

    player = SoundPlayer(Sounds(), sink_factory=broken)
    player.start_ringback()
    await player.wait_done()
    assert player.playing is None


def test_the_facade_plays_sounds_by_default_and_not_when_asked_off() -> None:
    from exotel_voice import ExotelWebClient
    from exotel_voice.sandbox import SandboxConfig
    from exotel_voice.sandbox.threaded import SandboxThread

    config = SandboxConfig(ws_port=0, wss_port=None, http_port=None,
                           users={"agent": "agent-sounds-1"})
    with SandboxThread(config) as sb:
        for sounds, expected in ((None, False), (Sounds(ringtone=None), True), ("default", True)):
            with ExotelWebClient() as client:
                kwargs: dict[str, Any] = {} if sounds == "default" else {"sounds": sounds}
                assert client.initWebrtc(sb.sip_account_info("agent"), **kwargs)
                client.DoRegister()
                assert client.wait_for_registration(10)
                phone = client.phone
                assert phone is not None
                assert (phone.sound_player is not None) is expected
                if isinstance(sounds, Sounds):
                    assert phone.sound_player is not None
                    assert phone.sound_player.sounds is sounds
                client.UnRegister()
                client.wait_for_unregistration(10)
