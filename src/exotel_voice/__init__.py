"""exotel-voice: voice calling for Python over SIP-over-WebSocket with WebRTC media."""

from __future__ import annotations

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


__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ConnectionClosed",
    "InvalidDTMF",
    "InvalidMessage",
    "InvalidState",
    "MediaError",
    "SipError",
    "TransactionTimeout",
    "TransportError",
    "__version__",
]
