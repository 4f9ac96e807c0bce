"""Call legs: one SIP dialog between the sandbox and a client, with the sandbox's media.

The sandbox is a back-to-back user agent that terminates media: each leg has its own
:class:`~exotel_voice.media.MediaSession` on the sandbox side, and test numbers (echo,
tone, IVR) or a bridge to another leg act on that session's audio. That is also what
Exotel's edge does (its media servers answer the browser), and it means a leg handles hold
(re-INVITE) and DTMF on its own, whatever is on the other side.

* :meth:`Leg.incoming` wraps an INVITE a client sent us (we are the UAS): ring, answer,
  reject, and a CANCEL ends it with 487.
* :meth:`Leg.outgoing` sends an INVITE to a registered client (we are the UAC) with our
  SDP offer: wait for the answer, cancel, or time out.
* Either side: BYE, INFO (sent and received), re-INVITE answered from the media session.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..exceptions import InvalidMessage, InvalidState, SipError
from ..media import AudioSource, MediaSession
from ..sip.dialog import Dialog, DialogState
from ..sip.events import (
    Event,
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
)
from ..sip.headers import NameAddr
from ..sip.message import Request, Response
from ..sip.transaction import ServerTransaction
from ..sip.uri import URI
from ..sip.utils import make_cancel, make_request, make_response, new_call_id, new_cseq, new_tag


if TYPE_CHECKING:
    from .flow import Flow
    from .server import Sandbox

__all__ = ["Leg", "LegState"]

logger = logging.getLogger(__name__)

SDP = "application/sdp"
ALLOW = "INVITE, ACK, CANCEL, BYE, INFO, OPTIONS"


class LegState(enum.Enum):
    """Where a leg is."""

    CALLING = "calling"  # outgoing INVITE sent, nothing back yet
    RINGING = "ringing"  # 180 sent (incoming) or received (outgoing)
    CONNECTED = "connected"
    ENDED = "ended"


InfoListener = Callable[["Leg", Request], None]


class Leg:
    """One dialog with a client, plus the sandbox's media for it.

    Attributes:
        direction: ``"incoming"`` (the client called the sandbox) or ``"outgoing"``.
        user: the registered user at the client end.
        invite: the initial INVITE (received or sent).
        dialog: the dialog once it exists.
        media: the sandbox-side media session, once created.
        state: the :class:`LegState`.
        end_status: the SIP status that ended the call, if any (486, 487, 408 ...).
        end_reason: why it ended, readable.
        ended_by: ``"remote"`` (the client), ``"sandbox"``, or ``None`` while up.
        info_listeners: called with each INFO received (after it was answered 200).
    """

    def __init__(
        self, sandbox: Sandbox, flow: Flow, *, direction: str, user: str, invite: Request
    ) -> None:
        self.sandbox = sandbox
        self.flow = flow
        self.direction = direction
        self.user = user
        self.invite = invite
        self.dialog: Dialog | None = None
        self.media: MediaSession | None = None
        self.state = LegState.CALLING
        self.end_status: int | None = None
        self.end_reason = ""
        self.ended_by: str | None = None
        self.info_listeners: list[InfoListener] = []
        self.end_listeners: list[Callable[[Leg], None]] = []
        self.answer_listeners: list[Callable[[Leg], None]] = []
        self._connected = asyncio.Event()
        self._ended = asyncio.Event()
        self._local_tag = new_tag()
        self._server_tx: ServerTransaction | None = None
        self._ack: Request | None = None
        self._cancel_wanted = False
        self._got_provisional = False
        self._ring_timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<Leg {self.direction} {self.user} {self.state.value} {self.call_id}>"

    @property
    def call_id(self) -> str:
        """The SIP Call-ID."""
        return self.invite.call_id

    @property
    def ended(self) -> bool:
        """Whether the leg is over."""
        return self._ended.is_set()

    @property
    def connected(self) -> bool:
        """Whether the leg was answered and has not ended."""
        return self.state is LegState.CONNECTED

    async def wait_connected(self, timeout: float | None = None) -> bool:
        """Wait until answered (``True``) or ended first (``False``)."""
        async with asyncio.timeout(timeout):
            done = asyncio.ensure_future(self._connected.wait())
            ended = asyncio.ensure_future(self._ended.wait())
            try:
                await asyncio.wait({done, ended}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                done.cancel()
                ended.cancel()
        return self._connected.is_set() and not self._ended.is_set()

    async def wait_ended(self, timeout: float | None = None) -> None:
        """Wait until the leg is over."""
        await asyncio.wait_for(self._ended.wait(), timeout)

    def _contact(self) -> NameAddr:
        return self.sandbox.contact(self.flow.secure)

    # ========================================================================================
    # Incoming: the client called us
    # ========================================================================================
    @classmethod
    def incoming(
        cls, sandbox: Sandbox, flow: Flow, request: Request, tx: ServerTransaction, user: str
    ) -> Leg:
        """Wrap a new INVITE; the caller then rings, answers or rejects it.

        Raises:
            InvalidMessage: the INVITE cannot create a dialog (no Contact, no From tag).
        """
        leg = cls(sandbox, flow, direction="incoming", user=user, invite=request)
        leg._server_tx = tx
        leg.dialog = Dialog.from_request(
            request, leg._local_tag, local_contact=leg._contact(), state=DialogState.EARLY
        )
        flow.add_leg(leg.dialog, leg)
        return leg

    def _respond(
        self,
        status: int,
        reason: str | None = None,
        *,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        extra = list(headers)
        if 101 <= status < 300:
            extra.append(("Contact", str(self._contact())))
        if status >= 200:
            extra.append(("Allow", ALLOW))
        response = make_response(
            self.invite,
            status,
            reason,
            to_tag=self._local_tag,
            headers=extra,
            body=body,
            content_type=SDP if body else None,
        )
        self.flow.send_response(response)

    def ring(self) -> None:
        """Send 180 Ringing."""
        if self.state is LegState.CALLING and not self.ended:
            self.state = LegState.RINGING
            self._respond(180, "Ringing")

    async def answer(self, source: AudioSource | None = None) -> None:
        """Answer with the sandbox's media: accept the INVITE's offer and send 200 OK.

        Raises:
            InvalidState: the leg is not ringing, or ended while the answer was made.
        """
        if self.direction != "incoming" or self.ended or self.state is LegState.CONNECTED:
            raise InvalidState(f"cannot answer {self!r}")
        offer = self.invite.body.decode("utf-8", "replace") if self.invite.body else ""
        self.media = MediaSession(config=self.sandbox.media_config, source=source)
        try:
            if not offer:
                raise SipError("INVITE without SDP offer")
            answer = await self.media.accept_offer(offer)
        except (SipError, ValueError) as exc:
            logger.warning("! %r: cannot answer the offer: %s", self, exc)
            if not self.ended:
                self._respond(488, "Not Acceptable Here")
                self._end("sandbox", 488, "offer not acceptable")
            raise InvalidState(f"cannot answer {self!r}: {exc}") from exc
        if self.ended:
            raise InvalidState(f"{self!r} ended while it was being answered")
        self._respond(200, "OK", body=answer.encode())
        assert self.dialog is not None
        self.dialog.confirm()
        self._mark_connected()

    def reject(self, status: int = 486, reason: str | None = None) -> None:
        """Refuse an incoming call that has not been answered."""
        if self.direction != "incoming" or self.ended or self.state is LegState.CONNECTED:
            raise InvalidState(f"cannot reject {self!r}")
        self._respond(status, reason)
        self._end("sandbox", status, reason or f"rejected with {status}")

    def cancelled(self) -> None:
        """The client sent CANCEL (already answered 200 by the connection): 487."""
        if self.direction == "incoming" and not self.ended and self.state is not LegState.CONNECTED:
            self._respond(487, "Request Terminated")
            self._end("remote", 487, "cancelled by the caller")

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
        media = MediaSession(config=sandbox.media_config, source=source)
        try:
            offer = await media.create_offer()
        except BaseException:
            await media.close()
            raise
        from_addr = NameAddr(sandbox.uri(caller), caller_name, {})
        invite = make_request(
            "INVITE",
            target,
            from_=from_addr,
            to=NameAddr(sandbox.uri(user)),
            call_id=new_call_id(),
            cseq=new_cseq(),
            contact=sandbox.contact(flow.secure),
            headers=list(headers),
            body=offer.encode(),
            content_type=SDP,
        )
        leg = cls(sandbox, flow, direction="outgoing", user=user, invite=invite)
        from_addr.params["tag"] = leg._local_tag
        invite.headers.set("From", str(from_addr))
        leg.media = media
        if flow.closed:
            leg._end("sandbox", None, "client connection lost")
            return leg
        flow.send_request(invite, leg._on_invite_event)
        if ring_timeout is not None:
            leg._ring_timer = asyncio.get_running_loop().call_later(
                ring_timeout, leg._ring_timed_out
            )
        return leg

    def _ring_timed_out(self) -> None:
        self._ring_timer = None
        if not self.ended and self.state is not LegState.CONNECTED:
            self.end_reason = "no answer"
            self.cancel()

    def cancel(self) -> None:
        """Cancel our INVITE (sent once the client has answered 1xx, RFC 3261 §9.1)."""
        if self.direction != "outgoing" or self.ended or self.state is LegState.CONNECTED:
            return
        self._cancel_wanted = True
        if self._got_provisional:
            try:
                self.flow.send_request(make_cancel(self.invite))
            except SipError as exc:  # the final response raced us
                logger.debug("= %r: CANCEL not sent: %s", self, exc)

    def _on_invite_event(self, event: Event) -> None:
        if isinstance(event, ResponseReceived):
            self._on_invite_response(event.response)
        elif isinstance(event, TransactionTimedOut) and not self.ended:
            if self.state is not LegState.CONNECTED:
                self._end("remote", 408, "no answer from the client")

    def _on_invite_response(self, response: Response) -> None:
        status = response.status
        if status < 200:
            if status > 100:
                self._got_provisional = True
                if self.state is LegState.CALLING:
                    self.state = LegState.RINGING
                if self._cancel_wanted:
                    self._cancel_wanted = False
                    self.cancel()
            return
        if status >= 300:
            if not self.ended:
                reason = self.end_reason or f"{status} {response.reason}"
                self._end("remote", status, reason)
            return
        # 2xx: §13.2.2.4 ACK it; a retransmission gets the same ACK again.
        if self._ack is not None:
            self.flow.send_ack(self._ack)
            return
        try:
            self.dialog = Dialog.from_response(self.invite, response)
        except (InvalidMessage, ValueError) as exc:
            logger.warning("! %r: unusable 2xx: %s", self, exc)
            self._end("remote", 500, "unusable 2xx")
            return
        self._ack = self.dialog.create_ack(self.invite.cseq.seq)
        self.flow.send_ack(self._ack)
        if self.ended or self._cancel_wanted:
            # The 200 crossed our CANCEL or we gave up: §15 end it with a BYE.
            self._send_bye()
            self._end("sandbox", None, self.end_reason or "cancelled")
            return
        self.flow.add_leg(self.dialog, self)
        sdp = response.body.decode("utf-8", "replace") if response.body else ""
        self.sandbox.spawn(self._apply_answer(sdp), f"{self!r} answer")

    async def _apply_answer(self, sdp: str) -> None:
        assert self.media is not None
        try:
            await self.media.set_answer(sdp)
        except (SipError, ValueError) as exc:
            logger.warning("! %r: cannot use the answer: %s", self, exc)
            self.bye(reason="unusable SDP answer")
            return
        if not self.ended:
            self._mark_connected()

    def stray_response(self, response: Response) -> None:
        """A response outside any transaction for our dialog: ACK a 2xx retransmission."""
        if (
            self._ack is not None
            and 200 <= response.status < 300
            and response.cseq.method == "INVITE"
            and response.cseq.seq == self.invite.cseq.seq
        ):
            self.flow.send_ack(self._ack)

    # ========================================================================================
    # Both directions
    # ========================================================================================
    def _mark_connected(self) -> None:
        if self._ring_timer is not None:
            self._ring_timer.cancel()
            self._ring_timer = None
        self.state = LegState.CONNECTED
        self._connected.set()
        for listener in list(self.answer_listeners):
            listener(self)

    def hangup(self, reason: str = "hung up by the sandbox") -> None:
        """End the leg whatever its state: BYE, CANCEL, or 480 for an unanswered incoming."""
        if self.ended:
            return
        if self.state is LegState.CONNECTED:
            self.bye(reason=reason)
        elif self.direction == "outgoing":
            self.end_reason = reason
            self.cancel()
        else:
            self._respond(480, "Temporarily Unavailable")
            self._end("sandbox", 480, reason)

    def bye(self, reason: str = "hung up by the sandbox") -> None:
        """Send BYE and end the leg."""
        if self.ended:
            return
        self._send_bye()
        self._end("sandbox", None, reason)

    def _send_bye(self) -> None:
        if self.dialog is None or self.flow.closed:
            return
        try:
            self.flow.send_request(self.dialog.create_request("BYE"))
        except SipError as exc:
            logger.debug("= %r: BYE not sent: %s", self, exc)

    def send_info(
        self,
        content_type: str,
        body: bytes,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Send an INFO in the dialog (the response is only logged)."""
        if self.dialog is None or self.ended or self.dialog.state is not DialogState.CONFIRMED:
            raise InvalidState(f"cannot send INFO on {self!r}")
        request = self.dialog.create_request(
            "INFO", headers=list(headers), body=body, content_type=content_type
        )

        def done(event: Event) -> None:
            if isinstance(event, ResponseReceived) and event.response.status >= 300:
                logger.info("%r: INFO answered %d", self, event.response.status)

        self.flow.send_request(request, done)

    def on_request(self, event: RequestReceived) -> None:
        """An in-dialog request from the client."""
        request = event.request
        method = request.method
        if method == "ACK":
            return
        respond = self._in_dialog_responder(request)
        if method == "BYE":
            respond(200, [])
            self._end("remote", None, "hung up by the client")
        elif method == "INFO":
            respond(200, [])
            for listener in list(self.info_listeners):
                try:
                    listener(self, request)
                except Exception:
                    logger.exception("! %r: INFO listener failed", self)
        elif method == "INVITE":
            self.sandbox.spawn(self._answer_reinvite(request), f"{self!r} re-INVITE")
        elif method in ("OPTIONS", "UPDATE") and not request.body:
            respond(200, [("Allow", ALLOW)])
        else:
            respond(405, [("Allow", ALLOW)])

    def _in_dialog_responder(
        self, request: Request
    ) -> Callable[[int, list[tuple[str, str]]], None]:
        def respond(status: int, headers: list[tuple[str, str]]) -> None:
            self.flow.send_response(
                make_response(request, status, to_tag=self._local_tag, headers=headers)
            )

        return respond

    async def _answer_reinvite(self, request: Request) -> None:
        offer = request.body.decode("utf-8", "replace") if request.body else ""
        if self.media is None or not offer or self.ended:
            self.flow.send_response(make_response(request, 488, to_tag=self._local_tag))
            return
        try:
            answer = await self.media.update(offer)
        except (SipError, ValueError) as exc:
            logger.warning("! %r: cannot answer the re-INVITE: %s", self, exc)
            self.flow.send_response(make_response(request, 488, to_tag=self._local_tag))
            return
        self.flow.send_response(
            make_response(
                request,
                200,
                to_tag=self._local_tag,
                headers=[("Contact", str(self._contact())), ("Allow", ALLOW)],
                body=answer.encode(),
                content_type=SDP,
            )
        )
        logger.info("%r: re-INVITE answered (%s)", self, self.media.remote_direction)

    def connection_lost(self) -> None:
        """The client's WebSocket closed."""
        self._end("remote", None, "client connection lost")

    def _end(self, by: str, status: int | None, reason: str) -> None:
        if self.ended:
            return
        if self._ring_timer is not None:
            self._ring_timer.cancel()
            self._ring_timer = None
        self.state = LegState.ENDED
        self.ended_by = by
        self.end_status = status
        self.end_reason = self.end_reason or reason
        if self.dialog is not None:
            self.flow.remove_leg(self.dialog)
        self._ended.set()
        logger.info("%r ended by %s: %s", self, by, self.end_reason)
        if self.media is not None:
            self.sandbox.spawn(self.media.close(), f"{self!r} media close")
        for listener in list(self.end_listeners):
            try:
                listener(self)
            except Exception:
                logger.exception("! %r: end listener failed", self)
