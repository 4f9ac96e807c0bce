"""Packet-loss concealment for PCM: a pitch-repeat in the spirit of ITU-T G.711 Appendix I.

Used where no codec concealment exists: G.711 (PCMU/PCMA) and G.722 on the lean receive
path (:mod:`exotel_voice.media.jitter`), and every playout buffer's underflow
(:mod:`exotel_voice.media.playout`).  Opus has its own (libopus PLC and in-band FEC).

How it works
------------
:class:`PitchConcealer` keeps the last :data:`HISTORY_MS` of good audio.  When a frame is
lost it

1. estimates the pitch period of the recent history: the lag between 2.5 and 15 ms
   (400 to 67 Hz) with the highest normalised cross-correlation between the last
   :data:`CORRELATION_MS` and the audio one lag earlier (searched on a decimated copy above
   8 kHz, refined at the full rate);
2. repeats the last pitch period, from its start (each loss afresh), whose end is
   overlap-added (a quarter of a period) with the audio just before it, so the loop has no
   click at its seam; after the first 10 ms of a loss the loop grows to two, then three
   periods (a single period repeated for long sounds buzzy);
3. attenuates: full level for the first 10 ms, then :data:`FADE_PER_10_MS` (5 %) less per
   10 ms, silence after :data:`MAX_CONCEAL_MS` (200 ms, the lean receive path's longest
   concealed run); slower than Appendix I's 20 % per 10 ms and silence at 60 ms, which
   left a burst of three lost frames mostly silent (see "Measured"); and when the caller
   already has the good audio that follows the lost frame (``conceal(count,
   following)``: the lean receive path has it when that packet is the one that showed
   the hole, for G.711), fades to that audio's level over the frame if it is quieter,
   so a word that ended inside the lost frame is not drawn out at full voice (never
   louder: an onset cannot be guessed);
4. when good audio comes back, merges: the first quarter period of the good frame is
   faded in over the continued synthetic signal.

It is pure numpy with no state but its history, so it can be tested sample by sample.

Measured
--------
``bench/_plc_eval.py`` (offline, deterministic): the call-quality benchmark's speech
(8.7 s, espeak-ng) as PCMU 20 ms frames, lost by the impairment relay's draws, concealed
with the lean receive path's call sequence (the frame after a loss handed over as
``following`` when it is good), scored with PESQ nb.  ``zeros``: no concealment;
``c01e88c``: the concealer before the changes below:

============================  =====  =======  =====
pattern                       zeros  c01e88c  now
============================  =====  =======  =====
2 % random (the bench's)      3.566  3.383    3.654
2 % random, 5 other seeds     3.258  3.369    3.516
5 % bursty, burst 3 (bench's) 2.544  2.678    2.910
5 % bursty, 5 other seeds     2.425  2.822    3.015
10 % random                   1.816  2.170    2.452
============================  =====  =======  =====

(rows of several seeds are means).  What changed, each kept for raising these scores:

* a loss's repeat used to start at the phase the previous loss's loop had stopped at (a
  jump in the waveform where the loss starts, and the wrong part of the period);
* the merge into the good frame lasted up to 10 ms more than a quarter period, mixing the
  repeat with speech that had moved out of phase with it;
* ``following``: on the bench's 2 % pattern silence scored above the repeat, nearly all
  of it from one frame in which a word ended: the repeat drew it out at full voice
  (3.433 -> 3.654 with the fade to the next frame's level);
* the fade: Appendix I's 20 % per 10 ms, silent at 60 ms, left most of a burst of three
  lost frames silent; 5 % per 10 ms up to 200 ms scored best of the schedules tried
  (10-20 % per 10 ms, 60-200 ms), bursts 2.71 -> 2.91 on the bench's pattern, 2 % random
  unchanged.

Also tried, and left out for lowering PESQ on these patterns: fading out the step between
the last sample heard and the repeat's first, a merge shifted to the phase best matching
the good frame.  The pitch search scores every lag at once (numpy), which halved the
cost: about 150 us per concealed 8 kHz frame on the benchmark machine, from 240.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .pcm import Samples


__all__ = [
    "CORRELATION_MS",
    "FADE_PER_10_MS",
    "HISTORY_MS",
    "MAX_CONCEAL_MS",
    "PitchConcealer",
    "find_pitch",
]

#: Audio kept for the pitch search and the repeat.
HISTORY_MS = 60.0
#: Window compared in the pitch search.
CORRELATION_MS = 20.0
#: After this long a loss is concealed with silence.
MAX_CONCEAL_MS = 200.0
#: Attenuation per 10 ms of loss after the first 10 ms (G.711 Appendix I: 0.2, silent at
#: 60 ms; see "Measured" for why slower).
FADE_PER_10_MS = 0.05
_MIN_PITCH_MS = 2.5
_MAX_PITCH_MS = 15.0
_TIE = 1e-9

Floats = npt.NDArray[np.float64]


def find_pitch(history: Floats, sample_rate: int, *, max_lag: int | None = None) -> int:
    """The lag (samples) of ``history``'s strongest periodicity between 2.5 and 15 ms.

    ``max_lag`` caps the search (a caller that wants a period it can remove from a short
    buffer).  A history too short for the search gives the shortest lag allowed.
    """
    low = max(1, int(sample_rate * _MIN_PITCH_MS / 1000))
    high = int(sample_rate * _MAX_PITCH_MS / 1000)
    if max_lag is not None:
        high = min(high, max_lag)
    window = int(sample_rate * CORRELATION_MS / 1000)
    if high < low:
        return low
    if history.size < window + high:
        window = history.size - high
        if window < low:
            return low
    step = max(1, sample_rate // 8000)
    best = _search(history[-(window + high):], low, high, window, step)
    if step > 1:  # refine at the full rate around the coarse lag
        best = _search(history[-(window + high):], max(low, best - step), min(high, best + step),
                       window, 1)
    return best


def _search(x: Floats, low: int, high: int, window: int, step: int) -> int:
    if step > 1:
        # Average each block of ``step`` samples: a cheap low-pass before decimating.
        trim = x.size - x.size % step
        x = x[x.size - trim :].reshape(-1, step).mean(axis=1)
        low, high, window = max(1, low // step), max(1, high // step), max(1, window // step)
    if x.size < window + low:
        return low * step
    high = min(high, x.size - window)
    target = x[-window:]
    # Row i: the window ``low + i`` samples back (every lag at once, no Python loop).
    frames = np.lib.stride_tricks.sliding_window_view(x[: x.size - low], window)
    others = frames[x.size - low - window - (high - low) :][::-1]
    energy = np.einsum("ij,ij->i", others, others)
    dots = others @ target
    scores = np.full(energy.size, -np.inf)
    valid = energy > 0.0
    scores[valid] = dots[valid] / np.sqrt(energy[valid])
    if not valid.any():
        return low * step
    # The shortest lag scoring as well as the best (to rounding): a multiple of the
    # period scores the same on a steady signal.
    best = float(scores.max())
    best_lag = low + int(np.flatnonzero(scores >= best - abs(best) * _TIE)[0])
    return best_lag * step


class PitchConcealer:
    """Conceals lost frames of one mono stream by pitch repetition (see module doc).

    Feed every good frame through :meth:`good` (it returns the frame, merged with the
    concealment if one was in progress) and ask :meth:`conceal` for each lost frame.

    Args:
        sample_rate: the stream's rate.
    """

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._history: Samples = np.zeros(0, dtype=np.int16)
        self._keep = int(sample_rate * HISTORY_MS / 1000)
        self._ten_ms = sample_rate // 100
        self._lost = 0  # samples concealed in the current loss
        self._pitch = 0
        self._loop = np.zeros(0, dtype=np.float64)
        self._periods = 0
        self._position = 0
        self._end_gain = 1.0  # the level the last concealed frame ended at (following)
        #: Samples produced by :meth:`conceal` so far.
        self.concealed_samples = 0
        #: Losses (runs of consecutive concealed frames) so far.
        self.events = 0

    @property
    def concealing(self) -> bool:
        """Whether the last frame was a concealed one."""
        return self._lost > 0

    def reset(self) -> None:
        """Forget the history (a new stream)."""
        self._history = np.zeros(0, dtype=np.int16)
        self._lost = 0
        self._end_gain = 1.0

    def good(self, samples: Samples) -> Samples:
        """Take one good frame; return it (faded in over the concealment after a loss)."""
        out = samples
        if self._lost and samples.size:
            # A quarter period: the repeat and the returning speech are not in phase, so
            # a longer cross-fade partly cancels them (see the module doc's figures).
            merge = max(1, min(samples.size, self._pitch // 4))
            synthetic = self._synthesize(merge) * self._end_gain
            fade = (np.arange(1, merge + 1, dtype=np.float64) / (merge + 1))
            mixed = samples[:merge] * fade + synthetic * (1.0 - fade)
            out = samples.copy()
            out[:merge] = np.clip(np.rint(mixed), -32768, 32767).astype(np.int16)
        self._lost = 0
        self._end_gain = 1.0
        self._remember(out)
        return out

    def conceal(self, count: int, following: Samples | None = None) -> Samples:
        """``count`` samples standing in for lost audio (silence if nothing was heard yet).

        ``following``: the good audio that comes right after the lost frame, when the
        receiver already has it (the packet that showed the hole).  The repeat then fades
        to that audio's level over the frame when it is quieter (a word that ended inside
        the lost frame is not drawn out at full voice); it is never made louder.
        """
        if count <= 0:
            return np.zeros(0, dtype=np.int16)
        self.concealed_samples += count
        if self._lost == 0:
            self.events += 1
            if self._history.size < self._ten_ms:
                self._pitch = 0
            else:
                self._pitch = find_pitch(self._history.astype(np.float64), self.sample_rate)
                # Each loss repeats from the start of the last period heard (the phase a
                # previous loss's loop had reached means nothing for this audio).
                self._periods = self._position = 0
                self._set_loop(1)
        if self._pitch == 0:
            self._lost += count
            return np.zeros(count, dtype=np.int16)
        start_gain = self._end_gain
        out = self._synthesize(count, advance=True) * start_gain
        if following is not None and following.size:
            head = following[: self._ten_ms].astype(np.float64)
            wanted = float(np.sqrt(np.mean(head * head)))
            level = float(np.sqrt(np.mean(out * out)))
            if level > 0.0 and wanted < level:
                self._end_gain = start_gain * wanted / level
                out *= np.linspace(1.0, self._end_gain / start_gain, count)
        result = np.clip(np.rint(out), -32768, 32767).astype(np.int16)
        return result

    # -- internals ------------------------------------------------------------------------

    def _remember(self, samples: Samples) -> None:
        if samples.size >= self._keep:
            self._history = samples[-self._keep :].copy()
        else:
            self._history = np.concatenate([self._history[samples.size - self._keep :], samples])

    def _set_loop(self, periods: int) -> None:
        """The loop of the last ``periods`` pitch periods, its seam overlap-added."""
        pitch = self._pitch
        length = min(periods * pitch, self._history.size)
        quarter = max(1, pitch // 4)
        history = self._history.astype(np.float64)
        loop = history[-length:].copy()
        before = history[-length - quarter : -length]
        if before.size == quarter:
            fade = np.arange(1, quarter + 1, dtype=np.float64) / (quarter + 1)
            loop[-quarter:] = loop[-quarter:] * (1.0 - fade) + before * fade
        if self._periods and self._loop.size:
            # Switching loops: keep the phase within a period, so the signal goes on.
            self._position %= pitch
        self._loop = loop
        self._periods = periods

    def _gain(self, lost: Floats) -> Floats:
        """Level at each sample ``lost`` samples into the loss."""
        ms = lost * 1000.0 / self.sample_rate
        fade = FADE_PER_10_MS / 10.0
        return np.clip(1.0 - fade * np.maximum(ms - 10.0, 0.0), 0.0, 1.0) * (ms < MAX_CONCEAL_MS)

    def _synthesize(self, count: int, *, advance: bool = False) -> Floats:
        if self._pitch == 0 or self._loop.size == 0:
            if advance:
                self._lost += count
            return np.zeros(count, dtype=np.float64)
        out = np.empty(count, dtype=np.float64)
        done = 0
        lost, position = self._lost, self._position
        while done < count:
            # Grow the loop at each 10 ms boundary of the loss (1, 2, then 3 periods).
            wanted = min(3, 1 + lost // self._ten_ms)
            if advance and wanted != self._periods:
                self._position = position
                self._set_loop(wanted)
                position = self._position
            span = min(count - done, self._ten_ms - lost % self._ten_ms)
            index = (position + np.arange(span)) % self._loop.size
            out[done : done + span] = self._loop[index]
            out[done : done + span] *= self._gain(lost + np.arange(span, dtype=np.float64))
            position = (position + span) % self._loop.size
            lost += span
            done += span
        if advance:
            self._lost, self._position = lost, position
        return out
