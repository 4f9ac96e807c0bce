"""ICE restart between two MediaSessions (real media on loopback, in the namespace).

The restart is what a network change triggers (media/ice.py): new ufrag, pwd and
candidates in a re-offer, the same DTLS fingerprint, checks when the answer is applied,
media moving to the new pair and the old connection closed.  A tone must be heard after
it, both ways.  Without aiortc's internals (EXOTEL_VOICE_AIORTC_COMPAT=off) there is no
restart: ``restart_ice`` says so and the call goes on as it was.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from exotel_voice.exceptions import InvalidState, MediaError
from exotel_voice.media import MediaSession, MediaState, ToneSource, dominant_frequency

from .conftest import FEATURES, LOOPBACK_MEDIA, collect, connected_pair


pytestmark = [pytest.mark.media, LOOPBACK_MEDIA]

needs_restart = pytest.mark.skipif(
    not FEATURES.ice_restart, reason="ICE restart needs aiortc's internals (compat off)"
)


def attribute(sdp: str, name: str) -> str:
    match = re.search(rf"^a={name}:(\S+)", sdp, re.MULTILINE)
    assert match is not None, f"no a={name} in the SDP"
    return match.group(1)


def candidate_ports(sdp: str) -> set[int]:
    return {
        int(m.group(1))
        for m in re.finditer(r"^a=candidate:\S+ \d+ udp \d+ \S+ (\d+) typ", sdp, re.MULTILINE)
    }


def ice_connection(session: MediaSession) -> Any:
    _dtls, ice = session._iter_transports()
    return ice._connection  # the test looks at which aioice connection carries media


async def hears(session: MediaSession, hz: float) -> None:
    audio = await collect(session, 0.6)
    assert abs(dominant_frequency(audio, 16000) - hz) < 10


async def restart(offerer: MediaSession, answerer: MediaSession) -> tuple[str, str]:
    before = offerer._local_sdp or ""
    outcome = await offerer.restart_ice()
    offer = await offerer.create_reoffer(offerer.local_direction)
    answer = await answerer.update(offer)
    await offerer.set_answer(answer)
    async with asyncio.timeout(10):
        assert await outcome is None
    assert attribute(offer, "ice-ufrag") != attribute(before, "ice-ufrag")
    return offer, answer


@needs_restart
async def test_an_ice_restart_moves_media_to_new_credentials_and_keeps_dtls() -> None:
    async with connected_pair("opus", ToneSource(1000), ToneSource(600)) as (a, b):
        await hears(b, 1000)
        first_offer, first_answer = a._local_sdp or "", b._local_sdp or ""
        old_a, old_b = ice_connection(a), ice_connection(b)

        offer, answer = await restart(a, b)

        # RFC 8445 §9: new ufrag and pwd on both sides; candidates gathered anew.
        for name in ("ice-ufrag", "ice-pwd"):
            assert attribute(offer, name) != attribute(first_offer, name)
            assert attribute(answer, name) != attribute(first_answer, name)
        assert candidate_ports(offer).isdisjoint(candidate_ports(first_offer))
        # RFC 8842 §5: the DTLS association stays (same fingerprint, same role).
        assert attribute(offer, "fingerprint") == attribute(first_offer, "fingerprint")
        assert attribute(offer, "setup") == "actpass"
        assert attribute(answer, "setup") == attribute(first_answer, "setup")

        # Media is on the new connections; the old ones are closed, and audio flows.
        assert ice_connection(a) is not old_a and ice_connection(b) is not old_b
        await hears(b, 1000)
        await hears(a, 600)
        assert old_a.local_candidates == [] and old_b.local_candidates == []
        assert a.connection_state == b.connection_state == "connected"
        assert a.state is b.state is MediaState.ACTIVE


@needs_restart
async def test_the_answerer_can_restart_and_restarts_twice() -> None:
    async with connected_pair("PCMU", ToneSource(1000), ToneSource(600)) as (a, b):
        await hears(a, 600)
        await restart(b, a)
        await hears(a, 600)
        await restart(a, b)
        await hears(b, 1000)
        await hears(a, 600)


@needs_restart
async def test_a_restart_whose_offer_is_rejected_goes_out_with_the_next_offer() -> None:
    async with connected_pair("opus", ToneSource(1000), ToneSource(600)) as (a, b):
        outcome = await a.restart_ice()
        await a.create_reoffer("sendrecv")
        assert await a.rollback()  # the far end answered 488: media is on the old pair
        await hears(b, 1000)
        assert not outcome.done()
        offer = await a.create_reoffer("sendrecv")  # e.g. the glare retry
        await a.set_answer(await b.update(offer))
        async with asyncio.timeout(10):
            assert await outcome is None
        await hears(b, 1000)


async def test_restart_before_any_exchange_is_an_invalid_state() -> None:
    session = MediaSession()
    try:
        with pytest.raises(InvalidState, match="restart ICE"):
            await session.restart_ice()
    finally:
        await session.close()


@pytest.mark.skipif(FEATURES.ice_restart, reason="the fallback path only")
async def test_without_the_internals_restart_is_refused_and_the_call_goes_on() -> None:
    async with connected_pair("opus", ToneSource(1000), None) as (a, b):
        with pytest.raises(MediaError, match="ICE restart is unavailable"):
            await a.restart_ice()
        await hears(b, 1000)
