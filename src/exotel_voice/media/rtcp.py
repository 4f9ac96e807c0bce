"""RTCP (RFC 3550 §6) for the lean media path, without I/O.

The lean path sends and receives RTP itself (:mod:`exotel_voice.media.sender`,
:mod:`exotel_voice.media.jitter`), so aiortc's receiver never sees the far end's
packets and cannot write receiver reports.  This module is what replaces it:

* packing and parsing of the RTCP packets a voice call needs: SR, RR, SDES (CNAME) and
  BYE, in compound packets (§6.1); other packet types are skipped by length.
  Malformed input raises :class:`RtcpError` naming what is wrong; the caller logs it and
  drops the datagram, the call goes on;
* :class:`ReceptionStats`: the receive-side counters of one source (RFC 3550 Appendix
  A.1, A.3 and A.8): extended highest sequence number, cumulative and interval loss,
  interarrival jitter;
* :class:`RtcpSession`: one call's RTCP state.  It is fed our own RTP (counters for our
  SR), the far end's RTP (reception statistics) and the far end's RTCP (its SR for
  LSR/DLSR, its report blocks about our stream for the round-trip time and its view of
  our loss and jitter), and builds our compound report (SR or RR, one report block,
  SDES CNAME) when asked;
* :func:`report_interval`: the randomised interval between reports (§6.3.1, §6.2: a
  5 s minimum, half of it before the first report, times a random factor in [0.5, 1.5],
  divided by e - 3/2).

Every clock is passed in: ``wallclock`` values are ``time.time()`` seconds (NTP
timestamps are made from them), ``now`` values are a monotonic clock in seconds
(arrival times, delays).  The asyncio timer that sends reports lives in
:class:`~exotel_voice.media.session.MediaSession`.

Round-trip time (§6.4.1): a report block's LSR is the middle 32 bits of the NTP
timestamp of our last SR the far end received, and DLSR the time (1/65536 s) it held
it before reporting; with A the arrival time of the report in the same format,
``RTT = A - LSR - DLSR``.
"""

from __future__ import annotations

import collections
import math
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass


__all__ = [
    "Bye",
    "NTP_EPOCH_OFFSET",
    "ReceiverReport",
    "ReceptionStats",
    "ReportBlock",
    "RtcpError",
    "RtcpSession",
    "Sdes",
    "SenderInfo",
    "SenderReport",
    "build_compound",
    "ntp_middle",
    "ntp_timestamp",
    "parse_compound",
    "report_interval",
    "round_trip_time",
]

#: Seconds from the NTP epoch (1900) to the Unix epoch (1970).
NTP_EPOCH_OFFSET = 2208988800

SR, RR, SDES, BYE = 200, 201, 202, 203
_CNAME = 1
_RTP_SEQ_MOD = 1 << 16
_MAX_DROPOUT = 3000
_MAX_MISORDER = 100
#: How many of our recent SRs are remembered (LSR -> sent), to accept only real LSRs.
_SENT_SR_MEMORY = 16


class RtcpError(ValueError):
    """An RTCP packet that cannot be parsed; the message names what is wrong."""


# -- time ------------------------------------------------------------------------------


def ntp_timestamp(wallclock: float) -> int:
    """The 64-bit NTP timestamp (32.32 fixed point) of ``wallclock`` (``time.time()``)."""
    now = wallclock + NTP_EPOCH_OFFSET
    seconds = int(now)
    return ((seconds & 0xFFFFFFFF) << 32) | int((now - seconds) * (1 << 32))


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of a 64-bit NTP timestamp (the LSR / arrival-time format)."""
    return (ntp >> 16) & 0xFFFFFFFF


def round_trip_time(arrival: int, lsr: int, dlsr: int) -> float | None:
    """RFC 3550 §6.4.1: ``A - LSR - DLSR`` in seconds, all in 1/65536 s units (middle 32
    bits of NTP).  ``None`` if there is no LSR (the far end had no SR of ours yet) or the
    result is negative (clocks or a bogus block)."""
    if lsr == 0:
        return None
    delta = (arrival - lsr - dlsr) & 0xFFFFFFFF
    if delta >= 0x80000000:
        return None
    return delta / 65536.0


def report_interval(
    rng: random.Random, *, initial: bool, minimum: float = 5.0, members: int = 2,
    rtcp_bandwidth: float = 400.0, average_size: float = 100.0,
) -> float:
    """The randomised time until the next report, seconds (RFC 3550 §6.3.1, A.7).

    Args:
        initial: before our first report (the minimum is halved).
        minimum: the minimum interval (5 s in RFC 3550 §6.2).
        members: participants in the session (2 for a call).
        rtcp_bandwidth: RTCP bytes per second (5% of the session's bandwidth).
        average_size: average compound RTCP packet size, bytes (with UDP/IP headers).
    """
    t_min = minimum / 2 if initial else minimum
    interval = max(t_min, members * average_size / rtcp_bandwidth)
    return interval * (rng.random() + 0.5) / (math.e - 1.5)


# -- packets ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report block (RFC 3550 §6.4.1).

    ``fraction_lost`` is the 8-bit fixed-point fraction (0-255), ``cumulative_lost`` the
    signed 24-bit count, ``jitter`` in RTP timestamp units, ``lsr``/``dlsr`` in 1/65536 s.
    """

    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_sequence: int
    jitter: int
    lsr: int
    dlsr: int

    def pack(self) -> bytes:
        lost = max(-0x800000, min(0x7FFFFF, self.cumulative_lost)) & 0xFFFFFF
        return struct.pack(
            "!IIIIII",
            self.ssrc,
            (min(255, max(0, self.fraction_lost)) << 24) | lost,
            self.highest_sequence & 0xFFFFFFFF,
            min(self.jitter, 0xFFFFFFFF),
            self.lsr & 0xFFFFFFFF,
            min(self.dlsr, 0xFFFFFFFF),
        )

    @classmethod
    def unpack(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, lost_word, highest, jitter, lsr, dlsr = struct.unpack_from("!IIIIII", data, offset)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr)


@dataclass(frozen=True, slots=True)
class SenderInfo:
    """The sender information of an SR: NTP and RTP timestamps of one instant, counts."""

    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    sender_info: SenderInfo
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class Sdes:
    """SDES with the CNAME of each source (other items are skipped)."""

    cnames: tuple[tuple[int, str], ...]


@dataclass(frozen=True, slots=True)
class Bye:
    sources: tuple[int, ...]


RtcpPacket = SenderReport | ReceiverReport | Sdes | Bye


def _header(count: int, packet_type: int, body: bytes) -> bytes:
    if len(body) % 4:
        raise ValueError("RTCP body must be a multiple of 4 bytes")
    return struct.pack("!BBH", 0x80 | count, packet_type, len(body) // 4) + body


def pack(packet: RtcpPacket) -> bytes:
    """One RTCP packet on the wire."""
    if isinstance(packet, SenderReport):
        info = packet.sender_info
        body = struct.pack(
            "!IQIII", packet.ssrc, info.ntp_timestamp & 0xFFFFFFFFFFFFFFFF,
            info.rtp_timestamp & 0xFFFFFFFF, info.packet_count & 0xFFFFFFFF,
            info.octet_count & 0xFFFFFFFF,
        )
        body += b"".join(block.pack() for block in packet.reports[:31])
        return _header(min(len(packet.reports), 31), SR, body)
    if isinstance(packet, ReceiverReport):
        body = struct.pack("!I", packet.ssrc)
        body += b"".join(block.pack() for block in packet.reports[:31])
        return _header(min(len(packet.reports), 31), RR, body)
    if isinstance(packet, Sdes):
        body = b""
        for ssrc, cname in packet.cnames[:31]:
            text = cname.encode()[:255]
            chunk = struct.pack("!IBB", ssrc, _CNAME, len(text)) + text + b"\x00"
            body += chunk + b"\x00" * (-len(chunk) % 4)
        return _header(min(len(packet.cnames), 31), SDES, body)
    body = b"".join(struct.pack("!I", s) for s in packet.sources[:31])
    return _header(min(len(packet.sources), 31), BYE, body)


def build_compound(packets: list[RtcpPacket]) -> bytes:
    """A compound RTCP packet (RFC 3550 §6.1): it must start with an SR or RR."""
    if not packets or not isinstance(packets[0], SenderReport | ReceiverReport):
        raise ValueError("a compound RTCP packet starts with an SR or RR")
    return b"".join(pack(packet) for packet in packets)


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Parse a (compound) RTCP packet; unknown packet types are skipped.

    Reduced-size RTCP (RFC 5506, not starting with SR/RR) is accepted too.

    Raises:
        RtcpError: a version other than 2, a length past the end of the datagram, a
            body too short for its report count, or an empty datagram.
    """
    if not data:
        raise RtcpError("empty RTCP datagram")
    packets: list[RtcpPacket] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 4:
            raise RtcpError(f"truncated RTCP header at byte {offset}")
        first, packet_type, words = struct.unpack_from("!BBH", data, offset)
        if first >> 6 != 2:
            raise RtcpError(f"RTCP version {first >> 6} at byte {offset} (expected 2)")
        end = offset + 4 + 4 * words
        if end > len(data):
            raise RtcpError(
                f"RTCP packet type {packet_type} at byte {offset} claims {4 + 4 * words} "
                f"bytes, only {len(data) - offset} left"
            )
        count = first & 0x1F
        body = data[offset + 4:end]
        if first & 0x20:  # padding: the last octet counts the padding bytes
            if not body or body[-1] == 0 or body[-1] > len(body):
                raise RtcpError(f"bad RTCP padding in packet type {packet_type}")
            body = body[:-body[-1]]
        packets.extend(_parse_one(packet_type, count, body))
        offset = end
    return packets


def _blocks(body: bytes, start: int, count: int, what: str) -> tuple[ReportBlock, ...]:
    if len(body) < start + 24 * count:
        raise RtcpError(f"{what} with {count} report blocks is only {len(body) + 4} bytes long")
    return tuple(ReportBlock.unpack(body, start + 24 * i) for i in range(count))


def _parse_one(packet_type: int, count: int, body: bytes) -> list[RtcpPacket]:
    if packet_type == SR:
        if len(body) < 24:
            raise RtcpError(f"RTCP SR is {len(body) + 4} bytes long (at least 28 needed)")
        ssrc, ntp, rtp_ts, packets, octets = struct.unpack_from("!IQIII", body)
        return [SenderReport(ssrc, SenderInfo(ntp, rtp_ts, packets, octets),
                             _blocks(body, 24, count, "RTCP SR"))]
    if packet_type == RR:
        if len(body) < 4:
            raise RtcpError("RTCP RR has no SSRC")
        ssrc = struct.unpack_from("!I", body)[0]
        return [ReceiverReport(ssrc, _blocks(body, 4, count, "RTCP RR"))]
    if packet_type == SDES:
        return [Sdes(tuple(_sdes_chunks(body, count)))]
    if packet_type == BYE:
        if len(body) < 4 * count:
            raise RtcpError(f"RTCP BYE lists {count} sources in {len(body)} bytes")
        return [Bye(struct.unpack_from(f"!{count}I", body))]
    return []  # APP, feedback (RFC 4585), XR...: not used by a voice call here


def _sdes_chunks(body: bytes, count: int) -> list[tuple[int, str]]:
    cnames = []
    offset = 0
    for _ in range(count):
        if offset + 4 > len(body):
            raise RtcpError("truncated RTCP SDES chunk")
        ssrc = struct.unpack_from("!I", body, offset)[0]
        offset += 4
        while True:
            if offset >= len(body):
                raise RtcpError("RTCP SDES chunk without its end item")
            item = body[offset]
            if item == 0:
                offset += 4 - offset % 4  # the end item and the padding to 32 bits
                break
            if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                raise RtcpError("truncated RTCP SDES item")
            length = body[offset + 1]
            if item == _CNAME:
                cnames.append((ssrc, body[offset + 2:offset + 2 + length].decode("utf-8",
                                                                                  "replace")))
            offset += 2 + length
    return cnames


# -- receive side ----------------------------------------------------------------------


class ReceptionStats:
    """The RFC 3550 Appendix A.1/A.3/A.8 counters of one incoming source.

    Args:
        seq: sequence number of the first packet.
        clock_rate: the stream's RTP clock, for the jitter in seconds.
    """

    def __init__(self, seq: int, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self._reset(seq)

    def _reset(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.cycles = 0
        self.bad_seq = _RTP_SEQ_MOD + 1
        self.received = 1
        self.expected_prior = 0
        self.received_prior = 0
        #: Interarrival jitter in RTP timestamp units, as the estimator keeps it (J × 16
        #: avoided: a float, rounded when reported).
        self.jitter = 0.0
        self._transit: float | None = None
        self.last_fraction = 0

    def update(self, seq: int) -> None:
        """Count one packet with sequence number ``seq`` (A.1 ``update_seq``, no probation)."""
        delta = (seq - self.max_seq) & 0xFFFF
        if delta < _MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += _RTP_SEQ_MOD
            self.max_seq = seq
        elif delta <= _RTP_SEQ_MOD - _MAX_MISORDER:
            if seq == self.bad_seq:  # two in a row: the source restarted its sequence
                self._reset(seq)
                return
            self.bad_seq = (seq + 1) & 0xFFFF
            return
        # else: a duplicate or reordered packet
        self.received += 1

    def update_jitter(self, timestamp: int, arrival: float) -> None:
        """A.8: ``arrival`` in seconds (any clock), ``timestamp`` the packet's RTP time."""
        transit = arrival * self.clock_rate - timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            if d < self.clock_rate:  # a timestamp jump (a new talk spurt after DTX is fine)
                self.jitter += (d - self.jitter) / 16.0
        self._transit = transit

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative number of packets lost (A.3; may be negative with duplicates)."""
        return self.expected - self.received

    def block(self, ssrc: int, lsr: int, dlsr: int) -> ReportBlock:
        """The report block for the interval since the previous call (A.3)."""
        expected_interval = self.expected - self.expected_prior
        self.expected_prior = self.expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = (lost_interval << 8) // expected_interval
        self.last_fraction = min(255, fraction)
        return ReportBlock(
            ssrc=ssrc,
            fraction_lost=self.last_fraction,
            cumulative_lost=self.lost,
            highest_sequence=self.extended_max,
            jitter=int(self.jitter),
            lsr=lsr,
            dlsr=dlsr,
        )


# -- one call's RTCP -------------------------------------------------------------------


@dataclass(slots=True)
class RemoteView:
    """What the far end's last report block says about our stream."""

    fraction_lost: float
    packets_lost: int
    jitter_ms: float
    highest_sequence: int
    at: float  # wall clock


@dataclass(slots=True)
class _Sent:
    packets: int = 0
    octets: int = 0
    rtp_timestamp: int | None = None
    at: float = 0.0  # monotonic time the packet with rtp_timestamp was sent
    clock_rate: int = 8000


@dataclass(slots=True)
class _Received:
    ssrc: int
    stats: ReceptionStats
    lsr: int = 0
    lsr_at: float | None = None  # monotonic arrival of the far end's last SR


class RtcpSession:
    """One call's RTCP state (see the module docstring).

    Args:
        ssrc: our SSRC (the one our RTP carries).
        cname: our canonical name (SDES CNAME), ``None`` to leave SDES out.
    """

    def __init__(self, ssrc: int, cname: str | None) -> None:
        self.ssrc = ssrc
        self.cname = cname
        self.reports_sent = 0
        self.reports_received = 0
        self.malformed = 0
        #: Round-trip time from the far end's last report on our stream, seconds.
        self.rtt: float | None = None
        self.remote: RemoteView | None = None
        self.remote_ssrc: int | None = None
        self._sent = _Sent()
        self._received: _Received | None = None
        self._sent_srs: collections.OrderedDict[int, float] = collections.OrderedDict()
        self._we_sent_since_report = False
        #: ``(ssrc, lsr, arrival)`` of an SR that came before its source's first RTP.
        self._pending_sr: tuple[int, int, float] | None = None
        #: Called with :attr:`remote` each time a report block about our stream arrives
        #: (the session adapts its Opus encoder's FEC to the loss in it).
        self.on_remote_report: Callable[[RemoteView], None] | None = None

    # -- our RTP --

    def rtp_sent(self, payload_bytes: int, rtp_timestamp: int | None, now: float) -> None:
        """Count one RTP packet we sent: ``payload_bytes`` (no header, no padding) and, for
        an audio packet, its RTP timestamp (telephone events keep their event start, so
        they pass ``None``: the SR's RTP/NTP pairing follows the audio clock)."""
        self._sent.packets += 1
        self._sent.octets += payload_bytes
        if rtp_timestamp is not None:
            self._sent.rtp_timestamp = rtp_timestamp
            self._sent.at = now
        self._we_sent_since_report = True

    def set_send_clock(self, clock_rate: int) -> None:
        """The RTP clock of what we send (to extrapolate the SR's RTP timestamp, and read
        the far end's jitter of our stream in milliseconds)."""
        self._sent.clock_rate = clock_rate

    @property
    def packets_sent(self) -> int:
        return self._sent.packets

    @property
    def octets_sent(self) -> int:
        return self._sent.octets

    # -- the far end's RTP --

    def rtp_received(
        self, ssrc: int, seq: int, timestamp: int, now: float, clock_rate: int, *,
        audio: bool = True,
    ) -> None:
        """Count one packet of the far end's (``now``: its monotonic arrival time).  Only
        ``audio`` packets update the jitter (telephone events keep one timestamp)."""
        received = self._received
        if received is None or received.ssrc != ssrc or received.stats.clock_rate != clock_rate:
            previous = received
            received = self._received = _Received(ssrc, ReceptionStats(seq, clock_rate))
            if previous is not None and previous.ssrc == ssrc:
                received.lsr, received.lsr_at = previous.lsr, previous.lsr_at
            elif self._pending_sr is not None and self._pending_sr[0] == ssrc:
                _, received.lsr, received.lsr_at = self._pending_sr
            self._pending_sr = None
            self.remote_ssrc = ssrc
        else:
            received.stats.update(seq)
        if audio:
            received.stats.update_jitter(timestamp, now)

    @property
    def reception(self) -> ReceptionStats | None:
        """Reception statistics of the far end's current source, once a packet arrived."""
        return self._received.stats if self._received is not None else None

    # -- reports --

    def build_report(self, wallclock: float, now: float) -> bytes:
        """Our compound report: SR (if we sent RTP since the last report but one) or RR,
        with a block about the far end's source if we received any, then SDES CNAME."""
        blocks: tuple[ReportBlock, ...] = ()
        received = self._received
        if received is not None:
            dlsr = 0
            if received.lsr_at is not None:
                dlsr = int(max(0.0, now - received.lsr_at) * 65536)
            blocks = (received.stats.block(received.ssrc, received.lsr, dlsr),)
        first: SenderReport | ReceiverReport
        sent = self._sent
        if self._we_sent_since_report and sent.rtp_timestamp is not None:
            ntp = ntp_timestamp(wallclock)
            rtp = (sent.rtp_timestamp + int(round((now - sent.at) * sent.clock_rate))) & 0xFFFFFFFF
            first = SenderReport(self.ssrc, SenderInfo(ntp, rtp, sent.packets, sent.octets), blocks)
            self._sent_srs[ntp_middle(ntp)] = wallclock
            while len(self._sent_srs) > _SENT_SR_MEMORY:
                self._sent_srs.popitem(last=False)
        else:
            first = ReceiverReport(self.ssrc, blocks)
        self._we_sent_since_report = False
        packets: list[RtcpPacket] = [first]
        if self.cname:
            packets.append(Sdes(((self.ssrc, self.cname),)))
        self.reports_sent += 1
        return build_compound(packets)

    def handle(self, data: bytes, wallclock: float, now: float) -> list[RtcpPacket]:
        """Take the far end's (decrypted) compound RTCP packet; returns what was in it.

        Raises:
            RtcpError: it cannot be parsed (counted in :attr:`malformed`; nothing changed).
        """
        try:
            packets = parse_compound(data)
        except RtcpError:
            self.malformed += 1
            raise
        arrival = ntp_middle(ntp_timestamp(wallclock))
        for packet in packets:
            if isinstance(packet, SenderReport):
                self._take_sr(packet, now)
            if isinstance(packet, SenderReport | ReceiverReport):
                self.reports_received += 1
                for block in packet.reports:
                    if block.ssrc == self.ssrc:
                        self._take_block(block, arrival, wallclock)
        return packets

    def _take_sr(self, packet: SenderReport, now: float) -> None:
        received = self._received
        if received is None or received.ssrc != packet.ssrc:
            # An SR before its RTP (or from a new source): keep it for when RTP comes.
            self._pending_sr = (packet.ssrc, ntp_middle(packet.sender_info.ntp_timestamp), now)
            return
        received.lsr = ntp_middle(packet.sender_info.ntp_timestamp)
        received.lsr_at = now

    def _take_block(self, block: ReportBlock, arrival: int, wallclock: float) -> None:
        if block.lsr in self._sent_srs:
            rtt = round_trip_time(arrival, block.lsr, block.dlsr)
            if rtt is not None:
                self.rtt = rtt
        self.remote = RemoteView(
            fraction_lost=block.fraction_lost / 256.0,
            packets_lost=block.cumulative_lost,
            jitter_ms=block.jitter * 1000.0 / self._sent.clock_rate,
            highest_sequence=block.highest_sequence,
            at=wallclock,
        )
        if self.on_remote_report is not None:
            self.on_remote_report(self.remote)
