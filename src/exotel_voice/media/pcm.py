"""PCM plumbing shared by sources, sinks and the session: the one place that touches PyAV.

Inside the media layer audio is always mono signed 16-bit samples in a numpy array
(``Samples``) plus a sample rate. These typed helpers convert to and from PyAV's
untyped ``AudioFrame`` and resample between rates with libswresample.
"""

from __future__ import annotations

import fractions
from typing import Any

import av
import numpy as np
import numpy.typing as npt


__all__ = [
    "FRAME_MS",
    "Resampler",
    "Samples",
    "frame_to_samples",
    "samples_per_frame",
    "samples_to_frame",
    "to_samples",
]

#: Packetisation interval of every frame the media layer produces, in milliseconds.
FRAME_MS = 20

Samples = npt.NDArray[np.int16]


def samples_per_frame(sample_rate: int) -> int:
    """Number of samples in one :data:`FRAME_MS` frame at ``sample_rate``."""
    return sample_rate * FRAME_MS // 1000


def to_samples(pcm: Samples | bytes | bytearray | memoryview) -> Samples:
    """Return mono int16 samples from a numpy array or little-endian bytes."""
    if isinstance(pcm, (bytes, bytearray, memoryview)):
        if len(pcm) % 2:
            raise ValueError("16-bit PCM needs an even number of bytes")
        return np.frombuffer(pcm, dtype="<i2").astype(np.int16)
    array = np.asarray(pcm)
    if array.dtype != np.int16:
        raise TypeError(f"expected int16 samples, got {array.dtype}")
    return array.reshape(-1)


def frame_to_samples(frame: Any) -> tuple[Samples, int]:
    """Convert a decoded PyAV ``AudioFrame`` to mono int16 samples and its rate.

    Stereo is mixed down by averaging; planar and packed layouts both work.
    """
    rate = int(frame.sample_rate)
    channels = len(frame.layout.channels)
    array = frame.to_ndarray()
    if frame.format.name not in ("s16", "s16p"):
        raise ValueError(f"unsupported sample format {frame.format.name}")
    if channels == 1:
        return array.reshape(-1).astype(np.int16, copy=False), rate
    if frame.format.is_planar:
        mixed = array.astype(np.int32).mean(axis=0)
    else:
        mixed = array.reshape(-1, channels).astype(np.int32).mean(axis=1)
    return mixed.astype(np.int16), rate


def samples_to_frame(samples: Samples, sample_rate: int, pts: int) -> Any:
    """Build a mono s16 PyAV ``AudioFrame`` with ``pts`` in 1/``sample_rate`` units."""
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = sample_rate
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, sample_rate)
    return frame


class Resampler:
    """Streaming mono int16 resampler (libswresample through PyAV).

    It keeps state between calls, so feed one continuous stream per instance.
    Output can lag input by a few milliseconds of filter delay.
    """

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._pts = 0
        self._resampler: Any = (
            None
            if from_rate == to_rate
            else av.AudioResampler(format="s16", layout="mono", rate=to_rate)
        )

    def resample(self, samples: Samples) -> Samples:
        """Resample one chunk; returns whatever output is ready."""
        if self._resampler is None or samples.size == 0:
            return samples
        frame = samples_to_frame(samples, self.from_rate, self._pts)
        self._pts += samples.size
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        if not out:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(out).astype(np.int16, copy=False)


def resample_all(samples: Samples, from_rate: int, to_rate: int) -> Samples:
    """Resample a whole signal at once, flushing the filter tail."""
    if from_rate == to_rate:
        return samples
    resampler = av.AudioResampler(format="s16", layout="mono", rate=to_rate)
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(
        samples_to_frame(samples, from_rate, 0))]
    out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    if not out:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate(out).astype(np.int16, copy=False)
