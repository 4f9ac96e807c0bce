"""A UDP impairment relay for media tests and benchmarks: jitter, reordering and loss.

This kernel has no ``netem``, so the network conditions are made in user space: an
:class:`ImpairmentRelay` is a UDP proxy on 127.0.0.1 that sits between two media
endpoints ("a" and "b") and forwards both ways.  It has two sockets:

* ``face_a`` (the address A sends to, put into the SDP A receives as B's candidate), and
* ``face_b`` (the address B sends to, put into the SDP B receives as A's candidate).

A datagram from A arriving at ``face_a`` leaves through ``face_b`` to B's address, and
one from B arriving at ``face_b`` leaves through ``face_a`` to A's.  So each side sees
the other at exactly the address its SDP names, and ICE (connectivity checks, consent
freshness), DTLS and SRTP all work through it.  The endpoints' real addresses are given
with :meth:`ImpairmentRelay.set_peer` (from their SDP) or learned from the first
datagram each side sends (the latest source wins); until known, datagrams to that side
are dropped (ICE retransmits).  :func:`point_sdp_at` rewrites an SDP's candidates, ``c=``
and ``m=`` port to a relay face.

Only RTP and RTCP are impaired: a datagram whose first byte is 128-191 (RFC 7983's
demultiplexing) gets a random delay and may be dropped; STUN (0-3) and DTLS (20-63)
pass at once and are never dropped, so call setup is the same under every condition
and only the media (and its RTCP) sees the network.  Each direction has its own seeded
random generators, one for RTP and one for RTCP (RFC 5761: second byte 192-223), so the
RTP packets a condition drops or delays are the same in every run and for every receiver
whenever the RTCP reports go (their intervals are random): packet ``n`` of the stream
meets the same fate each time (reproducible runs):

* delay: normal with ``delay_ms`` mean and ``jitter_ms`` standard deviation, clipped at
  0; each packet is sent when its own delay is up, so packets reorder as on a real
  network when the jitter is larger than the packet spacing;
* loss: Bernoulli with ``loss`` probability, or bursts from a Gilbert-Elliott two-state
  model (``burst``: :class:`GilbertElliott`, per packet: first the state transition
  good->bad with ``p`` and bad->good with ``r``, then the packet is lost with
  ``loss_bad`` in the bad state and ``loss_good`` in the good state).

The relay keeps its own figures per direction (:meth:`ImpairmentRelay.figures`): RTP/RTCP
packets in, lost, delay percentiles of the packets sent, reordered packets, and the
lengths of the runs of consecutive lost packets.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
from dataclasses import dataclass, field
from typing import Any


Address = tuple[str, int]


@dataclass(frozen=True)
class GilbertElliott:
    """A two-state (good/bad) Markov loss model.

    ``p``: probability to go from good to bad, per packet; ``r``: from bad to good;
    ``loss_bad`` / ``loss_good``: the probability a packet is lost in each state.  The
    long-run loss is ``p / (p + r) * loss_bad + r / (p + r) * loss_good``, and a stay in
    the bad state lasts ``1 / r`` packets on average.
    """

    p: float
    r: float
    loss_bad: float = 1.0
    loss_good: float = 0.0

    def __post_init__(self) -> None:
        for name in ("p", "r", "loss_bad", "loss_good"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"GilbertElliott.{name} must be in [0, 1], got {value!r}")
        if self.r == 0.0:
            raise ValueError("GilbertElliott.r must be > 0 (the bad state must end)")

    @property
    def mean_loss(self) -> float:
        bad = self.p / (self.p + self.r) if self.p + self.r else 0.0
        return bad * self.loss_bad + (1.0 - bad) * self.loss_good

    @classmethod
    def for_loss(
        cls, loss: float, mean_burst: float = 3.0, loss_bad: float = 1.0
    ) -> GilbertElliott:
        """The model with a long-run ``loss`` whose bad state lasts ``mean_burst`` packets."""
        if not 0.0 < loss < loss_bad:
            raise ValueError(f"loss must be in (0, loss_bad={loss_bad}), got {loss!r}")
        if mean_burst < 1.0:
            raise ValueError(f"mean_burst must be >= 1 packet, got {mean_burst!r}")
        r = 1.0 / mean_burst
        bad = loss / loss_bad  # share of packets in the bad state
        return cls(p=bad * r / (1.0 - bad), r=r, loss_bad=loss_bad)


@dataclass(frozen=True)
class Impairment:
    """What the relay does to RTP/RTCP, the same in both directions (each with its own
    random generator).  Delays in milliseconds; ``loss`` a probability (Bernoulli);
    ``burst`` replaces ``loss`` with a Gilbert-Elliott model."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    burst: GilbertElliott | None = None
    seed: int = 1

    def __post_init__(self) -> None:
        if self.delay_ms < 0 or self.jitter_ms < 0:
            raise ValueError(
                f"delay_ms and jitter_ms must be >= 0, got {self.delay_ms!r}, {self.jitter_ms!r}"
            )
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError(f"loss must be in [0, 1], got {self.loss!r}")
        if self.burst is not None and self.loss:
            raise ValueError("give either loss (random) or burst (Gilbert-Elliott), not both")

    def describe(self) -> str:
        parts = []
        if self.delay_ms or self.jitter_ms:
            parts.append(f"delay {self.delay_ms:g} ms +- {self.jitter_ms:g} ms (normal)")
        if self.loss:
            parts.append(f"{self.loss * 100:g}% random loss")
        if self.burst is not None:
            b = self.burst
            parts.append(
                f"{b.mean_loss * 100:.3g}% bursty loss (Gilbert-Elliott p={b.p:.4g} "
                f"r={b.r:.4g} loss_bad={b.loss_bad:g})"
            )
        return ", ".join(parts) or "clean"


def is_rtp(datagram: bytes) -> bool:
    """RTP or RTCP by RFC 7983's first-byte ranges (128-191); STUN is 0-3, DTLS 20-63."""
    return bool(datagram) and 128 <= datagram[0] <= 191


def is_rtcp(datagram: bytes) -> bool:
    """An RTCP packet among RTP/RTCP (RFC 5761 §4: packet types 192-223 in the second
    byte, which SRTCP leaves in the clear)."""
    return len(datagram) > 1 and 192 <= datagram[1] <= 223


@dataclass
class DirectionFigures:
    """What one direction of the relay did (RTP/RTCP only, apart from ``other``)."""

    packets: int = 0
    lost: int = 0
    other: int = 0  # STUN/DTLS, passed unimpaired
    reordered: int = 0
    delays_ms: list[float] = field(default_factory=list)
    bursts: list[int] = field(default_factory=list)
    _run: int = 0
    _last_departure: float = -math.inf

    def summary(self) -> dict[str, Any]:
        runs = self.bursts + ([self._run] if self._run else [])
        delays = sorted(self.delays_ms)
        return {
            "packets": self.packets,
            "lost": self.lost,
            "loss_pct": round(100.0 * self.lost / self.packets, 2) if self.packets else 0.0,
            "delay_p50_ms": _percentile(delays, 50),
            "delay_p95_ms": _percentile(delays, 95),
            "delay_p99_ms": _percentile(delays, 99),
            "reordered": self.reordered,
            "bursts": len(runs),
            "burst_mean": round(sum(runs) / len(runs), 2) if runs else 0.0,
            "burst_max": max(runs) if runs else 0,
            "stun_dtls_passed": self.other,
        }


def _percentile(ordered: list[float], pct: float) -> float | None:
    if not ordered:
        return None
    k = min(len(ordered) - 1, max(0, int(math.ceil(pct / 100.0 * len(ordered))) - 1))
    return round(ordered[k], 2)


class _Direction:
    """The impairment of one direction: its random generator, state and figures."""

    def __init__(self, impairment: Impairment, seed: int) -> None:
        self.impairment = impairment
        self.random = random.Random(seed)
        self.bad = False
        self.figures = DirectionFigures()

    def decide(self) -> float | None:
        """The delay in seconds for the next RTP packet, or None to drop it."""
        imp, f = self.impairment, self.figures
        f.packets += 1
        if imp.burst is not None:
            ge = imp.burst
            self.bad = (self.random.random() >= ge.r) if self.bad else (self.random.random() < ge.p)
            lost = self.random.random() < (ge.loss_bad if self.bad else ge.loss_good)
        else:
            lost = imp.loss > 0 and self.random.random() < imp.loss
        if lost:
            f.lost += 1
            f._run += 1
            return None
        if f._run:
            f.bursts.append(f._run)
            f._run = 0
        delay = imp.delay_ms
        if imp.jitter_ms:
            delay = self.random.gauss(imp.delay_ms, imp.jitter_ms)
        delay = max(0.0, delay)
        f.delays_ms.append(delay)
        return delay / 1000.0


class _Face(asyncio.DatagramProtocol):
    def __init__(self, relay: ImpairmentRelay, side: str) -> None:
        self.relay = relay
        self.side = side
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.relay._received(self.side, data, addr)


class ImpairmentRelay:
    """The relay between endpoints A and B (see the module docstring).

    Use ``async with ImpairmentRelay(impairment) as relay:``; then ``relay.face_a`` /
    ``relay.face_b`` are the addresses to put into the SDP each side receives.
    """

    def __init__(self, impairment: Impairment | None = None, host: str = "127.0.0.1") -> None:
        self.impairment = impairment or Impairment()
        self.host = host
        self._peers: dict[str, Address | None] = {"a": None, "b": None}
        self._fixed: set[str] = set()
        # "ab": from A to B.  Seeds differ per direction, reproducible per relay seed; RTCP
        # has generators of its own, so that RTP's fate does not hang on RTCP's timing.
        seed = self.impairment.seed
        self._dirs = {
            "ab": _Direction(self.impairment, seed * 2 + 0),
            "ba": _Direction(self.impairment, seed * 2 + 1),
        }
        self._rtcp_dirs = {
            "ab": _Direction(self.impairment, seed * 2 + 1_000_003),
            "ba": _Direction(self.impairment, seed * 2 + 1_000_004),
        }
        self._faces: dict[str, _Face] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timers: set[asyncio.TimerHandle] = set()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for side in ("a", "b"):
            face = _Face(self, side)
            await self._loop.create_datagram_endpoint(lambda f=face: f, local_addr=(self.host, 0))
            self._faces[side] = face

    async def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for face in self._faces.values():
            if face.transport is not None:
                face.transport.close()

    async def __aenter__(self) -> ImpairmentRelay:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _address(self, side: str) -> Address:
        transport = self._faces[side].transport
        assert transport is not None, "relay not started"
        addr = transport.get_extra_info("sockname")
        return (addr[0], addr[1])

    @property
    def face_a(self) -> Address:
        """Where A sends (B's address in the SDP A receives)."""
        return self._address("a")

    @property
    def face_b(self) -> Address:
        """Where B sends (A's address in the SDP B receives)."""
        return self._address("b")

    def set_impairment(self, impairment: Impairment) -> None:
        """From now on, impair as ``impairment`` says (both directions; each keeps its
        random generator and figures; packets already delayed keep their departure)."""
        self.impairment = impairment
        for direction in (*self._dirs.values(), *self._rtcp_dirs.values()):
            direction.impairment = impairment
            direction.bad = False

    def set_peer(self, side: str, addr: Address) -> None:
        """The real address of endpoint ``side`` ("a" or "b"); not learned any more."""
        if side not in self._peers:
            raise ValueError(f"side must be 'a' or 'b', got {side!r}")
        self._peers[side] = addr
        self._fixed.add(side)

    def _received(self, side: str, data: bytes, addr: Address) -> None:
        if side not in self._fixed:
            self._peers[side] = addr
        other = "b" if side == "a" else "a"
        target = self._peers[other]
        out = self._faces[other].transport
        if target is None or out is None:
            return
        key = "ab" if side == "a" else "ba"
        direction = self._dirs[key]
        if not is_rtp(data):
            direction.figures.other += 1
            out.sendto(data, target)
            return
        if is_rtcp(data):
            direction = self._rtcp_dirs[key]
        delay = direction.decide()
        if delay is None:
            return
        assert self._loop is not None
        departure = self._loop.time() + delay
        if departure < direction.figures._last_departure:
            direction.figures.reordered += 1
        direction.figures._last_departure = max(departure, direction.figures._last_departure)
        if delay <= 0.0:
            out.sendto(data, target)
            return
        timer: asyncio.TimerHandle

        def send() -> None:
            self._timers.discard(timer)
            if out.is_closing():
                return
            out.sendto(data, target)

        timer = self._loop.call_at(departure, send)
        self._timers.add(timer)

    def figures(self) -> dict[str, dict[str, Any]]:
        """Per direction (``a->b``, ``b->a``): RTP packets, loss, delay percentiles,
        bursts; ``rtcp_packets`` / ``rtcp_lost`` for its RTCP."""
        out = {}
        for key, name in (("ab", "a->b"), ("ba", "b->a")):
            summary = self._dirs[key].figures.summary()
            rtcp = self._rtcp_dirs[key].figures
            summary["rtcp_packets"], summary["rtcp_lost"] = rtcp.packets, rtcp.lost
            out[name] = summary
        return out


_CANDIDATE = re.compile(
    r"^(a=candidate:\S+ \d+ )(\S+)( \d+ )(\S+) (\d+)( typ \S+)(.*)$", re.IGNORECASE
)


def sdp_address(sdp: str) -> Address | None:
    """The first UDP candidate's address in ``sdp`` (or the ``c=``/``m=`` address)."""
    for line in sdp.splitlines():
        m = _CANDIDATE.match(line)
        if m and m.group(2).lower() == "udp":
            return (m.group(4), int(m.group(5)))
    c = re.search(r"^c=IN IP[46] (\S+)", sdp, re.MULTILINE)
    mline = re.search(r"^m=audio (\d+)", sdp, re.MULTILINE)
    if c and mline:
        return (c.group(1), int(mline.group(1)))
    return None


def point_sdp_at(sdp: str, addr: Address) -> str:
    """``sdp`` with one UDP host candidate at ``addr`` (the others dropped) and the
    ``c=`` / ``m=audio`` port pointing there too, so the far end sends only to ``addr``."""
    host, port = addr
    out: list[str] = []
    placed = False
    eol = "\r\n" if "\r\n" in sdp else "\n"
    for line in sdp.splitlines():
        m = _CANDIDATE.match(line)
        if m:
            if placed or m.group(2).lower() != "udp":
                continue
            line = f"{m.group(1)}{m.group(2)}{m.group(3)}{host} {port} typ host"
            placed = True
        elif line.startswith("c=IN IP"):
            line = f"c=IN IP4 {host}"
        elif line.startswith("m=audio "):
            parts = line.split(" ")
            parts[1] = str(port)
            line = " ".join(parts)
        elif line.startswith("a=rtcp:"):
            line = f"a=rtcp:{port} IN IP4 {host}"
        out.append(line)
    if not placed:
        # No candidate (an ICE-less answer): add one after the m= section's ICE lines.
        for i, line in enumerate(out):
            if line.startswith("a=ice-pwd:"):
                out.insert(i + 1, f"a=candidate:1 1 udp 2130706431 {host} {port} typ host")
                break
    return eol.join(out) + eol
