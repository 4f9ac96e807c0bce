"""The public API: the asyncio :class:`Phone` and :class:`Call`, their states, events and
values."""

from __future__ import annotations

from .call import Call, CallState, Codec, Identity, ReceivedFrames
from .events import (
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
    CallUnmuted,
    DtmfReceived,
    IceRestarted,
    IceRestarting,
    MediaStateChanged,
    MediaWarning,
    MediaWarningCleared,
    NoMediaWarning,
    PhoneEvent,
    PhoneStatus,
    Reconnected,
    Reconnecting,
    RegistrationState,
    RegistrationStateChanged,
    TransportStateChanged,
)
from .phone import Phone


__all__ = [
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
    "CallUnmuted",
    "Codec",
    "DtmfReceived",
    "IceRestarted",
    "IceRestarting",
    "Identity",
    "MediaStateChanged",
    "MediaWarning",
    "MediaWarningCleared",
    "NoMediaWarning",
    "Phone",
    "PhoneEvent",
    "PhoneStatus",
    "ReceivedFrames",
    "Reconnected",
    "Reconnecting",
    "RegistrationState",
    "RegistrationStateChanged",
    "TransportStateChanged",
]
