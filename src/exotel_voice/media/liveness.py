"""Is the call's media alive? ICE/DTLS states, received packets, and when to give up.

A SIP call can be up while its media is dead: ICE never connected, the far end's NAT
binding went away, a firewall started dropping UDP. Nothing in SIP notices, so the media
session watches for itself (:meth:`MediaSession.watch
<exotel_voice.media.MediaSession.watch>`), and this module decides what the watching
means. :class:`LivenessMonitor` is sans-I/O: it is handed the time, the count of packets
received so far (RTP and RTCP: every datagram through the DTLS transport), the ICE and
DTLS states, and whether the far end is meant to be sending; it returns
:class:`MediaHealthEvent` objects:

* :class:`MediaTransportChanged` whenever the ICE or DTLS state changes. aiortc's ICE
  transport goes from ``completed`` straight to ``failed`` (consent expiry, about 30 s);
  it has no ``disconnected``. So the ICE state is reported as ``disconnected`` once
  nothing has been received for :attr:`LivenessConfig.ice_disconnected_after` seconds
  (5) while the far end should be sending, as a browser's would be (Chromium reports it
  after 5-6 s without answers), and as the transport's state again with the next packet;
* :class:`MediaSilent` once nothing has been received for
  :attr:`LivenessConfig.no_media_warning` seconds while the far end should be sending
  (both sides ``sendrecv``: no hold either way), and :class:`MediaFlowing` when packets
  come back;
* :class:`MediaDown`, once, when the call cannot go on: still silent
  :attr:`LivenessConfig.no_media_grace` seconds after the warning, ICE failed (no
  candidate pair worked, or an established pair lost its consent: RFC 7675, the far end
  stopped answering aioice's consent checks for about 30 s), the DTLS handshake failed,
  or ICE and DTLS were not connected :attr:`LivenessConfig.connect_timeout` seconds after
  the answer. The reason names which, for the call's end.

While either side holds the call the silence clock is stopped (the far end may send
nothing then) and restarts from zero on resume.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .config import LivenessConfig


__all__ = [
    "DtlsState",
    "IceState",
    "LivenessMonitor",
    "MediaDown",
    "MediaFlowing",
    "MediaHealthEvent",
    "MediaSilent",
    "MediaTransportChanged",
]


class IceState(enum.StrEnum):
    """The ICE transport's state (RFC 8445 as aiortc reports it; a ``str``)."""

    NEW = "new"
    CHECKING = "checking"
    CONNECTED = "connected"
    COMPLETED = "completed"
    DISCONNECTED = "disconnected"
    FAILED = "failed"
    CLOSED = "closed"

    @classmethod
    def of(cls, value: object) -> IceState:
        """The state named ``value`` (an unknown word counts as ``NEW``)."""
        try:
            return cls(str(value))
        except ValueError:
            return cls.NEW


class DtlsState(enum.StrEnum):
    """The DTLS transport's state (a ``str``)."""

    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"
    FAILED = "failed"

    @classmethod
    def of(cls, value: object) -> DtlsState:
        """The state named ``value`` (an unknown word counts as ``NEW``)."""
        try:
            return cls(str(value))
        except ValueError:
            return cls.NEW


@dataclass(frozen=True)
class MediaHealthEvent:
    """Base class of what :class:`LivenessMonitor` reports."""


@dataclass(frozen=True)
class MediaTransportChanged(MediaHealthEvent):
    """The ICE or DTLS transport changed state (``ice_changed``: the ICE state did)."""

    ice: IceState
    dtls: DtlsState
    ice_changed: bool = True


@dataclass(frozen=True)
class MediaSilent(MediaHealthEvent):
    """Nothing received for ``silent_for`` seconds while the far end should be sending."""

    silent_for: float

    @property
    def reason(self) -> str:
        """The warning as a sentence."""
        return f"no audio received for {self.silent_for:.0f} s: the media path may be down"


@dataclass(frozen=True)
class MediaFlowing(MediaHealthEvent):
    """Packets arrive again after :class:`MediaSilent`; ``silent_for`` is how long the gap was."""

    silent_for: float


@dataclass(frozen=True)
class MediaDown(MediaHealthEvent):
    """The media cannot recover: the call should end, naming ``reason``."""

    reason: str


_UP_ICE = (IceState.CONNECTED, IceState.COMPLETED)


class LivenessMonitor:
    """Decides, from what it is told, whether a call's media is alive (sans-I/O).

    Args:
        config: the thresholds.
        now: the time the watch starts (the answer is in force); any monotonic clock in
            seconds, the same for every call.
    """

    def __init__(self, config: LivenessConfig, now: float) -> None:
        self.config = config
        self._start = now
        self._ice = IceState.NEW
        self._dtls = DtlsState.NEW
        self._connected_once = False
        self._received: int | None = None
        self._last_rx = now
        self._silent_since: float | None = None
        self._down = False
        after = config.ice_disconnected_after
        self._disconnected_after = (None if after is None
                                    else min(after, config.no_media_warning))

    @property
    def down(self) -> bool:
        """Whether :class:`MediaDown` was reported (nothing more will be)."""
        return self._down

    @property
    def silent(self) -> bool:
        """Whether :class:`MediaSilent` was reported and packets have not come back."""
        return self._silent_since is not None

    def update(
        self,
        now: float,
        *,
        received: int,
        ice: IceState,
        dtls: DtlsState,
        expecting: bool,
    ) -> list[MediaHealthEvent]:
        """What changed since the last update.

        Args:
            now: the current time.
            received: packets received so far (a counter that only grows).
            ice: the ICE transport's state.
            dtls: the DTLS transport's state.
            expecting: whether the far end is meant to be sending (no hold either way).
        """
        if self._down:
            return []
        config = self.config
        events: list[MediaHealthEvent] = []
        if dtls is DtlsState.CONNECTED and not self._connected_once:
            self._connected_once = True
            self._last_rx = now
        came_back: MediaFlowing | None = None
        if self._connected_once and (self._received is None or received != self._received):
            first = self._received is None
            self._received = received
            if not first or received > 0:
                if self._silent_since is not None:
                    came_back = MediaFlowing(round(now - self._last_rx, 1))
                    self._silent_since = None
                self._last_rx = now
        if not expecting:
            # On hold (either way) the far end may send nothing: the clock stops.
            self._last_rx = now
        silent = now - self._last_rx
        shown = ice
        quiet = self._disconnected_after
        if ice in _UP_ICE and self._connected_once and quiet is not None and silent >= quiet:
            shown = IceState.DISCONNECTED  # what a browser reports: nothing answers
        if (shown, dtls) != (self._ice, self._dtls):
            ice_changed = shown != self._ice
            self._ice, self._dtls = shown, dtls
            events.append(MediaTransportChanged(shown, dtls, ice_changed))
        if ice is IceState.FAILED:
            if self._connected_once:
                why = ("ICE failed: the far end stopped answering connectivity checks "
                       "(consent expired, RFC 7675); the media path is down")
            else:
                why = "ICE failed: no candidate pair connected; no audio can flow"
            return self._fail(events, why)
        if dtls is DtlsState.FAILED:
            return self._fail(events, "the DTLS handshake failed: no keys for SRTP; no audio "
                                      "can flow")
        if not self._connected_once:
            waited = now - self._start
            if config.connect_timeout is not None and waited >= config.connect_timeout:
                return self._fail(
                    events,
                    f"media did not connect within {config.connect_timeout:g} s after the "
                    f"answer (ICE {ice}, DTLS {dtls})",
                )
            return events
        if came_back is not None:
            events.append(came_back)
        if not expecting:
            return events
        if self._silent_since is None and silent >= config.no_media_warning:
            self._silent_since = now
            events.append(MediaSilent(round(silent, 1)))
        grace = config.no_media_grace
        if self._silent_since is not None and grace is not None:
            if silent >= config.no_media_warning + grace:
                return self._fail(
                    events, f"no audio received for {silent:.0f} s: the media path is down"
                )
        return events

    def _fail(self, events: list[MediaHealthEvent], reason: str) -> list[MediaHealthEvent]:
        self._down = True
        events.append(MediaDown(reason))
        return events
