"""The public API: the asyncio :class:`Phone` and :class:`Call`, and their events."""

from __future__ import annotations

from .call import Call
from .events import (
    CallEvent,
    ClientStatus,
    DtmfReceived,
    PhoneEvent,
    RegistrationStateChanged,
    TransportStateChanged,
)
from .phone import Phone


__all__ = [
    "Call",
    "CallEvent",
    "ClientStatus",
    "DtmfReceived",
    "Phone",
    "PhoneEvent",
    "RegistrationStateChanged",
    "TransportStateChanged",
]
