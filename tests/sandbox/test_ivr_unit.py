"""IvrApp's confirmations (headers, bodies) and the DTMF tone tools, without media or I/O."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from exotel_voice.sandbox.numbers import DigitToneSource, IvrApp, RelayBuffer, detect_dtmf
from exotel_voice.sip.calls import CallSession, InfoReceived, SessionState, parse_dtmf_relay
from exotel_voice.sip.utils import make_request


class FakeMedia:
    def __init__(self) -> None:
        self.dtmf_listeners: list[Callable[[str], None]] = []

    def add_dtmf_listener(self, callback: Callable[[str], None]) -> Callable[[], None]:
        self.dtmf_listeners.append(callback)
        return lambda: None


class FakeLeg:
    """Just what IvrApp touches on a Leg."""

    def __init__(self) -> None:
        self.media = FakeMedia()
        self.info_listeners: list[Callable[[Any, Any], None]] = []
        self.ended = False
        self.sent: list[tuple[str, bytes, list[tuple[str, str]]]] = []

    def send_info(self, content_type: str, body: bytes, headers: Any = ()) -> None:
        self.sent.append((content_type, body, list(headers)))


def info(content_type: str, body: bytes) -> InfoReceived:
    """What the call layer reports for an INFO in the leg's call."""
    request = make_request("INFO", "sip:sandbox@127.0.0.1", from_="<sip:a@x>;tag=1",
                           to="<sip:ivr@x>;tag=2", call_id="c", cseq=2, body=body,
                           content_type=content_type)
    call = CallSession("i1", "incoming", request, SessionState.ESTABLISHED)
    digit = parse_dtmf_relay(body) if request.content_type == "application/dtmf-relay" else None
    return InfoReceived(call, request.content_type, request.body, digit)


def test_ivr_confirms_each_digit_with_headers() -> None:
    app, leg = IvrApp(), FakeLeg()
    app.attach(leg)  # type: ignore[arg-type]
    leg.info_listeners[0](leg, info("application/dtmf-relay", b"Signal=7\r\nDuration=240"))
    leg.media.dtmf_listeners[0]("#")
    leg.info_listeners[0](leg, info("application/dtmf", b"b"))
    leg.info_listeners[0](leg, info("text/plain", b"Signal=1"))  # not DTMF: ignored
    assert app.digits == "7#B"
    assert app.received == [("7", "info"), ("#", "rfc4733"), ("B", "info")]
    assert [s[0] for s in leg.sent] == ["application/dtmf-relay"] * 3
    assert leg.sent[0][1] == b"Signal=7\r\nDuration=200"
    assert dict(leg.sent[1][2]) == {"X-Sandbox-Digits": "7#", "X-Sandbox-Dtmf-Source": "rfc4733"}
    assert dict(leg.sent[2][2])["X-Sandbox-Digits"] == "7#B"


def test_digit_tones_are_detected_in_order() -> None:
    source = DigitToneSource()
    for digit in "0123456789*#ABCD":
        source.enqueue(digit)
    pcm = np.concatenate([source.read(8000) for _ in range(16 * 15 + 5)])
    assert detect_dtmf(pcm, 8000) == "0123456789*#ABCD"
    with pytest.raises(ValueError):
        source.enqueue("E")


def test_detect_dtmf_ignores_tones_noise_and_silence() -> None:
    t = np.arange(16000) / 16000
    assert detect_dtmf((np.sin(2 * np.pi * 1000 * t) * 8000).astype(np.int16), 16000) == ""
    noise = np.random.default_rng(7).normal(0, 4000, 16000).astype(np.int16)
    assert detect_dtmf(noise, 16000) == ""
    assert detect_dtmf(np.zeros(16000, np.int16), 16000) == ""


def test_relay_buffer_resamples_and_bounds_delay() -> None:
    buffer = RelayBuffer(max_ms=100)
    assert buffer.read(16000) is None  # nothing yet: the session sends silence
    for _ in range(20):  # 400 ms at 48 kHz, only the newest ~100 ms is kept
        buffer.write(np.full(960, 1000, np.int16), 48000)
    frames = [buffer.read(16000) for _ in range(10)]
    got = [f for f in frames if f is not None]
    # About 100 ms of what was written comes out; what follows is concealment fading out
    # (the relay's playout buffer conceals an underflow), then silence.
    full = [f for f in got if abs(float(np.median(f)) - 1000) < 30]
    assert 4 <= len(full) <= 6
    assert all(float(np.abs(f).max()) < 1000 for f in got[len(full) + 1 :])
    assert frames[-1] is None
    assert all(f.size == 320 for f in got)
