"""Chromium sends us Opus in-band FEC because our SDP asks for it (lean media path).

Our Python phone calls SIP.js in headless Chromium through Kamailio + rtpengine with Opus.
The description Chromium received (our offer, through rtpengine) carries
``useinbandfec=1`` for Opus; once 5 % of the packets reaching us are dropped (an
``iptables`` ``statistic`` rule on our media port, inside the loopback-only namespace) our
receiver reports tell Chromium about the loss, its encoder adds FEC (to speech: the
browser's fake microphone plays the speech sample of tests/rig/speech.py), and our jitter
buffer rebuilds lost frames from it (``ReceiveStats.fec_frames``).

``scripts/in-netns.sh .venv/bin/python -m pytest -q tests/interop/test_opus_fec.py``
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from exotel_voice.client import Call, Phone
from exotel_voice.media import (
    IceConfig,
    MediaConfig,
    MediaSession,
    ToneSource,
    _aiortc_compat as compat,
)
from tests.rig import netns_skip_reason
from tests.rig.browser import BrowserHost
from tests.rig.kamailio import Kamailio
from tests.rig.speech import make_speech, missing_tools, write_wav

from .test_calls_peers import PY_HZ, account, close_browser_phones


pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(netns_skip_reason() is not None, reason=str(netns_skip_reason())),
    pytest.mark.skipif(not compat.FEATURES.lean_path, reason="FEC is used on the lean path"),
    pytest.mark.skipif(bool(missing_tools()), reason=f"speech needs {missing_tools()}"),
    pytest.mark.timeout(120),
]

LOOPBACK = IceConfig(host_addresses=["127.0.0.1"], gather_timeout=1.0)

#: The descriptions of Chromium's peer connection.
DESCRIPTIONS = """() => {
  const session = window.peer.session;
  const pc = session && session.sessionDescriptionHandler
    && session.sessionDescriptionHandler.peerConnection;
  if (!pc) return null;
  return {remote: pc.remoteDescription && pc.remoteDescription.sdp,
          local: pc.localDescription && pc.localDescription.sdp};
}"""


def opus_fmtp(sdp: str) -> str:
    """The parameters of the Opus ``a=fmtp`` line ('' if none)."""
    lines = sdp.replace("\r\n", "\n").split("\n")
    pts = [line.split(":", 1)[1].split()[0] for line in lines
           if line.lower().startswith("a=rtpmap:") and " opus/" in line.lower()]
    assert pts, f"no Opus in {sdp!r}"
    prefix = f"a=fmtp:{pts[0]} "
    return next((line[len(prefix):] for line in lines if line.startswith(prefix)), "")


def media_port(call: Call) -> int:
    """The UDP port our media receives on (the one host candidate on 127.0.0.1)."""
    assert call.media is not None
    _, ice = call.media._iter_transports()
    return int(ice.iceGatherer.getLocalCandidates()[0].port)


@contextlib.contextmanager
def dropping(port: int, share: float) -> Iterator[None]:
    """Drop ``share`` of the UDP datagrams to ``port`` at random until the block exits."""
    rule = ["INPUT", "-p", "udp", "--dport", str(port), "-m", "statistic", "--mode",
            "random", "--probability", str(share), "-j", "DROP"]
    subprocess.run(["iptables", "-A", *rule], check=True)
    try:
        yield
    finally:
        subprocess.run(["iptables", "-D", *rule], check=True)


async def test_chromium_sends_fec_we_use_it(
    kamailio: Kamailio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Receiver reports every ~1 s (5 s by default): Chromium learns of the loss sooner.
    monkeypatch.setattr(MediaSession, "rtcp_interval", 1.0)
    user, password = kamailio.new_user("py")
    phone = Phone(account(kamailio, user, password, "ws"),
                  media=MediaConfig(ice=LOOPBACK, codecs=["opus"]),
                  source=lambda: ToneSource(PY_HZ))
    # Chromium's encoder adds FEC only in its SILK and hybrid modes, which it picks for
    # speech (a pure tone goes CELT-only, which carries none): the browser's fake
    # microphone plays a speech sample.
    wav = tmp_path / "microphone.wav"
    write_wav(wav, make_speech(tmp_path / "speech", 48000), 48000)
    async with phone, BrowserHost(tmp_path / "browser", fake_audio_wav=wav) as host:
        await phone.register(timeout=10)
        page = await host.new_phone("fec")  # no tone: the fake capture device
        browser_user, browser_password = kamailio.new_user("fec")
        event = await page.register(kamailio.info.ws_url, kamailio.info.aor(browser_user),
                                    browser_user, browser_password, "Fec")
        assert event is not None and event["type"] == "registered"
        assert kamailio.wait_registered(browser_user, timeout=5)
        aor = kamailio.info.aor(browser_user)
        try:
            call = await phone.dial(aor)
            await page.wait_for("incoming")
            await page.answer()
            await call.wait_connected(10)
            await page.wait_for_media()
            assert page._page is not None
            described = await page._page.evaluate(DESCRIPTIONS)
            assert call.media is not None and call.media.codec is not None
            assert call.media.codec.lower() == "opus"
            stats = call.media.receive_stats()
            assert stats is not None
            before = stats.fec_frames
            with dropping(media_port(call), 0.05):
                async with asyncio.timeout(40):
                    while True:
                        stats = call.media.receive_stats()
                        assert stats is not None
                        if stats.fec_frames > before:
                            break
                        await asyncio.sleep(0.25)
            await call.hangup()
            await page.wait_for("terminated")
        finally:
            await close_browser_phones(page)

    # What Chromium got from us (through rtpengine) asks for FEC; its answer does too.
    assert "useinbandfec=1" in opus_fmtp(described["remote"]).replace(" ", ""), described
    assert "useinbandfec=1" in opus_fmtp(described["local"]).replace(" ", ""), described
    # Frames lost on the way were rebuilt from the FEC in the packets that followed them.
    assert stats.fec_frames > before
    assert stats.packets_lost > 0
