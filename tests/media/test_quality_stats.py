"""MediaSession.quality_stats(): RTCP between two real sessions on 127.0.0.1.

On the lean path the reports are ours (media/rtcp.py); with EXOTEL_VOICE_AIORTC_COMPAT=off
they are aiortc's, read through its public getStats().
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from exotel_voice.media import MediaSession, ToneSource
from exotel_voice.media.quality_stats import CallStats

from .conftest import FEATURES, LOOPBACK_MEDIA, connected_pair


pytestmark = [LOOPBACK_MEDIA]


async def _until(
    session: MediaSession, done: Callable[[CallStats], bool], timeout: float = 15.0
) -> CallStats:
    stats = await session.quality_stats()
    async with asyncio.timeout(timeout):
        while not done(stats):
            await asyncio.sleep(0.1)
            stats = await session.quality_stats()
    return stats


@pytest.mark.skipif(not FEATURES.lean_path, reason="our RTCP runs on the lean path only")
async def test_both_sides_see_rtt_and_the_dropped_packets(monkeypatch: pytest.MonkeyPatch) -> None:
    """A's sender skips 7 packets (their sequence numbers used): B counts 7 lost, and A
    learns from B's receiver reports that 7 were lost; both learn an RTT."""
    monkeypatch.setattr(MediaSession, "rtcp_interval", 0.4)
    dropped = 7
    async with connected_pair(
        "PCMU", ToneSource(440, 0.3), ToneSource(1000, 0.3)
    ) as (a, b):
        sender = a._lean_sender
        assert sender is not None and sender.send_now is not None
        send_now = sender.send_now
        skip = 0

        def lossy(packet: bytes) -> bool:
            nonlocal skip
            if skip:
                skip -= 1
                return True  # "sent": the far end never sees it
            return send_now(packet)

        sender.send_now = lossy
        await _until(b, lambda s: s.packets_received > 25)
        skip = dropped
        a_stats = await _until(
            a, lambda s: s.rtt_ms is not None and s.remote_packets_lost == dropped
        )
        b_stats = await _until(
            b, lambda s: s.rtt_ms is not None and s.remote_packets_lost is not None
        )

    assert b_stats.packets_lost == dropped and b_stats.media_path == "lean"
    assert a_stats.packets_lost == 0 and b_stats.remote_packets_lost == 0
    for stats in (a_stats, b_stats):
        assert stats.rtt_ms is not None and 0 < stats.rtt_ms < 1000
        assert stats.codec == "PCMU" and stats.clock_rate == 8000
        assert stats.packets_sent > 25 and stats.bytes_sent >= 160 * stats.packets_sent
        assert stats.jitter_ms is not None and stats.remote_jitter_ms is not None
        assert stats.remote_report_at is not None
        assert stats.audio_level_in_dbfs is not None and -20 < stats.audio_level_in_dbfs < -5
        assert stats.audio_level_out_dbfs is not None and -20 < stats.audio_level_out_dbfs < -5
        assert stats.packets_late == 0 and stats.jitter_buffer_delay_ms is not None
        assert stats.concealed_samples is not None and stats.concealment_events is not None


@pytest.mark.skipif(not FEATURES.lean_path, reason="our RTCP runs on the lean path only")
async def test_a_malformed_report_is_ignored_and_the_call_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(MediaSession, "rtcp_interval", 0.4)
    async with connected_pair("PCMU", ToneSource(440, 0.3)) as (a, b):
        tap = b._tap
        assert tap is not None and tap.rtcp is not None
        # What aiortc's receive task hands over after SRTCP: a packet whose length lies.
        await b._iter_transports().__next__()._handle_rtcp_data(b"\x80\xc9\x00\x09junk")
        assert tap.rtcp.malformed == 1
        assert "ignoring the far end's RTCP packet" in caplog.text
        stats = await _until(b, lambda s: s.rtt_ms is not None)
        received = stats.packets_received
        await _until(b, lambda s: s.packets_received > received + 10)
        assert b.connection_state == "connected"


@pytest.mark.skipif(FEATURES.lean_path, reason="aiortc's own RTCP (compat off)")
async def test_aiortc_path_reads_get_stats() -> None:
    async with connected_pair("PCMU", ToneSource(440, 0.3)) as (a, b):
        stats = await _until(a, lambda s: s.rtt_ms is not None and s.packets_received > 0)
    assert stats.media_path == "aiortc" and stats.codec == "PCMU"
    assert stats.packets_sent > 0 and stats.remote_packets_lost == 0
    assert stats.jitter_buffer_delay_ms is None
