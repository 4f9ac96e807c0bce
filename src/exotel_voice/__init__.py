"""exotel-voice: voice calling for Python over SIP-over-WebSocket with WebRTC media.

Two faces over one core:

* :class:`ExotelWebClient` -- Exotel's Voice WebSDK API (the integration guide's names and
  callbacks), usable from plain synchronous code;
* :class:`Phone` / :class:`Call` -- the asyncio API underneath it, with its states
  (:class:`CallState`, :class:`RegistrationState`, :class:`PhoneStatus`, and the media's
  :class:`IceState` and :class:`DtlsState` that :class:`MediaStateChanged` carries) and typed
  events (:class:`CallConnected`, :class:`CallEnded`, :class:`RegistrationStateChanged` ...).

What an application needs is importable from here: the configuration
(:class:`AccountConfig`, :class:`MediaConfig`, :class:`IceConfig` ...), the audio sources
and sinks (:class:`ToneSource`, :class:`WavFileSource`, :class:`WavFileSink`,
:class:`LevelMeter` ...), Exotel's REST clients (:class:`ExotelClient`,
:class:`AsyncExotelClient`; the rest of :mod:`exotel_voice.rest` stays there) and the
exceptions. The rest of :mod:`exotel_voice.media` (the
:class:`~exotel_voice.media.MediaSession` itself, the
:class:`~exotel_voice.media.AddressWatcher` a :class:`Phone` runs, the analysis helpers)
stays there.

Everything but the exceptions is imported lazily (on first use), so
``import exotel_voice.sip`` stays free of asyncio, websockets and aiortc.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .exceptions import (
    AudioSourceError,
    AuthenticationError,
    ConfigurationError,
    ConnectionClosed,
    InvalidDTMF,
    InvalidMessage,
    InvalidState,
    MediaError,
    RestError,
    SipError,
    TransactionTimeout,
    TransportError,
)


if TYPE_CHECKING:
    from .audio import AudioDevice, Sounds
    from .client import (
        AudioDeviceFallback,
        AudioDevicesChanged,
        Call,
        CallConnected,
        CallEnded,
        CallEvent,
        CallHeld,
        CallIncoming,
        CallMuted,
        CallProgress,
        CallRecovered,
        CallResumed,
        CallRinging,
        CallState,
        CallStatsUpdated,
        CallUnmuted,
        Codec,
        DtmfReceived,
        IceRestarted,
        IceRestarting,
        Identity,
        MediaStateChanged,
        MediaWarning,
        MediaWarningCleared,
        NoMediaWarning,
        Phone,
        PhoneEvent,
        PhoneStatus,
        QualityWarning,
        QualityWarningCleared,
        ReceivedFrames,
        Reconnected,
        Reconnecting,
        RegistrationState,
        RegistrationStateChanged,
        TransportStateChanged,
    )
    from .client.facade import ExotelCall, ExotelWebClient
    from .config import AccountConfig, KeepaliveConfig, ReconnectPolicy, TlsConfig
    from .diagnostics import DiagnosticsReport
    from .media import (
        AudioSink,
        AudioSource,
        CallStats,
        DeviceSink,
        DeviceSource,
        DtlsState,
        FrameSink,
        FrameSource,
        IceConfig,
        IceServer,
        IceState,
        LevelMeter,
        LivenessConfig,
        MediaConfig,
        QualityConfig,
        QualityThresholds,
        QualityWarningKind,
        SilenceSource,
        ToneSource,
        WavFileSink,
        WavFileSource,
    )
    from .rest import AsyncExotelClient, ExotelClient

__version__ = "0.1.0"

__all__ = [
    "AccountConfig",
    "AsyncExotelClient",
    "AudioDevice",
    "AudioDeviceFallback",
    "AudioDevicesChanged",
    "AudioSink",
    "AudioSource",
    "AudioSourceError",
    "AuthenticationError",
    "Call",
    "CallConnected",
    "CallEnded",
    "CallEvent",
    "CallHeld",
    "CallIncoming",
    "CallMuted",
    "CallProgress",
    "CallRecovered",
    "CallResumed",
    "CallRinging",
    "CallState",
    "CallStats",
    "CallStatsUpdated",
    "CallUnmuted",
    "Codec",
    "ConfigurationError",
    "ConnectionClosed",
    "DeviceSink",
    "DeviceSource",
    "DiagnosticsReport",
    "DtlsState",
    "DtmfReceived",
    "ExotelCall",
    "ExotelClient",
    "ExotelWebClient",
    "FrameSink",
    "FrameSource",
    "IceConfig",
    "IceRestarted",
    "IceRestarting",
    "IceServer",
    "IceState",
    "Identity",
    "InvalidDTMF",
    "InvalidMessage",
    "InvalidState",
    "KeepaliveConfig",
    "LevelMeter",
    "LivenessConfig",
    "MediaConfig",
    "MediaError",
    "MediaStateChanged",
    "MediaWarning",
    "MediaWarningCleared",
    "NoMediaWarning",
    "Phone",
    "PhoneEvent",
    "PhoneStatus",
    "QualityConfig",
    "QualityThresholds",
    "QualityWarning",
    "QualityWarningCleared",
    "QualityWarningKind",
    "ReceivedFrames",
    "ReconnectPolicy",
    "Reconnected",
    "Reconnecting",
    "RegistrationState",
    "RegistrationStateChanged",
    "RestError",
    "SilenceSource",
    "SipError",
    "Sounds",
    "TlsConfig",
    "ToneSource",
    "TransactionTimeout",
    "TransportError",
    "TransportStateChanged",
    "WavFileSink",
    "WavFileSource",
    "__version__",
]

#: Where each lazily imported name lives (a module under this package); a public name not
#: listed here and not defined in this module is :mod:`exotel_voice.client`'s.
_LAZY = {
    **dict.fromkeys(("AccountConfig", "KeepaliveConfig", "ReconnectPolicy", "TlsConfig"), "config"),
    **dict.fromkeys(("ExotelCall", "ExotelWebClient"), "client.facade"),
    **dict.fromkeys(("AsyncExotelClient", "ExotelClient"), "rest"),
    **dict.fromkeys(("AudioDevice", "Sounds"), "audio"),
    "DiagnosticsReport": "diagnostics",
    **dict.fromkeys(
        (
            "AudioSink", "AudioSource", "CallStats", "DeviceSink", "DeviceSource", "DtlsState",
            "FrameSink", "FrameSource", "IceConfig", "IceServer", "IceState", "LevelMeter",
            "LivenessConfig", "MediaConfig", "QualityConfig", "QualityThresholds",
            "QualityWarningKind", "SilenceSource", "ToneSource", "WavFileSink", "WavFileSource",
        ),
        "media",
    ),
}


def __getattr__(name: str) -> Any:
    """Import the public classes on first use (PEP 562)."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module = importlib.import_module(f".{_LAZY.get(name, 'client')}", __name__)
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
