"""A network change during a call: the host's address goes away and another appears.

In the test's own network namespace a veth pair stands for the laptop's network card: the
phone's media may use only the address on it (no ``host_addresses``: aioice gathers every
non-loopback address, and the veth's is the only one).  The phone calls the sandbox's
``echo`` number and sends a 440 Hz tone; then the address is replaced by another (as when
moving from Wi-Fi to cable).  The phone's address watcher notices, the call restarts ICE in
a re-INVITE (the sandbox's leg, a MediaSession, restarts too), and the tone comes back
through the far end on the new address.  The call stays connected throughout.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from exotel_voice.client import CallEnded, Phone, PhoneEvent
from exotel_voice.client.events import IceRestarted, IceRestarting
from exotel_voice.config import AccountConfig
from exotel_voice.media import IceConfig, MediaConfig, ToneSource, _aiortc_compat as compat
from exotel_voice.media.analysis import detect_tone
from exotel_voice.media.netwatch import host_addresses
from exotel_voice.sandbox import Sandbox
from tests.sandbox.conftest import NEEDS_NETNS_ROOT, listen, sandbox_config


pytestmark = [
    pytest.mark.media,
    NEEDS_NETNS_ROOT,
    pytest.mark.timeout(60),
]

LINK = "exvnw0"
#: Two networks (another subnet: removing a primary address removes its secondaries).
OLD, NEW = "10.213.0.1", "10.214.0.1"


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
