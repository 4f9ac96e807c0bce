"""The playout buffer (media/playout.py) on an injected clock, and DeviceSink on a fake
sound card: what a listener hears when audio arrives late, early or in bursts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from exotel_voice.media import sinks
from exotel_voice.media.playout import PlayoutBuffer


RATE = 8000
N = 160


def voice(seconds: float) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    x = sum(np.sin(2 * np.pi * k * 150 * t) / k for k in range(1, 6))
    return (x * 5000).astype(np.int16)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run(buffer: PlayoutBuffer, clock: Clock, x: np.ndarray, start: int, count: int,
        spread: float, rng: np.random.Generator,
        pull: Any = None, push: Any = None,
        skip: frozenset[int] = frozenset()) -> tuple[list[np.ndarray | None], list[float]]:
    """Frames ``start..start+count`` of ``x`` sent every 20 ms, arriving after 20 ms +
    N(0, spread) in order (as a jitter buffer releases them), pulled every 20 ms by a
    clock 7 ms out of phase; returns what was played and the depth after each pull."""
    sends = (start + np.arange(count)) * 0.02
    arrivals = np.maximum.accumulate(sends + np.maximum(0.0, 0.02 + rng.normal(0, spread, count)))
    events = [(float(a), 0, i) for i, a in enumerate(arrivals)]
    events += [(float(s) + 0.007, 1, i) for i, s in enumerate(sends)]
    played: list[np.ndarray | None] = []
    depths: list[float] = []
    for at, kind, i in sorted(events):
        clock.now = at
        if kind == 0:
            if start + i not in skip:
                (push or buffer.push)(x[(start + i) * N : (start + i + 1) * N], RATE)
        else:
            played.append(pull() if pull is not None else buffer.pull(RATE))
            depths.append(buffer.depth_ms)
    return played, depths


def test_clean_arrivals_play_through_a_shallow_buffer() -> None:
    clock, rng = Clock(), np.random.default_rng(1)
    buffer = PlayoutBuffer(clock=clock)
    x = voice(12)
    played, depths = run(buffer, clock, x, 0, 500, 0.0, rng)
    assert played[0] is None  # prefetch
    out = np.concatenate([f for f in played if f is not None])
    assert buffer.stats().concealment_events == 0
    assert max(depths[5:]) <= 40.0
    # What was sent, in order and unchanged.
    assert np.array_equal(out[: 100 * N], x[: 100 * N])


def test_jitter_grows_the_buffer_as_far_as_needed_and_it_shrinks_after() -> None:
    clock, rng = Clock(), np.random.default_rng(2)
    buffer = PlayoutBuffer(clock=clock)
    x = voice(60)
    _, clean_depths = run(buffer, clock, x, 0, 250, 0.0, rng)
    clean_target = buffer.target_ms
    played, depths = run(buffer, clock, x, 250, 1500, 0.015, rng)
    jitter_target = buffer.target_ms
    assert jitter_target > clean_target + 20
    # Bounded: the depth follows the jitter instead of climbing.
    assert np.mean(depths[500:]) < 80.0
    assert max(depths) <= buffer.max_depth_ms
    # Underflows were covered with concealment, never with silence or a gap.
    assert all(f is not None and f.size == N for f in played)
    assert buffer.stats().concealment_events > 0
    assert min(float(np.sqrt(np.mean(f.astype(float) ** 2))) for f in played[10:]) > 500
    # The network calms down: the target and the depth come back down, gradually.
    _, depths_after = run(buffer, clock, x, 1750, 1000, 0.0, rng)
    assert buffer.target_ms == pytest.approx(clean_target)
    # (Back to the depth of the clean start, or a frame above it.)
    assert np.mean(depths_after[-100:]) <= np.mean(clean_depths[50:]) + 20.0
    assert np.mean(depths_after[-100:]) <= 40.0


@pytest.mark.parametrize("on_time", [True, False], ids=["on-time", "hole-found-late"])
def test_jitter_and_loss_together_do_not_make_the_buffer_cut_speech(on_time: bool) -> None:
    """Packets 20 +- 15 ms late (reordered) with 2 % lost, through the lean receive
    path's jitter buffer (holes concealed), into the playout buffer: what the jitter
    needs is concealed or waited for once, not cut out again and again.  Also with the
    losses found only by the packet after them (concealment and that packet then come
    together, a frame late), as any source that conceals late does."""
    from exotel_voice.media.jitter import JitterBuffer

    clock, rng = Clock(), np.random.default_rng(7)
    buffer = PlayoutBuffer(clock=clock)
    receive = JitterBuffer(conceal_on_time=on_time)
    x = voice(22)
    count = 1000  # 20 s
    lost = rng.random(count) < 0.02
    arrivals = np.arange(count) * 0.02 + np.maximum(0.0, rng.normal(0.02, 0.015, count))
    events = [(float(arrivals[i]), 0, i) for i in range(count) if not lost[i]]
    events += [(i * 0.02 + 0.007, 1, i) for i in range(count + 25)]
    events.sort()

    def play(packets: list[Any]) -> None:
        for p in packets:  # a lost frame is 20 ms of the receiver's concealment
            buffer.push(x[p.seq * N : (p.seq + 1) * N], RATE)

    pulled = 0
    for at, kind, i in events:
        deadline = receive.deadline()
        while deadline is not None and deadline <= at:
            clock.now = deadline
            play(receive.expire(deadline))
            deadline = receive.deadline()
        clock.now = at
        if kind == 0:
            play(receive.push(1, i, i * N, 0, b"x", at))
        else:
            pulled += buffer.pull(RATE) is not None
    stats = buffer.stats()
    assert pulled > count - 10
    # Before (holes released only with the packet after them, a 0.2 s compression
    # window at the 95th percentile): 170-270 ms of speech cut out in 20 s, and
    # 280-380 ms concealed, the buffer cutting what the next late frame then needed.
    assert stats.removed_samples <= (0.02 if on_time else 0.05) * RATE  # 20/50 ms
    assert stats.concealed_samples <= (0.2 if on_time else 0.25) * RATE  # 200/250 ms


def test_a_burst_is_compressed_gently_not_dropped() -> None:
    clock = Clock()
    buffer = PlayoutBuffer(clock=clock)
    x = voice(10)
    # 160 ms arrive at once (a stalled path catching up), then one frame per 20 ms.
    for i in range(8):
        buffer.push(x[i * N : (i + 1) * N], RATE)
    depths = []
    for k in range(300):
        clock.now = k * 0.02 + 0.001
        buffer.push(x[(8 + k) * N : (9 + k) * N], RATE)
        clock.now = k * 0.02 + 0.007
        frame = buffer.pull(RATE)
        assert frame is not None and frame.size == N
        depths.append(buffer.depth_ms)
    stats = buffer.stats()
    assert depths[-1] < depths[10] - 40  # the excess went away ...
    assert 0 < stats.removed_samples < 8 * N  # ... a pitch period at a time
    assert stats.concealment_events == 0


def test_a_start_up_burst_does_not_keep_the_buffer_deep() -> None:
    """The first 400 ms arrive at once (the path was slow while the call came up), then
    20 ms +- 15 ms jitter: the backlog goes and the buffer settles at what the jitter
    needs (it used to sit near 100 ms: the burst inflated the target for seconds, and the
    depth was held above target + hysteresis at its lowest, counting the jitter twice)."""
    for seed in range(3):
        clock, rng = Clock(), np.random.default_rng(seed)
        buffer = PlayoutBuffer(clock=clock)
        count = 750
        x = voice(count * 0.02 + 1)
        sends = np.arange(count) * 0.02
        delays = np.maximum(0.0, 0.02 + rng.normal(0, 0.015, count))
        arrivals = np.maximum.accumulate(sends + delays)
        arrivals[:20] = arrivals[20]
        events = sorted([(float(a), 0, i) for i, a in enumerate(arrivals)]
                        + [(float(s) + 0.007, 1, i) for i, s in enumerate(sends)])
        depths: list[float] = []
        for at, kind, i in events:
            clock.now = at
            if kind == 0:
                buffer.push(x[i * N : (i + 1) * N], RATE)
            else:
                buffer.pull(RATE)
                depths.append(buffer.depth_ms)
        late = np.mean(depths[count // 2 :])
        assert late < 65.0, f"seed {seed}: {late:.0f} ms, {buffer.stats()}"
        assert buffer.target_ms < 60.0
        assert buffer.stats().concealment_events < 10


def test_after_the_far_end_went_quiet_the_buffer_starts_shallow_again() -> None:
    """Hold or DTX: nothing arrives for a second, then audio flows again on a clean
    network; the gap is not taken for jitter (it used to push the target to the max)."""
    clock, rng = Clock(), np.random.default_rng(4)
    buffer = PlayoutBuffer(clock=clock)
    x = voice(30)
    run(buffer, clock, x, 0, 250, 0.0, rng)
    gap = [buffer.pull(RATE) for clock.now in (250 + np.arange(50)) * 0.02 + 0.007]
    assert gap[-1] is None  # a second of pulls with nothing pushed: waiting again
    # The sender resumes; its media continues where it stopped.
    played, depths = [], []
    for i in range(250):
        at = (300 + i) * 0.02
        clock.now = at + 0.02
        buffer.push(x[(250 + i) * N : (251 + i) * N], RATE)
        clock.now = at + 0.027
        played.append(buffer.pull(RATE))
        depths.append(buffer.depth_ms)
    assert buffer.target_ms < 20.0
    assert np.mean(depths[50:]) <= 40.0
    assert all(f is not None for f in played[5:])


def test_bad_depths_are_refused() -> None:
    with pytest.raises(ValueError, match="min_depth_ms"):
        PlayoutBuffer(min_depth_ms=50, max_depth_ms=20)


class FakeStream:
    def __init__(self, callback: Any, blocksize: int, **_: Any) -> None:
        self.callback = callback
        self.blocksize = blocksize
        self.started = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        pass

    def play(self) -> np.ndarray:
        out = np.zeros((self.blocksize, 1), dtype=np.int16)
        self.callback(out, self.blocksize, None, None)
        return out[:, 0].copy()


class FakeSoundDevice:
    def __init__(self) -> None:
        self.streams: list[FakeStream] = []

    def OutputStream(self, **kwargs: Any) -> FakeStream:  # noqa: N802 - sounddevice's name
        stream = FakeStream(**kwargs)
        self.streams.append(stream)
        return stream


def test_device_sink_plays_concealment_not_zeros_when_audio_is_late(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fake = FakeSoundDevice()
    monkeypatch.setattr(sinks, "import_sounddevice", lambda: fake)
    clock, rng = Clock(), np.random.default_rng(3)
    sink = sinks.DeviceSink(sample_rate=RATE)
    sink.playout = PlayoutBuffer(clock=clock)
    x = voice(30)
    sink.write(x[:N], RATE)  # opens the device
    stream = fake.streams[0]
    assert stream.started and stream.blocksize == N

    # The session writes frames as the network delivers them (20 +- 15 ms jitter, and
    # 60 ms that never come); the sound card pulls 20 ms every 20 ms.
    played, depths = run(sink.playout, clock, x, 1, 1000, 0.015, rng, pull=stream.play,
                         push=sink.write, skip=frozenset({500, 501, 502}))
    heard = played[20:]
    assert all(f is not None and f.size == N for f in heard)
    levels = [float(np.sqrt(np.mean(f.astype(float) ** 2))) for f in heard if f is not None]
    assert min(levels) > 500  # late audio was concealed: the speaker never went silent
    assert sink.playout.stats().concealment_events > 0
    assert np.mean(depths[200:]) < 80.0
    sink.close()
    assert not stream.started
