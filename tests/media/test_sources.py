"""Sources without a network: the tone's precomputed cycle against direct computation."""

from __future__ import annotations

import numpy as np
import pytest

from exotel_voice.media import ToneSource


def direct(frequency: float, amplitude: float, rate: int, count: int) -> np.ndarray:
    i = np.arange(count)
    return (np.sin(2 * np.pi * frequency * i / rate) * amplitude * 32767.0).astype(np.int16)


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
@pytest.mark.parametrize(("frequency", "cycle"), [(700, 1), (440, 5), (1000, 1), (433, 50)])
def test_tone_cycle_matches_direct_computation(frequency: int, cycle: int, rate: int) -> None:
    tone = ToneSource(frequency, 0.3)
    n = rate // 50
    frames = [tone.read(rate) for _ in range(2 * cycle + 3)]
    assert tone._cycles[rate] is not None and tone._cycles[rate][1] == cycle  # type: ignore[index]
    got = np.concatenate(frames)  # type: ignore[arg-type]
    want = direct(frequency, 0.3, rate, got.size)
    # The first cycle is the direct computation itself; later cycles repeat it exactly,
    # where direct computation of large indices differs only by float rounding.
    assert np.array_equal(got[: cycle * n], want[: cycle * n])
    assert np.abs(got.astype(np.int32) - want).max() <= 1
    assert all(not f.flags.writeable for f in frames)  # type: ignore[union-attr]


def test_tone_without_a_short_cycle_is_computed_per_frame() -> None:
    tone = ToneSource(441.3, 0.5)
    frames = [tone.read(48000) for _ in range(60)]
    assert tone._cycles[48000] is None
    got = np.concatenate(frames)  # type: ignore[arg-type]
    assert np.abs(got.astype(np.int32) - direct(441.3, 0.5, 48000, got.size)).max() <= 1


def test_tone_keeps_its_phase_across_a_rate_change_and_finishes() -> None:
    tone = ToneSource(440, 0.5, duration=0.1)
    for _ in range(3):
        tone.read(8000)
    fourth = tone.read(48000)
    assert fourth is not None
    assert np.array_equal(fourth, direct(440, 0.5, 48000, 4 * 960)[3 * 960 :])
    assert tone.read(48000) is not None and not tone.finished
    assert tone.read(48000) is None and tone.finished
