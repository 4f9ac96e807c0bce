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
    CallRecovered,
    CallResumed,
    CallRinging,
    CallStatsUpdated,
    CallUnmuted,
    IceRestarted,
    IceRestarting,
    MediaStateChanged,
    MediaWarning,
    MediaWarningCleared,
    QualityWarning,
    QualityWarningCleared,
)


#: Events about the call's connectivity (media and signalling paths), published beside the
#: call's flow whenever the network does something: tests that compare the flow of a call
#: (ringing, connected, held ... ended) leave them out with :func:`is_flow`.
CONNECTIVITY = (
    MediaStateChanged,
    MediaWarning,
    MediaWarningCleared,
    CallRecovered,
    IceRestarting,
    IceRestarted,
    # The call's quality, sampled while it is connected (MediaConfig.quality).
    QualityWarning,
    QualityWarningCleared,
    CallStatsUpdated,
)


def is_flow(event: object) -> bool:
    """Whether ``event`` is a call event of the call's flow (not a :data:`CONNECTIVITY` one)."""
    return isinstance(event, CallEvent) and not isinstance(event, CONNECTIVITY)


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
        case MediaStateChanged():
            return "media_state"
        case MediaWarning():
            return "media_warning"
        case MediaWarningCleared():
            return "media_warning_cleared"
        case CallRecovered():
            return "recovered"
        case IceRestarting():
            return "ice_restarting"
        case IceRestarted():
            return "ice_restarted"
        case QualityWarning(kind=kind):
            return f"quality_warning:{kind}"
        case QualityWarningCleared(kind=kind):
            return f"quality_cleared:{kind}"
        case CallStatsUpdated():
            return "stats"
    raise AssertionError(f"unlabelled call event {event!r}")


#: The events the guide's CallListenerCallback hears of.
GUIDE_CALL_EVENTS = (CallIncoming, CallRinging, CallConnected, CallEnded)
