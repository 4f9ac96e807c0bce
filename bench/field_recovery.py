"""Recovery from field faults mid-call through a real Kamailio + rtpengine: ours against SIP.js.

The subject is in a call and hears a tone; a fault hits it; we time how long until it hears
the tone again (and, for the WebSocket drop, until the dialog's target is refreshed too).

Topology (all inside the loopback-only namespace):

* the far end is baresip (UDP, PCMU), registered to Kamailio, playing a 1000 Hz WAV
  without pause; it calls the subject, and rtpengine bridges the media (WebRTC on the
  subject's side).  A UDP far end keeps its address, so it is the one that checks whether
  in-dialog requests still reach the subject: at the end of every round it hangs up, and
  we record whether its BYE reached the subject (``far_bye_reached``).
* the subjects register to Kamailio over ws:

  - ``ours``: our :class:`~exotel_voice.client.Phone` as shipped (default reconnect
    policy; ``IceConfig()``: host candidates from every non-loopback interface, here the
    bench's veth only).  An :class:`~exotel_voice.media.AudioSink` analyses each frame.
  - ``sipjs``: SIP.js 0.21.2 in headless Chromium, with the few lines a SIP.js application
    writes itself because SIP.js does none of it (``tests/browser/entry.js``,
    ``peer.setRecovery``): ``ua.reconnect()`` then REGISTER when the WebSocket is lost,
    and a re-INVITE with ``iceRestart`` when ICE goes ``disconnected``/``failed``.  No
    target refresh: the far end keeps sending in-dialog requests to the dead connection.
  - ``sipjs_refresh``: the same plus a re-INVITE right after re-registering (the target
    refresh browsers' SIP stacks don't do, written by the application).

  Chromium runs without ``--allow-loopback-in-peer-connection`` (and with mDNS host
  candidates off), so its only media address is the veth's, like ours.  A page tone
  monitor (AnalyserNode, 1024 samples every 10 ms) measures the same thing as our sink.

Faults, each on its own call, ``BENCH_RECOVERY_ROUNDS`` rounds (default 5), the subjects
interleaved round by round:

* ``ws_drop``: ``ss -K`` aborts the subject's TCP connection to Kamailio's ws port (found
  from Kamailio's last registration of the subject); Kamailio stays up and sees a RST.
  Recovered = the first moment at which the dialog's target has been refreshed (an
  in-dialog INVITE or UPDATE from the subject answered 200, seen at the subject's
  transport -- and checked at Kamailio to come over a new connection) and the tone has
  been heard for the last 60 ms.  We record the re-REGISTER's 200 and the longest audio
  gap too.
* ``address_change``: the subject's media address (a /32 on a veth pair the bench
  creates) is replaced: a new address is added and the old one removed.  Recovered = the
  tone heard for 60 ms again after it stopped.  We record whether a re-INVITE (ICE
  restart) went out.

"Tone heard" = a frame (ours: a decoded 20 ms frame; Chromium: the last ~21 ms) whose
power at 1000 Hz is at least half its total power and above -50 dBFS; "heard for 60 ms"
= such frames without a gap for 60 ms.  Times are epoch seconds on one host's clock
(``time.time()`` in Python, ``performance.timeOrigin + performance.now()`` in the page).
A subject that does not recover within ``BENCH_RECOVERY_TIMEOUT`` seconds (default 10) is
reported as not recovered; the round goes on.

Targets (issue 15): ``ws_drop`` under 2 s, ``address_change`` under 3 s on loopback.

Inside the namespace: ``scripts/in-netns.sh .venv/bin/python bench/run_all.py field_recovery``.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path[:1]:
    sys.path.insert(0, str(REPO))

from tests.rig import missing_binaries, netns_skip_reason  # noqa: E402
from tests.rig.audio import write_tone_wav  # noqa: E402
from tests.rig.baresip import BaresipPhone  # noqa: E402
from tests.rig.browser import BrowserHost, BrowserPhone, check_bundle  # noqa: E402
from tests.rig.certs import make_certs  # noqa: E402
from tests.rig.faults import VethAddress, kill_tcp  # noqa: E402
from tests.rig.kamailio import DOMAIN, Kamailio  # noqa: E402
from tests.rig.rtpengine import Rtpengine  # noqa: E402

from exotel_voice.client import Call, Phone  # noqa: E402
from exotel_voice.config import AccountConfig  # noqa: E402
from exotel_voice.media import IceConfig, MediaConfig, ToneSource  # noqa: E402
from exotel_voice.media.pcm import Samples  # noqa: E402
from exotel_voice.media.sinks import AudioSink  # noqa: E402


ROUNDS = int(os.environ.get("BENCH_RECOVERY_ROUNDS", "5"))
TIMEOUT = float(os.environ.get("BENCH_RECOVERY_TIMEOUT", "10"))
CONTENDERS = tuple(os.environ.get("BENCH_RECOVERY_SUBJECTS", "ours,sipjs,sipjs_refresh").split(","))
FAULTS = tuple(os.environ.get("BENCH_RECOVERY_FAULTS", "ws_drop,address_change").split(","))
TARGETS_S = {"ws_drop": 2.0, "address_change": 3.0}
TONE_HZ = 1000.0
STEP = 10.0  # seconds for each ordinary step (answer, hang up ...)
HEARD_S = 0.06  # tone for this long = "audio confirmed"
GAP_S = 0.1  # no frame for this long breaks a run of tone frames
BREAK_S = GAP_S  # no tone frame for this long after the fault = the audio stopped
MIN_RMS = 10 ** (-50 / 20)
MIN_SHARE = 0.5

_CALL_ID = re.compile(r"^(?:Call-ID|i)[ \t]*:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)
_CSEQ = re.compile(r"^CSeq[ \t]*:[ \t]*(\d+)[ \t]+(\w+)", re.IGNORECASE | re.MULTILINE)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def blocking(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


# -- tone analysis (shared by both subjects) ---------------------------------------------------


def tone_frame(samples: Samples, rate: int) -> tuple[float, float]:
    """``(share of power at TONE_HZ, rms)`` of one int16 frame (a Goertzel bin, vectorised)."""
    x = samples.astype(np.float64) / 32768.0
    n = x.size
    if n == 0:
        return 0.0, 0.0
    mean_square = float(np.mean(x * x))
    phase = np.exp(-2j * np.pi * TONE_HZ * np.arange(n) / rate)
    power = 2.0 * abs(complex(np.dot(x, phase))) ** 2 / (n * n)
    return (power / mean_square if mean_square > 0 else 0.0), mean_square**0.5


def is_tone(share: float, rms: float) -> bool:
    return share >= MIN_SHARE and rms >= MIN_RMS


def heard_at(
    log: list[tuple[float, float, float]], after: float, run_after: float | None = None
) -> float | None:
    """The first time >= ``after`` at which the tone has been heard for HEARD_S without a
    break (frames up to a frame's length apart), the run starting after ``run_after``."""
    run_start: float | None = None
    previous: float | None = None
    for t, share, rms in log:
        if previous is not None and t - previous > GAP_S:
            run_start = None
        previous = t
        if not is_tone(share, rms) or (run_after is not None and t <= run_after):
            run_start = None
            continue
        if run_start is None:
            run_start = t
        # The first frame's timestamp is its end: a run from run_start to t holds about
        # (t - run_start) + one frame (20 ms ours, 21 ms Chromium's window) of tone.
        if t >= after and t - run_start >= HEARD_S - 0.02:
            return t
    return None


def first_break(
    log: list[tuple[float, float, float]], after: float, now: float | None = None
) -> float | None:
    """When the tone first stops at or after ``after``: the time of the last tone frame (at
    least ``after``) before a non-tone frame or BREAK_S without frames (also up to ``now``;
    ours delivers no frame while no RTP arrives)."""
    last_tone: float | None = None
    for t, share, rms in log:
        tone = is_tone(share, rms)
        if t >= after:
            if not tone:
                return max(last_tone if last_tone is not None else after, after)
            if last_tone is not None and t - last_tone > BREAK_S:
                return max(last_tone, after)
        if tone:
            last_tone = t
    if last_tone is not None and now is not None and now - max(last_tone, after) > BREAK_S:
        return max(last_tone, after)
    return None


def longest_gap(log: list[tuple[float, float, float]], start: float, end: float) -> float:
    """The longest stretch in [start, end] without a tone frame, in seconds."""
    last = start
    gap = 0.0
    for t, share, rms in log:
        if t < start or t > end:
            continue
        if is_tone(share, rms):
            gap = max(gap, t - last)
            last = t
    return max(gap, end - last)


# -- subjects ----------------------------------------------------------------------------------


@dataclass
class Round:
    """What one subject did after one fault (epoch seconds; None = not seen)."""

    fault_at: float
    reregistered: float | None = None
    refresh_sent: float | None = None
    refreshed: float | None = None  # the refresh / ICE-restart re-INVITE's 200
    refresh_status: int | None = None
    events: list[str] = field(default_factory=list)
    sip: list[tuple[float, str, str]] = field(default_factory=list)  # (epoch s, > or <, text)


class ToneSink(AudioSink):
    """Our side's tone monitor: one ``(epoch s, share, rms)`` per decoded frame."""

    def __init__(self) -> None:
        self.log: list[tuple[float, float, float]] = []

    def write(self, samples: Samples, sample_rate: int) -> None:
        self.log.append((time.time(), *tone_frame(samples, sample_rate)))


class Subject:
    name: str
    aor: str
    user: str
    call_id: str | None = None

    async def answer_next(self, dial: Callable[[], Awaitable[Any]]) -> None: ...
    async def take_tone_log(self) -> list[tuple[float, float, float]]: ...
    async def hangup(self) -> None: ...
    async def ended_within(self, seconds: float) -> bool: ...
    def begin_round(self, fault_at: float) -> Round: ...
    async def finish_round(self, rnd: Round) -> Round: ...
    def call_ended(self) -> str | None: ...


class Ours(Subject):
    """Our Phone, with its SIP messages timestamped at the transport (bench-only hooks)."""

    def __init__(self, name: str, account: AccountConfig) -> None:
        self.name = name
        self.user = name
        self.phone = Phone(
            account, media=MediaConfig(ice=IceConfig()), source=lambda: ToneSource(600)
        )
        self.sent: list[tuple[float, str]] = []
        self.received: list[tuple[float, str]] = []
        self.events: list[tuple[float, str]] = []
        self.call: Call | None = None
        self.sink = ToneSink()
        self._hooked: Any = None
        received = self.phone.message_received

        def message_received(data: str | bytes) -> None:
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
            self.received.append((time.time(), text))
            received(data)

        self.phone.message_received = message_received  # type: ignore[method-assign]
        self.phone.add_listener(lambda event: self.events.append((time.time(), repr(event))))

    def _hook_send(self) -> None:
        transport = self.phone._transport  # the bench times the real send path
        if transport is None or transport is self._hooked:
            return
        self._hooked = transport
        real_send = transport.send

        async def send(data: bytes | str) -> None:
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
            self.sent.append((time.time(), text))
            await real_send(data)

        transport.send = send  # type: ignore[method-assign]

    async def start(self) -> None:
        await self.phone.start()
        await self.phone.register(timeout=STEP)
        self._hook_send()

    async def answer_next(self, dial: Callable[[], Awaitable[Any]]) -> None:
        incoming = asyncio.ensure_future(self.phone.next_incoming_call(STEP))
        dialled = asyncio.ensure_future(dial())
        call = await incoming
        await asyncio.wait_for(call.answer(), STEP)
        self.sink = ToneSink()
        call.add_sink(self.sink)
        await dialled
        self.call = call
        self.call_id = call.call_id

    async def take_tone_log(self) -> list[tuple[float, float, float]]:
        log, self.sink.log = self.sink.log, []
        return log

    def call_ended(self) -> str | None:
        call = self.call
        return None if call is None or not call.ended else f"ended: {call.end_reason}"

    async def hangup(self) -> None:
        if self.call is not None and not self.call.ended:
            try:
                await asyncio.wait_for(self.call.hangup(), STEP)
            except Exception:  # noqa: BLE001 - a broken call must not stop the bench
                pass
            await asyncio.wait_for(self.call.wait_ended(), STEP)

    async def ended_within(self, seconds: float) -> bool:
        assert self.call is not None
        try:
            await asyncio.wait_for(self.call.wait_ended(), seconds)
        except TimeoutError:
            return False
        return True

    def begin_round(self, fault_at: float) -> Round:
        self.sent.clear()
        self.received.clear()
        self.events.clear()
        return Round(fault_at=fault_at)

    async def finish_round(self, rnd: Round) -> Round:
        self._hook_send()
        # In-dialog INVITEs/UPDATEs sent after the fault (a challenged one is sent again
        # with a new CSeq): the first is the refresh's start, the first 200 its end.
        refresh_cseqs: set[str] = set()
        for t, text in self.sent:
            if t < rnd.fault_at or not text[:8].startswith(("INVITE ", "UPDATE ")):
                continue
            match, cseq = _CALL_ID.search(text), _CSEQ.search(text)
            if match and cseq and match.group(1) == self.call_id:
                if not refresh_cseqs:
                    rnd.refresh_sent = t
                refresh_cseqs.add(cseq.group(1) + " " + cseq.group(2).upper())
        rnd.reregistered = rnd.refreshed = rnd.refresh_status = None
        for t, text in self.received:
            if t < rnd.fault_at or not text.startswith("SIP/2.0 "):
                continue
            cseq = _CSEQ.search(text)
            status = int(text[8:11])
            if cseq is None or status < 200:
                continue
            method = cseq.group(2).upper()
            if method == "REGISTER" and status == 200 and rnd.reregistered is None:
                rnd.reregistered = t
            key = cseq.group(1) + " " + method
            if key in refresh_cseqs and rnd.refreshed is None:
                match = _CALL_ID.search(text)
                if match and match.group(1) == self.call_id:
                    rnd.refresh_status = status
                    if status == 200:
                        rnd.refreshed = t
        rnd.events = [f"{t - rnd.fault_at:+.3f} {e}" for t, e in self.events][:20]
        rnd.sip = sorted(
            [(t, ">", text) for t, text in self.sent if t >= rnd.fault_at]
            + [(t, "<", text) for t, text in self.received if t >= rnd.fault_at]
        )
        return rnd


class SipJs(Subject):
    def __init__(self, name: str, phone: BrowserPhone, user: str, aor: str) -> None:
        self.name = name
        self.browser = phone
        self.user = user
        self.aor = aor
        self.ended_seen = 0

    async def answer_next(self, dial: Callable[[], Awaitable[Any]]) -> None:
        dialled = asyncio.ensure_future(dial())
        incoming = await self.browser.wait_for("incoming", timeout=STEP)
        self.call_id = incoming["call_id"]
        await self.browser.answer()
        await self.browser.wait_for("established", timeout=STEP)
        await dialled
        await self.browser.take_tone_log()  # drop what came before this call

    async def take_tone_log(self) -> list[tuple[float, float, float]]:
        return await self.browser.take_tone_log()

    def call_ended(self) -> str | None:
        ends = self.browser.seen("terminated")
        return f"ended ({ends[-1].get('by')})" if len(ends) > self.ended_seen else None

    async def ended_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self.call_ended() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return self.call_ended() is not None

    async def hangup(self) -> None:
        if self.call_ended() is None:
            try:
                await self.browser.hangup()
            except Exception:  # noqa: BLE001 - the call may be ending already
                pass
            if not await self.ended_within(STEP):
                raise TimeoutError(f"{self.name}: the call did not end after hangup")
        self.ended_seen = len(self.browser.seen("terminated"))

    def begin_round(self, fault_at: float) -> Round:
        self._first_event = len(self.browser.events)
        return Round(fault_at=fault_at)

    async def finish_round(self, rnd: Round) -> Round:
        events = self.browser.events[self._first_event :]
        origin = None
        for e in events:
            kind = e.get("type")
            wall = e.get("wall")
            if wall is None:
                continue
            t = float(wall) / 1000.0
            if kind in ("registered", "reregistered") and rnd.reregistered is None:
                rnd.reregistered = t
            if kind in ("target_refresh", "ice_restart") and rnd.refresh_sent is None:
                rnd.refresh_sent = float(e["sent_wall"]) / 1000.0
                rnd.refresh_status = e.get("status")
                if e.get("status") == 200:
                    rnd.refreshed = t
            origin = origin or t
        rnd.events = [
            f"{float(e['wall']) / 1000.0 - rnd.fault_at:+.3f} {e.get('type')}"
            + (
                f" {e.get('state') or e.get('status') or e.get('address') or ''}"
                if e.get("type") != "log"
                else ""
            )
            for e in events
            if e.get("wall") is not None
        ][:20]
        return rnd


# -- one round ---------------------------------------------------------------------------------


@dataclass
class Rig:
    k: Kamailio
    caller: BaresipPhone
    veth: VethAddress
    next_address: Callable[[], str]


def ws_port_of(k: Kamailio, user: str) -> int | None:
    saved = [e for e in k.events("SAVED") if e.get("aor") == user and e.get("proto") == "ws"]
    if not saved:
        return None
    return int(saved[-1]["src"].rsplit(":", 1)[1])


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


async def one_round(rig: Rig, subject: Subject, fault: str) -> dict[str, Any]:
    aor = rig.k.info.aor(subject.user)
    await subject.answer_next(lambda: blocking(rig.caller.dial, aor))
    loop = asyncio.get_running_loop()
    result: dict[str, Any] = {"fault": fault}
    try:
        # The tone must be there before the fault.
        log: list[tuple[float, float, float]] = []
        deadline = loop.time() + STEP
        while heard_at(log, 0.0) is None or time.time() - log[-1][0] > 0.1:
            if loop.time() > deadline:
                raise TimeoutError(f"{subject.name}: no tone before the fault")
            await asyncio.sleep(0.05)
            log += await subject.take_tone_log()
        await asyncio.sleep(0.3)
        log += await subject.take_tone_log()
        old_port = ws_port_of(rig.k, subject.user) if fault == "ws_drop" else None
        fault_at = time.time()
        rnd = subject.begin_round(fault_at)
        if fault == "ws_drop":
            if old_port is None:
                raise RuntimeError(f"{subject.name}: no ws registration seen at Kamailio")
            killed = await blocking(
                lambda: kill_tcp(local_port=old_port, remote_port=rig.k.info.ws_port)
            )
            result["sockets_killed"] = killed
        else:
            old_address = rig.veth.address
            await blocking(rig.veth.move, rig.next_address())
            result["addresses"] = f"{old_address} -> {rig.veth.address}"
        # Watch until recovered, the call ended, or the timeout.
        recovered: float | None = None
        while time.time() - fault_at < TIMEOUT:
            await asyncio.sleep(0.05)
            log += await subject.take_tone_log()
            rnd = await subject.finish_round(rnd)
            if subject.call_ended() is not None:
                break
            if fault == "ws_drop":
                if rnd.refreshed is not None:
                    recovered = heard_at(log, rnd.refreshed)
            else:
                now = time.time()
                stop = first_break(log, fault_at, now)
                if stop is not None:
                    recovered = heard_at(log, stop, run_after=stop)
                elif now - fault_at > 3.0 and longest_gap(log, fault_at, now) < BREAK_S:
                    recovered = fault_at  # the audio never stopped
                    result["audio_never_stopped"] = True
            if recovered is not None:
                break
        await asyncio.sleep(0.2)
        log += await subject.take_tone_log()
        rnd = await subject.finish_round(rnd)
        end = time.time()
        result.update(
            {
                "recovered_ms": ms(recovered - fault_at) if recovered is not None else None,
                "reregistered_ms": ms(rnd.reregistered - fault_at) if rnd.reregistered else None,
                "refresh_sent_ms": ms(rnd.refresh_sent - fault_at) if rnd.refresh_sent else None,
                "refresh_200_ms": ms(rnd.refreshed - fault_at) if rnd.refreshed else None,
                "refresh_status": rnd.refresh_status,
                "longest_audio_gap_ms": ms(longest_gap(log, fault_at, end)),
                "call_ended": subject.call_ended(),
                "events": rnd.events,
                # First line and CSeq of each SIP message after the fault (ours only).
                "sip": [
                    f"{t - fault_at:+.3f} {way} {text.split(chr(13))[0][:60]}"
                    + (f" | {c.group(1)} {c.group(2)}" if (c := _CSEQ.search(text)) else "")
                    for t, way, text in rnd.sip
                ][:16],
            }
        )
        if fault == "ws_drop":
            new_port = ws_port_of(rig.k, subject.user)
            result["new_connection"] = new_port is not None and new_port != old_port
            refreshes = [
                e
                for e in rig.k.events("REQ")
                if e.get("callid") == subject.call_id
                and e.get("method") in ("INVITE", "UPDATE")
                and e.get("proto") == "ws"
                and new_port is not None
                and e.get("src", "").endswith(f":{new_port}")
            ]
            result["refresh_seen_at_kamailio"] = bool(refreshes)
        else:
            stop = first_break(log, fault_at, end)
            result["audio_stopped_ms"] = ms(stop - fault_at) if stop is not None else None
    finally:
        # Does the far end's BYE reach the subject now?
        ended_before = subject.call_ended() is not None
        await blocking(rig.caller.hangup)
        with_timeout = not ended_before and await subject.ended_within(3.0)
        result["far_bye_reached"] = bool(with_timeout)
        await subject.hangup()
        try:
            await blocking(rig.caller.wait_event, "CALL_CLOSED", STEP)
        except Exception:  # noqa: BLE001 - already closed
            pass
        await subject.take_tone_log()
    return result


# -- the run -----------------------------------------------------------------------------------


def summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    times = [s["recovered_ms"] for s in samples if s.get("recovered_ms") is not None]
    failed = len(samples) - len(times)
    return {
        "rounds": len(samples),
        "recovered": len(times),
        "median_ms": round(statistics.median(times), 1) if times else None,
        "min_ms": min(times) if times else None,
        # A round that did not recover is worse than any number we have.
        "worst_ms": f">{TIMEOUT * 1000:.0f}" if failed else (max(times) if times else None),
    }


def median_of(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.median(values), 1) if values else None


async def run(k: Kamailio, run_dir: Path) -> dict[str, Any]:
    caller_user, caller_password = k.new_user("far")
    wav = write_tone_wav(run_dir / "tone-1000.wav", TONE_HZ, 8000, 120.0, amplitude=0.4)
    caller = BaresipPhone(
        run_dir / "baresip",
        user=caller_user,
        password=caller_password,
        server=k.info,
        audio_file=wav,
    )
    await blocking(caller.start)
    counter = iter(range(2, 250))

    def next_address() -> str:
        return f"10.99.{next(counter)}.2"

    veth = VethAddress("exvr", "10.99.1.2")
    veth.create()
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {fault: [] for fault in FAULTS} for name in CONTENDERS
    }
    errors: list[str] = []
    started = time.perf_counter()
    try:
        async with BrowserHost(
            run_dir / "browser",
            allow_loopback=False,
            extra_flags=("--disable-features=WebRtcHideLocalIpsWithMdns",),
        ) as host:
            subjects: dict[str, Subject] = {}
            for name in CONTENDERS:
                user, password = k.new_user(name.replace("_", ""))
                if name == "ours":
                    account = AccountConfig.from_sip_account_info(
                        {
                            "userName": user,
                            "sipdomain": k.info.domain,
                            "secret": password,
                            "wsUrl": k.info.ws_url,
                        }
                    )
                    ours = Ours(name, account)
                    ours.user = user
                    await ours.start()
                    subjects[name] = ours
                else:
                    page = await host.new_phone(name)  # Chromium's fake microphone
                    await page.register(k.info.ws_url, k.info.aor(user), user, password)
                    await page.set_recovery(
                        reconnect=True, ice_restart=True, refresh_target=name == "sipjs_refresh"
                    )
                    await page.start_tone_monitor(TONE_HZ, 10)
                    subjects[name] = SipJs(name, page, user, k.info.aor(user))
            rig = Rig(k, caller, veth, next_address)
            for i in range(ROUNDS):
                for fault in FAULTS:
                    shift = i % len(CONTENDERS)
                    for name in CONTENDERS[shift:] + CONTENDERS[:shift]:
                        try:
                            sample = await one_round(rig, subjects[name], fault)
                            samples[name][fault].append(sample)
                            print(
                                f"  round {i} {fault:14s} {name:14s} "
                                f"recovered={sample.get('recovered_ms')} ms "
                                f"rereg={sample.get('reregistered_ms')} "
                                f"refresh={sample.get('refresh_200_ms')} "
                                f"gap={sample.get('longest_audio_gap_ms')} "
                                f"bye={sample.get('far_bye_reached')} "
                                f"{sample.get('call_ended') or ''}",
                                file=sys.stderr,
                                flush=True,
                            )
                        except Exception as exc:  # recorded, the run goes on
                            errors.append(f"{name} {fault} round {i}: {type(exc).__name__}: {exc}")
                            print("  !", errors[-1], file=sys.stderr, flush=True)
                            subject = subjects[name]
                            if os.environ.get("BENCH_DEBUG") and isinstance(subject, SipJs):
                                for event in subject.browser.events[-12:]:
                                    print("   ", event, file=sys.stderr)
                            if len(errors) > 8:
                                raise
            for subject in subjects.values():
                if isinstance(subject, Ours):
                    await subject.phone.close()
    finally:
        veth.delete()
        await blocking(caller.stop)
    return {
        "rounds": ROUNDS,
        "timeout_s": TIMEOUT,
        "seconds": round(time.perf_counter() - started, 1),
        "stats": {
            name: {fault: summary(samples[name][fault]) for fault in FAULTS} for name in CONTENDERS
        },
        "samples": samples,
        "errors": errors,
    }


def note(name: str, fault: str, rows: list[dict[str, Any]]) -> str:
    """What the subject did, in words, from its rounds."""
    if not rows:
        return "no rounds"
    parts = []
    if fault == "ws_drop":
        rereg = [r["reregistered_ms"] for r in rows if r.get("reregistered_ms") is not None]
        parts.append(
            f"re-registered {len(rereg)}/{len(rows)}"
            + (f" (median {statistics.median(rereg):.0f} ms)" if rereg else "")
        )
        refreshed = sum(1 for r in rows if r.get("refresh_200_ms") is not None)
        parts.append(
            f"target refreshed {refreshed}/{len(rows)}" if refreshed else "no target refresh"
        )
    else:
        restarts = sum(1 for r in rows if r.get("refresh_sent_ms") is not None)
        parts.append(f"ICE-restart re-INVITE {restarts}/{len(rows)}")
    byes = sum(1 for r in rows if r.get("far_bye_reached"))
    parts.append(f"far BYE reached {byes}/{len(rows)}")
    ended = sum(1 for r in rows if r.get("call_ended"))
    if ended:
        parts.append(f"call ended by itself {ended}/{len(rows)}")
    gaps = [r["longest_audio_gap_ms"] for r in rows if r.get("longest_audio_gap_ms") is not None]
    if gaps:
        parts.append(f"longest audio gap median {statistics.median(gaps):.0f} ms")
    return "; ".join(parts)


def main() -> dict[str, Any]:
    reason = netns_skip_reason()
    missing = missing_binaries("kamailio", "rtpengine", "baresip", "chromium", "ss", "ip")
    if reason or missing:
        raise RuntimeError(reason or f"not installed: {', '.join(missing)}")
    check_bundle()
    run_dir = Path(tempfile.mkdtemp(prefix="bench-field-recovery-"))
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
            print(f"field_recovery bench: rig files kept in {run_dir}", file=sys.stderr)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)

    table = []
    targets: dict[str, Any] = {}
    for fault in FAULTS:
        for name in CONTENDERS:
            stats = result["stats"][name][fault]
            rows = result["samples"][name][fault]
            table.append(
                {
                    "fault": fault,
                    "subject": name,
                    "recovered": f"{stats['recovered']}/{stats['rounds']}",
                    "median_ms": stats["median_ms"]
                    if stats["median_ms"] is not None
                    else (
                        "no target refresh"
                        if fault == "ws_drop"
                        and rows
                        and all(r.get("refresh_sent_ms") is None for r in rows)
                        else f"none within {TIMEOUT:.0f} s"
                    ),
                    "worst_ms": stats["worst_ms"],
                    "min_ms": stats["min_ms"],
                    # ws_drop: the re-REGISTER's 200; address_change: the re-INVITE's 200.
                    "step_median_ms": median_of(
                        rows, "reregistered_ms" if fault == "ws_drop" else "refresh_200_ms"
                    ),
                    "audio_gap_median_ms": median_of(rows, "longest_audio_gap_ms"),
                    "notes": note(name, fault, rows),
                }
            )
        ours = result["stats"].get("ours", {}).get(fault)
        if ours is not None:
            worst = ours["worst_ms"]
            targets[f"ours_{fault}_under_{TARGETS_S[fault]:.0f}s"] = (
                ours["recovered"] == ours["rounds"]
                and isinstance(worst, (int, float))
                and worst < TARGETS_S[fault] * 1000
            )
        for peer in ("sipjs", "sipjs_refresh"):
            theirs = result["stats"].get(peer, {}).get(fault)
            if ours and theirs and ours["median_ms"] and theirs["median_ms"]:
                result.setdefault("ratios", {})[f"ours/{peer} {fault}"] = round(
                    ours["median_ms"] / theirs["median_ms"], 2
                )
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "load_start": load_start,
            "load_end": load(),
        },
        **result,
        "table": table,
        "targets": targets,
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
