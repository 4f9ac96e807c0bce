"""Call setup through a real Kamailio + rtpengine on loopback: our SDK against SIP.js.

The callee is the contender: our :class:`~exotel_voice.client.Phone` (asyncio, ws) and
SIP.js 0.21 in headless Chromium (``tests/rig/browser.py``), both registered over ws on
the same Kamailio.  The caller is always the same baresip (UDP, PCMU, a 440 Hz WAV), so
the offer each callee gets is rtpengine's WebRTC offer (ICE, DTLS passive, SAVPF) and
rtpengine bridges the media.  ``BENCH_CALLS`` calls per contender (default 15), the
contenders alternating call by call (which goes first alternates too), after one warm-up
call each.  Each callee answers at once, in its own process:

* ours: ``await phone.next_incoming_call()`` then ``await call.answer()`` (what an
  application does);
* SIP.js: the page's ``onInvite`` delegate (which emits ``incoming`` and sends 180, as
  ours does) is wrapped to call ``invitation.accept()`` right after it -- in the page, so
  no Playwright round trip is counted.

Measured per call, each on the callee's own clock:

* ``invite_to_200``: the INVITE arriving at the callee's SIP transport to the 200 OK
  leaving it.  Ours: ``Phone.message_received`` (the WebSocket message handed to the
  phone) to ``WebSocketTransport.send`` of the 200, ``time.perf_counter``.  SIP.js: the
  transport's ``onMessage`` to ``transport.send`` of the 200, ``performance.now()``.
* ``invite_to_audio``: the INVITE arriving to the first decoded audio frame of the call.
  Ours: the first ``write`` to an :class:`~exotel_voice.media.AudioSink` attached when
  ``answer()`` returns (checked: no RTP had arrived yet).  Chromium: the first time the
  audio receiver's ``getSynchronizationSources()`` is non-empty (Chromium fills it as
  frames are delivered), polled every 2 ms from the INVITE on; the source's own
  ``timestamp`` (the delivery time, epoch ms) is used when it lies within 20 ms before
  the poll that saw it (it does: 1-6 ms), else the poll time.

Both include the caller's part that the callee waits for (the 200 crossing Kamailio to
baresip, rtpengine relaying baresip's first RTP after its ICE/DTLS with the callee).

Starts its own rtpengine + Kamailio (tests/rig) on 127.0.0.1; inside the namespace:
``scripts/in-netns.sh .venv/bin/python bench/run_all.py call_setup``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any


REPO = Path(__file__).resolve().parents[1]
# sippy installs a top-level package named `tests`; the repository's `tests` (a regular
# package) wins when the repository comes first on the path.
if str(REPO) not in sys.path[:1]:
    sys.path.insert(0, str(REPO))

from tests.rig import missing_binaries, netns_skip_reason  # noqa: E402
from tests.rig.baresip import BaresipPhone  # noqa: E402
from tests.rig.browser import BrowserHost, BrowserPhone, check_bundle  # noqa: E402
from tests.rig.certs import make_certs  # noqa: E402
from tests.rig.kamailio import DOMAIN, Kamailio  # noqa: E402
from tests.rig.rtpengine import Rtpengine  # noqa: E402

from exotel_voice.client import Call, Phone  # noqa: E402
from exotel_voice.config import AccountConfig  # noqa: E402
from exotel_voice.media import IceConfig, MediaConfig, ToneSource  # noqa: E402
from exotel_voice.media.pcm import Samples  # noqa: E402
from exotel_voice.media.sinks import AudioSink  # noqa: E402


CALLS = int(os.environ.get("BENCH_CALLS", "15"))
BUDGET = float(os.environ.get("BENCH_CALL_SETUP_SECONDS", "150"))  # wall clock, all calls
STEP_TIMEOUT = 10.0
MEDIA = MediaConfig(ice=IceConfig(host_addresses=["127.0.0.1"]))
#: ours as shipped, ours waiting for rtpengine's ICE nomination (aioice's own behaviour,
#: IceConfig(early_selection=False)), and SIP.js in Chromium.
CONTENDERS = ("ours", "ours_wait_nomination", "sipjs")
MEDIA_WAIT = MediaConfig(ice=IceConfig(host_addresses=["127.0.0.1"], early_selection=False))
BREAKDOWN = ("app_has_call", "answer_returned", "dtls_connected", "first_rtp")

_CALL_ID = re.compile(r"^(?:Call-ID|i)[ \t]*:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)
_CSEQ_INVITE = re.compile(r"^CSeq[ \t]*:[ \t]*\d+[ \t]+INVITE", re.IGNORECASE | re.MULTILINE)

# Installed in the page once the phone is registered: per-INVITE timestamps at SIP.js's
# transport, in-page auto-answer, and first-audio polling.  State in window.__bench.
PAGE_INSTRUMENT = r"""
() => {
  const peer = window.peer;
  const ua = peer.ua;
  const bench = (window.__bench = { calls: {}, current: null, errors: [] });
  const tr = ua.transport;
  const callId = (m) => {
    const r = /^(?:Call-ID|i)[ \t]*:[ \t]*(\S+)/im.exec(m);
    return r ? r[1] : null;
  };
  const isOk = (m) => m.startsWith("SIP/2.0 200") && /^CSeq[ \t]*:[ \t]*\d+[ \t]+INVITE/im.test(m);
  const onMessage = tr.onMessage;
  tr.onMessage = (m) => {
    if (typeof m === "string" && m.startsWith("INVITE ")) {
      const id = callId(m);
      if (id && !bench.calls[id]) {
        bench.calls[id] = { invite: performance.now() };
        bench.current = id;
      }
    }
    return onMessage(m);
  };
  const send = tr.send.bind(tr);
  tr.send = (m) => {
    if (typeof m === "string" && isOk(m)) {
      const c = bench.calls[callId(m)];
      if (c && c.ok === undefined) c.ok = performance.now();
    }
    return send(m);
  };
  const delegate = ua.delegate;
  const onInvite = delegate.onInvite.bind(delegate);
  delegate.onInvite = (invitation) => {
    onInvite(invitation);
    const c = bench.calls[invitation.request.callId];
    if (!c) return;
    invitation.accept().catch((e) => bench.errors.push(String(e)));
    const timer = setInterval(() => {
      const sdh = invitation.sessionDescriptionHandler;
      const pc = sdh && sdh.peerConnection;
      if (pc) {
        for (const r of pc.getReceivers()) {
          if (r.track && r.track.kind === "audio" && r.getSynchronizationSources().length) {
            c.audio = performance.now();
            c.source_ts = r.getSynchronizationSources()[0].timestamp;
            c.wall = performance.timeOrigin + c.audio;
            clearInterval(timer);
            return;
          }
        }
      }
      if (performance.now() - c.invite > 10000) clearInterval(timer);
    }, 2);
  };
  return true;
}
"""


def account(k: Kamailio, user: str, password: str) -> AccountConfig:
    return AccountConfig.from_sip_account_info(
        {"userName": user, "sipdomain": k.info.domain, "secret": password, "wsUrl": k.info.ws_url}
    )


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def call_id(data: str | bytes) -> str | None:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    match = _CALL_ID.search(text)
    return match.group(1) if match else None


class FirstFrame(AudioSink):
    """Records when the first received frame is delivered."""

    def __init__(self) -> None:
        self.at: float | None = None
        self.arrived = asyncio.Event()

    def write(self, samples: Samples, sample_rate: int) -> None:
        if self.at is None:
            self.at = time.perf_counter()
            self.arrived.set()


class TimedPhone:
    """Our Phone with its INVITE arrivals and 200 OK sends timestamped at the transport."""

    def __init__(self, phone: Phone) -> None:
        self.phone = phone
        self.invites: dict[str, float] = {}
        self.oks: dict[str, float] = {}
        received = phone.message_received

        def message_received(data: str | bytes) -> None:
            now = time.perf_counter()
            head = data[:8]
            if head.startswith(b"INVITE " if isinstance(head, bytes) else "INVITE "):
                cid = call_id(data)
                if cid is not None:
                    self.invites.setdefault(cid, now)
            received(data)

        phone.message_received = message_received  # type: ignore[method-assign]

    async def start(self) -> None:
        await self.phone.start()
        await self.phone.register(timeout=10)
        transport = self.phone._transport  # the bench times the real send path
        assert transport is not None
        real_send = transport.send

        async def send(data: bytes | str) -> None:
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
            if text.startswith("SIP/2.0 200") and _CSEQ_INVITE.search(text):
                cid = call_id(text)
                if cid is not None:
                    self.oks.setdefault(cid, time.perf_counter())
            await real_send(data)

        transport.send = send  # type: ignore[method-assign]


async def blocking(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


async def hang_up(caller: BaresipPhone) -> None:
    await blocking(caller.hangup)
    await blocking(caller.wait_event, "CALL_CLOSED", STEP_TIMEOUT)


class MediaTimes:
    """When our call's ICE and DTLS came up and its first RTP packet arrived."""

    def __init__(self, call: Call) -> None:
        media = call.media
        assert media is not None
        pc = media._pc  # aiortc's RTCPeerConnection: state events, for the breakdown
        self.ice: float | None = None
        self.connected: float | None = None
        self.first_rtp: float | None = None

        def ice_changed() -> None:
            if self.ice is None and pc.iceConnectionState == "completed":
                self.ice = time.perf_counter()

        def connection_changed() -> None:
            if self.connected is None and pc.connectionState == "connected":
                self.connected = time.perf_counter()

        pc.on("iceconnectionstatechange", ice_changed)
        pc.on("connectionstatechange", connection_changed)
        tap = media._tap
        assert tap is not None
        handle = tap.media
        assert handle is not None

        def media_packet(data: bytes) -> bool:
            if self.first_rtp is None:
                self.first_rtp = time.perf_counter()
            return handle(data)

        tap.media = media_packet


async def call_ours(caller: BaresipPhone, ours: TimedPhone, aor: str) -> dict[str, Any]:
    # The application is already waiting when the INVITE comes (baresip's ctrl_tcp answers
    # the dial command only after the INVITE went out, so don't wait for that first).
    incoming = asyncio.ensure_future(ours.phone.next_incoming_call(STEP_TIMEOUT))
    dialled = asyncio.ensure_future(blocking(caller.dial, aor))
    call: Call = await incoming
    delivered = time.perf_counter()
    await asyncio.wait_for(call.answer(), STEP_TIMEOUT)
    answered = time.perf_counter()
    media = call.media
    assert media is not None
    early_packets = media.stats().packets_received
    times = MediaTimes(call)
    sink = FirstFrame()
    call.add_sink(sink)
    try:
        await dialled
        await asyncio.wait_for(sink.arrived.wait(), STEP_TIMEOUT)
    finally:
        await hang_up(caller)
        await asyncio.wait_for(call.wait_ended(), STEP_TIMEOUT)
    invite = ours.invites[call.call_id]
    assert sink.at is not None

    def since_invite(t: float | None) -> float | None:
        return None if t is None else round((t - invite) * 1000, 2)

    return {
        "invite_to_200_ms": (ours.oks[call.call_id] - invite) * 1000,
        "invite_to_audio_ms": (sink.at - invite) * 1000,
        "rtp_before_sink": early_packets,
        # The breakdown, ms after the INVITE arrived.
        "app_has_call": since_invite(delivered),
        "answer_returned": since_invite(answered),
        "ice_completed": since_invite(times.ice),
        "dtls_connected": since_invite(times.connected),
        "first_rtp": since_invite(times.first_rtp),
    }


async def call_sipjs(caller: BaresipPhone, browser: BrowserPhone, aor: str) -> dict[str, Any]:
    page = browser._page
    assert page is not None
    await blocking(caller.dial, aor)
    await browser.wait_for("established", timeout=STEP_TIMEOUT)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP_TIMEOUT
    record: dict[str, Any] = {}
    try:
        while loop.time() < deadline:
            state = await page.evaluate(
                "() => { const b = window.__bench; return [b.calls[b.current], b.errors]; }"
            )
            record, errors = state
            if errors:
                raise RuntimeError(f"SIP.js accept failed: {errors}")
            if record and "audio" in record and "ok" in record:
                break
            await asyncio.sleep(0.05)
        else:
            raise TimeoutError(f"no audio at the browser: {record}")
    finally:
        await hang_up(caller)
        await browser.wait_for("terminated", timeout=STEP_TIMEOUT)
    # Chromium's own delivery time of that frame (RTCRtpSynchronizationSource.timestamp,
    # epoch ms): used when it is on the page's clock, i.e. at most a few polls back.
    lag = record["wall"] - record["source_ts"]
    audio = record["audio"] - lag if 0 <= lag <= 20 else record["audio"]
    return {
        "invite_to_200_ms": record["ok"] - record["invite"],
        "invite_to_audio_ms": audio - record["invite"],
        "audio_from_poll_ms": record["audio"] - record["invite"],
        "source_lag_ms": lag,
    }


def summary(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {
        "n": len(values),
        "median_ms": round(statistics.median(values), 2) if values else None,
        "min_ms": round(ordered[0], 2) if values else None,
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 2) if values else None,
        "max_ms": round(ordered[-1], 2) if values else None,
    }


async def run(k: Kamailio, run_dir: Path) -> dict[str, Any]:
    caller_user, caller_password = k.new_user("caller")
    caller = BaresipPhone(
        run_dir / "baresip", user=caller_user, password=caller_password, server=k.info
    )
    await blocking(caller.start)
    user, password = k.new_user("ours")
    ours = TimedPhone(
        Phone(account(k, user, password), media=MEDIA, source=lambda: ToneSource(700))
    )
    w_user, w_password = k.new_user("ourswait")
    ours_wait = TimedPhone(
        Phone(account(k, w_user, w_password), media=MEDIA_WAIT, source=lambda: ToneSource(700))
    )
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTENDERS}
    errors: list[str] = []
    started = time.perf_counter()
    try:
        async with BrowserHost(run_dir / "browser") as host:
            browser = await host.new_phone("sipjs", tone_hz=1100)
            b_user, b_password = k.new_user("sipjs")
            await browser.register(k.info.ws_url, k.info.aor(b_user), b_user, b_password)
            assert browser._page is not None
            await browser._page.evaluate(PAGE_INSTRUMENT)
            await ours.start()
            await ours_wait.start()
            contenders: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
                "ours": lambda: call_ours(caller, ours, k.info.aor(user)),
                "ours_wait_nomination": lambda: call_ours(caller, ours_wait, k.info.aor(w_user)),
                "sipjs": lambda: call_sipjs(caller, browser, k.info.aor(b_user)),
            }
            for name in CONTENDERS:  # warm-up, not counted
                await contenders[name]()
            for i in range(CALLS):
                if time.perf_counter() - started > BUDGET:
                    errors.append(f"time budget of {BUDGET:.0f}s reached after {i} rounds")
                    break
                shift = i % len(CONTENDERS)
                order = CONTENDERS[shift:] + CONTENDERS[:shift]
                for name in order:
                    try:
                        samples[name].append(await contenders[name]())
                    except Exception as exc:  # recorded, the run goes on
                        errors.append(f"{name} round {i}: {type(exc).__name__}: {exc}")
                        if len(errors) > 5:
                            raise
            await browser.close()
            await ours.phone.close()
            await ours_wait.phone.close()
    finally:
        await blocking(caller.stop)
    seconds = time.perf_counter() - started

    stats = {
        name: {
            metric: summary([s[metric] for s in samples[name]])
            for metric in ("invite_to_200_ms", "invite_to_audio_ms")
        }
        for name in CONTENDERS
    }
    ratios = {
        f"{name}/sipjs {metric}": round(
            stats[name][metric]["median_ms"] / stats["sipjs"][metric]["median_ms"], 2
        )
        if stats[name][metric]["median_ms"] and stats["sipjs"][metric]["median_ms"]
        else None
        for name in ("ours", "ours_wait_nomination")
        for metric in ("invite_to_200_ms", "invite_to_audio_ms")
    }
    breakdown = {
        name: {
            step: round(statistics.median(v), 2)
            if (v := [s[step] for s in samples[name] if s.get(step) is not None])
            else None
            for step in BREAKDOWN
        }
        for name in ("ours", "ours_wait_nomination")
    }
    return {
        "calls_per_contender": CALLS,
        "seconds": round(seconds, 1),
        "stats": stats,
        "ratios_over_sipjs": ratios,
        "ours_breakdown_median_ms_after_invite": breakdown,
        "samples": samples,
        "errors": errors,
        "rtp_before_sink": max(
            (s["rtp_before_sink"] for n in CONTENDERS[:2] for s in samples[n]), default=0
        ),
    }


def main() -> dict[str, Any]:
    reason = netns_skip_reason()
    missing = missing_binaries("kamailio", "rtpengine", "baresip", "chromium")
    if reason or missing:
        raise RuntimeError(reason or f"not installed: {', '.join(missing)}")
    check_bundle()
    run_dir = Path(tempfile.mkdtemp(prefix="bench-call-setup-"))
    certs = make_certs(run_dir / "certs", ("127.0.0.1", "localhost", DOMAIN))
    engine = Rtpengine(run_dir / "rtpengine")
    k = Kamailio(run_dir / "kamailio", rtpengine_ng_port=engine.ng_port, certs=certs)
    load_start = load()
    failed = True
    try:
        engine.start()
        k.start()
        result = asyncio.run(run(k, run_dir))
        failed = False
    finally:
        k.stop()
        engine.stop()
        if failed or os.environ.get("BENCH_KEEP"):
            print(f"call_setup bench: rig files kept in {run_dir}", file=sys.stderr)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)

    table = []
    for metric in ("invite_to_200_ms", "invite_to_audio_ms"):
        for name in CONTENDERS:
            table.append({"measure": metric, "callee": name, **result["stats"][name][metric]})
        for name in CONTENDERS[:2]:
            ratio = result["ratios_over_sipjs"][f"{name}/sipjs {metric}"]
            table.append({"measure": metric, "callee": f"{name}/sipjs", "median_ms": f"{ratio}x"})
    ratios = result["ratios_over_sipjs"]
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "load_start": load_start,
            "load_end": load(),
        },
        **result,
        "table": table,
        "targets": {
            "ours_faster_invite_to_200": (ratios["ours/sipjs invite_to_200_ms"] or 9) < 1,
            "ours_faster_invite_to_audio": (ratios["ours/sipjs invite_to_audio_ms"] or 9) < 1,
        },
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
