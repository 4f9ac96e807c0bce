"""The public API: the asyncio :class:`Phone` and :class:`Call`, their states and events."""

from __future__ import annotations

from .call import Call, CallState
from .events import (
    CallConnected,
    CallEnded,
    CallEvent,
    CallHeld,
    CallIncoming,
    CallMuted,
    CallProgress,
    CallResumed,
    CallRinging,
    CallUnmuted,
    DtmfReceived,
    PhoneEvent,
    PhoneStatus,
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
    "CallResumed",
    "CallRinging",
    "CallState",
    "CallUnmuted",
    "DtmfReceived",
    "Phone",
    "PhoneEvent",
    "PhoneStatus",
    "RegistrationState",
    "RegistrationStateChanged",
    "TransportStateChanged",
]
