"""Asyncio transports that carry SIP messages to and from the sans-I/O core."""

from __future__ import annotations

from .websocket import TransportListener, TransportState, WebSocketTransport


__all__ = ["TransportListener", "TransportState", "WebSocketTransport"]
