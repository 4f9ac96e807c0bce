"""``exotel-voice demo``: the SDK against the sandbox, end to end, with a timeline.

What it does, each step timed and checked (a failed check raises :class:`DemoFailed`):

1. start a :class:`~.server.Sandbox` in this process;
2. register an ``agent`` :class:`~exotel_voice.client.Phone` (digest auth);
3. click-to-call through the REST emulation (``POST Calls/connect.json``, From=agent,
   To=echo); the agent's phone rings and its ``X-Exotel-Callsid`` must equal the REST Sid;
4. answer with a 1000 Hz tone and measure what ``echo`` sends back (level and frequency);
5. hold (re-INVITE ``sendonly``: the echo goes quiet) and resume (it comes back);
6. hang up; the REST call details say ``completed``;
7. a second click-to-call to ``ivr``: send digits by SIP INFO and by RFC 4733, and check
   that the IVR confirms them as INFO messages and as audible DTMF tones.

Nothing here prints: every line goes to the ``report`` callback (the CLI prints them).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..client import Phone
from ..config import AccountConfig
from ..media import IceConfig, MediaConfig, ToneSource
from ..media.analysis import dominant_frequency, rms_dbfs
from ..sip.registration import RegistrationState
from .numbers import IvrApp, detect_dtmf
from .rest import http_request
from .server import Sandbox, SandboxConfig


__all__ = ["DemoFailed", "run_demo"]

Report = Callable[[str], None]


class DemoFailed(Exception):
    """A demo step did not give the expected result."""


class _Timeline:
    def __init__(self, report: Report) -> None:
        self.report = report
        self.t0 = time.monotonic()
        self.step = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def say(self, text: str) -> None:
        self.report(f"[{self.elapsed():6.2f}s]   {text}")

    def begin(self, text: str) -> None:
        self.step += 1
        self.report(f"[{self.elapsed():6.2f}s] {self.step}. {text}")

    def check(self, ok: bool, text: str) -> None:
        if not ok:
            self.report(f"[{self.elapsed():6.2f}s]   FAILED: {text}")
            raise DemoFailed(text)
        self.say(f"ok: {text}")


async def _listen(call: Any, seconds: float, *, skip: float = 0.2) -> np.ndarray[Any, Any]:
    """What arrives in ``seconds`` (after ``skip``), at 16 kHz; no packets = silence."""
    loop = asyncio.get_running_loop()
    start = loop.time() + skip
    frames: list[np.ndarray[Any, Any]] = []
    wanted = int(seconds * 50)
    try:
        async with asyncio.timeout_at(start + seconds + 0.5):
            async for frame in call.received_frames(sample_rate=16000):
                if loop.time() < start:
                    continue
                frames.append(frame)
                if len(frames) >= wanted:
                    break
    except TimeoutError:
        pass
    if not frames:
        return np.zeros(int(seconds * 16000), dtype=np.int16)
    return np.concatenate(frames)


async def _rest(sandbox: Sandbox, method: str, path: str, form: dict[str, str] | None = None
                ) -> tuple[int, dict[str, Any]]:
    status, text = await http_request(
        method,
        sandbox.rest_url + path,
        username=sandbox.config.api_key,
        password=sandbox.config.api_token,
        form=form,
    )
    body: dict[str, Any] = json.loads(text)
    return status, body


async def run_demo(
    report: Report,
    *,
    config: SandboxConfig | None = None,
    keep_running: Callable[[Sandbox], Any] | None = None,
) -> float:
    """Run the demo; returns the seconds it took.

    Args:
        report: receives each timeline line.
        config: the sandbox's settings (default: free ports on 127.0.0.1).
        keep_running: if given, awaited with the sandbox after the demo (e.g. to wait for
            Ctrl-C), before the sandbox closes.

    Raises:
        DemoFailed: a check failed (the line says which).
    """
    tl = _Timeline(report)
    config = config or SandboxConfig(ws_port=0, wss_port=0, http_port=0)
    media = MediaConfig(ice=IceConfig(host_addresses=[config.host], gather_timeout=1.0))
    tl.begin("starting the sandbox")
    async with Sandbox(config) as sandbox:
        tl.say(f"SIP {sandbox.ws_url} and {sandbox.wss_url}; REST {sandbox.rest_url}")
        tl.begin("registering the agent phone (digest auth)")
        account = AccountConfig.from_sip_account_info(sandbox.sip_account_info("agent"))
        async with Phone(account, media=media) as phone:
            event = await phone.register(timeout=10)
            registered = event.state is RegistrationState.REGISTERED
            tl.check(registered, f"agent registered at {sandbox.ws_url}")

            await _echo_call(tl, sandbox, phone)
            await _ivr_call(tl, sandbox, phone)

            total = tl.elapsed()
            tl.begin(f"all checks passed in {total:.1f} s")
            if keep_running is not None:
                await phone.unregister()
                await keep_running(sandbox)
        return total


async def _click_to_call(
    tl: _Timeline, sandbox: Sandbox, phone: Phone, to: str
) -> tuple[str, Any]:
    tl.begin(f"click-to-call: POST Calls/connect.json From=agent To={to}")
    status, body = await _rest(
        sandbox, "POST", "/Calls/connect.json",
        {"From": "agent", "To": to, "CallerId": "08047112233"},
    )
    tl.check(status == 200 and "Call" in body, f"REST answered {status}, Status "
             f"{body.get('Call', {}).get('Status')!r}")
    sid = str(body["Call"]["Sid"])
    tl.say(f"Sid {sid}")
    call = await phone.next_incoming_call(timeout=10)
    header = call.header("X-Exotel-Callsid")
    tl.check(header == sid, f"the agent's phone rings; X-Exotel-Callsid {header} = Sid")
    return sid, call


async def _echo_call(tl: _Timeline, sandbox: Sandbox, phone: Phone) -> None:
    sid, call = await _click_to_call(tl, sandbox, phone, "echo")
    tone = ToneSource(1000, 0.5)
    sent_level = rms_dbfs(ToneSource(1000, 0.5).read(16000))  # type: ignore[arg-type]
    await call.answer(tone)
    await call.wait_connected(10)
    tl.check(call.state == "connected", "answered; media connected")

    tl.begin("two-way audio with echo")
    pcm = await _listen(call, 1.0)
    level, freq = rms_dbfs(pcm), dominant_frequency(pcm, 16000)
    tl.say(f"sent 1000 Hz at {sent_level:.1f} dBFS; heard {freq:.0f} Hz at {level:.1f} dBFS")
    tl.check(abs(freq - 1000) < 20 and level > -30, "our tone came back from the sandbox")

    tl.begin("hold and resume")
    await call.hold()
    held = await _listen(call, 0.6, skip=0.3)
    tl.say(f"on hold: heard {rms_dbfs(held):.1f} dBFS")
    tl.check(rms_dbfs(held) < level - 20, "the echo went quiet while held")
    await call.unhold()
    resumed = await _listen(call, 0.6, skip=0.3)
    freq = dominant_frequency(resumed, 16000)
    tl.say(f"resumed: heard {freq:.0f} Hz at {rms_dbfs(resumed):.1f} dBFS")
    tl.check(abs(freq - 1000) < 20 and rms_dbfs(resumed) > -30, "the echo is back")

    tl.begin("hang up")
    await call.hangup()
    record = sandbox.find_call(sid)
    assert record is not None
    await record.wait_ended(5)
    status, body = await _rest(sandbox, "GET", f"/Calls/{sid}.json")
    details = body.get("Call", {})
    tl.check(
        status == 200 and details.get("Status") == "completed",
        f"GET Calls/{sid[:8]}….json: Status {details.get('Status')!r}, "
        f"Duration {details.get('Duration')} s",
    )


async def _ivr_call(tl: _Timeline, sandbox: Sandbox, phone: Phone) -> None:
    sid, call = await _click_to_call(tl, sandbox, phone, "ivr")
    await call.answer()
    await call.wait_connected(10)
    record = sandbox.find_call(sid)
    assert record is not None
    tl.begin("DTMF to ivr: 1 2 by SIP INFO, 3 4 # by RFC 4733")
    confirmed: list[str] = []

    async def collect() -> None:
        async for digit in call.dtmf_received():
            confirmed.append(digit)
            tl.say(f"ivr confirmed {digit!r} by SIP INFO")
            if len(confirmed) == 5:
                return

    listener = asyncio.ensure_future(collect())
    audio = asyncio.ensure_future(_listen(call, 3.2, skip=0.0))
    await call.send_dtmf("12", method="info", duration_ms=160)
    await asyncio.sleep(0.6)
    await call.send_dtmf("34#", method="rfc4733", duration_ms=120)
    try:
        await asyncio.wait_for(listener, 5)
    except TimeoutError:
        pass
    pcm = await audio
    heard = detect_dtmf(pcm, 16000)
    app = record.app
    sources = " ".join(f"{d}:{s}" for d, s in app.received) if isinstance(app, IvrApp) else "?"
    tl.say(f"the ivr received {sources}")
    tl.check("".join(confirmed) == "1234#", f"confirmed by INFO: {''.join(confirmed)!r}")
    tl.check(heard == "1234#", f"confirmed as audio (DTMF tones heard): {heard!r}")
    tl.begin("hang up")
    await call.hangup()
    await record.wait_ended(5)
    tl.check(record.status == "completed", f"call {sid[:8]}… {record.status}")
