"""Two MediaSessions in one process over 127.0.0.1: audio, mute, hold, DTMF, cleanup.

Unit tests of the pieces (analysis, RFC 4733 codec, SDP helpers) are in test_analysis.py.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from exotel_voice.exceptions import InvalidDTMF, InvalidSDP, InvalidState, MediaError
from exotel_voice.media import (
    FrameSource,
    IceConfig,
    IceServer,
    LevelMeter,
    MediaConfig,
    MediaSession,
    MediaState,
    ToneSource,
    WavFileSink,
    WavFileSource,
    _sdp,
    dominant_frequency,
    rms_dbfs,
)

from .conftest import FEATURES, LOOPBACK_MEDIA, collect, config, connected_pair


pytestmark = [pytest.mark.media, LOOPBACK_MEDIA]

CODECS = ["opus", "PCMU"]


@pytest.mark.parametrize("codec", CODECS)
async def test_tones_both_ways(codec: str) -> None:
    async with connected_pair(codec, ToneSource(1000), ToneSource(600)) as (a, b):
        at_b, at_a = await asyncio.gather(collect(b, 0.6), collect(a, 0.6))
        assert dominant_frequency(at_b, 16000) == pytest.approx(1000, abs=20)
        assert dominant_frequency(at_a, 16000) == pytest.approx(600, abs=20)
        assert rms_dbfs(at_b) > -20
        assert a.codec is not None and a.codec.lower() == codec.lower()
        assert a.stats().codec == a.codec
        assert a.stats().packets_sent > 0 and b.stats().packets_received > 0


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("media_path", ["lean", "aiortc"])
async def test_both_receive_paths(codec: str, media_path: str) -> None:
    """The lean path (default) and aiortc's own receiver deliver the same audio."""
    async with connected_pair(
        codec, ToneSource(1000), ToneSource(600), media_path=media_path
    ) as (a, b):
        at_b, at_a = await asyncio.gather(collect(b, 0.4), collect(a, 0.4))
        assert dominant_frequency(at_b, 16000) == pytest.approx(1000, abs=20)
        assert dominant_frequency(at_a, 16000) == pytest.approx(600, abs=20)
        decoder_threads = [t for t in threading.enumerate() if t.name == "audio-decoder"]
        stats = b.receive_stats()
        # Without aiortc's internals (media/_aiortc_compat.py) "lean" is aiortc's own path.
        if media_path == "lean" and FEATURES.lean_path:
            # aiortc's decoder threads were ended as soon as its receivers started.
            assert decoder_threads == []
            assert stats is not None and stats.frames_decoded >= 20
            assert stats.packets_late == 0
        else:
            assert len(decoder_threads) == 2
            assert stats is None


async def test_mute_sends_silence_but_keeps_packets_flowing() -> None:
    async with connected_pair("PCMU", ToneSource(1000)) as (a, b):
        assert rms_dbfs(await collect(b, 0.3)) > -20
        a.set_muted(True)
        assert a.muted
        before = b.stats().packets_received
        heard = await collect(b, 0.4, skip_ms=200)
        assert rms_dbfs(heard) < -60
        assert b.stats().packets_received - before >= 20
        a.set_muted(False)
        assert dominant_frequency(await collect(b, 0.3), 16000) == pytest.approx(1000, abs=20)


async def test_hold_and_resume_by_reoffer() -> None:
    async with connected_pair("PCMU", ToneSource(1000), ToneSource(600)) as (a, b):
        assert not b.remote_hold and b.remote_direction == "sendrecv"

        hold = await a.create_reoffer("sendonly")
        assert a.state is MediaState.OFFERING
        assert _sdp.audio_direction(hold) == "sendonly"
        answer = await b.update(hold)
        assert _sdp.audio_direction(answer) == "recvonly"
        await a.set_answer(answer)
        assert b.remote_hold and b.remote_direction == "sendonly"
        assert a.remote_direction == "recvonly" and not a.remote_hold
        # Music on hold still reaches B.
        assert dominant_frequency(await collect(b, 0.3), 16000) == pytest.approx(1000, abs=20)
        # While we are held (recvonly), we cannot send DTMF.
        with pytest.raises(MediaError):
            await b.send_dtmf("1")

        resume = await a.create_reoffer("sendrecv")
        await a.set_answer(await b.update(resume))
        assert not b.remote_hold and b.remote_direction == "sendrecv"
        assert a.state is MediaState.ACTIVE
        heard = await collect(a, 0.3, skip_ms=300)
        assert dominant_frequency(heard, 16000) == pytest.approx(600, abs=20)


@pytest.mark.parametrize("codec", CODECS)
async def test_rfc4733_digits_received_in_order(codec: str) -> None:
    async with connected_pair(codec) as (a, b):
        if not FEATURES.rtp_tap:
            # Fallback: RFC 4733 is neither offered nor sent (Call then uses SIP INFO).
            assert not _sdp.telephone_events(a._local_sdp or "")
            assert not a.telephone_event and not b.telephone_event
            with pytest.raises(MediaError, match="RFC 4733 DTMF is not available"):
                await a.send_dtmf("1")
            await collect(b, 0.2)  # and audio still flows
            assert a.stats().packets_sent > 0 and b.stats().packets_received > 0
            return
        assert a.telephone_event and b.telephone_event
        digits = b.dtmf_received()
        await a.send_dtmf("123#*0AD", duration_ms=60, gap_ms=40)
        got = []
        async with asyncio.timeout(5):
            async for digit in digits:
                got.append(digit)
                if len(got) == 8:
                    break
        assert "".join(got) == "123#*0AD"
        assert a.stats().dtmf_sent == 8
        # And the other way, with the callback interface.
        heard: list[str] = []
        remove = a.add_dtmf_listener(heard.append)
        await b.send_dtmf("9")
        async with asyncio.timeout(2):
            while not heard:
                await asyncio.sleep(0.02)
        remove()
        assert heard == ["9"]
        assert b.stats().dtmf_received == 8 and a.stats().dtmf_received == 1


async def test_opus_offer_carries_telephone_event_at_both_clock_rates() -> None:
    session = MediaSession(config=config("opus"))
    try:
        offer = await session.create_offer()
        rates = sorted(e.clock_rate for e in _sdp.telephone_events(offer))
        assert rates == ([8000, 48000] if FEATURES.rtp_tap else [])
    finally:
        await session.close()


async def test_invalid_digit_raises_and_sends_nothing() -> None:
    async with connected_pair("PCMU") as (a, _b):
        with pytest.raises(InvalidDTMF, match="'x'"):
            await a.send_dtmf("12x4")
        with pytest.raises(InvalidDTMF, match="'E'"):
            await a.send_dtmf("E")
        assert a.stats().dtmf_sent == 0


async def test_dtmf_without_telephone_event_is_refused() -> None:
    a = MediaSession(config=config("PCMU", telephone_event=False))
    b = MediaSession(config=config("PCMU"))
    try:
        offer = await a.create_offer()
        assert not _sdp.telephone_events(offer)
        answer = await b.accept_offer(offer)
        assert not _sdp.telephone_events(answer)
        await a.set_answer(answer)
        refusal = "telephone-event" if FEATURES.rtp_tap else "RFC 4733 DTMF is not available"
        with pytest.raises(MediaError, match=refusal):
            await b.send_dtmf("1")
    finally:
        await a.close()
        await b.close()


async def test_close_releases_everything() -> None:
    before = {t.name for t in threading.enumerate()}
    async with connected_pair("opus", ToneSource(1000)) as (a, b):
        await collect(b, 0.1)
        transports = list(a._iter_transports()) + list(b._iter_transports())
    await a.close()  # idempotent
    assert a.state is MediaState.CLOSED and b.state is MediaState.CLOSED
    assert all(t.state == "closed" for t in transports)
    assert a.connection_state == "closed"
    # Allow the event loop a moment to run the callbacks that finish cancelled tasks.
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if not pending:
            break
        await asyncio.sleep(0.02)
    assert pending == []
    # The Opus encode worker is shut down without blocking the loop: it ends shortly after.
    extra: set[str] = set()
    while time.monotonic() < deadline + 2:
        extra = {t.name for t in threading.enumerate()} - before - {"asyncio_0", "asyncio_1"}
        if not extra:
            break
        await asyncio.sleep(0.02)
    assert extra == set()
    assert not any(t.name == "audio-decoder" for t in threading.enumerate())
    with pytest.raises(InvalidState):
        await a.create_offer()


async def test_sdp_has_only_loopback_candidates() -> None:
    a = MediaSession(config=config("PCMU"))
    b = MediaSession(config=config("PCMU"))
    try:
        offer = await a.create_offer()
        answer = await b.accept_offer(offer)
        for sdp in (offer, answer):
            addresses = _sdp.candidate_addresses(sdp)
            assert addresses and set(addresses) == {"127.0.0.1"}
            assert "c=IN IP4 127.0.0.1" in sdp
    finally:
        await a.close()
        await b.close()


async def test_gather_timeout_bounds_an_unresponsive_stun_server() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    ice = IceConfig(
        servers=[IceServer(urls=f"stun:127.0.0.1:{port}")],
        host_addresses=["127.0.0.1"],
        gather_timeout=0.5,
    )
    session = MediaSession(config=MediaConfig(ice=ice, codecs=["PCMU"]))
    try:
        start = time.monotonic()
        offer = await session.create_offer()
        elapsed = time.monotonic() - start
        assert 0.4 <= elapsed < 2.0
        assert "typ host" in offer and "typ srflx" not in offer
        # The STUN request did go out: the bound was what ended gathering.
        silent.settimeout(0)
        assert silent.recv(2048)
    finally:
        await session.close()
        silent.close()


async def test_early_media_then_final_answer() -> None:
    a = MediaSession(config=config("PCMU"), source=ToneSource(1000))
    b = MediaSession(config=config("PCMU"))
    try:
        answer = await b.accept_offer(await a.create_offer())
        await a.set_answer(answer, provisional=True)
        assert a.state is MediaState.EARLY
        await a.wait_connected()
        assert dominant_frequency(await collect(b, 0.2), 16000) == pytest.approx(1000, abs=20)
        await a.set_answer(answer)
        assert a.state is MediaState.ACTIVE
        with pytest.raises(InvalidState):
            await a.set_answer(answer)
    finally:
        await a.close()
        await b.close()


async def test_early_media_with_a_different_final_answer_fails() -> None:
    a = MediaSession(config=config("PCMU"))
    b = MediaSession(config=config("PCMU"))
    c = MediaSession(config=config("PCMU"))
    try:
        offer = await a.create_offer()
        early = await b.accept_offer(offer)
        other = await c.accept_offer(offer)
        await a.set_answer(early, provisional=True)
        if _sdp.origin(other) == _sdp.origin(early):  # same NTP second: force a new version
            other = other.replace("o=- ", "o=other ", 1)
        with pytest.raises(MediaError, match="differs"):
            await a.set_answer(other)
    finally:
        for session in (a, b, c):
            await session.close()


async def test_state_and_sdp_errors() -> None:
    session = MediaSession(config=config("PCMU"))
    try:
        with pytest.raises(InvalidState, match="NEW"):
            await session.set_answer("v=0\r\n")
        with pytest.raises(InvalidSDP):
            await session.accept_offer("v=0\r\ns=-\r\nt=0 0\r\n")
        with pytest.raises(InvalidState):
            await session.update("v=0\r\n")
    finally:
        await session.close()


async def test_an_answer_aiortc_would_take_but_not_use_is_refused_by_name() -> None:
    """Without a=fingerprint aiortc applies the answer, then fails in a task of its own and
    the session looks up with no audio: refuse such an answer before aiortc sees it."""
    a = MediaSession(config=config("PCMU"))
    b = MediaSession(config=config("PCMU"))
    loop = asyncio.get_running_loop()
    caught: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: caught.append(context))
    try:
        answer = await b.accept_offer(await a.create_offer())
        stripped = "".join(
            line for line in answer.splitlines(keepends=True)
            if not line.startswith("a=fingerprint")
        )
        with pytest.raises(InvalidSDP, match="no a=fingerprint"):
            await a.set_answer(stripped, provisional=True)
        with pytest.raises(InvalidSDP, match="not usable"):
            await a.set_answer(stripped.replace("a=setup", "a=fingerprint:md5 00:11\r\na=setup"))
        with pytest.raises(InvalidSDP, match="cannot be parsed: .*v="):
            await a.set_answer("not SDP\r\nm=audio oops\r\n")
        assert a.state is MediaState.OFFERING, "a refused answer changes nothing"
        await a.set_answer(answer)
        await asyncio.gather(a.wait_connected(), b.wait_connected())
        assert a.state is MediaState.ACTIVE
    finally:
        await a.close()
        await b.close()
    assert caught == []


async def test_voice_bot_frames_and_sinks(tmp_path: Path) -> None:
    """A bot plays 16 kHz frames from a generator and reads what it hears as frames."""

    def prompt(frequency: float, seconds: float, rate: int = 16000):  # type: ignore[no-untyped-def]
        t = np.arange(int(rate * seconds)) / rate
        pcm = (np.sin(2 * np.pi * frequency * t) * 12000).astype(np.int16)
        for i in range(0, pcm.size, rate // 50):
            yield pcm[i : i + rate // 50]

    async with connected_pair("opus") as (a, b):
        meter = LevelMeter()
        wav = tmp_path / "heard.wav"
        recorder = WavFileSink(wav, sample_rate=8000)
        a.add_sink(meter)
        a.add_sink(recorder)
        listen = asyncio.create_task(collect(a, 0.4, skip_ms=300))
        start = time.monotonic()
        await b.play_frames(prompt(800, 1.0))
        assert time.monotonic() - start >= 0.9  # played in real time, not dumped
        heard = await listen
        assert dominant_frequency(heard, 16000) == pytest.approx(800, abs=20)
        assert meter.dbfs > -20
        a.remove_sink(recorder)
        # After the prompt, B is back to its previous source (silence).
        assert rms_dbfs(await collect(a, 0.2, skip_ms=200)) < -50
        replay = WavFileSource(wav)
        assert replay.sample_rate == 8000
        # Now A plays what it recorded back to B, through the file source.
        listen = asyncio.create_task(collect(b, 0.3, skip_ms=300))
        await a.play(replay)
        assert dominant_frequency(await listen, 16000) == pytest.approx(800, abs=20)


async def test_push_frame_source() -> None:
    source = FrameSource(sample_rate=8000)
    async with connected_pair("PCMU", source) as (a, b):
        t = np.arange(8000) / 8000
        pcm = (np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16)
        for i in range(0, pcm.size, 160):
            source.push(pcm[i : i + 160].tobytes())
        source.end()
        heard = await collect(b, 0.2, skip_ms=100)
        assert dominant_frequency(heard, 16000) == pytest.approx(440, abs=20)
        async with asyncio.timeout(3):
            await source.wait_finished()



async def test_lean_path_receives_directly_and_keeps_rtcp_and_dtls_close() -> None:
    """SRTP is decrypted where aioice hands the datagram over; SRTCP (sender reports)
    and DTLS records (close_notify) still take aiortc's own path."""
    async with connected_pair("opus", ToneSource(1000), ToneSource(600)) as (a, b):
        at_b = await collect(b, 0.4)
        assert dominant_frequency(at_b, 16000) == pytest.approx(1000, abs=20)
        if not FEATURES.direct_receive:
            # Fallback: aioice's queue and aiortc's receive task (no tap without its hooks).
            if FEATURES.rtp_tap:
                assert b._tap is not None and b._tap.direct_received == 0
            else:
                assert b._tap is None and b.stats().packets_received >= 20
            return
        tap_a, tap_b = a._tap, b._tap
        assert tap_a is not None and tap_b is not None
        assert tap_b.direct_received >= 20
        assert tap_b.packets_received >= tap_b.direct_received
        dtls_b = next(b._iter_transports())
        assert dtls_b._get_stats()  # aiortc's transport counters still counted
        # a's sender reports (SRTCP, ~1 per second) reach b's aiortc receiver.
        async with asyncio.timeout(5):
            while True:
                report = await b._transceiver.receiver.getStats()
                if any(s.type == "remote-outbound-rtp" for s in report.values()):
                    break
                await asyncio.sleep(0.1)
        # a closes: its DTLS close_notify reaches b through aioice's queue.
        await a.close()
        async with asyncio.timeout(5):
            while dtls_b.state != "closed":
                await asyncio.sleep(0.02)
