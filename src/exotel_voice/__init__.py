"""exotel-voice: voice calling for Python over SIP-over-WebSocket with WebRTC media.

Two faces over one core:

* :class:`ExotelWebClient` -- Exotel's Voice WebSDK API (the integration guide's names and
  callbacks), usable from plain synchronous code;
* :class:`Phone` / :class:`Call` -- the asyncio API underneath it, with its states
  (:class:`CallState`, :class:`RegistrationState`, :class:`PhoneStatus`) and typed events
  (:class:`CallConnected`, :class:`CallEnded`, :class:`RegistrationStateChanged` ...).

Everything but the exceptions is imported lazily (on first use), so
``import exotel_voice.sip`` stays free of asyncio, websockets and aiortc.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .exceptions import (
    AuthenticationError,
    ConfigurationError,
    ConnectionClosed,
    InvalidDTMF,
    InvalidMessage,
    InvalidState,
    MediaError,
    SipError,
    TransactionTimeout,
    TransportError,
)


if TYPE_CHECKING:
    from .client import (
        Call,
        CallConnected,
        CallEnded,
        CallEvent,
        CallHeld,
        CallIncoming,
        CallMuted,
        CallProgress,
        CallResumed,
        CallRinging,
        CallState,
        CallUnmuted,
        DtmfReceived,
        Phone,
        PhoneEvent,
        PhoneStatus,
        RegistrationState,
        RegistrationStateChanged,
        TransportStateChanged,
    )
    from .client.facade import ExotelCall, ExotelWebClient
    from .config import AccountConfig

__version__ = "0.1.0"

__all__ = [
    "AccountConfig",
    "AuthenticationError",
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
    "ConfigurationError",
    "ConnectionClosed",
    "DtmfReceived",
    "ExotelCall",
    "ExotelWebClient",
    "InvalidDTMF",
    "InvalidMessage",
    "InvalidState",
    "MediaError",
    "Phone",
    "PhoneEvent",
    "PhoneStatus",
    "RegistrationState",
    "RegistrationStateChanged",
    "SipError",
    "TransactionTimeout",
    "TransportError",
    "TransportStateChanged",
    "__version__",
]

#: The modules of the lazily imported names that are not the asyncio API's; every other
#: public name not defined here is :mod:`exotel_voice.client`'s.
_LAZY = {
    "AccountConfig": "config",
    "ExotelCall": "client.facade",
    "ExotelWebClient": "client.facade",
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
