"""The sandbox's test numbers, and the audio bridge between two legs.

======== ====================================================================================
number   behaviour
======== ====================================================================================
echo     answers and sends back what it hears (about 20-60 ms later)
tone     answers and plays a steady sine (440 Hz by default, ``SandboxConfig.tone_hz``)
ivr      answers, collects DTMF sent as SIP INFO (``application/dtmf-relay``) or RFC 4733,
         and confirms every digit twice: as audio (the digit's DTMF tone pair, 200 ms) and as
         an INFO ``application/dtmf-relay`` (``Signal=<d>``) carrying the headers
         ``X-Sandbox-Digits`` (every digit so far) and ``X-Sandbox-Dtmf-Source``
         (``info`` or ``rfc4733``, how the digit arrived)
busy     rejects with 486 Busy Here
noanswer rings (180) until cancelled
======== ====================================================================================
"""

from __future__ import annotations

import collections
import logging
import math
import time
from collections.abc import Callable

import numpy as np

from ..media import AudioSink, AudioSource, SilenceSource, ToneSource
from ..media.analysis import goertzel_power, rms
from ..media.pcm import Samples, samples_per_frame
from ..media.playout import PlayoutBuffer
from ..sip.calls import InfoReceived, parse_dtmf_relay
from .legs import Leg


__all__ = [
    "DTMF_FREQUENCIES",
    "TEST_NUMBERS",
    "Bridge",
    "DigitToneSource",
    "EchoApp",
    "IvrApp",
    "NumberApp",
    "RelayBuffer",
    "ToneApp",
    "detect_dtmf",
    "make_app",
]

logger = logging.getLogger(__name__)

#: The sandbox's test numbers (dial them as the user part: ``sip:echo@<domain>``).
TEST_NUMBERS = ("echo", "tone", "ivr", "busy", "noanswer")

#: ITU-T Q.23 DTMF pairs (low, high) in Hz.
DTMF_FREQUENCIES: dict[str, tuple[float, float]] = {
    d: (low, high)
    for row, low in zip(("123A", "456B", "789C", "*0#D"), (697.0, 770.0, 852.0, 941.0), strict=True)
    for d, high in zip(row, (1209.0, 1336.0, 1477.0, 1633.0), strict=True)
}

_DTMF_TYPES = ("application/dtmf-relay", "application/dtmf")


class RelayBuffer(AudioSink, AudioSource):
    """A sink on one session feeding a source on another (or the same: echo).

    The audio waits in a :class:`~exotel_voice.media.playout.PlayoutBuffer` (the playout
    policy every place that plays audio out shares): a small depth that follows the
    arrival jitter, concealment instead of silence when the far end's audio is late,
    gentle compression when it runs deep, and at most ``max_ms`` buffered.
    """

    def __init__(self, max_ms: int = 200, *, clock: Callable[[], float] = time.monotonic) -> None:
        AudioSource.__init__(self)
        self.playout = PlayoutBuffer(max_depth_ms=max_ms, clock=clock)
        self.frames_in = 0

    def write(self, samples: Samples, sample_rate: int) -> None:
        self.frames_in += 1
        self.playout.push(samples, sample_rate)

    def read(self, sample_rate: int) -> Samples | None:
        return self.playout.pull(sample_rate)


class DigitToneSource(AudioSource):
    """Plays queued DTMF digits as their tone pairs (``tone_ms`` each, ``gap_ms`` apart)."""

    def __init__(self, *, tone_ms: int = 200, gap_ms: int = 100, amplitude: float = 0.3) -> None:
        super().__init__()
        self.tone_ms = tone_ms
        self.gap_ms = gap_ms
        self.amplitude = amplitude
        self._queue: collections.deque[str] = collections.deque()
        self._digit: str | None = None
        self._elapsed_ms = 0

    def enqueue(self, digit: str) -> None:
        """Play ``digit`` after the ones already queued."""
        if digit not in DTMF_FREQUENCIES:
            raise ValueError(f"not a DTMF digit: {digit!r}")
        self._queue.append(digit)

    def read(self, sample_rate: int) -> Samples | None:
        n = samples_per_frame(sample_rate)
        if self._digit is None:
            if not self._queue:
                return np.zeros(n, dtype=np.int16)
            self._digit = self._queue.popleft()
            self._elapsed_ms = 0
        start = self._elapsed_ms
        self._elapsed_ms += 20
        if start >= self.tone_ms:
            if self._elapsed_ms >= self.tone_ms + self.gap_ms:
                self._digit = None
            return np.zeros(n, dtype=np.int16)
        low, high = DTMF_FREQUENCIES[self._digit]
        t = (np.arange(n) + start * sample_rate // 1000) / sample_rate
        wave = np.sin(2 * math.pi * low * t) + np.sin(2 * math.pi * high * t)
        return (wave * (self.amplitude * 32767.0 / 2)).astype(np.int16)


class NumberApp:
    """What answers a test number: its audio source, and what it does once connected.

    Attributes:
        name: the test number.
    """

    name = ""

    def source(self) -> AudioSource:
        """What the sandbox sends on the leg."""
        return SilenceSource()

    def attach(self, leg: Leg) -> None:
        """Start behaving on a connected leg (its media session exists)."""


class EchoApp(NumberApp):
    """Sends back what it hears."""

    name = "echo"

    def __init__(self) -> None:
        self.buffer = RelayBuffer(max_ms=200)

    def source(self) -> AudioSource:
        return self.buffer

    def attach(self, leg: Leg) -> None:
        assert leg.media is not None
        leg.media.add_sink(self.buffer)


class ToneApp(NumberApp):
    """Plays a steady tone."""

    name = "tone"

    def __init__(self, frequency: float) -> None:
        self.frequency = frequency

    def source(self) -> AudioSource:
        return ToneSource(self.frequency, 0.5)


class IvrApp(NumberApp):
    """Collects DTMF (INFO and RFC 4733) and confirms each digit by audio and by INFO.

    Attributes:
        digits: every digit received, in order.
        received: ``(digit, source)`` pairs, ``source`` being ``"info"`` or ``"rfc4733"``.
    """

    name = "ivr"

    def __init__(self) -> None:
        self.tones = DigitToneSource()
        self.received: list[tuple[str, str]] = []
        self._listeners: list[Callable[[str, str], None]] = []

    @property
    def digits(self) -> str:
        """The digits received so far, as a string."""
        return "".join(d for d, _ in self.received)

    def add_listener(self, callback: Callable[[str, str], None]) -> None:
        """Call ``callback(digit, source)`` for every digit received from now on."""
        self._listeners.append(callback)

    def source(self) -> AudioSource:
        return self.tones

    def attach(self, leg: Leg) -> None:
        assert leg.media is not None
        leg.info_listeners.append(self._on_info)
        leg.media.add_dtmf_listener(lambda digit: self._digit(leg, digit, "rfc4733"))

    def _on_info(self, leg: Leg, info: InfoReceived) -> None:
        content_type = (info.content_type or "").lower()
        if content_type == "application/dtmf-relay":
            digit = parse_dtmf_relay(info.body)
        elif content_type == "application/dtmf":
            text = info.body.decode("utf-8", "replace").strip().upper()
            digit = text if text in DTMF_FREQUENCIES else None
        else:
            return
        if digit is not None:
            self._digit(leg, digit, "info")

    def _digit(self, leg: Leg, digit: str, source: str) -> None:
        self.received.append((digit, source))
        logger.info("%r: ivr got %s by %s (digits %s)", leg, digit, source, self.digits)
        self.tones.enqueue(digit)
        if not leg.ended:
            leg.send_info(
                "application/dtmf-relay",
                f"Signal={digit}\r\nDuration={self.tones.tone_ms}".encode(),
                headers=[("X-Sandbox-Digits", self.digits), ("X-Sandbox-Dtmf-Source", source)],
            )
        for listener in list(self._listeners):
            listener(digit, source)


def make_app(name: str, *, tone_hz: float) -> NumberApp | None:
    """The app answering test number ``name``; ``None`` for busy/noanswer (no answer)."""
    if name == "echo":
        return EchoApp()
    if name == "tone":
        return ToneApp(tone_hz)
    if name == "ivr":
        return IvrApp()
    return None


class Bridge:
    """Connects two answered legs: audio both ways, DTMF (INFO and RFC 4733) relayed."""

    def __init__(self, a: Leg, b: Leg) -> None:
        self.a = a
        self.b = b
        self.a_to_b = RelayBuffer()
        self.b_to_a = RelayBuffer()

    async def start(self) -> None:
        """Start relaying (both legs must have media)."""
        assert self.a.media is not None and self.b.media is not None
        self.a.media.add_sink(self.a_to_b)
        self.b.media.add_sink(self.b_to_a)
        await self.a.media.set_source(self.b_to_a)
        await self.b.media.set_source(self.a_to_b)
        for src, dst in ((self.a, self.b), (self.b, self.a)):
            src.info_listeners.append(self._relay_info(dst))
            src.media.add_dtmf_listener(self._relay_rfc4733(dst))  # type: ignore[union-attr]

    @staticmethod
    def _relay_info(dst: Leg) -> Callable[[Leg, InfoReceived], None]:
        def relay(_: Leg, info: InfoReceived) -> None:
            if (info.content_type or "").lower() in _DTMF_TYPES and dst.connected:
                dst.send_info(info.content_type or "", info.body)

        return relay

    @staticmethod
    def _relay_rfc4733(dst: Leg) -> Callable[[str], None]:
        def relay(digit: str) -> None:
            if dst.connected and dst.media is not None and dst.media.telephone_event:
                dst.sandbox.spawn(dst.media.send_dtmf(digit), f"{dst!r} DTMF relay")

        return relay


_LOWS = (697.0, 770.0, 852.0, 941.0)
_HIGHS = (1209.0, 1336.0, 1477.0, 1633.0)
_BY_PAIR = {pair: digit for digit, pair in DTMF_FREQUENCIES.items()}


def detect_dtmf(pcm: Samples, sample_rate: int, *, min_level: float = 0.01) -> str:
    """The DTMF digits audible in ``pcm`` (mono int16), in order.

    Looks at 40 ms windows every 20 ms: a window holds a digit when its strongest row and
    column tones together carry most of its power (over 60%, twist within 8 dB). A digit
    is reported once per tone burst: it must be absent (silence or another digit) between
    two reports of the same digit.

    Args:
        pcm: the audio.
        sample_rate: its rate.
        min_level: windows quieter than this RMS (fraction of full scale) are silence.
    """
    window = sample_rate * 40 // 1000
    hop = sample_rate * 20 // 1000
    out: list[str] = []
    previous: str | None = None
    for start in range(0, max(0, pcm.size - window + 1), hop):
        chunk = pcm[start : start + window]
        level = rms(chunk)
        digit: str | None = None
        if level >= min_level:
            lows = [goertzel_power(chunk, sample_rate, f) for f in _LOWS]
            highs = [goertzel_power(chunk, sample_rate, f) for f in _HIGHS]
            low_i = int(np.argmax(lows))
            high_i = int(np.argmax(highs))
            low_p, high_p = lows[low_i], highs[high_i]
            # A sine of amplitude A: RMS^2 = A^2/2, Goertzel power A^2/4 (see detect_tone).
            share = 2.0 * (low_p + high_p) / (level * level)
            twist_ok = min(low_p, high_p) > 0 and max(low_p, high_p) / min(low_p, high_p) < 6.3
            if share > 0.6 and twist_ok:
                digit = _BY_PAIR[(_LOWS[low_i], _HIGHS[high_i])]
        if digit is not None and digit != previous:
            out.append(digit)
        previous = digit
    return "".join(out)
