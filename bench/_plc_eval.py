"""Offline evaluation of the G.711 packet-loss concealment (media/plc.py) with PESQ.

Deterministic, no network, a few seconds: the call-quality benchmark's speech
(``tests/rig/speech.py``: espeak-ng, 8.7 s, 8 kHz) is sent as it is in a call (1 s of
silence first, then the speech, then 1 s of silence), encoded to PCMU in 20 ms frames;
frames are dropped by fixed patterns, made per RTP packet as the impairment relay makes
them (``random.Random(seed)``: Bernoulli loss, or the Gilbert-Elliott model of
``tests/rig/impair.py``); what is left is decoded and concealed with the call sequence of
the lean receive path (``media/jitter.py`` ``LeanReceiver``: ``good()`` for each decoded
frame, ``conceal()`` for each lost one once a frame was heard, nothing past a run of
``MAX_CONCEAL_PACKETS``); and the speech part is scored with PESQ (P.862, narrow-band)
against the original.

Contenders: ``zeros`` (every lost frame silent), ``baseline`` (``PitchConcealer`` from a
git revision, ``--baseline``) and ``current`` (the working tree's).  Also printed: the
cost of each, microseconds per concealed frame (the ``conceal()`` call plus the merge in
the next ``good()``, less a good frame's own cost), median over rounds.

    .venv/bin/python bench/_plc_eval.py [--baseline REV] [--rounds N]

Not run by ``bench/run_all.py`` (the leading underscore): a development tool.
"""

from __future__ import annotations

import argparse
import inspect
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path[:1]:
    sys.path.insert(0, str(REPO))

from tests.rig.impair import GilbertElliott  # noqa: E402
from tests.rig.speech import make_speech, score  # noqa: E402

from exotel_voice.media import plc as current_plc  # noqa: E402
from exotel_voice.media.codecs import ULAW_DECODE, G711Decoder, ulaw_encode  # noqa: E402
from exotel_voice.media.jitter import MAX_CONCEAL_PACKETS  # noqa: E402
from exotel_voice.media.pcm import Samples  # noqa: E402


RATE = 8000
FRAME = RATE // 50
LEAD_S = TAIL_S = 1.0
#: The baseline's revision: the concealer before the changes this tool was made for.
DEFAULT_BASELINE = "c01e88c"

#: name -> (kind, loss, seed).  Seeds 13 and 14 are bench/call_quality.py's for loss2 and
#: burst5 (its A-to-B direction uses ``seed * 2``); the others are more draws alike.
PATTERNS: dict[str, tuple[str, float, int]] = {
    "clean": ("random", 0.0, 0),
    "loss2 s26": ("random", 0.02, 26),
    **{f"loss2 s{seed}": ("random", 0.02, seed) for seed in range(1, 6)},
    "burst5 s28": ("burst", 0.05, 28),
    **{f"burst5 s{seed}": ("burst", 0.05, seed) for seed in range(1, 6)},
    "loss10 s4": ("random", 0.10, 4),
}


def loss_pattern(frames: int, kind: str, loss: float, seed: int) -> list[bool]:
    """Which of ``frames`` packets are lost (True), drawn as the impairment relay draws."""
    rng = random.Random(seed)
    lost: list[bool] = []
    if kind == "burst":
        ge = GilbertElliott.for_loss(loss, mean_burst=3.0)
        bad = False
        for _ in range(frames):
            bad = (rng.random() >= ge.r) if bad else (rng.random() < ge.p)
            lost.append(rng.random() < (ge.loss_bad if bad else ge.loss_good))
    else:
        for _ in range(frames):
            lost.append(loss > 0 and rng.random() < loss)
    return lost


class Timer:
    """Seconds spent in the concealer's calls, split by kind."""

    def __init__(self) -> None:
        self.conceal = 0.0
        self.merge = 0.0  # good() right after a loss
        self.good = 0.0
        self.concealed = self.merged = self.goods = 0


def receive(
    payloads: list[bytes], lost: list[bool], make: Callable[[int], Any] | None, timer: Timer
) -> Samples:
    """What the lean receive path plays: decoded frames, and for lost ones the concealment
    (``make`` builds the concealer; None: silence)."""
    decoder = G711Decoder(ULAW_DECODE)
    concealer = None
    out: list[Samples] = []
    run = 0
    for index, (payload, gone) in enumerate(zip(payloads, lost, strict=True)):
        if gone:
            run += 1
            if concealer is not None and run <= MAX_CONCEAL_PACKETS:
                # The lean path has the next packet when it is the one that showed the
                # hole (a lost frame followed by a good one; earlier frames of a longer
                # burst are given up on time, before it comes).
                ahead = None
                if (index + 1 < len(lost) and not lost[index + 1]
                        and "following" in inspect.signature(concealer.conceal).parameters):
                    ahead = decoder.decode(payloads[index + 1])
                t = time.perf_counter()
                frame = (concealer.conceal(FRAME) if ahead is None
                         else concealer.conceal(FRAME, ahead))
                timer.conceal += time.perf_counter() - t
                timer.concealed += 1
                out.append(frame)
            else:
                out.append(np.zeros(FRAME, np.int16))  # the device plays an underflow
            continue
        samples = decoder.decode(payload)
        if make is not None:
            if concealer is None:
                concealer = make(RATE)
            t = time.perf_counter()
            samples = concealer.good(samples)
            spent = time.perf_counter() - t
            if run:
                timer.merge += spent
                timer.merged += 1
            else:
                timer.good += spent
                timer.goods += 1
        run = 0
        out.append(samples)
    return np.concatenate(out)


def load_baseline(revision: str) -> types.ModuleType | None:
    """media/plc.py as of ``revision`` (None when git cannot give it)."""
    try:
        source = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{revision}:src/exotel_voice/media/plc.py"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"baseline {revision}: not available ({exc})", file=sys.stderr)
        return None
    module = types.ModuleType("exotel_voice.media._plc_baseline")
    module.__package__ = "exotel_voice.media"
    exec(compile(source, f"plc.py@{revision}", "exec"), module.__dict__)
    return module


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision")
    parser.add_argument("--rounds", type=int, default=3, help="rounds for the cost figures")
    parser.add_argument("--patterns", default="", help="comma-separated subset of patterns")
    args = parser.parse_args(argv)

    speech = make_speech(Path(tempfile.gettempdir()) / "exotel_voice_plc_eval", RATE)
    lead, tail = int(LEAD_S * RATE), int(TAIL_S * RATE)
    signal = np.concatenate([np.zeros(lead, np.int16), speech, np.zeros(tail, np.int16)])
    signal = signal[: signal.size - signal.size % FRAME]
    payloads = [ulaw_encode(signal[i : i + FRAME]) for i in range(0, signal.size, FRAME)]

    contenders: dict[str, Callable[[int], Any] | None] = {"zeros": None}
    baseline = load_baseline(args.baseline)
    if baseline is not None:
        contenders["baseline"] = baseline.PitchConcealer
    contenders["current"] = current_plc.PitchConcealer

    wanted = [p for p in args.patterns.split(",") if p] or list(PATTERNS)
    rows: list[dict[str, Any]] = []
    costs: dict[str, list[float]] = {name: [] for name in contenders if name != "zeros"}
    for name in wanted:
        kind, loss, seed = PATTERNS[name]
        lost = loss_pattern(len(payloads), kind, loss, seed)
        speech_lost = lost[lead // FRAME : (lead + speech.size) // FRAME]
        row: dict[str, Any] = {"pattern": name, "lost %": round(100 * np.mean(speech_lost), 1)}
        for label, make in contenders.items():
            timer = Timer()
            played = receive(payloads, lost, make, timer)
            degraded = played[lead : lead + speech.size]
            row[label] = round(score(speech, degraded, RATE), 3)
        rows.append(row)
    # The cost: each contender on a lossy pattern, rounds interleaved.
    lost = loss_pattern(len(payloads), "random", 0.10, 4)
    for _ in range(args.rounds):
        for label, make in contenders.items():
            if make is None:
                continue
            timer = Timer()
            receive(payloads, lost, make, timer)
            per_good = timer.good / max(1, timer.goods)
            spent = timer.conceal + timer.merge - timer.merged * per_good
            costs[label].append(1e6 * spent / max(1, timer.concealed))
    cost = {label: round(statistics.median(v), 1) for label, v in costs.items()}

    labels = ["pattern", "lost %", *contenders]
    print("PESQ nb of the speech as the lean receive path plays it (PCMU, 20 ms frames)")
    widths = [max(len(k), 10) for k in labels]
    print("  ".join(k.ljust(w) for k, w in zip(labels, widths, strict=True)))
    for row in rows:
        print("  ".join(str(row[k]).ljust(w) for k, w in zip(labels, widths, strict=True)))
    means = {k: round(float(np.mean([r[k] for r in rows if r["pattern"] != "clean"])), 3)
             for k in contenders}  # fmt: skip
    cells = ["mean (lossy)", "", *means.values()]
    print("  ".join(str(v).ljust(w) for v, w in zip(cells, widths, strict=True)))
    print("cost, us per concealed frame (median of", args.rounds, "rounds):", cost)
    return {"table": rows, "mean": means, "cost_us_per_frame": cost}


if __name__ == "__main__":
    print(json.dumps(main()))
