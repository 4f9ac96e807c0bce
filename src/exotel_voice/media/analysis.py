"""Small signal-analysis helpers for 16-bit PCM audio.

Used by tests, the demo and voice bots: RMS level, dBFS, Goertzel tone power and a
dominant-frequency estimate. All functions take mono ``int16`` samples (a numpy
array or raw little-endian bytes) and never touch the media stack.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt


__all__ = [
    "SILENCE_DBFS",
    "as_samples",
    "detect_tone",
    "dominant_frequency",
    "goertzel_power",
    "rms",
    "rms_dbfs",
]

#: The level reported for digital silence (an all-zero or empty signal).
SILENCE_DBFS = -120.0

Pcm = npt.NDArray[np.int16] | bytes | bytearray | memoryview


def as_samples(pcm: Pcm) -> npt.NDArray[np.float64]:
    """Return ``pcm`` as float samples scaled to [-1.0, 1.0)."""
    if isinstance(pcm, (bytes, bytearray, memoryview)):
        array = np.frombuffer(pcm, dtype="<i2")
    else:
        array = np.asarray(pcm)
        if array.dtype != np.int16:
            raise TypeError(f"expected int16 samples, got {array.dtype}")
    return array.astype(np.float64).reshape(-1) / 32768.0


def rms(pcm: Pcm) -> float:
    """Root-mean-square level of ``pcm`` relative to full scale (0.0 to 1.0)."""
    samples = as_samples(pcm)
    if samples.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(samples * samples)))


def rms_dbfs(pcm: Pcm) -> float:
    """RMS level in dBFS (a full-scale square wave is 0 dBFS, a full-scale sine about -3).

    Digital silence gives :data:`SILENCE_DBFS`.
    """
    level = rms(pcm)
    if level <= 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 20.0 * math.log10(level))


def goertzel_power(pcm: Pcm, sample_rate: int, frequency: float) -> float:
    """Power of ``frequency`` in ``pcm``, normalised so a full-scale sine gives about 0.25.

    This is the Goertzel algorithm: one DFT bin at exactly ``frequency``, which is
    cheaper than an FFT when only a few frequencies matter (DTMF, test tones).
    """
    samples = as_samples(pcm)
    n = samples.size
    if n == 0:
        return 0.0
    coeff = 2.0 * math.cos(2.0 * math.pi * frequency / sample_rate)
    s_prev = 0.0
    s_prev2 = 0.0
    for x in samples.tolist():
        s = x + coeff * s_prev - s_prev2
        s_prev2 = s_prev
        s_prev = s
    power = s_prev2 * s_prev2 + s_prev * s_prev - coeff * s_prev * s_prev2
    return max(0.0, power) / (n * n)


def detect_tone(
    pcm: Pcm, sample_rate: int, frequency: float, *, min_ratio: float = 0.5
) -> bool:
    """Whether ``frequency`` carries at least ``min_ratio`` of the signal's power.

    A pure tone at ``frequency`` gives a ratio near 1.0; silence gives ``False``.
    """
    level = rms(pcm)
    if level == 0.0:
        return False
    tone = goertzel_power(pcm, sample_rate, frequency)
    # A sine of amplitude A has RMS^2 = A^2 / 2 and Goertzel power A^2 / 4.
    return 2.0 * tone / (level * level) >= min_ratio


def dominant_frequency(pcm: Pcm, sample_rate: int) -> float:
    """The frequency (Hz) with the most energy in ``pcm``, ignoring DC.

    Uses a Hann-windowed FFT with parabolic interpolation between bins, so a
    second of audio resolves a steady tone to well under 1 Hz. Returns 0.0 for
    silence or fewer than four samples.
    """
    samples = as_samples(pcm)
    n = samples.size
    if n < 4 or not np.any(samples):
        return 0.0
    window = np.hanning(n)
    spectrum = np.abs(np.fft.rfft((samples - samples.mean()) * window))
    spectrum[0] = 0.0
    peak = int(np.argmax(spectrum))
    offset = 0.0
    if 0 < peak < spectrum.size - 1:
        left, centre, right = (math.log(v + 1e-12) for v in spectrum[peak - 1 : peak + 2])
        denominator = left - 2.0 * centre + right
        if denominator != 0.0:
            offset = 0.5 * (left - right) / denominator
    return (peak + offset) * sample_rate / n
