"""The impairment relay (tests/rig/impair.py) does what it is set to do, on real UDP.

A few thousand RTP-like datagrams go from a socket "A" through the relay to a socket
"B"; what B receives, and the figures the relay reports, must match the settings:
delay mean and spread, random loss rate, bursts from the Gilbert-Elliott model, and
STUN/DTLS passing untouched.  Tolerances are statistical, on 3,000 packets.
"""

from __future__ import annotations

import asyncio
import statistics
import struct

import pytest

from tests.rig.impair import (
    GilbertElliott,
    Impairment,
    ImpairmentRelay,
    is_rtcp,
    is_rtp,
    point_sdp_at,
    sdp_address,
)
from tests.rig.marks import LOOPBACK_MEDIA


pytestmark = [pytest.mark.media, LOOPBACK_MEDIA]

PACKETS = 3000


class _Sink(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: list[tuple[float, bytes]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append((asyncio.get_running_loop().time(), data))


def rtp(seq: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * 160, 1234) + bytes(160)


async def pump(impairment: Impairment, datagrams: list[bytes]) -> tuple[ImpairmentRelay, _Sink]:
    """Send ``datagrams`` from A through a relay to B; returns the relay and B's sink."""
    loop = asyncio.get_running_loop()
    a_transport, a = await loop.create_datagram_endpoint(_Sink, local_addr=("127.0.0.1", 0))
    b_transport, b = await loop.create_datagram_endpoint(_Sink, local_addr=("127.0.0.1", 0))
    relay = ImpairmentRelay(impairment)
    await relay.start()
    try:
        relay.set_peer("b", b_transport.get_extra_info("sockname"))
        for i, data in enumerate(datagrams):
            a_transport.sendto(data, relay.face_a)
            if i % 25 == 24:
                # 25 packets every 5 ms (5,000/s, a few hundred calls' worth): the relay and
                # B share this loop, and a faster burst of releases overflows B's socket
                # buffer before B reads it (seen: 124 of 3,000 lost with no loss set).
                await asyncio.sleep(0.005)
        # Until everything in flight has arrived: the longest delay has passed and nothing
        # came for 0.2 s (a busy machine's loop may be late), at most 10 s.
        loop_time = loop.time
        quiet_from = (
            loop_time() + 0.1 + 6 * impairment.jitter_ms / 1000 + impairment.delay_ms / 1000
        )
        deadline = loop_time() + 10
        seen = -1
        while loop_time() < deadline:
            await asyncio.sleep(0.2)
            if len(b.received) == seen and loop_time() >= quiet_from:
                break
            seen = len(b.received)
    finally:
        await relay.close()
        a_transport.close()
        b_transport.close()
    return relay, b


def seqs(sink: _Sink) -> list[int]:
    return [struct.unpack("!H", d[2:4])[0] for _, d in sink.received if is_rtp(d)]


async def test_clean_relay_forwards_everything_in_order() -> None:
    relay, b = await pump(Impairment(), [rtp(i) for i in range(500)])
    assert seqs(b) == list(range(500))
    fig = relay.figures()["a->b"]
    assert fig["packets"] == 500 and fig["lost"] == 0 and fig["reordered"] == 0


async def test_delay_distribution_and_reordering_match_the_settings() -> None:
    relay, b = await pump(
        Impairment(delay_ms=20, jitter_ms=15, seed=7), [rtp(i) for i in range(PACKETS)]
    )
    fig = relay.figures()["a->b"]
    assert fig["packets"] == PACKETS and fig["lost"] == 0
    assert len(seqs(b)) == PACKETS  # everything arrives, nothing is dropped
    # Normal(20, 15) clipped at 0: median 20, p95 about 20 + 1.645 * 15 = 44.7.
    assert 18.5 <= fig["delay_p50_ms"] <= 21.5, fig
    assert 41 <= fig["delay_p95_ms"] <= 48.5, fig
    delays = relay._dirs["ab"].figures.delays_ms
    assert 13.5 <= statistics.pstdev(delays) <= 16.0  # a bit below 15: the clip at 0
    assert min(delays) >= 0.0
    # Packets sent ~0.04 ms apart with 15 ms of spread arrive out of order, and B sees it.
    assert fig["reordered"] > PACKETS // 4
    assert seqs(b) != sorted(seqs(b))


async def test_random_loss_rate_matches_the_setting() -> None:
    relay, b = await pump(Impairment(loss=0.05, seed=3), [rtp(i) for i in range(PACKETS)])
    fig = relay.figures()["a->b"]
    assert 3.8 <= fig["loss_pct"] <= 6.2, fig
    assert len(seqs(b)) == PACKETS - fig["lost"]
    # Bernoulli: runs of losses are short (mean about 1 / (1 - 0.05)).
    assert fig["burst_mean"] < 1.3, fig


async def test_gilbert_elliott_gives_bursts_at_the_set_rate() -> None:
    model = GilbertElliott.for_loss(0.05, mean_burst=4.0)
    assert model.mean_loss == pytest.approx(0.05)
    relay, b = await pump(Impairment(burst=model, seed=5), [rtp(i) for i in range(PACKETS)])
    fig = relay.figures()["a->b"]
    assert 2.5 <= fig["loss_pct"] <= 8.0, fig  # few bursts in 3,000 packets: wide band
    assert len(seqs(b)) == PACKETS - fig["lost"]
    assert fig["burst_mean"] >= 2.5 and fig["burst_max"] >= 5, fig
    # The same seed gives the same losses.
    again, _ = await pump(Impairment(burst=model, seed=5), [rtp(i) for i in range(PACKETS)])
    assert again.figures()["a->b"]["lost"] == fig["lost"]


async def test_stun_and_dtls_pass_unimpaired_and_replies_come_back() -> None:
    stun = b"\x00\x01\x00\x00" + bytes(16)
    dtls = b"\x16\xfe\xfd" + bytes(20)
    relay, b = await pump(Impairment(loss=1.0), [stun, dtls, rtp(1), stun])
    assert [d for _, d in b.received] == [stun, dtls, stun]
    assert relay.figures()["a->b"]["lost"] == 1
    assert relay.figures()["a->b"]["stun_dtls_passed"] == 3


async def test_b_replies_reach_a_through_the_face_a_learned() -> None:
    loop = asyncio.get_running_loop()
    a_transport, a = await loop.create_datagram_endpoint(_Sink, local_addr=("127.0.0.1", 0))
    b_transport, b = await loop.create_datagram_endpoint(_Sink, local_addr=("127.0.0.1", 0))
    async with ImpairmentRelay() as relay:
        relay.set_peer("b", b_transport.get_extra_info("sockname"))
        a_transport.sendto(rtp(1), relay.face_a)
        await asyncio.sleep(0.05)
        b_transport.sendto(rtp(2), relay.face_b)  # A's address was learned from its packet
        await asyncio.sleep(0.05)
    a_transport.close()
    b_transport.close()
    assert seqs(b) == [1] and seqs(a) == [2]


def test_point_sdp_at_rewrites_candidates_and_ports() -> None:
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 40000 UDP/TLS/RTP/SAVPF 0\r\n"
        "c=IN IP4 127.0.0.1\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:x\r\na=ice-pwd:y\r\n"
        "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n"
        "a=candidate:2 1 udp 2130706431 10.0.0.1 40001 typ host\r\n"
        "a=candidate:3 1 tcp 2130706431 127.0.0.1 9 typ host tcptype active\r\n"
    )
    assert sdp_address(sdp) == ("127.0.0.1", 40000)
    out = point_sdp_at(sdp, ("127.0.0.1", 5555))
    assert "m=audio 5555 " in out and "c=IN IP4 127.0.0.1" in out
    cands = [line for line in out.splitlines() if line.startswith("a=candidate")]
    assert cands == ["a=candidate:1 1 udp 2130706431 127.0.0.1 5555 typ host"]
    assert sdp_address(out) == ("127.0.0.1", 5555)


def test_bad_settings_are_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="loss"):
        Impairment(loss=1.5)
    with pytest.raises(ValueError, match="not both"):
        Impairment(loss=0.1, burst=GilbertElliott(0.1, 0.5))
    with pytest.raises(ValueError, match="r must be > 0"):
        GilbertElliott(0.1, 0.0)


def rtcp_report() -> bytes:
    return struct.pack("!BBHI", 0x80, 201, 1, 1234)  # an empty receiver report


async def test_the_rtp_packets_lost_do_not_depend_on_when_rtcp_goes() -> None:
    """RTCP has its own generator: RTP packet n meets the same fate whatever RTCP is
    interleaved (report intervals are random), so every receiver in a condition loses
    the same speech."""
    model = GilbertElliott.for_loss(0.05, mean_burst=3.0)
    plain = [rtp(i) for i in range(600)]
    mixed: list[bytes] = []
    for i, packet in enumerate(plain):
        mixed.append(packet)
        if i % 37 == 5 or i % 53 == 0:
            mixed.append(rtcp_report())
    relay_plain, b_plain = await pump(Impairment(burst=model, seed=4), plain)
    relay_mixed, b_mixed = await pump(Impairment(burst=model, seed=4), mixed)
    def rtp_seqs(sink: _Sink) -> list[int]:
        return [struct.unpack("!H", d[2:4])[0] for _, d in sink.received if not is_rtcp(d)]

    assert rtp_seqs(b_plain) == rtp_seqs(b_mixed)
    assert len(rtp_seqs(b_plain)) < 600  # something was lost
    plain_fig, mixed_fig = relay_plain.figures()["a->b"], relay_mixed.figures()["a->b"]
    assert plain_fig["packets"] == mixed_fig["packets"] == 600
    assert (plain_fig["rtcp_packets"], mixed_fig["rtcp_packets"]) == (0, len(mixed) - 600)
