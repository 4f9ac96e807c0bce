"""Call quality under jitter and loss: PESQ and one-way latency, ours against raw aiortc
and Chromium, same run, same network conditions.

What is measured
----------------
A speech sample (``tests/rig/speech.py``: three Harvard sentences made with
``espeak-ng``, 8.7 s) is sent through a call and recorded at the far end; the
recording is aligned to the original by cross-correlation and scored with PESQ
(ITU-T P.862, the ``pesq`` package: narrow-band at 8 kHz for PCMU, wide-band at 16 kHz
for Opus).  The one-way latency comes from the same alignment: the time the speech's
first sample plays at the far end minus the time it entered the send path.

The sender is always our :class:`~exotel_voice.media.MediaSession` (lean send path, a
:class:`~tests.rig.speech.SpeechSource`), so only the receiving end differs:

* ``ours``: a ``MediaSession`` on the default lean receive path, the far end's audio
  taken from an :class:`~exotel_voice.media.AudioSink`;
* ``aiortc``: a plain ``aiortc.RTCPeerConnection`` (aiortc's own jitter buffer and
  decoder thread), frames taken from ``track.recv()``;
* ``chromium``: a plain ``RTCPeerConnection`` in headless Chromium (the rig's
  ``BrowserHost``, its page served from 127.0.0.1; WebRTC's NetEQ receive path, the
  same as under SIP.js, without the SIP signalling, which plays no part in the media),
  the remote track played by a muted ``<audio>`` element (which drives Chromium's
  playout) and recorded in the page from a ``MediaStreamTrackProcessor`` on the same
  track: the 10 ms frames NetEQ's playout delivers, each with its wall-clock time.
  (A WebAudio ``ScriptProcessorNode`` was tried first: on a busy machine its clock
  drifted from the playout's and it dropped audio, 190 ms in 8 s, which PESQ scored
  near 1.2.)

Every receiver's chunks are scored as the same model playout device would play them
(:class:`~tests.rig.speech.PlayoutRecorder`: a chunk plays on arrival plus a 20 ms
buffer, or right after the previous one; a gap plays silence, reported as
``underflow_ms``), so a receive path that hands frames over late or in bursts is heard
so.  The latency is send-path hand-over to receive hand-over, as in
``bench/media_latency.py`` (no device buffer), the median over the speech's 0.5 s
segments (:func:`~tests.rig.speech.handover_latency`).  Both clocks are the machine's
wall clock (Python's ``time.time()``, the page's ``performance.timeOrigin + now()``).

The network: the call's media goes through ``tests/rig/impair.py``'s relay (each side's
SDP is pointed at a relay face), which delays RTP/RTCP by a normal random delay (so
packets reorder) and drops them at random or in Gilbert-Elliott bursts, seeded (the same
packet pattern for every subject in a condition); STUN and DTLS pass untouched.
Conditions: ``clean``; ``jitter`` 20 +- 15 ms; ``loss2`` 2% random loss; ``burst5`` 5%
bursty loss (bad state 3 packets on average); ``jitter+loss`` 20 +- 15 ms with 2%
random loss.  The relay's own figures (packets, loss, delay percentiles, reordering,
burst lengths) are printed and stored with each run.

Settings: ``BENCH_QUALITY_ROUNDS`` (1), ``BENCH_QUALITY_CODECS`` (``opus,PCMU``),
``BENCH_QUALITY_SUBJECTS`` (``ours,aiortc,chromium``), ``BENCH_QUALITY_CONDITIONS``
(all).  Chromium needs the loopback-only namespace:
``scripts/in-netns.sh .venv/bin/python bench/run_all.py call_quality``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np


REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path[:1]:
    sys.path.insert(0, str(REPO))

from tests.rig import netns_skip_reason  # noqa: E402
from tests.rig.impair import (  # noqa: E402
    GilbertElliott,
    Impairment,
    ImpairmentRelay,
    point_sdp_at,
    sdp_address,
)
from tests.rig.speech import (  # noqa: E402
    PlayoutRecorder,
    Quality,
    SpeechSource,
    call_ours,
    make_speech,
    measure,
    through_playout,
    write_wav,
)

from exotel_voice.media import IceConfig, MediaConfig, MediaSession  # noqa: E402
from exotel_voice.media.ice import apply_gathering_policy  # noqa: E402
from exotel_voice.media.pcm import Samples, frame_to_samples  # noqa: E402


ICE = IceConfig(host_addresses=["127.0.0.1"], gather_timeout=1.0)
DEVICE_MS = 20.0
LEAD_S = 1.0
#: Scoring rate per codec: narrow-band PESQ for G.711, wide-band for Opus.
SCORE_RATE = {"PCMU": 8000, "opus": 16000}
CONDITIONS: dict[str, Impairment] = {
    "clean": Impairment(seed=11),
    "jitter": Impairment(delay_ms=20, jitter_ms=15, seed=12),
    "loss2": Impairment(loss=0.02, seed=13),
    "burst5": Impairment(burst=GilbertElliott.for_loss(0.05, mean_burst=3.0), seed=14),
    "jitter+loss": Impairment(delay_ms=20, jitter_ms=15, loss=0.02, seed=15),
}
SUBJECTS = ("ours", "aiortc", "chromium")
CALL_TIMEOUT = 30.0


# -- raw aiortc ---------------------------------------------------------------------------


async def call_aiortc(
    speech: Samples, rate: int, codec: str, relay: ImpairmentRelay
) -> tuple[PlayoutRecorder, SpeechSource]:
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError

    source = SpeechSource(speech, rate, lead=LEAD_S)
    sender = MediaSession(config=MediaConfig(ice=ICE, codecs=[codec]), source=source)
    pc = RTCPeerConnection()
    recorder = PlayoutRecorder()
    loop = asyncio.get_running_loop()
    remote: asyncio.Future[Any] = loop.create_future()

    @pc.on("track")
    def on_track(track: Any) -> None:
        if not remote.done():
            remote.set_result(track)

    async def read(track: Any) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            recorder.write(*frame_to_samples(frame))

    reader: asyncio.Task[None] | None = None
    try:
        offer = await sender.create_offer()
        relay.set_peer("a", _address(offer))
        await pc.setRemoteDescription(
            RTCSessionDescription(point_sdp_at(offer, relay.face_b), "offer")
        )
        answer = await pc.createAnswer()
        apply_gathering_policy(pc, ICE)
        await pc.setLocalDescription(answer)
        relay.set_peer("b", _address(pc.localDescription.sdp))
        await sender.set_answer(point_sdp_at(pc.localDescription.sdp, relay.face_a))
        reader = asyncio.create_task(read(await asyncio.wait_for(remote, 10)))
        await asyncio.wait_for(source.wait_finished(), CALL_TIMEOUT)
        await asyncio.sleep(0.5)
    finally:
        if reader is not None:
            reader.cancel()
        await sender.close()
        await pc.close()
    return recorder, source


def _address(sdp: str) -> tuple[str, int]:
    address = sdp_address(sdp)
    if address is None:
        raise RuntimeError("no UDP candidate in the SDP")
    return address


# -- Chromium -----------------------------------------------------------------------------

# Answers our offer with a plain RTCPeerConnection; records the remote track as Chromium
# plays it out (MediaStreamTrackProcessor), each frame with its wall-clock time.
PAGE_ANSWER = r"""
async (offer) => {
  const q = (window.__quality = { chunks: [], times: [], errors: [], rate: 0 });
  const pc = new RTCPeerConnection();
  q.pc = pc;
  pc.ontrack = (ev) => {
    const stream = new MediaStream([ev.track]);
    const el = new Audio();
    el.muted = true;
    el.srcObject = stream;
    el.play().catch((e) => q.errors.push("play: " + e));
    q.el = el;
    // The track's audio as Chromium delivers it to the track's sinks (10 ms AudioData,
    // pulled by the playout of the element above), with each frame's wall-clock time.
    const reader = new MediaStreamTrackProcessor({ track: ev.track }).readable.getReader();
    q.reader = reader;
    (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        const now = performance.timeOrigin + performance.now();
        const buf = new Float32Array(value.numberOfFrames);
        value.copyTo(buf, { planeIndex: 0, format: "f32-planar" });
        q.rate = value.sampleRate;
        q.times.push(now);
        q.chunks.push(buf);
        value.close();
      }
    })().catch((e) => q.errors.push("reader: " + e));
  };
  await pc.setRemoteDescription({ type: "offer", sdp: offer });
  await pc.setLocalDescription(await pc.createAnswer());
  if (pc.iceGatheringState !== "complete") {
    await new Promise((resolve) => {
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") resolve();
      });
      setTimeout(resolve, 3000);
    });
  }
  return pc.localDescription.sdp;
}
"""

PAGE_COLLECT = r"""
() => {
  const q = window.__quality;
  if (q.reader) q.reader.cancel().catch(() => undefined);
  let total = 0;
  for (const c of q.chunks) total += c.length;
  const pcm = new Int16Array(total);
  let i = 0;
  for (const c of q.chunks)
    for (const v of c) pcm[i++] = Math.max(-32768, Math.min(32767, Math.round(v * 32767)));
  const bytes = new Uint8Array(pcm.buffer);
  let bin = "";
  for (let k = 0; k < bytes.length; k += 0x8000)
    bin += String.fromCharCode.apply(null, bytes.subarray(k, k + 0x8000));
  const out = { pcm: btoa(bin), times: q.times, sizes: q.chunks.map((c) => c.length),
                rate: q.rate, errors: q.errors };
  q.pc.close();
  return out;
}
"""


class Chromium:
    """One headless Chromium for the whole run; a fresh context and page per call."""

    def __init__(self, work_dir: Path) -> None:
        from tests.rig.browser import BrowserHost

        self.host = BrowserHost(work_dir)

    async def start(self) -> None:
        await self.host.start()

    async def close(self) -> None:
        await self.host.close()

    async def call(
        self, speech: Samples, rate: int, codec: str, relay: ImpairmentRelay
    ) -> tuple[PlayoutRecorder, SpeechSource]:
        source = SpeechSource(speech, rate, lead=LEAD_S)
        sender = MediaSession(config=MediaConfig(ice=ICE, codecs=[codec]), source=source)
        context = await self.host.browser.new_context()
        recorder = PlayoutRecorder()
        try:
            page = await context.new_page()
            await page.goto(self.host.page_url)
            offer = await sender.create_offer()
            relay.set_peer("a", _address(offer))
            answer = await page.evaluate(PAGE_ANSWER, point_sdp_at(offer, relay.face_b))
            # Chromium's own address is learned by the relay from its first check (its
            # host candidate may be an mDNS name).
            await sender.set_answer(point_sdp_at(answer, relay.face_a))
            await asyncio.wait_for(sender.wait_connected(), 10)
            await asyncio.wait_for(source.wait_finished(), CALL_TIMEOUT)
            await asyncio.sleep(0.5)
            got = await page.evaluate(PAGE_COLLECT)
        finally:
            await sender.close()
            await context.close()
        if got["errors"]:
            print(f"    chromium page: {got['errors']}", flush=True)
        pcm = np.frombuffer(base64.b64decode(got["pcm"]), dtype="<i2").astype(np.int16)
        offset = 0
        for when, size in zip(got["times"], got["sizes"], strict=True):
            recorder.chunks.append((when / 1000.0, pcm[offset : offset + size], int(got["rate"])))
            offset += size
        return recorder, source


# -- the run ------------------------------------------------------------------------------

Caller = Callable[
    [Samples, int, str, ImpairmentRelay], Awaitable[tuple[PlayoutRecorder, SpeechSource]]
]


def _ours(
    speech: Samples, rate: int, codec: str, relay: ImpairmentRelay
) -> Awaitable[tuple[PlayoutRecorder, SpeechSource]]:
    return call_ours(speech, rate, codec, relay, lead=LEAD_S, timeout=CALL_TIMEOUT)


async def run(
    subjects: list[str], codecs: list[str], conditions: list[str], rounds: int, work: Path
) -> list[dict[str, Any]]:
    speech = {codec: make_speech(work / "speech", SCORE_RATE[codec]) for codec in codecs}
    callers: dict[str, Caller] = {"ours": _ours, "aiortc": call_aiortc}
    chromium: Chromium | None = None
    if "chromium" in subjects:
        reason = netns_skip_reason()
        if reason is not None:
            print(f"  chromium left out: {reason}", flush=True)
            subjects = [s for s in subjects if s != "chromium"]
        else:
            chromium = Chromium(work / "browser")
            await chromium.start()
            callers["chromium"] = chromium.call
    runs: list[dict[str, Any]] = []
    try:
        for round_no in range(rounds):
            for condition in conditions:
                for codec in codecs:
                    order = subjects if round_no % 2 == 0 else list(reversed(subjects))
                    for subject in order:
                        runs.append(
                            await one(callers[subject], subject, codec, condition, speech[codec])
                        )
    finally:
        if chromium is not None:
            await chromium.close()
    return runs


async def one(
    caller: Caller, subject: str, codec: str, condition: str, speech: Samples
) -> dict[str, Any]:
    rate = SCORE_RATE[codec]
    started = time.monotonic()
    error = None
    quality = Quality(None, None, 0.0, 0.0, None)
    playout: Quality | None = None
    async with ImpairmentRelay(CONDITIONS[condition]) as relay:
        try:
            recorder, source = await caller(speech, rate, codec, relay)
            quality = measure(speech, rate, recorder, source.sent_at, device_ms=DEVICE_MS)
            if subject == "ours":
                played = through_playout(recorder)
                if played is not None:
                    playout = measure(speech, rate, played, source.sent_at, device_ms=0.0)
            keep = os.environ.get("BENCH_QUALITY_KEEP")
            if keep:
                played, played_rate, _, _ = recorder.timeline(DEVICE_MS)
                name = f"{condition}-{codec}-{subject}.wav".replace("+", "_")
                Path(keep).mkdir(parents=True, exist_ok=True)
                write_wav(Path(keep) / name, played, played_rate)
                write_wav(Path(keep) / f"reference-{rate}.wav", speech, rate)
            error = quality.error
        except Exception as exc:  # one failed call must not end the run
            error = f"{type(exc).__name__}: {exc}"
        figures = relay.figures()
    net = figures["a->b"]
    print(
        f"  {condition:11s} {codec:4s} {subject:8s} PESQ {quality.pesq} latency "
        f"{quality.latency_ms} ms underflow {quality.underflow_ms} ms | relay a->b: "
        f"{net['packets']} pkts, loss {net['loss_pct']}% (bursts {net['bursts']}, mean "
        f"{net['burst_mean']}, max {net['burst_max']}), delay p50/p95/p99 "
        f"{net['delay_p50_ms']}/{net['delay_p95_ms']}/{net['delay_p99_ms']} ms, "
        f"reordered {net['reordered']} ({time.monotonic() - started:.0f} s)"
        + (f" ERROR {error}" if error else ""),
        flush=True,
    )
    if playout is not None:
        print(
            f"  {condition:11s} {codec:4s} {'ours+playout':12s} PESQ {playout.pesq} latency "
            f"{playout.latency_ms} ms (the same call through PlayoutBuffer on a 20 ms clock)",
            flush=True,
        )
    result = {
        "condition": condition,
        "codec": codec,
        "subject": subject,
        "pesq": quality.pesq,
        "latency_ms": quality.latency_ms,
        "underflow_ms": quality.underflow_ms,
        "correlation": quality.correlation,
        "error": error,
        "relay": figures,
    }
    if playout is not None:
        result["playout"] = {
            "pesq": playout.pesq,
            "latency_ms": playout.latency_ms,
            "error": playout.error,
        }
    return result


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def summarize(runs: list[dict[str, Any]], subjects: list[str]) -> list[dict[str, Any]]:
    """One row per condition and codec: each subject's PESQ and latency (medians over
    rounds), and the relay's figures (the ``ours`` run's, direction of the speech)."""
    rows = []
    keys = list(dict.fromkeys((r["condition"], r["codec"]) for r in runs))
    for condition, codec in keys:
        row: dict[str, Any] = {"condition": condition, "codec": codec}
        cell = [r for r in runs if r["condition"] == condition and r["codec"] == codec]
        for subject in [s for s in subjects if s != "ours+playout"]:
            mine = [r for r in cell if r["subject"] == subject]
            row[f"{subject}_pesq"] = _median([r["pesq"] for r in mine if r["pesq"] is not None])
            row[f"{subject}_ms"] = _median(
                [r["latency_ms"] for r in mine if r["latency_ms"] is not None]
            )
        with_playout = [r["playout"] for r in cell if r["subject"] == "ours" and "playout" in r]
        if with_playout:
            row["ours+playout_pesq"] = _median(
                [p["pesq"] for p in with_playout if p["pesq"] is not None]
            )
            row["ours+playout_ms"] = _median(
                [p["latency_ms"] for p in with_playout if p["latency_ms"] is not None]
            )
        net = [r["relay"]["a->b"] for r in cell]
        row["net_loss_pct"] = _median([n["loss_pct"] for n in net])
        row["net_p50_ms"] = _median([n["delay_p50_ms"] for n in net if n["packets"]])
        row["net_p95_ms"] = _median([n["delay_p95_ms"] for n in net if n["packets"]])
        rows.append(row)
    return rows


def targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's goals per row, for ours as handed over and ours through the playout
    buffer: PESQ >= Chromium's - 0.2 and > aiortc's; latency <= half of aiortc's."""
    out: dict[str, Any] = {}
    for row in rows:
        name = f"{row['condition']}/{row['codec']}"
        raw, chrome, raw_ms = row.get("aiortc_pesq"), row.get("chromium_pesq"), row.get("aiortc_ms")
        for mine in ("ours", "ours+playout"):
            ours, ours_ms = row.get(f"{mine}_pesq"), row.get(f"{mine}_ms")
            if ours is not None and chrome is not None:
                out[f"{name}: {mine} PESQ >= chromium - 0.2"] = ours >= chrome - 0.2
            if ours is not None and raw is not None:
                # A tie is the same decoded audio (a clean network, a bit-exact codec).
                out[f"{name}: {mine} PESQ > aiortc"] = "tie" if ours == raw else ours > raw
            if ours_ms is not None and raw_ms is not None:
                out[f"{name}: {mine} latency <= aiortc / 2"] = ours_ms <= raw_ms / 2
    return out


def markdown(rows: list[dict[str, Any]], subjects: list[str]) -> str:
    head = (
        ["condition", "codec"]
        + [f"{s} PESQ" for s in subjects]
        + [f"{s} ms" for s in subjects]
        + ["relay loss %", "relay delay p50/p95 ms"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["condition"], r["codec"]]
        cells += [str(r.get(f"{s}_pesq")) for s in subjects]
        cells += [str(r.get(f"{s}_ms")) for s in subjects]
        cells += [str(r["net_loss_pct"]), f"{r['net_p50_ms']}/{r['net_p95_ms']}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def main() -> dict[str, Any]:
    rounds = max(1, min(int(os.environ.get("BENCH_QUALITY_ROUNDS", "1")), 5))
    codecs = os.environ.get("BENCH_QUALITY_CODECS", "opus,PCMU").split(",")
    subjects = os.environ.get("BENCH_QUALITY_SUBJECTS", ",".join(SUBJECTS)).split(",")
    conditions = os.environ.get("BENCH_QUALITY_CONDITIONS", ",".join(CONDITIONS)).split(",")
    for name, known in (("codec", SCORE_RATE), ("subject", SUBJECTS), ("condition", CONDITIONS)):
        chosen = {"codec": codecs, "subject": subjects, "condition": conditions}[name]
        unknown = [x for x in chosen if x not in known]
        if unknown:
            raise ValueError(f"unknown {name}(s) {unknown}: choose from {list(known)}")
    load_before = os.getloadavg()
    commit = _commit()
    print(
        f"call_quality (commit {commit}): {len(conditions)} conditions x {codecs} x "
        f"{subjects}, {rounds} round(s); "
        + "; ".join(f"{c}: {CONDITIONS[c].describe()}" for c in conditions),
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="quality-") as tmp:
        runs = asyncio.run(run(subjects, codecs, conditions, rounds, Path(tmp)))
    subjects = [s for s in subjects if any(r["subject"] == s for r in runs)]
    if any("playout" in r for r in runs):
        subjects.insert(subjects.index("ours") + 1, "ours+playout")
    rows = summarize(runs, subjects)
    print(markdown(rows, subjects))
    return {
        "what": "PESQ (nb PCMU, wb Opus) and one-way latency of speech through a call via "
        "the impairment relay; sender ours, receiver per subject",
        "commit": commit,
        "conditions": {c: CONDITIONS[c].describe() for c in conditions},
        "loadavg_before_after": [round(x, 2) for x in load_before + os.getloadavg()],
        "table": rows,
        "runs": runs,
        "markdown": markdown(rows, subjects),
        "targets": targets(rows),
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
