"""Re-offers keep the negotiated ids (RFC 8285 §6, RFC 3264 §8) and a rejected re-offer
can be rolled back.  Real media between two MediaSessions on 127.0.0.1, as in
test_session.py (which covers a plain hold/resume).

The "browser" here is a MediaSession whose offer is rewritten the way Chromium
numbers things: ``ssrc-audio-level`` at extmap 1, ``sdes:mid`` at 4, an extension
aiortc does not know at 3, and Opus at payload type 111.
"""

from __future__ import annotations

import asyncio
import re
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest

from exotel_voice.exceptions import InvalidState, MediaError
from exotel_voice.media import MediaSession, MediaState, ToneSource, _sdp, dominant_frequency

from .conftest import FEATURES, LOOPBACK_MEDIA, collect, config


pytestmark = [pytest.mark.media, LOOPBACK_MEDIA]

MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
#: The ids a re-offer carries: the negotiated ones, or (fallback without aiortc's internals,
#: see media/_aiortc_compat.py, "reoffer") aiortc's own numbering, the documented loss.
REOFFER_IDS = {1: LEVEL, 4: MID} if FEATURES.reoffer else {1: MID, 2: LEVEL}


def extmap(sdp: str) -> dict[int, str]:
    """``id -> uri`` of every ``a=extmap`` line."""
    return {
        int(m.group(1)): m.group(2)
        for m in re.finditer(r"^a=extmap:(\d+)(?:/\w+)? (\S+)", sdp, re.MULTILINE)
    }


def rtpmap(sdp: str) -> dict[int, str]:
    """``payload type -> encoding/clock`` of every ``a=rtpmap`` line."""
    return {
        int(m.group(1)): m.group(2).lower()
        for m in re.finditer(r"^a=rtpmap:(\d+) (\S+)", sdp, re.MULTILINE)
    }


def chromium_numbering(offer: str) -> str:
    """``offer`` renumbered as Chromium numbers its offers (see the module docstring)."""
    ids = {v: k for k, v in extmap(offer).items()}
    out = []
    for line in offer.replace("\r\n", "\n").split("\n"):
        if line.startswith("a=extmap:"):
            continue
        if line.startswith("m=audio"):
            line = re.sub(r"\b96\b", "111", line)
        elif re.match(r"a=(rtpmap|fmtp|rtcp-fb):96 ", line):
            line = line.replace(":96 ", ":111 ", 1)
        out.append(line)
        if line.startswith("m=audio"):
            out += [f"a=extmap:1 {LEVEL}", f"a=extmap:3 {ABS_SEND_TIME}", f"a=extmap:4 {MID}"]
    assert ids == {MID: 1, LEVEL: 2}, ids  # aiortc's own numbering, which a re-offer reused
    return "\r\n".join(line for line in out if line) + "\r\n"


async def browser_calls_python(
    codec: str = "opus",
) -> tuple[MediaSession, MediaSession]:
    """``browser`` offers (Chromium numbering), ``python`` answers; both connected."""
    browser = MediaSession(config=config(codec), source=ToneSource(1000))
    python = MediaSession(config=config(codec), source=ToneSource(600))
    offer = chromium_numbering(await browser.create_offer())
    answer = await python.accept_offer(offer)
    await browser.set_answer(answer)
    await asyncio.gather(browser.wait_connected(), python.wait_connected())
    return browser, python


class _RecordingSrtp:
    """Wraps an SRTP session; records every plain RTP packet handed to ``protect``."""

    def __init__(self, srtp: Any, packets: list[bytes]) -> None:
        self._srtp = srtp
        self._packets = packets

    def protect(self, data: bytes) -> bytes:
        if len(data) >= 12 and 0x80 <= data[0] <= 0xBF and not 192 <= data[1] <= 223:
            self._packets.append(data)
        return bytes(self._srtp.protect(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._srtp, name)


class SentPackets:
    """Every RTP packet ``session`` hands to SRTP (after DTMF replacement)."""

    def __init__(self, session: MediaSession) -> None:
        tap = session._tap
        assert tap is not None
        self.packets: list[bytes] = []
        # What reaches SRTP protection, whichever way it was sent (awaited or send_now).
        tap.transport._tx_srtp = _RecordingSrtp(tap.transport._tx_srtp, self.packets)

    def extensions(self) -> dict[int, bytes]:
        """One-byte header extensions (RFC 8285 §4.2) of the latest packet: id -> data."""
        data = self.packets[-1]
        assert data[0] & 0x10, "no header extension"
        profile, words = struct.unpack_from("!HH", data, 12)
        assert profile == 0xBEDE
        body = data[16 : 16 + 4 * words]
        found: dict[int, bytes] = {}
        i = 0
        while i < len(body):
            if body[i] == 0:
                i += 1
                continue
            ext_id, length = body[i] >> 4, (body[i] & 0x0F) + 1
            found[ext_id] = body[i + 1 : i + 1 + length]
            i += 1 + length
        return found


async def wait_for_packets(sent: SentPackets, count: int = 5) -> None:
    start = len(sent.packets)
    async with asyncio.timeout(3):
        while len(sent.packets) < start + count:
            await asyncio.sleep(0.02)


async def heard(session: MediaSession) -> float:
    return dominant_frequency(await collect(session, 0.3, skip_ms=200), 16000)


@pytest.fixture
async def call() -> AsyncIterator[tuple[MediaSession, MediaSession]]:
    browser, python = await browser_calls_python()
    try:
        yield browser, python
    finally:
        await browser.close()
        await python.close()


async def test_reoffer_keeps_extension_ids_and_payload_types(
    call: tuple[MediaSession, MediaSession],
) -> None:
    browser, python = call
    answer = python._local_sdp
    assert answer is not None
    negotiated = extmap(answer)
    assert negotiated == {1: LEVEL, 4: MID}
    assert rtpmap(answer)[111] == "opus/48000/2"
    if not FEATURES.reoffer:
        # Fallback: aiortc's own re-offer renumbers (what the user loses: Chromium would
        # answer 488); against another aiortc, hold and resume still work.
        hold = await python.create_reoffer("sendonly")
        assert extmap(hold) == REOFFER_IDS and rtpmap(hold)[96] == "opus/48000/2"
        await python.set_answer(await browser.update(hold))
        assert browser.remote_hold and python.state is MediaState.ACTIVE
        await python.set_answer(await browser.update(await python.create_reoffer("sendrecv")))
        assert not browser.remote_hold
        assert await heard(browser) == pytest.approx(600, abs=20)
        assert await heard(python) == pytest.approx(1000, abs=20)
        return

    # The lean sender writes the negotiated ids from the start.
    sent = SentPackets(python)
    await wait_for_packets(sent)
    exts = sent.extensions()
    assert set(exts) == {1, 4} and exts[4] == python._transceiver.mid.encode()

    hold = await python.create_reoffer("sendonly")
    # RFC 8285 §6: same id for the same extension; nothing new; unknown ones stay out.
    assert extmap(hold) == negotiated
    # RFC 3264 §8.3.2: the dynamic payload type keeps its codec.
    assert rtpmap(hold)[111] == "opus/48000/2" and 96 not in rtpmap(hold)
    assert _sdp.telephone_events(hold) == _sdp.telephone_events(answer)
    # While the offer is pending, packets still carry the negotiated ids.
    await wait_for_packets(sent)
    assert set(sent.extensions()) == {1, 4}

    hold_answer = await browser.update(hold)
    assert extmap(hold_answer) == negotiated
    await python.set_answer(hold_answer)
    assert browser.remote_hold and python.state is MediaState.ACTIVE

    resume = await python.create_reoffer("sendrecv")
    assert extmap(resume) == negotiated and rtpmap(resume)[111] == "opus/48000/2"
    await python.set_answer(await browser.update(resume))
    assert not browser.remote_hold
    await wait_for_packets(sent)
    assert set(sent.extensions()) == {1, 4}
    assert await heard(browser) == pytest.approx(600, abs=20)
    assert await heard(python) == pytest.approx(1000, abs=20)


async def test_reoffer_keeps_the_origin_session_id(
    call: tuple[MediaSession, MediaSession],
) -> None:
    _browser, python = call
    first = _sdp.origin(python._local_sdp or "")
    assert first is not None
    hold = await python.create_reoffer("sendonly")
    again = _sdp.origin(hold)
    # RFC 3264 §8: same username and session id, version + 1.
    assert again == (first[0], first[1], str(int(first[2]) + 1))


async def test_rejected_reoffer_rolls_back_and_can_be_retried(
    call: tuple[MediaSession, MediaSession],
) -> None:
    browser, python = call
    negotiated = python._local_sdp
    await python.create_reoffer("sendonly")
    assert python.state is MediaState.OFFERING and python.local_direction == "sendonly"

    # The far end answered 488 (or 491): go back.
    assert await python.rollback() is True
    assert python.state is MediaState.ACTIVE
    assert python.local_direction == "sendrecv"
    assert python._local_sdp == negotiated
    assert await python.rollback() is False  # nothing pending any more

    # Media never stopped, both ways.
    assert await heard(browser) == pytest.approx(600, abs=20)
    assert await heard(python) == pytest.approx(1000, abs=20)

    # The RFC 3261 §14.1 retry: a new re-offer works and is accepted.
    hold = await python.create_reoffer("sendonly")
    assert extmap(hold) == REOFFER_IDS
    await python.set_answer(await browser.update(hold))
    assert browser.remote_hold and python.state is MediaState.ACTIVE
    assert python.local_direction == "sendonly"


async def test_far_end_reinvite_is_answered_after_a_rejection(
    call: tuple[MediaSession, MediaSession],
) -> None:
    browser, python = call
    await python.create_reoffer("sendonly")
    # Glare: the far end's re-INVITE while ours is pending is refused (the SIP
    # layer answers 491) ...
    with pytest.raises(InvalidState, match="OFFERING"):
        await python.update(await browser.create_reoffer("sendonly"))
    await browser.rollback()
    await python.rollback()
    offer = await browser.create_reoffer("sendonly")
    if not FEATURES.rollback:
        # Fallback (the documented loss): aiortc still holds our rejected offer, so the
        # far end's retry is refused by name; media keeps flowing as negotiated.
        with pytest.raises(MediaError, match="have-local-offer"):
            await python.update(offer)
        assert python.state is MediaState.ACTIVE
        assert await heard(python) == pytest.approx(1000, abs=20)
        assert await heard(browser) == pytest.approx(600, abs=20)
        return
    # ... and after both re-INVITEs failed, the far end's retry is answered.
    answer = await python.update(offer)
    assert _sdp.audio_direction(answer) == "recvonly"
    assert extmap(answer) == {1: LEVEL, 4: MID}
    await browser.set_answer(answer)
    assert python.remote_hold and python.state is MediaState.ACTIVE
    assert await heard(python) == pytest.approx(1000, abs=20)


async def test_dtmf_while_pending_and_after_a_rejection(
    call: tuple[MediaSession, MediaSession],
) -> None:
    browser, python = call
    digits = browser.dtmf_received()
    await python.create_reoffer("sendonly")
    if not FEATURES.rtp_tap:
        # Fallback: no RFC 4733 at all (refused by name), pending re-offer or not.
        with pytest.raises(MediaError, match="RFC 4733 DTMF is not available"):
            await python.send_dtmf("1", duration_ms=60, gap_ms=40)
        await python.rollback()
        assert await heard(browser) == pytest.approx(600, abs=20)
        return
    # RFC 3264 §8: until the answer, media follows the last negotiation.
    await python.send_dtmf("1", duration_ms=60, gap_ms=40)
    await python.rollback()
    await python.send_dtmf("2#", duration_ms=60, gap_ms=40)
    got = []
    async with asyncio.timeout(5):
        async for digit in digits:
            got.append(digit)
            if len(got) == 3:
                break
    assert got == ["1", "2", "#"]


async def test_a_pending_reoffer_is_replaced_by_a_new_one(
    call: tuple[MediaSession, MediaSession],
) -> None:
    """Without rollback() a new re-offer discards the unanswered one (glare retry)."""
    browser, python = call
    await python.create_reoffer("sendonly")
    resume = await python.create_reoffer("inactive")
    assert _sdp.audio_direction(resume) == "inactive" and extmap(resume) == REOFFER_IDS
    await python.set_answer(await browser.update(resume))
    assert browser.remote_direction == "inactive" and python.state is MediaState.ACTIVE


async def test_rollback_misuse() -> None:
    a = MediaSession(config=config("PCMU"))
    try:
        with pytest.raises(InvalidState, match="NEW"):
            await a.rollback()
        await a.create_offer()
        with pytest.raises(InvalidState, match="initial offer"):
            await a.rollback()
        assert a.state is MediaState.OFFERING
        with pytest.raises(InvalidState):
            await a.create_reoffer("sendonly")
    finally:
        await a.close()
    with pytest.raises(InvalidState, match="CLOSED"):
        await a.rollback()


async def test_failed_reoffer_leaves_the_session_as_it_was(
    call: tuple[MediaSession, MediaSession],
) -> None:
    _browser, python = call

    async def broken() -> Any:
        raise RuntimeError("boom")

    python._pc.createOffer = broken  # type: ignore[method-assign]
    with pytest.raises(MediaError, match="boom"):
        await python.create_reoffer("sendonly")
    assert python.state is MediaState.ACTIVE and python.local_direction == "sendrecv"
    del python._pc.createOffer
    with pytest.raises(ValueError):
        await python.create_reoffer("hold")
