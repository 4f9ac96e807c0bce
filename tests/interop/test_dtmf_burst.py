"""DTMF by SIP INFO sent back to back, both directions, through Kamailio.

One early facade run saw the second of two back-to-back INFOs answered 481 by the
receiving phone; this test sends bursts both ways and checks every digit arrives, in order,
with every INFO answered 200.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from exotel_voice.client import Call, Phone
from exotel_voice.config import AccountConfig
from exotel_voice.media import IceConfig, MediaConfig


pytestmark = pytest.mark.interop

MEDIA = MediaConfig(ice=IceConfig(host_addresses=["127.0.0.1"]))
DIGITS = "0123456789*#ABCD"


def account(kamailio: Any, user: str, password: str) -> AccountConfig:
    info = kamailio.info
    return AccountConfig.from_sip_account_info(
        {"userName": user, "sipdomain": info.domain, "secret": password, "wsUrl": info.ws_url}
    )


async def collect(call: Call, n: int, got: list[str]) -> str:
    async for digit in call.dtmf_received():
        got.append(digit)
        if len(got) == n:
            break
    return "".join(got)


async def test_info_dtmf_bursts_both_ways(kamailio: Any) -> None:
    (ua, pa), (ub, pb) = kamailio.new_user("burst"), kamailio.new_user("burst")
    async with Phone(account(kamailio, ua, pa), media=MEDIA) as a, Phone(
        account(kamailio, ub, pb), media=MEDIA
    ) as b:
        await asyncio.gather(a.register(timeout=10), b.register(timeout=10))
        outgoing = await a.dial(ub)
        incoming = await b.next_incoming_call(10)
        await incoming.answer()
        await outgoing.wait_connected(10)
        for sender, receiver in ((incoming, outgoing), (outgoing, incoming)):
            got: list[str] = []
            listening = asyncio.ensure_future(collect(receiver, len(DIGITS), got))
            await asyncio.sleep(0)
            await sender.send_dtmf(DIGITS, method="info")  # all sent without waiting
            try:
                assert await asyncio.wait_for(listening, 10) == DIGITS
            except TimeoutError:
                raise AssertionError(f"received {''.join(got)!r} of {DIGITS!r}") from None
        infos = await asyncio.to_thread(
            kamailio.wait_event, "RPL", 10.0, 2 * len(DIGITS), method="INFO", status="200"
        )
        assert len(infos) >= 2 * len(DIGITS)
        assert not kamailio.events("RPL", method="INFO", status="481")
        await outgoing.hangup()
        await incoming.wait_ended(5)
