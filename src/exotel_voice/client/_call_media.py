"""A call's media, negotiated over its SIP session: the one offer/answer glue.

A phone's :class:`~exotel_voice.client.Call` and a sandbox
:class:`~exotel_voice.sandbox.legs.Leg` are both a
:class:`~exotel_voice.sip.calls.CallSession` (SIP, sans-I/O) plus a
:class:`~exotel_voice.media.MediaSession` (aiortc). :class:`CallMedia` joins the two for
both of them (RFC 3264 offer/answer):

* the offer of an incoming INVITE: :meth:`CallMedia.answer` accepts it and sends the 200
  OK, or 488 when it cannot;
* the answers to our INVITE: a 183's is applied provisionally (early media, optional: one
  that cannot be used is only logged); the 200's is applied for good, or the call is failed
  (a 200 that repeats the 183's answer with only the ``o=`` version bumped keeps the 183's,
  as baresip sends it);
* a re-INVITE from the far end: answered from the media session (hold, resume, new
  codecs), or refused with 488;
* a re-INVITE of ours (:meth:`CallMedia.reoffer`): its answer is applied; on a refusal
  (488, 491, a timeout) the media goes back to the negotiation in force; after a 491 the
  offer is made again when the call layer says the glare back-off is over (RFC 3261 §14.1).
  A re-offer that the call's end overtakes fails with :class:`InvalidState` saying so,
  never with the media stack's own error.

Each step awaits aiortc, and steps must not interleave (the 183's answer is applied before
the 200's; a re-INVITE is answered from the negotiation in force), so they run one at a time
under one lock, in the order their events came. The owner keeps the rest (call state, its
events and listeners) and hears of outcomes through callbacks. The SIP commands go through
``run``, which the owner provides: a phone runs them on its
:class:`~exotel_voice.sip.useragent.UserAgent`, the sandbox on its
:class:`~exotel_voice.sip.calls.CallLayer`; both have the methods of
:class:`SessionCommands`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from ..exceptions import AudioSourceError, InvalidState, MediaError, SipError
from ..media import AudioSource, MediaConfig, MediaSession, MediaState
from ..media.liveness import MediaDown, MediaHealthEvent
from ..sip.calls import (
    CallAnswered,
    CallProgress,
    CallSession,
    ReInviteAnswered,
    ReInviteReceived,
    ReInviteRejected,
    ReInviteRetryDue,
    SessionState,
    UserAgentEvent,
)


__all__ = ["CallMedia", "SessionCommands", "make_offer", "same_but_version", "wait_either"]

logger = logging.getLogger(__name__)


class SessionCommands(Protocol):
    """The call-layer commands that carry SDP: :class:`~exotel_voice.sip.calls.CallLayer`'s
    (:class:`~exotel_voice.sip.useragent.UserAgent` has the same)."""

    def answer(self, call: CallSession, sdp: str, now: float) -> None: ...
    def reject(self, call: CallSession, now: float, status: int = ...) -> None: ...
    def reinvite(self, call: CallSession, sdp: str, now: float) -> None: ...
    def answer_reinvite(self, call: CallSession, sdp: str | None, now: float) -> None: ...
    def reject_reinvite(self, call: CallSession, now: float, status: int = ...) -> None: ...


#: One command: ``command(layer, now)``; the owner runs it and writes its output.
Command = Callable[[SessionCommands, float], object]


async def make_offer(
    config: MediaConfig, source: AudioSource | None
) -> tuple[MediaSession, str]:
    """A new media session and its offer, for an INVITE we send.

    The session is closed again if the offer cannot be made.
    """
    media = MediaSession(config=config, source=source)
    try:
        return media, await media.create_offer()
    except BaseException:
        await media.close()
        raise


async def wait_either(first: asyncio.Event, second: asyncio.Event, timeout: float | None) -> None:
    """Wait until either event is set (a call connected, or ended first).

    Raises:
        TimeoutError: neither within ``timeout`` seconds.
    """
    async with asyncio.timeout(timeout):
        waiters = {asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


#: A direction to offer, or what reads it when the offer is made (a dialog refresh offers the
#: call's direction of that moment).
Direction = str | Callable[[], str]


@dataclass(eq=False)
class _Reoffer:
    """A re-INVITE of ours waiting for its outcome."""

    direction: Direction
    applied: Callable[[], None]
    what: str
    result: asyncio.Future[None]
    #: Whether its re-INVITE went out (then only its outcome ends it).
    sent: bool = False

    def offer_direction(self) -> str:
        return self.direction() if callable(self.direction) else self.direction


class CallMedia:
    """The media of one call and the offer/answer steps that drive it.

    Args:
        session: the call's SIP session.
        run: runs one :data:`Command` on the call layer at the current time (and writes
            what it sends).
        name: names the call in logs.
        media: the media session, when it already exists (an outgoing call's offer is made
            before its session: :func:`make_offer`).
        spawn: starts a step's task (default: a task kept here); the sandbox passes its
            own, which it cancels on close.
        on_connected: called once the call is answered and its media has the answer.
        on_failed: called with the reason when the 200 OK's answer cannot be used; the
            owner ends the call.
        on_remote_hold: called when a re-INVITE from the far end puts the call on hold
            (``True``) or resumes it (``False``).
        on_media_warning: called with the reason, once per reason, when a completed
            exchange shows that no audio can flow (:attr:`MediaSession.ice_problem
            <exotel_voice.media.MediaSession.ice_problem>`), before ``on_connected``.
        on_media_health: when given, the media is watched once the call is connected
            (:meth:`MediaSession.watch <exotel_voice.media.MediaSession.watch>`) and this gets
            each health event but ``MediaDown``, which goes to ``on_media_down`` with its
            reason (the owner ends the call: dead media, ICE failed, not connected in time).
        on_media_down: called with the reason when the watch finds the media dead (default:
            ``on_failed``); the owner ends the call as its own side's failure, not the far
            end's.

    Attributes:
        media: the media session, or ``None`` before an incoming call is answered and after
            :meth:`end`.
        remote_hold: whether the far end has put the call on hold.
    """

    def __init__(
        self,
        session: CallSession,
        run: Callable[[Command], None],
        *,
        name: str,
        media: MediaSession | None = None,
        spawn: Callable[[Coroutine[Any, Any, None]], object] | None = None,
        on_connected: Callable[[], None],
        on_failed: Callable[[str], None],
        on_remote_hold: Callable[[bool], None] | None = None,
        on_media_warning: Callable[[str], None] | None = None,
        on_media_health: Callable[[MediaHealthEvent], None] | None = None,
        on_media_down: Callable[[str], None] | None = None,
    ) -> None:
        self.session = session
        self.media = media
        self.remote_hold = False
        self._run = run
        self._name = name
        self._spawn_task = spawn
        self._on_connected = on_connected
        self._on_failed = on_failed
        self._on_remote_hold = on_remote_hold
        self._on_media_warning = on_media_warning
        self._on_media_health = on_media_health
        self._on_media_down = on_media_down or on_failed
        self._warned: str | None = None
        self._lock = asyncio.Lock()
        self._early_sdp: str | None = None
        self._reoffer: _Reoffer | None = None
        # The far end's offers (re-INVITE, UPDATE) not answered yet: each future is done
        # once its answer went out (a re-offer of ours must not cross it: RFC 3261 §14.1).
        self._remote_offers: set[asyncio.Future[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"<CallMedia {self._name} {self.media!r}>"

    # -- commands ----------------------------------------------------------------------------
    async def answer(self, make_media: Callable[[], MediaSession]) -> None:
        """Answer the INVITE's offer: make the media's answer and send it in a 200 OK.

        Args:
            make_media: makes the media session, unless the call already has one.

        Raises:
            AudioSourceError: the audio source cannot be opened; nothing was sent, the call
                still rings (answer again, e.g. with another source, or reject it).
            MediaError: the offer cannot be answered (the call is rejected with 488).
            InvalidState: the call is not ringing, or ended while the answer was made.
        """
        async with self._lock:
            if self.session.state is not SessionState.INCOMING:
                raise InvalidState(f"cannot answer a call that is {self.session.state}")
            if self.media is None:
                self.media = make_media()
            offer = self.session.remote_sdp
            try:
                if not offer:
                    raise MediaError("the INVITE carried no SDP offer")
                answer = await self.media.accept_offer(offer)
            except AudioSourceError as exc:
                logger.warning("! %s: cannot answer: %s", self._name, exc)
                media, self.media = self.media, None
                await media.close()
                raise
            except (SipError, ValueError) as exc:
                logger.warning("! %s: cannot answer the offer: %s", self._name, exc)
                if self.session.state is SessionState.INCOMING:
                    self._run(lambda layer, now: layer.reject(self.session, now, 488))
                raise MediaError(f"cannot answer the call's offer: {exc}") from exc
            if self.session.state is not SessionState.INCOMING:
                raise InvalidState("the call ended while it was being answered")
            self._run(lambda layer, now: layer.answer(self.session, answer, now))
            self._report_ice_problem()
            self._on_connected()
            self._watch()

    async def reoffer(
        self,
        direction: Direction,
        applied: Callable[[], None],
        *,
        what: str = "re-offer",
        wait: bool = False,
    ) -> None:
        """Offer ``direction`` (``sendonly`` to hold ...) in a re-INVITE and wait for the
        outcome. On 491 the offer is made again after the glare back-off.

        Re-offers go out one at a time. A dialog refresh or an ICE restart (``wait=True``)
        waits for the one in progress to finish, and for the far end's offers still being
        answered, and then goes; anything else is refused while one is in progress.

        Args:
            direction: the direction to offer, or a function giving it, called when the
                offer is made (after any wait: a refresh or an ICE restart offers the call's
                direction of that moment, so a hold that finished meanwhile is kept).
            applied: called once the far end's answer is in force (even if this wait was
                cancelled meanwhile).
            what: what the re-offer does (``hold``, ``resume``), for error messages.
            wait: wait for a re-offer in progress instead of raising :class:`InvalidState`.

        Raises:
            InvalidState: the call is not established, or a re-offer is already in progress
                (without ``wait``), or the call ended before the outcome
                (``"cannot <what>: the call ended"``).
            MediaError: the offer could not be made.
            SipError: the far end refused (``"<what> failed: 488 Not Acceptable Here"``) or
                its answer cannot be used.
        """
        while True:
            while wait and (self._reoffer is not None or self._remote_offers):
                # Their outcomes are their owners' to report; only their end matters here.
                busy = {*self._remote_offers}
                if self._reoffer is not None:
                    busy.add(self._reoffer.result)
                await asyncio.wait(busy, return_when=asyncio.FIRST_COMPLETED)
            if self.session.state is not SessionState.ESTABLISHED or self.media is None:
                if not self.session.active or self.media is None:
                    raise InvalidState(f"cannot {what}: the call ended")
                raise InvalidState(f"cannot {what} a call that is {self.session.state}")
            if self._reoffer is not None:
                raise InvalidState(f"a {self._reoffer.what} is already in progress")
            pending = _Reoffer(
                direction, applied, what, asyncio.get_running_loop().create_future()
            )
            self._reoffer = pending
            try:
                async with self._lock:
                    await self._send_reoffer()
            except BaseException:
                # Cancelled (or failed unexpectedly) before its re-INVITE went out: it must
                # not block every later re-offer of the call.
                if self._reoffer is pending and not pending.sent:
                    self._reoffer = None
                    pending.result.cancel()
                raise
            if wait and not pending.sent and self._remote_offers and pending.result.done():
                # The far end's offer came in while ours was being made: it is answered
                # first, then ours goes.
                pending.result.exception()  # retrieved: it is not the outcome
                continue
            await pending.result
            return

    def end(self) -> MediaSession | None:
        """The call ended: fail a pending re-offer (:class:`InvalidState` "cannot <what>: the
        call ended") and give up the media session, returning it for the owner to close."""
        if self._reoffer is not None:
            self._reoffer_done(InvalidState(f"cannot {self._reoffer.what}: the call ended"))
        for answered in list(self._remote_offers):
            if not answered.done():
                answered.set_result(None)
        media, self.media = self.media, None
        return media

    # -- events ------------------------------------------------------------------------------
    def handle(self, event: UserAgentEvent) -> None:
        """Take the media's part of one call-layer event about this call."""
        if isinstance(event, CallProgress):
            sdp = event.sdp
            if sdp:
                self._spawn(lambda: self._apply_early_answer(event.status, event.reason, sdp))
        elif isinstance(event, CallAnswered):
            self._spawn(lambda: self._apply_answer(event.sdp))
        elif isinstance(event, ReInviteReceived):
            answered = asyncio.get_running_loop().create_future()
            self._remote_offers.add(answered)
            answered.add_done_callback(self._remote_offers.discard)
            self._spawn(lambda: self._answer_reinvite(event.sdp), done=answered)
        elif isinstance(event, ReInviteAnswered):
            self._spawn(lambda: self._apply_reoffer_answer(event.sdp))
        elif isinstance(event, ReInviteRejected):
            # The far end refused our offer: go back to the negotiation in force, so the
            # call can re-offer (the glare retry), answer re-INVITEs and send DTMF.
            self._spawn(self._rollback)
            if event.retry_in is None and self._reoffer is not None:
                what, status = self._reoffer.what, event.status or "no response"
                self._reoffer_done(SipError(f"{what} failed: {status} {event.reason}".strip()))
        elif isinstance(event, ReInviteRetryDue):
            if self._reoffer is not None:
                self._spawn(self._send_reoffer)

    # -- steps (each runs under the lock) ----------------------------------------------------
    def _spawn(
        self, step: Callable[[], Awaitable[None]], *, done: asyncio.Future[None] | None = None
    ) -> None:
        """Run ``step`` under the lock in a task; ``done`` is set when it is over (however
        it ended, cancelled before it started included)."""

        def finished(*_: object) -> None:
            if done is not None and not done.done():
                done.set_result(None)

        async def run() -> None:
            try:
                async with self._lock:
                    await step()
            except Exception:
                logger.exception("! %s: media step failed", self._name)
            finally:
                finished()

        if self._spawn_task is not None:
            self._spawn_task(run())
            return
        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(finished)

    async def _apply_early_answer(self, status: int, reason: str, sdp: str) -> None:
        media = self.media
        if media is None or not self.session.active:
            return
        try:
            await media.set_answer(sdp, provisional=True)
        except (SipError, ValueError) as exc:
            # Early media is optional: the call goes on, the 200 brings the answer.
            logger.warning("! %s: ignoring the early media of the %d %s: %s",
                           self._name, status, reason, exc)
            return
        self._early_sdp = sdp
        self._report_ice_problem()

    async def _apply_answer(self, sdp: str | None) -> None:
        media = self.media
        if not self.session.active:
            return
        problem = None
        if media is not None and sdp:
            try:
                await media.set_answer(sdp)
            except (SipError, ValueError) as exc:
                early = self._early_sdp
                if isinstance(exc, MediaError) and early is not None and same_but_version(
                    early, sdp
                ):
                    # The 200 repeats the 183's answer with only the o= version bumped: the
                    # early answer stays the session in force.
                    logger.info("= %s: the 200 repeats the early answer (new o= version "
                                "only); keeping it", self._name)
                    await media.set_answer(early)
                else:
                    problem = f"the answer in the 200 OK cannot be used: {exc}"
        elif media is not None and media.state is MediaState.OFFERING:
            problem = "the 200 OK carries no SDP answer to our offer"
        if not self.session.active:
            return
        if problem is not None:
            # The SIP call is up but its audio cannot be: the owner ends it, naming why,
            # rather than leave it connected in SIP and ringing in media.
            self._on_failed(problem)
            return
        self._report_ice_problem()
        self._on_connected()
        self._watch()

    def _watch(self) -> None:
        if self._on_media_health is not None and self.media is not None and self.session.active:
            self.media.watch(self._on_health)

    def _on_health(self, event: MediaHealthEvent) -> None:
        if isinstance(event, MediaDown):
            if self.session.active:
                logger.warning("! %s: %s; ending the call", self._name, event.reason)
                self._on_media_down(event.reason)
        elif self._on_media_health is not None:
            self._on_media_health(event)

    def _report_ice_problem(self) -> None:
        problem = self.media.ice_problem if self.media is not None else None
        if problem is not None and problem != self._warned:
            self._warned = problem
            if self._on_media_warning is not None:
                self._on_media_warning(problem)

    async def _answer_reinvite(self, sdp: str | None) -> None:
        media = self.media
        if not self.session.active:
            self._run(lambda layer, now: layer.reject_reinvite(self.session, now))
            return
        if media is None or not sdp:
            self._run(lambda layer, now: layer.answer_reinvite(self.session, None, now))
            return
        try:
            answer = await media.update(sdp)
        except (SipError, ValueError) as exc:
            logger.warning("! %s: cannot answer the re-INVITE: %s", self._name, exc)
            self._run(lambda layer, now: layer.reject_reinvite(self.session, now))
            return
        self._run(lambda layer, now: layer.answer_reinvite(self.session, answer, now))
        logger.debug("= %s: re-INVITE answered (%s)", self._name, media.remote_direction)
        held = media.remote_hold
        if held != self.remote_hold:
            self.remote_hold = held
            if self._on_remote_hold is not None:
                self._on_remote_hold(held)

    async def _send_reoffer(self) -> None:
        pending, media = self._reoffer, self.media
        if pending is None:
            return
        if media is None or not self.session.active:
            self._reoffer_done(InvalidState(f"cannot {pending.what}: the call ended"))
            return
        try:
            offer = await media.create_reoffer(pending.offer_direction())
        except Exception as exc:
            # The call may have ended meanwhile (its media closed under the offer): say so,
            # not what aiortc said about its closed peer connection.
            self._reoffer_done(self._failure(pending.what, exc, "cannot make the offer"))
            return
        try:
            self._run(lambda layer, now: layer.reinvite(self.session, offer, now))
        except SipError as exc:
            # Not sent (the far end's offer is being answered, no connection ...): back to
            # the negotiation in force, so the call can answer and re-offer again.
            if self.session.active:
                await self._rollback()
            self._reoffer_done(self._failure(pending.what, exc, "cannot send the re-INVITE"))
            return
        pending.sent = True

    def _failure(self, what: str, exc: Exception, doing: str) -> SipError:
        """What a re-offer that failed with ``exc`` tells its owner: that the call ended (or
        its media was closed) when it did, else ``exc`` (a ``SipError``) or a
        :class:`MediaError` naming ``doing`` and the error."""
        media = self.media
        if not self.session.active or media is None:
            return InvalidState(f"cannot {what}: the call ended")
        if media.state is MediaState.CLOSED:
            return InvalidState(f"cannot {what}: the call's media was closed")
        if isinstance(exc, SipError):
            return exc
        return MediaError(f"{what} failed: {doing}: {type(exc).__name__}: {exc}")

    async def _apply_reoffer_answer(self, sdp: str | None) -> None:
        media, pending = self.media, self._reoffer
        what = pending.what if pending is not None else "re-offer"
        if media is not None and sdp:
            try:
                await media.set_answer(sdp)
            except Exception as exc:
                failure = self._failure(what, exc, "the answer cannot be used")
                if isinstance(failure, InvalidState):  # the call ended (or lost its media)
                    self._reoffer_done(failure)
                    return
                # The far end took our re-offer but its answer cannot be used: keep the
                # negotiation in force and report the re-offer as failed.
                logger.warning("! %s: the answer to our re-INVITE cannot be used: %s",
                               self._name, exc)
                await self._rollback()
                self._reoffer_done(SipError(f"{what} failed: the answer cannot be used: {exc}"))
                return
        if pending is not None:
            pending.applied()
        self._reoffer_done(None)

    async def _rollback(self) -> None:
        if self.media is None:
            return
        try:
            await self.media.rollback()
        except InvalidState as exc:
            logger.warning("! %s: cannot roll back the rejected re-offer: %s", self._name, exc)

    def _reoffer_done(self, error: SipError | None) -> None:
        """End the pending re-offer with its outcome (``None``: the answer is in force)."""
        pending, self._reoffer = self._reoffer, None
        if pending is None or pending.result.done():
            return
        if error is None:
            pending.result.set_result(None)
        else:
            pending.result.set_exception(error)


def same_but_version(early: str, final: str) -> bool:
    """Whether two SDP bodies differ at most in the o= line's session version."""

    def normalised(sdp: str) -> list[str]:
        out = []
        for line in (line.strip() for line in sdp.strip().splitlines()):
            if line.startswith("o="):
                parts = line.split()
                if len(parts) >= 3:
                    parts[2] = "*"
                line = " ".join(parts)
            out.append(line)
        return out

    return normalised(early) == normalised(final)
