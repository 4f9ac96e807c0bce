"""The sounds a phone plays by itself: ringtone, ringback and the DTMF beep.

Exotel's Web SDK plays a ringtone while an incoming call rings; a phone that places
calls also wants a ringback (the "ring ring" the caller hears while the far end rings)
and a short beep for each DTMF digit it sends. :class:`Sounds` says which sound to play
for each; :class:`SoundPlayer` plays them on an output device.

Built-in tones (generated with numpy, nothing is shipped as a file):

* :data:`RINGTONE`: 660 + 880 Hz (two tones a musical fifth apart, bright enough for
  a laptop speaker) in the double-ring cadence 0.4 s on, 0.2 s off, 0.4 s on, 2.0 s off.
* :data:`RINGBACK_NORTH_AMERICA` (the default ringback): 440 + 480 Hz, 2 s on, 4 s off
  (the North American precise tone plan). :data:`RINGBACK_UK`: 400 + 450 Hz,
  0.4 s on, 0.2 s off, 0.4 s on, 2.0 s off. Any :class:`Tone` can be given instead.
* :data:`DTMF_TONES` (the default beep): each digit we send plays its own DTMF pair
  (697-941 Hz row tone + 1209-1633 Hz column tone) for 100 ms.

Each sound can be replaced by a WAV file (a path; 16-bit PCM, mono or stereo, any
rate; checked when :class:`Sounds` is created) or turned off with ``None``. A WAV
ringtone or ringback is repeated while the call rings; a WAV beep plays once per digit.

Playing: :class:`SoundPlayer` writes 20 ms frames at the real-time pace into a
:class:`~exotel_voice.media.sinks.DeviceSink` (the same playout path as a call's
received audio) on the selected output device. Without the ``[audio]`` extra
(``sounddevice``/PortAudio), or on a machine without an output device, sounds are
off: one INFO line says so, and nothing else changes (a server-side bot has no
speaker). The player takes a ``sink_factory`` so that the same sounds can go to any
:class:`~exotel_voice.media.sinks.AudioSink` (a recorder in tests, say).

Which face plays what by default: the ``ExotelWebClient`` facade plays all three, as
the JS SDK plays its ringtone; the asyncio :class:`~exotel_voice.client.phone.Phone`
plays nothing unless given ``sounds=Sounds()`` (its users are mostly bots and servers).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import ConfigurationError, MediaError
from ..media.analysis import rms
from ..media.dtmf import parse_digits
from ..media.pcm import FRAME_MS, Samples, resample_all, samples_per_frame
from ..media.playout import PlayoutBuffer
from ..media.sinks import AudioSink, DeviceSink
from .devices import DeviceKind, default_device


__all__ = [
    "DTMF_TONES",
    "RINGBACK_NORTH_AMERICA",
    "RINGBACK_UK",
    "RINGTONE",
    "DtmfTones",
    "NoOutputDevice",
    "Sound",
    "SoundPlayer",
    "Sounds",
    "Tone",
    "WavSound",
]

logger = logging.getLogger(__name__)

#: The rate sounds are rendered at (and DeviceSink's default rate).
SOUND_RATE = 48000

#: Held while the sounds and the device tests list devices or open a stream: PortAudio's
#: re-scan (``list_devices``) re-initialises it, and a stream opened or a device queried
#: from another thread meanwhile fails ("PortAudio not initialized").
DEVICE_LOCK = threading.Lock()

#: Seconds a one-shot sound's device stays open after its last frame was pulled.
DEVICE_TAIL = 0.2

#: A short fade in and out of every tone burst, so it starts and stops without a click.
_RAMP_S = 0.005


@dataclass(frozen=True)
class Tone:
    """A tone of one or more frequencies played in a repeating on/off cadence.

    Args:
        frequencies: the frequencies mixed (Hz, each above 0 and below 24000).
        cadence: seconds on, off, on, off ... (an even number of positive values; one
            period of the pattern, repeated while the sound plays).
        amplitude: peak amplitude of the mix relative to full scale (0 < a <= 1).

    Raises:
        ConfigurationError: a value is out of range (the message names it).
    """

    frequencies: tuple[float, ...]
    cadence: tuple[float, ...]
    amplitude: float = 0.3

    def __post_init__(self) -> None:
        freqs = tuple(float(f) for f in self.frequencies)
        cadence = tuple(float(c) for c in self.cadence)
        if not freqs or any(not 0 < f < SOUND_RATE / 2 for f in freqs):
            raise ConfigurationError(
                "frequencies", f"need one or more frequencies between 0 and 24000 Hz, "
                f"not {self.frequencies!r}")
        if not cadence or len(cadence) % 2 or any(c <= 0 for c in cadence):
            raise ConfigurationError(
                "cadence", f"need seconds on, off (, on, off ...): an even number of "
                f"positive values, not {self.cadence!r}")
        if not 0 < self.amplitude <= 1:
            raise ConfigurationError(
                "amplitude", f"must be above 0 and at most 1, not {self.amplitude!r}")
        object.__setattr__(self, "frequencies", freqs)
        object.__setattr__(self, "cadence", cadence)

    @property
    def period(self) -> float:
        """Seconds of one on/off pattern."""
        return float(sum(self.cadence))

    def render(self, sample_rate: int = SOUND_RATE) -> Samples:
        """One period of the cadence as mono int16 samples."""
        parts: list[Samples] = []
        for i, seconds in enumerate(self.cadence):
            n = int(round(seconds * sample_rate))
            if i % 2:
                parts.append(np.zeros(n, dtype=np.int16))
            else:
                parts.append(_burst(self.frequencies, n, sample_rate, self.amplitude))
        return np.concatenate(parts)


def _burst(freqs: tuple[float, ...], n: int, sample_rate: int, amplitude: float) -> Samples:
    t = np.arange(n) / sample_rate
    mix = sum(np.sin(2 * np.pi * f * t) for f in freqs) / len(freqs)
    ramp = min(n // 2, int(_RAMP_S * sample_rate))
    envelope = np.ones(n)
    if ramp:
        envelope[:ramp] = np.linspace(0.0, 1.0, ramp)
        envelope[n - ramp:] = np.linspace(1.0, 0.0, ramp)
    return np.asarray(np.round(mix * envelope * amplitude * 32767), dtype=np.int16)


#: The DTMF pairs (ITU-T Q.23): row tone, column tone.
DTMF_PAIRS: dict[str, tuple[float, float]] = {
    digit: (row, col)
    for row, keys in zip(
        (697.0, 770.0, 852.0, 941.0), ("123A", "456B", "789C", "*0#D"), strict=True
    )
    for col, digit in zip((1209.0, 1336.0, 1477.0, 1633.0), keys, strict=True)
}


@dataclass(frozen=True)
class DtmfTones:
    """The beep for a digit we send is that digit's own DTMF pair.

    Args:
        duration: seconds per digit (0.02-1.0).
        amplitude: peak amplitude relative to full scale (0 < a <= 1).
    """

    duration: float = 0.1
    amplitude: float = 0.3

    def __post_init__(self) -> None:
        if not 0.02 <= self.duration <= 1.0:
            raise ConfigurationError(
                "duration", f"must be between 0.02 and 1 s, not {self.duration!r}")
        if not 0 < self.amplitude <= 1:
            raise ConfigurationError(
                "amplitude", f"must be above 0 and at most 1, not {self.amplitude!r}")

    def render(self, digit: str, sample_rate: int = SOUND_RATE) -> Samples:
        """The beep of ``digit`` (``0-9``, ``A-D``, ``*``, ``#``) as mono int16 samples."""
        (key,) = parse_digits(digit)
        n = int(round(self.duration * sample_rate))
        return _burst(DTMF_PAIRS[key], n, sample_rate, self.amplitude)


@dataclass(frozen=True)
class WavSound:
    """A sound read from a 16-bit PCM WAV file (mono, or stereo mixed down), any rate.

    Raises:
        ConfigurationError: the file cannot be read or is not 16-bit PCM WAV (the
            message names the file and why).
    """

    path: Path
    samples: Samples = field(repr=False, compare=False)
    sample_rate: int = field(compare=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str], what: str = "sound") -> WavSound:
        """Read ``path``; ``what`` names the setting in error messages."""
        p = Path(path)
        try:
            with wave.open(str(p), "rb") as wav:
                if wav.getsampwidth() != 2:
                    raise ConfigurationError(
                        what, f"{str(p)!r} is not 16-bit PCM WAV "
                        f"({8 * wav.getsampwidth()}-bit samples)")
                channels = wav.getnchannels()
                rate = wav.getframerate()
                raw = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        except (OSError, wave.Error, EOFError) as exc:
            raise ConfigurationError(what, f"cannot read the WAV file {str(p)!r}: {exc}") from exc
        if channels > 1:
            raw = raw[: raw.size - raw.size % channels].reshape(-1, channels).astype(
                np.int32).mean(axis=1)
        samples = np.asarray(raw, dtype=np.int16)
        if samples.size == 0:
            raise ConfigurationError(what, f"the WAV file {str(p)!r} holds no audio")
        return cls(p, samples, rate)

    def render(self, sample_rate: int = SOUND_RATE) -> Samples:
        """The whole file at ``sample_rate``."""
        return resample_all(self.samples, self.sample_rate, sample_rate)


#: The built-in ringtone: 660 + 880 Hz, double ring (0.4 on, 0.2 off, 0.4 on, 2.0 off).
RINGTONE = Tone((660.0, 880.0), (0.4, 0.2, 0.4, 2.0))
#: North American ringback: 440 + 480 Hz, 2 s on, 4 s off (the default ringback).
RINGBACK_NORTH_AMERICA = Tone((440.0, 480.0), (2.0, 4.0))
#: UK ringback: 400 + 450 Hz, 0.4 on, 0.2 off, 0.4 on, 2.0 off.
RINGBACK_UK = Tone((400.0, 450.0), (0.4, 0.2, 0.4, 2.0))
#: The default DTMF beep: the digit's own DTMF pair for 100 ms.
DTMF_TONES = DtmfTones()

#: What a sound setting holds once checked: a tone, a WAV, or ``None`` (off).
Sound = Tone | WavSound | None


def _sound(value: object, what: str) -> Tone | WavSound | DtmfTones | None:
    if value is None or isinstance(value, (Tone, WavSound, DtmfTones)):
        return value
    if isinstance(value, (str, os.PathLike)):
        return WavSound.load(value, what)
    raise ConfigurationError(
        what, f"must be a Tone, a WAV file path or None (off), not {type(value).__name__}")


@dataclass(frozen=True)
class Sounds:
    """Which sound a phone plays for each occasion (``None`` turns one off).

    Args:
        ringtone: while an incoming call rings (until it is answered, rejected or
            cancelled). A :class:`Tone`, a WAV path, or ``None``. Default :data:`RINGTONE`.
        ringback: while a call we placed rings (until the far end's early media, the
            answer or the end). Default :data:`RINGBACK_NORTH_AMERICA`;
            :data:`RINGBACK_UK` is the UK cadence.
        dtmf_beep: once per DTMF digit we send. :data:`DTMF_TONES` (each digit's own
            pair, the default), a :class:`Tone` (its first burst), a WAV path, or ``None``.
        device: the output device (id or name, as ``sounddevice`` takes it); ``None``
            plays on the phone's selected output (else the system default).

    Raises:
        ConfigurationError: a value is not a sound, or a WAV file cannot be read (the
            message names the setting and the file).

    WAV paths are read once, here: a bad path fails when the phone is configured, not
    when the first call rings.
    """

    ringtone: Tone | WavSound | str | os.PathLike[str] | None = RINGTONE
    ringback: Tone | WavSound | str | os.PathLike[str] | None = RINGBACK_NORTH_AMERICA
    dtmf_beep: DtmfTones | Tone | WavSound | str | os.PathLike[str] | None = DTMF_TONES
    device: int | str | None = None

    def __post_init__(self) -> None:
        for name in ("ringtone", "ringback"):
            value = _sound(getattr(self, name), name)
            if isinstance(value, DtmfTones):
                raise ConfigurationError(name, "DtmfTones is only for dtmf_beep")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "dtmf_beep", _sound(self.dtmf_beep, "dtmf_beep"))
        if self.device is not None and not isinstance(self.device, (int, str)):
            raise ConfigurationError(
                "device", f"must be a device id, a name or None, not {type(self.device).__name__}")

    @classmethod
    def off(cls) -> Sounds:
        """No sounds at all."""
        return cls(ringtone=None, ringback=None, dtmf_beep=None)


def render_loop(sound: Tone | WavSound, sample_rate: int = SOUND_RATE) -> Samples:
    """One repetition of a ringtone or ringback (a WAV file: the whole file)."""
    return sound.render(sample_rate)


def render_beep(
    sound: DtmfTones | Tone | WavSound, digit: str, sample_rate: int = SOUND_RATE
) -> Samples:
    """The beep for one sent ``digit``."""
    if isinstance(sound, DtmfTones):
        return sound.render(digit, sample_rate)
    if isinstance(sound, Tone):
        n = int(round(sound.cadence[0] * sample_rate))
        return sound.render(sample_rate)[:n]
    return sound.render(sample_rate)


#: Makes the sink a sound plays into, from the device it should play on.
SinkFactory = Callable[[Any], AudioSink]


class NoOutputDevice(MediaError):
    """The machine has no output device at all (a server): sounds have nowhere to play."""


def _device_sink(device: Any) -> AudioSink:
    if device is None:
        # The system default as the device list has it now (PortAudio's own idea of the
        # default is read once, when it starts).
        device = default_device(DeviceKind.OUTPUT)
        if device is None:
            raise NoOutputDevice("there is no output device")
    return DeviceSink(device, sample_rate=SOUND_RATE)


class SoundPlayer:
    """Plays :class:`Sounds` on an output device, one sound at a time, on the running loop.

    Args:
        sounds: what to play.
        output: a function returning the device to play on when a sound starts (the
            phone's selected output, an :class:`~exotel_voice.audio.AudioDevice`);
            ``sounds.device`` wins when set; ``None``: the system default.
        sink_factory: makes the sink for a device (default: a
            :class:`~exotel_voice.media.sinks.DeviceSink` at 48 kHz).
        on_level: called with the RMS level (0.0-1.0, full scale 1.0) of each
            ``level_interval`` seconds played (the speaker test's meter).
        on_error: called with a description when a sound cannot be played (no
            ``sounddevice``, a device that cannot be opened).
        level_interval: seconds of audio per ``on_level`` report.

    A new sound replaces the one playing (a beep interrupts the ringback, say). Errors
    of the device never escape: without ``sounddevice`` the player logs one INFO line
    and stays silent; a device that cannot be opened is logged as a WARNING each time
    a sound fails to start.
    """

    def __init__(
        self,
        sounds: Sounds,
        *,
        output: Callable[[], Any] | None = None,
        sink_factory: SinkFactory | None = None,
        on_level: Callable[[float], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        level_interval: float = 0.1,
    ) -> None:
        self.sounds = sounds
        self._output = output
        self._sink_factory = sink_factory or _device_sink
        self.on_level = on_level
        self.on_error = on_error
        self._level_frames = max(1, int(round(level_interval * 1000 / FRAME_MS)))
        self._task: asyncio.Task[None] | None = None
        #: What is playing: ``"ringtone"``, ``"ringback"``, ``"dtmf"`` ... or ``None``.
        self.playing: str | None = None
        #: False once the player found that sounds cannot be played here (no extra).
        self.available = True
        self._told_no_device = False
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"<SoundPlayer playing={self.playing!r}>"

    @property
    def device(self) -> Any:
        """The output device the next sound plays on."""
        if self.sounds.device is not None:
            return self.sounds.device
        return self._output() if self._output is not None else None

    def start_ringtone(self) -> bool:
        """Play the ringtone until :meth:`stop`; ``False`` if it is off."""
        return self._start("ringtone", self.sounds.ringtone, loop=True)

    def start_ringback(self) -> bool:
        """Play the ringback until :meth:`stop`; ``False`` if it is off."""
        return self._start("ringback", self.sounds.ringback, loop=True)

    def beep(self, digits: str) -> bool:
        """Play the DTMF beep of each of ``digits`` once, one after the other."""
        sound = self.sounds.dtmf_beep
        if sound is None:
            return False
        assert isinstance(sound, (DtmfTones, Tone, WavSound))
        gap = np.zeros(int(0.05 * SOUND_RATE), dtype=np.int16)
        parts = []
        for digit in parse_digits(digits):
            parts += [render_beep(sound, digit), gap]
        return self._play("dtmf", np.concatenate(parts), loop=False)

    def play(self, name: str, samples: Samples, *, loop: bool = False) -> bool:
        """Play any 48 kHz mono int16 ``samples`` (once, or until :meth:`stop`)."""
        return self._play(name, samples, loop=loop)

    def stop(self, name: str | None = None) -> None:
        """Stop what is playing (only if it is ``name``, when given)."""
        if name is not None and self.playing != name:
            return
        task, self._task = self._task, None
        self.playing = None
        if task is not None and not task.done():
            task.cancel()

    async def aclose(self) -> None:
        """Stop and wait until the device is closed."""
        task = self._task
        self.stop()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def wait_done(self) -> None:
        """Wait until the sound playing (a beep, say) has finished."""
        task = self._task
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    def _start(self, name: str, sound: object, *, loop: bool) -> bool:
        if not isinstance(sound, (Tone, WavSound)):
            return False  # off (Sounds has turned paths into WavSound)
        return self._play(name, render_loop(sound), loop=loop)

    def _play(self, name: str, samples: Samples, *, loop: bool) -> bool:
        if not self.available:
            return False
        self.stop()
        self.playing = name
        self._task = asyncio.get_running_loop().create_task(
            self._run(name, samples, loop), name=f"exotel-voice-sound-{name}"
        )
        return True

    async def _run(self, name: str, samples: Samples, loop: bool) -> None:
        try:
            await self._play_on_device(name, samples, loop)
        finally:
            if self._task is asyncio.current_task():
                self._task = None
                self.playing = None

    async def _play_on_device(self, name: str, samples: Samples, loop: bool) -> None:
        device = self.device
        frames = _frames(samples)
        # Made, and opened by the sound's first frame, under the device lock. Shielded: a
        # stop() meanwhile must not drop a stream that is being opened (its callback would
        # be freed while PortAudio still calls it); it is closed once open instead.
        opening = asyncio.ensure_future(asyncio.to_thread(self._open_sink, device, frames[0]))
        try:
            sink = await asyncio.shield(opening)
        except asyncio.CancelledError:
            opening.add_done_callback(_close_when_open)
            raise
        except NoOutputDevice as exc:
            # Not an error on a server; said once (a device may be plugged in later).
            if not self._told_no_device:
                self._told_no_device = True
                logger.info("= sounds are off while there is no output device: %s", exc)
            self._report(str(exc))
            return
        except MediaError as exc:
            self._unavailable(exc)
            return
        except Exception as exc:  # a device error must not reach the call
            self._failed(name, device, exc)
            return
        try:
            await self._feed(sink, frames, loop)
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            self._failed(name, device, exc)
        finally:
            try:
                await asyncio.to_thread(_close_sink, sink)
            except Exception:
                logger.debug("closing the sound's sink failed", exc_info=True)

    def _open_sink(self, device: Any, first: Samples) -> AudioSink:
        with DEVICE_LOCK:
            sink = self._sink_factory(device)
            try:
                sink.write(first, SOUND_RATE)
            except BaseException:
                sink.close()
                raise
            return sink

    async def _feed(self, sink: AudioSink, frames: list[Samples], loop: bool) -> None:
        """Write ``frames`` (the first one already written) at the real-time pace."""
        level_every = self._level_frames
        clock = asyncio.get_running_loop()
        start = clock.time()
        count = 1
        index = 1
        while True:
            for i in range(index, len(frames)):
                sink.write(frames[i], SOUND_RATE)
                count += 1
                if self.on_level is not None and count % level_every == 0:
                    recent = _last(frames, i, level_every)
                    try:
                        self.on_level(rms(recent))
                    except Exception:
                        logger.exception("! the sound level callback failed")
                delay = start + (count - 1) * FRAME_MS / 1000 - clock.time()
                await asyncio.sleep(max(0.0, delay))
            if not loop:
                await _drained(sink)
                return
            index = 0

    def _unavailable(self, exc: Exception) -> None:
        self.available = False
        self.last_error = str(exc)
        self.playing = None
        logger.info("= sounds are off (ringtone, ringback, DTMF beep): %s", exc)
        self._report(str(exc))

    def _failed(self, name: str, device: Any, exc: Exception) -> None:
        where = "the default output" if device is None else repr(getattr(device, "id", device))
        self.last_error = f"cannot play the {name} on {where}: {exc}"
        logger.warning("! %s", self.last_error)
        self._report(self.last_error)

    def _report(self, description: str) -> None:
        if self.on_error is not None:
            try:
                self.on_error(description)
            except Exception:
                logger.exception("! the sound error callback failed")


def _close_when_open(opening: asyncio.Future[AudioSink]) -> None:
    """Close a sink whose opening finished after its sound was stopped."""
    if opening.cancelled() or opening.exception() is not None:
        return
    asyncio.get_running_loop().run_in_executor(None, _close_sink, opening.result())


def _close_sink(sink: AudioSink) -> None:
    with DEVICE_LOCK:
        sink.close()


def _frames(samples: Samples) -> list[Samples]:
    """``samples`` cut into 20 ms frames, the last one padded with silence."""
    size = samples_per_frame(SOUND_RATE)
    pad = (-samples.size) % size
    data = np.concatenate([samples, np.zeros(pad, dtype=np.int16)]) if pad else samples
    if data.size == 0:
        data = np.zeros(size, dtype=np.int16)
    return [data[i:i + size] for i in range(0, data.size, size)]


async def _drained(sink: AudioSink, timeout: float = 5.0) -> None:
    """Wait until ``sink`` has played what it holds (a device can take a while to start
    pulling: ALSA's pulse plugin, say), so that closing it does not cut a beep off."""
    playout = getattr(sink, "playout", None)
    if isinstance(playout, PlayoutBuffer):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while playout.depth_ms > 0 and loop.time() < deadline:
            await asyncio.sleep(FRAME_MS / 1000)
        # What the device itself holds once pulled: PortAudio's buffers and, through ALSA's
        # pulse plugin, PulseAudio's.
        await asyncio.sleep(DEVICE_TAIL)


def _last(frames: list[Samples], i: int, count: int) -> Samples:
    """The ``count`` frames up to ``frames[i]``, wrapping round to the end (a loop)."""
    picked = [frames[(i - k) % len(frames)] for k in range(count - 1, -1, -1)]
    return np.concatenate(picked)
