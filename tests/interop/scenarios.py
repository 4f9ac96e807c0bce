"""Expected event sequences shared by the two faces' interop tests.

tests/interop/test_facade_sync.py (``ExotelWebClient`` callbacks, synchronous code) and
tests/interop/test_facade_async.py (``Phone`` events, asyncio code) run the same scenarios
and assert these same lists, so both faces show the same events in the same order.

Registration lists are compared after :func:`collapse` (consecutive repeats merged): every
REGISTER sent is a ``sent_request``, and whether the registrar challenges the un-REGISTER
again depends on its nonce lifetime.
"""

from __future__ import annotations

from collections.abc import Iterable

from exotel_voice.client import RegistrationState


#: RegisterEventCallBack states for DoRegister() then UnRegister() (collapsed).
REGISTER_UNREGISTER = ["sent_request", "registered", "sent_request", "unregistered"]

#: The same, as the asyncio Phone's RegistrationStateChanged states.
PHONE_REGISTER_UNREGISTER = [
    RegistrationState.REGISTERING,
    RegistrationState.REGISTERED,
    RegistrationState.UNREGISTERING,
    RegistrationState.UNREGISTERED,
]

#: CallListenerCallback events of a callee that answers; the caller hangs up.
ANSWERED_REMOTE_HANGUP_CALLEE = ["incoming", "ringing", "connected", "terminated"]

#: CallListenerCallback events of the caller that hangs up an answered call.
CALLER_LOCAL_HANGUP = ["ringing", "connected", "callEnded"]

#: CallListenerCallback events of a callee that rejects a ringing call.
REJECTED_CALLEE = ["incoming", "ringing", "callEnded"]

#: SessionCallback states of the callee in the full scenario: answer; Mute, Mute (no-op),
#: UnMute, MuteToggle, MuteToggle; Hold, HoldToggle (resume); remote hang-up.
CALLEE_SESSION_FULL = [
    "incoming",
    "connected",
    "muted",
    "unmuted",
    "muted",
    "unmuted",
    "holdunhold_success",
    "holdunhold_success",
    "callEnded",
]

#: The same scenario as the asyncio Phone's typed call events (tests.labels.call_label).
CALLEE_PHONE_EVENTS_FULL = [
    "incoming",
    "ringing",
    "connected",
    "muted",
    "unmuted",
    "muted",
    "unmuted",
    "held",
    "resumed",
    "ended_remote",
]

#: How the facade maps the typed call events (by label) to (SessionCallback state,
#: CallListenerCallback event); ``None`` where the facade sends nothing.
FACADE_MAPPING: dict[str, tuple[str | None, str | None]] = {
    "incoming": ("incoming", "incoming"),
    "ringing": (None, "ringing"),
    "connected": ("connected", "connected"),
    "ended_local": ("callEnded", "callEnded"),
    "ended_remote": ("callEnded", "terminated"),
    "muted": ("muted", None),
    "unmuted": ("unmuted", None),
    "held": ("holdunhold_success", None),
    "resumed": ("holdunhold_success", None),
}


def collapse(states: Iterable[str]) -> list[str]:
    """Merge consecutive repeats: ``[a, a, b, a] -> [a, b, a]``."""
    out: list[str] = []
    for state in states:
        if not out or out[-1] != state:
            out.append(state)
    return out


def facade_view(phone_events: Iterable[str]) -> tuple[list[str], list[str]]:
    """The (session, call) callback lists the facade derives from Phone call events."""
    session: list[str] = []
    calls: list[str] = []
    for event in phone_events:
        s, c = FACADE_MAPPING.get(event, (None, None))
        if s is not None:
            session.append(s)
        if c is not None:
            calls.append(c)
    return session, calls
