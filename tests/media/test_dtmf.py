"""RFC 4733 packetisation without a network: DtmfSender and DtmfReceiver on synthetic RTP.

The end-to-end test (digits over a real aiortc connection) is test_session.py.
"""

from __future__ import annotations

import struct

import pytest

from exotel_voice.exceptions import MediaError
from exotel_voice.media.dtmf import DtmfReceiver, DtmfSender, TelephoneEvent, rtp_payload


SSRC = 0x11223344
AUDIO_PT = 0


def audio_packet(seq: int, ts: int, *, extension: bool = True) -> bytes:
    first = 0x80 | (0x10 if extension else 0)
    header = struct.pack("!BBHII", first, AUDIO_PT, seq, ts, SSRC)
    if extension:  # one-byte header extension (RFC 8285) with a mid, padded to 4 bytes
        header += struct.pack("!HH", 0xBEDE, 1) + bytes([0x10, ord("0"), 0, 0])
    return header + bytes(160)


def fields(packet: bytes) -> tuple[bool, int, int, int, TelephoneEvent]:
    marker = bool(packet[1] & 0x80)
    pt = packet[1] & 0x7F
    seq, ts = struct.unpack_from("!HI", packet, 2)
    return marker, pt, seq, ts, TelephoneEvent.unpack(rtp_payload(packet))


async def test_sender_replaces_audio_packets_with_one_event() -> None:
    sender = DtmfSender(volume=10)
    sender.configure(payload_type=101, event_clock=8000, audio_clock=8000)
    (done,) = sender.enqueue(["5"], duration_ms=100, gap_ms=40)
    out = [sender.process(audio_packet(1000 + i, 160 * i)) for i in range(12)]
    events = [p for p in out if p[1] & 0x7F == 101]
    # 100 ms at 20 ms per packet: 4 growing packets, then the end packet three times.
    assert len(events) == 5 + 2
    parsed = [fields(p) for p in events]
    assert [m for m, *_ in parsed] == [True] + [False] * 6
    assert {ts for *_, ts, _ in parsed} == {0}
    assert [seq for _, _, seq, _, _ in parsed] == list(range(1000, 1007))
    assert [e.duration for *_, e in parsed] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for *_, e in parsed] == [False] * 4 + [True] * 3
    assert all(e.event == 5 and e.volume == 10 for *_, e in parsed)
    # The header extension is kept intact.
    assert events[0][12:20] == audio_packet(0, 0)[12:20]
    assert done.done() and sender.events_sent == 1
    # Audio resumes unchanged afterwards.
    assert out[7] == audio_packet(1007, 160 * 7)


async def test_sender_scales_durations_between_clocks_and_honours_gap() -> None:
    sender = DtmfSender()
    sender.configure(payload_type=126, event_clock=8000, audio_clock=48000)
    sender.enqueue(["1", "2"], duration_ms=40, gap_ms=60)
    out = [sender.process(audio_packet(i, 960 * i, extension=False)) for i in range(16)]
    kinds = ["E" if p[1] & 0x7F == 126 else "a" for p in out]
    # digit 1: 2 packets + 2 extra end packets, gap 60 ms = 3 audio packets, digit 2: 4 packets
    assert "".join(kinds) == "EEEE" + "aaa" + "EEEE" + "a" * 5
    first = fields(out[0])
    assert first[4].duration == 160  # 20 ms at 8 kHz, not 960
    second = fields(out[7])
    assert second[0] and second[3] == 960 * 7 and second[4].event == 2


async def test_sender_without_negotiation_refuses_and_cancel_fails_futures() -> None:
    sender = DtmfSender()
    with pytest.raises(MediaError):
        sender.enqueue(["1"], duration_ms=100, gap_ms=50)
    sender.configure(payload_type=101, event_clock=8000, audio_clock=8000)
    (future,) = sender.enqueue(["1"], duration_ms=100, gap_ms=50)
    sender.cancel(MediaError("closed"))
    assert isinstance(future.exception(), MediaError)
    assert not sender.busy
    packet = audio_packet(1, 0)
    assert sender.process(packet) == packet


def test_receiver_deduplicates_by_timestamp() -> None:
    digits: list[str] = []
    receiver = DtmfReceiver(digits.append)
    receiver.payload_types = {101}

    def event_packet(seq: int, ts: int, event: int, end: bool) -> bytes:
        header = struct.pack("!BBHII", 0x80, 101, seq, ts, SSRC)
        return header + TelephoneEvent(event, end, 10, 160).pack()

    for seq in range(6):
        assert receiver.handle(event_packet(seq, 1000, 11, seq >= 3))
    assert receiver.handle(event_packet(6, 2000, 11, False))  # same digit, new event
    assert receiver.handle(event_packet(7, 3000, 3, False))
    assert not receiver.handle(audio_packet(8, 3160))
    assert digits == ["#", "#", "3"]
