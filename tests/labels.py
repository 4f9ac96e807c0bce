"""Short labels for the asyncio API's typed call events, for readable test expectations."""

from __future__ import annotations

from exotel_voice.client import (
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
)


def call_label(event: CallEvent) -> str:
    """``incoming``, ``ringing``, ``progress``, ``connected``, ``muted``, ``unmuted``,
    ``held``/``resumed`` (ours), ``remote_held``/``remote_resumed``, ``ended_local`` or
    ``ended_remote``."""
    match event:
        case CallEnded(by=by):
            return f"ended_{by}"
        case CallHeld(by=by):
            return "held" if by == "local" else "remote_held"
        case CallResumed(by=by):
            return "resumed" if by == "local" else "remote_resumed"
        case CallIncoming():
            return "incoming"
        case CallRinging():
            return "ringing"
        case CallProgress():
            return "progress"
        case CallConnected():
            return "connected"
        case CallMuted():
            return "muted"
        case CallUnmuted():
            return "unmuted"
    raise AssertionError(f"unlabelled call event {event!r}")


#: The events the guide's CallListenerCallback hears of.
GUIDE_CALL_EVENTS = (CallIncoming, CallRinging, CallConnected, CallEnded)
