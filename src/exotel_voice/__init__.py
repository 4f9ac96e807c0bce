"""exotel-voice: voice calling for Python over SIP-over-WebSocket with WebRTC media.

Two faces over one core:

* :class:`ExotelWebClient` -- Exotel's Voice WebSDK API (the integration guide's names and
  callbacks), usable from plain synchronous code;
* :class:`Phone` / :class:`Call` -- the asyncio API underneath it.

``ExotelWebClient``, ``Phone``, ``Call`` and ``AccountConfig`` are imported lazily (on first
use), so ``import exotel_voice.sip`` stays free of asyncio, websockets and aiortc.
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
    from .client.call import Call
    from .client.facade import ExotelCall, ExotelWebClient
    from .client.phone import Phone
    from .config import AccountConfig

__version__ = "0.1.0"

__all__ = [
    "AccountConfig",
    "AuthenticationError",
    "Call",
    "ConfigurationError",
    "ConnectionClosed",
    "ExotelCall",
    "ExotelWebClient",
    "InvalidDTMF",
    "InvalidMessage",
    "InvalidState",
    "MediaError",
    "Phone",
    "SipError",
    "TransactionTimeout",
    "TransportError",
    "__version__",
]

_LAZY = {
    "AccountConfig": ("config", "AccountConfig"),
    "Call": ("client.call", "Call"),
    "ExotelCall": ("client.facade", "ExotelCall"),
    "ExotelWebClient": ("client.facade", "ExotelWebClient"),
    "Phone": ("client.phone", "Phone"),
}


def __getattr__(name: str) -> Any:
    """Import the public classes on first use (PEP 562)."""
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(f".{module_name}", __name__), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
