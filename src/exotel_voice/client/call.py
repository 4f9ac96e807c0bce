"""A call, as the asyncio API sees it: SIP state from the core, audio from a MediaSession.

Get calls from :meth:`Phone.dial() <exotel_voice.client.phone.Phone.dial>` and
:meth:`Phone.incoming_calls() <exotel_voice.client.phone.Phone.incoming_calls>`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..exceptions import InvalidDTMF, InvalidState, MediaError, SipError
from ..media import AudioSink, AudioSource, MediaSession, MediaState
from ..media.dtmf import parse_digits
from ..sip.calls import CallSession, SessionState
from ..sip.headers import SENSITIVE_HEADERS
from .events import (
    CallConnected,
    CallEnded,
    CallEvent,
    CallHeld,
    CallMuted,
    CallProgress,
    CallResumed,
    CallRinging,
    CallUnmuted,
    DtmfReceived,
    PhoneEvent,
)


if TYPE_CHECKING:
    from ..sip.useragent import UserAgent
    from .phone import Phone

#: A user-agent command for one call: ``action(user_agent, now)``.
SipAction = Callable[["UserAgent", float], object]

__all__ = ["Call", "CallState"]

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


class Call:
    """One call: control it, and read and write its audio.

    Attributes:
        phone: the phone the call belongs to.
        direction: ``"incoming"`` or ``"outgoing"``.
        start_time: when the call started (``time.time()``): INVITE sent or received.
        answer_time: when it connected, or ``None``.
        end_time: when it ended, or ``None``.
        media: the call's :class:`~exotel_voice.media.MediaSession`, once media started.
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
        self.media: MediaSession | None = None
        self._source = source
        self._lock = asyncio.Lock()
        self._connected = asyncio.Event()
        self._ended = asyncio.Event()
        self._state = CallState.INCOMING if session.direction == "incoming" else CallState.CALLING
        self._muted = False
        self._on_hold = False
        self._remote_hold = False
        self._ring_reported = False
        self._early_sdp: str | None = None
        self._hold_wanted: bool | None = None
        self._hold_result: asyncio.Future[None] | None = None
        self._subscribers: list[asyncio.Queue[CallEvent | DtmfReceived | None]] = []
        self._dtmf: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()

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
        """``"local"`` or ``"remote"`` once the call has ended."""
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
        return self._remote_hold

    # -- waiting -----------------------------------------------------------------------------
    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the call is connected.

        Raises:
            SipError: the call ended first (its status and reason are in the message).
            TimeoutError: not connected within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            done = asyncio.ensure_future(self._connected.wait())
            ended = asyncio.ensure_future(self._ended.wait())
            try:
                await asyncio.wait({done, ended}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                done.cancel()
                ended.cancel()
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
            MediaError: the offer could not be answered (the call is rejected with 488).
        """
        if self.direction != "incoming" or self._session.state is not SessionState.INCOMING:
            raise InvalidState(f"cannot answer a call that is {self._state}")
        if source is not None:
            self._source = source
        async with self._lock:
            media = self._ensure_media()
            offer = self._session.remote_sdp
            try:
                if offer is None:
                    raise MediaError("the INVITE carried no SDP offer")
                answer = await media.accept_offer(offer)
            except (SipError, ValueError) as exc:
                logger.warning("! call %s: cannot answer the offer: %s", self.id, exc)
                self._sip(lambda ua, now: ua.reject(self._session, now, 488))
                raise MediaError(f"cannot answer the call's offer: {exc}") from exc
            if self._session.state is not SessionState.INCOMING:
                raise InvalidState("the call ended while it was being answered")
            self._sip(lambda ua, now: ua.answer(self._session, answer, now))
            self._mark_connected()

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
        """Send silence instead of our audio. No SIP is sent; the call stays connected."""
        self._set_muted(True)

    def unmute(self) -> None:
        """Send our audio again."""
        self._set_muted(False)

    def toggle_mute(self) -> None:
        """Flip mute."""
        self._set_muted(not self._muted)

    def _set_muted(self, muted: bool) -> None:
        if self._muted == muted:
            return
        self._muted = muted
        if self.media is not None:
            self.media.set_muted(muted)
        self._publish((CallMuted if muted else CallUnmuted)(self.phone.name, self))

    async def hold(self) -> None:
        """Put the call on hold: a re-INVITE with ``a=sendonly`` (RFC 3264 §8.4).

        On 491 (glare) the re-INVITE is retried after RFC 3261 §14.1's random delay.

        Raises:
            InvalidState: the call is not connected.
            SipError: the far end refused.
        """
        await self._set_hold(True)

    async def unhold(self) -> None:
        """Resume a held call: a re-INVITE with ``a=sendrecv``."""
        await self._set_hold(False)

    async def toggle_hold(self) -> None:
        """Flip hold."""
        await self._set_hold(not self._on_hold)

    async def _set_hold(self, hold: bool) -> None:
        if self._session.state is not SessionState.ESTABLISHED or self.media is None:
            action = "hold" if hold else "resume"
            raise InvalidState(f"cannot {action} a call that is {self._state}")
        if self._on_hold == hold:
            return
        if self._hold_result is not None and not self._hold_result.done():
            raise InvalidState("a hold or resume is already in progress")
        self._hold_wanted = hold
        self._hold_result = asyncio.get_running_loop().create_future()
        await self._send_hold_offer()
        await self._hold_result

    async def _send_hold_offer(self) -> None:
        assert self.media is not None
        direction = "sendonly" if self._hold_wanted else "sendrecv"
        async with self._lock:
            offer = await self.media.create_reoffer(direction)
            self._sip(lambda ua, now: ua.reinvite(self._session, offer, now))

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
            await self.media.send_dtmf("".join(parsed), duration_ms=duration_ms)
            return
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

    def received_frames(self, *, sample_rate: int = 16000) -> AsyncIterator[Any]:
        """Received audio as 20 ms int16 numpy frames at ``sample_rate``."""
        return self._need_media().received_frames(sample_rate=sample_rate)

    def _need_media(self) -> MediaSession:
        if self.media is None:
            raise InvalidState("the call has no media yet (answer it, or wait for it to connect)")
        return self.media

    # -- driven by the phone -----------------------------------------------------------------
    def _ensure_media(self) -> MediaSession:
        if self.media is None:
            source = self._source if self._source is not None else self._new_source()
            self.media = MediaSession(config=self.phone.media_config, source=source)
            self.media.add_dtmf_listener(lambda d: self._on_dtmf(d, "rfc4733"))
            if self._muted:
                self.media.set_muted(True)
        return self.media

    def _spawn(self, coro: Callable[[], Awaitable[None]]) -> None:
        async def run() -> None:
            try:
                async with self._lock:
                    await coro()
            except Exception:
                logger.exception("! call %s: media step failed", self.id)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _publish(self, event: CallEvent | DtmfReceived) -> None:
        for q in self._subscribers:
            q.put_nowait(event)
        self._to_phone(event)

    def _mark_connected(self) -> None:
        if self._connected.is_set() or not self._set_state(CallState.CONNECTED):
            return
        self.answer_time = time.time()
        self._connected.set()
        self._publish(CallConnected(self.phone.name, self))

    def _on_dtmf(self, digit: str, method: str) -> None:
        self._dtmf.put_nowait(digit)
        self._publish(DtmfReceived(self.phone.name, self, digit, method))

    def _on_progress(self, status: int, reason: str, sdp: str | None) -> None:
        # Ringing is reported once per call: a far end may send 180 more than once (SIP.js
        # does; RFC 3261 §13.3.1.1 lets a UAS repeat provisionals), and the repeats are
        # reported as progress.
        first_ring = status == 180 and not self._ring_reported
        self._ring_reported = self._ring_reported or first_ring
        if status in (180, 183):
            self._set_state(CallState.RINGING)
        if sdp and self.media is not None:
            media = self.media

            async def early() -> None:
                if self._ended.is_set():
                    return
                try:
                    await media.set_answer(sdp, provisional=True)
                except (SipError, ValueError) as exc:
                    # Early media is optional: the call goes on, the 200 brings the answer.
                    logger.warning("! call %s: ignoring the early media of the %d %s: %s",
                                   self.id, status, reason, exc)
                    return
                self._early_sdp = sdp

            self._spawn(early)
        kind = CallRinging if first_ring else CallProgress
        self._publish(kind(self.phone.name, self, status, reason))

    def _on_answered(self, sdp: str | None) -> None:
        media = self.media

        async def connect() -> None:
            # Runs after the early-media step (the lock keeps them in order): read its result.
            early = self._early_sdp
            if self._ended.is_set():
                return
            problem = None
            if media is not None and sdp:
                try:
                    await media.set_answer(sdp)
                except (SipError, ValueError) as exc:
                    if (
                        isinstance(exc, MediaError)
                        and early is not None
                        and _same_but_version(early, sdp)
                    ):
                        # The 200 repeats the 183's answer with only the o= version bumped
                        # (baresip does): the early answer stays the session in force.
                        logger.info("= call %s: the 200 repeats the early answer (new o= "
                                    "version only); keeping it", self.id)
                        await media.set_answer(early)
                    else:
                        problem = f"the answer in the 200 OK cannot be used: {exc}"
            elif media is not None and media.state is MediaState.OFFERING:
                problem = "the 200 OK carries no SDP answer to our offer"
            if self._ended.is_set():
                return
            if problem is not None:
                # The SIP call is up but its audio cannot be: end it (BYE) with the reason,
                # rather than leave it connected in SIP and "ringing" here.
                self._sip(
                    lambda ua, now: ua.fail_call(self._session, now, problem)
                )
                return
            self._mark_connected()

        self._spawn(connect)

    def _on_reinvite(self, sdp: str | None) -> None:
        media = self.media

        async def respond() -> None:
            if media is None or sdp is None:
                self._sip(
                    lambda ua, now: ua.answer_reinvite(self._session, None, now)
                )
                return
            try:
                answer = await media.update(sdp)
            except (SipError, ValueError) as exc:
                logger.warning("! call %s: cannot answer re-INVITE: %s", self.id, exc)
                self._sip(
                    lambda ua, now: ua.reject_reinvite(self._session, now)
                )
                return
            self._sip(
                lambda ua, now: ua.answer_reinvite(self._session, answer, now)
            )
            held = media.remote_hold
            if held != self._remote_hold:
                self._remote_hold = held
                self._publish((CallHeld if held else CallResumed)(self.phone.name, self, "remote"))

        self._spawn(respond)

    def _on_reinvite_answered(self, sdp: str | None) -> None:
        media = self.media

        async def apply() -> None:
            if media is not None and sdp:
                try:
                    await media.set_answer(sdp)
                except (SipError, ValueError) as exc:
                    # The far end took our re-offer but its answer cannot be used: keep the
                    # negotiation in force and report the hold/resume as failed.
                    logger.warning("! call %s: the answer to our re-INVITE cannot be used: %s",
                                   self.id, exc)
                    await _rollback(media)
                    wanted, self._hold_wanted = self._hold_wanted, None
                    if self._hold_result is not None and not self._hold_result.done():
                        what = "hold" if wanted else "resume"
                        self._hold_result.set_exception(
                            SipError(f"{what} failed: the answer cannot be used: {exc}")
                        )
                    return
            if self._hold_wanted is not None:
                self._on_hold = self._hold_wanted
                self._hold_wanted = None
                kind = CallHeld if self._on_hold else CallResumed
                self._publish(kind(self.phone.name, self, "local"))
                if self._hold_result is not None and not self._hold_result.done():
                    self._hold_result.set_result(None)

        self._spawn(apply)

    def _on_reinvite_rejected(self, status: int | None, reason: str, retry: bool) -> None:
        media = self.media
        if media is not None:
            # The far end refused our offer: go back to the negotiation in force, so the
            # call can re-offer (the glare retry), answer re-INVITEs and send DTMF.
            self._spawn(lambda: _rollback(media))
        if retry:
            return
        wanted, self._hold_wanted = self._hold_wanted, None
        if self._hold_result is not None and not self._hold_result.done():
            what = "hold" if wanted else "resume"
            self._hold_result.set_exception(
                SipError(f"{what} failed: {status or 'no response'} {reason}".strip())
            )

    def _on_retry_due(self) -> None:
        if self._hold_wanted is None:
            return

        async def retry() -> None:
            try:
                await self._send_hold_offer()
            except SipError as exc:
                if self._hold_result is not None and not self._hold_result.done():
                    self._hold_result.set_exception(exc)

        task = asyncio.get_running_loop().create_task(retry())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_ended(self, by: str, status: int | None, reason: str) -> asyncio.Task[None] | None:
        """Mark the call ended and publish it; returns the task closing its media, if any,
        for the phone to hold until it is done (the loop keeps only weak references)."""
        self._set_state(CallState.ENDED)
        self.end_time = time.time()
        self._ended.set()
        if self._hold_result is not None and not self._hold_result.done():
            self._hold_result.set_exception(SipError("the call ended"))
        media, self.media = self.media, None
        closing: asyncio.Task[None] | None = None
        if media is not None:
            closing = asyncio.get_running_loop().create_task(media.close())
        self._publish(CallEnded(self.phone.name, self, by, status, reason))
        for q in self._subscribers:
            q.put_nowait(None)
        return closing


def _same_but_version(early: str, final: str) -> bool:
    """Whether two SDP bodies differ at most in the o= line's session version."""

    def normalised(sdp: str) -> list[str]:
        lines = [line.strip() for line in sdp.strip().splitlines()]
        out = []
        for line in lines:
            if line.startswith("o="):
                parts = line.split()
                if len(parts) >= 3:
                    parts[2] = "*"
                line = " ".join(parts)
            out.append(line)
        return out

    return normalised(early) == normalised(final)


async def _rollback(media: MediaSession) -> None:
    try:
        await media.rollback()
    except InvalidState as exc:
        logger.warning("! cannot roll back the rejected re-offer: %s", exc)


_ = InvalidDTMF  # documented in send_dtmf's Raises
