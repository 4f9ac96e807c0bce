"""Pitch-repeat concealment (media/plc.py): what a listener would get for a lost frame."""

from __future__ import annotations

import numpy as np
import pytest

from exotel_voice.media.plc import MAX_CONCEAL_MS, PitchConcealer, find_pitch


def voiced(rate: int, seconds: float = 1.0, f0: float = 150.0) -> np.ndarray:
    """A steady vowel-like signal: a 150 Hz fundamental and its harmonics."""
    t = np.arange(int(rate * seconds)) / rate
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8))
    return (x * 5000).astype(np.int16)


def level(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_pitch_of_a_voiced_signal(rate: int) -> None:
    x = voiced(rate, 0.1).astype(np.float64)
    assert find_pitch(x, rate) == pytest.approx(rate / 150, abs=1)


@pytest.mark.parametrize("rate", [8000, 16000])
def test_a_lost_frame_is_filled_like_its_neighbours_and_merged_smoothly(rate: int) -> None:
    x = voiced(rate)
    n = rate // 50
    plc = PitchConcealer(rate)
    out = []
    for i in range(20):
        frame = x[i * n : (i + 1) * n]
        out.append(plc.conceal(n) if i == 10 else plc.good(frame))
    y = np.concatenate(out)
    lost, original = y[10 * n : 11 * n], x[10 * n : 11 * n]
    # Not silence: about the level of the frames around it, and the same waveform.
    assert 0.8 < level(lost) / level(x[9 * n : 10 * n]) <= 1.05
    assert np.corrcoef(lost.astype(float), original.astype(float))[0, 1] > 0.9
    # No click where the concealment starts or where the real audio comes back.
    steps = np.abs(np.diff(y.astype(np.int32)))
    natural = np.abs(np.diff(x.astype(np.int32))).max()
    assert steps[10 * n - 2 : 11 * n + 2].max() <= 1.5 * natural
    assert plc.events == 1 and plc.concealed_samples == n
    assert np.array_equal(y[12 * n :], x[12 * n : 20 * n])  # later frames untouched


def test_a_long_loss_fades_to_silence_and_comes_back_faded_in() -> None:
    rate, n = 8000, 160
    x = voiced(rate)
    plc = PitchConcealer(rate)
    for i in range(5):
        plc.good(x[i * n : (i + 1) * n])
    frames = int(MAX_CONCEAL_MS / 20) + 1
    lost = [plc.conceal(n) for _ in range(frames)]
    assert level(lost[0]) > 0.9 * level(x[:n])
    # Attenuated after the first 10 ms, frame after frame, to silence past MAX_CONCEAL_MS.
    levels = [level(frame) for frame in lost]
    assert all(b < a for a, b in zip(levels[:-2], levels[1:-1], strict=True)), levels
    assert levels[4] < 0.7 * levels[0]  # 100 ms in
    assert not lost[-1].any()
    assert MAX_CONCEAL_MS <= 200
    back = plc.good(x[10 * n : 11 * n])
    assert abs(int(back[0])) < abs(int(x[10 * n])) or x[10 * n] == 0  # faded in
    assert np.array_equal(back[120:], x[10 * n + 120 : 11 * n])  # merged within 15 ms


def test_nothing_heard_yet_conceals_with_silence() -> None:
    plc = PitchConcealer(8000)
    assert not plc.conceal(160).any()
    assert plc.conceal(0).size == 0


def test_each_loss_starts_where_the_audio_stopped() -> None:
    # A second loss must start its repeat from the last period heard, not at the phase
    # the previous loss's loop had reached: that phase is unrelated to the new audio and
    # the listener hears a click where the loss starts.
    rate, n = 8000, 160
    x = voiced(rate, f0=140.0)
    plc = PitchConcealer(rate)
    out = []
    for i in range(20):
        frame = x[i * n : (i + 1) * n]
        out.append(plc.conceal(n) if i in (8, 14) else plc.good(frame))
    y = np.concatenate(out).astype(np.int32)
    natural = np.abs(np.diff(x.astype(np.int32))).max()
    for start in (8 * n, 14 * n):
        assert abs(y[start] - y[start - 1]) <= 1.5 * natural
        lost = y[start : start + n].astype(float)
        assert np.corrcoef(lost, x[start : start + n].astype(float))[0, 1] > 0.9
    assert plc.events == 2


def test_the_good_audio_is_back_within_a_quarter_period_after_a_loss() -> None:
    # The merge into the good frame is a quarter pitch period: a longer cross-fade mixes
    # the repeat with speech that has moved on (out of phase), which dips and smears the
    # first milliseconds of the returning audio (measured: PESQ, bench/_plc_eval.py).
    rate, n = 8000, 160
    x = voiced(rate)  # 150 Hz: a period of 53 samples
    plc = PitchConcealer(rate)
    for i in range(5):
        plc.good(x[i * n : (i + 1) * n])
    for _ in range(2):
        plc.conceal(n)
    back = plc.good(x[7 * n : 8 * n])
    assert not np.array_equal(back[:4], x[7 * n : 7 * n + 4])  # merged, not cut in
    assert np.array_equal(back[53 // 4 :], x[7 * n + 53 // 4 : 8 * n])


def test_a_word_that_ends_in_the_lost_frame_is_not_drawn_out_at_full_voice() -> None:
    """With the next frame at hand (the packet that showed the hole) the repeat fades to
    its level: loud voice, a lost frame, then near-silence."""
    rate, n = 8000, 160
    x = voiced(rate, 0.4)
    quiet = (voiced(rate, 0.02) * 0.02).astype(np.int16)  # -34 dB: the word has ended
    plc = PitchConcealer(rate)
    for i in range(10):
        plc.good(x[i * n : (i + 1) * n])
    lost = plc.conceal(n, quiet)
    back = plc.good(quiet)
    # Starts as the repeat, ends near the quiet frame's level, and the merge stays there.
    assert level(lost[:20]) > 0.5 * level(x[:n])
    assert level(lost[-20:]) < 0.15 * level(x[:n])
    assert level(back) < 2.0 * level(quiet)
    # Without it: the repeat at full voice to the end of the frame (as before).
    blind = PitchConcealer(rate)
    for i in range(10):
        blind.good(x[i * n : (i + 1) * n])
    assert level(blind.conceal(n)[-20:]) > 0.5 * level(x[:n])


def test_a_louder_next_frame_does_not_make_the_repeat_louder() -> None:
    rate, n = 8000, 160
    x = (voiced(rate, 0.4) // 4).astype(np.int16)
    plc, blind = PitchConcealer(rate), PitchConcealer(rate)
    for i in range(10):
        plc.good(x[i * n : (i + 1) * n])
        blind.good(x[i * n : (i + 1) * n])
    loud = voiced(rate, 0.02)
    assert np.array_equal(plc.conceal(n, loud), blind.conceal(n))
