"""WebRTC media for exotel-voice calls, on top of aiortc.

One :class:`MediaSession` per call turns SDP strings into audio: sources to send,
sinks to receive, RFC 4733 DTMF both ways, hold/resume and mute, its liveness
(:class:`IceState`, :class:`DtlsState`, :class:`LivenessConfig`) and ICE restart; an
:class:`AddressWatcher` reports changes of the host's addresses (:class:`AddressChange`),
which a phone answers with ICE restarts.  It imports nothing from the SIP client or
transport; the client plugs it in.
"""

from __future__ import annotations

from .analysis import detect_tone, dominant_frequency, goertzel_power, rms, rms_dbfs
from .config import IceConfig, IceServer, LivenessConfig, MediaConfig
from .liveness import DtlsState, IceState
from .netwatch import AddressChange, AddressWatcher
from .quality import QualityConfig, QualityThresholds, QualityWarningKind
from .quality_stats import CallStats
from .session import MediaSession, MediaState, MediaStats
from .sinks import AudioSink, DeviceSink, FrameSink, LevelMeter, WavFileSink
from .sources import (
    AudioSource,
    DeviceSource,
    FrameSource,
    SilenceSource,
    ToneSource,
    WavFileSource,
)


__all__ = [
    "AddressChange",
    "AddressWatcher",
    "AudioSink",
    "AudioSource",
    "CallStats",
    "DeviceSink",
    "DeviceSource",
    "DtlsState",
    "FrameSink",
    "FrameSource",
    "IceConfig",
    "IceServer",
    "IceState",
    "LevelMeter",
    "LivenessConfig",
    "MediaConfig",
    "MediaSession",
    "MediaState",
    "MediaStats",
    "QualityConfig",
    "QualityThresholds",
    "QualityWarningKind",
    "SilenceSource",
    "ToneSource",
    "WavFileSink",
    "WavFileSource",
    "detect_tone",
    "dominant_frequency",
    "goertzel_power",
    "rms",
    "rms_dbfs",
]
