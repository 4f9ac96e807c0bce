"""Audio sinks: where a media session's received audio goes.

The session decodes received audio once and hands every frame, as mono int16
samples with their rate, to each attached sink's :meth:`AudioSink.write`.  Sinks
must not block; anything slow happens behind a queue.

Sinks: :class:`WavFileSink`, :class:`FrameSink` (an async iterator of frames for
voice bots), :class:`LevelMeter` and :class:`DeviceSink` (the default speaker;
needs the optional ``sounddevice`` package).
"""

from __future__ import annotations

import abc
import asyncio
import collections
import threading
import wave
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import MediaError
from .analysis import SILENCE_DBFS, rms, rms_dbfs
from .pcm import Resampler, Samples, samples_per_frame
from .playout import PlayoutBuffer
from .sources import DEVICE_LATENCY, import_sounddevice


__all__ = ["AudioSink", "DeviceSink", "FrameSink", "LevelMeter", "WavFileSink"]


class AudioSink(abc.ABC):
    """Base class of everything that can receive a session's audio."""

    @abc.abstractmethod
    def write(self, samples: Samples, sample_rate: int) -> None:
        """Accept one decoded frame of mono int16 audio. Must not block."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Called when the sink is detached or the session closes."""


class _Rechunker:
    """Resamples to one rate and cuts the stream into fixed-size frames."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._size = samples_per_frame(sample_rate)
        self._resampler: Resampler | None = None
        self._pending = np.zeros(0, dtype=np.int16)

    def feed(self, samples: Samples, sample_rate: int) -> list[Samples]:
        if self._resampler is None or self._resampler.from_rate != sample_rate:
            self._resampler = Resampler(sample_rate, self.sample_rate)
        data = np.concatenate([self._pending, self._resampler.resample(samples)])
        count = data.size // self._size
        frames = [data[i * self._size : (i + 1) * self._size] for i in range(count)]
        self._pending = data[count * self._size :]
        return frames


class WavFileSink(AudioSink):
    """Records received audio to a mono 16-bit WAV file.

    Args:
        path: the file to (over)write.
        sample_rate: the file's rate; ``None`` takes the rate of the first frame.
    """

    def __init__(self, path: str | Path, *, sample_rate: int | None = None) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self._wav: Any = None
        self._resampler: Resampler | None = None

    def write(self, samples: Samples, sample_rate: int) -> None:
        if self._wav is None:
            if self.sample_rate is None:
                self.sample_rate = sample_rate
            try:
                self._wav = wave.open(str(self.path), "wb")
            except OSError as exc:
                raise MediaError(f"cannot write WAV file {self.path}: {exc}") from exc
            self._wav.setnchannels(1)
            self._wav.setsampwidth(2)
            self._wav.setframerate(self.sample_rate)
        assert self.sample_rate is not None
        if self._resampler is None or self._resampler.from_rate != sample_rate:
            self._resampler = Resampler(sample_rate, self.sample_rate)
        self._wav.writeframes(self._resampler.resample(samples).astype("<i2").tobytes())

    def close(self) -> None:
        if self._wav is not None:
            self._wav.close()
            self._wav = None


class FrameSink(AudioSink):
    """Received audio as an async iterator of fixed-size frames (for voice bots).

    ``async for frame in sink`` yields int16 arrays of ``frame_ms`` at
    ``sample_rate`` until the sink is closed.  If the consumer falls more than
    ``max_frames`` behind, the oldest frames are dropped and counted in
    :attr:`dropped`.
    """

    def __init__(self, *, sample_rate: int = 16000, max_frames: int = 50) -> None:
        self.sample_rate = sample_rate
        self.dropped = 0
        self._chunker = _Rechunker(sample_rate)
        self._frames: collections.deque[Samples] = collections.deque()
        self._max_frames = max_frames
        self._ready = asyncio.Event()
        self._closed = False

    def write(self, samples: Samples, sample_rate: int) -> None:
        if self._closed:
            return
        for frame in self._chunker.feed(samples, sample_rate):
            self._frames.append(frame)
            if len(self._frames) > self._max_frames:
                self._frames.popleft()
                self.dropped += 1
        if self._frames:
            self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    def __aiter__(self) -> FrameSink:
        return self

    async def __anext__(self) -> Samples:
        while not self._frames:
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._frames.popleft()


class LevelMeter(AudioSink):
    """RMS level of the most recent ``window_ms`` of received audio."""

    def __init__(self, *, window_ms: int = 300) -> None:
        self.window_ms = window_ms
        self._window: collections.deque[Samples] = collections.deque()
        self._window_samples = 0
        self._rate = 0

    def write(self, samples: Samples, sample_rate: int) -> None:
        if sample_rate != self._rate:
            self._window.clear()
            self._window_samples = 0
            self._rate = sample_rate
        self._window.append(samples)
        self._window_samples += samples.size
        limit = sample_rate * self.window_ms // 1000
        while self._window_samples - self._window[0].size >= limit:
            self._window_samples -= self._window.popleft().size

    def _recent(self) -> Samples:
        if not self._window:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(list(self._window))

    @property
    def rms(self) -> float:
        """RMS relative to full scale (0.0-1.0)."""
        return rms(self._recent())

    @property
    def dbfs(self) -> float:
        """RMS in dBFS; :data:`~exotel_voice.media.analysis.SILENCE_DBFS` when nothing was heard."""
        recent = self._recent()
        return rms_dbfs(recent) if recent.size else SILENCE_DBFS


class DeviceSink(AudioSink):
    """Plays received audio on the default (or a chosen) output device via ``sounddevice``.

    ``device`` is ``None`` (the system default), a PortAudio index or name, or an
    :class:`~exotel_voice.audio.AudioDevice` (:func:`exotel_voice.audio.find_device`).
    :meth:`switch` moves the playing to another device in place: the new device is opened
    and takes over the same playout buffer, then the old one is closed.

    Received audio waits in a :class:`~exotel_voice.media.playout.PlayoutBuffer` that the
    sound card's callback pulls 20 ms at a time: a small depth that follows the arrival
    jitter, concealment (not zeros) when audio is late, gentle compression when it runs
    deep (see :mod:`exotel_voice.media.playout`).  :attr:`playout` has its stats.

    Raises:
        MediaError: if ``sounddevice`` (or PortAudio) is not installed (the message says
            ``pip install 'exotel-voice[audio]'``).
    """

    def __init__(self, device: Any = None, *, sample_rate: int = 48000) -> None:
        self._sd = import_sounddevice()
        self.device = device
        self.sample_rate = sample_rate
        #: The playout buffer between the session and the sound card.
        self.playout = PlayoutBuffer()
        self._lock = threading.Lock()
        self._left = np.zeros(0, dtype=np.int16)
        self._stream: Any = None
        # Which stream's callback plays: one being replaced by switch() plays silence.
        self._generation = 0
        self._closed = False

    def __repr__(self) -> str:
        device = getattr(self.device, "id", self.device)
        return f"<DeviceSink {device if device is not None else 'default'!r}>"

    def write(self, samples: Samples, sample_rate: int) -> None:
        if self._closed:
            return
        if self._stream is None:
            self._stream = self._open(self.device, self._generation)
        with self._lock:
            self.playout.push(samples, sample_rate)

    def fill(self, count: int) -> Samples:
        """The next ``count`` samples for the device (the sound card callback's work)."""
        size = samples_per_frame(self.sample_rate)
        with self._lock:
            parts = [self._left]
            have = self._left.size
            while have < count:
                frame = self.playout.pull(self.sample_rate)
                if frame is None:
                    frame = np.zeros(size, dtype=np.int16)
                parts.append(frame)
                have += frame.size
            data = np.concatenate(parts) if len(parts) > 1 else self._left
            self._left = data[count:]
        return data[:count]

    def _open(self, device: Any, generation: int) -> Any:
        from ..audio._backend import (  # noqa: PLC0415
            portaudio_lock,
            pulse_target,
            stream_closed,
            stream_opened,
        )
        from .sources import portaudio_target  # noqa: PLC0415

        size = samples_per_frame(self.sample_rate)

        def callback(outdata: Any, frames: int, time: Any, status: Any) -> None:
            if generation == self._generation:
                outdata[:, 0] = self.fill(frames)
            else:
                outdata.fill(0)

        target, pulse_name = portaudio_target(device, "sink")
        try:
            with portaudio_lock:  # a re-scan waits until this stream is counted
                with pulse_target("sink", pulse_name):
                    stream = self._sd.OutputStream(
                        device=target,
                        channels=1,
                        samplerate=self.sample_rate,
                        dtype="int16",
                        blocksize=size,
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
            raise MediaError(f"cannot open output device {self._label(device)}: {exc}") from exc
        return stream

    @staticmethod
    def _label(device: Any) -> str:
        return repr(getattr(device, "id", device) if device is not None else "default")

    @staticmethod
    def _close_stream(stream: Any) -> None:
        from ..audio._backend import stream_closed  # noqa: PLC0415

        try:
            stream.stop()
            stream.close()
        except Exception:  # a device that went away: the stream is gone either way
            pass
        finally:
            stream_closed()

    async def switch(self, device: Any) -> None:
        """Play on ``device`` from now on; what is buffered plays there (no renegotiation).

        Raises:
            MediaError: ``device`` cannot be opened; the previous device goes on playing.
        """
        if self._stream is None or self._closed:
            self.device = device
            return
        generation = self._generation + 1
        new = await asyncio.to_thread(self._open, device, generation)
        old, self._stream, self.device = self._stream, new, device
        self._generation = generation
        self._close_stream(old)

    def close(self) -> None:
        self._closed = True
        if self._stream is not None:
            self._generation += 1
            stream, self._stream = self._stream, None
            self._close_stream(stream)
