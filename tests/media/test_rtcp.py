"""RTCP packets and state without I/O (exotel_voice.media.rtcp)."""

from __future__ import annotations

import math
import random
import struct

import pytest

from exotel_voice.media import rtcp
from exotel_voice.media.rtcp import (
    Bye,
    ReceiverReport,
    ReceptionStats,
    ReportBlock,
    RtcpError,
    RtcpSession,
    Sdes,
    SenderInfo,
    SenderReport,
)


def test_compound_round_trip() -> None:
    block = ReportBlock(0x11223344, 25, -3, 70000, 160, 0xABCD0000, 65536)
    packets: list[rtcp.RtcpPacket] = [
        SenderReport(0xCAFE, SenderInfo(rtcp.ntp_timestamp(1.7e9), 12345, 50, 8000), (block,)),
        Sdes(((0xCAFE, "me@example"),)),
        Bye((0xCAFE,)),
    ]
    data = rtcp.build_compound(packets)
    assert len(data) % 4 == 0
    assert rtcp.parse_compound(data) == packets
    rr = ReceiverReport(7, (block, ReportBlock(8, 0, 123, 9, 1, 0, 0)))
    assert rtcp.parse_compound(rtcp.build_compound([rr])) == [rr]


def test_compound_skips_unknown_types_and_parses_reduced_size() -> None:
    rr = rtcp.build_compound([ReceiverReport(1)])
    app = struct.pack("!BBH", 0x80, 204, 2) + b"NAMEdata"
    nack = struct.pack("!BBHII", 0x81, 205, 2, 1, 2)  # RFC 4585 feedback, not ours to use
    assert rtcp.parse_compound(rr + app + nack) == [ReceiverReport(1)]
    sdes_only = rtcp.pack(Sdes(((5, "x"),)))
    assert rtcp.parse_compound(sdes_only) == [Sdes(((5, "x"),))]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"\x80\xc9", "truncated"),
        (b"\x40\xc9\x00\x01\x00\x00\x00\x01", "version 1"),
        (b"\x80\xc9\x00\x05\x00\x00\x00\x01", "claims 24 bytes, only 8 left"),
        (b"\x81\xc9\x00\x01\x00\x00\x00\x01", "1 report blocks"),
        (b"\x80\xc8\x00\x01\x00\x00\x00\x01", "SR is 8 bytes"),
        (b"\x81\xca\x00\x02\x00\x00\x00\x01\x01\x09ab", "SDES"),
    ],
)
def test_malformed_input_names_the_problem(data: bytes, words: str) -> None:
    with pytest.raises(RtcpError, match=words):
        rtcp.parse_compound(data)


def test_malformed_report_is_counted_and_changes_nothing() -> None:
    session = RtcpSession(1, "a")
    with pytest.raises(RtcpError):
        session.handle(b"\x80\xc9\x00\x09garbage", 1.7e9, 10.0)
    assert session.malformed == 1 and session.rtt is None and session.remote is None


def test_round_trip_time_known_values() -> None:
    # RFC 3550 §6.4.1 example: A=0xb710:8000 (46864.500 s), LSR=0xb705:2000 (46853.125 s),
    # DLSR=0x0005:4000 (5.250 s): RTT = 6.125 s.
    assert rtcp.round_trip_time(0xB7108000, 0xB7052000, 0x00054000) == 6.125
    assert rtcp.round_trip_time(0xB7108000, 0, 0) is None  # no SR received yet
    assert rtcp.round_trip_time(0x00010000, 0x00020000, 0) is None  # negative


def test_reception_stats_loss_and_wrap() -> None:
    stats = ReceptionStats(65530, 8000)
    for seq in [65531, 65532, 65534, 65535, 0, 1, 3, 4]:  # 65533 and 2 lost, wraps
        stats.update(seq)
    assert stats.extended_max == 65536 + 4
    assert stats.expected == 11 and stats.received == 9 and stats.lost == 2
    block = stats.block(9, 0, 0)
    assert block.cumulative_lost == 2 and block.fraction_lost == (2 << 8) // 11
    stats.update(5)
    assert stats.block(9, 0, 0).fraction_lost == 0  # the next interval lost nothing


def test_reception_jitter_of_a_steady_stream_is_zero_and_grows_with_jitter() -> None:
    steady = ReceptionStats(0, 8000)
    shaky = ReceptionStats(0, 8000)
    rng = random.Random(1)
    for i in range(200):
        steady.update_jitter(i * 160, 100.0 + i * 0.02)
        shaky.update_jitter(i * 160, 100.0 + i * 0.02 + rng.uniform(0, 0.02))
    assert steady.jitter == pytest.approx(0.0, abs=1e-6)
    assert 20 < shaky.jitter < 80  # ~ E|d| of a uniform(0, 20 ms) in 1/8000 s: ~53


def _exchange(a: RtcpSession, b: RtcpSession, wall: float, mono: float) -> None:
    b.handle(a.build_report(wall, mono), wall, mono)


def test_two_sessions_learn_rtt_loss_and_jitter() -> None:
    """A sends 100 packets, 7 never reach B; a one-way delay of 30 ms, B holds A's SR for
    1 s before reporting: A computes RTT 60 ms and sees B's loss of 7."""
    a, b = RtcpSession(0xA, "a"), RtcpSession(0xB, "b")
    a.set_send_clock(8000)
    dropped = {10, 11, 12, 40, 41, 77, 90}
    base = 1_700_000_000.0
    for i in range(100):
        a.rtp_sent(160, 1000 + 160 * i, 5.0 + 0.02 * i)
        if i not in dropped:
            b.rtp_received(0xA, (60000 + i) & 0xFFFF, 1000 + 160 * i, 5.03 + 0.02 * i, 8000)
    # A's SR leaves at base (wall) / 7.0 (mono), reaches B 30 ms later.
    sr = a.build_report(base, 7.0)
    first = rtcp.parse_compound(sr)[0]
    assert isinstance(first, SenderReport)
    assert first.sender_info.packet_count == 100 and first.sender_info.octet_count == 16000
    # RTP timestamp extrapolated from the last packet (sent at 6.98 s) to 7.0 s.
    assert first.sender_info.rtp_timestamp == 1000 + 160 * 99 + 160
    b.handle(sr, base + 0.03, 7.03)
    # B reports 1 s later; it reaches A 30 ms after that.
    rr = b.build_report(base + 1.03, 8.03)
    a.handle(rr, base + 1.06, 8.06)
    assert a.rtt is not None and a.rtt == pytest.approx(0.06, abs=0.001)
    assert a.remote is not None
    assert a.remote.packets_lost == 7
    assert a.remote.fraction_lost == pytest.approx(7 / 100, abs=0.01)
    assert b.reception is not None and b.reception.lost == 7
    assert b.rtt is None  # A sent no report block about B (B sent no RTP)


def test_report_without_rtp_sent_is_rr_and_lsr_not_ours_is_ignored() -> None:
    a = RtcpSession(1, None)
    first = rtcp.parse_compound(a.build_report(1.7e9, 1.0))
    assert first == [ReceiverReport(1)]  # no SDES without a CNAME
    bogus = rtcp.build_compound([ReceiverReport(2, (ReportBlock(1, 0, 0, 0, 0, 0x1234, 1),))])
    a.handle(bogus, 1.7e9, 2.0)
    assert a.rtt is None and a.remote is not None  # the loss view is taken, not the RTT


def test_report_interval() -> None:
    rng = random.Random(7)
    firsts = [rtcp.report_interval(rng, initial=True) for _ in range(200)]
    laters = [rtcp.report_interval(rng, initial=False) for _ in range(200)]
    c = math.e - 1.5  # RFC 3550 §6.3.1's compensation
    assert 2.5 * 0.5 / c <= min(firsts) and max(firsts) <= 2.5 * 1.5 / c
    assert 5 * 0.5 / c <= min(laters) and max(laters) <= 5 * 1.5 / c
    assert sum(laters) / len(laters) == pytest.approx(5 / c, rel=0.1)
    assert len(set(laters)) > 100  # randomised
