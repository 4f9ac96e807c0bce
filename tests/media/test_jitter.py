"""The lean receive path's pieces without a network: G.711 tables, the jitter buffer,
and LeanReceiver on a loop.  The end-to-end path is exercised by test_session.py.
"""

from __future__ import annotations

import asyncio
import fractions
import struct

import av
import numpy as np
import pytest

from exotel_voice.media.codecs import (
    ALAW_DECODE,
    ULAW_DECODE,
    G711Decoder,
    PyAvDecoder,
    alaw_encode,
    make_decoder,
    ulaw_encode,
)
from exotel_voice.media.jitter import MAX_CONCEAL_PACKETS, JitterBuffer, LeanReceiver, Packet
from exotel_voice.media.opus import OpusDecoder


def _av_codec(name: str, mode: str) -> object:
    codec = av.CodecContext.create(name, mode)
    codec.format = "s16"  # type: ignore[attr-defined]
    codec.layout = "mono"  # type: ignore[attr-defined]
    codec.sample_rate = 8000  # type: ignore[attr-defined]
    return codec


@pytest.mark.parametrize(
    ("av_name", "table"), [("pcm_mulaw", ULAW_DECODE), ("pcm_alaw", ALAW_DECODE)]
)
def test_g711_tables_decode_like_libavcodec(av_name: str, table: np.ndarray) -> None:
    codec = _av_codec(av_name, "r")
    frames = codec.decode(av.Packet(bytes(range(256))))  # type: ignore[attr-defined]
    reference = frames[0].to_ndarray().reshape(-1)
    assert np.array_equal(table, reference)


@pytest.mark.parametrize(
    ("encode", "table", "zero_codes"),
    [(ulaw_encode, ULAW_DECODE, {0x7F, 0xFF}), (alaw_encode, ALAW_DECODE, set())],
)
def test_g711_encode(encode, table, zero_codes) -> None:  # type: ignore[no-untyped-def]
    # Every code's own level encodes back to that code (µ-law has two zeros).
    codes = np.frombuffer(encode(table), dtype=np.uint8)
    for code in range(256):
        if code not in zero_codes:
            assert codes[code] == code
    # Quantisation error is within half the step of each segment (at most 1/16 of
    # the level, plus the smallest step), and the extremes clip to the largest level.
    values = np.arange(-32768, 32768, dtype=np.int32)
    decoded = table[np.frombuffer(encode(values.astype(np.int16)), dtype=np.uint8)]
    error = np.abs(decoded.astype(np.int32) - values)
    assert np.all(error <= np.abs(values) // 16 + 16)
    assert decoded[0] == table.min() and decoded[-1] == table.max()


def test_g711_encode_matches_libavcodec_closely() -> None:
    """Reference-encoder boundaries differ from ffmpeg's nearest-level table by one
    step at a few segment edges only; both are valid G.711."""
    codec = _av_codec("pcm_mulaw", "w")
    codec.time_base = fractions.Fraction(1, 8000)  # type: ignore[attr-defined]
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(8000) * 4000).clip(-32768, 32767).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(x.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = 8000
    frame.pts = 0
    frame.time_base = fractions.Fraction(1, 8000)
    reference = b"".join(bytes(p) for p in codec.encode(frame))  # type: ignore[attr-defined]
    ours = ulaw_encode(x)
    assert len(reference) == len(ours) == 8000
    theirs_codes = np.frombuffer(reference, np.uint8)
    ours_codes = np.frombuffer(ours, np.uint8)
    assert np.count_nonzero(theirs_codes != ours_codes) < 0.03 * x.size
    # Where they differ, both are one step apart: within a segment step of the input.
    bound = np.abs(x.astype(np.int32)) // 16 + 16
    for codes in (theirs_codes, ours_codes):
        assert np.all(np.abs(ULAW_DECODE[codes].astype(np.int32) - x) <= bound)


def test_make_decoder() -> None:
    assert isinstance(make_decoder("PCMU", 8000), G711Decoder)
    assert isinstance(make_decoder("pcma", 8000), G711Decoder)
    opus = make_decoder("opus", 48000)
    assert isinstance(opus, OpusDecoder) and opus.sample_rate == 48000  # libopus directly
    assert make_decoder("G722", 8000).sample_rate == 16000  # type: ignore[union-attr]
    assert make_decoder("telephone-event", 8000) is None
    decoder = make_decoder("PCMU", 8000)
    assert decoder is not None
    assert decoder.decode(ulaw_encode(np.full(160, 1000, np.int16))).tolist() == [988] * 160


def test_opus_decoder_is_mono_and_tolerates_garbage() -> None:
    encoder = av.CodecContext.create("libopus", "w")
    encoder.format = "s16"  # type: ignore[attr-defined]
    encoder.layout = "mono"  # type: ignore[attr-defined]
    encoder.sample_rate = 48000  # type: ignore[attr-defined]
    encoder.time_base = fractions.Fraction(1, 48000)  # type: ignore[attr-defined]
    decoder = PyAvDecoder("libopus", 48000)
    out = []
    t = np.arange(960 * 10) / 48000
    pcm = (np.sin(2 * np.pi * 1000 * t) * 8000).astype(np.int16)
    for i in range(10):
        frame = av.AudioFrame.from_ndarray(
            pcm[i * 960 : (i + 1) * 960].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = 48000
        frame.pts = i * 960
        frame.time_base = fractions.Fraction(1, 48000)
        for packet in encoder.encode(frame):  # type: ignore[attr-defined]
            out.append(decoder.decode(bytes(packet)))
    assert out and all(chunk.dtype == np.int16 and chunk.ndim == 1 for chunk in out)
    assert {chunk.size for chunk in out} == {960}
    assert decoder.decode(b"\xff\xff\xff").size in (0, 960, 2880)  # no exception


# -- JitterBuffer -------------------------------------------------------------------------


def seqs(packets: list[Packet]) -> list[tuple[int, bool]]:
    return [(p.seq, p.payload is not None) for p in packets]


def push(buffer: JitterBuffer, seq: int, now: float, ssrc: int = 1) -> list[Packet]:
    return buffer.push(ssrc, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, 0, b"x", now)


def test_in_order_packets_are_released_at_once() -> None:
    buffer = JitterBuffer()
    for i in range(5):
        assert seqs(push(buffer, 100 + i, i * 0.02)) == [(100 + i, True)]
        assert buffer.deadline() is None
    assert buffer.late == buffer.lost == 0


def test_reordered_packet_fills_the_hole_before_the_deadline() -> None:
    buffer = JitterBuffer(min_wait=0.02)
    assert seqs(push(buffer, 1, 0.0)) == [(1, True)]
    assert push(buffer, 3, 0.04) == []
    assert buffer.deadline() == pytest.approx(0.06)
    assert push(buffer, 4, 0.05) == []
    assert seqs(push(buffer, 2, 0.055)) == [(2, True), (3, True), (4, True)]
    assert buffer.deadline() is None and buffer.lost == 0


def test_hole_is_declared_lost_at_the_deadline_and_late_packet_dropped() -> None:
    buffer = JitterBuffer(min_wait=0.02)
    push(buffer, 1, 0.0)
    push(buffer, 4, 0.06)
    assert buffer.expire(0.07) == []  # not yet
    released = buffer.expire(0.08)
    assert seqs(released) == [(2, False), (3, False), (4, True)]
    assert buffer.lost == 2 and buffer.deadline() is None
    assert push(buffer, 2, 0.09) == []
    assert buffer.late == 1
    assert seqs(push(buffer, 5, 0.1)) == [(5, True)]


def test_second_hole_gets_its_own_wait() -> None:
    buffer = JitterBuffer(min_wait=0.02)
    push(buffer, 1, 0.0)
    push(buffer, 3, 0.04)
    push(buffer, 5, 0.08)
    assert seqs(buffer.expire(0.06)) == [(2, False), (3, True)]
    assert buffer.deadline() == pytest.approx(0.08)
    assert seqs(push(buffer, 4, 0.07)) == [(4, True), (5, True)]


def test_sequence_wrap_duplicates_and_restarts() -> None:
    buffer = JitterBuffer()
    assert seqs(push(buffer, 0xFFFE, 0.0)) == [(0xFFFE, True)]
    assert seqs(push(buffer, 0xFFFF, 0.02)) == [(0xFFFF, True)]
    assert seqs(push(buffer, 0x10000, 0.04)) == [(0, True)]
    assert push(buffer, 0xFFFF, 0.05) == []  # duplicate / late
    assert buffer.late == 1
    # A big jump (sender restart without a new SSRC) and a new SSRC both restart.
    assert seqs(push(buffer, 30000, 0.06)) == [(30000, True)]
    assert seqs(push(buffer, 7, 0.08, ssrc=2)) == [(7, True)]
    assert buffer.restarts == 2


def test_too_many_held_packets_release_the_hole() -> None:
    buffer = JitterBuffer(max_wait=10.0, min_wait=10.0)
    push(buffer, 1, 0.0)
    released: list[Packet] = []
    for i in range(3, 60):
        released += push(buffer, i, i * 0.02)
    assert (2, False) in seqs(released)
    assert seqs(released)[-1] == (59, True)


def feed(buffer: JitterBuffer, start: int, count: int, spread: float,
         rng: np.random.Generator) -> int:
    """Send packets ``start`` to ``start + count`` (one per 20 ms, packet ``i`` at
    ``i * 20 ms``) through a network of 20 ms + N(0, spread) delay (reordering
    included), calling expire() as a loop would; return how many packets came out
    (played or lost)."""
    sends = (start + np.arange(count)) * 0.02
    arrivals = sends + np.maximum(0.0, 0.02 + rng.normal(0.0, spread, count))
    out = 0
    for index in np.argsort(arrivals):
        at = float(arrivals[index])
        deadline = buffer.deadline()
        while deadline is not None and deadline <= at:
            out += len(buffer.expire(deadline))
            deadline = buffer.deadline()
        out += len(push(buffer, start + int(index), at))
    deadline = buffer.deadline()
    while deadline is not None:
        out += len(buffer.expire(deadline))
        deadline = buffer.deadline()
    return out


def test_wait_grows_under_jitter_and_shrinks_back_after() -> None:
    rng = np.random.default_rng(16)
    buffer = JitterBuffer(clock_rate=8000)
    # Clean network: the wait stays at its floor, today's latency of a hole.
    feed(buffer, 0, 500, 0.0, rng)
    assert buffer.wait == buffer.min_wait and buffer.late == buffer.lost == 0
    # 20 ms +- 15 ms: the wait grows to cover the measured delays...
    out = feed(buffer, 500, 1500, 0.015, rng)
    jittery_wait = buffer.wait
    assert 2 * buffer.min_wait < jittery_wait <= buffer.max_wait

    # ... and nothing was played out of order: every packet came out once, in order,
    # a late one (arrived after its slot was concealed) was counted and dropped.
    assert out == 1500
    assert buffer.late < 0.02 * 1500
    # Clean again: the wait comes back down, gradually (not at the first calm packet).
    feed(buffer, 2000, 100, 0.0, rng)
    assert buffer.min_wait < buffer.wait < jittery_wait
    feed(buffer, 2100, 1000, 0.0, rng)
    assert buffer.wait == buffer.min_wait


def test_late_packets_are_counted_and_never_released() -> None:
    buffer = JitterBuffer(min_wait=0.02)
    released = seqs(push(buffer, 1, 0.0)) + seqs(push(buffer, 3, 0.04))
    released += seqs(buffer.expire(0.07))
    assert push(buffer, 2, 0.08) == [] and buffer.late == 1
    released += seqs(push(buffer, 4, 0.081))
    assert released == [(1, True), (2, False), (3, True), (4, True)]


# -- LeanReceiver ---------------------------------------------------------------------------


def rtp(seq: int, pt: int = 0, payload: bytes = b"", *, extension: bool = False) -> bytes:
    first = 0x90 if extension else 0x80
    header = struct.pack("!BBHII", first, pt, seq & 0xFFFF, seq * 160, 0x1234)
    if extension:
        header += struct.pack("!HH", 0xBEDE, 1) + b"\x10\xff\x00\x00"
    return header + payload


async def test_lean_receiver_decodes_conceals_and_ignores_other_payload_types() -> None:
    got: list[tuple[np.ndarray, int]] = []
    receiver = LeanReceiver(lambda s, r: got.append((s, r)), {0: ("PCMU", 8000)})
    tone = ulaw_encode(np.full(160, 2000, np.int16))
    assert receiver.handle(rtp(1, payload=tone))
    assert receiver.handle(rtp(2, payload=tone, extension=True))
    assert not receiver.handle(rtp(3, pt=101, payload=b"\x01\x00\x00\xa0"))
    assert len(got) == 2 and got[0][1] == 8000 and got[1][0].size == 160
    assert int(got[0][0][0]) == int(ULAW_DECODE[tone[0]])
    # A one-packet hole: packet 4 is held until the reorder wait passes, then the
    # hole becomes 20 ms of concealment (the signal goes on: no silence) and packet 4.
    assert receiver.handle(rtp(4, payload=tone))
    assert len(got) == 2
    async with asyncio.timeout(2):
        while len(got) < 4:
            await asyncio.sleep(0.005)
    assert got[2][0].size == 160 and np.all(got[2][0] > 1000)
    assert got[3][0].any()
    stats = receiver.stats()
    assert stats.frames_decoded == 3 and stats.frames_concealed == 1
    assert stats.packets_lost == 1 and stats.packets_late == 0
    assert stats.concealed_samples == 160 and stats.concealment_events == 1
    assert stats.target_delay_ms >= 10.0
    receiver.close()
    assert not receiver.handle(rtp(5, payload=tone))


async def test_lean_receiver_does_not_conceal_long_holes() -> None:
    got: list[np.ndarray] = []
    receiver = LeanReceiver(lambda s, r: got.append(s), {8: ("PCMA", 8000)})
    frame = alaw_encode(np.full(160, 500, np.int16))
    receiver.handle(rtp(1, pt=8, payload=frame))
    receiver.handle(rtp(1 + MAX_CONCEAL_PACKETS + 2, pt=8, payload=frame))
    async with asyncio.timeout(2):
        while len(got) < 2:
            await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)
    assert len(got) == 2 and receiver.stats().frames_concealed == 0
    receiver.close()


# -- concealment on the receiver ---------------------------------------------------------


def speech_like(rate: int, seconds: float = 1.0) -> np.ndarray:
    """A voiced, gliding, amplitude-modulated signal (a stand-in for speech)."""
    t = np.arange(int(rate * seconds)) / rate
    f0 = 140 + 20 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    return (x * 4000 * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.int16)


async def receive(packets: list[bytes], codecs: dict[int, tuple[str, int]],
                  frames: int) -> tuple[list[np.ndarray], LeanReceiver]:
    got: list[np.ndarray] = []
    receiver = LeanReceiver(lambda s, r: got.append(s), codecs)
    for packet in packets:
        receiver.handle(packet)
    async with asyncio.timeout(5):
        while len(got) < frames:
            await asyncio.sleep(0.005)
    receiver.close()
    return got, receiver


def level(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64), b.astype(np.float64))[0, 1])


async def test_pcmu_lost_packet_is_concealed_at_the_neighbours_level() -> None:
    x = speech_like(8000)
    packets = [rtp(i, payload=ulaw_encode(x[i * 160 : (i + 1) * 160])) for i in range(30)]
    del packets[15]
    got, receiver = await receive(packets, {0: ("PCMU", 8000)}, 30)
    assert all(frame.size == 160 for frame in got)
    concealed = got[15]
    assert 0.7 < level(concealed) / level(got[14]) < 1.3
    assert correlation(concealed, x[15 * 160 : 16 * 160]) > 0.5
    stats = receiver.stats()
    assert stats.frames_concealed == 1 and stats.concealed_samples == 160


async def test_pcmu_lost_packet_before_a_pause_fades_to_the_next_packets_level() -> None:
    """The packet that showed the hole is quiet (the word ended inside the lost frame):
    the concealment ends at its level instead of repeating the voice to the end."""
    x = speech_like(8000)
    x[16 * 160 :] //= 50  # -34 dB from frame 16 on
    packets = [rtp(i, payload=ulaw_encode(x[i * 160 : (i + 1) * 160])) for i in range(30)]
    del packets[15]
    got, _ = await receive(packets, {0: ("PCMU", 8000)}, 30)
    concealed = got[15]
    assert level(concealed[:20]) > 0.5 * level(got[14])
    assert level(concealed[-20:]) < 0.2 * level(got[14])


def opus_packets(x: np.ndarray) -> list[bytes]:
    from exotel_voice.media.opus import OpusEncoder

    encoder = OpusEncoder()
    return [rtp(i, pt=111, payload=encoder.encode(x[i * 960 : (i + 1) * 960]))
            for i in range(x.size // 960)]


async def test_opus_lost_packet_is_concealed_and_rebuilt_from_fec() -> None:
    x = speech_like(48000)
    packets = opus_packets(x)
    reference = OpusDecoder()
    clean = [reference.decode(p[12:]) for p in packets]
    lost = 30
    original = clean[lost]

    # The next packet carries the lost frame's FEC: the frame comes back close to what
    # was sent, much closer than libopus's concealment gets.
    with_fec = packets[:lost] + packets[lost + 1 :]
    got, receiver = await receive(with_fec, {111: ("opus", 48000)}, len(packets))
    fec_frame = got[lost]
    assert receiver.stats().fec_frames == 1
    assert receiver.stats().concealed_samples == 960

    # Without it (the next packet's FEC stripped: it is lost too, the one after arrives
    # first), the first lost frame gets libopus's own concealment: not silence.
    no_fec = packets[:lost] + packets[lost + 2 :]
    got2, receiver2 = await receive(no_fec, {111: ("opus", 48000)}, len(packets))
    plc_frame = got2[lost]
    assert receiver2.stats().frames_concealed == 2
    assert receiver2.stats().concealment_events == 1
    assert level(plc_frame) > 0.5 * level(clean[lost - 1])

    assert 0.8 < level(fec_frame) / level(original) < 1.2
    assert correlation(fec_frame, original) > 0.9
    assert correlation(fec_frame, original) > correlation(plc_frame, original)
    # What is left of the waveform's error: a small fraction of the concealment's.
    fec_error = level(fec_frame.astype(np.int32) - original)
    plc_error = level(plc_frame.astype(np.int32) - original)
    assert fec_error < 0.3 * plc_error


async def test_late_packet_after_concealment_is_counted_not_played() -> None:
    x = speech_like(8000, 0.2)
    payloads = [ulaw_encode(x[i * 160 : (i + 1) * 160]) for i in range(10)]
    got_frames: list[np.ndarray] = []
    receiver = LeanReceiver(lambda s, r: got_frames.append(s), {0: ("PCMU", 8000)})
    for i in (0, 1, 3):
        receiver.handle(rtp(i, payload=payloads[i]))
    async with asyncio.timeout(2):
        while len(got_frames) < 4:
            await asyncio.sleep(0.005)
    receiver.handle(rtp(2, payload=payloads[2]))  # too late: its slot was concealed
    receiver.handle(rtp(4, payload=payloads[4]))
    assert len(got_frames) == 5
    assert np.array_equal(got_frames[4], ULAW_DECODE[np.frombuffer(payloads[4], np.uint8)])
    stats = receiver.stats()
    assert stats.packets_late == 1 and stats.frames_decoded == 4 and stats.frames_concealed == 1
    receiver.close()


# -- losses given up on time (no later packet needed) -------------------------------------


def _on_time(buffer: JitterBuffer, seq: int, at: float, ts: int | None = None) -> list[Packet]:
    """Push packet ``seq`` (timestamp ``seq * 160`` unless given) arriving at ``at``,
    after calling expire() at every deadline before it, as the receiver's timer would;
    return everything released, in order."""
    out: list[Packet] = []
    deadline = buffer.deadline()
    while deadline is not None and deadline <= at:
        out += buffer.expire(deadline)
        deadline = buffer.deadline()
    out += buffer.push(1, seq, seq * 160 if ts is None else ts, 0, b"x", at)
    return out


def test_a_burst_is_concealed_frame_by_frame_on_time_then_audio_resumes() -> None:
    buffer = JitterBuffer(conceal_on_time=True)
    released: list[tuple[float, int, bool]] = []  # (when, seq, lost)

    def run_until(at: float) -> None:
        deadline = buffer.deadline()
        while deadline is not None and deadline <= at:
            released.extend((deadline, p.seq, p.payload is None) for p in buffer.expire(deadline))
            deadline = buffer.deadline()

    for seq in [*range(40), *range(50, 55)]:  # 5 ms transit; 40..49 lost
        at = seq * 0.02 + 0.005
        run_until(at)
        pushed = buffer.push(1, seq, seq * 160, 0, b"x", at)
        released.extend((at, p.seq, p.payload is None) for p in pushed)
    run_until(1.1)
    assert [seq for _, seq, _ in released] == list(range(55))
    lost = [(at, seq) for at, seq, gone in released if gone]
    assert [seq for _, seq in lost] == list(range(40, 50))
    # Each lost frame is given up on alone, one frame plus the reorder wait after its
    # audio was due: a frame every 20 ms through the burst, not all at its end.
    for at, seq in lost:
        assert at == pytest.approx(seq * 0.02 + 0.005 + 0.02 + buffer.wait)
    # The audio after the burst is released as it comes (packet 30 with the last lost
    # slot, whose deadline comes right after it: its FEC is at hand).
    assert [(round(at, 3), seq) for at, seq, gone in released if not gone][40:] == [
        (1.015, 50), (1.025, 51), (1.045, 52), (1.065, 53), (1.085, 54)]
    assert buffer.late == 0 and buffer.lost == 10


def test_no_deadline_passes_while_packets_come_on_time() -> None:
    buffer = JitterBuffer(conceal_on_time=True)
    rng = np.random.default_rng(1)
    for seq in range(500):  # 0-8 ms of transit noise: under the 10 ms wait
        assert all(p.payload is not None
                   for p in _on_time(buffer, seq, seq * 0.02 + float(rng.uniform(0, 0.008))))
    assert buffer.lost == 0 and buffer.late == 0


def test_a_packet_for_a_slot_concealed_on_time_is_late_and_dropped() -> None:
    buffer = JitterBuffer(conceal_on_time=True)
    for seq in range(30):
        _on_time(buffer, seq, seq * 0.02)
    gone = buffer.expire(buffer.deadline() or 0.0)  # packet 30 overdue
    assert [(p.seq, p.payload) for p in gone] == [(30, None)]
    assert buffer.push(1, 30, 30 * 160, 0, b"x", 0.635) == []  # its slot was played
    assert buffer.late == 1
    assert [p.seq for p in _on_time(buffer, 31, 0.64)] == [31]


def test_audio_after_a_pause_is_not_taken_for_late_packets() -> None:
    """The far end stops sending (DTX, a pause) and resumes with the next sequence
    number and a later timestamp: the slots concealed meanwhile were no loss."""
    buffer = JitterBuffer(conceal_on_time=True)
    for seq in range(30):
        _on_time(buffer, seq, seq * 0.02)
    out = _on_time(buffer, 30, 2.4, ts=120 * 160)  # 1.8 s later, media time too
    assert [(p.seq, p.payload is None) for p in out][-1] == (30, False)
    assert buffer.late == 0 and buffer.lost == 0
    assert [p.seq for p in _on_time(buffer, 31, 2.42, ts=121 * 160)] == [31]


async def test_lean_receiver_conceals_a_burst_before_the_next_packet_arrives() -> None:
    """A consumer with a short buffer hears concealment during a burst of losses, not
    silence until the packet after the burst shows it."""
    x = speech_like(8000)
    payloads = [ulaw_encode(x[i * 160 : (i + 1) * 160]) for i in range(45)]
    got: list[np.ndarray] = []
    receiver = LeanReceiver(lambda s, r: got.append(s), {0: ("PCMU", 8000)})
    loop = asyncio.get_running_loop()
    start = loop.time()
    for seq in [*range(30), *range(35, 45)]:  # 30..34 lost
        await asyncio.sleep(max(0.0, start + seq * 0.02 - loop.time()))
        if seq == 35:
            # Packet 35 is only now arriving; the burst was concealed as it happened.
            assert len(got) >= 33
            assert receiver.stats().frames_concealed == len(got) - 30
            # (The pitch repeat fades out after 60 ms, as G.711 Appendix I's does.)
            assert all(level(frame) > 0.3 * level(got[29]) for frame in got[30:32])
        receiver.handle(rtp(seq, payload=payloads[seq]))
    receiver.close()
    stats = receiver.stats()
    assert stats.frames_concealed == 5 and stats.frames_decoded == 40
    assert stats.concealment_events == 1 and stats.packets_late == 0
    assert len(got) == 45
    assert np.array_equal(got[44], ULAW_DECODE[np.frombuffer(payloads[44], np.uint8)])
