"""Call legs: one call between the sandbox and a client, with the sandbox's media.

The sandbox is a back-to-back user agent that terminates media: each leg has its own
:class:`~exotel_voice.media.MediaSession` on the sandbox side, and test numbers (echo,
tone, IVR) or a bridge to another leg act on that session's audio. That is also what
Exotel's edge does (its media servers answer the browser), and it means a leg handles hold
(re-INVITE) and DTMF on its own, whatever is on the other side.

A leg has no SIP logic of its own: the SIP side of every leg is a
:class:`~exotel_voice.sip.calls.CallSession` of the sandbox's one
:class:`~exotel_voice.sip.calls.CallLayer` (the same core a phone uses), living on the
client's flow, and its media side is negotiated by the same offer/answer glue as a phone's
call (:class:`~exotel_voice.client._call_media.CallMedia`). A leg is to a session what
:class:`exotel_voice.client.Call` is to a phone's session: it runs the layer's commands
through its flow's pump and turns the layer's events into leg state and listeners.

* :meth:`Leg.incoming` takes an INVITE a client sent us (we are the UAS): ring, answer,
  reject; a CANCEL ends it with 487 (the layer answers it).
* :meth:`Leg.outgoing` sends an INVITE to a registered client (we are the UAC) with our
  SDP offer: wait for the answer, cancel, or give up after a ring timeout.
* Either side: BYE, INFO (sent and received), re-INVITE answered from the media session.
* The client's connection lost (:meth:`Leg.keep`): an established leg can outlive it, its
  dialog and media kept, for a grace period; the client's next in-dialog request on a new
  connection (its target-refresh re-INVITE) moves it there (:meth:`Leg.resume`). Meanwhile
  nothing can reach the client: a BYE the sandbox wants to send waits for the client's
  return (then goes first), an INFO is dropped. At the end of the grace period the leg
  ends without a BYE (:meth:`Leg.give_up`), as its client's flow is gone.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..client._call_media import CallMedia, Command, make_offer, wait_either
from ..exceptions import InvalidState, MediaError
from ..media import AudioSource, MediaSession
from ..sip.calls import (
    CallEnded,
    CallProgress,
    CallSession,
    InfoReceived,
    SessionState,
    UserAgentEvent,
)
from ..sip.dialog import Dialog
from ..sip.headers import NameAddr
from ..sip.message import Request
from ..sip.transaction import ServerTransaction
from ..sip.uri import URI


if TYPE_CHECKING:
    from .flow import Flow
    from .server import Sandbox

__all__ = ["Leg", "LegState"]

logger = logging.getLogger(__name__)


class LegState(enum.Enum):
    """Where a leg is."""

    CALLING = "calling"  # outgoing INVITE sent, nothing back yet
    RINGING = "ringing"  # 180 sent (incoming) or received (outgoing)
    CONNECTED = "connected"  # answered, and the media session has the answer
    ENDED = "ended"


InfoListener = Callable[["Leg", InfoReceived], None]


class Leg:
    """One call with a client, plus the sandbox's media for it.

    Attributes:
        session: the SIP side, a call of the sandbox's :class:`CallLayer`.
        direction: ``"incoming"`` (the client called the sandbox) or ``"outgoing"``.
        user: the registered user at the client end.
        media: the sandbox-side media session, once created.
        state: the :class:`LegState`.
        end_status: the SIP status that ended the call, if any (486, 487, 408 ...).
        end_reason: why it ended, readable.
        ended_by: ``"remote"`` (the client), ``"sandbox"``, or ``None`` while up.
        info_listeners: called with each INFO received (after it was answered 200).
    """

    def __init__(
        self,
        sandbox: Sandbox,
        flow: Flow,
        session: CallSession,
        *,
        user: str,
        media: MediaSession | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.flow = flow
        self.session = session
        self.direction = session.direction
        self.user = user
        self.state = LegState.CALLING
        self.end_status: int | None = None
        self.end_reason = ""
        self.ended_by: str | None = None
        self.info_listeners: list[InfoListener] = []
        self.end_listeners: list[Callable[[Leg], None]] = []
        self.answer_listeners: list[Callable[[Leg], None]] = []
        self._connected = asyncio.Event()
        self._ended = asyncio.Event()
        #: While the client's connection is lost (:meth:`keep`): the grace period's end.
        self._grace: asyncio.TimerHandle | None = None
        #: A BYE the sandbox wanted to send while the client was away.
        self._bye_pending = False
        self._media = CallMedia(
            session,
            self._run,
            name=f"leg {session.id}",
            media=media,
            spawn=lambda step: sandbox.spawn(step, f"{self!r} media"),
            on_connected=self._mark_connected,
            on_failed=lambda problem: self.bye(reason=problem),
        )
        sandbox.legs[session.id] = self

    def __repr__(self) -> str:
        return f"<Leg {self.direction} {self.user} {self.state.value} {self.call_id}>"

    @property
    def media(self) -> MediaSession | None:
        """The sandbox-side media session, once created (until the leg ends)."""
        return self._media.media

    @property
    def invite(self) -> Request:
        """The initial INVITE (received or sent)."""
        return self.session.invite

    @property
    def dialog(self) -> Dialog | None:
        """The dialog, once it exists."""
        return self.session.dialog

    @property
    def call_id(self) -> str:
        """The SIP Call-ID."""
        return self.session.call_id

    @property
    def ended(self) -> bool:
        """Whether the leg is over."""
        return self._ended.is_set()

    @property
    def connected(self) -> bool:
        """Whether the leg was answered and has not ended."""
        return self.state is LegState.CONNECTED

    @property
    def away(self) -> bool:
        """Whether the client's connection is lost and the leg waits for it (:meth:`keep`)."""
        return self._grace is not None

    async def wait_connected(self, timeout: float | None = None) -> bool:
        """Wait until answered (``True``) or ended first (``False``)."""
        await wait_either(self._connected, self._ended, timeout)
        return self._connected.is_set() and not self._ended.is_set()

    async def wait_ended(self, timeout: float | None = None) -> None:
        """Wait until the leg is over."""
        await asyncio.wait_for(self._ended.wait(), timeout)

    def _command(self, action: Callable[[float], Any]) -> None:
        """Run one call-layer command on this leg's flow, then settle the leg if it ended."""
        self.flow.pump.run(action)
        self._settle()

    def _run(self, command: Command) -> None:
        """Run one of the media glue's commands on the sandbox's call layer."""
        self._command(lambda now: command(self.sandbox.call_layer, now))

    # ========================================================================================
    # Incoming: the client called us
    # ========================================================================================
    @classmethod
    def incoming(
        cls, sandbox: Sandbox, flow: Flow, request: Request, tx: ServerTransaction, user: str
    ) -> Leg | None:
        """Take a new INVITE (authenticated and routed); the caller then rings, answers or
        rejects it. ``None`` if the call layer refused it (400: no dialog can be made from
        it; 415: its body is not SDP)."""
        session = sandbox.call_layer.accept_invite(
            flow.conn, request, tx, flow.now(), ring=False, contact=sandbox.contact(flow.secure)
        )
        if session is None:
            return None
        return cls(sandbox, flow, session, user=user)

    def ring(self) -> None:
        """Send 180 Ringing."""
        if self.state is LegState.CALLING and not self.ended:
            self.state = LegState.RINGING
            self._command(lambda now: self.sandbox.call_layer.ring(self.session, now))

    async def answer(self, source: AudioSource | None = None) -> None:
        """Answer with the sandbox's media: accept the INVITE's offer and send 200 OK.

        Raises:
            InvalidState: the leg is not ringing, or ended while the answer was made.
        """
        if self.direction != "incoming" or self.ended or self.state is LegState.CONNECTED:
            raise InvalidState(f"cannot answer {self!r}")
        try:
            await self._media.answer(
                lambda: MediaSession(config=self.sandbox.media_config, source=source)
            )
        except MediaError as exc:
            raise InvalidState(f"cannot answer {self!r}: {exc}") from exc

    def reject(self, status: int = 486, reason: str | None = None) -> None:
        """Refuse an incoming call that has not been answered."""
        if self.direction != "incoming" or self.ended or self.state is LegState.CONNECTED:
            raise InvalidState(f"cannot reject {self!r}")
        self.end_reason = self.end_reason or reason or f"rejected with {status}"
        self._command(
            lambda now: self.sandbox.call_layer.reject(self.session, now, status, reason)
        )

    # ========================================================================================
    # Outgoing: we call a registered client
    # ========================================================================================
    @classmethod
    async def outgoing(
        cls,
        sandbox: Sandbox,
        flow: Flow,
        *,
        user: str,
        target: URI,
        caller: str,
        caller_name: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        source: AudioSource | None = None,
        ring_timeout: float | None = None,
    ) -> Leg:
        """Make an offer and send an INVITE to ``target`` (a client's registered Contact).

        Args:
            sandbox: the sandbox.
            flow: the client's WebSocket.
            user: the registered user being called.
            target: the Request-URI (the binding's Contact URI).
            caller: the From user (a number or test number name).
            caller_name: the From display name.
            headers: extra headers (``X-Exotel-Callsid`` ...).
            source: what the sandbox sends once connected.
            ring_timeout: CANCEL after this many seconds without an answer.
        """
        media, offer = await make_offer(sandbox.media_config, source)
        session = sandbox.call_layer.invite(
            flow.conn,
            target,
            offer,
            flow.now(),
            from_=NameAddr(sandbox.uri(caller), caller_name, {}),
            to=NameAddr(sandbox.uri(user)),
            contact=sandbox.contact(flow.secure),
            headers=list(headers),
            ring_timeout=ring_timeout,
        )
        leg = cls(sandbox, flow, session, user=user, media=media)
        if flow.closed:
            # The client went away while the offer was made: nothing will carry the INVITE.
            leg._command(
                lambda now: sandbox.call_layer.connection_lost(
                    flow.conn, now, end_calls=True, reason="client connection lost"
                )
            )
            return leg
        flow.pump.flush()
        return leg

    # ========================================================================================
    # Both directions
    # ========================================================================================
    def _mark_connected(self) -> None:
        self.state = LegState.CONNECTED
        self._connected.set()
        for listener in list(self.answer_listeners):
            listener(self)

    def hangup(self, reason: str = "hung up by the sandbox") -> None:
        """End the leg whatever its state: BYE, CANCEL, or 480 for an unanswered incoming."""
        if self.ended:
            return
        state = self.session.state
        if self.state is LegState.CONNECTED or state is SessionState.ESTABLISHED:
            self.bye(reason=reason)
        elif self.direction == "outgoing":
            self.end_reason = reason
            if state in (SessionState.CALLING, SessionState.EARLY):
                self._command(
                    lambda now: self.sandbox.call_layer.cancel(self.session, now, reason=reason)
                )
        elif state is SessionState.INCOMING:
            self.end_reason = self.end_reason or reason
            self._command(
                lambda now: self.sandbox.call_layer.reject(
                    self.session, now, 480, "Temporarily Unavailable"
                )
            )

    def bye(self, reason: str = "hung up by the sandbox") -> None:
        """Send BYE and end the leg. While the client is :attr:`away`, the BYE waits for its
        return on a new connection (or the end of the grace period)."""
        if self.ended:
            return
        self.end_reason = self.end_reason or reason
        if self.away:
            if not self._bye_pending:
                logger.info("%r: BYE (%s) held until the client is back", self, reason)
            self._bye_pending = True
            return
        self._command(lambda now: self.sandbox.call_layer.hangup(self.session, now))

    # ========================================================================================
    # The client's connection lost and found
    # ========================================================================================
    def keep(self, grace: float) -> None:
        """The client's connection is lost: keep the established leg, its dialog and media,
        for ``grace`` seconds, waiting for :meth:`resume` (the sandbox's
        ``connection_grace``). Call it before the old connection's calls are ended."""
        if self.ended or self.away:
            return
        # The session no longer lives on a connection: the call layer ends the old flow's
        # other calls without it, and sends nothing for it until resume() moves it.
        self.session.connection = None
        loop = asyncio.get_running_loop()
        self._grace = loop.call_later(grace, self._grace_over, grace)
        logger.info("%r: the client's connection is lost; kept for %g s", self, grace)

    def resume(self, flow: Flow) -> None:
        """The client is back on ``flow`` (an in-dialog request of it arrived there): move
        the leg's dialog onto that connection. A BYE held meanwhile goes out first."""
        if self.ended or not self.away or self.dialog is None:
            return
        self._stop_waiting()
        self.flow = flow
        contact = self.sandbox.contact(flow.secure)
        self.session.connection = flow.conn
        self.session.local_contact = contact
        self.dialog.local_contact = contact
        flow.conn.add_dialog(self.dialog)
        logger.info("%r: the client is back on %r", self, flow)
        if self._bye_pending:
            self._command(lambda now: self.sandbox.call_layer.hangup(self.session, now))

    def give_up(self, reason: str) -> None:
        """Stop waiting for the client of a leg that is :attr:`away`: end it now (no BYE
        can reach the client; its later refresh is answered 481)."""
        if self.ended or not self.away:
            return
        self._stop_waiting()
        self.end_reason = self.end_reason or reason
        # The session has no connection: the layer ends the call without sending anything.
        self._command(lambda now: self.sandbox.call_layer.hangup(self.session, now))

    def _grace_over(self, grace: float) -> None:
        self.give_up(f"the client's connection was lost and not recovered within {grace:g} s")

    def _stop_waiting(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        dialog = self.dialog
        if dialog is not None and self.sandbox.kept.get(dialog.id) is self:
            del self.sandbox.kept[dialog.id]

    def send_info(
        self,
        content_type: str,
        body: bytes,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Send an INFO in the dialog (the response is not waited for).

        Raises:
            InvalidState: the leg is not up.
        """
        if self.ended:
            raise InvalidState(f"cannot send INFO on {self!r}")
        if self.away:
            # As through a proxy whose client's flow is gone: it cannot be delivered.
            logger.info("%r: INFO dropped: the client's connection is lost", self)
            return
        self._command(
            lambda now: self.sandbox.call_layer.send_info(
                self.session, content_type, body, now, headers=list(headers)
            )
        )

    # ========================================================================================
    # Events from the call layer
    # ========================================================================================
    def on_call_event(self, event: UserAgentEvent) -> None:
        """Act on one event of the call layer about this leg's session."""
        if isinstance(event, CallProgress):
            if self.state is LegState.CALLING:
                self.state = LegState.RINGING
        elif isinstance(event, InfoReceived):
            for listener in list(self.info_listeners):
                try:
                    listener(self, event)
                except Exception:
                    logger.exception("! %r: INFO listener failed", self)
        elif isinstance(event, CallEnded):
            self._settle()
        self._media.handle(event)

    def _settle(self) -> None:
        """Once the session has ended: end the leg (once), close its media, tell listeners."""
        session = self.session
        if self.ended or session.active:
            return
        self.state = LegState.ENDED
        self._stop_waiting()
        self.ended_by = "remote" if session.ended_by == "remote" else "sandbox"
        self.end_status = session.end_status
        self.end_reason = self.end_reason or session.end_reason
        self.sandbox.legs.pop(session.id, None)
        self._ended.set()
        logger.info("%r ended by %s: %s", self, self.ended_by, self.end_reason)
        media = self._media.end()
        if media is not None:
            self.sandbox.spawn(media.close(), f"{self!r} media close")
        for listener in list(self.end_listeners):
            try:
                listener(self)
            except Exception:
                logger.exception("! %r: end listener failed", self)
