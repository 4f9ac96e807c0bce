"""Benchmark: SIP message parsing, exotel_voice.sip versus sippy and pyVoIP.

One run measures every parser on the same messages (tests/sip/data/wss/*.sip: a SIP.js 0.21
REGISTER / 401 / REGISTER with Authorization / 200 exchange and a Chrome WebRTC INVITE as
sent and as delivered through Kamailio), in interleaved rounds so that load from other
processes falls on all parsers alike.

Parsers ("modes"):

* ``ours_txn``: ``parse_message(data)`` then ``.via .from_ .to .call_id .cseq`` - the
  transaction path: start line, Request-URI, Via, From, To, Call-ID, CSeq and Content-Length
  parsed and checked by the parse (the accessors hand out copies).
* ``ours_headers``: the same, then every other structured header the SDK reads (Contact,
  Route, Record-Route, Max-Forwards, Content-Type). The SDP body stays text: the SIP core
  does not parse it (the media layer checks a remote SDP before aiortc parses it).
* ``sippy_lazy``: ``SipRequest(text)`` / ``SipResponse(text)`` - sippy splits the headers into
  typed but unparsed header objects and reads Content-Length.
* ``sippy_full``: the same, then ``getBody()`` on every header (which parses it) and
  ``body.parse()`` (SDP).
* ``pyvoip``: ``pyVoIP.SIP.SIPMessage(data)``, which always parses headers and SDP. Its
  failures (it rejects UDP/TLS/RTP/SAVPF and SIP.js' REGISTER) are recorded, not hidden.

Every mode includes decoding the bytes (sippy takes ``str``). Timings use
``time.perf_counter``; each round times ``ITERATIONS`` parses; the result is the median over
``ROUNDS`` rounds (the minimum is reported too).

The parser is pure Python. The numbers are a record, not a target: a phone sees a few
messages a second, and call set-up time is dominated by ICE and DTLS.

Run: ``.venv/bin/python bench/sip_parse.py`` (or ``bench/run_all.py``).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from exotel_voice.sip.message import parse_message  # noqa: E402


DATA = ROOT / "tests" / "sip" / "data" / "wss"
ITERATIONS = int(os.environ.get("BENCH_ITERATIONS", "300"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))
TARGET_MESSAGE = "05-invite-webrtc.sip"


def _modes(data: bytes) -> dict[str, Callable[[], object]]:
    """The parsers to time on one message (each a no-argument callable)."""
    modes: dict[str, Callable[[], object]] = {}

    def ours_txn() -> object:
        m = parse_message(data)
        return (m.via, m.from_, m.to, m.call_id, m.cseq)

    def ours_headers() -> object:
        m = parse_message(data)
        return (m.vias, m.from_, m.to, m.call_id, m.cseq, m.contacts, m.routes,
                m.record_routes, m.max_forwards, m.content_type)

    modes["ours_txn"] = ours_txn
    modes["ours_headers"] = ours_headers

    from sippy.SipRequest import SipRequest
    from sippy.SipResponse import SipResponse

    cls = SipResponse if data.startswith(b"SIP/") else SipRequest

    def sippy_lazy() -> object:
        return cls(data.decode("utf-8"))

    def sippy_full() -> object:
        m = cls(data.decode("utf-8"))
        for header in m.headers:
            header.getBody()
        if m.body is not None:
            m.body.parse()
        return m

    modes["sippy_lazy"] = sippy_lazy
    modes["sippy_full"] = sippy_full

    import pyVoIP.VoIP  # noqa: F401 - pyVoIP.SIP has an import cycle that this order avoids
    from pyVoIP.SIP import SIPMessage

    def pyvoip() -> object:
        return SIPMessage(data)

    modes["pyvoip"] = pyvoip
    return modes


def _check(name: str, data: bytes, modes: dict[str, Callable[[], object]]) -> dict[str, str]:
    """Run each mode once; drop (and report) the ones that fail on this message."""
    failures: dict[str, str] = {}
    for mode, fn in list(modes.items()):
        try:
            fn()
        except Exception as exc:  # a peer parser failing is a result, not a crash
            failures[mode] = f"{type(exc).__name__}: {str(exc)[:120]}"
            del modes[mode]
    # Sanity: ours and sippy agree on what they parsed.
    ours = parse_message(data)
    if "sippy_full" in modes:
        from sippy.SipRequest import SipRequest
        from sippy.SipResponse import SipResponse

        cls = SipResponse if data.startswith(b"SIP/") else SipRequest
        theirs = cls(data.decode("utf-8"))
        assert theirs.getHFBody("call-id").getCopy().__str__() == ours.call_id, name
        assert theirs.getHFBody("cseq").getCSeqNum() == ours.cseq.seq, name
    return failures


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(ITERATIONS):
        fn()
    return (time.perf_counter() - start) / ITERATIONS * 1e6


def bench_message(path: Path) -> dict[str, Any]:
    """Time every mode on one message; interleaved rounds, median and min in microseconds."""
    data = path.read_bytes()
    modes = _modes(data)
    failures = _check(path.name, data, modes)
    samples: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(ROUNDS):
        for mode, fn in modes.items():
            samples[mode].append(_time(fn))
    result: dict[str, Any] = {
        "message": path.name,
        "bytes": len(data),
        "median_us": {m: round(statistics.median(s), 2) for m, s in samples.items()},
        "min_us": {m: round(min(s), 2) for m, s in samples.items()},
        "failures": failures,
    }
    med = result["median_us"]
    low = result["min_us"]
    ratios: dict[str, float] = {}
    if "sippy_lazy" in med:
        ratios["sippy_lazy / ours_txn"] = round(med["sippy_lazy"] / med["ours_txn"], 2)
        ratios["sippy_lazy / ours_txn (min)"] = round(low["sippy_lazy"] / low["ours_txn"], 2)
    if "sippy_full" in med:
        ratios["sippy_full / ours_headers"] = round(med["sippy_full"] / med["ours_headers"], 2)
    result["ratios"] = ratios
    return result


def main() -> dict[str, Any]:
    """Benchmark every message; returns the results (the bench/run_all.py convention)."""
    messages = [bench_message(p) for p in sorted(DATA.glob("*.sip"))]
    target = next(m for m in messages if m["message"] == TARGET_MESSAGE)
    table = []
    for m in messages:
        row: dict[str, object] = {"message": m["message"]}
        row.update({k: v for k, v in m["median_us"].items()})
        row["pyvoip"] = m["median_us"].get("pyvoip", "FAILED")
        table.append(row)
    return {
        "benchmark": "sip_parse",
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_avg_1m": os.getloadavg()[0],
        },
        "iterations": ITERATIONS,
        "rounds": ROUNDS,
        # The parse row, on the WebRTC INVITE: a record, not a target.
        "parse_row": {"message": TARGET_MESSAGE, **target["ratios"]},
        "messages": messages,
        "table": table,
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2, ensure_ascii=False))
