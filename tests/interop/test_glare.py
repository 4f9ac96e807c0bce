"""Glare (RFC 3261 §14): both ends put the call on hold at the same moment.

Each re-INVITE meets the other's and is answered 491 Request Pending; each side rolls its
media back and retries after the RFC's random delay (2.1-4 s for the caller, who owns the
Call-ID, 0-2 s for the callee). Both holds must then succeed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from exotel_voice.client import Phone
from exotel_voice.config import AccountConfig
from exotel_voice.media import IceConfig, MediaConfig, ToneSource
from tests.labels import call_label, is_flow


pytestmark = pytest.mark.interop

MEDIA = MediaConfig(ice=IceConfig(host_addresses=["127.0.0.1"]))


def account(kamailio: Any, user: str, password: str) -> AccountConfig:
    info = kamailio.info
    return AccountConfig.from_sip_account_info(
        {"userName": user, "sipdomain": info.domain, "secret": password, "wsUrl": info.ws_url}
    )


async def test_simultaneous_holds_resolve_after_491(kamailio: Any) -> None:
    (ua, pa), (ub, pb) = kamailio.new_user("glarea"), kamailio.new_user("glareb")
    a = Phone(account(kamailio, ua, pa), media=MEDIA, source=lambda: ToneSource(700))
    b = Phone(account(kamailio, ub, pb), media=MEDIA, source=lambda: ToneSource(900))
    async with a, b:
        await asyncio.gather(a.register(timeout=10), b.register(timeout=10))
        events: dict[str, list[str]] = {"a": [], "b": []}
        for name, phone in (("a", a), ("b", b)):
            phone.add_listener(
                lambda e, got=events[name]: got.append(call_label(e))  # type: ignore[misc]
                if is_flow(e) else None
            )
        outgoing = await a.dial(ub)
        incoming = await b.next_incoming_call(10)
        await incoming.answer()
        await outgoing.wait_connected(10)

        await asyncio.wait_for(asyncio.gather(outgoing.hold(), incoming.hold()), 15)
        assert outgoing.on_hold and incoming.on_hold
        assert outgoing.remote_hold and incoming.remote_hold
        # The two re-INVITEs really crossed (Kamailio relayed a 491).
        await asyncio.to_thread(kamailio.wait_event, "RPL", 5.0, status="491")
        # After the glare the media still negotiates: both resume and DTMF works.
        await outgoing.unhold()
        await incoming.unhold()
        assert not outgoing.on_hold and not incoming.remote_hold
        await outgoing.send_dtmf("7", method="rfc4733")
        got = await asyncio.wait_for(anext(aiter(incoming.dtmf_received())), 5)
        assert got == "7"
        await outgoing.hangup()
        await incoming.wait_ended(5)
        assert "held" in events["a"] and "remote_held" in events["b"]
