"""``ExotelWebClient``: Exotel's Voice WebSDK API (the integration guide's names) for Python.

::

    from exotel_voice import ExotelWebClient

    def register_event(state, phone):            # RegisterEventCallBack
        print("registration:", state)

    def call_listener(call_obj, event_type, phone):   # CallListenerCallback
        if event_type == "incoming":
            ExotelWebClient_instance.getCall().Answer()

    client = ExotelWebClient()
    client.initWebrtc(sip_account_info, register_event, call_listener, None)
    client.DoRegister()                      # returns at once; callbacks follow

This is a thin, synchronous face over the asyncio :class:`~exotel_voice.client.phone.Phone`
and :class:`~exotel_voice.client.call.Call` (one core, two faces): it holds no SIP logic and
no state of its own about the registration or calls. It reads the phone's state, and maps
the phone's typed events to the guide's callback strings. Those strings live here and
nowhere else in the SDK: see :func:`guide_call_event` and the tables next to it.

Threads: each client runs its own asyncio event loop in one daemon thread
(``exotel-voice-<n>``), started by the constructor and stopped by :meth:`ExotelWebClient.close`.
Every callback (register, call, session, ``checkClientStatus``) runs on that thread, in
event order; a callback must not block for long (it would delay that client's SIP and
audio). Methods that start work (``DoRegister``, ``Answer``, ``Hold`` ...) return at once and
can be called from any thread, callbacks included. Operations return an
:class:`~exotel_voice.client._thread.OpFuture` (a ``concurrent.futures.Future``); waiting on
one, or using a blocking helper (``wait_for_registration`` ...), from inside a callback
raises :class:`~exotel_voice.exceptions.InvalidState` instead of deadlocking.

Applications that already run asyncio should use :class:`~exotel_voice.client.phone.Phone`
directly; see docs/quickstart.md and docs/guide-mapping.md.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import logging
import platform
import queue
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from ..audio.sounds import Sounds, Tone, WavSound
from ..config import AccountConfig
from ..diagnostics import (
    DiagnosticsKeyValueCallback,
    DiagnosticsReportCallback,
    DiagnosticsSession,
)
from ..diagnostics.devices import DeviceDiagnostics
from ..diagnostics.network import Check, DiagnosticsReport, Verdict, diagnose
from ..exceptions import AudioSourceError, ConfigurationError, InvalidState, SipError
from ..media import AudioSource, MediaConfig, WavFileSink
from ._thread import LoopThread, OpFuture
from .call import Call, CallState
from .events import (
    AudioDevicesChanged,
    CallConnected,
    CallEnded,
    CallEvent,
    CallHeld,
    CallIncoming,
    CallMuted,
    CallRecovered,
    CallResumed,
    CallRinging,
    CallStatsUpdated,
    CallUnmuted,
    DtmfReceived,
    IceRestarted,
    IceRestarting,
    MediaStateChanged,
    PhoneEvent,
    PhoneStatus,
    QualityWarning,
    QualityWarningCleared,
    RegistrationState,
    RegistrationStateChanged,
)
from .logbridge import LoggerCallback, forget_secret, remember_secret, set_logger_callback
from .phone import Phone


if TYPE_CHECKING:
    from ..rest import ExotelClient


__all__ = ["ClientStatus", "ExotelCall", "ExotelWebClient", "OpFuture", "guide_call_event"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: ``RegisterEventCallBack(state, phone)``.
RegisterEventCallBack = Callable[[str, str], object]
#: ``CallListenerCallback(callObj, eventType, phone)``.
CallListenerCallback = Callable[["ExotelCall", str, str], object]
#: ``SessionCallback(state, phone)``.
SessionCallback = Callable[[str, str], object]
#: ``checkClientStatus`` callback ``(status)``.
ClientStatusCallback = Callable[[str], object]
#: ``DTMFCallback(callObj, digit, phone)`` (ours: the guide has no received-DTMF callback).
DTMFCallback = Callable[["ExotelCall", str, str], object]
#: ``CallQualityCallback(callObj, report, phone)`` (ours: the guide reports no call quality).
CallQualityCallback = Callable[["ExotelCall", dict[str, Any], str], object]
#: 5.14: ``audioInputDeviceCallback(deviceId)`` / ``audioOutputDeviceCallback(deviceId)``.
AudioDeviceCallback = Callable[[str], object]
#: 5.14: ``onSuccess()`` and ``onError(error)`` of changeAudioInputDevice/OutputDevice.
SuccessCallback = Callable[[], object]
ErrorCallback = Callable[[str], object]

#: Keys of the guide's callObj (section 5.4) plus ours, in the order ``keys()`` gives them.
CALL_OBJ_KEYS = (
    "callId",
    "callState",
    "callDirection",
    "callStartTime",
    "remoteDisplayName",
    "remoteId",
    "remoteUri",
    "callSid",
    "sipHeaders",
)

#: The statuses of the guide's ``checkClientStatus`` (section 5.13).
ClientStatus = Literal[
    "media_permission_denied",
    "not_initialized",
    "websocket_connection_failed",
    "unregistered",
    "terminated",
    "initial",
    "registered",
    "unknown",
    "disconnected",
    "connecting",
]

# -- The guide's words: the one mapping from the asyncio API's types --------------------------

#: RegisterEventCallBack's state for each registration state of an event.
REGISTER_EVENT_STATES: dict[RegistrationState, str] = {
    RegistrationState.REGISTERING: "sent_request",
    RegistrationState.UNREGISTERING: "sent_request",
    RegistrationState.REGISTERED: "registered",
    RegistrationState.UNREGISTERED: "unregistered",
    RegistrationState.FAILED: "terminated",
}

#: ``checkClientStatus`` for each :class:`PhoneStatus`.
CLIENT_STATUSES: dict[PhoneStatus, ClientStatus] = {
    PhoneStatus.NOT_STARTED: "not_initialized",
    PhoneStatus.MEDIA_UNAVAILABLE: "media_permission_denied",
    PhoneStatus.CONNECTING: "connecting",
    PhoneStatus.CONNECTION_FAILED: "websocket_connection_failed",
    PhoneStatus.DISCONNECTED: "disconnected",
    PhoneStatus.REGISTERING: "initial",
    PhoneStatus.REGISTERED: "registered",
    PhoneStatus.FAILED: "terminated",
    PhoneStatus.UNREGISTERED: "unregistered",
}

#: The callObj's ``callState`` for each :class:`CallState`.
CALL_STATES: dict[CallState, str] = {
    CallState.INCOMING: "incoming",
    CallState.CALLING: "calling",
    CallState.RINGING: "ringing",
    CallState.CONNECTED: "connected",
    CallState.ENDED: "ended",
}


#: initWebrtc's default ``sounds``: the built-in ringtone, ringback and DTMF beep.
_DEFAULT_SOUNDS = Sounds()


def guide_call_event(event: CallEvent) -> tuple[str | None, str | None]:
    """The guide's ``(SessionCallback state, CallListenerCallback event)`` for a call event.

    ``None`` where that callback gets nothing (e.g. a repeated 180 is only progress).
    SessionCallback gets the guide's own words (5.10: ``incoming`` / ``connected`` /
    ``callEnded``, whoever ended the call), and the JS SDK's ``muted`` ... for the rest:
    ``ice_connection_state_<state>`` for the media's ICE state, a media blackout and its
    end, and an ICE restart after a network change (``checking``, then the state it ended
    in).
    """
    match event:
        case CallIncoming():
            return "incoming", "incoming"
        case CallRinging():
            return None, "ringing"
        case CallConnected():
            return "connected", "connected"
        case CallEnded(by="local"):
            return "callEnded", "callEnded"
        case CallEnded():
            return "callEnded", "terminated"
        case CallMuted():
            return "muted", None
        case CallUnmuted():
            return "unmuted", None
        case CallHeld(by="remote"):
            return "remote_hold", None
        case CallResumed(by="remote"):
            return "remote_unhold", None
        case CallHeld() | CallResumed():
            return "holdunhold_success", None
        case CallRecovered():
            # Session continuity (5.4): the call lived through a lost connection.
            return None, "activeSession"
        # The JS SDK forwards the peer connection's ICE state as these. A media blackout
        # is "disconnected" after LivenessConfig.ice_disconnected_after (5 s, as a browser
        # reports it), and the transport's own state again with the first packet back; the
        # later NoMediaWarning / MediaWarningCleared add nothing a browser would say.
        case MediaStateChanged(ice_changed=True):
            return f"ice_connection_state_{event.ice}", None
        # A network change: a browser's ICE restart runs new connectivity checks
        # ("checking"); its outcome is the ICE state of now ("completed" on the new pair, or
        # the state of the pair a failed restart left the call on: it may still carry audio,
        # so not the browser's "failed"; the media watch reports that pair's death).
        case IceRestarting():
            return "ice_connection_state_checking", None
        case IceRestarted():
            media = event.call.media
            if media is None:  # the call ended meanwhile: its end is reported
                return None, None
            return f"ice_connection_state_{media.ice_state}", None
    return None, None


#: The network keys the JS SDK reports as ``waiting`` first, in its order.
NETWORK_WAITING_KEYS = ("udp", "tcp", "host", "srflx")
#: The troubleshooting log's ``NETWORK EVENT = <NAME>_TEST_...`` names of the ICE checks.
NETWORK_TEST_NAMES = {"udp": "UDP", "tcp": "TCP", "host": "HOST_CON", "srflx": "REFLEX_CON",
                      "relay": "RELAY_CON"}


def guide_network_key_value(check: Check, user_name: str) -> tuple[str, str | float, str]:
    """One network :class:`~exotel_voice.diagnostics.network.Check` as the guide's
    ``diagnosticsKeyValueCallback(key, status, description)`` arguments.

    ``wss``: ``connected``/``disconnected`` and the URL; ``userReg``:
    ``registered``/``unregistered`` and the ``userName``; ``rtt``: milliseconds (a float)
    and ``"rtt ok"``, or ``disconnected`` and why; the ICE keys: ``connected`` and the
    candidate line, or ``disconnected`` and ``""``.
    """
    ok = check.verdict in (Verdict.OK, Verdict.WARNING)
    if check.name == "wss":
        return "wss", "connected" if ok else "disconnected", check.value
    if check.name == "userReg":
        return "userReg", "registered" if check.ok else "unregistered", user_name
    if check.name == "rtt":
        if check.ok and check.value.endswith(" ms"):
            return "rtt", float(check.value[:-3]), "rtt ok"
        return "rtt", "disconnected", check.detail
    if check.candidate and ok:
        return check.name, "connected", check.candidate
    return check.name, "disconnected", ""


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def guide_quality_report(
    event: QualityWarning | QualityWarningCleared | CallStatsUpdated,
) -> dict[str, Any]:
    """The ``report`` dict :meth:`ExotelWebClient.registerCallQualityCallback`'s callback
    gets for a quality event (camelCase keys, as the guide's callObj):

    * ``{"type": "warning", "name": "high-packet-loss", "value": 4.2, "threshold": 1.0,
      "message": "high packet loss (4.2%): the network drops audio; ..."}``;
    * ``{"type": "warning-cleared", "name": "high-packet-loss", "value": 0.3}``;
    * ``{"type": "stats", "mos": 4.38, "packetLossPercent": 0.4, "stats": {"codec":
      "PCMU", "packetsSent": ..., "rttMs": ..., "audioLevelOutDbfs": ..., ...}}`` (every
      :class:`~exotel_voice.media.quality_stats.CallStats` field, camelCase).

    Warning names are Twilio's (``high-rtt``, ``high-jitter``, ``high-packet-loss``,
    ``low-mos``, ``constant-audio-input-level``) and ``ice-disconnected``.
    """
    if isinstance(event, QualityWarning):
        return {"type": "warning", "name": str(event.kind), "value": event.value,
                "threshold": event.threshold, "message": event.remedy}
    if isinstance(event, QualityWarningCleared):
        return {"type": "warning-cleared", "name": str(event.kind), "value": event.value}
    return {
        "type": "stats",
        "mos": event.mos,
        "packetLossPercent": event.loss_percent,
        "stats": {_camel(k): v for k, v in asdict(event.stats).items()},
    }


_counter = itertools.count(1)
_live_clients: weakref.WeakSet[ExotelWebClient] = weakref.WeakSet()


class ExotelCall(Mapping[str, Any]):
    """One call, as the guide sees it: both the ``callObj`` and the ``getCall()`` object.

    The same object is passed as ``callObj`` to every ``CallListenerCallback`` of one call
    and returned by :meth:`ExotelWebClient.getCall` while that call is the current one.

    * The guide's call methods: :meth:`Answer`, :meth:`Hangup`, :meth:`Mute`,
      :meth:`UnMute`, :meth:`MuteToggle`, :meth:`Hold`, :meth:`UnHold`,
      :meth:`HoldToggle`, :meth:`sendDTMF`; ours for audio: :meth:`setSource`,
      :meth:`startRecording`, :meth:`stopRecording`. Each returns at once with an
      :class:`OpFuture`; failures are logged and set on the future, never raised
      (:meth:`receivedFrames` and the ``wait_*`` helpers block instead).
    * The guide's callObj fields as attributes (``call_obj.callId``) and as a read-only
      dict (``call_obj["callId"]``, ``dict(call_obj)``): ``callId`` (SIP Call-ID),
      ``callState`` (``incoming``/``calling``/``ringing``/``connected``/``ended``),
      ``callDirection`` (``incoming``/``outgoing``), ``callStartTime`` (local ISO time),
      ``remoteDisplayName``, and ours: ``remoteId`` (the far end's number/user),
      ``remoteUri``, ``callSid`` (``X-Exotel-Callsid``), ``sipHeaders`` (every header of
      the INVITE). Values are live: they follow the call's state.

    When there is no call, :meth:`ExotelWebClient.getCall` returns an empty, *falsy*
    ``ExotelCall`` whose methods log a warning and return a future failed with
    :class:`InvalidState` (so the guide's ``if (call) call.sendDTMF(d)`` works as written).
    """

    def __init__(self, client: ExotelWebClient, call: Call | None) -> None:
        self._client = client
        self._call = call
        self._recording: WavFileSink | None = None  # touched on the loop thread only

    # -- identity ----------------------------------------------------------------------------
    def __repr__(self) -> str:
        if self._call is None:
            return "<ExotelCall (no call)>"
        return f"<ExotelCall {self.callDirection} {self.callState} {self.remoteUri}>"

    __eq__ = object.__eq__
    __hash__ = object.__hash__

    @property
    def call(self) -> Call | None:
        """The asyncio :class:`Call` underneath (``None`` for the empty handle)."""
        return self._call

    # -- Mapping -----------------------------------------------------------------------------
    def callDetails(self) -> dict[str, Any]:  # noqa: N802 - the JS SDK's name
        """A plain-dict snapshot of the callObj fields (``{}`` when there is no call)."""
        call = self._call
        if call is None:
            return {}
        return {
            "callId": call.call_id,
            "callState": CALL_STATES[call.state],
            "callDirection": call.direction,
            "callStartTime": time.strftime(
                "%Y-%m-%dT%H:%M:%S", time.localtime(call.start_time)
            ),
            "remoteDisplayName": call.remote_display_name,
            "remoteId": call.remote_number,
            "remoteUri": call.remote_uri,
            "callSid": call.call_sid or "",
            "sipHeaders": call.headers,
        }

    def __getitem__(self, key: str) -> Any:
        if self._call is None or key not in CALL_OBJ_KEYS:
            raise KeyError(key)
        return self.callDetails()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(CALL_OBJ_KEYS if self._call is not None else ())

    def __len__(self) -> int:
        return len(CALL_OBJ_KEYS) if self._call is not None else 0

    def _field(self, key: str, default: Any = "") -> Any:
        return self.callDetails().get(key, default) if self._call is not None else default

    @property
    def callId(self) -> str:  # noqa: N802
        """The SIP Call-ID."""
        return str(self._field("callId"))

    @property
    def callState(self) -> str:  # noqa: N802
        """``incoming``, ``calling``, ``ringing``, ``connected`` or ``ended``."""
        return str(self._field("callState"))

    @property
    def callDirection(self) -> str:  # noqa: N802
        """``incoming`` or ``outgoing``."""
        return str(self._field("callDirection"))

    @property
    def callStartTime(self) -> str:  # noqa: N802
        """When the INVITE was sent or received (local time, ISO 8601)."""
        return str(self._field("callStartTime"))

    @property
    def remoteDisplayName(self) -> str:  # noqa: N802
        """The far end's display name, or its user part when it sent none."""
        return str(self._field("remoteDisplayName"))

    @property
    def remoteId(self) -> str:  # noqa: N802
        """The far end's number or SIP user (the caller's number for incoming calls)."""
        return str(self._field("remoteId"))

    @property
    def remoteUri(self) -> str:  # noqa: N802
        """The far end's SIP URI."""
        return str(self._field("remoteUri"))

    @property
    def callSid(self) -> str:  # noqa: N802
        """Exotel's ``X-Exotel-Callsid`` header of the INVITE, or ``""``."""
        return str(self._field("callSid"))

    @property
    def sipHeaders(self) -> dict[str, Any]:  # noqa: N802
        """Every header of the initial INVITE (a list when a header repeats)."""
        value = self._field("sipHeaders", {})
        return dict(value) if isinstance(value, Mapping) else {}

    def header(self, name: str) -> str | None:
        """One INVITE header by case-insensitive name, or ``None``."""
        return self._call.header(name) if self._call is not None else None

    # -- the guide's methods -----------------------------------------------------------------
    def Answer(self, source: AudioSource | None = None) -> OpFuture[None]:  # noqa: N802
        """Answer the ringing incoming call (5.5). "connected" follows in the callback.

        Args:
            source: what to send (ours; default: a new source from ``initWebrtc(source=)``,
                else silence).

        When that source cannot be opened (a missing device, an unreadable WAV file), the
        guide's ``media_permission_denied`` goes to SessionCallback, the call is rejected
        with 480 Temporarily Unavailable (as the JS SDK does), so that the platform can
        offer it elsewhere, and the future fails with
        :class:`~exotel_voice.exceptions.AudioSourceError`.
        """
        return self._op("Answer", lambda c: self._client._answer(c, source))

    def Hangup(self, status: int | None = None, reason: str | None = None) -> OpFuture[None]:  # noqa: N802
        """End the call (5.6): reject if ringing (486 Busy Here, or ``status``), cancel if
        still calling, BYE if connected. "callEnded" follows in the callback."""
        return self._op("Hangup", lambda c: c.hangup(status, reason))

    def Mute(self) -> OpFuture[None]:  # noqa: N802
        """Send silence instead of our audio (5.7). No-op if already muted.

        On an ended call the future fails with :class:`InvalidState` (as Hold's does).
        """
        return self._op_sync("Mute", lambda c: c.mute())

    def UnMute(self) -> OpFuture[None]:  # noqa: N802
        """Send our audio again (5.7). No-op if not muted."""
        return self._op_sync("UnMute", lambda c: c.unmute())

    def MuteToggle(self) -> OpFuture[None]:  # noqa: N802
        """Flip mute (5.7)."""
        return self._op_sync("MuteToggle", lambda c: c.toggle_mute())

    def Hold(self) -> OpFuture[None]:  # noqa: N802
        """Put the far end on hold: re-INVITE with ``a=sendonly`` (5.8). No-op if on hold.

        SessionCallback gets ``holdunhold_success`` or ``holdunhold_failed``.
        """
        return self._op("Hold", lambda c: self._client._hold(c, True))

    def UnHold(self) -> OpFuture[None]:  # noqa: N802
        """Resume a held call: re-INVITE with ``a=sendrecv`` (5.8). No-op if not on hold."""
        return self._op("UnHold", lambda c: self._client._hold(c, False))

    def HoldToggle(self) -> OpFuture[None]:  # noqa: N802
        """Flip hold (5.8)."""
        return self._op("HoldToggle", lambda c: self._client._hold(c, not c.on_hold))

    def sendDTMF(self, digit: str, method: str = "info") -> OpFuture[None]:  # noqa: N802
        """Send DTMF (5.9): ``0-9``, ``A-D``, ``*``, ``#`` (several digits allowed).

        Args:
            digit: the digit(s).
            method: ``"info"`` (SIP INFO ``application/dtmf-relay``, as Exotel's SDK),
                ``"rfc4733"`` or ``"auto"``.
        """
        return self._op("sendDTMF", lambda c: c.send_dtmf(str(digit), method=method))

    # -- audio (ours: the guide's calls use the browser's microphone and speaker) -----------
    def setSource(self, source: AudioSource) -> OpFuture[None]:  # noqa: N802
        """Send from ``source`` (a ``ToneSource``, ``WavFileSource`` ...) from now on.

        The call must have media (answered, or an outgoing call that connected); else the
        future fails with :class:`InvalidState`.
        """
        return self._op("setSource", lambda c: _set_source(c, source))

    def startRecording(self, path: str) -> OpFuture[None]:  # noqa: N802
        """Record the received audio to a mono 16-bit WAV file at ``path`` (overwritten),
        until :meth:`stopRecording` or the end of the call. Needs media, as
        :meth:`setSource`."""
        return self._op_sync("startRecording", lambda c: self._start_recording(c, path))

    def stopRecording(self) -> OpFuture[None]:  # noqa: N802
        """Stop the recording and close its file. No-op if not recording."""
        return self._op_sync("stopRecording", lambda c: self._stop_recording())

    def receivedFrames(  # noqa: N802
        self, count: int = 50, *, sample_rate: int = 16000, timeout: float | None = 10.0
    ) -> list[Any]:
        """Block until ``count`` frames of received audio (20 ms int16 numpy arrays at
        ``sample_rate``) have arrived from now on, and return them. Not from a callback.

        Waits for the call's media first. Returns fewer frames (maybe none) if the call ends.

        Raises:
            TimeoutError: not within ``timeout`` seconds (the frames so far are dropped).
            InvalidState: there is no call, or called from a callback.
        """
        call = self._need_call("receivedFrames")
        client = self._client

        async def read() -> list[Any]:
            return await _read_frames(call, count, sample_rate, timeout)

        return client._thread.run(read, None if timeout is None else timeout + 1.0)

    # -- blocking helpers --------------------------------------------------------------------
    def wait_connected(self, timeout: float | None = 10.0) -> None:
        """Block until the call is connected (not from a callback).

        Raises:
            SipError: the call ended first. TimeoutError: not within ``timeout``.
            InvalidState: there is no call, or called from a callback.
        """
        call = self._need_call("wait_connected")
        self._client._thread.run(lambda: call.wait_connected(timeout))

    def wait_ended(self, timeout: float | None = 10.0) -> None:
        """Block until the call has ended (not from a callback).

        Raises:
            TimeoutError: not within ``timeout``. InvalidState: no call / from a callback.
        """
        call = self._need_call("wait_ended")
        if call.ended:
            return
        self._client._thread.run(lambda: call.wait_ended(timeout))

    # -- plumbing ----------------------------------------------------------------------------
    def _start_recording(self, call: Call, path: str) -> None:
        media = call.media
        if media is None or call.ended:
            raise InvalidState(f"cannot record a call that is {call.state} (no media)")
        self._stop_recording()
        self._recording = WavFileSink(path)
        media.add_sink(self._recording)

    def _stop_recording(self) -> None:
        sink, self._recording = self._recording, None
        call = self._call
        if sink is None:
            return
        if call is not None and call.media is not None:
            call.media.remove_sink(sink)  # closes the file
        else:
            sink.close()

    def _need_call(self, what: str) -> Call:
        if self._call is None:
            raise InvalidState(f"{what}(): there is no call")
        return self._call

    def _op(self, name: str, action: Callable[[Call], Awaitable[None]]) -> OpFuture[None]:
        call = self._call
        if call is None:
            return self._client._no_call(name)
        return self._client._start(name, lambda: action(call))

    def _op_sync(self, name: str, action: Callable[[Call], None]) -> OpFuture[None]:
        call = self._call
        if call is None:
            return self._client._no_call(name)

        async def run() -> None:
            action(call)

        return self._client._start(name, run)


async def _set_source(call: Call, source: AudioSource) -> None:
    if call.ended:
        raise InvalidState(f"cannot set the source of a call that is {call.state}")
    await call.set_source(source)


async def _read_frames(
    call: Call, count: int, sample_rate: int, timeout: float | None
) -> list[Any]:
    """``count`` received frames from now on (fewer if the call ends), on the loop."""
    frames: list[Any] = []
    received = call.received_frames(sample_rate=sample_rate, max_frames=max(50, count))
    async with asyncio.timeout(timeout), received:
        async for frame in received:
            frames.append(frame)
            if len(frames) >= count:
                break
    return frames


class ExotelWebClient:
    """Exotel's ``ExotelWebClient`` (integration guide section 5), one per SIP account.

    Create one, call :meth:`initWebrtc` with the guide's ``sipAccountInfo`` dict and
    callbacks, then :meth:`DoRegister`. See the module docstring for threads, and
    docs/guide-mapping.md for every difference from Exotel's JS SDK.

    Only one client per ``userName`` may be initialised in a process at a time (the JS SDK's
    Dup-Reg guard); the name is released by :meth:`UnRegister` and :meth:`close`.
    """

    _pool: ClassVar[weakref.WeakValueDictionary[str, ExotelWebClient]] = (
        weakref.WeakValueDictionary()
    )
    _pool_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self._number = next(_counter)
        self._thread = LoopThread(f"exotel-voice-{self._number}")
        self._account: AccountConfig | None = None
        self._media: MediaConfig | None = None
        self._source: Callable[[], AudioSource] | None = None
        self._ring_timeout: float | None = 60.0
        self._sounds: Sounds | None = Sounds()
        # 5.11: initDiagnostics' state (the callbacks and the troubleshooting log).
        self._diagnostics: DiagnosticsSession | None = None
        # 5.11's speaker and mic tests (touched only on the loop thread once created).
        self._device_diagnostics: DeviceDiagnostics | None = None
        self._register_cb: RegisterEventCallBack | None = None
        self._call_cb: CallListenerCallback | None = None
        self._session_cb: SessionCallback | None = None
        self._dtmf_cb: DTMFCallback | None = None
        self._quality_cb: CallQualityCallback | None = None
        # 5.14: the devices chosen before there was a phone (applied when it is made), and
        # registerAudioDeviceChangeCallback's callbacks (loop thread).
        self._audio_input: str | None = None
        self._audio_output: str | None = None
        self._device_cbs: tuple[AudioDeviceCallback | None, AudioDeviceCallback | None,
                                Callable[[dict[str, Any]], object] | None] | None = None
        # Touched only on the loop thread:
        self._phone: Phone | None = None
        self._phone_done = False
        # The last registration outcome of any phone of this client.
        self._last_outcome: RegistrationState | None = None
        self._register_task: asyncio.Task[Any] | None = None
        self._wrappers: dict[int, ExotelCall] = {}
        # Shared with other threads (under _cond). _reg_wanted: DoRegister was called and
        # UnRegister not since (the application's intent, set before the loop thread acts
        # on it; the registration's state itself is the phone's, read by registration_state).
        self._cond = threading.Condition()
        self._reg_wanted = False
        # The newest registration outcome whose RegisterEventCallBack has run (None since
        # DoRegister): wait_for_registration() returns only after the application heard it.
        self._delivered: RegistrationState | None = None
        # The state RegisterEventCallBack was last given since DoRegister (None: none yet):
        # what DoRegister, called from that callback, decides by.
        self._told: str | None = None
        self._live: list[ExotelCall] = []
        self._unregistered = threading.Event()
        self._unregistered.set()
        self._incoming: queue.Queue[ExotelCall] = queue.Queue()
        self._pooled_name: str | None = None
        self._secret: str | None = None
        self._closed = False
        #: The error of the last failed :meth:`initWebrtc` (or other refused call), or of
        #: the last registration that ended ``terminated`` (a
        #: :class:`~exotel_voice.exceptions.TransportError` naming a certificate problem,
        #: an :class:`~exotel_voice.exceptions.AuthenticationError` ...), or ``None``.
        self.last_error: Exception | None = None
        _live_clients.add(self)

    def __repr__(self) -> str:
        name = self._account.user_name if self._account is not None else "-"
        state = "closed" if self._closed else (self.registration_state or "idle")
        return f"<ExotelWebClient #{self._number} {name} {state}>"

    def __enter__(self) -> ExotelWebClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- properties --------------------------------------------------------------------------
    @property
    def userName(self) -> str | None:  # noqa: N802
        """The initialised account's ``userName`` (the callbacks' ``phone``), or ``None``."""
        return self._account.user_name if self._account is not None else None

    @property
    def account(self) -> AccountConfig | None:
        """The :class:`AccountConfig` built from ``sipAccountInfo`` (secret hidden in repr)."""
        return self._account

    @property
    def phone(self) -> Phone | None:
        """The asyncio :class:`Phone` underneath (created by :meth:`DoRegister`), or ``None``.

        Use it only from the client's loop thread (``client.loop``).
        """
        return self._phone

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The client's event loop (running in its own thread)."""
        return self._thread.loop

    @property
    def thread(self) -> threading.Thread:
        """The thread the callbacks run on."""
        return self._thread.thread

    @property
    def registration_state(self) -> str:
        """The registration, in the guide's words: ``""`` (never asked), ``"pending"``
        (DoRegister called, not registered yet or not again), ``registered``,
        ``unregistered`` or ``terminated`` (failed). Read from the phone's state."""
        phone = self._phone
        wanted = self._reg_wanted
        state = phone.registration_state if phone is not None else None
        if state is RegistrationState.REGISTERED:
            return "registered"
        if state is RegistrationState.FAILED:
            return "terminated"
        if wanted:
            return "pending"
        return "" if state is None else "unregistered"

    # -- 5.1 initWebrtc ----------------------------------------------------------------------
    def initWebrtc(  # noqa: N802
        self,
        sipAccountInfo: Mapping[str, Any],  # noqa: N803
        RegisterEventCallBack: RegisterEventCallBack | None = None,  # noqa: N803
        CallListenerCallback: CallListenerCallback | None = None,  # noqa: N803
        SessionCallback: SessionCallback | None = None,  # noqa: N803
        *,
        media: MediaConfig | None = None,
        source: Callable[[], AudioSource] | None = None,
        ring_timeout: float | None = 60.0,
        sounds: Sounds | None = _DEFAULT_SOUNDS,
        strict: bool = False,
    ) -> bool:
        """Validate ``sipAccountInfo`` and store the callbacks (5.1). No network activity.

        Args:
            sipAccountInfo: the guide's dict: ``userName``, ``authUser``, ``sipdomain``,
                ``domain`` ("host:port"), ``displayname``, ``secret``, ``port``,
                ``security`` ("wss"/"ws"), optional ``endpoint``; Python extras ``wsUrl``
                (full URL), ``caFile`` (PEM CA bundle for wss), ``insecureSkipVerify``
                (``True`` turns TLS verification off, with a warning).
            RegisterEventCallBack: ``(state, phone)``.
            CallListenerCallback: ``(callObj, eventType, phone)``.
            SessionCallback: ``(state, phone)``.
            media: ICE/codec settings for calls (e.g.
                ``MediaConfig(ice=IceConfig(host_addresses=["127.0.0.1"]))``).
            source: a factory of the audio each call sends (default silence).
            ring_timeout: seconds an unanswered incoming call rings before 480.
            sounds: the ringtone, ringback and DTMF beep played on the selected output
                device (:class:`~exotel_voice.audio.sounds.Sounds`); on by default, as in
                the JS SDK; ``None`` turns them all off. Without the ``[audio]`` extra they
                are off (one INFO line).
            strict: raise instead of returning ``False``.

        Returns:
            ``True`` on success; ``False`` on bad input, with the error logged (ERROR,
            naming the field) and kept in :attr:`last_error` -- like the JS SDK.

        Raises:
            TypeError: called on the class (``ExotelWebClient.initWebrtc(info, ...)``, as the
                guide writes it for the JS module) instead of on a client; the message shows
                the fix, ``client = ExotelWebClient(); client.initWebrtc(...)``.
            ConfigurationError: (``strict=True`` only) a field is missing or invalid;
                ``.field`` names it (every missing required key at once).
            InvalidState: (``strict=True`` only) the ``userName`` is used by another client,
                this client is registered (UnRegister first), or it is closed.
        """
        if not isinstance(self, ExotelWebClient):
            # The guide's `exWebClient.initWebrtc(...)` on the class: self is the dict.
            raise TypeError(
                "initWebrtc() is called on a client, not on the class: "
                "client = ExotelWebClient(); client.initWebrtc(sipAccountInfo, "
                "RegisterEventCallBack, CallListenerCallback, SessionCallback); then "
                "client.DoRegister()"
            )
        try:
            if self._closed:
                raise InvalidState("initWebrtc(): the client is closed")
            for arg, cb in (
                ("RegisterEventCallBack", RegisterEventCallBack),
                ("CallListenerCallback", CallListenerCallback),
                ("SessionCallback", SessionCallback),
                ("source", source),
            ):
                if cb is not None and not callable(cb):
                    raise ConfigurationError(arg, "must be a function or None")
            if media is not None and not isinstance(media, MediaConfig):
                raise ConfigurationError("media", "must be a MediaConfig")
            if sounds is not None and not isinstance(sounds, Sounds):
                raise ConfigurationError("sounds", "must be a Sounds or None")
            if isinstance(sipAccountInfo, Mapping):
                insecure = sipAccountInfo.get("insecureSkipVerify", False)
                if insecure is not None and not isinstance(insecure, bool):
                    raise ConfigurationError("insecureSkipVerify", "must be True or False")
            account = AccountConfig.from_sip_account_info(sipAccountInfo)
            with self._cond:
                if self._reg_wanted or not self._unregistered.is_set():
                    raise InvalidState(
                        "initWebrtc(): this client is registered; call UnRegister() first"
                    )
            previous_name = self._pooled_name
            self._acquire_name(account.user_name)
        except (ConfigurationError, InvalidState) as exc:
            self.last_error = exc
            if "[Dup-Reg]" in str(exc):
                logger.warning("! initWebrtc: %s", exc)
            else:
                logger.error("! initWebrtc: %s", exc)
            if strict:
                raise
            return False
        if previous_name is not None and previous_name != account.user_name:
            with ExotelWebClient._pool_lock:
                if ExotelWebClient._pool.get(previous_name) is self:
                    del ExotelWebClient._pool[previous_name]
        if self._secret is not None:
            forget_secret(self._secret)
        self._secret = account.secret
        remember_secret(account.secret)
        if account.tls.insecure_skip_verify:
            logger.warning(
                "! initWebrtc: insecureSkipVerify is set: TLS certificates of %s will NOT be "
                "verified (development only)", account.ws_url,
            )
        self._account = account
        self._media = media
        self._source = source
        self._ring_timeout = ring_timeout
        self._sounds = sounds
        self._register_cb = RegisterEventCallBack
        self._call_cb = CallListenerCallback
        self._session_cb = SessionCallback
        self.last_error = None
        if self._phone_done:
            self._phone = None  # a new account: the old phone's state is not ours any more
        logger.info("= initWebrtc: %s at %s", account.user_name, account.ws_url)
        return True

    # -- 5.2 / 5.3 registration --------------------------------------------------------------
    def DoRegister(self) -> bool:  # noqa: N802
        """Connect and register (5.2). Returns at once; RegisterEventCallBack follows.

        Keeps the registration alive (refreshes; reconnects and re-registers after a lost
        connection) until :meth:`UnRegister`.

        Returns:
            ``True`` if registration was started, or is in progress already (a REGISTER sent
            and no answer told yet: nothing is restarted); ``False`` (error logged, in
            :attr:`last_error`) before :meth:`initWebrtc`, after :meth:`close`, when the
            ``userName`` is now used by another client, or when RegisterEventCallBack was
            last told ``registered``. After ``unregistered`` or ``terminated`` (the 5.12
            retry) it starts a new attempt at once.
        """
        if not self._ready("DoRegister"):
            return False
        assert self._account is not None
        try:
            self._acquire_name(self._account.user_name)
        except InvalidState as exc:
            self.last_error = exc
            logger.warning("! DoRegister: %s", exc)
            return False
        with self._cond:
            # Decided by what RegisterEventCallBack was last told, so that the guide's 5.12
            # retry (DoRegister from the callback) acts on the state the callback saw.
            told = self._told if self._reg_wanted else None
            if told == "registered":
                logger.warning("! DoRegister: %s is already registered", self._account.user_name)
                return False
            if self._reg_wanted and told in (None, "sent_request"):
                # A REGISTER is on its way: restarting would only send another (and, from a
                # "sent_request" callback, again and again).
                logger.info("= DoRegister: %s: registration already in progress",
                            self._account.user_name)
                return True
            self._reg_wanted = True
            self._told = None
            self._delivered = None
            self._unregistered.clear()
            self._cond.notify_all()
        self._start("DoRegister", self._do_register)
        return True

    def UnRegister(self) -> bool:  # noqa: N802
        """Remove the registration and disconnect (5.3). Returns at once.

        RegisterEventCallBack gets ``sent_request`` and then ``unregistered`` (when the
        registrar answers). Calls in progress are hung up. The ``userName`` is released, so
        another client may use it; this one may :meth:`DoRegister` again.

        Returns:
            ``True`` if an un-registration was started; ``False`` (logged) before
            :meth:`initWebrtc` or after :meth:`close`.
        """
        if not self._ready("UnRegister"):
            return False
        with self._cond:
            self._reg_wanted = False
        self._release_name()
        self._start("UnRegister", self._do_unregister)
        return True

    def unregister(self) -> bool:
        """Alias of :meth:`UnRegister` (the name the guide's 5.12 snippet uses)."""
        return self.UnRegister()

    # -- 5.5 getCall, MakeCall ---------------------------------------------------------------
    def getCall(self) -> ExotelCall:  # noqa: N802
        """The current call's :class:`ExotelCall` (the newest that has not ended).

        When there is none, an empty, falsy ``ExotelCall`` whose methods log a warning and
        return a failed future (never ``None``, never an exception).
        """
        with self._cond:
            if self._live:
                return self._live[-1]
        return ExotelCall(self, None)

    def MakeCall(  # noqa: N802
        self,
        number: str,
        headers: Mapping[str, str] | None = None,
        source: AudioSource | None = None,
    ) -> OpFuture[ExotelCall]:
        """Place an outgoing call (not in the guide; Exotel's SDK is inbound-only).

        Args:
            number: a number or SIP user (dialled at ``sipdomain``), ``user@host`` or a SIP URI.
            headers: extra INVITE headers, e.g. ``{"X-Ticket": "42"}``.
            source: what to send (default: ``initWebrtc(source=...)``, else silence).

        Returns:
            A future of the call's :class:`ExotelCall`, set once the INVITE is sent.
            CallListenerCallback then gets ``ringing``, ``connected``, ``callEnded`` /
            ``terminated``. Fails with :class:`InvalidState` when not connected.
        """
        if not self._ready("MakeCall"):
            return self._failed(InvalidState("MakeCall(): call initWebrtc() first"))

        async def dial() -> ExotelCall:
            phone = self._phone
            if phone is None or self._phone_done:
                raise InvalidState("MakeCall(): not registered; call DoRegister() first")
            call = await phone.dial(number, headers=dict(headers or {}), source=source)
            wrapper = self._wrap(call)
            with self._cond:
                if not call.ended and wrapper not in self._live:
                    self._live.append(wrapper)
            return wrapper

        return self._start("MakeCall", dial)

    def clickToCall(  # noqa: N802
        self, to: str, rest: ExotelClient, *, caller_id: str, timeout: float = 30.0,
        **options: Any,
    ) -> ExotelCall:
        """Start a click-to-call (guide section 6) and return this phone's ringing call.

        Calls ``rest.connect(from_=userName, to=to, caller_id=caller_id, **options)`` (an
        :class:`exotel_voice.rest.ExotelClient`), then waits for the incoming call whose
        ``callSid`` (``X-Exotel-Callsid``) is the REST Sid. CallListenerCallback still gets
        its ``incoming``; :meth:`wait_for_call` will not return this call. Blocking: not
        from a callback.

        Raises:
            RestError: the REST request failed.
            TimeoutError: no such call within ``timeout`` seconds (the Sid is in the message).
        """
        self._no_wait_in_callback("clickToCall")
        if not self._ready("clickToCall") or self._account is None:
            raise self.last_error or InvalidState("clickToCall(): call initWebrtc() first")
        deadline = time.monotonic() + timeout
        resource = rest.connect(
            from_=self._account.user_name, to=to, caller_id=caller_id, **options
        )

        def find() -> ExotelCall | None:
            for wrapper in self._live:
                if wrapper.call is not None and wrapper.call.call_sid == resource.sid:
                    return wrapper
            return None

        with self._cond:
            found = self._cond.wait_for(find, max(0.0, deadline - time.monotonic()))
        if found is None:
            raise TimeoutError(f"click-to-call {resource.sid}: no incoming call with that "
                               f"X-Exotel-Callsid within {timeout} s")
        with self._incoming.mutex:
            try:
                self._incoming.queue.remove(found)
            except ValueError:
                pass
        return found

    # -- 5.13 checkClientStatus --------------------------------------------------------------
    def checkClientStatus(  # noqa: N802
        self, callback: ClientStatusCallback | None = None
    ) -> OpFuture[ClientStatus]:
        """Report readiness (5.13): ``callback(status)`` on the client's thread.

        Statuses: ``not_initialized`` (before :meth:`DoRegister`), ``media_permission_denied``
        (the ``source`` cannot be opened), ``connecting`` (also right after
        :meth:`DoRegister`), ``websocket_connection_failed``, ``disconnected``, ``initial``
        (registering), ``registered``, ``terminated``, ``unregistered``.

        Returns:
            A future of the same status (for synchronous code: ``.result(timeout)``).
        """

        def compute() -> ClientStatus:
            status: ClientStatus
            phone = self._phone
            with self._cond:
                wanted = self._reg_wanted
            if self._account is None:
                status = "not_initialized"
            elif phone is None or self._phone_done or phone.status() is PhoneStatus.NOT_STARTED:
                # DoRegister's work is queued behind this on the loop: its first step is
                # opening the WebSocket.
                if wanted:
                    status = "connecting"
                else:
                    status = "unregistered" if self._phone_done else "not_initialized"
            else:
                status = CLIENT_STATUSES[phone.status()]
            if callback is not None:
                try:
                    callback(status)
                except Exception:
                    logger.exception("! checkClientStatus: the callback failed")
            return status

        if self._closed:
            logger.warning("! checkClientStatus: the client is closed")
        return self._thread.call(compute)

    # -- 5.11 diagnostics: devices (initDiagnostics is with the network part) ------------
    def closeDiagnostics(self) -> None:  # noqa: N802
        """End the diagnostics session: stop the tests; the callbacks are not called again."""
        session, self._diagnostics = self._diagnostics, None
        if session is not None:
            session.close()
        self._start("closeDiagnostics", self._stop_device_tests, quiet=True)

    def startSpeakerDiagnosticsTest(self) -> OpFuture[None]:  # noqa: N802
        """Play the ringtone on the selected output and report its level (5.11).

        ``diagnosticsKeyValueCallback("speaker", <level>, "speaker ok")`` about ten times a
        second while it plays; the level is the RMS of what was played, 0.0 (silence) to
        1.0 (full scale). If it cannot play: ``("speaker", 0.0, "speaker error: <why>")``
        once, and a WARNING line in the troubleshooting log. Runs until
        :meth:`stopSpeakerDiagnosticsTest`; a second start while it runs does nothing.
        """
        session = self._diagnostics_session("startSpeakerDiagnosticsTest")
        if session is None:
            return OpFuture.failed(InvalidState("call initDiagnostics() first"))
        return self._start("startSpeakerDiagnosticsTest", lambda: self._speaker_test(session))

    def stopSpeakerDiagnosticsTest(self, response: str | None = None) -> OpFuture[None]:  # noqa: N802
        """Stop the speaker test; ``"yes"`` (heard it) or ``"no"`` goes into the log."""
        session = self._diagnostics_session("stopSpeakerDiagnosticsTest")
        if session is None:
            return OpFuture.failed(InvalidState("call initDiagnostics() first"))
        return self._start("stopSpeakerDiagnosticsTest",
                           lambda: self._stop_speaker_test(session, response))

    def startMicDiagnosticsTest(self) -> OpFuture[None]:  # noqa: N802
        """Capture the selected input and report its live level (5.11).

        ``diagnosticsKeyValueCallback("mic", <level>, "mic ok")`` about ten times a second
        (RMS, 0.0-1.0). If the device cannot be opened: ``("mic", 0.0, "mic error: <why>")``
        and WARNING lines in the log. Runs until :meth:`stopMicDiagnosticsTest`.
        """
        session = self._diagnostics_session("startMicDiagnosticsTest")
        if session is None:
            return OpFuture.failed(InvalidState("call initDiagnostics() first"))
        return self._start("startMicDiagnosticsTest", lambda: self._mic_test(session))

    def stopMicDiagnosticsTest(self, response: str | None = None) -> OpFuture[None]:  # noqa: N802
        """Stop the mic test; ``"yes"`` (the meter moved with my voice) or ``"no"`` goes
        into the log."""
        session = self._diagnostics_session("stopMicDiagnosticsTest")
        if session is None:
            return OpFuture.failed(InvalidState("call initDiagnostics() first"))
        return self._start("stopMicDiagnosticsTest",
                           lambda: self._stop_mic_test(session, response))

    def _diagnostics_session(self, what: str) -> DiagnosticsSession | None:
        session = self._diagnostics
        if session is None:
            logger.warning("! %s(): call initDiagnostics() first", what)
        return session

    def _devices(self) -> DeviceDiagnostics:
        """The device tests, on the phone's selected devices (loop thread)."""
        if self._device_diagnostics is None:
            def selected(kind: str) -> Any:
                phone = self._phone
                if phone is None:
                    return None
                return phone.input_device if kind == "input" else phone.output_device

            ringtone = self._sounds.ringtone if self._sounds is not None else None
            self._device_diagnostics = DeviceDiagnostics(
                input=lambda: selected("input"),
                output=lambda: selected("output"),
                ringtone=ringtone if isinstance(ringtone, (Tone, WavSound)) else None,
            )
        return self._device_diagnostics

    async def _init_diagnostics(self, session: DiagnosticsSession) -> None:
        """initDiagnostics' first reports, as the JS SDK gives them: ``("speakerInfo",
        <output device name>, "speakerInfo")``, ``("micInfo", <input device name>,
        "micInfo")`` (the name in the status slot), then ``("browserVersion", "ready",
        "exotel-voice/<v> Python/<v> <platform>")``; with no device (or no ``[audio]``
        extra): ``""`` and ``"mic error: <why>"`` / ``"speaker error: <why>"``. The devices
        are the phone's selected ones, else the system defaults."""
        await self._stop_device_tests()
        info = await asyncio.to_thread(self._devices().info)
        session.log(f"Browser: {info.version}, Platform: {platform.platform()}")
        for kind, name, error in (("speaker", info.speaker, info.speaker_error),
                                  ("mic", info.mic, info.mic_error)):
            key = f"{kind}Info"
            if error:
                session.log(f"Device: {kind}, error: {error}", "WARNING")
                session.key_value(key, "", f"{kind} error: {error}")
            else:
                session.log(f"Device: {kind}, label: {name}")
                session.key_value(key, name, key)
        session.key_value("browserVersion", "ready", info.version)

    async def _stop_device_tests(self) -> None:
        if self._device_diagnostics is not None:
            await self._device_diagnostics.aclose()

    async def _speaker_test(self, session: DiagnosticsSession) -> None:
        def level(value: float) -> None:
            session.key_value("speaker", value, "speaker ok")

        def error(why: str) -> None:
            session.log(f"Speaker device testing failed: {why}", "WARNING")
            session.key_value("speaker", 0.0, f"speaker error: {why}")

        devices = self._devices()
        if devices.speaker_test_running:
            return
        session.log("Speaker device testing is started")
        await devices.start_speaker_test(level, error)

    async def _stop_speaker_test(self, session: DiagnosticsSession, response: str | None) -> None:
        await self._devices().stop_speaker_test()
        session.log("Speaker device testing is stopped")
        answer = (response or "").strip().lower()
        if answer == "yes":
            session.log("DEVICE EVENT =  SPEAKER_TEST_PASS")
            session.log("Speaker device testing is successful")
            session.log("Speaker device testing is completed")
        elif answer == "no":
            session.log("DEVICE EVENT =  SPEAKER_TEST_FAIL")
            session.log("Speaker device testing is failed")
            session.log("Speaker device testing is completed")

    async def _mic_test(self, session: DiagnosticsSession) -> None:
        def level(value: float) -> None:
            session.key_value("mic", value, "mic ok")

        def error(why: str) -> None:
            session.log("Microphone device testing failed", "WARNING")
            session.log("DEVICE EVENT =  MICROPHONE_TEST_FAIL", "WARNING")
            session.log(f"Error: {why}", "WARNING")
            session.key_value("mic", 0.0, f"mic error: {why}")

        devices = self._devices()
        if devices.mic_test_running:
            return
        session.log("Microphone device testing is inprogress")
        info = await asyncio.to_thread(devices.info)
        if info.mic:
            session.log(f"Device track settings: kind: audio, label:{info.mic}")
        await devices.start_mic_test(level, error)

    async def _stop_mic_test(self, session: DiagnosticsSession, response: str | None) -> None:
        await self._devices().stop_mic_test()
        answer = (response or "").strip().lower()
        if answer == "yes":
            session.log("Microphone device testing is successful")
            session.log("DEVICE EVENT =  MICROPHONE_TEST_PASS")
            session.log("Mic device testing is completed")
        elif answer == "no":
            session.log("Microphone device testing is failure")
            session.log("DEVICE EVENT =  MICROPHONE_TEST_FAIL")
            session.log("Mic device testing is failure")
            session.log("Mic device testing is completed")
        else:
            session.log("Mic device testing is stopped")

    # -- 5.14 audio devices ----------------------------------------------------------------------
    def changeAudioInputDevice(  # noqa: N802
        self,
        deviceId: str,  # noqa: N803
        onSuccess: SuccessCallback | None = None,  # noqa: N803
        onError: ErrorCallback | None = None,  # noqa: N803
    ) -> OpFuture[None]:
        """Send from the input device ``deviceId`` (5.14), before or during a call.

        ``deviceId`` is an :class:`~exotel_voice.audio.AudioDevice` id (``exotel-voice
        devices`` lists them), a device name, or ``"default"``. During a call the microphone
        switches in place: no renegotiation, the far end keeps hearing us, and a muted call
        stays muted (Exotel's SDK unmutes here). Before :meth:`DoRegister` the choice is
        checked and kept for the phone. ``onSuccess()`` or ``onError(why)`` follows on the
        client's thread (no such device, the device cannot be opened, the ``[audio]``
        extra missing: ``pip install 'exotel-voice[audio]'``).

        Returns:
            A future of the outcome (it fails with the same error ``onError`` got).
        """
        return self._change_device("input", deviceId, onSuccess, onError)

    def changeAudioOutputDevice(  # noqa: N802
        self,
        deviceId: str,  # noqa: N803
        onSuccess: SuccessCallback | None = None,  # noqa: N803
        onError: ErrorCallback | None = None,  # noqa: N803
    ) -> OpFuture[None]:
        """Play calls on the output device ``deviceId`` (5.14), before or during a call.

        As :meth:`changeAudioInputDevice`; a live call's audio moves to the new device.
        """
        return self._change_device("output", deviceId, onSuccess, onError)

    def registerAudioDeviceChangeCallback(  # noqa: N802
        self,
        audioInputDeviceCallback: AudioDeviceCallback | None,  # noqa: N803
        audioOutputDeviceCallback: AudioDeviceCallback | None,  # noqa: N803
        onDeviceChangeCallback: Callable[[dict[str, Any]], object] | None = None,  # noqa: N803
    ) -> OpFuture[None]:
        """Hear of audio device changes (5.14), on the client's thread.

        ``audioInputDeviceCallback(deviceId)`` / ``audioOutputDeviceCallback(deviceId)`` are
        called with the new default's id when the system's default input / output changes;
        ``onDeviceChangeCallback({"added": [ids], "removed": [ids]})`` (beyond the guide, as
        the JS SDK's third argument) on every change. Devices are watched from the phone's
        start (:meth:`DoRegister`) or at once if it runs. If the device a call uses goes
        away, the call falls back to the default (a WARNING is logged).
        """
        self._device_cbs = (audioInputDeviceCallback, audioOutputDeviceCallback,
                            onDeviceChangeCallback)

        async def watch() -> None:
            if self._phone is not None:
                await self._phone.watch_audio_devices()

        return self._start("registerAudioDeviceChangeCallback", watch)

    def _change_device(self, kind: str, device_id: str, on_success: SuccessCallback | None,
                       on_error: ErrorCallback | None) -> OpFuture[None]:
        name = "changeAudioInputDevice" if kind == "input" else "changeAudioOutputDevice"
        spec = None if device_id in ("", "default") else device_id

        async def change() -> None:
            from ..audio import AudioDeviceSelection, DeviceKind  # noqa: PLC0415

            try:
                phone = self._phone
                if phone is None:  # checked now, used when the phone is made
                    await asyncio.to_thread(AudioDeviceSelection.resolve, spec, DeviceKind(kind))
                elif kind == "input":
                    await phone.set_input_device(spec)
                else:
                    await phone.set_output_device(spec)
            except Exception as exc:
                self.last_error = exc
                if on_error is not None:
                    self._safe(on_error, f"{name}: onError", str(exc))
                raise
            if kind == "input":
                self._audio_input = device_id
            else:
                self._audio_output = device_id
            if on_success is not None:
                self._safe(on_success, f"{name}: onSuccess")

        return self._start(name, change)

    async def _apply_audio_devices(self, phone: Phone) -> None:
        """A new phone takes the devices chosen before it, and watches if asked to."""
        for kind, chosen in (("input", self._audio_input), ("output", self._audio_output)):
            if chosen is None:
                continue
            spec = None if chosen in ("", "default") else chosen
            try:
                if kind == "input":
                    await phone.set_input_device(spec)
                else:
                    await phone.set_output_device(spec)
            except Exception as exc:
                logger.warning("! the %s device %r cannot be used: %s", kind, chosen, exc)
        if self._device_cbs is not None:
            try:
                await phone.watch_audio_devices()
            except Exception as exc:
                logger.warning("! audio devices cannot be watched: %s", exc)

    def _on_audio_devices_changed(self, event: AudioDevicesChanged) -> None:
        cbs = self._device_cbs
        if cbs is None:
            return
        input_cb, output_cb, change_cb = cbs
        if input_cb is not None and event.default_input_changed and event.default_input:
            self._safe(input_cb, "audioInputDeviceCallback", event.default_input.id)
        if output_cb is not None and event.default_output_changed and event.default_output:
            self._safe(output_cb, "audioOutputDeviceCallback", event.default_output.id)
        if change_cb is not None:
            self._safe(change_cb, "onDeviceChangeCallback", {
                "added": [dev.id for dev in event.added],
                "removed": [dev.id for dev in event.removed],
            })

    # -- received DTMF (ours) ----------------------------------------------------------------
    def registerDTMFCallback(self, DTMFCallback: DTMFCallback | None) -> None:  # noqa: N802, N803
        """Call ``DTMFCallback(callObj, digit, phone)`` for every digit the far end sends
        (SIP INFO or RFC 4733), on the client's thread. ``None`` removes it.

        Not in the guide (the JS SDK has no received-DTMF callback); named and shaped like
        its ``CallListenerCallback``. May be called before or after :meth:`initWebrtc`.
        """
        if DTMFCallback is not None and not callable(DTMFCallback):
            raise ConfigurationError("DTMFCallback", "must be a function or None")
        self._dtmf_cb = DTMFCallback

    # -- call quality (ours) -------------------------------------------------------------------
    def registerCallQualityCallback(  # noqa: N802
        self, CallQualityCallback: CallQualityCallback | None  # noqa: N803
    ) -> None:
        """Call ``CallQualityCallback(callObj, report, phone)`` with the call's quality, on
        the client's thread: its stats every ``MediaConfig.quality.stats_interval`` seconds
        (default 5), and each quality warning and its end (high RTT, jitter or packet loss,
        low MOS, a silent microphone, ICE disconnected), ``report`` being a dict
        (:func:`guide_quality_report`). ``None`` removes it.

        Not in the guide (Exotel's SDK reports no call quality); shaped like its
        ``CallListenerCallback``. May be called before or after :meth:`initWebrtc`. Losing
        the media path entirely is still SessionCallback's
        ``ice_connection_state_disconnected``.
        """
        if CallQualityCallback is not None and not callable(CallQualityCallback):
            raise ConfigurationError("CallQualityCallback", "must be a function or None")
        self._quality_cb = CallQualityCallback

    # -- 5.15 logger callback ----------------------------------------------------------------
    @staticmethod
    def registerLoggerCallback(  # noqa: N802
        callback: LoggerCallback | None, level: int = logging.DEBUG
    ) -> None:
        """Send the SDK's log records to ``callback(type, message, args)`` (5.15).

        Process-wide (static, as in the JS SDK 3.x); a new callback replaces the previous
        one, ``None`` removes it. ``type`` is ``log`` (DEBUG), ``info``, ``warn`` or
        ``error``; ``message`` is redacted (no password, digest response, ice-pwd ...);
        ``args`` is ``[logger name]`` plus a redacted traceback if any. The callback runs on
        the thread that logged. See :mod:`exotel_voice.client.logbridge` for the effect on
        the ``exotel_voice`` logger's level.
        """
        set_logger_callback(callback, level)

    # -- blocking helpers --------------------------------------------------------------------
    def wait_for_registration(self, timeout: float | None = 10.0) -> bool:
        """Block until the registration succeeds (``True``) or fails (``False``).

        Not from a callback. Returns ``True`` at once if already registered.

        Raises:
            InvalidState: :meth:`DoRegister` was not called, or called from a callback.
            TimeoutError: neither within ``timeout`` seconds.
        """
        self._no_wait_in_callback("wait_for_registration")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if not self._reg_wanted and self.registration_state != "registered":
                raise InvalidState("wait_for_registration(): DoRegister() was not called")
            outcomes = (RegistrationState.REGISTERED, RegistrationState.FAILED)
            while self._delivered not in outcomes:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"not registered within {timeout} s")
                self._cond.wait(remaining)
            return self._delivered is not RegistrationState.FAILED

    def wait_for_unregistration(self, timeout: float | None = 10.0) -> bool:
        """Block until :meth:`UnRegister` has finished (``True``), or ``timeout`` (``False``)."""
        self._no_wait_in_callback("wait_for_unregistration")
        return self._unregistered.wait(timeout)

    def wait_for_call(self, timeout: float | None = 30.0) -> ExotelCall:
        """Block until an incoming call arrives; returns it (calls that already ended while
        nobody waited are skipped). Not from a callback.

        Raises:
            TimeoutError: no call within ``timeout`` seconds.
        """
        self._no_wait_in_callback("wait_for_call")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                call = self._incoming.get(timeout=remaining)
            except queue.Empty:
                raise TimeoutError(f"no incoming call within {timeout} s") from None
            if call.call is not None and not call.call.ended:
                return call

    def close(self, timeout: float = 5.0) -> None:
        """Unregister if registered, hang up, stop the client's thread. Idempotent.

        The client cannot be used afterwards. Called for every live client at interpreter
        exit. From a callback, the work is scheduled and ``close`` returns at once.
        """
        if self._closed:
            return
        self._closed = True
        with self._cond:
            self._reg_wanted = False
        self._release_name()
        if self._secret is not None:
            forget_secret(self._secret)
            self._secret = None

        async def shutdown() -> None:
            try:
                await asyncio.wait_for(self._do_unregister(quiet=True), timeout)
            except (TimeoutError, SipError) as exc:
                logger.warning("! close: %s", exc)

        if self._thread.in_loop_thread:
            fut = self._thread.submit(shutdown)
            fut.add_done_callback(lambda _f: self._thread.stop())
            return
        try:
            self._thread.run(shutdown, timeout + 1.0)
        except (TimeoutError, InvalidState):
            pass
        finally:
            self._thread.stop()

    # -- loop-thread side --------------------------------------------------------------------
    async def _do_register(self) -> None:
        account = self._account
        assert account is not None
        phone = self._phone
        if phone is None or self._phone_done:
            phone = Phone(account, media=self._media, source=self._source,
                          ring_timeout=self._ring_timeout, sounds=self._sounds)
            self._phone = phone
            self._phone_done = False
            phone.add_listener(self._on_event)
            await self._apply_audio_devices(phone)
        task = self._register_task
        if task is not None and not task.done():
            task.cancel()
        self._register_task = asyncio.current_task()
        try:
            await phone.register(timeout=None)
        except SipError as exc:
            # RegisterEventCallBack already got "terminated"; retries go on where possible.
            logger.info("= DoRegister: %s", exc)

    async def _do_unregister(self, quiet: bool = False) -> None:
        try:
            task = self._register_task
            if task is not None and not task.done() and task is not asyncio.current_task():
                task.cancel()
            phone = self._phone
            if phone is None or self._phone_done:
                if not quiet:
                    logger.info("= UnRegister: not registered; nothing to do")
                return
            self._phone_done = True
            await phone.unregister()
        finally:
            with self._cond:
                if not self._reg_wanted:
                    self._live.clear()
                self._cond.notify_all()
            self._unregistered.set()

    async def _answer(self, call: Call, source: AudioSource | None) -> None:
        factory = self._source
        ringing = call.direction == "incoming" and call.state is CallState.INCOMING
        try:
            if source is None and factory is not None and ringing:
                # The guide's getUserMedia step: a factory that fails (a missing device, an
                # unreadable file) is the guide's media_permission_denied.
                try:
                    source = factory()
                except Exception as exc:
                    raise AudioSourceError("of initWebrtc(source=)", str(exc)) from exc
            await call.answer(source)  # AudioSourceError too: the call is left ringing
        except AudioSourceError as exc:
            self.last_error = exc
            logger.error("! Answer: %s; rejecting the call with 480", exc)
            self._emit_session("media_permission_denied")
            if not call.ended:
                await call.hangup(480, "Temporarily Unavailable")
            raise

    async def _hold(self, call: Call, hold: bool) -> None:
        try:
            if hold:
                await call.hold()
            else:
                await call.unhold()
        except InvalidState:
            raise
        except SipError:
            self._emit_session("holdunhold_failed")
            raise

    def _on_event(self, event: PhoneEvent) -> None:
        """Map one :class:`Phone` event to the guide's callbacks (on the loop thread)."""
        if isinstance(event, RegistrationStateChanged):
            if event.state is RegistrationState.FAILED and self._phone is not None:
                # Why, for the application (the callback only gets the state): e.g. a
                # TransportError "certificate verify failed: self-signed certificate".
                self.last_error = self._phone.registration_error or SipError(
                    f"registration failed: {event.status or ''} {event.reason}".strip()
                )
            told = REGISTER_EVENT_STATES[event.state]
            with self._cond:
                self._told = told
            # The callback first, so that a waiter woken by the new state sees its effects.
            self._emit_register(told)
            with self._cond:
                if event.state not in (
                    RegistrationState.REGISTERING, RegistrationState.UNREGISTERING
                ):
                    self._delivered = event.state
                self._cond.notify_all()
            if event.state in (RegistrationState.REGISTERING, RegistrationState.UNREGISTERING):
                return
            # A call that lived through a lost registration hears "activeSession" once its
            # dialog refresh succeeded (CallRecovered, guide_call_event), not at the
            # REGISTERED: the server may have ended it meanwhile ("terminated" then).
            self._last_outcome = event.state
        elif isinstance(event, CallEvent):
            self._on_call_event(event)
        elif isinstance(event, DtmfReceived):
            cb = self._dtmf_cb
            if cb is not None:
                self._safe(cb, "DTMFCallback", self._wrap(event.call), event.digit, self._name())
        elif isinstance(event, AudioDevicesChanged):
            self._on_audio_devices_changed(event)

    def _on_call_event(self, event: CallEvent) -> None:
        wrapper = self._wrap(event.call)
        if isinstance(event, QualityWarning | QualityWarningCleared | CallStatsUpdated):
            quality_cb = self._quality_cb
            if quality_cb is not None:
                self._safe(quality_cb, "CallQualityCallback", wrapper,
                           guide_quality_report(event), self._name())
            return
        session, call_event = guide_call_event(event)
        if isinstance(event, CallIncoming):
            with self._cond:
                if wrapper not in self._live:
                    self._live.append(wrapper)
                self._incoming.put(wrapper)
                self._cond.notify_all()  # clickToCall waits for its call
        elif isinstance(event, CallEnded):
            with self._cond:
                if wrapper in self._live:
                    self._live.remove(wrapper)
            # wait_for_call() skips ended calls anyway; one nobody waited for must not
            # stay queued (with its Call) for the life of the client.
            with self._incoming.mutex:
                try:
                    self._incoming.queue.remove(wrapper)
                except ValueError:
                    pass
            self._wrappers.pop(id(event.call), None)
        if session is not None:
            self._emit_session(session)
        if call_event is not None:
            self._emit_call(wrapper, call_event)

    def _wrap(self, call: Call) -> ExotelCall:
        wrapper = self._wrappers.get(id(call))
        if wrapper is None or wrapper.call is not call:
            wrapper = ExotelCall(self, call)
            self._wrappers[id(call)] = wrapper
        return wrapper

    def _emit_register(self, state: str) -> None:
        cb = self._register_cb
        if cb is not None:
            self._safe(cb, "RegisterEventCallBack", state, self._name())

    def _emit_call(self, call: ExotelCall, event: str) -> None:
        cb = self._call_cb
        if cb is not None:
            self._safe(cb, "CallListenerCallback", call, event, self._name())

    def _emit_session(self, state: str) -> None:
        cb = self._session_cb
        if cb is not None:
            self._safe(cb, "SessionCallback", state, self._name())

    def _name(self) -> str:
        return self._account.user_name if self._account is not None else ""

    @staticmethod
    def _safe(cb: Callable[..., object], what: str, *args: Any) -> None:
        try:
            cb(*args)
        except Exception:
            logger.exception("! %s raised", what)

    # -- 5.11 diagnostics: network -----------------------------------------------------------
    def initDiagnostics(  # noqa: N802
        self,
        diagnosticsReportCallback: DiagnosticsReportCallback,  # noqa: N803
        diagnosticsKeyValueCallback: DiagnosticsKeyValueCallback,  # noqa: N803
    ) -> bool:
        """Start a diagnostics session (5.11) with its two callbacks.

        ``diagnosticsReportCallback(logStatus, logData)`` receives the whole troubleshooting
        log after each line (``logStatus`` is ``"troubleShootReport"``);
        ``diagnosticsKeyValueCallback(key, status, description)`` each result. Right away
        (on the client's thread) the versions and devices are reported
        (``speakerInfo``, ``micInfo``, ``browserVersion``; see the device tests). A new
        call replaces the previous session (its log starts afresh).

        Returns:
            ``True``; ``False`` (logged, in :attr:`last_error`) when a callback is not a
            function or the client is closed.
        """
        try:
            if self._closed:
                raise InvalidState("initDiagnostics(): the client is closed")
            for arg, cb in (("diagnosticsReportCallback", diagnosticsReportCallback),
                            ("diagnosticsKeyValueCallback", diagnosticsKeyValueCallback)):
                if not callable(cb):
                    raise ConfigurationError(arg, "must be a function (Callbacks are not set)")
        except (ConfigurationError, InvalidState) as exc:
            self.last_error = exc
            logger.error("! initDiagnostics: %s", exc)
            return False
        session = DiagnosticsSession(diagnosticsReportCallback, diagnosticsKeyValueCallback)
        previous, self._diagnostics = self._diagnostics, session
        if previous is not None:
            previous.close()
        self._start("initDiagnostics", lambda: self._init_diagnostics(session))
        return True

    def startNetworkDiagnostics(self) -> OpFuture[DiagnosticsReport]:  # noqa: N802
        """Run the network checks (5.11) and report each through
        ``diagnosticsKeyValueCallback`` as it completes, and the troubleshooting log through
        ``diagnosticsReportCallback``.

        Keys (status, description): ``wss`` (``connected``/``disconnected``, the WebSocket
        URL), ``userReg`` (``registered``/``unregistered``, the ``userName``; from the
        background registration: no REGISTER is sent for it), ``udp``, ``tcp``, ``host``,
        ``srflx`` and, beyond the guide, ``relay`` (``connected`` with the ICE candidate
        line that proved it, or ``disconnected`` with ``""``), and ``rtt`` (the round trip
        to the SIP server in milliseconds, a float, with ``"rtt ok"``; or
        ``disconnected`` with the reason). Each starts as ``waiting`` (the JS SDK's order).
        The checks are :func:`exotel_voice.diagnostics.network.diagnose`'s; the ICE
        servers are ``initWebrtc(media=...)``'s.

        Returns:
            An :class:`OpFuture` with the typed
            :class:`~exotel_voice.diagnostics.network.DiagnosticsReport`; a failed one
            (logged) before :meth:`initDiagnostics` or :meth:`initWebrtc`.
        """
        session = self._diagnostics
        if session is None or session.closed:
            exc: Exception = InvalidState("startNetworkDiagnostics(): call initDiagnostics() first")
            logger.error("! %s", exc)
            return self._failed(exc)
        if not self._ready("startNetworkDiagnostics"):
            assert self.last_error is not None
            return OpFuture.failed(self.last_error)
        return self._start("startNetworkDiagnostics", lambda: self._network_diagnostics(session))

    def stopNetworkDiagnostics(self) -> None:  # noqa: N802
        """Note the end of the network test in the troubleshooting log (the JS SDK's
        ``stopNetworkDiagnostics``, which stops nothing either: every check has its own
        deadline)."""
        session = self._diagnostics
        if session is not None:
            session.log("Network diagnostics stopped")

    async def _network_diagnostics(self, session: DiagnosticsSession) -> DiagnosticsReport:
        account = self._account
        assert account is not None
        phone = self._phone if not self._phone_done else None
        for key in NETWORK_WAITING_KEYS:
            session.log(f"NETWORK EVENT =  {NETWORK_TEST_NAMES[key]}_TEST_STARTING")
            session.key_value(key, "waiting", "")
        session.log("Gathering ICE candidates")

        def on_check(check: Check) -> None:
            level: Literal["INFO", "WARNING"] = (
                "WARNING" if check.verdict is Verdict.FAILED else "INFO")
            text = f"{check.name}: {check.verdict.value}"
            if check.value:
                text += f" {check.value}"
            if check.detail:
                text += f" ({check.detail})"
            session.log(text, level)
            if check.candidate:
                session.log(f"Gathered candidate {check.candidate}")
            if check.remedy and not check.ok:
                session.log(f"{check.name}: what to do: {check.remedy}", level)
            if check.name in NETWORK_TEST_NAMES:
                session.log(f"NETWORK EVENT =  {NETWORK_TEST_NAMES[check.name]}_TEST_COMPLETE")
            session.key_value(*guide_network_key_value(check, account.user_name))

        report = await diagnose(account, media=self._media, phone=phone, register=False,
                                on_check=on_check)
        session.log(f"Network diagnostics done in {report.duration:.2f} s: "
                    + ("no check failed" if report.ok else
                       "failed: " + ", ".join(c.name for c in report.failed)))
        return report

    # -- any-thread side ---------------------------------------------------------------------
    def _ready(self, what: str) -> bool:
        if self._closed:
            exc = InvalidState(f"{what}(): the client is closed")
        elif self._account is None:
            exc = InvalidState(f"{what}(): call initWebrtc() first")
        else:
            return True
        self.last_error = exc
        logger.error("! %s", exc)
        return False

    def _start(
        self, name: str, factory: Callable[[], Awaitable[T]], *, quiet: bool = False
    ) -> OpFuture[T]:
        fut = self._thread.submit(factory)

        def report(f: Any) -> None:
            if f.cancelled():
                return
            exc = f.exception()
            if exc is None or quiet:
                return
            if isinstance(exc, InvalidState):
                logger.warning("! %s: %s", name, exc)
            else:
                logger.error("! %s failed: %s", name, exc)

        fut.add_done_callback(report)
        return fut

    def _failed(self, exc: Exception) -> OpFuture[Any]:
        self.last_error = exc
        return OpFuture.failed(exc)

    def _no_call(self, name: str) -> OpFuture[None]:
        logger.warning("! %s(): there is no call", name)
        return OpFuture.failed(InvalidState(f"{name}(): there is no call"))

    def _no_wait_in_callback(self, what: str) -> None:
        if self._thread.in_loop_thread:
            raise InvalidState(f"{what}() cannot be called from a callback (it would deadlock)")

    def _acquire_name(self, name: str) -> None:
        with ExotelWebClient._pool_lock:
            owner = ExotelWebClient._pool.get(name)
            if owner is not None and owner is not self:
                raise InvalidState(
                    f"[Dup-Reg] {name} already in use by another ExotelWebClient - init rejected"
                )
            ExotelWebClient._pool[name] = self
            self._pooled_name = name

    def _release_name(self) -> None:
        with ExotelWebClient._pool_lock:
            name = self._pooled_name
            if name is not None and ExotelWebClient._pool.get(name) is self:
                del ExotelWebClient._pool[name]
            self._pooled_name = None


@atexit.register
def _close_all() -> None:
    for client in list(_live_clients):
        try:
            client.close(timeout=2.0)
        except Exception:
            pass
