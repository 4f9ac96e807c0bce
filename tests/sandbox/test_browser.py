"""A client that is not ours: SIP.js 0.21 in headless Chromium (tests/rig/browser.py) against
the sandbox - digest REGISTER over ws and wss, an echo call with audio verified, DTMF to the
ivr (SIP INFO and RFC 4733 from Chromium's RTCDTMFSender), and a REST click-to-call that
rings the browser with X-Exotel-Callsid.

Needs the loopback-only namespace: scripts/in-netns.sh .venv/bin/pytest tests/sandbox.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from exotel_voice.sandbox import IvrApp, Sandbox
from exotel_voice.sandbox.rest import http_request
from tests.rig import netns_skip_reason
from tests.rig.browser import BrowserHost

from .conftest import sandbox_config


pytestmark = [
    pytest.mark.interop,
    pytest.mark.media,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(netns_skip_reason() is not None, reason=str(netns_skip_reason())),
    pytest.mark.timeout(90),
]

BROWSER_HZ = 1000.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def host(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BrowserHost]:
    async with BrowserHost(tmp_path_factory.mktemp("browser")) as browser_host:
        yield browser_host


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(sandbox_config()) as sb:
        yield sb


async def test_sipjs_registers_and_hears_its_tone_from_echo(
    host: BrowserHost, sandbox: Sandbox
) -> None:
    domain = sandbox.config.domain
    async with await host.new_phone("agent", tone_hz=BROWSER_HZ) as phone:
        registered = await phone.register(
            sandbox.ws_url, f"sip:agent@{domain}", "agent", sandbox.users["agent"]
        )
        assert registered["type"] == "registered"
        assert sandbox.binding("agent") is not None
        await phone.call(f"sip:echo@{domain}")
        await phone.wait_for("established", timeout=15)
        await phone.wait_for_media(min_packets=25)
        tone = await phone.received_tone(0.8)
        assert abs(tone.frequency - BROWSER_HZ) < 30, tone
        assert tone.level_db > -40, tone
        record = sandbox.calls[-1]
        assert (record.to, record.status) == ("echo", "in-progress")
        await phone.hangup()
        assert (await phone.wait_for("terminated"))["by"] == "local"
        await record.wait_ended(5)
        assert record.status == "completed"


async def test_sipjs_dtmf_reaches_the_ivr_both_ways(host: BrowserHost, sandbox: Sandbox) -> None:
    domain = sandbox.config.domain
    async with await host.new_phone("agent", tone_hz=BROWSER_HZ) as phone:
        await phone.register(sandbox.ws_url, f"sip:agent@{domain}", "agent",
                             sandbox.users["agent"])
        await phone.call(f"sip:ivr@{domain}")
        await phone.wait_for("established", timeout=15)
        await phone.wait_for_media(min_packets=10)
        assert await phone.send_dtmf_info("7") == 200
        info = await phone.wait_for("info", timeout=5)
        assert info["digit"] == "7" and info["content_type"] == "application/dtmf-relay"
        await phone.send_dtmf_rtp("89", duration_ms=120, gap_ms=80)
        assert (await phone.wait_for("info", timeout=5))["digit"] == "8"
        assert (await phone.wait_for("info", timeout=5))["digit"] == "9"
        app = sandbox.calls[-1].app
        assert isinstance(app, IvrApp)
        assert app.received == [("7", "info"), ("8", "rfc4733"), ("9", "rfc4733")]
        await phone.hangup()


async def test_rest_click_to_call_rings_sipjs_over_wss(host: BrowserHost, sandbox: Sandbox) -> None:
    domain = sandbox.config.domain
    async with await host.new_phone("agent", tone_hz=BROWSER_HZ) as phone:
        await phone.register(sandbox.wss_url, f"sip:agent@{domain}", "agent",
                             sandbox.users["agent"])
        assert sandbox.binding("agent") is not None and sandbox.bindings["agent"].flow.secure
        status, text = await http_request(
            "POST", sandbox.rest_url + "/Calls/connect.json", username="key1",
            password="token1", form={"From": "agent", "To": "tone", "CallerId": "0800"},
        )
        assert status == 200
        sid = json.loads(text)["Call"]["Sid"]
        incoming = await phone.wait_for("incoming", timeout=10)
        assert incoming["headers"]["X-Exotel-Callsid"] == [sid]
        await phone.answer()
        await phone.wait_for("established", timeout=15)
        await phone.wait_for_media(min_packets=25)
        tone = await phone.received_tone(0.8)
        assert abs(tone.frequency - 440) < 30, tone
        await phone.hangup()
        record = sandbox.find_call(sid)
        assert record is not None
        await record.wait_ended(5)
        assert record.status == "completed"
