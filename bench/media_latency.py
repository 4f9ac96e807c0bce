"""One-way audio latency on loopback: a click injected at one end, found at the other.

What is measured
----------------
Two legs in one process (one event loop) call each other over 127.0.0.1 with
ICE + DTLS-SRTP.  The sending end's source emits a short click (a 4 ms Hann-shaped
2 kHz burst) every 200-300 ms at a random offset inside a 20 ms frame; the time
the click enters the send path is the moment its frame is handed to the encoder
plus its offset in the frame.  The receiving end timestamps every decoded frame
when it is handed to the application (a sink / ``track.recv()``), gives each
sample the time ``frame time + index / rate``, and finds each click by
cross-correlating the received stream with the click.  Latency = receive time -
send time, so a pipe that handed frames over instantly would measure 0.

Included: pacing slack, encoding, RTP/SRTP, UDP on loopback, the receive jitter
buffer, decoding, thread hops.  Not included: the 20 ms a real capture device
needs to fill a frame, and a playout device's buffer (there is none on a server).

Peers, each with Opus and with PCMU, all in the same run:

* ``aiortc``: two raw ``RTCPeerConnection``s with aiortc's defaults (its
  receiver: fixed 80 ms prefetch jitter buffer + decoder thread); only host
  candidates are pointed at 127.0.0.1, with the same ICE hook the SDK uses.
* ``ours-aiortc-path``: ``MediaSession`` with ``media_path="aiortc"``.
* ``ours``: ``MediaSession`` with the default lean receive path.

Run inside the loopback namespace: ``scripts/in-netns.sh .venv/bin/python bench/media_latency.py``.
"""


import asyncio
import fractions
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from exotel_voice.media import IceConfig, MediaConfig, MediaSession  # noqa: E402
from exotel_voice.media.ice import apply_gathering_policy  # noqa: E402
from exotel_voice.media.pcm import frame_to_samples, samples_per_frame  # noqa: E402
from exotel_voice.media.sinks import AudioSink  # noqa: E402
from exotel_voice.media.sources import AudioSource  # noqa: E402


LOOPBACK = IceConfig(host_addresses=["127.0.0.1"], gather_timeout=1.0)
CODEC_RATES = {"opus": 48000, "PCMU": 8000, "PCMA": 8000}
CLICK_MS = 4.0
CLICK_HZ = 2000.0
CLICK_LEVEL = 0.6


def click(rate: int) -> np.ndarray:
    n = int(rate * CLICK_MS / 1000)
    t = np.arange(n) / rate
    window = np.hanning(n)
    return (np.sin(2 * np.pi * CLICK_HZ * t) * window * CLICK_LEVEL * 32767).astype(np.int16)


class ClickSchedule:
    """Decides which frames carry a click, and records when each click was sent."""

    def __init__(self, rate: int, clicks: int, seed: int = 1) -> None:
        self.rate = rate
        self.n = samples_per_frame(rate)
        self.template = click(rate)
        self.sent: list[float] = []
        self.remaining = clicks
        self._random = random.Random(seed)
        self._countdown = 25  # let ICE/DTLS and the codecs settle first
        self.done = asyncio.Event()

    def frame(self, now: float) -> np.ndarray:
        samples = np.zeros(self.n, dtype=np.int16)
        if self.remaining <= 0:
            self._countdown -= 1
            if self._countdown <= -25:  # 0.5 s of tail so the last click arrives
                self.done.set()
            return samples
        self._countdown -= 1
        if self._countdown <= 0:
            offset = self._random.randrange(0, self.n - self.template.size)
            samples[offset : offset + self.template.size] = self.template
            self.sent.append(now + offset / self.rate)
            self.remaining -= 1
            self._countdown = self._random.randint(10, 15)
        return samples


class ClickSource(AudioSource):
    def __init__(self, schedule: ClickSchedule) -> None:
        super().__init__()
        self.schedule = schedule

    def read(self, sample_rate: int) -> np.ndarray | None:
        assert sample_rate == self.schedule.rate, (sample_rate, self.schedule.rate)
        return self.schedule.frame(asyncio.get_running_loop().time())


class Recorder(AudioSink):
    """Keeps (hand-over time, samples) of every received frame."""

    def __init__(self) -> None:
        self.chunks: list[tuple[float, np.ndarray, int]] = []
        self._loop = asyncio.get_running_loop()

    def write(self, samples: np.ndarray, sample_rate: int) -> None:
        self.chunks.append((self._loop.time(), samples.copy(), sample_rate))


def find_clicks(recorder: Recorder, schedule: ClickSchedule) -> list[float]:
    """Latency of each sent click found in the received stream (seconds)."""
    chunks = [c for c in recorder.chunks if c[2] == schedule.rate]
    if not chunks:
        return []
    signal = np.concatenate([c[1] for c in chunks]).astype(np.float64)
    times = np.concatenate([c[0] + np.arange(c[1].size) / schedule.rate for c in chunks])
    # A frame handed over in a burst right after a late one would give its first samples
    # an earlier time than the previous frame's last: a sample never plays before the
    # one ahead of it, so make the times non-decreasing (searchsorted needs that too).
    times = np.maximum.accumulate(times)
    template = schedule.template.astype(np.float64)
    corr = np.correlate(signal, template, mode="valid")
    energy = float(np.dot(template, template))
    threshold = 0.3 * energy
    latencies = []
    for sent in schedule.sent:
        lo = int(np.searchsorted(times, sent - 0.005))
        hi = int(np.searchsorted(times, sent + 0.5))
        hi = min(hi, corr.size)
        if hi <= lo:
            continue
        window = corr[lo:hi]
        above = np.flatnonzero(window >= threshold)
        if above.size == 0:
            continue
        # The first crossing, refined to the correlation peak within the click's length.
        first = int(above[0])
        peak = first + int(np.argmax(window[first : first + template.size]))
        latencies.append(float(times[lo + peak] - sent))
    return latencies


@dataclass
class Result:
    peer: str
    codec: str
    clicks_sent: int
    clicks_found: int
    median_ms: float | None
    p10_ms: float | None
    p90_ms: float | None
    min_ms: float | None
    max_ms: float | None
    samples_ms: list[float] = field(default_factory=list, repr=False)
    round_medians_ms: list[float | None] = field(default_factory=list)


def summarize(peer: str, codec: str, schedule: ClickSchedule, latencies: list[float]) -> Result:
    ms = sorted(x * 1000 for x in latencies)

    def q(p: float) -> float | None:
        return round(ms[min(len(ms) - 1, int(p * len(ms)))], 1) if ms else None

    return Result(
        peer=peer,
        codec=codec,
        clicks_sent=len(schedule.sent),
        clicks_found=len(ms),
        median_ms=round(statistics.median(ms), 1) if ms else None,
        p10_ms=q(0.1),
        p90_ms=q(0.9),
        min_ms=round(ms[0], 1) if ms else None,
        max_ms=round(ms[-1], 1) if ms else None,
        samples_ms=[round(x, 2) for x in ms],
    )


# -- our MediaSession -------------------------------------------------------------------


async def run_ours(codec: str, clicks: int, media_path: str) -> Result:
    rate = CODEC_RATES[codec]
    schedule = ClickSchedule(rate, clicks)
    config = MediaConfig(ice=LOOPBACK, codecs=[codec], media_path=media_path)  # type: ignore[arg-type]
    a = MediaSession(config=config, source=ClickSource(schedule))
    b = MediaSession(config=config)
    recorder = Recorder()
    try:
        answer = await b.accept_offer(await a.create_offer())
        await a.set_answer(answer)
        await asyncio.wait_for(asyncio.gather(a.wait_connected(), b.wait_connected()), 10)
        b.add_sink(recorder)
        await asyncio.wait_for(schedule.done.wait(), clicks * 0.35 + 10)
    finally:
        await a.close()
        await b.close()
    name = "ours" if media_path == "lean" else "ours-aiortc-path"
    return summarize(name, codec, schedule, find_clicks(recorder, schedule))


# -- raw aiortc -----------------------------------------------------------------------


def make_click_track(schedule: ClickSchedule) -> Any:
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
    from av import AudioFrame

    class ClickTrack(MediaStreamTrack):
        """Paced like aiortc's AudioStreamTrack, but on the loop clock, at the codec rate."""

        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self._start: float | None = None
            self._pts = 0

        async def recv(self) -> Any:
            if self.readyState != "live":
                raise MediaStreamError
            loop = asyncio.get_running_loop()
            if self._start is None:
                self._start = loop.time()
            else:
                wait = self._start + self._pts / schedule.rate - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            samples = schedule.frame(loop.time())
            frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = schedule.rate
            frame.pts = self._pts
            frame.time_base = fractions.Fraction(1, schedule.rate)
            self._pts += samples.size
            return frame

    return ClickTrack()


async def raw_pair(
    track_a: Any, codec: str, track_b: Any = None
) -> tuple[Any, Any, asyncio.Future[Any]]:
    """Two raw aiortc peer connections, A sending ``track_a`` (and B ``track_b`` if given).

    Returns (pc_a, pc_b, a future of the track B receives).
    """
    from aiortc import RTCPeerConnection, RTCRtpSender

    pc_a, pc_b = RTCPeerConnection(), RTCPeerConnection()
    caps = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.name == codec]
    t_a = pc_a.addTransceiver(track_a, direction="sendrecv")
    t_a.setCodecPreferences(caps)
    loop = asyncio.get_running_loop()
    remote: asyncio.Future[Any] = loop.create_future()

    @pc_b.on("track")
    def on_track(track: Any) -> None:
        if not remote.done():
            remote.set_result(track)

    offer = await pc_a.createOffer()
    apply_gathering_policy(pc_a, LOOPBACK)
    await pc_a.setLocalDescription(offer)
    await pc_b.setRemoteDescription(pc_a.localDescription)
    if track_b is not None:
        pc_b.addTrack(track_b)
    for t in pc_b.getTransceivers():
        t.setCodecPreferences(caps)
    answer = await pc_b.createAnswer()
    apply_gathering_policy(pc_b, LOOPBACK)
    await pc_b.setLocalDescription(answer)
    await pc_a.setRemoteDescription(pc_b.localDescription)
    return pc_a, pc_b, remote


async def run_raw(codec: str, clicks: int) -> Result:
    rate = CODEC_RATES[codec]
    schedule = ClickSchedule(rate, clicks)
    recorder = Recorder()
    pc_a, pc_b, remote = await raw_pair(make_click_track(schedule), codec)

    async def read(track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            recorder.write(*frame_to_samples(frame))

    reader: asyncio.Task[None] | None = None
    try:
        track = await asyncio.wait_for(remote, 10)
        reader = asyncio.create_task(read(track))
        await asyncio.wait_for(schedule.done.wait(), clicks * 0.35 + 10)
    finally:
        if reader is not None:
            reader.cancel()
        await pc_a.close()
        await pc_b.close()
    return summarize("aiortc", codec, schedule, find_clicks(recorder, schedule))


# -- main -------------------------------------------------------------------------------


RUNNERS: dict[str, Callable[[str, int], Any]] = {
    "aiortc": run_raw,
    "ours-aiortc-path": lambda codec, clicks: run_ours(codec, clicks, "aiortc"),
    "ours": lambda codec, clicks: run_ours(codec, clicks, "lean"),
}


async def run(peers: list[str], codecs: list[str], clicks: int, rounds: int) -> list[Result]:
    """Rounds interleave the contenders (each round: every codec x peer), so background
    load hits them alike; clicks of all rounds are pooled per peer and codec."""
    pooled: dict[tuple[str, str], list[Result]] = {}
    per_round = max(1, clicks // rounds)
    for round_no in range(rounds):
        for codec in codecs:
            for peer in peers:
                started = time.monotonic()
                result = await RUNNERS[peer](codec, per_round)
                pooled.setdefault((peer, codec), []).append(result)
                print(
                    f"  round {round_no + 1}/{rounds} {peer:18s} {codec:5s} median "
                    f"{result.median_ms} ms ({result.clicks_found}/{result.clicks_sent} clicks, "
                    f"{time.monotonic() - started:.0f} s)",
                    flush=True,
                )
    results = []
    for (peer, codec), parts in pooled.items():
        ms = sorted(x for r in parts for x in r.samples_ms)
        merged = summarize(peer, codec, ClickSchedule(8000, 0), [x / 1000 for x in ms])
        merged.clicks_sent = sum(r.clicks_sent for r in parts)
        merged.round_medians_ms = [r.median_ms for r in parts]
        results.append(merged)
    return results


def table(results: list[Result]) -> str:
    lines = [
        "| peer | codec | median ms | p10 | p90 | min | max | clicks found |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.peer} | {r.codec} | {r.median_ms} | {r.p10_ms} | {r.p90_ms} | "
            f"{r.min_ms} | {r.max_ms} | {r.clicks_found}/{r.clicks_sent} |"
        )
    return "\n".join(lines)


TARGET_MS = 45.0


def main() -> dict[str, Any]:
    """Run the latency benchmark; settings from the environment:

    ``BENCH_LATENCY_CLICKS`` (per peer and codec, default 60), ``BENCH_LATENCY_ROUNDS``
    (default 3), ``BENCH_LATENCY_CODECS`` (default ``opus,PCMU``),
    ``BENCH_LATENCY_PEERS`` (default all).
    """
    clicks = max(3, min(int(os.environ.get("BENCH_LATENCY_CLICKS", "60")), 600))
    rounds = max(1, min(int(os.environ.get("BENCH_LATENCY_ROUNDS", "3")), 10))
    codecs = os.environ.get("BENCH_LATENCY_CODECS", "opus,PCMU").split(",")
    peers = os.environ.get("BENCH_LATENCY_PEERS", ",".join(RUNNERS)).split(",")
    if os.environ.get("EXOTEL_NETNS") != "1":
        print("note: not inside the loopback namespace (scripts/in-netns.sh)", file=sys.stderr)
    load_before = os.getloadavg()
    print(f"media_latency: {clicks} clicks per peer and codec in {rounds} rounds", flush=True)
    results = asyncio.run(run(peers, codecs, clicks, rounds))
    print(table(results))
    by = {(r.peer, r.codec): r for r in results}
    targets = {}
    for codec in codecs:
        ours, raw = by.get(("ours", codec)), by.get(("aiortc", codec))
        if ours is None or ours.median_ms is None:
            continue
        targets[f"{codec}: ours median <= {TARGET_MS:.0f} ms"] = ours.median_ms <= TARGET_MS
        if raw is not None and raw.median_ms:
            targets[f"{codec}: aiortc/ours median ratio"] = round(raw.median_ms / ours.median_ms, 1)
    return {
        "what": "one-way click latency, send-path hand-over to receive hand-over, loopback",
        "loadavg_before_after": [round(x, 2) for x in load_before + os.getloadavg()],
        "table": [
            {k: v for k, v in asdict(r).items() if k not in ("samples_ms",)} for r in results
        ],
        "results": [asdict(r) for r in results],
        "targets": targets,
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
