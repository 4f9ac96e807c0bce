"""Typed events and states of the asyncio API.

Every event a :class:`~exotel_voice.client.phone.Phone` publishes is one of these frozen
dataclasses, and every state is an enum: what happened is a type, never a string to compare.
The Exotel guide's callback strings (``registered``, ``callEnded``, ``sent_request`` ...)
belong to the ``ExotelWebClient`` facade alone, which maps these events to them in one place
(:mod:`exotel_voice.client.facade`).

The enums are ``str`` enums (``enum.StrEnum``): a state prints and logs as its plain word
(``registered``, ``connected``), and serialises as that word.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..audio.devices import AudioDevice, DeviceKind
from ..media.liveness import DtlsState, IceState
from ..media.quality import QualityWarningKind
from ..media.quality_stats import CallStats
from ..sip.registration import RegistrationState


if TYPE_CHECKING:
    from .call import Call

__all__ = [
    "AudioDeviceFallback",
    "AudioDevicesChanged",
    "CallConnected",
    "CallEnded",
    "CallEvent",
    "CallHeld",
    "CallIncoming",
    "CallMuted",
    "CallProgress",
    "CallRecovered",
    "CallResumed",
    "CallRinging",
    "CallStatsUpdated",
    "CallUnmuted",
    "IceRestarted",
    "IceRestarting",
    "DtmfReceived",
    "MediaStateChanged",
    "MediaWarning",
    "MediaWarningCleared",
    "NoMediaWarning",
    "PhoneEvent",
    "PhoneStatus",
    "QualityWarning",
    "QualityWarningCleared",
    "Reconnected",
    "Reconnecting",
    "RegistrationState",
    "RegistrationStateChanged",
    "TransportStateChanged",
]


class PhoneStatus(enum.StrEnum):
    """How ready a phone is (:meth:`Phone.status`), computed from its real state."""

    NOT_STARTED = "not_started"  #: never started
    MEDIA_UNAVAILABLE = "media_unavailable"  #: the configured audio source cannot be opened
    CONNECTING = "connecting"  #: the first connection is being opened
    CONNECTION_FAILED = "connection_failed"  #: no connection has ever been opened
    DISCONNECTED = "disconnected"  #: the connection was lost (reconnecting)
    REGISTERING = "registering"  #: connected, a REGISTER is in progress
    REGISTERED = "registered"  #: connected and registered
    FAILED = "failed"  #: the registration failed
    UNREGISTERED = "unregistered"  #: connected, not registered (or closed on purpose)


@dataclass(frozen=True)
class PhoneEvent:
    """Base class of events published by a phone.

    Attributes:
        phone: the phone's name (the guide's ``userName``).
    """

    phone: str


@dataclass(frozen=True)
class RegistrationStateChanged(PhoneEvent):
    """The registration changed state, or a REGISTER went out.

    Attributes:
        state: the registration's state after the event: ``REGISTERING`` (a REGISTER was
            sent, refreshes included) or ``UNREGISTERING`` (an un-REGISTER was sent),
            ``REGISTERED``, ``UNREGISTERED`` (removed, or lost with the connection) or
            ``FAILED`` (registering or unregistering failed).
        status: the SIP status behind it (``None`` when no response was involved, e.g. a
            timeout or a lost connection).
        reason: the reason phrase or a description.
        expires: the granted expiry for ``REGISTERED``.
        retry_in: for ``FAILED``: seconds until an automatic retry, or ``None``.
    """

    state: RegistrationState
    status: int | None = None
    reason: str = ""
    expires: int | None = None
    retry_in: float | None = None


@dataclass(frozen=True)
class TransportStateChanged(PhoneEvent):
    """The WebSocket connected or was lost.

    Attributes:
        connected: whether it is open now.
        error: what went wrong, for a loss.
        retry_in: seconds until the next connection attempt, or ``None``.
    """

    connected: bool
    error: str = ""
    retry_in: float | None = None


@dataclass(frozen=True)
class Reconnecting(PhoneEvent):
    """The WebSocket to the server was lost (or a new attempt to open it failed) after it
    had been open, and the phone will try again: published with the
    :class:`TransportStateChanged` that reports the loss.

    Calls go on meanwhile: their media does not travel over the WebSocket. Once the phone
    is connected and registered again, each live call refreshes its dialog
    (:class:`CallRecovered`, or :class:`CallEnded` naming why it could not be kept).

    Attributes:
        error: what went wrong (the close code and reason, a refused connection ...).
        retry_in: seconds until the next connection attempt.
        calls: how many calls were live when it was published.
    """

    error: str
    retry_in: float
    calls: int = 0


@dataclass(frozen=True)
class Reconnected(PhoneEvent):
    """The WebSocket is open again after :class:`Reconnecting`; the REGISTER on it follows
    (:class:`RegistrationStateChanged`), then each live call's dialog refresh.

    Attributes:
        downtime: seconds since the connection was lost.
        attempts: connection attempts it took (1: the first attempt succeeded).
    """

    downtime: float
    attempts: int = 1


@dataclass(frozen=True)
class CallEvent(PhoneEvent):
    """Base class of the events of one call.

    Attributes:
        call: the call.
    """

    call: Call = field(repr=False)


@dataclass(frozen=True)
class CallIncoming(CallEvent):
    """A call arrived (it is ringing: 180 was sent; :class:`CallRinging` follows)."""


@dataclass(frozen=True)
class CallRinging(CallEvent):
    """The call rings: the first 180 to our INVITE, or our own 180 for an incoming call.

    Attributes:
        status: the status code (180).
        reason: the reason phrase.
    """

    status: int
    reason: str


@dataclass(frozen=True)
class CallProgress(CallEvent):
    """Any other provisional response to our INVITE (183, a repeated 180 ...).

    Attributes:
        status: the status code.
        reason: the reason phrase.
    """

    status: int
    reason: str


@dataclass(frozen=True)
class CallConnected(CallEvent):
    """The call was answered and its media negotiated."""


@dataclass(frozen=True)
class CallHeld(CallEvent):
    """The call was put on hold.

    Attributes:
        by: ``"local"`` (our :meth:`Call.hold` succeeded) or ``"remote"`` (the far end's
            re-INVITE holds us).
    """

    by: str


@dataclass(frozen=True)
class CallResumed(CallEvent):
    """The call was taken off hold.

    Attributes:
        by: ``"local"`` (our :meth:`Call.unhold`) or ``"remote"`` (the far end's re-INVITE).
    """

    by: str


@dataclass(frozen=True)
class CallMuted(CallEvent):
    """Our audio is muted (silence is sent)."""


@dataclass(frozen=True)
class CallUnmuted(CallEvent):
    """Our audio is sent again."""


@dataclass(frozen=True)
class MediaWarning(CallEvent):
    """The call's media cannot work as negotiated, as far as the SDPs tell: no audio will
    flow, though the call may still connect in SIP. Published once per problem, when the
    offer/answer exchange that shows it completes (the same sentence is logged as a WARNING).

    Attributes:
        reason: what is wrong, e.g. "only loopback ICE candidates here (127.0.0.1) and none
            at the far end (203.0.113.5): ...".
    """

    reason: str


@dataclass(frozen=True)
class CallRecovered(CallEvent):
    """The call's signalling is back after the connection to the server was lost: the far
    end accepted our refresh of the dialog (a re-INVITE carrying our new Contact), so its
    requests (a BYE, a re-INVITE) reach us again. When the refresh fails because the far
    end or the server no longer has the call (481, 408, no answer), the call ends instead
    (:class:`CallEnded` naming why).

    Attributes:
        reason: what was recovered from (``"reconnected"``).
    """

    reason: str = "reconnected"


@dataclass(frozen=True)
class MediaStateChanged(CallEvent):
    """The call's ICE or DTLS transport changed state (published from the answer on).

    ``ice`` ``completed`` with ``dtls`` ``connected`` is media up. ``ice`` ``failed`` (no
    candidate pair worked, or the far end stopped answering consent checks, RFC 7675) and
    ``dtls`` ``failed`` end the call (:class:`CallEnded` names why); so does media that is not
    up within ``MediaConfig.liveness.connect_timeout`` of the answer.

    Attributes:
        ice: the ICE transport's state.
        dtls: the DTLS transport's state.
        ice_changed: whether ``ice`` changed (``False``: only ``dtls`` did).
    """

    ice: IceState
    dtls: DtlsState
    ice_changed: bool = True


@dataclass(frozen=True)
class NoMediaWarning(MediaWarning):
    """Nothing (no RTP, no RTCP) has arrived from the far end for ``silent_for`` seconds
    while neither side holds the call (``MediaConfig.liveness.no_media_warning``, default
    10 s): the media path may be down. :class:`MediaWarningCleared` follows if packets come
    back; otherwise the call ends after ``liveness.no_media_grace`` seconds more, with
    :class:`CallEnded` ``reason`` "no audio received for N s: the media path is down" (a BYE
    is sent).

    Attributes:
        silent_for: seconds since the last packet.
    """

    silent_for: float


@dataclass(frozen=True)
class MediaWarningCleared(CallEvent):
    """Packets arrive again after a :class:`NoMediaWarning`.

    Attributes:
        reason: what happened, e.g. "audio received again after 3.2 s".
        silent_for: how long nothing arrived, in seconds.
    """

    reason: str
    silent_for: float


@dataclass(frozen=True)
class QualityWarning(CallEvent):
    """The call's quality dropped: a measurement has been past its threshold for
    ``MediaConfig.quality.thresholds.fire_after`` samples in a row (see
    :mod:`exotel_voice.media.quality`); :class:`QualityWarningCleared` follows once it has
    been back for ``clear_after`` samples. The same sentence is logged as a WARNING.

    Attributes:
        kind: what about: ``high-rtt``, ``high-jitter``, ``high-packet-loss``, ``low-mos``,
            ``constant-audio-input-level`` (our microphone sends silence though the call is
            neither muted nor held) or ``ice-disconnected``.
        value: the measured value (ms for RTT and jitter, percent for loss, the MOS
            estimate, dBFS for the microphone; 1 for ICE disconnected).
        threshold: the threshold it is past.
        remedy: one line saying what is wrong and what to do, e.g. "high packet loss
            (4.2%): the network drops audio; move closer to the Wi-Fi access point or use a
            wired connection".
    """

    kind: QualityWarningKind
    value: float
    threshold: float
    remedy: str


@dataclass(frozen=True)
class QualityWarningCleared(CallEvent):
    """A :class:`QualityWarning` no longer holds.

    Attributes:
        kind: the warning's kind.
        value: the measured value now.
    """

    kind: QualityWarningKind
    value: float


@dataclass(frozen=True)
class CallStatsUpdated(CallEvent):
    """The call's stats, every ``MediaConfig.quality.stats_interval`` seconds (default 5;
    ``None``: never) while the call is connected.

    Attributes:
        stats: the snapshot (what :meth:`Call.stats` returns).
        mos: the estimated MOS of what we hear (ITU-T G.107 E-model, 1-4.5:
            :func:`exotel_voice.media.quality.estimate_mos`), or ``None`` before one.
        loss_percent: packet loss over the last samples' window, in percent (ours, or the
            far end's report of our stream, whichever is worse), or ``None``.
    """

    stats: CallStats
    mos: float | None = None
    loss_percent: float | None = None


@dataclass(frozen=True)
class IceRestarting(CallEvent):
    """The host's addresses changed during the call (an interface went away or appeared, as
    when a laptop moves from Wi-Fi to cable): the call restarts ICE (RFC 8445 §9) with new
    candidates in a re-INVITE.  :class:`IceRestarted` follows with the outcome.

    Attributes:
        change: what changed, e.g. ``"added 10.1.0.2; removed 10.1.0.1"``.
    """

    change: str


@dataclass(frozen=True)
class IceRestarted(CallEvent):
    """The outcome of an :class:`IceRestarting`.

    Attributes:
        ok: ``True`` when the media moved to a new candidate pair (audio flows there);
            ``False`` when the restart could not be done or failed (the call stays on its
            previous pair; if that pair is gone, the media watch ends the call).
        reason: why it failed (empty when ``ok``).
    """

    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class CallEnded(CallEvent):
    """The call is over.

    Attributes:
        by: ``"local"`` (we hung up, rejected or cancelled) or ``"remote"``.
        status: the SIP status involved, if any (486, 487, 408 ...).
        reason: a description.
    """

    by: str
    status: int | None
    reason: str


@dataclass(frozen=True)
class DtmfReceived(PhoneEvent):
    """A DTMF digit arrived (SIP INFO or RFC 4733).

    Attributes:
        call: the call.
        digit: the digit.
        method: ``"info"`` or ``"rfc4733"``.
    """

    call: Call = field(repr=False)
    digit: str
    method: str


@dataclass(frozen=True)
class AudioDevicesChanged(PhoneEvent):
    """Audio devices appeared or went away, or the system default input or output changed.

    Published once the phone watches devices (a device was chosen with
    :meth:`~exotel_voice.client.Phone.set_input_device` / ``set_output_device``, or
    :meth:`~exotel_voice.client.Phone.watch_audio_devices` was called).

    Attributes:
        added: devices that appeared.
        removed: devices that went away.
        default_input: the system's default input now (``None``: there is none).
        default_output: the system's default output now.
        default_input_changed: whether the default input is another device than before.
        default_output_changed: whether the default output is another device than before.
    """

    added: tuple[AudioDevice, ...]
    removed: tuple[AudioDevice, ...]
    default_input: AudioDevice | None
    default_output: AudioDevice | None
    default_input_changed: bool = False
    default_output_changed: bool = False


@dataclass(frozen=True)
class AudioDeviceFallback(PhoneEvent):
    """The input or output device the phone used went away; it uses the default now.

    Live calls were switched to ``device`` in place (a WARNING is logged too).

    Attributes:
        kind: ``INPUT`` or ``OUTPUT``.
        lost: the device that went away.
        device: the device used now (the system default), ``None`` when there is none.
    """

    kind: DeviceKind
    lost: AudioDevice
    device: AudioDevice | None
