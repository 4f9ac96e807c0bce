"""Unit tests for media.analysis, media.pcm, the RFC 4733 codec and SDP helpers (no network)."""

from __future__ import annotations

import numpy as np
import pytest

from exotel_voice.exceptions import ConfigurationError, InvalidDTMF
from exotel_voice.media import _sdp
from exotel_voice.media.analysis import (
    SILENCE_DBFS,
    detect_tone,
    dominant_frequency,
    goertzel_power,
    rms,
    rms_dbfs,
)
from exotel_voice.media.config import IceConfig, IceServer, MediaConfig
from exotel_voice.media.dtmf import TelephoneEvent, parse_digits
from exotel_voice.media.pcm import resample_all


def sine(frequency: float, rate: int, seconds: float = 0.5, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * frequency * t) * amplitude * 32767).astype(np.int16)


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
@pytest.mark.parametrize("frequency", [300.0, 600.0, 1000.0, 3100.0])
def test_dominant_frequency_finds_tone(rate: int, frequency: float) -> None:
    assert dominant_frequency(sine(frequency, rate), rate) == pytest.approx(frequency, abs=2)


def test_dominant_frequency_of_silence_is_zero() -> None:
    assert dominant_frequency(np.zeros(1600, dtype=np.int16), 8000) == 0.0


def test_dominant_frequency_accepts_bytes() -> None:
    pcm = sine(440, 8000).astype("<i2").tobytes()
    assert dominant_frequency(pcm, 8000) == pytest.approx(440, abs=2)


def test_rms_levels() -> None:
    assert rms(np.zeros(100, dtype=np.int16)) == 0.0
    assert rms_dbfs(np.zeros(100, dtype=np.int16)) == SILENCE_DBFS
    full = np.full(100, 32767, dtype=np.int16)
    assert rms_dbfs(full) == pytest.approx(0.0, abs=0.01)
    # A sine at half scale: RMS = 0.5 / sqrt(2) -> about -9 dBFS.
    assert rms_dbfs(sine(1000, 8000)) == pytest.approx(-9.03, abs=0.1)


def test_rms_rejects_other_dtypes() -> None:
    with pytest.raises(TypeError):
        rms(np.zeros(10, dtype=np.float32))  # type: ignore[arg-type]


def test_goertzel_separates_frequencies() -> None:
    tone = sine(697, 8000, seconds=0.1)
    assert goertzel_power(tone, 8000, 697) > 100 * goertzel_power(tone, 8000, 1209)
    assert detect_tone(tone, 8000, 697)
    assert not detect_tone(tone, 8000, 1209)
    assert not detect_tone(np.zeros(800, dtype=np.int16), 8000, 697)


def test_resample_keeps_frequency() -> None:
    out = resample_all(sine(1000, 48000), 48000, 8000)
    assert out.size == pytest.approx(4000, abs=20)
    assert dominant_frequency(out, 8000) == pytest.approx(1000, abs=2)


def test_telephone_event_round_trip() -> None:
    event = TelephoneEvent(event=11, end=True, volume=10, duration=800)
    packed = event.pack()
    assert packed == bytes([11, 0x80 | 10, 0x03, 0x20])
    assert TelephoneEvent.unpack(packed) == event
    with pytest.raises(ValueError):
        TelephoneEvent.unpack(b"\x01\x02")


def test_parse_digits() -> None:
    assert parse_digits("123#*0ad") == ["1", "2", "3", "#", "*", "0", "A", "D"]
    with pytest.raises(InvalidDTMF, match="'x'"):
        parse_digits("12x")
    with pytest.raises(InvalidDTMF):
        parse_digits("")


def test_ice_server_repr_hides_credential() -> None:
    server = IceServer(urls="turn:127.0.0.1:3478", username="u", credential="s3cret-sentinel")
    assert "s3cret-sentinel" not in repr(server)
    assert "s3cret-sentinel" not in repr(IceConfig(servers=[server]))
    with pytest.raises(ConfigurationError):
        IceServer(urls="http://example.com")


def test_config_validation() -> None:
    with pytest.raises(ConfigurationError, match="codecs"):
        MediaConfig(codecs=["speex"])
    with pytest.raises(ConfigurationError, match="host_addresses"):
        IceConfig(host_addresses=["localhost"])
    with pytest.raises(ConfigurationError, match="gather_timeout"):
        IceConfig(gather_timeout=0)
    with pytest.raises(ConfigurationError, match="dtmf_duration_ms"):
        MediaConfig(dtmf_duration_ms=5000)
    with pytest.raises(TypeError):
        MediaConfig(IceConfig())  # type: ignore[misc]


SDP = (
    "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 96 0 8\r\nc=IN IP4 0.0.0.0\r\n"
    "a=sendonly\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\na=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n"
    "a=ice-pwd:verysecretpassword\r\n"
)


def test_sdp_telephone_event_helpers() -> None:
    pt = _sdp.free_payload_type(SDP, 96)
    assert pt not in (96, 0, 8)
    sdp = _sdp.add_telephone_events(SDP, [_sdp.PayloadFormat(pt, "telephone-event", 48000)])
    assert f"m=audio 9 UDP/TLS/RTP/SAVPF 96 0 8 {pt}\r\n" in sdp
    assert _sdp.telephone_events(sdp) == [_sdp.PayloadFormat(pt, "telephone-event", 48000)]
    assert [f.name for f in _sdp.audio_formats(sdp)] == ["opus", "PCMU", "PCMA", "telephone-event"]
    assert _sdp.audio_direction(sdp) == "sendonly"
    assert _sdp.candidate_addresses(sdp) == ["127.0.0.1"]
    assert _sdp.origin(sdp) == ("-", "1", "2")
    assert "verysecretpassword" not in _sdp.redact(sdp)
