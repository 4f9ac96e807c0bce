"""Call legs per process and CPU per call-minute at full quality, against raw aiortc and baresip.

What is measured
----------------
N legs live in one Python process (one event loop) as N/2 loopback calls
(ICE + DTLS-SRTP over 127.0.0.1); every leg sends a tone and receives the other
leg's.  N ramps up (legs are added, never restarted); after each step a short
settle time, then a measuring window of ``--window`` seconds records:

* received frame rate: decoded 20 ms frames handed to the application, per leg,
  divided by the nominal 50 per second (worst leg and mean);
* event-loop lag: a 10 ms ``asyncio.sleep`` probe's overshoot, p99;
* CPU: ``time.process_time()`` (every thread of the process) over the window, the
  event loop's own thread (``time.thread_time()`` on the loop), the time the loop's
  thread waited for a CPU while it could run (``/proc/thread-self/schedstat``: other
  processes took the cores), the share of the window the send clock's encode worker
  thread was busy (``SendClock.worker_busy``: Opus encodes and its waits for the GIL),
  and the whole machine's busy cores (``/proc/stat``);
* ours only: frames *sent* per leg by the SDK's send clock (``LeanSender.frames_sent``
  / 50 per second; worst leg and mean) and frames it dropped for being too late
  (``LeanSender.frames_dropped``).

A step is at *full quality* when the worst leg's frame-rate ratio is >= 0.99 and
the loop lag p99 is < 20 ms.  A step is *saturated* when the loop's thread is busy
>= 90% of the window, or waited for a CPU >= 10% of it, or the encode worker was busy
>= 90% of it, or the machine's cores are >= 95% busy: the send clock must keep every
leg at >= 0.99 of 50 frames a second at every step that is not saturated.  The ramp
goes on while frames are >= 0.99 (so a noisy machine's lag does not end it early) and
both maxima are reported, with the same probe's p99 measured first with no legs at all
(the machine's own noise).
CPU per leg per call-minute is extrapolated from the window:
``cpu_seconds / window / N * 60`` (windows are short so the whole benchmark fits in
a few minutes on 2 cores; they are steady state, so the extrapolation is linear).

Peers measured in the same run:

* ``aiortc``: raw ``RTCPeerConnection`` pairs with aiortc's defaults (paced tone
  track at the codec rate, a task per leg reading ``track.recv()``); loopback host
  candidates through the SDK's ICE hook.
* ``ours``: ``MediaSession`` pairs (default lean media path), ``ToneSource``, a sink.
* ``baresip`` (PCMU only: Opus is not loaded in the rig's baresip): two baresip
  processes calling each other directly over UDP with DTLS-SRTP (``dtls_srtp``
  module, ``mediaenc=dtls_srtp``), tone file in; received audio decoded through
  the ``sndfile`` filter (so decoding is included) and no audio player: ALSA's
  ``null`` device does not pace, so baresip's player thread spins on it (about 20
  CPU-s per minute, an artefact).  CPU from ``/proc/<pid>/stat`` of both processes
  over the same window, per leg (one leg per process).

Run inside the loopback namespace:
``scripts/in-netns.sh .venv/bin/python bench/media_capacity.py``.
"""


import asyncio
import contextlib
import fractions
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import wave
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
sys.path.insert(0, os.path.dirname(__file__))

from exotel_voice.media import MediaConfig, MediaSession, ToneSource  # noqa: E402
from exotel_voice.media.pcm import frame_to_samples  # noqa: E402
from exotel_voice.media.sender import SendClock  # noqa: E402
from exotel_voice.media.sinks import AudioSink  # noqa: E402
from media_latency import CODEC_RATES, LOOPBACK, raw_pair  # noqa: E402


NOMINAL_FPS = 50.0
MIN_RATIO = 0.99
MAX_LAG_P99_MS = 20.0
#: A step is saturated when the loop's thread is this busy (share of the window) ...
LOOP_SATURATED = 0.9
#: ... or waited this long for a CPU (share of the window) ...
LOOP_WAIT_SATURATED = 0.1
#: ... or the machine's cores are this busy (other processes included).
MACHINE_SATURATED = 0.95


@dataclass
class Step:
    peer: str
    codec: str
    legs: int
    window_s: float
    cpu_cores: float
    cpu_s_per_leg_minute: float
    frame_ratio_min: float
    frame_ratio_mean: float
    loop_lag_p99_ms: float
    threads: int
    full_quality: bool
    #: Times the SDK's shared send clock was too late and dropped frames (ours only).
    send_clock_resyncs: int = 0
    #: Frames sent per leg by the send clock / 50 per s: worst leg and mean (ours only).
    sent_ratio_min: float | None = None
    sent_ratio_mean: float | None = None
    #: Frames the send clock dropped (every leg together) in the window (ours only).
    frames_dropped: int = 0
    #: CPU of the event loop's thread over the window (cores).
    loop_thread_cores: float = 0.0
    #: Busy cores of the whole machine over the window (every process), and its cores.
    machine_busy_cores: float = 0.0
    machine_cores: int = 0
    #: Share of the window the loop's thread was runnable but waiting for a CPU.
    loop_cpu_wait: float = 0.0
    #: Share of the window the send clock's encode worker thread was busy (ours, Opus).
    worker_busy: float = 0.0
    #: Longest overshoot of the lag probe's 10 ms sleep (the longest stall of the loop).
    loop_lag_max_ms: float = 0.0
    saturated: bool = False


@dataclass
class Summary:
    peer: str
    codec: str
    idle_loop_lag_p99_ms: float
    max_legs_full_quality: int
    max_legs_frames_ok: int
    ramp_stopped_by: str
    #: Ours: the first step where a leg sent < 0.99 of its frames (None: none did), with
    #: the CPU at that step; and whether every step before saturation sent >= 0.99.
    send_below_at_legs: int | None
    send_below_cpu: dict[str, float] | None
    send_ok_below_saturation: bool | None
    cpu_s_per_leg_minute_at_10: float | None
    cpu_s_per_leg_minute_at_max: float | None
    steps: list[Step]


def _machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of every CPU of the machine, from ``/proc/stat``."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already in user time
    return float(total - idle), float(total)


def _thread_cpu_wait() -> float:
    """Seconds the calling thread has waited on a run queue (``/proc/thread-self/schedstat``)."""
    try:
        return int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


class Counter:
    """Decoded frames received by one leg."""

    def __init__(self) -> None:
        self.frames = 0.0


class CountingSink(AudioSink):
    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    def write(self, samples: np.ndarray, sample_rate: int) -> None:
        self.counter.frames += samples.size / (sample_rate / NOMINAL_FPS)


class LagProbe:
    """Overshoot of a 10 ms sleep, collected while ``recording``."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.recording = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(0.01)
            if self.recording:
                self.lags.append(loop.time() - start - 0.01)


# -- the legs -------------------------------------------------------------------------------


class OursPair:
    def __init__(self, codec: str) -> None:
        self.codec = codec
        self.counters = [Counter(), Counter()]
        self.sessions: list[MediaSession] = []

    async def start(self) -> None:
        config = MediaConfig(ice=LOOPBACK, codecs=[self.codec])
        a = MediaSession(config=config, source=ToneSource(700, 0.3))
        b = MediaSession(config=config, source=ToneSource(900, 0.3))
        self.sessions = [a, b]
        answer = await b.accept_offer(await a.create_offer())
        await a.set_answer(answer)
        await asyncio.wait_for(asyncio.gather(a.wait_connected(), b.wait_connected()), 20)
        a.add_sink(CountingSink(self.counters[0]))
        b.add_sink(CountingSink(self.counters[1]))

    async def close(self) -> None:
        for session in self.sessions:
            await session.close()


def make_tone_track(rate: int, frequency: float) -> Any:
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
    from av import AudioFrame

    n = rate // 50

    class ToneTrack(MediaStreamTrack):
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
                wait = self._start + self._pts / rate - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            t = (self._pts + np.arange(n)) / rate
            samples = (np.sin(2 * np.pi * frequency * t) * 10000).astype(np.int16)
            frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = self._pts
            frame.time_base = fractions.Fraction(1, rate)
            self._pts += n
            return frame

    return ToneTrack()


class RawPair:
    def __init__(self, codec: str) -> None:
        self.codec = codec
        self.counters = [Counter(), Counter()]
        self.pcs: list[Any] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        rate = CODEC_RATES[self.codec]
        loop = asyncio.get_running_loop()
        pc_a, pc_b, at_b = await raw_pair(
            make_tone_track(rate, 700), self.codec, make_tone_track(rate, 900)
        )
        self.pcs = [pc_a, pc_b]
        at_a: asyncio.Future[Any] = loop.create_future()

        @pc_a.on("track")
        def on_track(track: Any) -> None:
            if not at_a.done():
                at_a.set_result(track)

        for transceiver in pc_a.getTransceivers():  # already announced by setRemoteDescription
            if transceiver.receiver.track is not None and not at_a.done():
                at_a.set_result(transceiver.receiver.track)
        track_at_b = await asyncio.wait_for(at_b, 20)
        track_at_a = await asyncio.wait_for(at_a, 20)
        self.tasks = [
            asyncio.create_task(self._read(track_at_a, self.counters[0])),
            asyncio.create_task(self._read(track_at_b, self.counters[1])),
        ]
        await asyncio.wait_for(_connected(pc_a, pc_b), 20)

    async def _read(self, track: Any, counter: Counter) -> None:
        from aiortc.mediastreams import MediaStreamError

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            samples, rate = frame_to_samples(frame)
            counter.frames += samples.size / (rate / NOMINAL_FPS)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for pc in self.pcs:
            await pc.close()


async def _connected(*pcs: Any) -> None:
    while any(pc.connectionState != "connected" for pc in pcs):
        if any(pc.connectionState in ("failed", "closed") for pc in pcs):
            raise ConnectionError("aiortc connection failed")
        await asyncio.sleep(0.02)


# -- ramp -------------------------------------------------------------------------------------


async def measure(pairs: list[Any], probe: LagProbe, window: float, settle: float) -> Step:
    await asyncio.sleep(settle)
    counters = [c for p in pairs for c in p.counters]
    before = [c.frames for c in counters]
    probe.lags.clear()
    probe.recording = True
    loop = asyncio.get_running_loop()
    clock = SendClock._clocks.get(loop)
    senders = clock.senders if clock is not None else []
    resyncs0 = clock.resyncs if clock is not None else 0
    sent0 = [s.frames_sent for s in senders]
    dropped0 = sum(s.frames_dropped for s in senders)
    busy0, total0 = _machine_busy()
    wait0 = _thread_cpu_wait()
    worker0 = clock.worker_busy if clock is not None else 0.0
    t0, cpu0, thread0 = loop.time(), time.process_time(), time.thread_time()
    await asyncio.sleep(window)
    elapsed, cpu = loop.time() - t0, time.process_time() - cpu0
    loop_cpu = time.thread_time() - thread0
    loop_wait = _thread_cpu_wait() - wait0
    worker = (clock.worker_busy if clock is not None else 0.0) - worker0
    busy1, total1 = _machine_busy()
    resyncs = (clock.resyncs if clock is not None else 0) - resyncs0
    sent = [
        (s.frames_sent - b) / (NOMINAL_FPS * elapsed)
        for s, b in zip(senders, sent0, strict=True)
    ]
    dropped = sum(s.frames_dropped for s in senders) - dropped0
    cores = os.cpu_count() or 1
    machine = (busy1 - busy0) / (total1 - total0) * cores if total1 > total0 else 0.0
    probe.recording = False
    ratios = [
        (c.frames - b) / (NOMINAL_FPS * elapsed) for c, b in zip(counters, before, strict=True)
    ] or [1.0]
    lags = sorted(probe.lags) or [0.0]
    p99 = lags[min(len(lags) - 1, math.ceil(0.99 * len(lags)) - 1)] * 1000
    legs = len(counters)
    return Step(
        peer="",
        codec="",
        legs=legs,
        window_s=round(elapsed, 2),
        cpu_cores=round(cpu / elapsed, 3),
        cpu_s_per_leg_minute=round(cpu / elapsed / max(legs, 1) * 60, 3),
        frame_ratio_min=round(min(ratios), 4),
        frame_ratio_mean=round(sum(ratios) / len(ratios), 4),
        loop_lag_p99_ms=round(p99, 2),
        threads=threading.active_count(),
        full_quality=min(ratios) >= MIN_RATIO and p99 < MAX_LAG_P99_MS,
        send_clock_resyncs=resyncs,
        sent_ratio_min=round(min(sent), 4) if sent else None,
        sent_ratio_mean=round(sum(sent) / len(sent), 4) if sent else None,
        frames_dropped=dropped,
        loop_thread_cores=round(loop_cpu / elapsed, 3),
        machine_busy_cores=round(machine, 2),
        machine_cores=cores,
        loop_cpu_wait=round(loop_wait / elapsed, 3),
        worker_busy=round(worker / elapsed, 3),
        loop_lag_max_ms=round(lags[-1] * 1000, 1),
        saturated=loop_cpu / elapsed >= LOOP_SATURATED
        or loop_wait / elapsed >= LOOP_WAIT_SATURATED
        or worker / elapsed >= LOOP_SATURATED
        or machine >= MACHINE_SATURATED * cores,
    )


async def ramp(peer: str, codec: str, steps: list[int], window: float, settle: float) -> Summary:
    pair_class = OursPair if peer == "ours" else RawPair
    pairs: list[Any] = []
    probe = LagProbe()
    probe.start()
    # The machine's own scheduling noise: the same probe with no legs at all.
    idle = await measure([], probe, min(window, 3.0), 0.2)
    print(f"  {peer:7s} {codec:5s} idle loop lag p99={idle.loop_lag_p99_ms:.1f} ms", flush=True)
    results: list[Step] = []
    stopped = "cap"
    try:
        for legs in steps:
            try:
                while len(pairs) * 2 < legs:
                    pair = pair_class(codec)
                    pairs.append(pair)
                    await pair.start()
            except (TimeoutError, Exception) as exc:  # noqa: B014 - report, don't crash the run
                stopped = f"setup failed at {legs} legs: {type(exc).__name__}: {exc}"
                break
            step = await measure(pairs, probe, window, settle)
            step.peer, step.codec = peer, codec
            results.append(step)
            sent_text = (
                f"sent min/mean={step.sent_ratio_min:.3f}/{step.sent_ratio_mean:.3f} "
                f"dropped={step.frames_dropped} resyncs={step.send_clock_resyncs} "
                if step.sent_ratio_min is not None and step.sent_ratio_mean is not None
                else ""
            )
            print(
                f"  {peer:7s} {codec:5s} legs={step.legs:3d} cpu={step.cpu_cores:.2f} cores "
                f"(loop {step.loop_thread_cores:.2f}, loop waiting for a CPU "
                f"{step.loop_cpu_wait:.2f}, encode worker busy {step.worker_busy:.2f}, "
                f"machine {step.machine_busy_cores:.2f}/"
                f"{step.machine_cores}) ({step.cpu_s_per_leg_minute:.2f} s/leg-min) "
                f"received min/mean={step.frame_ratio_min:.3f}/{step.frame_ratio_mean:.3f} "
                f"{sent_text}lag p99/max={step.loop_lag_p99_ms:.1f}/{step.loop_lag_max_ms:.0f} ms "
                f"threads={step.threads} "
                f"{'ok' if step.full_quality else 'DEGRADED'}"
                f"{' SATURATED' if step.saturated else ''}",
                flush=True,
            )
            if step.frame_ratio_min < MIN_RATIO:
                stopped = f"frames below {MIN_RATIO} at {legs} legs"
                break
    finally:
        await probe.stop()
        for pair in pairs:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pair.close(), 10)
    good = [s for s in results if s.full_quality]
    frames_ok = [s for s in results if s.frame_ratio_min >= MIN_RATIO]
    at10 = next((s for s in results if s.legs == 10), None)
    sent_steps = [s for s in results if s.sent_ratio_min is not None]
    below = next((s for s in sent_steps if (s.sent_ratio_min or 0.0) < MIN_RATIO), None)
    return Summary(
        peer=peer,
        codec=codec,
        idle_loop_lag_p99_ms=idle.loop_lag_p99_ms,
        max_legs_full_quality=max((s.legs for s in good), default=0),
        max_legs_frames_ok=max((s.legs for s in frames_ok), default=0),
        ramp_stopped_by=stopped,
        send_below_at_legs=below.legs if below else None,
        send_below_cpu={
            "process_cores": below.cpu_cores,
            "loop_thread_cores": below.loop_thread_cores,
            "loop_cpu_wait": below.loop_cpu_wait,
            "worker_busy": below.worker_busy,
            "machine_busy_cores": below.machine_busy_cores,
        } if below else None,
        send_ok_below_saturation=all(
            (s.sent_ratio_min or 0.0) >= MIN_RATIO for s in sent_steps if not s.saturated
        ) if sent_steps else None,
        cpu_s_per_leg_minute_at_10=at10.cpu_s_per_leg_minute if at10 else None,
        cpu_s_per_leg_minute_at_max=good[-1].cpu_s_per_leg_minute if good else None,
        steps=results,
    )


# -- baresip ------------------------------------------------------------------------------------


def _free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def _baresip_config(
    folder: Path, sip_port: int, rtp_first: int, tone: Path, srtp: bool, player: str,
    record: bool,
) -> None:
    folder.mkdir(parents=True)
    modules = ["g711.so", "aufile.so", "account.so", "menu.so"]
    if player.startswith("alsa"):
        modules.insert(0, "alsa.so")
    if record:
        # The sndfile filter sits in the decode path and writes what was decoded.
        modules.insert(0, "sndfile.so")
    if srtp:
        modules.insert(0, "dtls_srtp.so")
    (folder / "config").write_text(
        "\n".join(
            [
                "poll_method epoll",
                f"sip_listen 127.0.0.1:{sip_port}",
                "net_interface 127.0.0.1",
                *([f"audio_player {player}", f"audio_alert {player}"] if player else []),
                f"audio_source aufile,{tone}",
                f"rtp_ports {rtp_first}-{rtp_first + 9}",
                f"snd_path {folder}",
                "rtp_timeout 0",
                f"module_path {'/usr/lib/baresip/modules'}",
                *[f"module {m}" for m in modules if m not in ("account.so", "menu.so")],
                "module_app account.so",
                "module_app menu.so",
                "",
            ]
        )
    )
    enc = ";mediaenc=dtls_srtp" if srtp else ""
    (folder / "accounts").write_text(
        f"<sip:bench@127.0.0.1:{sip_port}>;regint=0;audio_codecs=PCMU;answermode=auto{enc}\n"
    )


async def baresip_cpu(
    window: float, settle: float, srtp: bool = True, player: str = "", record: bool = True
) -> dict[str, Any]:
    """One PCMU call between two baresip processes; CPU per leg-minute over ``window``."""
    binary = shutil.which("baresip") or "/usr/bin/baresip"
    if not os.path.exists(binary):
        return {"error": "baresip not installed"}
    with tempfile.TemporaryDirectory(prefix="bench-baresip-") as tmp:
        root = Path(tmp)
        tone = root / "tone.wav"
        n = int(8000 * (window + settle + 30))
        pcm = (np.sin(2 * np.pi * 440 * np.arange(n) / 8000) * 8000).astype("<i2")
        with wave.open(str(tone), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes(pcm.tobytes())
        ports = [_free_udp_port(), _free_udp_port()]
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for i, name in enumerate(("a", "b")):
                _baresip_config(root / name, ports[i], 24000 + 20 * i, tone, srtp, player, record)
                args = [binary, "-f", str(root / name)]
                if name == "a":
                    args += ["-e", f"/dial sip:bench@127.0.0.1:{ports[1]}"]
                log = open(root / f"{name}.log", "wb")  # noqa: SIM115
                procs.append(
                    subprocess.Popen(
                        args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                        env={"HOME": str(root / name), "PATH": os.environ.get("PATH", "")},
                        start_new_session=True,
                    )
                )
                await asyncio.sleep(0.5)  # b must listen before a dials; a waits too
            await asyncio.sleep(settle)
            texts = [(root / f"{n}.log").read_text(errors="replace") for n in ("a", "b")]
            established = all("established" in t.lower() or "call established" in t.lower()
                              for t in texts)
            before = [_proc_cpu_seconds(p.pid) for p in procs]
            t0 = time.monotonic()
            await asyncio.sleep(window)
            elapsed = time.monotonic() - t0
            used = [_proc_cpu_seconds(p.pid) - b for p, b in zip(procs, before, strict=True)]
            texts = [(root / f"{n}.log").read_text(errors="replace") for n in ("a", "b")]
            srtp_up = srtp and all("dtls" in t.lower() for t in texts)
            decoded = sorted((root / "b").glob("dump-*-dec.wav"))
            return {
                "peer": "baresip",
                "audio_player": player or "none",
                "decoded_wav_bytes": decoded[-1].stat().st_size if decoded else 0,
                "codec": "PCMU",
                "dtls_srtp": srtp_up if srtp else False,
                "call_established": established,
                "window_s": round(elapsed, 2),
                "cpu_s_per_leg_minute": round(sum(used) / 2 / elapsed * 60, 3),
                "per_process_cpu_s_per_minute": [round(u / elapsed * 60, 3) for u in used],
                "log_tail": [t[-600:] for t in texts],
            }
        finally:
            for p in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(3)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.pid, signal.SIGKILL)
                    p.wait(3)


# -- main ----------------------------------------------------------------------------------


def table(summaries: list[Summary], baresip: dict[str, Any] | None) -> str:
    lines = [
        "| peer | codec | max legs at full quality | max legs frames >= 0.99 | "
        "idle lag p99 ms | CPU s/leg-min at 10 legs | CPU s/leg-min at max | stopped by | "
        "send clock: first step < 0.99 sent (cores: process / loop, loop waiting / machine) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        if s.send_below_at_legs is not None and s.send_below_cpu is not None:
            cpu = s.send_below_cpu
            send = (
                f"{s.send_below_at_legs} legs ({cpu['process_cores']} / "
                f"{cpu['loop_thread_cores']}, waiting {cpu['loop_cpu_wait']} / "
                f"{cpu['machine_busy_cores']})"
            )
        else:
            send = "none" if s.send_ok_below_saturation is not None else "-"
        lines.append(
            f"| {s.peer} | {s.codec} | {s.max_legs_full_quality} | {s.max_legs_frames_ok} | "
            f"{s.idle_loop_lag_p99_ms} | "
            f"{s.cpu_s_per_leg_minute_at_10} | {s.cpu_s_per_leg_minute_at_max} | "
            f"{s.ramp_stopped_by} | {send} |"
        )
    if baresip and "cpu_s_per_leg_minute" in baresip:
        lines.append(
            f"| baresip (1 call, 2 processes, DTLS-SRTP={baresip['dtls_srtp']}) | PCMU | - | - | "
            f"- | {baresip['cpu_s_per_leg_minute']} (1 leg/process) | - | - | - |"
        )
    return "\n".join(lines)


TARGET_LEGS = 50
#: Legs per step; past 80 the ramp looks for the step where the send clock stops.
DEFAULT_STEPS = "10,20,30,40,50,60,70,80,120,160,200"


def main() -> dict[str, Any]:
    """Run the capacity ramp; settings from the environment:

    ``BENCH_CAPACITY_STEPS`` (legs, default ``10,20,30,40,50,60,70,80,120,160,200``: past
    80 to find where the send clock stops),
    ``BENCH_CAPACITY_WINDOW`` (seconds per step, default 8), ``BENCH_CAPACITY_SETTLE``
    (default 2), ``BENCH_CAPACITY_CODECS`` (default ``PCMU,opus``),
    ``BENCH_CAPACITY_PEERS`` (default ``aiortc,ours``), ``BENCH_CAPACITY_BARESIP=0`` to skip it.
    """
    steps = [
        max(2, min(int(x), 400))
        for x in os.environ.get("BENCH_CAPACITY_STEPS", DEFAULT_STEPS).split(",")
    ]
    window = max(1.0, min(float(os.environ.get("BENCH_CAPACITY_WINDOW", "8")), 60.0))
    settle = max(0.0, min(float(os.environ.get("BENCH_CAPACITY_SETTLE", "2")), 30.0))
    codecs = os.environ.get("BENCH_CAPACITY_CODECS", "PCMU,opus").split(",")
    peers = os.environ.get("BENCH_CAPACITY_PEERS", "aiortc,ours").split(",")
    with_baresip = os.environ.get("BENCH_CAPACITY_BARESIP", "1") != "0"
    if os.environ.get("EXOTEL_NETNS") != "1":
        print("note: not inside the loopback namespace (scripts/in-netns.sh)", file=sys.stderr)
    load_before = os.getloadavg()
    print(f"media_capacity: steps {steps} legs, {window:.0f} s windows", flush=True)

    async def run() -> tuple[list[Summary], dict[str, Any] | None]:
        summaries = []
        baresip = None
        for codec in codecs:
            if with_baresip and codec == "PCMU":
                baresip = await baresip_cpu(window * 2, settle)
                print(f"  baresip PCMU: {baresip.get('cpu_s_per_leg_minute')} s/leg-min "
                      f"(DTLS-SRTP {baresip.get('dtls_srtp')})", flush=True)
            for peer in peers:
                summaries.append(await ramp(peer, codec, steps, window, settle))
        return summaries, baresip

    summaries, baresip = asyncio.run(run())
    print(table(summaries, baresip))
    by = {(s.peer, s.codec): s for s in summaries}
    targets: dict[str, Any] = {}
    for codec in codecs:
        ours, raw = by.get(("ours", codec)), by.get(("aiortc", codec))
        if ours is None:
            continue
        targets[f"{codec}: ours >= {TARGET_LEGS} legs at full quality"] = (
            ours.max_legs_full_quality >= TARGET_LEGS
        )
        targets[f"{codec}: ours >= {TARGET_LEGS} legs with frames >= 0.99"] = (
            ours.max_legs_frames_ok >= TARGET_LEGS
        )
        # The send clock keeps every leg at 50 frames a second until the CPU is saturated
        # (the loop's thread or the machine): where it first stops is recorded.
        targets[f"{codec}: ours sends >= {MIN_RATIO} of its frames at every unsaturated step"] = (
            ours.send_ok_below_saturation
        )
        targets[f"{codec}: ours first step sending < {MIN_RATIO} (legs, CPU)"] = (
            [ours.send_below_at_legs, ours.send_below_cpu] if ours.send_below_at_legs else None
        )
        if raw is not None and raw.max_legs_frames_ok:
            targets[f"{codec}: legs ours/aiortc (frames >= 0.99)"] = round(
                ours.max_legs_frames_ok / raw.max_legs_frames_ok, 1
            )
        if codec == "PCMU" and baresip and ours.cpu_s_per_leg_minute_at_10:
            targets["PCMU: CPU per leg ours <= baresip (at 10 legs)"] = (
                ours.cpu_s_per_leg_minute_at_10 <= baresip["cpu_s_per_leg_minute"]
            )
    rows = [
        {k: v for k, v in asdict(s).items() if k != "steps"} for s in summaries
    ]
    if baresip and "cpu_s_per_leg_minute" in baresip:
        rows.append({"peer": "baresip", "codec": "PCMU", "cpu_s_per_leg_minute_at_10":
                     baresip["cpu_s_per_leg_minute"]})
    return {
        "what": "legs per process and CPU per leg-minute at full quality, loopback pairs",
        "loadavg_before_after": [round(x, 2) for x in load_before + os.getloadavg()],
        "table": rows,
        "steps": [asdict(step) for s in summaries for step in s.steps],
        "baresip": baresip,
        "targets": targets,
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
