"""Our RTCP as Chromium sees it, and Chromium's as we see it (lean media path).

Our Python phone calls SIP.js in headless Chromium through Kamailio + rtpengine (WebRTC
with ICE and DTLS-SRTP on both legs; rtpengine decrypts and re-encrypts RTCP and forwards
it, it does not write reports of its own in this rig's configuration).  Chromium's
``getStats()`` shows a ``remote-inbound-rtp`` for its audio: that is built from **our**
receiver report blocks (its round-trip time needs the LSR/DLSR of our blocks to match
one of its own SRs).  ``Call.stats()`` shows a round-trip time and the far end's jitter
and loss of our stream: that is built from **Chromium's** reports.

``scripts/in-netns.sh .venv/bin/python -m pytest -q tests/interop/test_rtcp_chromium.py``
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from exotel_voice.client import Phone
from exotel_voice.media import (
    IceConfig,
    MediaConfig,
    MediaSession,
    ToneSource,
    _aiortc_compat as compat,
)
from exotel_voice.media.quality_stats import CallStats
from tests.rig import netns_skip_reason
from tests.rig.browser import BrowserHost, BrowserPhone
from tests.rig.kamailio import Kamailio

from .test_calls_peers import PY_HZ, account, browser_phone, close_browser_phones


pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(netns_skip_reason() is not None, reason=str(netns_skip_reason())),
    pytest.mark.skipif(not compat.FEATURES.lean_path, reason="our RTCP is the lean path's"),
    pytest.mark.timeout(90),
]

LOOPBACK = IceConfig(host_addresses=["127.0.0.1"], gather_timeout=1.0)

#: Chromium's remote-inbound-rtp (what our report blocks told it) for its audio stream.
REMOTE_INBOUND = """async () => {
  const session = window.peer.session;
  const pc = session && session.sessionDescriptionHandler
    && session.sessionDescriptionHandler.peerConnection;
  if (!pc) return null;
  const report = await pc.getStats();
  let found = null;
  report.forEach((s) => {
    if (s.type === "remote-inbound-rtp" && s.kind === "audio") {
      found = {
        roundTripTime: s.roundTripTime ?? null,
        roundTripTimeMeasurements: s.roundTripTimeMeasurements ?? null,
        fractionLost: s.fractionLost ?? null,
        packetsLost: s.packetsLost ?? null,
        jitter: s.jitter ?? null,
        ssrc: s.ssrc,
      };
    }
  });
  return found;
}"""


async def remote_inbound(page: BrowserPhone, timeout: float) -> dict[str, Any]:
    """Chromium's remote-inbound-rtp once it has a round-trip time."""
    assert page._page is not None
    found: dict[str, Any] | None = None
    async with asyncio.timeout(timeout):
        while True:
            found = await page._page.evaluate(REMOTE_INBOUND)
            if found and found.get("roundTripTime") is not None:
                return found
            await asyncio.sleep(0.25)


async def our_view(call: Any, timeout: float) -> CallStats:
    async with asyncio.timeout(timeout):
        while True:
            stats: CallStats = await call.stats()
            if stats.rtt_ms is not None and stats.remote_jitter_ms is not None:
                return stats
            await asyncio.sleep(0.25)


async def test_chromium_sees_our_reports_and_we_see_its(
    kamailio: Kamailio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reports every ~1 s (5 s by default) to keep the test short.
    monkeypatch.setattr(MediaSession, "rtcp_interval", 1.0)
    user, password = kamailio.new_user("py")
    phone = Phone(account(kamailio, user, password, "ws"), media=MediaConfig(ice=LOOPBACK),
                  source=lambda: ToneSource(PY_HZ))
    async with phone, BrowserHost(tmp_path / "browser") as host:
        await phone.register(timeout=10)
        page, aor = await browser_phone(host, kamailio, "ws", "rtcp")
        try:
            call = await phone.dial(aor)
            await page.wait_for("incoming")
            await page.answer()
            await call.wait_connected(10)
            await page.wait_for_media()
            chromium, ours = await asyncio.gather(remote_inbound(page, 30), our_view(call, 30))
            await call.hangup()
            await page.wait_for("terminated")
        finally:
            await close_browser_phones(page)

    # Chromium read our receiver report blocks: loss and jitter of its stream as we saw
    # it, and a round-trip time from the LSR/DLSR we echoed.
    assert chromium["roundTripTime"] > 0, chromium
    assert chromium["fractionLost"] == 0 and chromium["packetsLost"] == 0, chromium
    assert chromium["jitter"] is not None and 0 <= chromium["jitter"] < 0.1, chromium
    # We read Chromium's: an RTT, its jitter and loss of our stream (a clean loopback).
    assert ours.media_path == "lean"
    assert ours.rtt_ms is not None and 0 < ours.rtt_ms < 1000, ours
    assert ours.remote_packets_lost == 0 and ours.remote_fraction_lost == 0, ours
    assert ours.remote_jitter_ms is not None and 0 <= ours.remote_jitter_ms < 100, ours
    assert ours.packets_received > 0 and ours.jitter_ms is not None, ours
