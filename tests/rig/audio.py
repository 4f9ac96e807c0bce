"""Test audio: write tone WAV files and find tones in recordings (numpy only).

Example::

    write_tone_wav(path, 440.0, rate=8000, seconds=10)        # PCMU source for baresip
    rate, samples = read_wav(recording)
    assert abs(dominant_frequency(samples, rate) - 440) < 10
    assert tone_ratio(samples, rate, 440) > 0.5                # most energy is the tone
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt


FloatArray = npt.NDArray[np.float64]


def tone(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> FloatArray:
    """A sine of ``freq`` Hz as floats in [-1, 1]."""
    t = np.arange(int(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def write_wav(path: Path, samples: FloatArray, rate: int) -> Path:
    """Write mono 16-bit PCM (what baresip's aufile reads; it does not resample)."""
    pcm = np.clip(np.asarray(samples) * 32767.0, -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def write_tone_wav(
    path: Path, freq: float, rate: int = 8000, seconds: float = 10.0, amplitude: float = 0.5
) -> Path:
    """Write a mono 16-bit WAV of a ``freq`` Hz tone (8000 Hz for PCMU/PCMA, 48000 for Opus)."""
    return write_wav(path, tone(freq, rate, seconds, amplitude), rate)


def read_wav(path: Path) -> tuple[int, FloatArray]:
    """Read a 16-bit PCM WAV; returns ``(rate, samples in [-1, 1])``, channels averaged."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM is supported")
        rate, channels = w.getframerate(), w.getnchannels()
        raw = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    if channels > 1:
        raw = raw.reshape(-1, channels).mean(axis=1)
    return rate, raw / 32768.0


def goertzel_power(samples: FloatArray, rate: int, freq: float) -> float:
    """Mean power of ``samples`` at ``freq`` (Goertzel), comparable with :func:`rms` ** 2.

    A full-scale sine of amplitude A gives about A**2 / 2, like its mean square.
    """
    x = np.asarray(samples, dtype=np.float64)
    n = len(x)
    if n == 0:
        return 0.0
    k = freq * n / rate
    coeff = 2.0 * np.cos(2.0 * np.pi * k / n)
    s1 = s2 = 0.0
    for v in x:
        s0 = v + coeff * s1 - s2
        s2, s1 = s1, s0
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return float(2.0 * power / (n * n))


def rms(samples: FloatArray) -> float:
    x = np.asarray(samples, dtype=np.float64)
    return float(np.sqrt(np.mean(x * x))) if len(x) else 0.0


def tone_ratio(samples: FloatArray, rate: int, freq: float) -> float:
    """Share of the signal's power that is at ``freq`` (about 1.0 for a clean tone)."""
    total = rms(samples) ** 2
    return goertzel_power(samples, rate, freq) / total if total > 0 else 0.0


def dominant_frequency(samples: FloatArray, rate: int) -> float:
    """Frequency (Hz) of the strongest FFT bin, ignoring DC; Hann-windowed."""
    x = np.asarray(samples, dtype=np.float64)
    if len(x) < 16:
        raise ValueError("too few samples")
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    spectrum[0] = 0.0
    return float(np.argmax(spectrum) * rate / len(x))


def active_segment(samples: FloatArray, threshold: float = 0.01) -> FloatArray:
    """``samples`` without leading and trailing near-silence (e.g. before media started)."""
    x = np.asarray(samples, dtype=np.float64)
    loud = np.flatnonzero(np.abs(x) > threshold)
    return x[loud[0] : loud[-1] + 1] if len(loud) else x[:0]
