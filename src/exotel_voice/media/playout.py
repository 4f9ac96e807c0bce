"""The playout buffer: one policy for every place that plays received audio out on a clock.

Audio arrives in bursts (a network's jitter, a jitter buffer releasing a hole) and is
consumed at a fixed rate by a clock that does not wait: a sound card's callback
(:class:`~exotel_voice.media.sinks.DeviceSink`), or the 20 ms send clock of another
call when the sandbox relays one leg's audio to the other
(:class:`~exotel_voice.sandbox.numbers.RelayBuffer`).  :class:`PlayoutBuffer` sits
between the two.

Policy
------
* **Target depth from the arrival pattern.**  Each pushed chunk's *transit* is its arrival
  time minus its media time (samples pushed so far / rate); its *relative delay* is the
  transit minus the smallest transit of the last :data:`ARRIVAL_WINDOW` chunks.  The
  target depth is the :data:`DEPTH_QUANTILE` quantile of those delays (the same measure
  as the lean receive path's reorder wait, :mod:`exotel_voice.media.jitter`), never below
  ``min_depth_ms``; it grows at once and shrinks by at most :data:`SHRINK_PER_SECOND`.
  Only chunks pushed while playing count: the window starts afresh each time playing
  starts, so a start-up burst, or the first audio after the far end went quiet (whose
  media time does not know about the gap), is not taken for jitter.
* **Prefetch.**  Playing starts (and restarts after a long gap) once ``target`` plus one
  frame is buffered; until then :meth:`PlayoutBuffer.pull` returns ``None`` (silence).
* **Underflow plays concealment, not zeros**: a pitch repeat of what was just played
  (:mod:`exotel_voice.media.plc`), fading slowly (5 % per 10 ms), merged into the audio that
  arrives next.  The late audio is then played after it, so an underflow makes the buffer
  one frame deeper: that is how the depth grows to what the jitter needs.  After
  :data:`RESTART_AFTER_MS` of underflow (the far end went quiet: hold, DTX) the buffer goes
  back to prefetching.
* **Too deep: compress gently.**  What is compared with the target is the *playout
  delay*: how much later than the fastest recent arrival the audio pulled is played
  (the depth left after the pull plus the time since that media would have arrived on
  the fastest path).  The depth itself swings with each chunk's own lateness (shallow
  after a late chunk, deep after an early one) while the playout delay stays put, so
  holding the depth's low point above the target would count the jitter twice.  When
  the playout delay stayed above ``target + HYSTERESIS_MS`` for a whole
  :data:`COMPRESS_WINDOW` of pulls, one pitch period (at most 15 ms, and never more
  than is buffered) is cut out of the next frame, its ends cross-faded (the frame
  keeps its length, the listener hears the same sound slightly shorter).  Above
  ``max_depth_ms`` the oldest audio is dropped outright.
* **Why the 99th percentile and half a second.**  Depth comes back only a whole frame at
  a time (an underflow), but goes by a pitch period per compression.  With the target at
  the 95th percentile and a 0.2 s window, one late frame in twenty underflowed, the frame
  of depth it added was cut out again a fraction of a second later, and the next late
  frame underflowed again: under 20 +- 15 ms of jitter with 2 % loss the buffer cut
  170-270 ms of speech in 20 s and concealed as much, and lost 0.7-1.2 PESQ.  Covering
  the 99th percentile and compressing only after 0.5 s of excess stops that churn; the
  average depth stayed the same or fell in the replayed calls (fewer underflows to add
  depth).

The buffer is pure logic with the clock injected (``clock``), so it is tested without a
loop or a sound card.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .pcm import FRAME_MS, Resampler, Samples
from .plc import PitchConcealer, find_pitch


__all__ = [
    "ARRIVAL_WINDOW",
    "COMPRESS_WINDOW",
    "DEPTH_QUANTILE",
    "HYSTERESIS_MS",
    "RESTART_AFTER_MS",
    "SHRINK_PER_SECOND",
    "PlayoutBuffer",
    "PlayoutStats",
]

#: Pushed chunks whose arrival times the target looks at (about 5 s of 20 ms frames).
ARRIVAL_WINDOW = 250
#: Quantile of the relative arrival delays the target depth covers.
DEPTH_QUANTILE = 0.99
#: Fastest the target shrinks, in ms of depth per second.
SHRINK_PER_SECOND = 20.0
#: Playout delay above the target tolerated before compressing, ms.
HYSTERESIS_MS = 15.0
#: Pulls (20 ms each) the buffer must stay too deep for before one compression (0.5 s).
COMPRESS_WINDOW = 25
#: Underflow longer than this (ms) goes back to prefetching.
RESTART_AFTER_MS = 100.0
_MAX_CUT_MS = 15.0
_RECOMPUTE_EVERY = 5


@dataclass(frozen=True)
class PlayoutStats:
    """What a playout buffer did so far."""

    #: Audio buffered now, ms (the delay the buffer adds).
    depth_ms: float
    #: The depth the arrival pattern calls for, ms.
    target_ms: float
    #: Samples of concealment played on underflow (at the buffer's input rate).
    concealed_samples: int
    #: Underflows (runs of consecutive concealed frames).
    concealment_events: int
    #: Samples removed by compression or dropped above the maximum depth.
    removed_samples: int
    #: Chunks pushed and frames pulled.
    chunks_in: int
    frames_out: int


class PlayoutBuffer:
    """A clocked playout buffer (see module doc): ``push`` audio in, ``pull`` 20 ms frames.

    Args:
        min_depth_ms: floor of the target depth.
        max_depth_ms: audio beyond this is dropped (oldest first).
        clock: arrival time source, seconds (``time.monotonic`` by default).
    """

    def __init__(
        self,
        *,
        min_depth_ms: float = 10.0,
        max_depth_ms: float = 200.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= min_depth_ms <= max_depth_ms:
            raise ValueError(
                f"playout depths must satisfy 0 <= min_depth_ms <= max_depth_ms, "
                f"got {min_depth_ms} and {max_depth_ms}"
            )
        self.min_depth_ms = min_depth_ms
        self.max_depth_ms = max_depth_ms
        self._clock = clock
        self._rate: int | None = None
        self._fifo: Samples = np.zeros(0, dtype=np.int16)
        self._concealer: PitchConcealer | None = None
        self._out: Resampler | None = None
        self._pending: Samples = np.zeros(0, dtype=np.int16)
        self._transits: collections.deque[float] = collections.deque(maxlen=ARRIVAL_WINDOW)
        self._media_time = 0.0
        self._min_transit = float("inf")
        self._since_recompute = 0
        self._target_ms = min_depth_ms
        self._target_at: float | None = None
        self._playing = False
        self._underflow_ms = 0.0
        self._low_ms = float("inf")
        self._low_pulls = 0
        self.removed_samples = 0
        self.chunks_in = 0
        self.frames_out = 0

    # -- the producer -----------------------------------------------------------------------

    def push(self, samples: Samples, sample_rate: int) -> None:
        """Add received audio (any length, mono int16); a new rate starts afresh."""
        if samples.size == 0:
            return
        now = self._clock()
        if sample_rate != self._rate:
            self._reset(sample_rate)
        self.chunks_in += 1
        self._fifo = np.concatenate([self._fifo, samples]) if self._fifo.size else samples.copy()
        # Arrival pattern: when this chunk's first sample arrived against its media time.
        # Only while playing: what arrives before (a start-up burst, the first audio after
        # the far end went quiet) cannot come too late, and its timing against the media
        # clock says nothing about the path once audio flows.
        if self._playing:
            transit = now - self._media_time
            self._transits.append(transit)
            self._min_transit = min(self._min_transit, transit)
            self._since_recompute += 1
            if self._since_recompute >= _RECOMPUTE_EVERY or len(self._transits) < _RECOMPUTE_EVERY:
                self._since_recompute = 0
                self._update_target(now)
        self._media_time += samples.size / sample_rate
        limit = int(sample_rate * self.max_depth_ms / 1000)
        if self._fifo.size > limit:
            keep = int(sample_rate * (self._target_ms + FRAME_MS) / 1000)
            self.removed_samples += self._fifo.size - keep
            self._fifo = self._fifo[-keep:]

    # -- the consumer -----------------------------------------------------------------------

    def pull(self, sample_rate: int) -> Samples | None:
        """The next 20 ms at ``sample_rate``; ``None`` while prefetching (play silence)."""
        if self._rate is None:
            return None
        if self._out is None or self._out.to_rate != sample_rate:
            self._out = Resampler(self._rate, sample_rate)
            self._pending = np.zeros(0, dtype=np.int16)
        need = sample_rate * FRAME_MS // 1000
        while self._pending.size < need:
            frame = self._next_frame()
            if frame is None:
                return None
            more = self._out.resample(frame)
            self._pending = np.concatenate([self._pending, more]) if self._pending.size else more
        out, self._pending = self._pending[:need], self._pending[need:]
        self.frames_out += 1
        return out

    @property
    def sample_rate(self) -> int | None:
        """The rate audio is buffered at (that of the pushes), once known."""
        return self._rate

    @property
    def depth_ms(self) -> float:
        """Audio buffered now, ms."""
        return 0.0 if not self._rate else self._fifo.size * 1000.0 / self._rate

    @property
    def target_ms(self) -> float:
        """The depth the arrival pattern calls for, ms."""
        return self._target_ms

    @property
    def playing(self) -> bool:
        """Whether the buffer plays (prefetch done), or waits to fill."""
        return self._playing

    def stats(self) -> PlayoutStats:
        """Counters so far."""
        concealer = self._concealer
        return PlayoutStats(
            depth_ms=self.depth_ms,
            target_ms=self._target_ms,
            concealed_samples=0 if concealer is None else concealer.concealed_samples,
            concealment_events=0 if concealer is None else concealer.events,
            removed_samples=self.removed_samples,
            chunks_in=self.chunks_in,
            frames_out=self.frames_out,
        )

    # -- internals --------------------------------------------------------------------------

    def _reset(self, sample_rate: int) -> None:
        self._rate = sample_rate
        self._fifo = np.zeros(0, dtype=np.int16)
        self._concealer = PitchConcealer(sample_rate)
        self._out = None
        self._pending = np.zeros(0, dtype=np.int16)
        self._transits.clear()
        self._media_time = 0.0
        self._min_transit = float("inf")
        self._playing = False
        self._low_ms, self._low_pulls = float("inf"), 0

    def _update_target(self, now: float) -> None:
        transits = np.fromiter(self._transits, dtype=np.float64, count=len(self._transits))
        self._min_transit = float(transits.min())
        wanted = max(
            self.min_depth_ms,
            float(np.quantile(transits - self._min_transit, DEPTH_QUANTILE)) * 1000.0,
        )
        wanted = min(wanted, self.max_depth_ms - FRAME_MS)
        if wanted >= self._target_ms or self._target_at is None:
            self._target_ms = wanted
        else:
            shrink = SHRINK_PER_SECOND * (now - self._target_at)
            self._target_ms = max(wanted, self._target_ms - shrink)
        self._target_at = now

    def _next_frame(self) -> Samples | None:
        """20 ms at the input rate: audio, compressed audio, or concealment."""
        rate = self._rate
        concealer = self._concealer
        assert rate is not None and concealer is not None
        n = rate * FRAME_MS // 1000
        depth = self._fifo.size
        if not self._playing:
            if depth * 1000.0 / rate < self._target_ms + FRAME_MS:
                return None
            self._playing = True
            self._underflow_ms = 0.0
            self._low_ms, self._low_pulls = float("inf"), 0
            # The arrival pattern starts afresh with the audio that flows from now on.
            self._transits.clear()
            self._min_transit = float("inf")
            self._since_recompute = 0
        if depth < n:
            # Underflow: conceal the frame; keep what did arrive for after it.
            self._underflow_ms += FRAME_MS
            if self._underflow_ms >= RESTART_AFTER_MS:
                self._playing = False
                self._fifo = np.zeros(0, dtype=np.int16)
                concealer.reset()
                return None
            self._low_ms, self._low_pulls = float("inf"), 0
            return concealer.conceal(n)
        self._underflow_ms = 0.0
        if self._transits:
            self._low_ms = min(self._low_ms, self._playout_delay_ms(depth - n))
            self._low_pulls += 1
        cut = 0
        if self._low_pulls >= COMPRESS_WINDOW:
            excess = self._low_ms - self._target_ms - HYSTERESIS_MS
            if excess > 0:
                cut = self._cut_length(min(excess, _MAX_CUT_MS), n)
            self._low_ms, self._low_pulls = float("inf"), 0
        if cut:
            chunk = self._fifo[: n + cut].astype(np.float64)
            fade = np.arange(1, cut + 1, dtype=np.float64) / (cut + 1)
            joined = chunk[:cut] * (1.0 - fade) + chunk[cut : 2 * cut] * fade
            frame = np.concatenate([np.rint(joined), chunk[2 * cut :]]).astype(np.int16)
            self._fifo = self._fifo[n + cut :]
            self.removed_samples += cut
        else:
            frame, self._fifo = self._fifo[:n], self._fifo[n:]
        return concealer.good(frame)

    def _playout_delay_ms(self, left: int) -> float:
        """How much later than the fastest recent arrival the frame being pulled ends, ms.

        ``left`` samples stay buffered after it, so it ends at media time ``m``; it plays
        now, and the fastest path would have delivered the audio up to ``m`` at
        ``m + min transit``.  Unlike the depth, this does not swing with
        each chunk's own lateness (a late chunk leaves the buffer shallow, an early one
        deep, the playout point is the same), so it is what the target is compared with.
        """
        rate = self._rate
        assert rate is not None
        media_played = self._media_time - left / rate
        return (self._clock() - media_played - self._min_transit) * 1000.0

    def _cut_length(self, budget_ms: float, n: int) -> int:
        """Samples to cut from the next frame: a pitch period within ``budget_ms``."""
        rate = self._rate
        assert rate is not None
        budget = min(int(rate * budget_ms / 1000), self._fifo.size - n)
        if budget < rate // 400:  # under 2.5 ms: not worth a seam
            return 0
        window = self._fifo[: n + budget].astype(np.float64)
        lag = find_pitch(window, rate, max_lag=budget)
        return min(lag, budget, n)
