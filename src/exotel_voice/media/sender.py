"""The lean send path: one shared 20 ms clock per event loop; Opus encodes on a worker thread.

Why not aiortc's sender
-----------------------
Per leg and per 20 ms packet, aiortc's ``RTCRtpSender`` awaits the track (its own
sleep), builds a PyAV ``AudioFrame``, computes the RFC 6465 audio level with a
Python loop over every sample, and hands the frame to the default thread pool for
resampling + encoding (a GIL hand-off and a future per packet), then builds an
``RtpPacket`` object.  With many legs those per-packet costs, not the codecs,
decide how many legs fit in a process.

Here one :class:`SendClock` task per event loop ticks every 20 ms (on an absolute
schedule, so it does not drift), cut into four 5 ms sub-ticks with the legs spread
over them.  On its sub-tick each registered :class:`LeanSender` has its source read
on the loop; the sub-tick's Opus frames are then encoded by libopus (ctypes, which
releases the GIL) on the clock's one worker thread, **as one job for the whole
sub-tick**, while the loop goes on receiving and decoding; G.711 is encoded by
table on the loop, G.722 with PyAV on the loop.  Back on the loop each packet's
RTP header is packed with ``struct`` and the packet is sent by
:meth:`RtpTap.send_now <exotel_voice.media.dtmf.RtpTap.send_now>` (RFC 4733 DTMF
replacement, counters, SRTP, ``sendto`` on the nominated pair, no coroutine) or,
where that cannot be used (a TURN relay), by awaiting ``RTCDtlsTransport._send_rtp``,
the entry aiortc's sender uses (:func:`~exotel_voice.media._aiortc_compat.send_rtp`).
Each sub-tick runs as its own task, so the clock keeps its schedule while the worker
encodes; packets still leave in sub-tick order, and with more than two frames in
flight the clock waits for the worker.  A sub-tick that comes late (the loop or the
process stalled, or the previous sub-ticks took long) is served at once, and so are
the ones after it until the clock is back on schedule: every leg still sends 50 frames
a second on average, with RTP timestamps 20 ms apart.  Only past
:data:`MAX_LATE_FRAMES` (200 ms) behind are the late frames dropped (counted per
sender, timestamps moved on over them).

aiortc's own sender is still started (its RTCP task sends the sender reports),
but its RTP task waits on a track that never yields a frame.  Its sender-report
counters are kept current by :meth:`LeanSender.deliver` (name-mangled attributes
of aiortc's ``RTCRtpSender``, set by
:func:`~exotel_voice.media._aiortc_compat.set_sender_report`).  Every access to
aiortc internals goes through :mod:`exotel_voice.media._aiortc_compat`; when they
are missing the session does not use this path at all (aiortc's own sender).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import fractions
import logging
import math
import random
import struct
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import av
import numpy as np

from . import _aiortc_compat as compat, opus
from .codecs import alaw_encode, ulaw_encode
from .pcm import FRAME_MS, Samples


__all__ = [
    "BATCH",
    "MAX_IN_FLIGHT",
    "MAX_LATE_FRAMES",
    "PHASES",
    "AudioEncoder",
    "LeanSender",
    "SendClock",
    "make_encoder",
]

logger = logging.getLogger(__name__)

_MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
_NTP_EPOCH = 2208988800  # seconds from 1900 to 1970

#: Sub-ticks per 20 ms frame of the shared clock (senders are spread over them).
PHASES = 4
#: Senders a sub-tick takes before the next one is opened: few legs share one sub-tick
#: (one wake-up per frame instead of four, the main cost of a lightly loaded process);
#: past ``PHASES * PHASE_FILL`` legs they are spread evenly, as before.
PHASE_FILL = 10
#: Senders served in a row before the clock yields to the event loop.
BATCH = 8
#: Sub-ticks whose packets may still be in the making (encoding on the worker thread)
#: before the clock waits for the oldest: two frames.
MAX_IN_FLIGHT = 2 * PHASES
#: How far (in 20 ms frames) the clock may fall behind its schedule and still send
#: every frame: after a stall of the loop or of the process (a GC pause, the machine
#: busy elsewhere, a sub-tick that took long) the missed sub-ticks are served at once,
#: in order, so every leg still sends 50 frames a second on average.  A sub-tick later
#: than this (200 ms: later than any playout buffer waits) is not sent: the frames of
#: the whole late period are dropped, counted in :attr:`LeanSender.frames_dropped`.
MAX_LATE_FRAMES = 10


class AudioEncoder:
    """Encodes one 20 ms frame of mono int16 samples at :attr:`sample_rate`.

    ``releases_gil``: ``encode`` spends its time in C with the GIL released (libopus
    through ctypes), so the :class:`SendClock` may run it on its worker thread.

    ``set_packet_loss_perc``: for an encoder with in-band FEC (Opus through libopus), tells
    it the loss to expect (:meth:`OpusEncoder.set_packet_loss_perc
    <exotel_voice.media.opus.OpusEncoder.set_packet_loss_perc>`, safe from the loop thread
    while the worker encodes); ``None`` for the others.
    """

    def __init__(
        self,
        sample_rate: int,
        ticks_per_frame: int,
        encode: Callable[[Samples], bytes],
        *,
        releases_gil: bool = False,
        set_packet_loss_perc: Callable[[int], None] | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self.ticks_per_frame = ticks_per_frame
        self.encode = encode
        self.releases_gil = releases_gil
        self.set_packet_loss_perc = set_packet_loss_perc


class _PyAvEncoder:
    def __init__(self, codec_name: str, sample_rate: int, bit_rate: int | None) -> None:
        codec: Any = av.CodecContext.create(codec_name, "w")
        codec.format = "s16"
        codec.layout = "mono"
        codec.sample_rate = sample_rate
        codec.time_base = fractions.Fraction(1, sample_rate)
        if bit_rate is not None:
            codec.bit_rate = bit_rate
        if codec_name == "libopus":
            codec.options = {"application": "voip"}
        self._codec = codec
        self._rate = sample_rate
        self._pts = 0

    def encode(self, samples: Samples) -> bytes:
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self._rate
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, self._rate)
        self._pts += samples.size
        return b"".join(bytes(p) for p in self._codec.encode(frame))


def make_encoder(name: str) -> AudioEncoder | None:
    """An encoder for the SDP encoding ``name`` (20 ms frames), or ``None``."""
    key = name.lower()
    if key == "pcmu":
        return AudioEncoder(8000, 160, ulaw_encode)
    if key == "pcma":
        return AudioEncoder(8000, 160, alaw_encode)
    if key == "opus":
        # Mono, as browsers send by default; 48 kbit/s is transparent for speech.
        # libopus directly when it loads (see media/opus.py), else through PyAV.
        # In-band FEC on, but no loss expected until the far end reports some
        # (LeanSender.far_end_loss): no LBRR bits or encode time on a clean network.
        if opus.load() is not None:
            encoder = opus.OpusEncoder(48000, packet_loss_perc=0)
            return AudioEncoder(48000, 960, encoder.encode, releases_gil=True,
                                set_packet_loss_perc=encoder.set_packet_loss_perc)
        return AudioEncoder(48000, 960, _PyAvEncoder("libopus", 48000, 48000).encode)
    if key == "g722":
        # G.722 encodes 16 kHz audio but its RTP clock runs at 8 kHz (RFC 3551 §4.5.2).
        return AudioEncoder(16000, 160, _PyAvEncoder("g722", 16000, None).encode)
    return None


def audio_level(samples: Samples) -> int:
    """RFC 6465 level of ``samples``: 0 (loudest) to 127 (silence), in -dBov."""
    if samples.size == 0:
        return 127
    values = samples.astype(np.float32)
    power = float(np.dot(values, values)) / samples.size
    if power <= 0.0:
        return 127
    db = 10.0 * math.log10(power / (32767.0 * 32767.0))
    return min(127, max(0, int(round(-db))))


def _encode_batch(
    jobs: list[tuple[AudioEncoder, Samples]],
) -> tuple[list[bytes | Exception], float]:
    """Encode every frame of one sub-tick (run on the clock's worker thread); also
    returns the seconds it took."""
    start = time.perf_counter()
    results: list[bytes | Exception] = []
    for encoder, samples in jobs:
        try:
            results.append(encoder.encode(samples))
        except Exception as exc:
            results.append(exc)
    return results, time.perf_counter() - start


class SendClock:
    """One 20 ms ticker per event loop, shared by every :class:`LeanSender` on it.

    The 20 ms frame is cut into :data:`PHASES` sub-ticks. A new sender joins a sub-tick
    in use until each holds :data:`PHASE_FILL`, then the next one opens (a sub-tick
    with nobody on it costs no wake-up); with every sub-tick open, it joins the least
    crowded. Each sender is served on its sub-tick only, so every sender still sends
    every 20 ms but with many legs the work (Opus encode, SRTP,
    the peer's receive on loopback) is spread over the frame instead of landing on
    the loop in one burst.

    A sub-tick first reads each sender's next frame (source, mute) on the loop,
    then encodes: frames whose encoder releases the GIL (Opus through libopus) go
    to the clock's one worker thread as **one job for the whole sub-tick**, while
    the loop carries on (receiving, decoding); the others (G.711 by table) are
    encoded on the loop.  Then each packet is built and sent on the loop, in
    sender order, yielding to the loop after every :data:`BATCH` senders.  With
    ``encode_thread=False`` everything is encoded on the loop.

    The schedule is absolute: a sub-tick that comes late is served at once (a burst of
    the missed sub-ticks, in order), up to :data:`MAX_LATE_FRAMES` behind; past that,
    whole frames are dropped for every sender (:meth:`LeanSender.drop`) and
    :attr:`resyncs` counts the times.
    """

    _clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SendClock] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, *, encode_thread: bool = True) -> None:
        self._loop = loop
        self._phases: list[list[LeanSender]] = [[] for _ in range(PHASES)]
        self._task: asyncio.Task[None] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        #: Whether frames of GIL-releasing encoders are encoded on the worker thread.
        self.encode_thread = encode_thread
        # The schedule's time and sleep (the loop's; a test may put a virtual clock here).
        self._now: Callable[[], float] = loop.time
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self.ticks = 0
        #: Times the clock was more than :data:`MAX_LATE_FRAMES` behind and dropped frames.
        self.resyncs = 0
        #: Sub-ticks whose encodes ran on the worker thread.
        self.thread_jobs = 0
        #: Seconds the worker thread spent on those jobs, waits for the GIL included
        #: (each libopus call gives the GIL up and takes it back): near the elapsed time,
        #: the worker is the bottleneck.
        self.worker_busy = 0.0

    @classmethod
    def for_loop(cls) -> SendClock:
        """The clock of the running loop (created on first use)."""
        loop = asyncio.get_running_loop()
        clock = cls._clocks.get(loop)
        if clock is None:
            clock = cls._clocks[loop] = cls(loop)
        return clock

    @property
    def senders(self) -> list[LeanSender]:
        """Every registered sender, phase by phase."""
        return [sender for phase in self._phases for sender in phase]

    def phase_of(self, sender: LeanSender) -> int | None:
        """The sub-tick (0 to ``PHASES - 1``) ``sender`` is served on, if registered."""
        for index, phase in enumerate(self._phases):
            if sender in phase:
                return index
        return None

    def add(self, sender: LeanSender) -> None:
        if self.phase_of(sender) is None:
            used = [phase for phase in self._phases if phase]
            if len(used) < PHASES and all(len(phase) >= PHASE_FILL for phase in used):
                next(phase for phase in self._phases if not phase).append(sender)
            else:
                min(used, key=len).append(sender)
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._run())

    def remove(self, sender: LeanSender) -> None:
        for phase in self._phases:
            with contextlib.suppress(ValueError):
                phase.remove(sender)
        if not any(self._phases):
            if self._task is not None:
                self._task.cancel()
                self._task = None
            if self._executor is not None:
                self._executor.shutdown(wait=False)
                self._executor = None

    async def _run(self) -> None:
        frame = FRAME_MS / 1000
        interval = frame / PHASES
        due = self._now()
        phase = 0
        in_flight: collections.deque[asyncio.Task[None]] = collections.deque()
        try:
            while any(self._phases):
                due += interval
                if not self._phases[phase]:
                    # Nobody on this sub-tick: no wake-up for it.
                    if phase == 0:
                        self.ticks += 1
                    phase = (phase + 1) % PHASES
                    continue
                delay = due - self._now()
                if delay > 0:
                    await self._sleep(delay)
                elif delay < -MAX_LATE_FRAMES * frame:
                    # Too late to send: drop whole frames (every sub-tick of them, so
                    # each leg the same number) until the schedule is less than one
                    # frame behind.  The sub-ticks in flight read their frames before.
                    if in_flight:
                        await asyncio.wait(in_flight)
                        in_flight.clear()
                    missed = int((self._now() - due) // frame)
                    due += missed * frame
                    self._drop(missed)
                    self.resyncs += 1
                # Otherwise late by less than the bound: served at once (catching up).
                if phase == 0:
                    self.ticks += 1
                senders = list(self._phases[phase])
                phase = (phase + 1) % PHASES
                while in_flight and in_flight[0].done():
                    in_flight.popleft()
                if len(in_flight) >= MAX_IN_FLIGHT:
                    # The worker thread is two frames behind: wait for it (and fall
                    # behind the schedule, resynchronising as above if it lasts).
                    await asyncio.wait([in_flight[0]])
                # Served as its own task, so the clock keeps its schedule while the
                # worker thread encodes; each sub-tick sends after the previous one.
                previous = in_flight[-1] if in_flight else None
                in_flight.append(self._loop.create_task(self.serve(senders, after=previous)))
        finally:
            for task in in_flight:
                task.cancel()

    def _drop(self, frames: int) -> None:
        for sender in self.senders:
            try:
                sender.drop(frames)
            except Exception:
                logger.exception("! lean sender %r failed; removing it", sender)
                self.remove(sender)

    async def serve(
        self, senders: list[LeanSender], *, after: asyncio.Future[None] | None = None
    ) -> None:
        """One sub-tick: read, encode (a worker-thread job for GIL-releasing encoders),
        build and send one packet for each of ``senders``; the packets are built and
        sent only once ``after`` (the previous sub-tick) is done, so they leave in
        order."""
        frames: list[tuple[LeanSender, AudioEncoder, Samples]] = []
        for sender in senders:
            try:
                frame = sender.read_frame()
            except Exception:
                logger.exception("! lean sender %r failed; removing it", sender)
                self.remove(sender)
                continue
            if frame is not None:
                frames.append((sender, *frame))
        payloads: list[bytes | Exception | None] = [None] * len(frames)
        if self.encode_thread:
            threaded = [i for i, frame in enumerate(frames) if frame[1].releases_gil]
            if threaded:
                if self._executor is None:
                    self._executor = concurrent.futures.ThreadPoolExecutor(
                        1, thread_name_prefix="exotel-voice-encode"
                    )
                jobs = [(frames[i][1], frames[i][2]) for i in threaded]
                results, busy = await self._loop.run_in_executor(
                    self._executor, _encode_batch, jobs
                )
                self.thread_jobs += 1
                self.worker_busy += busy
                for i, result in zip(threaded, results, strict=True):
                    payloads[i] = result
        if after is not None and not after.done():
            await asyncio.wait([after])
        for index, ((sender, encoder, samples), payload) in enumerate(
            zip(frames, payloads, strict=True)
        ):
            if index and not index % BATCH:
                await asyncio.sleep(0)
            try:
                if payload is None:
                    payload = encoder.encode(samples)
                elif isinstance(payload, Exception):
                    raise payload
                packet = sender.deliver(encoder, samples, payload)
                if packet is not None:
                    await compat.send_rtp(sender.transport, packet)
            except ConnectionError:
                pass
            except Exception:
                logger.exception("! lean sender %r failed; removing it", sender)
                self.remove(sender)


class LeanSender:
    """Sends one leg's audio on the shared :class:`SendClock`.

    Args:
        transport: aiortc's ``RTCDtlsTransport`` (its ``_send_rtp`` is awaited).
        rtp_sender: aiortc's ``RTCRtpSender`` (SSRC, and its SR counters).
        read: returns the next 20 ms of samples at a given rate (source, mute).
        can_send: whether the negotiated direction lets us send now.

    :attr:`send_now`, when set (the session sets it to :meth:`RtpTap.send_now
    <exotel_voice.media.dtmf.RtpTap.send_now>`), sends a packet without awaiting and
    returns ``False`` when it cannot; the packet then takes the awaited
    ``transport._send_rtp`` path.
    """

    def __init__(
        self,
        transport: Any,
        rtp_sender: Any,
        read: Callable[[int], Samples],
        can_send: Callable[[], bool],
    ) -> None:
        self.transport = transport
        self.rtp_sender = rtp_sender
        self._read = read
        self._can_send = can_send
        self._encoder: AudioEncoder | None = None
        self._codec: tuple[str, int] | None = None
        self._payload_type = 0
        self._ssrc = compat.sender_ssrc(rtp_sender)
        self._seq = random.getrandbits(16)
        self._timestamp = random.getrandbits(32)
        self._marker = True
        self._mid_ext: bytes = b""
        self._level_id: int | None = None
        self.packets = 0
        self.octets = 0
        #: Frames sent (RTP packets built), and frames the :class:`SendClock` dropped
        #: because it was more than :data:`MAX_LATE_FRAMES` behind its schedule.
        self.frames_sent = 0
        self.frames_dropped = 0
        self._ready = False
        self.send_now: Callable[[bytes], bool] | None = None
        #: The loss (percent) our encoder's in-band FEC prepares for, from the far end's
        #: reports (:meth:`far_end_loss`); 0 until it reports loss.
        self.expected_loss_perc = 0
        self._loss_estimate = 0.0

    def configure(self, name: str, clock_rate: int, payload_type: int) -> None:
        """Set the negotiated codec (a new encoder only if the codec changed)."""
        if self._codec != (name.lower(), clock_rate):
            self._encoder = make_encoder(name)
            self._codec = (name.lower(), clock_rate)
            self._marker = True
            self._apply_expected_loss()
        self._payload_type = payload_type

    def far_end_loss(self, fraction_lost: float) -> None:
        """The far end's RTCP report block says it lost ``fraction_lost`` (0.0-1.0) of our
        packets in its last interval: adapt the encoder's in-band FEC
        (:func:`~exotel_voice.media.opus.adapt_expected_loss`).  Only an Opus encoder
        through libopus has FEC to adapt; the estimate is kept for a later codec change.

        Raises:
            ValueError: ``fraction_lost`` is not a number from 0 to 1.
        """
        self._loss_estimate, percent = opus.adapt_expected_loss(self._loss_estimate,
                                                                 fraction_lost)
        if percent != self.expected_loss_perc:
            self.expected_loss_perc = percent
            self._apply_expected_loss()

    def _apply_expected_loss(self) -> None:
        encoder = self._encoder
        if encoder is not None and encoder.set_packet_loss_perc is not None:
            encoder.set_packet_loss_perc(self.expected_loss_perc)

    def set_header_extensions(self, parameters: Any) -> None:
        """aiortc's sender started with ``parameters`` (``RTCRtpSendParameters``): send from now
        on, with the extension ids they carry."""
        self._ready = True
        self.use_header_extensions(
            getattr(parameters, "muxId", None), getattr(parameters, "headerExtensions", [])
        )

    def use_header_extensions(self, mid: str | None, extensions: Iterable[Any]) -> None:
        """Write the ``sdes:mid`` and ``ssrc-audio-level`` extensions with these ids.

        The session calls it after every completed negotiation and after a rollback,
        so the ids are always the negotiated ones (RFC 8285 §6), never those of a
        pending offer.  Extensions not in ``extensions`` are not sent.
        """
        self._mid_ext = b""
        self._level_id = None
        for ext in extensions:
            if ext.uri == _MID_URI and mid and 0 < ext.id < 15 and 0 < len(mid) <= 16:
                self._mid_ext = bytes([(ext.id << 4) | (len(mid) - 1)]) + mid.encode()
            elif ext.uri == _LEVEL_URI and 0 < ext.id < 15:
                self._level_id = ext.id

    @property
    def encoder(self) -> AudioEncoder | None:
        return self._encoder

    async def tick(self) -> None:
        """Send one packet if connected, sending and negotiated (everything inline)."""
        frame = self.read_frame()
        if frame is None:
            return
        encoder, samples = frame
        packet = self.deliver(encoder, samples, encoder.encode(samples))
        if packet is not None:
            await compat.send_rtp(self.transport, packet)

    def read_frame(self) -> tuple[AudioEncoder, Samples] | None:
        """The encoder and the next 20 ms to encode, or ``None`` if nothing is to be sent now
        (not connected, not sending, not negotiated)."""
        encoder = self._encoder
        if (
            encoder is None
            or not self._ready
            or self.transport.state != "connected"
            or not self._can_send()
        ):
            self._marker = True
            return None
        return encoder, self._read(encoder.sample_rate)

    def drop(self, frames: int) -> None:
        """The clock is too late to send this sender's next ``frames`` frames: read them
        from the source and discard them, counted in :attr:`frames_dropped`.

        The RTP timestamp moves on over them (RFC 3550 §5.1: it follows the sampling
        instant), so the far end plays what follows at the right time; the sequence
        number does not (nothing was lost on the network), and the next packet has the
        marker bit, as after a silence.  Nothing happens when nothing would be sent now.
        Past one second only the timestamp moves on (reading a source further behind
        would only cost time).
        """
        for index in range(frames):
            frame = self.read_frame()
            if frame is None:
                return
            skipped = 1 if index < 50 else frames - index
            self._timestamp = (
                self._timestamp + skipped * frame[0].ticks_per_frame
            ) & 0xFFFFFFFF
            self.frames_dropped += skipped
            self._marker = True
            if skipped > 1:
                return

    def deliver(self, encoder: AudioEncoder, samples: Samples, payload: bytes) -> bytes | None:
        """Build the RTP packet of ``payload`` (the encoding of ``samples``) and send it.

        Returns the packet if it still has to be sent through the awaited
        ``transport._send_rtp`` (no :attr:`send_now`, or it declined), else ``None``.
        A frame encoded by an encoder that was replaced meanwhile (the codec
        changed while it was encoded) is dropped.
        """
        if not payload or encoder is not self._encoder:
            return None
        extension = self._mid_ext
        if self._level_id is not None:
            extension += bytes([self._level_id << 4, audio_level(samples)])
        first = 0x80
        if extension:
            extension += b"\x00" * (-len(extension) % 4)
            extension = struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
            first |= 0x10
        header = struct.pack(
            "!BBHII",
            first,
            (0x80 if self._marker else 0) | self._payload_type,
            self._seq,
            self._timestamp,
            self._ssrc,
        )
        self._marker = False
        timestamp = self._timestamp
        self._seq = (self._seq + 1) & 0xFFFF
        self._timestamp = (self._timestamp + encoder.ticks_per_frame) & 0xFFFFFFFF
        self.packets += 1
        self.frames_sent += 1
        self.octets += len(payload)
        self._update_sender_report(timestamp)
        packet = header + extension + payload
        send_now = self.send_now
        if send_now is not None and send_now(packet):
            return None
        return packet

    def _update_sender_report(self, timestamp: int) -> None:
        # aiortc's RTCP task builds the SR from these.
        compat.set_sender_report(
            self.rtp_sender,
            ntp_timestamp=self._loop_wallclock(),
            rtp_timestamp=timestamp,
            packets=self.packets,
            octets=self.octets,
        )

    @staticmethod
    def _loop_wallclock() -> int:
        now = time.time() + _NTP_EPOCH
        seconds = int(now)
        return (seconds << 32) | int((now - seconds) * (1 << 32))
