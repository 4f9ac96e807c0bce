"""RFC 4733 DTMF over RTP, and the only module that reaches into aiortc's RTP internals.

aiortc has no DTMF (aiortc#30, closed *wontfix*), so we build it here:

* :class:`TelephoneEvent` packs and parses the 4-byte RFC 4733 §2.3 payload.
* :class:`DtmfSender` turns digits into telephone-event packets.  It does not run a
  clock or a sequence counter of its own: while a digit plays it *replaces* the
  outgoing 20 ms audio packets one for one, keeping their sequence numbers and
  deriving durations from their RTP timestamps.  So events share the audio SSRC,
  sequence space and timestamp clock, as RFC 4733 §2.1 requires, and pace
  themselves at the audio packet interval.  Each event starts with the marker bit,
  keeps the timestamp of its first packet, grows its duration each packet, and
  ends with the E bit sent three times (§2.5.1.4).
* :class:`DtmfReceiver` recognises telephone-event packets by payload type and
  reports each event once, de-duplicating on (SSRC, timestamp) (§2.5.2.2).
* :class:`RtpTap` hooks one ``RTCDtlsTransport`` so both can see plain (pre-SRTP /
  post-SRTP) RTP, and counts packets for :meth:`MediaSession.stats`.  On the lean path
  it also feeds the call's :class:`~exotel_voice.media.rtcp.RtcpSession` (every RTP
  packet each way, the far end's decrypted RTCP) and sends our own reports in place of
  aiortc's sender reports (:attr:`RtpTap.rtcp`).

The aiortc internals this needs (shadowing ``RTCDtlsTransport._send_rtp`` and
``._handle_rtp_data`` per instance, the sender's SSRC, and the lean path's short cuts
once DTLS-SRTP is up: :meth:`RtpTap.receive_directly` decrypts SRTP where aioice
hands over the datagram, :meth:`RtpTap.send_now` protects and writes our packets to
the nominated pair's socket without the coroutine chain) are reached only through
:mod:`exotel_voice.media._aiortc_compat`, which checks them at import.  Without them
the session does not build an :class:`RtpTap` at all (no RFC 4733 DTMF).
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..exceptions import InvalidDTMF, MediaError
from . import _aiortc_compat as compat
from .rtcp import RtcpError, RtcpSession


__all__ = [
    "DIGIT_EVENTS",
    "DtmfReceiver",
    "DtmfSender",
    "RtpTap",
    "TelephoneEvent",
    "negotiated_codec",
    "parse_digits",
]

logger = logging.getLogger(__name__)

#: RFC 4733 §3.2 event codes of the sixteen DTMF digits.
DIGIT_EVENTS: dict[str, int] = {
    **{str(d): d for d in range(10)},
    "*": 10,
    "#": 11,
    "A": 12,
    "B": 13,
    "C": 14,
    "D": 15,
}
EVENT_DIGITS: dict[int, str] = {code: digit for digit, code in DIGIT_EVENTS.items()}

#: Number of times the final (E bit) packet of each event is sent.
END_PACKETS = 3
_RTP_HEADER = 12


def parse_digits(digits: str) -> list[str]:
    """Validate ``digits`` and return them upper-cased, one per element.

    Raises:
        InvalidDTMF: naming the first character outside ``0-9``, ``A-D``, ``*``, ``#``.
    """
    if not digits:
        raise InvalidDTMF("no DTMF digits given")
    result = []
    for char in digits:
        digit = char.upper()
        if digit not in DIGIT_EVENTS:
            raise InvalidDTMF(f"invalid DTMF digit {char!r}: use 0-9, A-D, * or #")
        result.append(digit)
    return result


@dataclass(frozen=True)
class TelephoneEvent:
    """The RFC 4733 §2.3 payload: event code, end bit, volume (-dBm0) and duration (ticks)."""

    event: int
    end: bool
    volume: int
    duration: int

    def pack(self) -> bytes:
        return struct.pack(
            "!BBH",
            self.event,
            (0x80 if self.end else 0) | (self.volume & 0x3F),
            min(self.duration, 0xFFFF),
        )

    @classmethod
    def unpack(cls, payload: bytes) -> TelephoneEvent:
        if len(payload) < 4:
            raise ValueError("telephone-event payload is shorter than 4 bytes")
        event, flags, duration = struct.unpack_from("!BBH", payload)
        return cls(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4 demultiplexing: RTCP packet types 192-223 sit in the second byte."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def rtp_header_length(data: bytes) -> int:
    """Length of the RTP header including CSRCs and the header extension."""
    if len(data) < _RTP_HEADER or data[0] >> 6 != 2:
        raise ValueError("not an RTP packet")
    length = _RTP_HEADER + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        if len(data) < length + 4:
            raise ValueError("truncated RTP header extension")
        length += 4 + 4 * struct.unpack_from("!H", data, length + 2)[0]
    if len(data) < length:
        raise ValueError("truncated RTP header")
    return length


def rtp_payload(data: bytes) -> bytes:
    """The payload of an RTP packet, without padding."""
    start = rtp_header_length(data)
    end = len(data)
    if data[0] & 0x20 and end > start:
        end -= data[-1]
    return data[start:end]


class _Phase(enum.Enum):
    IDLE = 0
    TONE = 1
    ENDING = 2
    GAP = 3


@dataclass
class _Digit:
    event: int
    duration_ms: int
    gap_ms: int
    done: asyncio.Future[None]


class DtmfSender:
    """Replaces outgoing audio packets with RFC 4733 events while digits are queued.

    Call :meth:`configure` after each negotiation and :meth:`process` with every
    outgoing audio RTP packet (plain RTP, before SRTP).
    """

    def __init__(self, *, volume: int = 10) -> None:
        self.volume = volume
        self.payload_type: int | None = None
        self.event_clock = 8000
        self.audio_clock = 8000
        self._queue: collections.deque[_Digit] = collections.deque()
        self._phase = _Phase.IDLE
        self._event_ts = 0
        self._end_duration = 0
        self._ends_sent = 0
        self._gap_start: int | None = None
        self._gap_ms = 0
        self._first = False
        self._last_ts: int | None = None
        self._frame_ticks: int | None = None
        self.events_sent = 0

    def configure(self, *, payload_type: int | None, event_clock: int, audio_clock: int) -> None:
        """Set the negotiated telephone-event payload type and clocks (``None`` disables)."""
        self.payload_type = payload_type
        self.event_clock = event_clock
        self.audio_clock = audio_clock
        self._frame_ticks = None

    @property
    def busy(self) -> bool:
        """Whether digits are queued or playing."""
        return bool(self._queue) or self._phase is not _Phase.IDLE

    def enqueue(
        self, digits: list[str], *, duration_ms: int, gap_ms: int
    ) -> list[asyncio.Future[None]]:
        """Queue validated digits; each future resolves once its last end packet is sent."""
        if self.payload_type is None:
            raise MediaError("telephone-event was not negotiated with the remote party")
        loop = asyncio.get_running_loop()
        futures = []
        for digit in digits:
            future: asyncio.Future[None] = loop.create_future()
            self._queue.append(_Digit(DIGIT_EVENTS[digit], duration_ms, gap_ms, future))
            futures.append(future)
        return futures

    def cancel(self, exc: BaseException) -> None:
        """Fail every queued digit with ``exc`` and return to idle."""
        while self._queue:
            digit = self._queue.popleft()
            if not digit.done.done():
                digit.done.set_exception(exc)
                # The caller may have stopped waiting; don't warn about it.
                digit.done.exception()
        self._phase = _Phase.IDLE

    def process(self, data: bytes) -> bytes:
        """Return the packet to send in place of the audio packet ``data``."""
        if len(data) < _RTP_HEADER:
            return data
        ts = struct.unpack_from("!I", data, 4)[0]
        if self._last_ts is not None:
            delta = (ts - self._last_ts) & 0xFFFFFFFF
            if 0 < delta <= self.audio_clock // 10:
                self._frame_ticks = delta
        self._last_ts = ts
        if self.payload_type is None or not self.busy:
            return data

        if self._phase is _Phase.GAP:
            if self._gap_start is None:
                self._gap_start = ts
            gap_ticks = self._gap_ms * self.audio_clock // 1000
            if (ts - self._gap_start) & 0xFFFFFFFF < gap_ticks:
                return data
            self._phase = _Phase.IDLE
            self._gap_start = None

        if self._phase is _Phase.IDLE:
            if not self._queue:
                return data
            self._phase = _Phase.TONE
            self._event_ts = ts
            self._first = True

        digit = self._queue[0]
        try:
            header_length = rtp_header_length(data)
        except ValueError:
            return data

        if self._phase is _Phase.TONE:
            frame = self._frame_ticks or self.audio_clock // 50
            elapsed = ((ts - self._event_ts) & 0xFFFFFFFF) + frame
            end = elapsed >= digit.duration_ms * self.audio_clock // 1000
            duration = elapsed * self.event_clock // self.audio_clock
            marker = self._first
            self._first = False
            if end:
                self._phase = _Phase.ENDING
                self._end_duration = duration
                self._ends_sent = 1
            return self._build(data, header_length, marker, digit.event, end, duration)

        # ENDING: repeat the final packet until END_PACKETS have gone out.
        packet = self._build(data, header_length, False, digit.event, True, self._end_duration)
        self._ends_sent += 1
        if self._ends_sent >= END_PACKETS:
            self._queue.popleft()
            self.events_sent += 1
            if not digit.done.done():
                digit.done.set_result(None)
            self._phase = _Phase.GAP
            self._gap_start = None
            self._gap_ms = digit.gap_ms
            if not self._queue:
                self._phase = _Phase.IDLE
        return packet

    def _build(
        self, data: bytes, header_length: int, marker: bool, event: int, end: bool, duration: int
    ) -> bytes:
        assert self.payload_type is not None
        payload = TelephoneEvent(event, end, self.volume, duration).pack()
        return (
            bytes([data[0] & ~0x20 & 0xFF, (0x80 if marker else 0) | self.payload_type])
            + data[2:4]
            + struct.pack("!I", self._event_ts)
            + data[8:header_length]
            + payload
        )


class DtmfReceiver:
    """Reports each RFC 4733 DTMF event once, as soon as its first packet arrives."""

    def __init__(self, on_digit: Callable[[str], None]) -> None:
        self.payload_types: set[int] = set()
        self._on_digit = on_digit
        self._seen: collections.deque[tuple[int, int]] = collections.deque(maxlen=64)

    def handle(self, data: bytes) -> bool:
        """Consume ``data`` if it is a telephone-event packet; return whether it was."""
        if len(data) < _RTP_HEADER or (data[1] & 0x7F) not in self.payload_types:
            return False
        try:
            event = TelephoneEvent.unpack(rtp_payload(data))
        except ValueError:
            return True
        key = struct.unpack_from("!II", data, 4)  # (timestamp, ssrc)
        if key in self._seen:
            return True
        self._seen.append(key)
        digit = EVENT_DIGITS.get(event.event)
        if digit is not None:
            self._on_digit(digit)
        return True


class RtpTap:
    """Shadows ``_send_rtp`` and ``_handle_rtp_data`` on one aiortc ``RTCDtlsTransport``
    (through :func:`~exotel_voice.media._aiortc_compat.shadow_rtp`)."""

    def __init__(
        self, transport: Any, *, ssrc: int, sender: DtmfSender, receiver: DtmfReceiver
    ) -> None:
        self.transport = transport
        self.ssrc = ssrc
        self.packets_sent = 0
        self.bytes_sent = 0
        self.packets_received = 0
        self.bytes_received = 0
        #: SRTP packets decrypted by the direct receive path (:meth:`receive_directly`).
        self.direct_received = 0
        self._sender = sender
        self._receiver = receiver
        #: Takes audio packets off aiortc's path when set (the lean receive path).
        self.media: Callable[[bytes], bool] | None = None
        #: The lean path's RTCP (see :mod:`exotel_voice.media.rtcp`): when set, every RTP
        #: packet each way and the far end's RTCP feed it, and aiortc's own SR/RR are not
        #: sent (ours are, by :meth:`send_rtcp`; aiortc's BYE still is).
        self.rtcp: RtcpSession | None = None
        #: ``payload type -> clock rate`` of the far end's audio (for the RTCP jitter).
        self.receive_clocks: dict[int, int] = {}
        self._send_original, self._handle_original = compat.shadow_rtp(
            transport, self._send_rtp, self._handle_rtp_data
        )
        self._rtcp_original = compat.shadow_rtcp(transport, self._handle_rtcp_data)
        self._rtcp_errors = 0
        self._loop = asyncio.get_running_loop()
        self._undo_receive: Callable[[], None] | None = None

    def detach(self) -> None:
        """Remove the shadows, restoring aiortc's and aioice's own methods."""
        compat.unshadow_rtp(self.transport)
        if self._undo_receive is not None:
            self._undo_receive()
            self._undo_receive = None

    async def _send_rtp(self, data: bytes) -> None:
        if not is_rtcp(data):
            if len(data) >= _RTP_HEADER and struct.unpack_from("!I", data, 8)[0] == self.ssrc:
                data = self._process(data)
        elif self.rtcp is not None and data[1] in (200, 201):
            return  # aiortc's SR (or RR): our own reports replace them
        await self._send_original(data)

    async def send_rtcp(self, data: bytes) -> None:
        """Send our own plain compound RTCP packet (SRTCP, then ICE)."""
        await self._send_original(data)

    def _process(self, data: bytes) -> bytes:
        out = self._sender.process(data)
        self.packets_sent += 1
        self.bytes_sent += len(out) - _RTP_HEADER
        rtcp = self.rtcp
        if rtcp is not None:
            try:
                payload = len(rtp_payload(out))
            except ValueError:
                payload = len(out) - _RTP_HEADER
            # A telephone event keeps its start timestamp: the SR follows the audio clock.
            timestamp = struct.unpack_from("!I", data, 4)[0] if out is data else None
            rtcp.rtp_sent(payload, timestamp, self._loop.time())
        return out

    def send_now(self, data: bytes) -> bool:
        """Send our own plain RTP packet ``data`` at once, without awaiting; ``False`` if
        that cannot be done here (then await ``compat.send_rtp(transport, data)``).

        The same as the awaited path (DTMF replacement, counters, SRTP, the DTLS
        transport's counters), minus the coroutine chain: the packet is protected
        with the transport's SRTP session and written to the nominated candidate
        pair's socket (:func:`~exotel_voice.media._aiortc_compat.send_directly`).
        """
        return compat.send_directly(self.transport, data, self._process)

    def receive_directly(self) -> None:
        """Decrypt incoming SRTP where aioice hands the datagram over (lean path).

        aioice queues every non-STUN datagram for the DTLS transport's receive task,
        which then awaits its way through ``recv()``, SRTP and ``_handle_rtp_data``: a
        queue, a task wake-up and several coroutines per packet.  With
        :func:`~exotel_voice.media._aiortc_compat.take_datagrams`, SRTP (not SRTCP)
        packets are decrypted and handed to :meth:`take` right there, once DTLS-SRTP
        is up.  Everything else (DTLS records, including alerts and close_notify,
        SRTCP, and any packet before the keys exist) takes aioice's queue as before;
        STUN (connectivity checks, consent) never reaches it.  Nothing happens when
        the feature is off: packets take the awaited path through the tap.
        """
        if self._undo_receive is None:
            self._undo_receive = compat.take_datagrams(
                self.transport, self._take_direct, self._handle_original
            )

    def _take_direct(self, data: bytes) -> bool:
        self.direct_received += 1
        return self.take(data)

    def take(self, data: bytes) -> bool:
        """Count one decrypted RTP packet; consume it if it is DTMF or (lean path) audio."""
        if len(data) < _RTP_HEADER:
            return False
        self.packets_received += 1
        self.bytes_received += len(data) - _RTP_HEADER
        rtcp = self.rtcp
        if rtcp is not None and self.receive_clocks:
            seq, timestamp, ssrc = struct.unpack_from("!HII", data, 2)
            clock = self.receive_clocks.get(data[1] & 0x7F)
            rtcp.rtp_received(
                ssrc, seq, timestamp, self._loop.time(),
                clock or next(iter(self.receive_clocks.values())), audio=clock is not None,
            )
        if self._receiver.handle(data):
            return True
        return self.media is not None and self.media(data)

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        if self.take(data):
            return
        await self._handle_original(data, arrival_time_ms)

    async def _handle_rtcp_data(self, data: bytes) -> None:
        rtcp = self.rtcp
        if rtcp is not None:
            try:
                rtcp.handle(data, time.time(), self._loop.time())
            except RtcpError as exc:
                self._rtcp_errors += 1
                if self._rtcp_errors <= 3:  # a broken peer repeats itself: say it thrice
                    logger.warning("! media: ignoring the far end's RTCP packet: %s", exc)
            except Exception:  # never let our RTCP end aiortc's receive task
                logger.exception("! media: cannot handle the far end's RTCP packet")
        if self._rtcp_original is not None:
            await self._rtcp_original(data)


def negotiated_codec(codecs: list[Any]) -> tuple[str, int, int] | None:
    """``(name, clock rate, payload type)`` of the codec the sender encodes with: the first
    of the negotiated ``codecs`` (:func:`~exotel_voice.media._aiortc_compat.negotiated_codecs`).
    """
    if not codecs:
        return None
    codec = codecs[0]
    return str(codec.name), int(codec.clockRate), int(codec.payloadType)
