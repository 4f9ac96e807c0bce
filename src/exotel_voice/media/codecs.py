"""Audio decoders for the lean receive path: G.711 by table lookup, Opus by libopus, G.722 by PyAV.

G.711 (µ-law and A-law, ITU-T G.711) maps each byte to one 16-bit sample, so decoding
is one numpy fancy-index into a 256-entry table: no thread, no PyAV object per packet.
Encoding goes through a 65536-entry table built once with the G.711 reference
encoder's segment search.

Opus is decoded by libopus directly (:mod:`exotel_voice.media.opus`, ctypes; PyAV's
``libopus`` decoder only if libopus cannot be loaded), G.722 by libavcodec through
PyAV: one decoder per payload type and leg, directly on the event loop (a 20 ms Opus
frame takes a few tens of microseconds).  Opus is decoded to mono: the session hands
sinks mono audio anyway.
"""

from __future__ import annotations

import abc
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from .pcm import Samples


__all__ = [
    "ALAW_DECODE",
    "ULAW_DECODE",
    "AudioDecoder",
    "G711Decoder",
    "PyAvDecoder",
    "alaw_encode",
    "decoder_rate",
    "make_decoder",
    "ulaw_encode",
]


def _ulaw_table() -> Samples:
    # G.711 µ-law: codes are stored inverted; 3-bit segment, 4-bit step, bias 0x84.
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    segment = (code >> 4) & 0x07
    magnitude = ((((code & 0x0F) << 3) + 0x84) << segment) - 0x84
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> Samples:
    # G.711 A-law: even bits inverted (XOR 0x55); segment 0 is linear.
    code = np.arange(256, dtype=np.int32) ^ 0x55
    step = code & 0x0F
    segment = (code >> 4) & 0x07
    magnitude = np.where(
        segment == 0, (2 * step + 1) << 3, (2 * step + 33) << np.maximum(segment + 2, 0)
    )
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


#: Sample value of each µ-law code.
ULAW_DECODE: Samples = _ulaw_table()
#: Sample value of each A-law code.
ALAW_DECODE: Samples = _alaw_table()


def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    # The G.711 reference encoder (as in the Sun/CCITT g711.c), for every int16 value.
    values = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mask = np.where(values < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(values), 8159) + 33
    ends = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    segment = np.searchsorted(ends, magnitude, side="left")
    step = (magnitude >> np.minimum(segment + 1, 8)) & 0x0F
    code = np.where(segment >= 8, 0x7F, (segment << 4) | step)
    return (code ^ mask).astype(np.uint8)


def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    values = np.arange(-32768, 32768, dtype=np.int32) >> 3
    mask = np.where(values >= 0, 0xD5, 0x55)
    magnitude = np.where(values >= 0, values, -values - 1)
    ends = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
    segment = np.searchsorted(ends, magnitude, side="left")
    step = np.where(segment < 2, magnitude >> 1, magnitude >> np.maximum(segment, 1)) & 0x0F
    code = np.where(segment >= 8, 0x7F, (segment << 4) | step)
    return (code ^ mask).astype(np.uint8)


_ULAW_ENCODE = _ulaw_encode_table()
_ALAW_ENCODE = _alaw_encode_table()


def ulaw_encode(samples: Samples) -> bytes:
    """Encode int16 samples as G.711 µ-law bytes."""
    return bytes(_ULAW_ENCODE[samples.astype(np.int32) + 32768])


def alaw_encode(samples: Samples) -> bytes:
    """Encode int16 samples as G.711 A-law bytes."""
    return bytes(_ALAW_ENCODE[samples.astype(np.int32) + 32768])


class AudioDecoder(abc.ABC):
    """Decodes one RTP payload to mono int16 samples at :attr:`sample_rate`."""

    sample_rate: int

    @abc.abstractmethod
    def decode(self, payload: bytes) -> Samples:
        """Decode one packet's payload; an undecodable payload yields no samples."""


class G711Decoder(AudioDecoder):
    """µ-law or A-law, by table lookup."""

    sample_rate = 8000

    def __init__(self, table: Samples) -> None:
        self._table = table

    def decode(self, payload: bytes) -> Samples:
        decoded: Samples = self._table[np.frombuffer(payload, dtype=np.uint8)]
        return decoded


class PyAvDecoder(AudioDecoder):
    """A libavcodec decoder (``libopus``, ``g722``) producing mono s16."""

    def __init__(self, codec_name: str, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        codec: Any = av.CodecContext.create(codec_name, "r")
        codec.format = "s16"
        codec.layout = "mono"
        codec.sample_rate = sample_rate
        self._codec = codec

    def decode(self, payload: bytes) -> Samples:
        try:
            frames = self._codec.decode(av.Packet(payload))
        except av.FFmpegError:
            return np.zeros(0, dtype=np.int16)
        if not frames:
            return np.zeros(0, dtype=np.int16)
        arrays = [frame.to_ndarray().reshape(-1) for frame in frames]
        samples: Samples = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
        return samples.astype(np.int16, copy=False)


def decoder_rate(name: str, clock_rate: int) -> int:
    """The sample rate decoded audio of codec ``name`` comes out at."""
    return {"opus": 48000, "g722": 16000, "pcmu": 8000, "pcma": 8000}.get(
        name.lower(), clock_rate
    )


def make_decoder(name: str, clock_rate: int) -> AudioDecoder | None:
    """A decoder for the SDP encoding ``name``, or ``None`` if we have none."""
    key = name.lower()
    if key == "pcmu":
        return G711Decoder(ULAW_DECODE)
    if key == "pcma":
        return G711Decoder(ALAW_DECODE)
    if key == "opus":
        from . import opus  # opus.OpusDecoder is an AudioDecoder: imported late

        if opus.load() is not None:
            return opus.OpusDecoder(48000)
        return PyAvDecoder("libopus", 48000)
    if key == "g722":
        return PyAvDecoder("g722", 16000)
    return None
