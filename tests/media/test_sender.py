"""The lean send path without a network: RTP packing, header extensions, the shared
clock, SR counters.  End to end (with SRTP, DTMF, hold) it runs in test_session.py.
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from exotel_voice.media.codecs import ULAW_DECODE, make_decoder
from exotel_voice.media.dtmf import rtp_payload
from exotel_voice.media.sender import (
    PHASE_FILL,
    PHASES,
    AudioEncoder,
    LeanSender,
    SendClock,
    audio_level,
    make_encoder,
)


class FakeTransport:
    def __init__(self) -> None:
        self.state = "connected"
        self.sent: list[bytes] = []

    async def _send_rtp(self, data: bytes) -> None:
        self.sent.append(data)


def fake_rtp_sender() -> Any:
    return SimpleNamespace(_ssrc=0xCAFEBABE)


def parameters(mid: str = "0") -> Any:
    ext = [
        SimpleNamespace(uri="urn:ietf:params:rtp-hdrext:sdes:mid", id=1),
        SimpleNamespace(uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level", id=2),
    ]
    return SimpleNamespace(muxId=mid, headerExtensions=ext)


def tone(rate: int, level: float = 0.5) -> np.ndarray:
    t = np.arange(rate // 50) / rate
    return (np.sin(2 * np.pi * 440 * t) * level * 32767).astype(np.int16)


def test_audio_level() -> None:
    assert audio_level(np.zeros(160, np.int16)) == 127
    assert audio_level(np.full(160, 32767, np.int16)) == 0
    assert audio_level(tone(8000, 0.5)) == 9  # -6 dB peak, -3 dB sine crest


@pytest.mark.parametrize(("name", "rate", "ticks"), [("PCMU", 8000, 160), ("opus", 48000, 960)])
def test_encoders_round_trip(name: str, rate: int, ticks: int) -> None:
    encoder = make_encoder(name)
    decoder = make_decoder(name, rate)
    assert encoder is not None and decoder is not None
    assert encoder.sample_rate == rate and encoder.ticks_per_frame == ticks
    decoded = [decoder.decode(encoder.encode(tone(rate))) for _ in range(10)]
    assert all(d.size == rate // 50 for d in decoded)
    assert np.abs(decoded[-1]).max() > 8000
    assert make_encoder("G722") is not None and make_encoder("nope") is None


async def test_packets_header_extensions_and_sender_report_counters() -> None:
    transport = FakeTransport()
    rtp_sender = fake_rtp_sender()
    sending = True
    sender = LeanSender(transport, rtp_sender, lambda rate: tone(rate), lambda: sending)
    sender.configure("PCMU", 8000, 0)
    await sender.tick()
    assert transport.sent == []  # not before aiortc's send() gave us the parameters
    sender.set_header_extensions(parameters())
    for _ in range(3):
        await sender.tick()
    sending = False
    await sender.tick()
    sending = True
    await sender.tick()
    assert len(transport.sent) == 4
    first = transport.sent[0]
    assert first[0] == 0x90  # V=2, extension
    markers = [p[1] >> 7 for p in transport.sent]
    assert markers == [1, 0, 0, 1]  # marker again after a pause in sending
    seqs = [struct.unpack_from("!H", p, 2)[0] for p in transport.sent]
    stamps = [struct.unpack_from("!I", p, 4)[0] for p in transport.sent]
    assert [(s - seqs[0]) & 0xFFFF for s in seqs] == [0, 1, 2, 3]
    assert [(t - stamps[0]) & 0xFFFFFFFF for t in stamps] == [0, 160, 320, 480]
    assert {struct.unpack_from("!I", p, 8)[0] for p in transport.sent} == {0xCAFEBABE}
    # One-byte header extensions: mid "0" (id 1) and the audio level (id 2), padded.
    profile, words = struct.unpack_from("!HH", first, 12)
    assert profile == 0xBEDE and words == 1
    assert first[16:20] == bytes([0x10, ord("0"), 0x20, 9])
    payload = rtp_payload(first)
    assert len(payload) == 160
    assert np.abs(ULAW_DECODE[np.frombuffer(payload, np.uint8)] - tone(8000)).max() < 600
    assert rtp_sender._RTCRtpSender__packet_count == 4
    assert rtp_sender._RTCRtpSender__octet_count == 640
    assert rtp_sender._RTCRtpSender__rtp_timestamp == stamps[-1]
    assert rtp_sender._RTCRtpSender__ntp_timestamp > 0


async def test_codec_change_gets_a_new_encoder_and_payload_type() -> None:
    transport = FakeTransport()
    sender = LeanSender(transport, fake_rtp_sender(), lambda rate: tone(rate), lambda: True)
    sender.set_header_extensions(SimpleNamespace(muxId=None, headerExtensions=[]))
    sender.configure("PCMU", 8000, 0)
    encoder = sender.encoder
    sender.configure("PCMU", 8000, 0)
    assert sender.encoder is encoder
    await sender.tick()
    sender.configure("PCMA", 8000, 8)
    assert sender.encoder is not encoder
    await sender.tick()
    assert [p[1] for p in transport.sent] == [0x80 | 0, 0x80 | 8]
    assert all(p[0] == 0x80 for p in transport.sent)  # no extensions negotiated


async def test_shared_clock_paces_every_leg_and_stops_when_empty() -> None:
    clock = SendClock.for_loop()
    assert SendClock.for_loop() is clock
    transports = [FakeTransport() for _ in range(3)]
    senders = []
    for transport in transports:
        sender = LeanSender(transport, fake_rtp_sender(), lambda rate: tone(rate), lambda: True)
        sender.configure("PCMU", 8000, 0)
        sender.set_header_extensions(SimpleNamespace(muxId=None, headerExtensions=[]))
        clock.add(sender)
        senders.append(sender)
    broken = LeanSender(FakeTransport(), fake_rtp_sender(), lambda rate: 1 / 0, lambda: True)  # type: ignore[arg-type,return-value]
    broken.configure("PCMU", 8000, 0)
    broken.set_header_extensions(SimpleNamespace(muxId=None, headerExtensions=[]))
    clock.add(broken)
    # Few legs share one sub-tick (one wake-up per frame); more are spread (see below).
    assert {clock.phase_of(s) for s in [*senders, broken]} == {0}
    assert clock.senders == sorted([*senders, broken], key=clock.phase_of)  # type: ignore[arg-type,return-value]
    async with asyncio.timeout(5):
        while min(len(t.sent) for t in transports) < 10:
            await asyncio.sleep(0.01)
    counts = [len(t.sent) for t in transports]
    assert max(counts) - min(counts) <= 1  # one tick serves every leg
    for sender in senders:
        clock.remove(sender)
    await asyncio.sleep(0.05)
    assert clock._task is None  # the failing sender was removed; no legs, no task
    frozen = [len(t.sent) for t in transports]
    await asyncio.sleep(0.06)
    assert [len(t.sent) for t in transports] == frozen


def opus_sender(transport: FakeTransport) -> LeanSender:
    sender = LeanSender(transport, fake_rtp_sender(), lambda rate: tone(rate), lambda: True)
    sender.configure("opus", 48000, 111)
    sender.set_header_extensions(parameters())
    sender._seq, sender._timestamp = 1000, 5000
    return sender


async def test_worker_thread_encode_gives_identical_packets() -> None:
    """A sub-tick's Opus frames encoded as one worker-thread job give the same packets,
    in the same order, as encoding them on the loop."""
    loop = asyncio.get_running_loop()
    threaded, inline = SendClock(loop), SendClock(loop, encode_thread=False)
    out_threaded = [FakeTransport() for _ in range(3)]
    out_inline = [FakeTransport() for _ in range(3)]
    senders_threaded = [opus_sender(t) for t in out_threaded]
    senders_inline = [opus_sender(t) for t in out_inline]
    assert all(s.encoder is not None and s.encoder.releases_gil for s in senders_threaded)
    for _ in range(20):
        await threaded.serve(senders_threaded)
        await inline.serve(senders_inline)
    assert threaded.thread_jobs == 20 and inline.thread_jobs == 0
    for a, b in zip(out_threaded, out_inline, strict=True):
        assert len(a.sent) == 20 and a.sent == b.sent
    threaded.remove(senders_threaded[0])  # no legs left: the worker thread is shut down
    assert threaded._executor is None


async def test_send_now_is_used_and_a_refusal_falls_back_to_the_awaited_path() -> None:
    transport = FakeTransport()
    sender = opus_sender(transport)
    taken: list[bytes] = []
    accept = True

    def send_now(packet: bytes) -> bool:
        if accept:
            taken.append(packet)
        return accept

    sender.send_now = send_now
    clock = SendClock(asyncio.get_running_loop(), encode_thread=False)
    await clock.serve([sender])
    accept = False
    await clock.serve([sender])
    assert len(taken) == 1 and len(transport.sent) == 1
    seqs = [struct.unpack_from("!H", p, 2)[0] for p in (*taken, *transport.sent)]
    assert seqs == [1000, 1001]


async def test_a_frame_encoded_for_a_replaced_encoder_is_dropped() -> None:
    transport = FakeTransport()
    sender = opus_sender(transport)
    frame = sender.read_frame()
    assert frame is not None
    encoder, samples = frame
    payload = encoder.encode(samples)
    sender.configure("PCMU", 8000, 0)  # the codec changed while the frame was encoded
    assert sender.deliver(encoder, samples, payload) is None
    assert sender.packets == 0


async def test_pipelined_sub_ticks_keep_each_legs_frames_in_order() -> None:
    """Sub-ticks are served as tasks while the worker encodes; however long a job takes,
    each leg's packets leave in the order its frames were read, with consecutive
    sequence numbers."""
    def slow_encode(samples: np.ndarray) -> bytes:
        time.sleep(random.uniform(0, 0.012))  # sometimes longer than a sub-tick
        return samples[:4].tobytes()

    clock = SendClock.for_loop()
    transports = [FakeTransport() for _ in range(6)]
    for transport in transports:
        counter = iter(range(1, 10**6))
        sender = LeanSender(
            transport,
            fake_rtp_sender(),
            lambda rate, c=counter: np.full(rate // 50, next(c), np.int16),  # type: ignore[misc]
            lambda: True,
        )
        sender.configure("PCMU", 8000, 0)
        sender._encoder = AudioEncoder(8000, 160, slow_encode, releases_gil=True)
        sender.set_header_extensions(SimpleNamespace(muxId=None, headerExtensions=[]))
        clock.add(sender)
    async with asyncio.timeout(20):
        while min(len(t.sent) for t in transports) < 15:
            await asyncio.sleep(0.02)
    for sender in list(clock.senders):
        clock.remove(sender)
    assert clock.thread_jobs > 0
    for transport in transports:
        labels = [np.frombuffer(rtp_payload(p), np.int16)[0] for p in transport.sent]
        assert labels == sorted(labels)
        seqs = [struct.unpack_from("!H", p, 2)[0] for p in transport.sent]
        assert [(s - seqs[0]) & 0xFFFF for s in seqs] == list(range(len(seqs)))


async def test_sub_ticks_fill_up_then_spread_evenly() -> None:
    clock = SendClock(asyncio.get_running_loop())
    clock._task = SimpleNamespace(done=lambda: False)  # type: ignore[assignment]  # no clock runs
    senders = [
        LeanSender(FakeTransport(), fake_rtp_sender(), lambda rate: tone(rate), lambda: True)
        for _ in range(PHASES * PHASE_FILL + PHASES * 3)
    ]
    for sender in senders[:PHASE_FILL]:
        clock.add(sender)
    assert {clock.phase_of(s) for s in senders[:PHASE_FILL]} == {0}
    clock.add(senders[PHASE_FILL])
    assert clock.phase_of(senders[PHASE_FILL]) == 1  # the first sub-tick is full
    for sender in senders[PHASE_FILL + 1:]:
        clock.add(sender)
    sizes = [len(phase) for phase in clock._phases]
    assert sum(sizes) == len(senders) and max(sizes) - min(sizes) <= 1
