"""libopus through ctypes (media/opus.py): round trips, rates, bad input, and that it
interoperates with PyAV's libopus both ways (the same bitstream a browser sees)."""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest

from exotel_voice.media import opus
from exotel_voice.media.codecs import PyAvDecoder
from exotel_voice.media.opus import OpusDecoder, OpusEncoder, OpusError
from exotel_voice.media.sender import _PyAvEncoder


def tone(frequency: float, seconds: float, rate: int = 48000, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * frequency * t) * level * 32767).astype(np.int16)


def frames(samples: np.ndarray, size: int = 960) -> list[np.ndarray]:
    return [samples[i : i + size] for i in range(0, samples.size - size + 1, size)]


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(samples.size)))
    return float(np.argmax(spectrum) * rate / samples.size)


def test_library_loads_and_reports_a_version() -> None:
    assert opus.load() is not None
    assert (opus.version() or "").startswith("libopus 1.")


@pytest.mark.parametrize("complexity", [0, 5, 10])
def test_round_trip_keeps_the_tone(complexity: int) -> None:
    encoder, decoder = OpusEncoder(48000, complexity), OpusDecoder(48000)
    packets = [encoder.encode(f) for f in frames(tone(1000, 0.5))]
    assert all(0 < len(p) < 400 for p in packets)  # 48 kbit/s: ~120 bytes per 20 ms
    decoded = np.concatenate([decoder.decode(p) for p in packets])
    assert decoded.dtype == np.int16 and decoded.size == 24000
    tail = decoded[4800:]
    assert abs(dominant_hz(tail, 48000) - 1000) < 10
    assert 0.2 * 32767 < np.abs(tail).max() < 0.4 * 32767


def test_decodes_straight_to_a_lower_rate() -> None:
    encoder, decoder = OpusEncoder(), OpusDecoder(16000)
    decoded = np.concatenate([decoder.decode(encoder.encode(f)) for f in frames(tone(700, 0.4))])
    assert decoded.size == 16000 * 0.4
    assert abs(dominant_hz(decoded[1600:], 16000) - 700) < 10


def test_decoded_arrays_are_not_reused() -> None:
    encoder, decoder = OpusEncoder(), OpusDecoder()
    first = decoder.decode(encoder.encode(tone(500, 0.02)))
    kept = first.copy()
    decoder.decode(encoder.encode(np.zeros(960, np.int16)))
    assert np.array_equal(first, kept)  # a sink may keep what it was given


def test_bad_input() -> None:
    decoder = OpusDecoder()
    assert decoder.decode(b"").size == 0
    assert decoder.decode(b"\xff\xff\xff").size <= 5760  # no exception
    encoder = OpusEncoder()
    with pytest.raises(ValueError, match="frame of 100 samples"):
        encoder.encode(np.zeros(100, np.int16))
    with pytest.raises(OpusError):
        OpusEncoder(complexity=11)
    with pytest.raises(OpusError):
        OpusDecoder(44100)
    # Non-int16 or strided input is converted, not misread.
    wide = tone(1000, 0.02).astype(np.int32)
    assert len(encoder.encode(wide)) > 0
    assert len(encoder.encode(np.repeat(tone(1000, 0.02), 2)[::2])) > 0


def test_interoperates_with_pyav_libopus_both_ways() -> None:
    source = frames(tone(1200, 0.4))
    ours_to_pyav, encoder = PyAvDecoder("libopus", 48000), OpusEncoder()
    decoded = np.concatenate([ours_to_pyav.decode(encoder.encode(f)) for f in source])
    assert abs(dominant_hz(decoded[4800:], 48000) - 1200) < 10
    pyav = _PyAvEncoder("libopus", 48000, 48000)
    ours = OpusDecoder()
    decoded = np.concatenate([ours.decode(pyav.encode(f)) for f in source])
    assert abs(dominant_hz(decoded[4800:], 48000) - 1200) < 10
    # And a stereo browser-style stream decodes to mono.
    stereo = av.CodecContext.create("libopus", "w")
    stereo.format = "s16"  # type: ignore[attr-defined]
    stereo.layout = "stereo"  # type: ignore[attr-defined]
    stereo.sample_rate = 48000  # type: ignore[attr-defined]
    stereo.time_base = fractions.Fraction(1, 48000)  # type: ignore[attr-defined]
    out = []
    for i, f in enumerate(source):
        frame = av.AudioFrame.from_ndarray(
            np.repeat(f, 2).reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate, frame.pts = 48000, i * 960
        frame.time_base = fractions.Fraction(1, 48000)
        out += [ours.decode(bytes(p)) for p in stereo.encode(frame)]  # type: ignore[attr-defined]
    assert {chunk.size for chunk in out} == {960}
    assert abs(dominant_hz(np.concatenate(out)[4800:], 48000) - 1200) < 10
