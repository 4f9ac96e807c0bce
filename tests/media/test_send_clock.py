"""The shared send clock keeps every leg at 50 frames a second when its ticks come late.

The clock runs on a virtual time here (``SendClock._now`` / ``_sleep``): time moves only
when the clock sleeps, and once it jumps ahead as if the loop (or the whole process) had
been stalled.  Every leg must then still send the frames of the elapsed time, in order,
with RTP timestamps that follow the media (160 per 20 ms of PCMU), or, past the clock's
bound, drop whole frames, counted, with the timestamps advanced over the gap.
"""

from __future__ import annotations

import asyncio
import struct
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from exotel_voice.media.dtmf import rtp_payload
from exotel_voice.media.sender import (
    MAX_LATE_FRAMES,
    PHASE_FILL,
    AudioEncoder,
    LeanSender,
    SendClock,
)


FRAME = 0.02
#: The schedule ends here: every sub-tick of the 50 frames of the first second is due before.
END = 1.0025
FRAMES = 50


class FakeTransport:
    def __init__(self) -> None:
        self.state = "connected"
        self.sent: list[bytes] = []

    async def _send_rtp(self, data: bytes) -> None:
        self.sent.append(data)


class VirtualTime:
    """Time that moves when the clock sleeps; at ``stall_at`` it jumps ``stall`` further once
    (nothing ran meanwhile); past ``END`` the clock's sleep never returns."""

    def __init__(self, stall_at: float, stall: float) -> None:
        self.now = 0.0
        self.stall_at = stall_at
        self.stall = stall
        self.stalled = False
        self.ended = asyncio.Event()

    def time(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now += delay
        if not self.stalled and self.now >= self.stall_at:
            self.stalled = True
            self.now += self.stall
        if self.now > END:
            self.ended.set()
            await asyncio.get_running_loop().create_future()
        await asyncio.sleep(0)


def labelled_sender(transport: FakeTransport) -> LeanSender:
    """A PCMU-clocked leg whose source numbers its frames 0, 1, 2, ... and whose payload
    carries that number, so each packet says which 20 ms of the source it holds."""
    counter = iter(range(10**6))
    sender = LeanSender(
        transport,
        SimpleNamespace(_ssrc=0x1234),
        lambda rate: np.full(rate // 50, next(counter), np.int16),
        lambda: True,
    )
    sender.configure("PCMU", 8000, 0)
    sender._encoder = AudioEncoder(8000, 160, lambda samples: samples[:1].tobytes())
    sender.set_header_extensions(SimpleNamespace(muxId=None, headerExtensions=[]))
    return sender


async def run_clock(stall: float, legs: int = 2 * PHASE_FILL + 3) -> tuple[SendClock, list[Any]]:
    """``legs`` senders (over three sub-ticks) for one virtual second, the loop stalled
    ``stall`` seconds once at 0.3 s.  Returns the clock and ``(sender, packets)`` per leg."""
    clock = SendClock(asyncio.get_running_loop(), encode_thread=False)
    virtual = VirtualTime(0.3, stall)
    clock._now, clock._sleep = virtual.time, virtual.sleep
    transports = [FakeTransport() for _ in range(legs)]
    senders = [labelled_sender(t) for t in transports]
    for sender in senders:
        clock.add(sender)
    assert len({clock.phase_of(s) for s in senders}) == 3
    async with asyncio.timeout(10):
        await virtual.ended.wait()
        # The sub-ticks still in flight finish (the schedule itself is stopped): until
        # every frame is accounted for, or nothing moved for half a second.
        still = 0
        while still < 25:
            counts = [s.frames_sent + s.frames_dropped for s in senders]
            if min(counts) >= FRAMES:
                break
            await asyncio.sleep(0.02)
            moved = counts != [s.frames_sent + s.frames_dropped for s in senders]
            still = 0 if moved else still + 1
    for sender in senders:
        clock.remove(sender)
    return clock, [(s, t.sent) for s, t in zip(senders, transports, strict=True)]


def decode(packets: list[bytes]) -> tuple[list[int], list[int], list[int], list[int]]:
    """Sequence numbers, timestamps, markers and source frame numbers of ``packets``."""
    seqs = [struct.unpack_from("!H", p, 2)[0] for p in packets]
    stamps = [struct.unpack_from("!I", p, 4)[0] for p in packets]
    markers = [p[1] >> 7 for p in packets]
    labels = [int(np.frombuffer(rtp_payload(p), np.int16)[0]) for p in packets]
    return seqs, stamps, markers, labels


def check_media_timing(packets: list[bytes]) -> list[int]:
    """Consecutive sequence numbers, each source frame at most once and in order, and every
    timestamp 160 per frame of source media from the first: returns the frame numbers."""
    seqs, stamps, _, labels = decode(packets)
    assert [(s - seqs[0]) & 0xFFFF for s in seqs] == list(range(len(seqs)))
    assert labels == sorted(set(labels))
    assert [(t - stamps[0]) & 0xFFFFFFFF for t in stamps] == [
        160 * (label - labels[0]) for label in labels
    ]
    return labels


@pytest.mark.parametrize("stall", [0.05, 0.15])
async def test_a_late_tick_sends_the_missed_frames_so_each_leg_keeps_50_per_second(
    stall: float,
) -> None:
    """A stall within the bound: every frame of the elapsed second is sent, none lost or
    repeated, timestamps 160 apart, nothing counted as dropped."""
    assert stall < MAX_LATE_FRAMES * FRAME
    clock, legs = await run_clock(stall)
    for sender, packets in legs:
        assert check_media_timing(packets) == list(range(FRAMES))
        assert sender.frames_sent == FRAMES and sender.frames_dropped == 0
        assert decode(packets)[2] == [1] + [0] * (FRAMES - 1)  # one talkspurt
    assert clock.resyncs == 0


async def test_past_the_bound_the_late_frames_are_dropped_counted_and_timestamped() -> None:
    """A stall past the bound: the frames of the late period are dropped (whole frames,
    the same number for every leg, counted), the source moves on past them and the RTP
    timestamps jump over them, so the far end plays the rest at the right time; sequence
    numbers stay consecutive and the first packet after the gap has the marker bit."""
    stall = 0.6
    clock, legs = await run_clock(stall)
    dropped = {sender.frames_dropped for sender, _ in legs}
    assert len(dropped) == 1
    gap = dropped.pop()
    assert stall / FRAME - MAX_LATE_FRAMES <= gap <= stall / FRAME + 1
    assert clock.resyncs == 1
    for sender, packets in legs:
        labels = check_media_timing(packets)
        assert sender.frames_sent == len(packets) == FRAMES - gap
        assert labels[0] == 0 and labels[-1] == FRAMES - 1  # the whole second accounted for
        jumps = [b - a for a, b in zip(labels, labels[1:], strict=False)]
        assert sorted(jumps)[-1] == gap + 1 and sorted(jumps)[-2] == 1  # one gap
        after_gap = jumps.index(gap + 1) + 1
        assert decode(packets)[2][after_gap] == 1


async def test_a_long_stall_moves_the_timestamp_on_without_reading_the_whole_gap() -> None:
    """After a very long stall (a suspended laptop) the timestamp moves on over the whole
    gap, every frame is counted, and the source is read for at most about a second."""
    reads = 0

    def read(rate: int) -> np.ndarray:
        nonlocal reads
        reads += 1
        return np.zeros(rate // 50, np.int16)

    transport = FakeTransport()
    sender = LeanSender(transport, SimpleNamespace(_ssrc=1), read, lambda: True)
    sender.configure("PCMU", 8000, 0)
    sender.set_header_extensions(SimpleNamespace(muxId=None, headerExtensions=[]))
    await sender.tick()
    sender.drop(3000)  # a minute
    await sender.tick()
    seqs, stamps, markers, _ = decode(transport.sent)
    assert (stamps[1] - stamps[0]) & 0xFFFFFFFF == 160 * 3001
    assert (seqs[1] - seqs[0]) & 0xFFFF == 1 and markers == [1, 1]
    assert sender.frames_dropped == 3000 and sender.frames_sent == 2
    assert reads <= 60
