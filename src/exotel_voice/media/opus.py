"""Opus through libopus directly (ctypes), one encoder/decoder state per leg.

Why not PyAV
------------
Through PyAV every 20 ms packet costs an ``AudioFrame`` (encode) or a ``Packet`` and an
``AudioFrame`` plus ``to_ndarray`` (decode), and libavcodec's wrapper around libopus
adds its own buffering and copies.  Here the same libopus is called with the caller's
int16 buffer and a reused output buffer: one ``opus_encode`` / ``opus_decode`` call per
packet and no Python object but the result.

Which libopus: the copy bundled in PyAV's wheel (``av.libs/libopus-*.so*``, the same
library PyAV's ``libopus`` codec uses), else the system's (``libopus.so.0``).  If
neither loads, :func:`load` returns ``None`` and the callers fall back to PyAV.

Encoder defaults for a server (:class:`OpusEncoder`): mono, 48 kHz, 20 ms,
``OPUS_APPLICATION_VOIP``, 48 kbit/s VBR, complexity :data:`DEFAULT_COMPLEXITY`
(libavcodec's default; libopus's own is 9), in-band FEC on (``OPUS_SET_INBAND_FEC``) with an
expected loss of :data:`DEFAULT_PACKET_LOSS_PERC` % (``OPUS_SET_PACKET_LOSS_PERC``), so each
packet carries a low-bit-rate copy of the previous frame (LBRR) that the far end's decoder
uses when that frame is lost, as ours does (:meth:`OpusDecoder.decode_fec`).

Adaptive FEC (a call's encoder): libopus adds LBRR only while the expected loss is above
0 %, and it costs encode time and bits, so a call's encoder (the lean send path,
:func:`~exotel_voice.media.sender.make_encoder`) starts at 0 % (no LBRR on a clean
network) and follows the loss the far end reports for our stream in its RTCP report
blocks, as WebRTC does: :func:`adapt_expected_loss` smooths the reported fractions (up
quickly, down slowly), rounds and caps them at :data:`MAX_EXPECTED_LOSS_PERC`, and
:meth:`OpusEncoder.set_packet_loss_perc` hands the result to libopus before the next
frame.  FEC stays enabled throughout, so LBRR appears with the first report of loss and
fades once the reports show none.  (On aiortc's path, ``EXOTEL_VOICE_AIORTC_COMPAT=off``,
aiortc encodes with its own settings and none of this applies.)

Decoding a lost frame: :meth:`OpusDecoder.conceal` runs libopus's own concealment
(``opus_decode`` with no packet), :meth:`OpusDecoder.decode_fec` rebuilds it from the next
packet's FEC (``decode_fec=1``).  A lower complexity is not cheaper for
tonal or voiced signals here: below 7 libopus skips its signal analysis and codes
them in hybrid mode, which costs more (measured in docs/benchmarks.md).

``opus_encode`` / ``opus_decode`` are called through ``ctypes.CDLL``, which releases
the GIL for the call, so the send clock encodes on a worker thread
(:class:`~exotel_voice.media.sender.SendClock`).  One state is never used by two
threads at once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import threading
import weakref
from typing import Any

import numpy as np

from .codecs import AudioDecoder
from .pcm import Samples


__all__ = [
    "DEFAULT_COMPLEXITY",
    "DEFAULT_PACKET_LOSS_PERC",
    "LOSS_FALL_WEIGHT",
    "LOSS_RISE_WEIGHT",
    "MAX_EXPECTED_LOSS_PERC",
    "OpusDecoder",
    "OpusEncoder",
    "OpusError",
    "adapt_expected_loss",
    "load",
]

#: Encoder complexity (0-10) used unless the caller asks otherwise.
DEFAULT_COMPLEXITY = 10
#: Packet loss (percent) an :class:`OpusEncoder` is told to expect unless the caller
#: says otherwise: how much in-band FEC it adds.  A call's encoder starts at 0 and adapts
#: (:func:`adapt_expected_loss`).
DEFAULT_PACKET_LOSS_PERC = 10
#: The highest expected loss the adaptive policy asks for (percent): above it more FEC
#: only takes bits from the frames themselves.
MAX_EXPECTED_LOSS_PERC = 20
#: Weight of a new RTCP report in the smoothed loss when it is higher than the estimate
#: (FEC appears with the first report of loss) ...
LOSS_RISE_WEIGHT = 0.5
#: ... and when it is lower (FEC fades over a few reports once the loss is gone).
LOSS_FALL_WEIGHT = 0.25

_APPLICATION_VOIP = 2048
_SET_BITRATE = 4002
_SET_COMPLEXITY = 4010
_SET_INBAND_FEC = 4012
_SET_PACKET_LOSS_PERC = 4014
_MAX_PACKET = 1500  # bytes; a 20 ms packet at 48 kbit/s is ~120
_MAX_FRAME = 5760  # samples: 120 ms at 48 kHz, the longest Opus packet
_FRAME_SIZES = frozenset({120, 240, 480, 960, 1920, 2880})


class OpusError(RuntimeError):
    """libopus returned an error code."""


def adapt_expected_loss(estimate: float, fraction_lost: float) -> tuple[float, int]:
    """The adaptive FEC policy: one far-end report in, the encoder's expected loss out.

    Args:
        estimate: the smoothed loss so far, 0.0 to 1.0 (0.0 at the start of a call).
        fraction_lost: the fraction of our packets the far end's latest RTCP report block
            says it lost in its interval, 0.0 to 1.0 (the 8-bit field divided by 256).

    Returns:
        ``(estimate, percent)``: the new smoothed loss (an exponential average weighted
        :data:`LOSS_RISE_WEIGHT` towards a higher report, :data:`LOSS_FALL_WEIGHT` towards
        a lower one) and the whole percentage to give
        :meth:`OpusEncoder.set_packet_loss_perc`: rounded, at most
        :data:`MAX_EXPECTED_LOSS_PERC` (below 0.5 % it is 0: no FEC).

    Raises:
        ValueError: ``estimate`` or ``fraction_lost`` is not a number from 0 to 1.
    """
    for name, value in (("estimate", estimate), ("fraction_lost", fraction_lost)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"{name} must be a fraction from 0 to 1, got {value!r}")
    weight = LOSS_RISE_WEIGHT if fraction_lost > estimate else LOSS_FALL_WEIGHT
    estimate = float(estimate + weight * (fraction_lost - estimate))
    return estimate, min(MAX_EXPECTED_LOSS_PERC, int(estimate * 100 + 0.5))


_lib: Any = None
_loaded = False


def _candidates() -> list[str]:
    paths: list[str] = []
    try:
        import av

        site = os.path.dirname(os.path.dirname(os.path.abspath(av.__file__)))
        for pattern in ("av.libs/libopus*.so*", "av/.dylibs/libopus*.dylib"):
            paths += sorted(glob.glob(os.path.join(site, pattern)))
    except ImportError:  # pragma: no cover - PyAV is a dependency of aiortc
        pass
    system = ctypes.util.find_library("opus")
    if system:
        paths.append(system)
    paths.append("libopus.so.0")
    return paths


def _bind(lib: Any) -> Any:
    p, i32, i = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int
    lib.opus_encoder_create.argtypes = [i32, i, i, ctypes.POINTER(i)]
    lib.opus_encoder_create.restype = p
    lib.opus_encoder_destroy.argtypes = [p]
    lib.opus_encoder_destroy.restype = None
    lib.opus_encode.argtypes = [p, p, i, p, i32]
    lib.opus_encode.restype = i32
    # opus_encoder_ctl is variadic; every request used here takes one opus_int32.
    lib.opus_encoder_ctl.restype = i
    lib.opus_decoder_create.argtypes = [i32, i, ctypes.POINTER(i)]
    lib.opus_decoder_create.restype = p
    lib.opus_decoder_destroy.argtypes = [p]
    lib.opus_decoder_destroy.restype = None
    lib.opus_decode.argtypes = [p, p, i32, p, i, i]
    lib.opus_decode.restype = i
    lib.opus_get_version_string.restype = ctypes.c_char_p
    lib.opus_packet_get_nb_samples.argtypes = [p, i32, i32]
    lib.opus_packet_get_nb_samples.restype = i
    try:  # libopus 1.5+
        lib.opus_packet_has_lbrr.argtypes = [p, i32]
        lib.opus_packet_has_lbrr.restype = i
    except AttributeError:
        pass
    return lib


def load() -> Any:
    """The loaded libopus (a ``ctypes.CDLL``), or ``None`` if none could be loaded."""
    global _lib, _loaded
    if not _loaded:
        _loaded = True
        for path in _candidates():
            try:
                _lib = _bind(ctypes.CDLL(path))
                break
            except (OSError, AttributeError):
                continue
    return _lib


def version() -> str | None:
    """libopus's version string, e.g. ``"libopus 1.5.2"``; ``None`` if not loaded."""
    lib = load()
    return None if lib is None else str(lib.opus_get_version_string().decode())


def _library() -> Any:
    lib = load()
    if lib is None:
        raise OpusError("libopus could not be loaded")
    return lib


class OpusEncoder:
    """Mono 48 kHz Opus encoder (VoIP mode, VBR) with reused state and output buffer.

    Args:
        bit_rate: target bit rate in bit/s.
        complexity: 0 (cheapest) to 10 (libavcodec's default).
        fec: add in-band FEC (LBRR) for the far end's decoder (libopus adds it only
            while ``packet_loss_perc`` is above 0).
        packet_loss_perc: the loss (0-100 %) the encoder prepares for; changed during a
            call with :meth:`set_packet_loss_perc`.
    """

    sample_rate = 48000

    def __init__(
        self,
        bit_rate: int = 48000,
        complexity: int = DEFAULT_COMPLEXITY,
        *,
        fec: bool = True,
        packet_loss_perc: int = DEFAULT_PACKET_LOSS_PERC,
    ) -> None:
        lib = _library()
        error = ctypes.c_int(0)
        state = lib.opus_encoder_create(self.sample_rate, 1, _APPLICATION_VOIP, ctypes.byref(error))
        if error.value != 0 or not state:
            raise OpusError(f"opus_encoder_create failed: {error.value}")
        self._finalizer = weakref.finalize(self, lib.opus_encoder_destroy, state)
        # One encode at a time: a libopus encoder state must never be used by two threads
        # at once (a send clock's worker and a caller on another thread).
        self._encoding = threading.Lock()
        requests = (
            (_SET_BITRATE, bit_rate),
            (_SET_COMPLEXITY, complexity),
            (_SET_INBAND_FEC, int(fec)),
            (_SET_PACKET_LOSS_PERC, packet_loss_perc),
        )
        for request, value in requests:
            rc = lib.opus_encoder_ctl(ctypes.c_void_p(state), ctypes.c_int(request),
                                      ctypes.c_int32(value))
            if rc != 0:
                raise OpusError(f"opus_encoder_ctl({request}, {value}) failed: {rc}")
        self._state = state
        self._encode = lib.opus_encode
        self._out = ctypes.create_string_buffer(_MAX_PACKET)
        self._out_address = ctypes.addressof(self._out)
        self.complexity = complexity
        self.bit_rate = bit_rate
        self.fec = fec
        self._ctl = lib.opus_encoder_ctl
        self._wanted_loss = self._applied_loss = packet_loss_perc

    @property
    def packet_loss_perc(self) -> int:
        """The expected loss (percent) asked for last; libopus has it from the next frame."""
        return self._wanted_loss

    def set_packet_loss_perc(self, percent: int) -> None:
        """Tell the encoder to expect ``percent`` % loss (``OPUS_SET_PACKET_LOSS_PERC``).

        Safe to call from any thread while another thread encodes: the value is only
        recorded here, and the thread that encodes hands it to libopus before its next
        frame (an encoder state is never touched by two threads at once).

        Raises:
            ValueError: ``percent`` is not a whole number from 0 to 100.
        """
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
            raise ValueError(
                f"packet loss must be a whole percentage from 0 to 100, got {percent!r}"
            )
        self._wanted_loss = percent

    def encode(self, samples: Samples) -> bytes:
        """One packet from 2.5-60 ms of mono int16 samples (960 for 20 ms)."""
        if samples.size not in _FRAME_SIZES:
            raise ValueError(f"Opus cannot encode a frame of {samples.size} samples")
        with self._encoding:
            return self._encode_locked(samples)

    def _encode_locked(self, samples: Samples) -> bytes:
        wanted = self._wanted_loss
        if wanted != self._applied_loss:
            rc = self._ctl(ctypes.c_void_p(self._state), ctypes.c_int(_SET_PACKET_LOSS_PERC),
                           ctypes.c_int32(wanted))
            if rc != 0:
                raise OpusError(
                    f"opus_encoder_ctl(OPUS_SET_PACKET_LOSS_PERC, {wanted}) failed: {rc}"
                )
            self._applied_loss = wanted
        if samples.dtype != np.int16 or not samples.flags.c_contiguous:
            samples = np.ascontiguousarray(samples, dtype=np.int16)
        n = self._encode(
            self._state, samples.ctypes.data, samples.size, self._out_address, _MAX_PACKET
        )
        if n < 0:
            raise OpusError(f"opus_encode failed: {n}")
        return self._out.raw[:n]


class OpusDecoder(AudioDecoder):
    """Opus decoder producing mono int16 at ``sample_rate`` (8, 12, 16, 24 or 48 kHz).

    libopus decodes straight to the requested rate, so nothing is resampled after.
    """

    def __init__(self, sample_rate: int = 48000) -> None:
        lib = _library()
        error = ctypes.c_int(0)
        state = lib.opus_decoder_create(sample_rate, 1, ctypes.byref(error))
        if error.value != 0 or not state:
            raise OpusError(f"opus_decoder_create failed: {error.value}")
        self._finalizer = weakref.finalize(self, lib.opus_decoder_destroy, state)
        self._state = state
        self._decode = lib.opus_decode
        self._lib = lib
        self.sample_rate = sample_rate
        self._max = _MAX_FRAME * sample_rate // 48000
        self._pcm = np.zeros(self._max, dtype=np.int16)
        self._pcm_address = self._pcm.ctypes.data

    def decode(self, payload: bytes) -> Samples:
        """Samples of one packet (a fresh array); an empty or invalid packet yields none."""
        if not payload:  # libopus would conceal a lost packet of the longest length
            return np.zeros(0, dtype=np.int16)
        n = self._decode(self._state, payload, len(payload), self._pcm_address, self._max, 0)
        if n <= 0:
            return np.zeros(0, dtype=np.int16)
        return self._pcm[:n].copy()

    def conceal(self, count: int) -> Samples:
        """``count`` samples of libopus's concealment for a lost frame (a multiple of 2.5 ms)."""
        count = _whole_frames(count, self.sample_rate, self._max)
        n = self._decode(self._state, None, 0, self._pcm_address, count, 0)
        if n <= 0:
            return np.zeros(count, dtype=np.int16)
        return self._pcm[:n].copy()

    def has_fec(self, payload: bytes) -> bool:
        """Whether ``payload`` carries in-band FEC (LBRR) for the frame before it."""
        if not payload:
            return False
        has_lbrr = getattr(self._lib, "opus_packet_has_lbrr", None)
        if has_lbrr is None:  # libopus before 1.5: a SILK or hybrid packet may carry it
            return bool(payload[0] >> 3 < 16)
        return bool(has_lbrr(payload, len(payload)) > 0)

    def decode_fec(self, payload: bytes, count: int) -> Samples:
        """The lost frame before ``payload`` (``count`` samples) from ``payload``'s FEC.

        Without FEC in the packet libopus conceals instead.  Call it before decoding
        ``payload`` itself, as libopus requires.
        """
        count = _whole_frames(count, self.sample_rate, self._max)
        if not payload:
            return self.conceal(count)
        n = self._decode(self._state, payload, len(payload), self._pcm_address, count, 1)
        if n <= 0:
            return self.conceal(count)
        return self._pcm[:n].copy()


def _whole_frames(count: int, sample_rate: int, limit: int) -> int:
    """``count`` rounded to a whole number of 2.5 ms (libopus's unit), within ``limit``."""
    unit = sample_rate // 400
    return min(limit, max(unit, (count + unit - 1) // unit * unit))
