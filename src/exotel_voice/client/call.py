"""A call, as the asyncio API sees it: SIP state from the core, audio from a MediaSession.

Get calls from :meth:`Phone.dial() <exotel_voice.client.phone.Phone.dial>` and
:meth:`Phone.incoming_calls() <exotel_voice.client.phone.Phone.incoming_calls>`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..exceptions import (
    AudioSourceError,
    InvalidDTMF,
    InvalidMessage,
    InvalidState,
    MediaError,
    SipError,
)
from ..media import AudioSink, AudioSource, FrameSink, MediaSession
from ..media.dtmf import parse_digits
from ..media.liveness import MediaFlowing, MediaHealthEvent, MediaSilent, MediaTransportChanged
from ..media.pcm import Samples
from ..media.quality import QualityAlarm, QualityEvent, QualityMonitor, QualitySample
from ..media.quality_stats import CallStats
from ..sip import calls as core
from ..sip.calls import CallSession, SessionState
from ..sip.headers import SENSITIVE_HEADERS, NameAddr, parse_name_addr
from ._call_media import CallMedia, wait_either
from .events import (
    CallConnected,
    CallEnded,
    CallEvent,
    CallHeld,
    CallMuted,
    CallProgress,
    CallRecovered,
    CallResumed,
    CallRinging,
    CallStatsUpdated,
    CallUnmuted,
    DtmfReceived,
    IceRestarted,
    IceRestarting,
    MediaStateChanged,
    MediaWarning,
    MediaWarningCleared,
    NoMediaWarning,
    PhoneEvent,
    QualityWarning,
    QualityWarningCleared,
)


if TYPE_CHECKING:
    from ..media.netwatch import AddressChange
    from ..sip.useragent import UserAgent
    from .phone import Phone

#: A user-agent command for one call: ``action(user_agent, now)``.
SipAction = Callable[["UserAgent", float], object]

__all__ = ["Call", "CallState", "Codec", "Identity", "ReceivedFrames"]

logger = logging.getLogger(__name__)

_DTMF_INFO = "application/dtmf-relay"


class CallState(enum.StrEnum):
    """Where a call is, as its user sees it (a ``str``: it prints as the word).

    ::

        incoming: INCOMING --answer()--> CONNECTED --> ENDED
                  INCOMING --reject()/CANCEL/ring timeout--> ENDED
        outgoing: CALLING --180/183--> RINGING --2xx, media up--> CONNECTED --> ENDED
                  CALLING/RINGING --hangup()/4xx-6xx/timeout--> ENDED

    ``CONNECTED`` means answered *and* media negotiated; the SIP dialog underneath may be
    established a moment earlier (:class:`~exotel_voice.sip.calls.SessionState`).
    """

    INCOMING = "incoming"
    CALLING = "calling"
    RINGING = "ringing"
    CONNECTED = "connected"
    ENDED = "ended"


#: The transitions a call can make; any other is ignored (and logged at DEBUG), as the
#: transaction layer ignores inputs from the network that its state does not take.
_TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    CallState.INCOMING: frozenset({CallState.CONNECTED, CallState.ENDED}),
    CallState.CALLING: frozenset({CallState.RINGING, CallState.CONNECTED, CallState.ENDED}),
    CallState.RINGING: frozenset({CallState.CONNECTED, CallState.ENDED}),
    CallState.CONNECTED: frozenset({CallState.ENDED}),
    CallState.ENDED: frozenset(),
}


@dataclass(frozen=True)
class Identity:
    """A party to a call, as a SIP header names it (From, To, P-Asserted-Identity).

    Attributes:
        uri: the URI, e.g. ``"sip:+919876543210@example.exotel.in"``.
        display_name: the display name, or ``None`` when the header has none.
        user: the URI's user part (a number or SIP user), or ``None``.
    """

    uri: str
    display_name: str | None = None
    user: str | None = None

    @classmethod
    def of(cls, address: NameAddr) -> Identity:
        """The identity in a parsed From/To/P-Asserted-Identity value."""
        return cls(str(address.uri), address.display_name, getattr(address.uri, "user", None))


@dataclass(frozen=True)
class Codec:
    """The audio codec a call sends with, from the negotiated SDP.

    Attributes:
        name: the SDP encoding name (``"opus"``, ``"PCMU"``, ``"PCMA"``, ``"G722"``).
        clock_rate: its RTP clock rate (48000 for Opus, 8000 for G.711 and G.722).
    """

    name: str
    clock_rate: int


class Call:
    """One call: control it, and read and write its audio.

    Attributes:
        phone: the phone the call belongs to.
        direction: ``"incoming"`` or ``"outgoing"``.
        start_time: when the call started (``time.time()``): INVITE sent or received.
        answer_time: when it connected, or ``None``.
        end_time: when it ended, or ``None``.
    """

    def __init__(
        self,
        phone: Phone,
        session: CallSession,
        source: AudioSource | None,
        *,
        sip: Callable[[SipAction], None],
        publish: Callable[[PhoneEvent], None],
        new_source: Callable[[], AudioSource],
        media: MediaSession | None = None,
    ) -> None:
        self.phone = phone
        # What the phone lends the call: run a user-agent command on this call (at the
        # current time, output pumped), publish an event, make the default audio source.
        self._sip = sip
        self._to_phone = publish
        self._new_source = new_source
        self._session = session
        self.direction = session.direction
        self.start_time = time.time()
        self.answer_time: float | None = None
        self.end_time: float | None = None
        self._source = source
        self._connected = asyncio.Event()
        self._ended = asyncio.Event()
        self._state = CallState.INCOMING if session.direction == "incoming" else CallState.CALLING
        self._muted = False
        self._on_hold = False
        self._ring_reported = False
        # A provisional response to our INVITE carried an answer (early media).
        self._early_media = False
        # The dialog refresh after a reconnect (core.TargetRefreshNeeded), while it runs.
        self._refresh_task: asyncio.Task[None] | None = None
        # The ICE restart after a network change (_on_network_change), while it runs, and
        # the change seen meanwhile, which restarts again after it.
        self._restart_task: asyncio.Task[None] | None = None
        self._restart_again: str | None = None
        # The quality watch (MediaConfig.quality) while the call is connected.
        self._quality: QualityMonitor | None = None
        self._quality_task: asyncio.Task[None] | None = None
        self._subscribers: list[asyncio.Queue[CallEvent | DtmfReceived | None]] = []
        self._dtmf: asyncio.Queue[str] = asyncio.Queue()
        self._codec: Codec | None = None
        # Set once received audio can be tapped: an outgoing call's media exists from the
        # start (its offer went in the INVITE), an incoming call's once it is answered.
        self._media_up = asyncio.Event()
        if media is not None:
            self._media_up.set()
        # The offer/answer steps and the MediaSession they drive.
        self._media = CallMedia(
            session,
            sip,
            name=f"call {session.id}",
            media=media,
            on_connected=self._mark_connected,
            on_failed=lambda problem: sip(
                lambda ua, now: ua.fail_call(session, now, problem)
            ),
            on_remote_hold=self._on_remote_hold,
            on_media_warning=self._on_media_warning,
            on_media_health=self._on_media_health,
            # Our media path died: we end the call (BYE); the far end did not hang up.
            on_media_down=lambda problem: sip(
                lambda ua, now: ua.fail_call(session, now, problem, by="local")
            ),
        )
        if media is not None:
            media.add_dtmf_listener(lambda d: self._on_dtmf(d, "rfc4733"))

    def __repr__(self) -> str:
        return f"<Call {self.id} {self.direction} {self._state} {self.remote_uri}>"

    # -- identity ----------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """A local identifier, unique in this process."""
        return self._session.id

    @property
    def call_id(self) -> str:
        """The SIP Call-ID (the guide's ``callId``)."""
        return self._session.call_id

    @property
    def state(self) -> CallState:
        """Where the call is: ``INCOMING``, ``CALLING``, ``RINGING``, ``CONNECTED``, ``ENDED``."""
        return self._state

    def _set_state(self, new: CallState) -> bool:
        """The one place where the state changes (along :data:`_TRANSITIONS`)."""
        if new not in _TRANSITIONS[self._state]:
            if new is not self._state:
                logger.debug("= call %s ignores %s in %s", self.id, new, self._state)
            return False
        logger.debug("= call %s %s -> %s", self.id, self._state, new)
        self._state = new
        return True

    @property
    def local_tag(self) -> str | None:
        """Our dialog tag: the From tag of our INVITE, or the To tag we answer with."""
        dialog = self._session.dialog
        if dialog is not None:
            return dialog.local_tag or None
        return self._session.invite.from_.tag if self.direction == "outgoing" else None

    @property
    def remote_tag(self) -> str | None:
        """The far end's dialog tag: the From tag of its INVITE, or the To tag of its answer
        (of a provisional response with one before); ``None`` before it sent one."""
        dialog = self._session.dialog
        return (dialog.remote_tag or None) if dialog is not None else None

    @property
    def remote_identity(self) -> Identity:
        """The far end as our dialog names it: the From of an incoming INVITE, the To of an
        outgoing one (what :attr:`remote_uri`, :attr:`remote_number` and
        :attr:`remote_display_name` read)."""
        return Identity.of(self._session.remote_identity)

    @property
    def asserted_identity(self) -> Identity | None:
        """The caller's network-asserted identity (RFC 3325 ``P-Asserted-Identity``) of an
        incoming INVITE, or ``None`` (an outgoing call, no such header, or one that does not
        parse). Only a trusted server's word: a far end may put anything there."""
        if self.direction != "incoming":
            return None
        value = self._session.invite.headers.get("P-Asserted-Identity")
        if not value:
            return None
        try:
            # Two values (a SIP and a tel URI) may share the header: the first is used.
            return Identity.of(parse_name_addr(value.split(",")[0]))
        except InvalidMessage:
            return None

    @property
    def codec(self) -> Codec | None:
        """The audio codec the call sends with, once negotiated (still known after the call
        ended); ``None`` before."""
        media = self.media
        if media is not None and media.codec is not None:
            stats = media.stats()
            if stats.codec is not None and stats.clock_rate is not None:
                self._codec = Codec(stats.codec, stats.clock_rate)
        return self._codec

    @property
    def remote_uri(self) -> str:
        """The far end's URI."""
        return str(self._session.remote_identity.uri)

    @property
    def remote_number(self) -> str:
        """The far end's user part (a number or SIP user), or ``""``."""
        uri = self._session.remote_identity.uri
        return getattr(uri, "user", None) or ""

    @property
    def remote_display_name(self) -> str:
        """The far end's display name, or its user part when it sent none."""
        return self._session.remote_identity.display_name or self.remote_number

    @property
    def headers(self) -> dict[str, str | list[str]]:
        """Every header of the initial INVITE (a list when a header repeats).

        For an outgoing call this is the INVITE as we sent it; credentials we added
        (``Authorization``, ``Proxy-Authorization``) show as ``[secure]``.
        """
        out = self._session.invite.headers.to_dict()
        for name in list(out):
            if name.lower() in SENSITIVE_HEADERS:
                out[name] = "[secure]"
        return out

    def header(self, name: str) -> str | None:
        """One header of the initial INVITE, by case-insensitive name, or ``None``.

        Credentials (``Authorization``, ``Proxy-Authorization``) show as ``[secure]``.
        """
        value = self._session.invite.headers.get(name)
        if value is not None and name.lower() in SENSITIVE_HEADERS:
            return "[secure]"
        return value

    @property
    def call_sid(self) -> str | None:
        """Exotel's ``X-Exotel-Callsid`` header, if the INVITE carried one."""
        return self.header("X-Exotel-Callsid")

    @property
    def ended_by(self) -> str | None:
        """``"local"`` or ``"remote"`` once the call has ended.

        ``"local"``: we ended it (:meth:`hangup`, :meth:`reject`, a cancel), or the SDK did
        because the call's media died (no packet for the liveness grace, ICE or DTLS failed,
        media not up in time; :attr:`end_reason` says which). ``"remote"``: the far end or
        the server ended it (BYE, CANCEL, a rejection, a timeout), or sent what cannot be
        used (an unusable answer, no session refresh)."""
        return self._session.ended_by

    @property
    def end_status(self) -> int | None:
        """The SIP status that ended the call (486, 487, 603 ...), if any."""
        return self._session.end_status

    @property
    def end_reason(self) -> str:
        """Why the call ended."""
        return self._session.end_reason

    @property
    def early_media(self) -> bool:
        """Whether the far end answered our INVITE with early media (a 180/183 carrying
        SDP): its announcements or ringback are what we hear, not our own ringback."""
        return self._early_media

    @property
    def muted(self) -> bool:
        """Whether our audio is muted."""
        return self._muted

    @property
    def on_hold(self) -> bool:
        """Whether we have put the call on hold."""
        return self._on_hold

    @property
    def remote_hold(self) -> bool:
        """Whether the far end has put the call on hold."""
        return self._media.remote_hold

    @property
    def media(self) -> MediaSession | None:
        """The call's :class:`~exotel_voice.media.MediaSession`, once media started."""
        return self._media.media

    # -- waiting -----------------------------------------------------------------------------
    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the call is connected.

        Raises:
            SipError: the call ended first (its status and reason are in the message).
            TimeoutError: not connected within ``timeout`` seconds.
        """
        await wait_either(self._connected, self._ended, timeout)
        if not self._connected.is_set():
            status = f"{self.end_status} " if self.end_status else ""
            raise SipError(f"call ended before it connected: {status}{self.end_reason}")

    async def wait_ended(self, timeout: float | None = None) -> None:
        """Wait until the call has ended (either side)."""
        await asyncio.wait_for(self._ended.wait(), timeout)

    @property
    def ended(self) -> bool:
        """Whether the call is over."""
        return self._ended.is_set()

    async def events(self) -> AsyncIterator[CallEvent | DtmfReceived]:
        """This call's events from now on, ending after the call ends.

        Each iterator gets every event (several consumers do not steal from each other).
        """
        if self._ended.is_set():
            return
        q: asyncio.Queue[CallEvent | DtmfReceived | None] = asyncio.Queue()
        self._subscribers.append(q)
        try:
            while True:
                event = await q.get()
                if event is None:
                    return
                yield event
        finally:
            self._subscribers.remove(q)

    # -- control -----------------------------------------------------------------------------
    async def answer(self, source: AudioSource | None = None) -> None:
        """Answer an incoming call: start media and send 200 OK. Returns once connected.

        Args:
            source: what to send (default: the phone's source factory, else silence).

        Raises:
            InvalidState: the call is not ringing.
            AudioSourceError: the audio source cannot be opened (a missing or refused
                device ...); the message names the source and why. Nothing was sent: the
                call is still ringing, so answer again (with another source, or without one
                for the phone's default) or :meth:`reject` it.
            MediaError: the offer could not be answered (the call is rejected with 488).
        """
        if self.direction != "incoming" or self._session.state is not SessionState.INCOMING:
            raise InvalidState(f"cannot answer a call that is {self._state}")
        if source is not None:
            self._source = source
        try:
            await self._media.answer(self._new_media)
        except AudioSourceError:
            self._source = None  # not this one again: the next answer() takes its own
            raise

    async def hangup(self, status: int | None = None, reason: str | None = None) -> None:
        """End the call: reject it if ringing (486 by default, or ``status``), cancel it if
        still calling, send BYE if connected. Returns once the call has ended."""
        if self._ended.is_set():
            return
        self._sip(
            lambda ua, now: ua.hangup(self._session, now, status, reason)
        )
        try:
            await asyncio.wait_for(self._ended.wait(), 35.0)
        except TimeoutError:
            logger.warning("! call %s: no confirmation that the call ended", self.id)

    async def reject(self, status: int = 486, reason: str | None = None) -> None:
        """Decline an incoming call with ``status`` (486 Busy Here, 603 Decline ...)."""
        if self.direction != "incoming" or self._session.state is not SessionState.INCOMING:
            raise InvalidState(f"cannot reject a call that is {self._state}")
        await self.hangup(status, reason)

    def mute(self) -> None:
        """Send silence instead of our audio. No SIP is sent; the call stays connected.

        A call not yet answered may be muted: it starts muted.

        Raises:
            InvalidState: the call has ended.
        """
        self._set_muted(True)

    def unmute(self) -> None:
        """Send our audio again.

        Raises:
            InvalidState: the call has ended.
        """
        self._set_muted(False)

    def toggle_mute(self) -> None:
        """Flip mute.

        Raises:
            InvalidState: the call has ended.
        """
        self._set_muted(not self._muted)

    def _set_muted(self, muted: bool) -> None:
        if self._ended.is_set():
            raise InvalidState(f"cannot {'mute' if muted else 'unmute'} a call that is ended")
        if self._muted == muted:
            return
        self._muted = muted
        if self.media is not None:
            self.media.set_muted(muted)
        self._publish((CallMuted if muted else CallUnmuted)(self.phone.name, self))

    async def hold(self, music: AudioSource | None = None) -> None:
        """Put the call on hold: a re-INVITE with ``a=sendonly`` (RFC 3264 §8.4).

        Hold is private: from the moment this is called, nothing from the call's source
        (the microphone) reaches the far end; it hears ``music`` if given (e.g.
        ``WavFileSource("moh.wav", loop=True)``; started here, stopped on resume), else
        silence. :meth:`unhold` brings the source back once the far end accepted the
        resume. Mute is independent: a muted call is still muted after hold and resume.
        Holding a held call again with ``music`` switches the music.

        On 491 (glare) the re-INVITE is retried after RFC 3261 §14.1's random delay.

        Raises:
            InvalidState: the call is not connected.
            AudioSourceError: ``music`` cannot be started (nothing was sent).
            SipError: the far end refused (the source is heard again).
        """
        await self._set_hold(True, music)

    async def unhold(self) -> None:
        """Resume a held call: a re-INVITE with ``a=sendrecv``; our source is heard again
        once the far end accepted it (until then it still hears silence or hold music)."""
        await self._set_hold(False)

    async def toggle_hold(self) -> None:
        """Flip hold."""
        await self._set_hold(not self._on_hold)

    async def _set_hold(self, hold: bool, music: AudioSource | None = None) -> None:
        what = "hold" if hold else "resume"
        media = self.media
        if self._session.state is not SessionState.ESTABLISHED or media is None:
            raise InvalidState(f"cannot {what} a call that is {self._state}")
        if self._on_hold == hold:
            if hold and music is not None:
                await media.set_held(True, music=music)
            return
        if hold:
            # Privacy first: the far end stops hearing us now, not when it answers.
            await media.set_held(True, music=music)
        resumed: list[asyncio.Future[None]] = []

        def applied() -> None:
            self._on_hold = hold
            if not hold:
                resumed.append(asyncio.ensure_future(media.set_held(False)))
            self._publish((CallHeld if hold else CallResumed)(self.phone.name, self, "local"))

        try:
            await self._media.reoffer("sendonly" if hold else "sendrecv", applied, what=what)
        except BaseException:
            if hold and not self._on_hold:
                await media.set_held(False)
            raise
        finally:
            for task in resumed:
                await task

    async def send_dtmf(self, digits: str, *, method: str = "info", duration_ms: int = 240) -> None:
        """Send DTMF digits (``0-9``, ``A-D``, ``*``, ``#``; several at once allowed).

        Args:
            digits: one digit or a string of them.
            method: ``"info"`` sends SIP INFO ``application/dtmf-relay`` (``Signal=`` /
                ``Duration=``), as Exotel's servers expect; ``"rfc4733"`` sends RTP
                telephone-events (when negotiated); ``"auto"`` uses RFC 4733 when negotiated
                and INFO otherwise.
            duration_ms: the duration of each digit.

        Raises:
            InvalidDTMF: a character is not a DTMF digit (the message names it).
            InvalidState: the call is not connected.
        """
        parsed = parse_digits(digits)
        if method not in ("info", "rfc4733", "auto"):
            raise ValueError(f"method must be 'info', 'rfc4733' or 'auto', not {method!r}")
        if self._session.state is not SessionState.ESTABLISHED:
            raise InvalidState(f"cannot send DTMF on a call that is {self._state}")
        use_rtp = method == "rfc4733" or (
            method == "auto" and self.media is not None and self.media.telephone_event
        )
        if use_rtp:
            if self.media is None or not self.media.telephone_event:
                raise InvalidState("RFC 4733 telephone-event was not negotiated on this call")
            self.phone._play_dtmf_beep("".join(parsed))
            await self.media.send_dtmf("".join(parsed), duration_ms=duration_ms)
            return
        self.phone._play_dtmf_beep("".join(parsed))
        for digit in parsed:
            body = f"Signal={digit}\r\nDuration={duration_ms}".encode()
            self._sip(
                lambda ua, now, body=body: ua.send_info(  # type: ignore[misc]
                    self._session, _DTMF_INFO, body, now
                )
            )
            await asyncio.sleep(0)

    async def dtmf_received(self) -> AsyncIterator[str]:
        """Digits received from now on (SIP INFO and RFC 4733), until the call ends."""
        while not self._ended.is_set() or not self._dtmf.empty():
            getter = asyncio.ensure_future(self._dtmf.get())
            ender = asyncio.ensure_future(self._ended.wait())
            await asyncio.wait({getter, ender}, return_when=asyncio.FIRST_COMPLETED)
            ender.cancel()
            if getter.done():
                yield getter.result()
            else:
                getter.cancel()
                return

    # -- audio -------------------------------------------------------------------------------
    async def play(self, source: AudioSource) -> None:
        """Send ``source`` until it ends, then return to the previous source."""
        await self._need_media().play(source)

    async def set_source(self, source: AudioSource) -> AudioSource:
        """Send from ``source`` from now on; returns the previous source."""
        return await self._need_media().set_source(source)

    async def play_frames(
        self, frames: Iterable[Any] | AsyncIterator[Any], *, sample_rate: int = 16000
    ) -> None:
        """Send PCM frames (int16 numpy arrays or bytes at ``sample_rate``) in real time."""
        await self._need_media().play_frames(frames, sample_rate=sample_rate)

    def add_sink(self, sink: AudioSink) -> None:
        """Deliver received audio to ``sink`` (a WAV file, a level meter ...)."""
        self._need_media().add_sink(sink)

    def received_frames(
        self, *, sample_rate: int = 16000, timeout: float | None = None, max_frames: int = 50
    ) -> ReceivedFrames:
        """Received audio as 20 ms int16 numpy frames at ``sample_rate``.

        May be called at any time: before the call is answered or connected the iteration
        waits for its media; it ends when the call ends::

            async with call.received_frames(timeout=5) as frames:
                async for frame in frames:
                    ...

        ``async with`` detaches the frames from the call on exit; a plain
        ``async for frame in call.received_frames()`` works too (detached when the iterator
        is dropped, or with :meth:`ReceivedFrames.aclose`).

        Args:
            sample_rate: the rate of the frames.
            timeout: the longest wait, in seconds, for media and then for each frame
                (``None``: no limit). A wait that runs out raises :class:`TimeoutError`:
                no audio is arriving.
            max_frames: a consumer that falls this many frames behind loses the oldest.
        """
        return ReceivedFrames(self, sample_rate=sample_rate, timeout=timeout,
                              max_frames=max_frames)

    async def stats(self) -> CallStats:
        """A :class:`~exotel_voice.media.quality_stats.CallStats` snapshot of the call's media
        quality: codec, packets and bytes each way, loss and jitter as we measure them and as
        the far end reports them (RTCP), round-trip time, jitter-buffer delay, concealment,
        audio levels in and out.  Figures not known yet (no RTCP report so far) are ``None``.

        Raises:
            InvalidState: the call has no media yet.
        """
        return await self._need_media().quality_stats()

    def _need_media(self) -> MediaSession:
        if self.media is None:
            raise InvalidState("the call has no media yet (answer it, or wait for it to connect)")
        return self.media

    # -- driven by the phone -----------------------------------------------------------------
    def _new_media(self) -> MediaSession:
        source = self._source
        if source is None:
            try:
                source = self._new_source()
            except AudioSourceError:
                raise
            except Exception as exc:
                raise AudioSourceError("from the phone's source factory",
                                       f"{type(exc).__name__}: {exc}") from exc
        media = MediaSession(config=self.phone.media_config, source=source)
        media.add_dtmf_listener(lambda d: self._on_dtmf(d, "rfc4733"))
        self.phone._audio.attach(media)  # the chosen output device, if any
        if self._muted:
            media.set_muted(True)
        return media

    def _publish(self, event: CallEvent | DtmfReceived) -> None:
        for q in self._subscribers:
            q.put_nowait(event)
        self._to_phone(event)

    def _mark_connected(self) -> None:
        if self._connected.is_set() or not self._set_state(CallState.CONNECTED):
            return
        self.answer_time = time.time()
        self._connected.set()
        self._media_up.set()
        self._publish(CallConnected(self.phone.name, self))
        self._start_quality_watch()

    def _on_dtmf(self, digit: str, method: str) -> None:
        self._dtmf.put_nowait(digit)
        self._publish(DtmfReceived(self.phone.name, self, digit, method))

    def _on_media_warning(self, reason: str) -> None:
        self._publish(MediaWarning(self.phone.name, self, reason))

    def _on_media_health(self, event: MediaHealthEvent) -> None:
        """What the media watch saw (its ``MediaDown`` ends the call through ``on_failed``).

        Nothing is published once the call has ended: a report the watch made while the
        call was ending (its media closes in a task) must not follow :class:`CallEnded`."""
        if self.ended:
            return
        if isinstance(event, MediaTransportChanged):
            self._publish(MediaStateChanged(self.phone.name, self, event.ice, event.dtls,
                                            event.ice_changed))
            if event.ice_changed and self._quality is not None:
                for alarm in self._quality.ice_changed(event.ice):
                    self._on_quality(alarm)
        elif isinstance(event, MediaSilent):
            logger.warning("! call %s: %s", self.id, event.reason)
            self._publish(NoMediaWarning(self.phone.name, self, event.reason, event.silent_for))
        elif isinstance(event, MediaFlowing):
            reason = f"audio received again after {event.silent_for:.1f} s"
            logger.info("= call %s: %s", self.id, reason)
            self._publish(MediaWarningCleared(self.phone.name, self, reason, event.silent_for))

    def _start_quality_watch(self) -> None:
        """Sample the call's stats while it is connected (``MediaConfig.quality``): judge
        them for quality warnings and publish :class:`CallStatsUpdated` now and then."""
        config = self.phone.media_config.quality
        if not config.enabled or self._quality_task is not None:
            return
        loop = asyncio.get_running_loop()
        self._quality = QualityMonitor(config.thresholds, loop.time())
        self._quality_task = loop.create_task(
            self._watch_quality(self._quality), name=f"exotel-voice quality {self.id}"
        )

    async def _watch_quality(self, monitor: QualityMonitor) -> None:
        config = self.phone.media_config.quality
        loop = asyncio.get_running_loop()
        next_sample = loop.time() + config.sample_interval
        interval = config.stats_interval
        next_stats = None if interval is None else loop.time() + interval
        while not self.ended:
            wake = next_sample if next_stats is None else min(next_sample, next_stats)
            await asyncio.sleep(max(0.0, wake - loop.time()))
            media = self.media
            if self.ended or media is None:
                return
            try:
                stats = await media.quality_stats()
            except Exception as exc:  # a media stack error must not end the watch
                logger.debug("= call %s: no stats: %s", self.id, exc)
                next_sample = loop.time() + config.sample_interval
                continue
            if self.ended:
                return
            now = loop.time()
            if now >= next_sample:
                next_sample = now + config.sample_interval
                held = self._on_hold or self.remote_hold
                for alarm in monitor.update(
                    now, QualitySample.of(stats, muted=self._muted, held=held)
                ):
                    self._on_quality(alarm)
            if next_stats is not None and interval is not None and now >= next_stats:
                next_stats = now + interval
                self._publish(CallStatsUpdated(self.phone.name, self, stats, monitor.mos,
                                               monitor.loss_percent))

    def _on_quality(self, event: QualityEvent) -> None:
        if self.ended:
            return
        if isinstance(event, QualityAlarm):
            logger.warning("! call %s: %s", self.id, event.remedy)
            self._publish(QualityWarning(self.phone.name, self, event.kind, event.value,
                                         event.threshold, event.remedy))
        else:
            logger.info("= call %s: %s cleared (%g)", self.id, event.kind, event.value)
            self._publish(QualityWarningCleared(self.phone.name, self, event.kind,
                                                event.value))

    def _on_remote_hold(self, held: bool) -> None:
        self._publish((CallHeld if held else CallResumed)(self.phone.name, self, "remote"))

    def _on_event(self, event: core.UserAgentEvent) -> None:
        """Act on one call-layer event about this call (but its end: :meth:`_on_ended`)."""
        if isinstance(event, core.CallProgress):
            # Ringing is reported once per call: a far end may send 180 more than once
            # (SIP.js does; RFC 3261 §13.3.1.1 lets a UAS repeat provisionals), and the
            # repeats are reported as progress.
            first_ring = event.status == 180 and not self._ring_reported
            self._ring_reported = self._ring_reported or first_ring
            if event.status in (180, 183):
                self._set_state(CallState.RINGING)
            if event.sdp:
                self._early_media = True
            kind = CallRinging if first_ring else CallProgress
            self._publish(kind(self.phone.name, self, event.status, event.reason))
        elif isinstance(event, core.InfoReceived) and event.digit is not None:
            self._on_dtmf(event.digit, "info")
        elif isinstance(event, core.TargetRefreshNeeded):
            self._start_target_refresh(event.reason)
            return
        self._media.handle(event)

    def _start_target_refresh(self, reason: str) -> None:
        """The call moved to a new connection: refresh the far end's target (see
        :meth:`_refresh_target`). Held by the call until done (the loop keeps tasks weakly)."""
        if self._refresh_task is not None and not self._refresh_task.done():
            return
        self._refresh_task = asyncio.get_running_loop().create_task(
            self._refresh_target(reason), name=f"exotel-voice refresh {self.id}"
        )

    async def _refresh_target(self, reason: str) -> None:
        """A re-INVITE offering the session as it is (on hold or not) through the call's
        re-offer path, so its answer is applied like any other; it carries our new Contact.

        Success publishes :class:`CallRecovered`. When the far end or the server no longer
        has the call (481, 408, no answer) the call layer ends the call (:class:`CallEnded`
        naming why). Another refusal (500, 488 ...) is only logged here: the call layer
        asks again (a new ``TargetRefreshNeeded``, 2 s then 4 s later) and ends the call
        with a BYE when the last attempt is refused too (see
        :class:`~exotel_voice.sip.calls.TargetRefreshNeeded`). When no offer can be made at
        all (the call's media is gone: e.g. the far end closed it while we were away) no
        re-INVITE goes out, so nothing would ask again: the call ends at once, with a BYE
        and the reason.
        """
        if self.ended or self._session.state is not SessionState.ESTABLISHED:
            return
        try:
            # After a re-offer in progress (a hold ...), with the direction of that moment.
            await self._media.reoffer(self._offer_direction, lambda: None, what="refresh",
                                      wait=True)
        except (MediaError, InvalidState) as exc:
            if self.ended or not self._session.active:
                return
            what = ("the session could not be refreshed" if reason == "session-timer"
                    else "the call could not be restored after the connection was lost")
            problem = f"{what}: {exc}"
            logger.warning("! %s: %s", self.id, problem)
            self._sip(lambda ua, now: ua.fail_call(self._session, now, problem, by="local"))
            return
        except SipError as exc:
            if not self.ended:
                logger.info("= %s: the dialog refresh after the reconnect was refused (%s); "
                            "the call layer tries again or ends the call", self.id, exc)
            return
        if not self.ended and reason == "session-timer":
            # A session refresh (RFC 4028) by re-INVITE: nothing was lost or recovered.
            logger.debug("= %s: session refreshed (session timer)", self.id)
        elif not self.ended:
            logger.info("= %s: dialog refreshed after the reconnect", self.id)
            self._publish(CallRecovered(self.phone.name, self, reason))

    def _offer_direction(self) -> str:
        """The direction a re-offer that changes none offers: the call as it is, on hold
        or not (read when the offer is made: a hold that was in progress is kept)."""
        return "sendonly" if self._on_hold else "sendrecv"

    def _on_network_change(self, change: AddressChange) -> None:
        """The host's addresses changed (the phone's :class:`AddressWatcher
        <exotel_voice.media.netwatch.AddressWatcher>`): restart ICE in a re-INVITE (see
        :meth:`_restart_ice`). A change seen during a restart restarts again after it."""
        if self.ended or self._state is not CallState.CONNECTED:
            return
        if not change.current:
            logger.info("= call %s: network change (%s): no address left; the ICE restart "
                        "waits for one", self.id, change)
            return
        if self._restart_task is not None and not self._restart_task.done():
            self._restart_again = str(change)
            return
        self._restart_task = asyncio.get_running_loop().create_task(
            self._restart_ice(str(change)), name=f"exotel-voice ICE restart {self.id}"
        )

    async def _restart_ice(self, change: str | None) -> None:
        while change is not None and not self.ended:
            await self._restart_ice_once(change)
            change, self._restart_again = self._restart_again, None

    async def _restart_ice_once(self, change: str) -> None:
        """New candidates and ICE credentials (:meth:`MediaSession.restart_ice`) offered
        through the call's re-offer path, as it is (on hold or not); publishes
        :class:`IceRestarting`, then :class:`IceRestarted` with the outcome."""
        media = self._media.media
        if media is None:
            return
        self._publish(IceRestarting(self.phone.name, self, change))
        try:
            outcome = await media.restart_ice()
        except (MediaError, InvalidState) as exc:
            logger.warning("! call %s: network change (%s): %s; the call stays on its current "
                           "media path", self.id, change, exc)
            self._publish(IceRestarted(self.phone.name, self, False, str(exc)))
            return
        if self.ended or self._session.state is not SessionState.ESTABLISHED:
            return
        try:
            # After a re-offer in progress (a hold ...), with the direction of that moment.
            await self._media.reoffer(self._offer_direction, lambda: None, what="ICE restart",
                                      wait=True)
        except SipError as exc:
            if not self.ended:
                logger.warning("! call %s: the ICE restart's re-INVITE failed: %s",
                               self.id, exc)
                self._publish(IceRestarted(self.phone.name, self, False, str(exc)))
            return
        try:
            async with asyncio.timeout(30):
                reason = await outcome
        except TimeoutError:
            reason = "no new candidate pair"
        if self.ended:
            return
        if reason is None:
            logger.info("= call %s: ICE restarted after a network change (%s)", self.id, change)
            self._publish(IceRestarted(self.phone.name, self, True))
        else:
            logger.warning("! call %s: the ICE restart failed: %s", self.id, reason)
            self._publish(IceRestarted(self.phone.name, self, False, reason))

    def _on_ended(self, by: str, status: int | None, reason: str) -> asyncio.Task[None] | None:
        """Mark the call ended and publish it; returns the task closing its media, if any,
        for the phone to hold until it is done (the loop keeps only weak references)."""
        self._set_state(CallState.ENDED)
        self.end_time = time.time()
        self._ended.set()
        self._codec = self.codec  # kept for after the media is gone
        if self._quality_task is not None:
            self._quality_task.cancel()
        media = self._media.end()
        closing: asyncio.Task[None] | None = None
        if media is not None:
            closing = asyncio.get_running_loop().create_task(media.close())
        self._publish(CallEnded(self.phone.name, self, by, status, reason))
        for q in self._subscribers:
            q.put_nowait(None)
        return closing


class ReceivedFrames:
    """A call's received audio, frame by frame (:meth:`Call.received_frames`).

    An async iterator of 20 ms int16 numpy frames, and an async context manager that
    detaches it from the call on exit. It attaches to the call's media when the first
    frame is asked for, waiting for the media if the call has none yet, and ends when the
    call ends.
    """

    def __init__(
        self, call: Call, *, sample_rate: int, timeout: float | None, max_frames: int
    ) -> None:
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds, or None")
        self._call = call
        self._timeout = timeout
        self._sink = FrameSink(sample_rate=sample_rate, max_frames=max_frames)
        self._detach: weakref.finalize[Any, Any] | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "attached" if self._detach else "waiting"
        return f"<ReceivedFrames {self._call.id} {self._sink.sample_rate} Hz {state}>"

    @property
    def dropped(self) -> int:
        """Frames lost because the consumer fell ``max_frames`` behind."""
        return self._sink.dropped

    async def __aenter__(self) -> ReceivedFrames:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> ReceivedFrames:
        return self

    async def __anext__(self) -> Samples:
        if self._closed:
            raise StopAsyncIteration
        try:
            async with asyncio.timeout(self._timeout):
                if self._detach is None:
                    await self._attach()
                return await anext(self._sink)
        except TimeoutError:
            what = "audio" if self._detach is not None else "media"
            raise TimeoutError(
                f"no {what} received on call {self._call.id} within {self._timeout} s"
            ) from None

    async def _attach(self) -> None:
        call = self._call
        await wait_either(call._media_up, call._ended, None)
        media = call.media
        if media is None or call.ended:
            await self.aclose()
            raise StopAsyncIteration
        media.add_sink(self._sink)
        # A plain `async for` that stops early never calls aclose(): detach when dropped.
        self._detach = weakref.finalize(self, media.remove_sink, self._sink)

    async def aclose(self) -> None:
        """Stop receiving: detach from the call's media. Idempotent."""
        self._closed = True
        if self._detach is not None:
            self._detach()
        else:
            self._sink.close()


_ = InvalidDTMF  # documented in send_dtmf's Raises
