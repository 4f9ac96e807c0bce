"""A network change during a call: the host's address goes away and another appears.

In the test's own network namespace a veth pair stands for the laptop's network card: the
phone's media may use only the address on it (no ``host_addresses``: aioice gathers every
non-loopback address, and the veth's is the only one).  The phone calls the sandbox's
``echo`` number and sends a 440 Hz tone; then the address is replaced by another (as when
moving from Wi-Fi to cable).  The phone's address watcher notices, the call restarts ICE in
a re-INVITE (the sandbox's leg, a MediaSession, restarts too), and the tone comes back
through the far end on the new address.  The call stays connected throughout.

The same change through Kamailio + rtpengine with SIP.js in Chromium as the far end:
rtpengine (``ICE=force`` on our leg) takes the restarting re-INVITE, sends our media to the
new address, and the browser hears our tone after the change.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from exotel_voice.client import CallEnded, Phone, PhoneEvent
from exotel_voice.client.events import IceRestarted, IceRestarting
from exotel_voice.config import AccountConfig
from exotel_voice.media import IceConfig, MediaConfig, ToneSource, _aiortc_compat as compat
from exotel_voice.media.analysis import detect_tone
from exotel_voice.media.netwatch import host_addresses
from exotel_voice.sandbox import Sandbox
from tests.rig.browser import BrowserHost, tone_share
from tests.rig.faults import VethAddress
from tests.rig.kamailio import Kamailio
from tests.rig.rtpengine import Rtpengine
from tests.sandbox.conftest import NEEDS_NETNS_ROOT, listen, sandbox_config

from .test_calls_peers import PY_HZ, assert_browser_hears, browser_phone, close_browser_phones


pytestmark = [
    pytest.mark.media,
    NEEDS_NETNS_ROOT,
    pytest.mark.timeout(60),
]

LINK = "exvnw0"
#: Two networks (another subnet: removing a primary address removes its secondaries).
OLD, NEW = "10.213.0.1", "10.214.0.1"
#: The same for the test through Kamailio + rtpengine (/32s on their own veth pair).
RIG_OLD, RIG_NEW = "10.215.1.2", "10.215.2.2"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def veth() -> Iterator[str]:
    """A veth pair (both ends here) with OLD on our end: the only non-loopback address."""
    ip("link", "add", LINK, "type", "veth", "peer", "name", LINK + "p")
    try:
        ip("addr", "add", f"{OLD}/24", "dev", LINK)
        ip("link", "set", LINK, "up")
        ip("link", "set", LINK + "p", "up")
        assert OLD in host_addresses()
        yield LINK
    finally:
        subprocess.run(["ip", "link", "del", LINK], capture_output=True)


@pytest.fixture
async def phone(veth: str) -> AsyncIterator[tuple[Phone, list[PhoneEvent]]]:
    sandbox = Sandbox(sandbox_config(wss_port=None, http_port=None))
    await sandbox.start()
    account = AccountConfig.from_sip_account_info(sandbox.sip_account_info("agent"))
    phone = Phone(
        account,
        media=MediaConfig(ice=IceConfig(gather_timeout=1.0)),  # every address: the veth's
        source=lambda: ToneSource(440, 0.3),
        network_poll=0.2,
    )
    events: list[PhoneEvent] = []
    phone.add_listener(events.append)
    await phone.register(timeout=10)
    try:
        yield phone, events
    finally:
        await asyncio.wait_for(phone.close(), 5)
        await sandbox.close()


async def wait_for(events: list[PhoneEvent], kind: type, timeout: float, **fields: object) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            for event in events:
                if isinstance(event, kind) and all(
                    getattr(event, name) == value for name, value in fields.items()
                ):
                    return event
            await asyncio.sleep(0.05)


@pytest.mark.skipif(not compat.FEATURES.ice_restart, reason="ICE restart needs aiortc internals")
async def test_the_call_survives_an_address_change_by_ice_restart(
    phone: tuple[Phone, list[PhoneEvent]],
) -> None:
    phone_, events = phone
    call = await phone_.dial("echo")
    await call.wait_connected(10)
    media = call.media
    assert media is not None and f" {OLD} " in (media._local_sdp or "")
    assert detect_tone(await listen(call, 0.6), 16000, 440.0)

    ip("addr", "add", f"{NEW}/24", "dev", LINK)  # cable plugged in ...
    ip("addr", "del", f"{OLD}/24", "dev", LINK)  # ... Wi-Fi gone

    # The watcher may see the two steps in one reading or in two (then the first restart,
    # with no address left, waits for the next): a restart succeeds on the new address.
    done = await wait_for(events, IceRestarted, 15, ok=True)
    restarts = [e for e in events if isinstance(e, IceRestarting)]
    assert any(NEW in e.change for e in restarts), restarts
    assert events.index(restarts[-1]) < events.index(done)
    assert f" {NEW} " in (media._local_sdp or "") and f" {OLD} " not in (media._local_sdp or "")
    # The tone went to the far end and came back on the new address.
    assert detect_tone(await listen(call, 0.6), 16000, 440.0)
    assert not call.ended and not any(isinstance(e, CallEnded) for e in events)
    await call.hangup()


@pytest.mark.skipif(compat.FEATURES.ice_restart, reason="the fallback path only")
async def test_without_ice_restart_a_network_change_is_reported_as_not_restarted(
    phone: tuple[Phone, list[PhoneEvent]], caplog: pytest.LogCaptureFixture
) -> None:
    phone_, events = phone
    call = await phone_.dial("echo")
    await call.wait_connected(10)
    ip("addr", "add", f"{NEW}/24", "dev", LINK)
    done = await wait_for(events, IceRestarted, 10)
    assert not done.ok and "ICE restart is unavailable" in done.reason
    assert "ICE restart is unavailable" in caplog.text
    # The old address is still there: the call goes on, on its pair.
    assert detect_tone(await listen(call, 0.6), 16000, 440.0)
    await call.hangup()


# -- through Kamailio + rtpengine, to a real far end -------------------------------------------


@pytest.mark.interop
@pytest.mark.skipif(not compat.FEATURES.ice_restart, reason="ICE restart needs aiortc internals")
async def test_an_address_change_restarts_ice_through_kamailio_and_rtpengine(
    kamailio: Kamailio, rtpengine: Rtpengine, tmp_path: Path
) -> None:
    """The same change in a call to SIP.js in Chromium through Kamailio + rtpengine.

    rtpengine terminates ICE on our leg (``ICE=force``, tests/rig/rtpengine.py): its ICE
    agent takes our restarting re-INVITE (new ufrag and password, the new address's
    candidate) and checks the new pair; the browser's leg is not touched.  Our phone's only
    media address is a /32 on a veth pair (no ``host_addresses``: aioice leaves loopback
    out, so the veth's address is the only one gathered); it reaches rtpengine on 127.0.0.1
    as a local address.  The far end's tone monitor hears our tone after the change.
    """
    user, password = kamailio.new_user("nw")
    account = AccountConfig.from_sip_account_info({
        "userName": user, "sipdomain": kamailio.info.domain, "secret": password,
        "wsUrl": kamailio.info.ws_url,
    })
    with VethAddress("exvnk", RIG_OLD) as veth:
        assert host_addresses() == {RIG_OLD}
        phone_ = Phone(account, media=MediaConfig(ice=IceConfig(gather_timeout=1.0)),
                       source=lambda: ToneSource(PY_HZ), network_poll=0.2)
        events: list[PhoneEvent] = []
        phone_.add_listener(events.append)
        async with phone_, BrowserHost(tmp_path / "browser") as host:
            await phone_.register(timeout=10)
            page, aor = await browser_phone(host, kamailio, "ws", "moved")
            try:
                call = await phone_.dial(aor)
                await page.wait_for("incoming")
                await page.answer()
                await call.wait_connected(10)
                media = call.media
                assert media is not None and f" {RIG_OLD} " in (media._local_sdp or "")
                await assert_browser_hears(page, PY_HZ)
                await page.start_tone_monitor(PY_HZ, 10)
                await asyncio.sleep(0.5)
                before = time.time()

                veth.move(RIG_NEW)  # a new address comes, the old one goes
                done = await wait_for(events, IceRestarted, 15, ok=True)
                restarted = time.time()
                restarts = [e for e in events if isinstance(e, IceRestarting)]
                assert any(RIG_NEW in e.change for e in restarts), restarts
                sdp = media._local_sdp or ""
                assert f" {RIG_NEW} " in sdp and f" {RIG_OLD} " not in sdp, sdp
                # The restart went to rtpengine in a re-INVITE through Kamailio, and
                # rtpengine now exchanges our media with the new address.
                invites = [e for e in kamailio.events("REQ", method="INVITE")
                           if e.get("callid") == call.call_id and e.get("proto") == "ws"]
                assert len(invites) >= 2, invites
                assert RIG_NEW in our_endpoints(rtpengine, call.call_id), rtpengine.query(
                    call.call_id)

                await asyncio.sleep(1.5)
                log = await page.take_tone_log()
                # Our tone before the change, and again at the far end after the restart.
                count, heard = tone_share(log, before - 0.5, before)
                assert count > 20 and heard > 0.8, (count, heard)
                count, heard = tone_share(log, restarted + 0.5, restarted + 1.5)
                assert count > 50 and heard > 0.8, (restarted - before, count, heard, done)
                # The call stayed up on both sides.
                assert not call.ended and not any(isinstance(e, CallEnded) for e in events)
                assert not page.seen("terminated")
                await call.hangup()
                await page.wait_for("terminated")
            finally:
                await close_browser_phones(page)


def our_endpoints(rtpengine: Rtpengine, call_id: str) -> set[str]:
    """The addresses rtpengine sends our leg's media to (each stream's endpoint)."""
    found = set()
    for leg in rtpengine.query(call_id).get("tags", {}).values():
        for media in leg.get("medias", []):
            for stream in media.get("streams", []):
                address = stream.get("endpoint", {}).get("address")
                if address:
                    found.add(str(address))
    return found
