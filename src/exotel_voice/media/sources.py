"""Audio sources: what a media session sends.

A source is pull-based and never paces itself: the session's outgoing track ticks
every 20 ms and calls :meth:`AudioSource.read` for one frame at the rate the
negotiated codec wants (8 kHz for G.711, 48 kHz for Opus).  A source that has
nothing ready returns ``None`` and the session sends silence, so the RTP clock
never stalls on a slow producer (a TTS engine, a microphone).

Sources: :class:`ToneSource`, :class:`SilenceSource`, :class:`WavFileSource`,
:class:`FrameSource` (PCM frames from an iterator, async iterator or ``push()``
calls) and :class:`DeviceSource` (the default microphone; needs the optional
``sounddevice`` package).
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import fractions
import logging
import math
import wave
from collections.abc import AsyncIterable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import AudioSourceError, MediaError
from .pcm import FRAME_MS, Resampler, Samples, resample_all, samples_per_frame, to_samples


__all__ = [
    "AudioSource",
    "DeviceSource",
    "FrameSource",
    "PcmFrame",
    "SilenceSource",
    "ToneSource",
    "WavFileSource",
]

logger = logging.getLogger(__name__)

#: What frame producers may hand over: int16 samples or little-endian 16-bit bytes.
PcmFrame = Samples | bytes | bytearray | memoryview


class AudioSource(abc.ABC):
    """Base class of everything a :class:`MediaSession` can send."""

    def __init__(self) -> None:
        self._finished = asyncio.Event()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    @abc.abstractmethod
    def read(self, sample_rate: int) -> Samples | None:
        """Return the next 20 ms of mono int16 audio at ``sample_rate``, or ``None``.

        ``None`` means nothing is ready; the session sends silence instead.
        Must not block.
        """

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Called when a session starts sending from this source (open devices here)."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Called when a session stops using this source (close devices here)."""

    @property
    def finished(self) -> bool:
        """Whether the source has played all it ever will (a file's end, an iterator's end)."""
        return self._finished.is_set()

    async def wait_finished(self) -> None:
        """Wait until :attr:`finished`."""
        await self._finished.wait()

    def _finish(self) -> None:
        self._finished.set()


class SilenceSource(AudioSource):
    """Digital silence, forever."""

    def read(self, sample_rate: int) -> Samples | None:
        return np.zeros(samples_per_frame(sample_rate), dtype=np.int16)


class ToneSource(AudioSource):
    """A sine tone.

    Sample ``i`` of the tone (counted from the first frame, at any rate) is
    ``sin(2 pi f i / rate) * amplitude * 32767`` truncated to int16.  A tone whose
    frequency fits a whole number of periods into at most :data:`CYCLE_FRAMES`
    frames (every integer frequency does: 50 frames are one second) repeats
    exactly, so that cycle is computed once per rate and then handed out frame by
    frame as read-only views, with no per-frame arithmetic; other frequencies are
    computed per frame.

    Args:
        frequency: tone frequency in Hz.
        amplitude: peak level as a fraction of full scale (0.0 to 1.0).
        duration: seconds to play before :attr:`finished`; ``None`` plays forever.
    """

    #: Longest repeating cycle (in 20 ms frames) kept in memory per sample rate.
    CYCLE_FRAMES = 50

    def __init__(self, frequency: float, amplitude: float = 0.5, *, duration: float | None = None):
        super().__init__()
        if not 0.0 <= amplitude <= 1.0:
            raise ValueError("amplitude must be within 0.0-1.0")
        if frequency <= 0:
            raise ValueError("frequency must be positive")
        self.frequency = frequency
        self.amplitude = amplitude
        self.duration = duration
        self._frames = 0  # 20 ms frames read so far (the same instant at every rate)
        self._cycles: dict[int, tuple[Samples, int] | None] = {}

    def read(self, sample_rate: int) -> Samples | None:
        if self.duration is not None and self._frames * FRAME_MS >= self.duration * 1000:
            self._finish()
            return None
        n = samples_per_frame(sample_rate)
        frame = self._frames
        self._frames += 1
        try:
            cycle = self._cycles[sample_rate]
        except KeyError:
            cycle = self._cycles[sample_rate] = self._cycle(sample_rate, n)
        if cycle is not None:
            table, frames = cycle
            start = (frame % frames) * n
            return table[start : start + n]
        return self._compute(sample_rate, frame * n, n)

    def _compute(self, sample_rate: int, first: int, n: int) -> Samples:
        """Samples ``first`` to ``first + n - 1`` computed directly."""
        # The phase at ``first`` reduced to one period first, so large indices keep
        # their precision.
        turns = math.fmod(self.frequency * first / sample_rate, 1.0)
        step = self.frequency / sample_rate
        phases = 2.0 * math.pi * (turns + step * np.arange(n))
        tone: Samples = (np.sin(phases) * (self.amplitude * 32767.0)).astype(np.int16)
        return tone

    def _cycle(self, sample_rate: int, n: int) -> tuple[Samples, int] | None:
        """``(samples, frames)`` of the shortest whole number of frames that repeats, if short."""
        periods = fractions.Fraction(self.frequency) * n / sample_rate  # exact
        frames = periods.denominator
        if frames > self.CYCLE_FRAMES:
            return None
        table = self._compute(sample_rate, 0, frames * n)
        table.flags.writeable = False
        return table, frames


class WavFileSource(AudioSource):
    """A 16-bit PCM WAV file (mono, or stereo mixed down), at any sample rate.

    The file is read into memory when constructed and resampled once per output
    rate, so keep prompts short (a minute at 48 kHz is about 5.5 MB).

    Args:
        path: the file.
        loop: start again at the end instead of finishing.

    Raises:
        AudioSourceError: the file cannot be read, or is not 16-bit PCM WAV.
    """

    def __init__(self, path: str | Path, *, loop: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.loop = loop
        try:
            with wave.open(str(self.path), "rb") as wav:
                if wav.getsampwidth() != 2:
                    raise AudioSourceError(repr(self), "only 16-bit PCM WAV files are supported")
                channels = wav.getnchannels()
                self.sample_rate = wav.getframerate()
                raw = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        except (OSError, wave.Error, EOFError) as exc:
            raise AudioSourceError(repr(self), f"cannot read the WAV file: {exc}") from exc
        if channels > 1:
            raw = raw.reshape(-1, channels).astype(np.int32).mean(axis=1)
        self._samples = raw.astype(np.int16)
        self._cache: dict[int, Samples] = {}
        self._position = 0.0  # seconds

    def __repr__(self) -> str:
        return f"<WavFileSource {str(self.path)!r}>"

    def read(self, sample_rate: int) -> Samples | None:
        if self.finished:
            return None
        data = self._cache.get(sample_rate)
        if data is None:
            data = self._cache[sample_rate] = resample_all(
                self._samples, self.sample_rate, sample_rate
            )
        n = samples_per_frame(sample_rate)
        if data.size == 0:
            self._finish()
            return None
        start = int(round(self._position * sample_rate))
        chunk = data[start : start + n]
        if chunk.size < n:
            if self.loop:
                chunk = np.concatenate([chunk, np.resize(data, n - chunk.size)])
                self._position = (n - (data.size - start)) / sample_rate
                return chunk
            self._finish()
            if chunk.size == 0:
                return None
            return np.concatenate([chunk, np.zeros(n - chunk.size, dtype=np.int16)])
        self._position += n / sample_rate
        return chunk


class FrameSource(AudioSource):
    """PCM frames supplied by the application: an iterator, async iterator or ``push()``.

    Frames are mono int16 (numpy arrays or little-endian bytes) at ``sample_rate``,
    of any length (20 ms is typical); they are resampled to the codec's rate.

    With an iterator, the source pulls only while less than ``max_buffer_ms`` is
    buffered, so a pre-rendered generator is played in real time, not slurped.
    With ``push()``, call :meth:`end` after the last frame; when more than
    ``max_buffer_ms`` is pushed the oldest audio is dropped (live input should
    not build latency).  :attr:`finished` becomes true once everything was played.

    Args:
        frames: an iterable or async iterable of frames, or ``None`` to use ``push()``.
        sample_rate: rate of the supplied frames (8000, 16000, 24000, 48000, ...).
        max_buffer_ms: how much audio may wait in the buffer.
    """

    def __init__(
        self,
        frames: Iterable[PcmFrame] | AsyncIterable[PcmFrame] | None = None,
        *,
        sample_rate: int = 16000,
        max_buffer_ms: int = 400,
    ) -> None:
        super().__init__()
        if sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        self.sample_rate = sample_rate
        self._frames = frames
        self._max_samples = sample_rate * max_buffer_ms // 1000
        self._input: collections.deque[Samples] = collections.deque()
        self._buffered = 0
        self._output = np.zeros(0, dtype=np.int16)
        self._resampler: Resampler | None = None
        self._ended = False
        self._space = asyncio.Event()
        self._space.set()
        self._task: asyncio.Task[None] | None = None

    def push(self, frame: PcmFrame) -> None:
        """Append one frame (non-blocking; drops the oldest audio when over the limit)."""
        if self._ended:
            raise MediaError("cannot push to a FrameSource after end()")
        self._append(to_samples(frame))
        while self._buffered > self._max_samples and len(self._input) > 1:
            self._buffered -= self._input.popleft().size

    def end(self) -> None:
        """Mark the end of the pushed audio; :attr:`finished` follows once it has played."""
        self._ended = True

    def _append(self, samples: Samples) -> None:
        if samples.size:
            self._input.append(samples)
            self._buffered += samples.size
            if self._buffered >= self._max_samples:
                self._space.clear()

    async def start(self) -> None:
        if self._frames is not None and self._task is None:
            self._task = asyncio.create_task(self._pull(self._frames))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _pull(self, frames: Iterable[PcmFrame] | AsyncIterable[PcmFrame]) -> None:
        try:
            if isinstance(frames, AsyncIterable):
                async for frame in frames:
                    await self._space.wait()
                    self._append(to_samples(frame))
            else:
                for frame in frames:
                    await self._space.wait()
                    self._append(to_samples(frame))
        finally:
            self._ended = True

    def read(self, sample_rate: int) -> Samples | None:
        n = samples_per_frame(sample_rate)
        if self._resampler is None or self._resampler.to_rate != sample_rate:
            self._resampler = Resampler(self.sample_rate, sample_rate)
        while self._output.size < n and self._input:
            chunk = self._input.popleft()
            self._buffered -= chunk.size
            self._output = np.concatenate([self._output, self._resampler.resample(chunk)])
        if self._buffered < self._max_samples:
            self._space.set()
        if self._output.size >= n:
            frame, self._output = self._output[:n], self._output[n:]
            return frame
        if self._ended and not self._input:
            if self._output.size:
                frame = np.concatenate(
                    [self._output, np.zeros(n - self._output.size, dtype=np.int16)]
                )
                self._output = np.zeros(0, dtype=np.int16)
                return frame
            self._finish()
        return None


#: PortAudio's suggested latency for device streams, in seconds: two 20 ms frames. Lower
#: values stall ALSA's ``pulse`` plugin (a capture stream then never calls back).
DEVICE_LATENCY = 0.04


def import_sounddevice() -> Any:
    """Import the optional ``sounddevice`` package or raise a :class:`MediaError` naming the
    ``[audio]`` extra (see :func:`exotel_voice.audio.import_sounddevice`)."""
    from ..audio._backend import import_sounddevice as _import  # noqa: PLC0415

    return _import()


def portaudio_target(device: Any, kind: str) -> tuple[Any, str | None]:
    """PortAudio's ``device`` argument for ``device`` and the PulseAudio sink/source to route to.

    ``device`` is ``None`` (the default device), a PortAudio index or name, or an
    :class:`~exotel_voice.audio.AudioDevice`: a PulseAudio one is opened on PortAudio's
    ``pulse`` device with the stream routed to it
    (:func:`exotel_voice.audio._backend.pulse_target`).
    """
    from ..audio.devices import AudioDevice  # noqa: PLC0415

    if isinstance(device, AudioDevice):
        if device.pulse_name is not None:
            return "pulse", device.pulse_name
        return device.portaudio_index, None
    return device, None


class DeviceSource(FrameSource):
    """The default (or a chosen) input device, through ``sounddevice``.

    ``device`` is ``None`` (the system default), a PortAudio index or name, or an
    :class:`~exotel_voice.audio.AudioDevice` (:func:`exotel_voice.audio.find_device`).
    :meth:`switch` moves to another device while the source is being sent: the new
    device is opened before the old one is closed, so the far end hears no more than the
    new device's start-up as a gap: the old device stays the one heard until the new one
    delivers audio (at most :attr:`SWITCH_WAIT` seconds). A device that stops delivering for
    :attr:`STALL_AFTER` seconds is opened again (ALSA's ``pulse`` plugin sometimes leaves a
    process's first capture stream without data).

    Raises:
        AudioSourceError: ``sounddevice`` (or PortAudio) is not installed (the message
            says ``pip install 'exotel-voice[audio]'``); from :meth:`start` and
            :meth:`switch`: the device cannot be opened.
    """

    #: Seconds without audio from the device after which it is opened again.
    STALL_AFTER = 0.3
    #: Longest a switch keeps the old device heard while the new one starts, in seconds.
    SWITCH_WAIT = 2.0

    def __init__(self, device: Any = None, *, sample_rate: int = 48000) -> None:
        super().__init__(None, sample_rate=sample_rate, max_buffer_ms=100)
        self.device = device
        self._stream: Any = None
        self._opening = asyncio.Lock()
        self._next_generation = 0
        self._took_over = asyncio.Event()
        self._watchdog: asyncio.Task[None] | None = None
        self._heard = 0.0  # loop time of the last audio from the device
        #: How often the device was opened again after a stall.
        self.reopened = 0
        # Bumped on each switch: a callback of a stream being replaced pushes nothing.
        self._generation = 0
        try:
            self._sd = import_sounddevice()
        except MediaError as exc:
            raise AudioSourceError(repr(self), str(exc)) from exc

    def __repr__(self) -> str:
        device = getattr(self.device, "id", self.device)
        return f"<DeviceSource {device if device is not None else 'default'!r}>"

    async def _open(self, device: Any, *, take_over: bool) -> Any:
        # Opening a device can take tens of milliseconds (more for ALSA's pulse plugin):
        # not on the event loop. With take_over=False the old stream (if any) stays the one
        # heard until the new one delivers its first audio (a capture stream can take a
        # few hundred milliseconds to start), or SWITCH_WAIT has passed.
        loop = asyncio.get_running_loop()
        generation = self._generation + 1
        self._next_generation = generation
        self._took_over.clear()
        stream = await asyncio.to_thread(self._open_stream, device, loop, generation)
        if not take_over:
            try:
                await asyncio.wait_for(self._took_over.wait(), self.SWITCH_WAIT)
            except TimeoutError:
                logger.info("%r: no audio yet from the new device after %.1f s; using it anyway",
                            self, self.SWITCH_WAIT)
        self._generation = generation
        return stream

    def _open_stream(self, device: Any, loop: asyncio.AbstractEventLoop, generation: int) -> Any:
        from ..audio._backend import (  # noqa: PLC0415
            portaudio_lock,
            pulse_target,
            stream_closed,
            stream_opened,
        )

        def push(samples: Samples) -> None:
            if generation == self._next_generation and generation != self._generation:
                self._generation = generation  # the new stream's first audio: it takes over
                self._took_over.set()
            if generation == self._generation:
                self._heard = loop.time()
                self.push(samples)

        def callback(indata: Any, frames: int, time: Any, status: Any) -> None:
            loop.call_soon_threadsafe(push, np.array(indata[:, 0], dtype=np.int16))

        target, pulse_name = portaudio_target(device, "source")
        try:
            with portaudio_lock:  # a re-scan waits until this stream is counted
                with pulse_target("source", pulse_name):
                    stream = self._sd.InputStream(
                        device=target,
                        channels=1,
                        samplerate=self.sample_rate,
                        dtype="int16",
                        blocksize=samples_per_frame(self.sample_rate),
                        latency=DEVICE_LATENCY,
                        callback=callback,
                    )
                stream_opened()
            try:
                stream.start()
            except Exception:
                stream.close()
                stream_closed()
                raise
        except Exception as exc:
            raise AudioSourceError(repr(self), f"cannot open the input device: {exc}") from exc
        return stream

    @staticmethod
    def _close(stream: Any) -> None:
        from ..audio._backend import stream_closed  # noqa: PLC0415

        try:
            stream.stop()
            stream.close()
        except Exception:  # a device that went away: the stream is gone either way
            pass
        finally:
            stream_closed()

    async def start(self) -> None:
        async with self._opening:
            if self._stream is not None:
                return
            self._stream = await self._open(self.device, take_over=True)
            self._heard = asyncio.get_running_loop().time()
            self._watchdog = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.STALL_AFTER / 3)
            if self._stream is None or loop.time() - self._heard < self.STALL_AFTER:
                continue
            logger.info("%r: no audio from the device for %.1f s; opening it again",
                        self, loop.time() - self._heard)
            self._heard = loop.time()
            try:
                await self.switch(self.device)
                self.reopened += 1
            except AudioSourceError as exc:
                logger.warning("! %r: cannot open the input device again: %s", self, exc)

    async def switch(self, device: Any) -> None:
        """Record from ``device`` from now on (see the class docstring).

        Raises:
            AudioSourceError: ``device`` cannot be opened; the previous device goes on.
        """
        async with self._opening:
            if self._stream is None:
                self.device = device
                return
            new = await self._open(device, take_over=False)
            old, self._stream, self.device = self._stream, new, device
            self._heard = asyncio.get_running_loop().time()
        self._close(old)

    async def stop(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        async with self._opening:
            if self._stream is not None:
                self._generation += 1
                stream, self._stream = self._stream, None
                self._close(stream)
