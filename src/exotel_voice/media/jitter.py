"""The lean receive path: our own small jitter buffer and inline decoding.

Why not aiortc's receiver
-------------------------
aiortc's ``RTCRtpReceiver`` puts audio through a fixed ``JitterBuffer(capacity=16,
prefetch=4)``: a frame leaves it only once four newer packets are behind it, so
every frame waits 80 ms even on a perfect network.  Frames are then decoded in a
per-leg thread and cross back to the loop with ``run_coroutine_threadsafe``.

This module replaces that path for audio.  :class:`RtpTap` hands us every
decrypted RTP packet; :class:`LeanReceiver` puts it into a :class:`JitterBuffer`
that releases packets **as soon as they are in order**, decodes them inline (see
:mod:`exotel_voice.media.codecs`) and calls ``deliver(samples, rate)``.

Theory of operation of the buffer
---------------------------------
The buffer never delays an in-order packet.  It only waits when a packet is
*missing*: packets behind the hole are held until the hole is filled or until a
deadline (the *reorder wait*) passes; then the hole is declared lost (and concealed
by the receiver, up to :data:`MAX_CONCEAL_PACKETS`) and the held packets are
released.  Packets that arrive after their slot was released are dropped and counted
as late: they are never played out of order.  A new SSRC or a sequence jump of more
than :data:`MAX_JUMP` restarts the buffer.

The reorder wait (:attr:`JitterBuffer.wait`) adapts as NetEQ's target level does.  Each
packet's *relative delay* is its transit time (arrival minus RTP timestamp) minus the
smallest transit of the last :data:`DELAY_WINDOW` packets: how much later than the
fastest recent packet it came.  The target is the :data:`DELAY_QUANTILE` quantile of
the relative delays (a packet ``r`` late is less than ``r`` behind the packet after it,
whose arrival opened the hole, so a wait of ``r`` covers it with room for that next
packet being early itself).  The target grows to that at once, and shrinks back
towards it by at most :data:`SHRINK_PER_SECOND` per second of arrivals, so a jitter
spike that is over does not leave latency behind and a brief calm does not drop the
wait too soon.  The wait is
the target clamped to ``[min_wait, max_wait]``: on a clean network it stays at
``min_wait`` (the latency of a hole, 10 ms by default), which is what it was before
the policy existed.  The RFC 3550 §6.4.1 inter-arrival jitter is kept too, for stats.

Losses are also given up on time (``conceal_on_time``, which :class:`LeanReceiver`
sets): when no packet has come by the time the fastest recent packet would have brought
the next one, plus one frame, plus the reorder wait, that one slot is declared lost on
its own, and so on one frame per frame time, up to :data:`MAX_CONCEAL_PACKETS` (then the
far end is taken to have gone quiet); only once :data:`ON_TIME_AFTER` packets were
timed. During a burst of losses the consumer so gets concealment as the audio was due,
instead of nothing until the packet after the burst shows it (a device with a short
buffer played ~300 ms of silence per call with 5 % bursty loss). The extra frame leaves
a single loss to be found by the next packet, as before, so its in-band FEC can rebuild
it. A packet that comes for a slot already given up is late and dropped; one whose
timestamp is not older than the timeline's is the far end resuming after a pause (DTX,
hold): the timeline goes back to it and those slots are not counted lost. On a clean
network no deadline passes: the timer is re-armed at each packet and never fires.

Concealment (:class:`LeanReceiver`): a lost Opus frame is rebuilt from the next
packet's in-band FEC when that packet carries it (it is at hand when the hole was found
by that packet, not given up on time), else by libopus's own concealment; a lost
G.711 or G.722 frame by a pitch repeat (:mod:`exotel_voice.media.plc`), merged smoothly
into the next good frame.

The buffer is pure logic with the clock passed in, so it is tested without a loop;
:class:`LeanReceiver` owns the one ``loop.call_at`` timer per leg, armed at the next
deadline (a hole's, or the next packet's), cancelled when nothing is awaited.
"""

from __future__ import annotations

import asyncio
import collections
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .codecs import AudioDecoder, G711Decoder, make_decoder
from .dtmf import rtp_payload
from .pcm import Samples
from .plc import PitchConcealer


__all__ = [
    "DELAY_QUANTILE",
    "DELAY_WINDOW",
    "SHRINK_PER_SECOND",
    "JitterBuffer",
    "LeanReceiver",
    "Packet",
    "ReceiveStats",
]

#: A forward sequence jump larger than this restarts the buffer (sender restart).
MAX_JUMP = 1000
#: Holes longer than this many packets are skipped rather than filled with silence.
MAX_CONCEAL_PACKETS = 10
#: At most this many packets are held behind a hole; more releases the hole at once.
MAX_HELD = 50
#: Packets whose transit times the adaptive wait looks at (5 s of 20 ms packets).
DELAY_WINDOW = 250
#: Quantile of the relative delays the wait covers.  The 99th, not the 95th: a packet
#: given up on costs far more than the wait (one lost Opus frame took 0.2-0.6 off a
#: wide-band PESQ of 4.2 at 20 +- 15 ms jitter, where the 95th lost about one packet per
#: 10 s call), and the wait only delays packets behind a hole, so the median latency
#: hardly moves (37.5 ms either way in bench/call_quality.py).
DELAY_QUANTILE = 0.99
#: Fastest the target shrinks, in seconds of wait per second of arrivals.
SHRINK_PER_SECOND = 0.02
#: Packets timed before losses are given up on time (the start of a stream, when the
#: sender's clock often stalls and the delays are not known yet, is left to the holes).
ON_TIME_AFTER = 25
_RECOMPUTE_EVERY = 10  # packets between two quantile computations


@dataclass(slots=True)
class Packet:
    """An RTP packet as the buffer keeps it; ``payload is None`` marks a lost one."""

    seq: int
    timestamp: int
    payload_type: int
    payload: bytes | None


class JitterBuffer:
    """Releases RTP packets in sequence order, waiting only for holes (see module doc).

    Args:
        clock_rate: RTP clock of the stream, for the jitter estimate.
        min_wait: shortest reorder wait, seconds (the floor of the adaptive target).
        max_wait: longest reorder wait, seconds.
    """

    def __init__(
        self,
        *,
        clock_rate: int = 8000,
        min_wait: float = 0.01,
        max_wait: float = 0.12,
        conceal_on_time: bool = False,
    ):
        self.clock_rate = clock_rate
        #: Declare the next packet lost when it is overdue even if no later one came.
        self.conceal_on_time = conceal_on_time
        self.min_wait = min_wait
        self.max_wait = max_wait
        self.jitter = 0.0  # seconds, RFC 3550 estimator
        #: The wait the measured delays call for (seconds), before clamping.
        self.target = 0.0
        self._transits: collections.deque[float] = collections.deque(maxlen=DELAY_WINDOW)
        self._since_recompute = 0
        self._target_at: float | None = None

        self.late = 0
        self.lost = 0
        self.restarts = 0
        self._ssrc: int | None = None
        self._next: int | None = None
        self._held: dict[int, Packet] = {}
        self._hole_since: float | None = None
        self._transit: float | None = None
        # The timeline, for deadlines without a hole: the smallest recent transit, the
        # RTP timestamp the next packet should carry, the packets' timestamp step, and
        # the run of slots given up on time (seq of the first, how many).
        self._base: float | None = None
        self._next_ts: int | None = None
        self._step: int | None = None
        self._last_ts = 0
        self._run_start = 0
        self._run = 0

    @property
    def wait(self) -> float:
        """The current reorder wait in seconds (the adaptive target, clamped)."""
        return min(self.max_wait, max(self.min_wait, self.target))

    def deadline(self) -> float | None:
        """When :meth:`expire` must be called next: while a hole is open, and (with
        ``conceal_on_time``) when the next packet is overdue by the reorder wait."""
        due = self._due()
        if self._hole_since is None:
            return due
        hole = self._hole_since + self.wait
        return hole if due is None else min(hole, due)

    def _due(self) -> float | None:
        """When the next packet is given up on without a later one: the time the fastest
        recent packet would have brought it, plus the reorder wait (None: not tracked,
        or the concealment limit reached: the far end went quiet)."""
        if (
            not self.conceal_on_time
            or self._base is None
            or self._next_ts is None
            or self._step is None
            or self._run >= MAX_CONCEAL_PACKETS
            or len(self._transits) < ON_TIME_AFTER
        ):
            return None
        ahead = (self._next_ts - self._last_ts) & 0xFFFFFFFF  # no wrap in the sum
        # One frame more than a hole's wait: a single loss is still found by the packet
        # after it (whose in-band FEC may rebuild it), and a late packet still gets the
        # wait it would get behind a hole; only a run of losses is given up on time.
        due = (self._last_ts + ahead + self._step) / self.clock_rate
        return due + self._base + self.wait

    def push(
        self, ssrc: int, seq: int, timestamp: int, payload_type: int, payload: bytes, now: float
    ) -> list[Packet]:
        """Add one packet; return the packets (and holes) now released, in order."""
        if ssrc != self._ssrc or self._next is None:
            self._restart(ssrc, seq)
        self._update_jitter(timestamp, now)
        distance = (seq - self._next) & 0xFFFF  # type: ignore[operator]
        if distance >= 0x8000 and self._resumes(seq, timestamp):
            distance = 0
        if distance >= 0x8000:
            self.late += 1
            return []
        if distance > MAX_JUMP:
            self._restart(ssrc, seq)
            distance = 0
        packet = Packet(seq, timestamp, payload_type, payload)
        if distance == 0 and not self._held:
            self._next = (seq + 1) & 0xFFFF
            self._released(packet)
            return [packet]
        if seq in self._held:
            self.late += 1  # a duplicate
            return []
        self._held[seq] = packet
        released = self._drain()
        if self._held:
            if self._hole_since is None:
                self._hole_since = now
            due = self._due()
            if len(self._held) > MAX_HELD or (due is not None and now >= due):
                released += self._skip_hole(now)
        else:
            self._hole_since = None
        return released

    def _resumes(self, seq: int, timestamp: int) -> bool:
        """Whether a packet for a slot given up on time is the far end resuming after a
        pause (its media is not older than the timeline's), not a late packet; if so the
        timeline goes back to it and those slots are no longer counted lost."""
        if not self._run or self._next_ts is None:
            return False
        back = (self._next - seq) & 0xFFFF  # type: ignore[operator]
        if (seq - self._run_start) & 0xFFFF >= self._run or back > self._run:
            return False
        if (timestamp - self._next_ts) & 0xFFFFFFFF >= 0x80000000:
            return False  # older media: a late packet
        self.lost -= back
        self._next = seq
        self._run = 0
        return True

    def expire(self, now: float) -> list[Packet]:
        """Give up on the current hole (or the overdue next packet) if its deadline has
        passed; return what is released."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return []
        if self._held:
            return self._skip_hole(now)
        # Nothing behind it yet: the overdue slot alone is declared lost (one frame).
        assert self._next is not None and self._next_ts is not None and self._step
        if not self._run:
            self._run_start = self._next
        self._run += 1
        self.lost += 1
        lost = Packet(self._next, self._next_ts, -1, None)
        self._next = (self._next + 1) & 0xFFFF
        self._next_ts = (self._next_ts + self._step) & 0xFFFFFFFF
        return [lost]

    def _skip_hole(self, now: float) -> list[Packet]:
        assert self._next is not None
        nearest = min(self._held, key=lambda s: (s - self._next) & 0xFFFF)  # type: ignore[operator]
        released = []
        seq = self._next
        while seq != nearest:
            released.append(Packet(seq, 0, -1, None))
            seq = (seq + 1) & 0xFFFF
        self.lost += len(released)
        if self._step is not None and self._next_ts is not None:
            self._next_ts = (self._next_ts + self._step * len(released)) & 0xFFFFFFFF
        self._next = nearest
        released += self._drain()
        self._hole_since = now if self._held else None
        return released

    def _drain(self) -> list[Packet]:
        released = []
        while self._next in self._held:
            packet = self._held.pop(self._next)
            released.append(packet)
            self._released(packet)
            self._next = (self._next + 1) & 0xFFFF
        if released and self._held:
            # The hole moved: the next one gets its own full wait.
            self._hole_since = None
        return released

    def _released(self, packet: Packet) -> None:
        """Follow the timeline: the step between consecutive packets and the next one's
        timestamp; a packet that came ends a run of slots given up on time."""
        if self._next_ts is not None and self._run == 0:
            step = (packet.timestamp - self._last_ts) & 0xFFFFFFFF
            if 0 < step <= self.clock_rate // 5:  # up to 200 ms of audio per packet
                self._step = step
        self._last_ts = packet.timestamp
        if self._step is not None:
            self._next_ts = (packet.timestamp + self._step) & 0xFFFFFFFF
        else:
            self._next_ts = packet.timestamp
        self._run = 0

    def _restart(self, ssrc: int, seq: int) -> None:
        if self._ssrc is not None:
            self.restarts += 1
        self._ssrc = ssrc
        self._next = seq
        self._held.clear()
        self._hole_since = None
        self._transits.clear()
        self._transit = None
        self._base = None
        self._next_ts = None
        self._run = 0

    def _update_jitter(self, timestamp: int, now: float) -> None:
        transit = now - timestamp / self.clock_rate
        if self._transit is not None:
            delta = abs(transit - self._transit)
            if delta < 1.0:  # ignore timestamp jumps (DTX, restarts)
                self.jitter += (delta - self.jitter) / 16.0
            else:
                self._transits.clear()  # a new timeline: old transits mean nothing
                self._base = None
        self._transit = transit
        self._transits.append(transit)
        self._base = transit if self._base is None else min(self._base, transit)
        self._since_recompute += 1
        if self._since_recompute >= _RECOMPUTE_EVERY or len(self._transits) < _RECOMPUTE_EVERY:
            self._since_recompute = 0
            self._update_target(now)

    def _update_target(self, now: float) -> None:
        transits = np.fromiter(self._transits, dtype=np.float64, count=len(self._transits))
        self._base = float(transits.min())
        relative = transits - self._base
        wanted = float(np.quantile(relative, DELAY_QUANTILE))
        if wanted >= self.target or self._target_at is None:
            self.target = wanted
        else:
            self.target = max(wanted, self.target - SHRINK_PER_SECOND * (now - self._target_at))
        self._target_at = now


@dataclass(frozen=True)
class ReceiveStats:
    """Counters of the lean receive path."""

    frames_decoded: int
    frames_concealed: int
    packets_late: int
    packets_lost: int
    jitter_ms: float
    #: Samples (at the decoder's rate) played in place of lost audio.
    concealed_samples: int = 0
    #: Losses concealed: each run of consecutive lost frames counts once.
    concealment_events: int = 0
    #: Lost Opus frames rebuilt from the next packet's in-band FEC (part of the above).
    fec_frames: int = 0
    #: Samples decoded from packets that arrived (at the decoder's rate).
    decoded_samples: int = 0
    #: The jitter buffer's current reorder wait (its target delay for a hole), ms.
    target_delay_ms: float = 0.0


class LeanReceiver:
    """Jitter buffer + decoders for one leg; feeds decoded audio to ``deliver``.

    Args:
        deliver: called with ``(samples, sample_rate)`` for every decoded frame, on
            the event loop, in order.
        codecs: ``payload type -> (encoding name, clock rate)`` of the audio formats
            the far end may send.
    """

    def __init__(
        self,
        deliver: Callable[[Samples, int], None],
        codecs: dict[int, tuple[str, int]],
    ) -> None:
        self._deliver = deliver
        self._codecs: dict[int, tuple[str, int]] = {}
        self._decoders: dict[int, AudioDecoder | None] = {}
        clock_rate = next(iter(codecs.values()))[1] if codecs else 8000
        self._buffer = JitterBuffer(clock_rate=clock_rate, conceal_on_time=True)
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._clock = self._loop.time
        self._last_size: dict[int, int] = {}
        self._last_payload_type: int | None = None
        self._concealers: dict[int, PitchConcealer] = {}
        self._loss_run = 0  # consecutive lost frames so far, across deliveries
        self.frames_decoded = 0
        self.frames_concealed = 0
        self.concealed_samples = 0
        self.concealment_events = 0
        self.fec_frames = 0
        self.decoded_samples = 0
        self.configure(codecs)

    def configure(self, codecs: dict[int, tuple[str, int]]) -> None:
        """Set the payload types we decode (after each negotiation)."""
        for pt in list(self._decoders):
            if self._codecs.get(pt) != codecs.get(pt):
                del self._decoders[pt]
                self._concealers.pop(pt, None)
        self._codecs = dict(codecs)
        if codecs:
            self._buffer.clock_rate = next(iter(codecs.values()))[1]

    def stats(self) -> ReceiveStats:
        """Counters so far."""
        return ReceiveStats(
            frames_decoded=self.frames_decoded,
            frames_concealed=self.frames_concealed,
            packets_late=self._buffer.late,
            packets_lost=self._buffer.lost,
            jitter_ms=self._buffer.jitter * 1000.0,
            concealed_samples=self.concealed_samples,
            concealment_events=self.concealment_events,
            fec_frames=self.fec_frames,
            decoded_samples=self.decoded_samples,
            target_delay_ms=self._buffer.wait * 1000.0,
        )

    def handle(self, data: bytes) -> bool:
        """Take one plain RTP packet; return whether it was ours (an audio format)."""
        payload_type = data[1] & 0x7F
        if payload_type not in self._codecs:
            return False
        try:
            payload = rtp_payload(data)
        except ValueError:
            return True
        seq, timestamp, ssrc = struct.unpack_from("!HII", data, 2)
        released = self._buffer.push(
            ssrc, seq, timestamp, payload_type, payload, self._clock()
        )
        if released:
            self._play(released)
        self._arm()
        return True

    def close(self) -> None:
        """Cancel the timer; nothing more is delivered."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._codecs = {}

    def _arm(self) -> None:
        deadline = self._buffer.deadline()
        if deadline is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        elif self._timer is None or self._timer.when() != deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        released = self._buffer.expire(self._clock())
        if released:
            self._play(released)
        self._arm()

    def _play(self, packets: list[Packet]) -> None:
        conceal = sum(1 for p in packets if p.payload is None) <= MAX_CONCEAL_PACKETS
        for index, packet in enumerate(packets):
            if packet.payload is None:
                # A lost frame is concealed (while the run of losses, which may span
                # several deliveries when slots are given up on time, is short enough).
                self._loss_run += 1
                if conceal and self._loss_run <= MAX_CONCEAL_PACKETS:
                    self._conceal(packets, index, first=self._loss_run == 1)
                continue
            self._loss_run = 0
            decoder = self._decoder(packet.payload_type)
            if decoder is None:
                continue
            samples = decoder.decode(packet.payload)
            if samples.size:
                concealer = self._concealers.get(packet.payload_type)
                if concealer is not None:
                    samples = concealer.good(samples)
                self.frames_decoded += 1
                self.decoded_samples += samples.size
                self._last_size[packet.payload_type] = samples.size
                self._last_payload_type = packet.payload_type
                self._deliver(samples, decoder.sample_rate)

    def _conceal(self, packets: list[Packet], index: int, *, first: bool) -> bool:
        """Deliver a stand-in for the lost ``packets[index]``; whether anything was played."""
        pt = self._last_payload_type
        if pt is None or pt not in self._last_size:
            return False
        decoder = self._decoders.get(pt)
        if decoder is None:
            return False
        size = self._last_size[pt]
        following = packets[index + 1] if index + 1 < len(packets) else None
        from .opus import OpusDecoder  # imported late: libopus is optional

        if isinstance(decoder, OpusDecoder):
            if (
                following is not None
                and following.payload is not None
                and following.payload_type == pt
                and decoder.has_fec(following.payload)
            ):
                samples = decoder.decode_fec(following.payload, size)
                self.fec_frames += 1
            else:
                samples = decoder.conceal(size)
        else:
            concealer = self._concealers.get(pt)
            if concealer is None:
                # Only from the second frame on: the first frame's history is then known.
                return False
            # The packet that showed the hole, when here: the repeat fades to its level if
            # it is quieter.  Only G.711 can be decoded ahead (it keeps no state).
            ahead = None
            if (
                following is not None
                and following.payload is not None
                and following.payload_type == pt
                and isinstance(decoder, G711Decoder)
            ):
                ahead = decoder.decode(following.payload)
            samples = concealer.conceal(size, ahead)
        if first:
            self.concealment_events += 1
        self.frames_concealed += 1
        self.concealed_samples += samples.size
        self._deliver(samples, decoder.sample_rate)
        return True

    def _decoder(self, payload_type: int) -> AudioDecoder | None:
        try:
            return self._decoders[payload_type]
        except KeyError:
            name, clock = self._codecs[payload_type]
            decoder = self._decoders[payload_type] = make_decoder(name, clock)
            if decoder is not None and name.lower() != "opus":
                self._concealers[payload_type] = PitchConcealer(decoder.sample_rate)
            return decoder
