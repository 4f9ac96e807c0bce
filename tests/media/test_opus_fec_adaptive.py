"""Adaptive Opus FEC: the encoder's expected loss follows the far end's RTCP reports.

A call's Opus encoder starts at 0 % expected loss (libopus adds no LBRR: no extra bits
or encode time on a clean network); each report block the far end sends about our stream
moves it (media.opus.adapt_expected_loss), so in-band FEC appears as soon as the far
end loses our packets, and the far end rebuilds lost frames from it.
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from exotel_voice.media import MediaSession, opus
from exotel_voice.media.opus import (
    MAX_EXPECTED_LOSS_PERC,
    OpusEncoder,
    adapt_expected_loss,
)
from exotel_voice.media.pcm import Samples
from exotel_voice.media.sender import make_encoder
from exotel_voice.media.sources import AudioSource

from .conftest import FEATURES, LOOPBACK_MEDIA, connected_pair


needs_libopus = pytest.mark.skipif(opus.load() is None, reason="libopus not loadable")


def speech_like(rate: int, seconds: float = 1.0, start: int = 0) -> np.ndarray:
    """A voiced, gliding, amplitude-modulated signal (a stand-in for speech)."""
    t = (start + np.arange(int(rate * seconds))) / rate
    f0 = 140 + 20 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    return np.asarray(x * 4000 * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.int16)


def has_lbrr(packet: bytes) -> bool:
    lib = opus.load()
    if hasattr(lib, "opus_packet_has_lbrr"):
        return bool(lib.opus_packet_has_lbrr(packet, len(packet)) > 0)
    pytest.skip("libopus before 1.5 has no opus_packet_has_lbrr")


def lbrr_count(encoder: OpusEncoder, x: np.ndarray) -> int:
    return sum(has_lbrr(encoder.encode(x[i * 960 : (i + 1) * 960])) for i in range(x.size // 960))


# -- the policy ---------------------------------------------------------------------------


def fold(reports: list[float]) -> list[int]:
    estimate, out = 0.0, []
    for fraction in reports:
        estimate, percent = adapt_expected_loss(estimate, fraction)
        out.append(percent)
    return out


def test_policy_no_loss_no_fec() -> None:
    assert fold([0.0] * 5) == [0] * 5
    # A stray lost packet in a report interval (under 1 %) asks for no FEC either.
    assert fold([1 / 256, 0.0, 1 / 256]) == [0, 0, 0]


def test_policy_rises_with_the_first_lossy_report_and_fades_after() -> None:
    tenth = 26 / 256  # what a report block says for 10 % loss
    got = fold([tenth] * 4 + [0.0] * 12)
    rising, falling = got[:4], got[4:]
    assert rising[0] > 0  # the first report of loss already brings FEC
    assert rising == sorted(rising) and 8 <= rising[-1] <= 10
    assert falling == sorted(falling, reverse=True)
    assert falling[0] > 0  # one clean report does not drop it at once
    assert falling[-1] == 0  # a few do


def test_policy_is_capped() -> None:
    assert fold([1.0] * 6)[-1] == MAX_EXPECTED_LOSS_PERC
    assert max(fold([0.6, 0.0, 0.9, 0.3])) <= MAX_EXPECTED_LOSS_PERC


@pytest.mark.parametrize(
    ("estimate", "fraction"), [(0.0, -0.1), (0.0, 1.5), (-1.0, 0.0), (0.0, float("nan")),
                               (True, 0.0), (0.0, "0.1")],
)
def test_policy_rejects_what_is_not_a_fraction(estimate: object, fraction: object) -> None:
    with pytest.raises(ValueError, match="fraction from 0 to 1"):
        adapt_expected_loss(estimate, fraction)  # type: ignore[arg-type]


# -- the encoder ----------------------------------------------------------------------------


@needs_libopus
def test_lbrr_only_while_loss_is_expected() -> None:
    x = speech_like(48000, 1.0)
    encoder = OpusEncoder(packet_loss_perc=0)
    assert encoder.fec and encoder.packet_loss_perc == 0
    assert lbrr_count(encoder, x) == 0  # FEC enabled, but nothing expected: no LBRR

    encoder.set_packet_loss_perc(10)
    assert encoder.packet_loss_perc == 10
    assert lbrr_count(encoder, speech_like(48000, 1.0, start=48000)) > 25  # of 50 frames

    encoder.set_packet_loss_perc(0)
    y = speech_like(48000, 1.0, start=96000)
    encoder.encode(y[:960])  # the frame after the change may still carry the last LBRR
    assert lbrr_count(encoder, y[960:]) == 0


@needs_libopus
@pytest.mark.parametrize("bad", [-1, 101, 10.0, True, "10", None])
def test_set_packet_loss_perc_rejects_bad_values(bad: object) -> None:
    encoder = OpusEncoder(packet_loss_perc=5)
    with pytest.raises(ValueError, match="whole percentage from 0 to 100"):
        encoder.set_packet_loss_perc(bad)  # type: ignore[arg-type]
    assert encoder.packet_loss_perc == 5


@needs_libopus
def test_set_from_another_thread_while_encoding() -> None:
    """The loop thread sets the loss while the worker thread encodes: every value set is
    the one libopus ends up with, and encoding never fails."""
    encoder = OpusEncoder(packet_loss_perc=0)
    x = speech_like(48000, 0.5)
    stop = threading.Event()
    errors: list[BaseException] = []

    def encode() -> None:
        try:
            while not stop.is_set():
                for i in range(x.size // 960):
                    encoder.encode(x[i * 960 : (i + 1) * 960])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=encode)
    worker.start()
    try:
        for percent in [5, 0, 20, 10, 0, 15] * 20:
            encoder.set_packet_loss_perc(percent)
    finally:
        stop.set()
        worker.join()
    assert not errors
    encoder.set_packet_loss_perc(12)
    encoder.encode(x[:960])
    assert encoder._applied_loss == 12


@needs_libopus
def test_a_calls_encoder_starts_without_fec() -> None:
    encoder = make_encoder("opus")
    assert encoder is not None and encoder.set_packet_loss_perc is not None
    x = speech_like(48000, 0.6)
    assert not any(has_lbrr(encoder.encode(x[i * 960 : (i + 1) * 960])) for i in range(30))


# -- two sessions -----------------------------------------------------------------------------


class SpeechSource(AudioSource):
    def __init__(self) -> None:
        super().__init__()
        self._at = 0

    def read(self, sample_rate: int) -> Samples | None:
        n = sample_rate // 50
        frame = speech_like(sample_rate, n / sample_rate, start=self._at * n)
        self._at += 1
        return frame


@needs_libopus
@pytest.mark.skipif(not FEATURES.lean_path, reason="aiortc encodes on its own path (compat off)")
@LOOPBACK_MEDIA
async def test_fec_follows_the_far_ends_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    """A's packets to B are lost one in ten: once B's receiver reports say so, A's encoder
    expects loss, its packets carry FEC, and B rebuilds lost frames from it."""
    monkeypatch.setattr(MediaSession, "rtcp_interval", 0.3)
    async with connected_pair("opus", SpeechSource(), SpeechSource()) as (a, b):
        sender = a._lean_sender
        assert sender is not None and sender.send_now is not None
        encoder = sender.encoder
        assert encoder is not None
        assert sender.expected_loss_perc == 0

        # Clean: B's first reports say nothing was lost; A's encoder stays at 0.
        tap = a._tap
        assert tap is not None and tap.rtcp is not None
        async with asyncio.timeout(10):
            while tap.rtcp.remote is None:
                await asyncio.sleep(0.05)
        assert tap.rtcp.remote.fraction_lost == 0.0 and sender.expected_loss_perc == 0
        b_stats = b.receive_stats()
        assert b_stats is not None and b_stats.fec_frames == 0

        send_now = sender.send_now
        count = 0

        def lossy(packet: bytes) -> bool:
            nonlocal count
            count += 1
            if count % 10 == 0:
                return True  # "sent": B never sees it
            return send_now(packet)

        sender.send_now = lossy
        async with asyncio.timeout(15):
            while sender.expected_loss_perc == 0:
                await asyncio.sleep(0.05)
            assert sender.expected_loss_perc <= MAX_EXPECTED_LOSS_PERC
            while (stats := b.receive_stats()) is None or stats.fec_frames < 3:
                await asyncio.sleep(0.05)
        assert stats.frames_concealed >= stats.fec_frames

        # The loss goes away: the reports say so and the FEC fades out.
        sender.send_now = send_now
        async with asyncio.timeout(15):
            while sender.expected_loss_perc > 0:
                await asyncio.sleep(0.05)
