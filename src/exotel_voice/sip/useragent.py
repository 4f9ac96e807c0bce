"""The user agent core: registration and calls for one SIP account, sans-I/O.

Theory of operation
-------------------
:class:`UserAgent` is everything a phone does in SIP, without I/O. It owns:

* a :class:`~exotel_voice.sip.registration.Registration` (REGISTER, refresh, unregister);
* one :class:`~exotel_voice.sip.connection.SipConnection` per WebSocket flow (a new one
  after each reconnect; live dialogs are carried over, RFC 5626);
* a :class:`~exotel_voice.sip.calls.CallLayer` (:attr:`UserAgent.call_layer`) that keeps a
  :class:`CallSession` per call, incoming or outgoing, with its dialog. The call logic
  (INVITE, CANCEL, ACK, BYE, re-INVITE, INFO, glare, auth retries, ring and ACK timeouts)
  lives there, shared with servers such as the sandbox; this class adds the account's
  identity, registration and the one-connection-at-a-time life cycle.

The asyncio layer does only this: feed :meth:`receive_data` with each WebSocket message and
:meth:`connection_made` / :meth:`connection_lost` with the transport's state; write out
:meth:`data_to_send`; re-arm a timer at :meth:`get_timer` that calls :meth:`handle_timer`;
and act on :meth:`events_received`. Media is not here: SDP goes in and out as text, and an
event such as :class:`ReInviteReceived` waits for the owner to answer with SDP.

Call states and glare handling: see :mod:`exotel_voice.sip.calls`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

from ..exceptions import InvalidState, SipError
from .auth import DigestAuth
from .calls import (
    SDP,
    CallAnswered,
    CallConfirmed,
    CallEnded,
    CallLayer,
    CallProgress,
    CallSession,
    IncomingCall,
    InfoAnswered,
    InfoReceived,
    ReInviteAnswered,
    ReInviteReceived,
    ReInviteRejected,
    ReInviteRetryDue,
    SessionState,
    TargetRefreshNeeded,
    UserAgentEvent,
    parse_dtmf_relay,
    send_response,
)
from .connection import SipConnection
from .events import (
    Event,
    MessageRejected,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
)
from .message import Request, Response
from .registration import (
    ALLOW,
    Registration,
    RegistrationEvent,
    RegistrationState,
    make_contact,
)
from .transaction import ClientTransaction
from .uri import URI, SipURI
from .utils import KNOWN_METHODS, make_response


__all__ = [
    "CallAnswered",
    "CallConfirmed",
    "CallEnded",
    "CallLayer",
    "CallProgress",
    "CallSession",
    "SessionState",
    "IncomingCall",
    "InfoAnswered",
    "InfoReceived",
    "ReInviteAnswered",
    "ReInviteReceived",
    "ReInviteRejected",
    "ReInviteRetryDue",
    "TargetRefreshNeeded",
    "UserAgent",
    "UserAgentEvent",
    "parse_dtmf_relay",
]

logger = logging.getLogger(__name__)

AnyEvent = UserAgentEvent | RegistrationEvent | MessageRejected


class UserAgent:
    """One SIP account's user agent, without I/O.

    Args:
        aor: the address of record, ``sip:<authUser>@<sipdomain>``.
        registrar: the registrar URI, ``sip:<sipdomain>``.
        auth_user: the digest username.
        password: the password (kept inside :class:`DigestAuth`; never logged).
        display_name: the From display name.
        secure: ``wss`` (else ``ws``): Via transport and Contact ``transport=`` param.
        instance_id: the RFC 5626 instance UUID.
        expires: REGISTER expiry asked for.
        refresh_fraction: when to refresh, as a fraction of the granted expiry.
        user_agent: User-Agent header value.
        request_timeout: seconds without a final response to a REGISTER before it is
            reported as timed out (shorter than Timer F's 32 s, so a silent server is noticed).
        ring_timeout: an unanswered incoming call is ended with 480 after this many seconds
            (Exotel's SDK uses 60); ``None`` lets it ring forever.
        t1: RFC 3261 T1 for the transaction layer.
        rng: random numbers for the glare back-off (injectable for tests).
    """

    def __init__(
        self,
        *,
        aor: SipURI,
        registrar: SipURI,
        auth_user: str,
        password: str,
        display_name: str | None = None,
        secure: bool = True,
        instance_id: str,
        expires: int = 300,
        refresh_fraction: float = 0.8,
        user_agent: str | None = None,
        request_timeout: float = 10.0,
        ring_timeout: float | None = 60.0,
        t1: float = 0.5,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.aor = aor
        self.display_name = display_name
        self.secure = secure
        self.user_agent = user_agent
        self.t1 = t1
        self.auth = DigestAuth(auth_user, password)
        self.contact = make_contact(secure=secure, instance_id=instance_id)
        self.registration = Registration(
            aor=aor,
            registrar=registrar,
            contact=self.contact,
            auth=self.auth,
            display_name=display_name,
            expires=expires,
            refresh_fraction=refresh_fraction,
            user_agent=user_agent,
            request_timeout=request_timeout,
        )
        invite_headers = [("Supported", "outbound")]
        if user_agent:
            invite_headers.append(("User-Agent", user_agent))
        self.call_layer = CallLayer(
            aor=aor,
            contact=self.contact,
            display_name=display_name,
            auth=self.auth,
            accept_calls=True,
            invite_headers=invite_headers,
            user_agent=user_agent,
            ring_timeout=ring_timeout,
            t1=t1,
            rng=rng,
        )
        self.connection: SipConnection | None = None
        self._register_tx: ClientTransaction | None = None
        # The REGISTER transaction whose final response arrived; its TransactionTerminated
        # concerns nobody else.
        self._finished_register_tx: ClientTransaction | None = None
        self._events: list[AnyEvent] = []
        # Calls moved onto a new flow wait for its REGISTER's success to refresh their target.
        self._refresh_when_registered = False

    def __repr__(self) -> str:
        return f"<UserAgent {self.aor.aor} {self.registration.state.value} calls={len(self.calls)}>"

    @property
    def calls(self) -> dict[str, CallSession]:
        """The calls that have not ended, by :attr:`CallSession.id`."""
        return self.call_layer.calls

    @property
    def ring_timeout(self) -> float | None:
        """Seconds an incoming call rings before it is ended with 480 (``None``: forever)."""
        return self.call_layer.ring_timeout

    @ring_timeout.setter
    def ring_timeout(self, value: float | None) -> None:
        self.call_layer.ring_timeout = value

    # ========================================================================================
    # I/O plumbing
    # ========================================================================================
    def connection_made(self, now: float) -> None:
        """A new WebSocket flow is open. Re-registers if registration was wanted."""
        if self.connection is not None:
            self.call_layer.connection_lost(self.connection, now)
        contact_uri = self.contact.sip_uri
        self.connection = SipConnection(
            reliable=True,
            via_transport="WSS" if self.secure else "WS",
            via_host=contact_uri.host,
            t1=self.t1,
        )
        moved = self.call_layer.connection_made(self.connection, contact=self.contact)
        if self.registration.wanted:
            self._refresh_when_registered = bool(moved)
            self._send_register(self.registration.register(now), now)
        elif moved:
            # Nothing to register: the flow is usable at once (TargetRefreshNeeded).
            self.call_layer.request_target_refresh()
            self._pull_call_events()

    def connection_lost(self, now: float, detail: str = "") -> None:
        """The WebSocket flow is gone: its transactions fail, the binding is lost.

        Args:
            now: the current time.
            detail: what the transport saw (close code and reason), for the registration's
                :class:`Unregistered` reason.
        """
        conn = self.connection
        # The REGISTER in flight is the registration's to report (as lost with the flow),
        # not its transaction's failure.
        self._register_tx = self._finished_register_tx = None
        if conn is not None:
            conn.connection_lost()
            self._process_connection_events(conn.events_received(), now)
            self.call_layer.connection_lost(conn, now)
        self.connection = None
        self.registration.transport_lost(now, detail)
        self._events.extend(self.registration.events_received())

    def connection_failed(self, now: float, error: SipError, retry_in: float | None) -> None:
        """No flow could be opened (:meth:`Registration.connection_failed`)."""
        self.registration.connection_failed(error, retry_in)
        self._events.extend(self.registration.events_received())

    def receive_data(self, data: str | bytes, now: float) -> None:
        """Process one WebSocket message."""
        conn = self.connection
        if conn is None:
            return
        conn.receive_data(data, now)
        self._process_connection_events(conn.events_received(), now)

    def data_to_send(self) -> list[bytes]:
        """Return and forget the messages to send, one WebSocket message each."""
        return self.connection.data_to_send() if self.connection is not None else []

    def events_received(self) -> list[AnyEvent]:
        """Return and forget the events produced since the last call."""
        out, self._events = self._events, []
        return out

    def get_timer(self) -> float | None:
        """The earliest deadline of anything in the user agent."""
        earliest = self.registration.get_timer()
        for d in (
            self.call_layer.get_timer() if self.call_layer.calls else None,
            self.connection.get_timer() if self.connection is not None else None,
        ):
            if d is not None and (earliest is None or d < earliest):
                earliest = d
        return earliest

    def handle_timer(self, now: float) -> None:
        """Fire everything due at ``now``."""
        if self.connection is not None:
            self.connection.handle_timer(now)
            self._process_connection_events(self.connection.events_received(), now)
        if self.connection is not None:
            request = self.registration.handle_timer(now)
            if request is not None:
                self._send_register(request, now)
        self.call_layer.handle_timer(now)
        self._pull_call_events()
        self._events.extend(self.registration.events_received())

    # ========================================================================================
    # Registration
    # ========================================================================================
    def register(self, now: float) -> None:
        """Register (and keep registering across reconnects) until :meth:`unregister`."""
        self.registration.want()
        if self.connection is not None:
            self._send_register(self.registration.register(now), now)

    def unregister(self, now: float) -> None:
        """Remove the binding (expires=0) and stop re-registering."""
        request = self.registration.unregister(now)
        if request is not None and self.connection is not None:
            self._send_register(request, now)
        elif request is not None:
            # No flow to send it on: the binding goes with the flow anyway (RFC 5626).
            self.registration.transport_lost(now)
        self._events.extend(self.registration.events_received())

    def _send_register(self, request: Request, now: float) -> None:
        assert self.connection is not None
        self._register_tx = self.connection.send_request(request, now)
        self._events.extend(self.registration.events_received())

    # ========================================================================================
    # Calls: commands (the call layer's, on the current connection)
    # ========================================================================================
    def invite(
        self,
        target: URI | str,
        sdp: str | None,
        now: float,
        *,
        headers: list[tuple[str, str]] | None = None,
    ) -> CallSession:
        """Place a call on the current connection (:meth:`CallLayer.invite`).

        Raises:
            InvalidState: there is no connection to the server.
            InvalidMessage: ``target`` is not a valid URI.
        """
        conn = self._need_connection("place a call")
        call = self.call_layer.invite(conn, target, sdp, now, headers=headers)
        self._pull_call_events()
        return call

    def answer(self, call: CallSession, sdp: str, now: float) -> None:
        """Answer an incoming call with 200 OK carrying ``sdp`` (:meth:`CallLayer.answer`)."""
        self.call_layer.answer(call, sdp, now)
        self._pull_call_events()

    def reject(
        self, call: CallSession, now: float, status: int = 486, reason: str | None = None
    ) -> None:
        """Decline an incoming call, 486 by default (:meth:`CallLayer.reject`)."""
        self.call_layer.reject(call, now, status, reason)
        self._pull_call_events()

    def cancel(self, call: CallSession, now: float) -> None:
        """Cancel an unanswered outgoing call, RFC 3261 §9.1 (:meth:`CallLayer.cancel`)."""
        self.call_layer.cancel(call, now)
        self._pull_call_events()

    def hangup(
        self, call: CallSession, now: float, status: int | None = None, reason: str | None = None
    ) -> None:
        """End a call whatever its state (:meth:`CallLayer.hangup`)."""
        self.call_layer.hangup(call, now, status, reason)
        self._pull_call_events()

    def fail_call(self, call: CallSession, now: float, reason: str, *, by: str = "remote") -> None:
        """End a call that cannot work, naming why and who is at fault (:meth:`CallLayer.fail`)."""
        self.call_layer.fail(call, now, reason, by=by)
        self._pull_call_events()

    def reinvite(self, call: CallSession, sdp: str, now: float) -> None:
        """Send a re-INVITE with a new offer: hold, resume (:meth:`CallLayer.reinvite`)."""
        self.call_layer.reinvite(call, sdp, now)
        self._pull_call_events()

    def answer_reinvite(self, call: CallSession, sdp: str | None, now: float) -> None:
        """Answer the far end's pending re-INVITE (:meth:`CallLayer.answer_reinvite`)."""
        self.call_layer.answer_reinvite(call, sdp, now)
        self._pull_call_events()

    def reject_reinvite(self, call: CallSession, now: float, status: int = 488) -> None:
        """Decline the far end's pending re-INVITE (:meth:`CallLayer.reject_reinvite`)."""
        self.call_layer.reject_reinvite(call, now, status)
        self._pull_call_events()

    def refresh_target(self, call: CallSession, now: float) -> None:
        """Send an UPDATE without a body: a target (or session) refresh that needs no media
        (:meth:`CallLayer.refresh_target`)."""
        self.call_layer.refresh_target(call, now)
        self._pull_call_events()

    def send_info(self, call: CallSession, content_type: str, body: bytes, now: float) -> None:
        """Send an in-dialog INFO (:meth:`CallLayer.send_info`)."""
        self.call_layer.send_info(call, content_type, body, now)
        self._pull_call_events()

    # ========================================================================================
    # Internals
    # ========================================================================================
    def _need_connection(self, action: str) -> SipConnection:
        if self.connection is None:
            raise InvalidState(f"cannot {action}: not connected to the SIP server")
        return self.connection

    def _pull_call_events(self) -> None:
        # Call events join the registration events in the order they happened.
        self._events.extend(self.call_layer.events_received())

    def _process_connection_events(self, events: list[Event], now: float) -> None:
        conn = self.connection
        call_layer = self.call_layer
        for event in events:
            try:
                self._dispatch(conn, event, now)
            except SipError as exc:
                # A peer's malformed or unexpected message must not stop the user agent.
                logger.warning("! could not handle %s: %s", type(event).__name__, exc)
            if call_layer.has_events:
                self._pull_call_events()
        self._events.extend(self.registration.events_received())

    def _dispatch(self, conn: SipConnection | None, event: Event, now: float) -> None:
        if isinstance(event, ResponseReceived):
            if event.transaction is not None and event.transaction is self._register_tx:
                self._on_register_response(event.response, now)
                return
        elif isinstance(event, TransactionTerminated):
            if event.transaction is self._register_tx:
                self._register_tx = None
            elif event.transaction is self._finished_register_tx:
                # The REGISTER transaction whose final response we handled: nobody else's.
                self._finished_register_tx = None
                return
        elif isinstance(event, TransactionTimedOut) and event.transaction is self._register_tx:
            self._register_tx = None
            self.registration.handle_timeout(now)
            return
        if conn is not None and self.call_layer.handle_event(conn, event, now):
            return
        if isinstance(event, RequestReceived):
            self._on_request(event, now)
        elif isinstance(event, MessageRejected):
            self._events.append(event)

    def _on_register_response(self, response: Response, now: float) -> None:
        if response.status >= 200:
            self._finished_register_tx = self._register_tx
            self._register_tx = None
        if self.registration.owns(response):
            retry = self.registration.handle_response(response, now)
            if retry is not None and self.connection is not None:
                self._send_register(retry, now)
            elif (
                self._refresh_when_registered
                and self.registration.state is RegistrationState.REGISTERED
            ):
                # The new flow is bound: the calls that moved onto it can now tell the far
                # end their new Contact (TargetRefreshNeeded, after Registered).
                self._refresh_when_registered = False
                self._events.extend(self.registration.events_received())
                self.call_layer.request_target_refresh()
                self._pull_call_events()

    def _on_request(self, event: RequestReceived, now: float) -> None:
        """Requests outside any call: OPTIONS, MESSAGE, NOTIFY; 501/481/405 for the rest
        (405 only for methods that ``Allow`` does not list)."""
        request = event.request
        if request.method == "ACK" or event.transaction is None:
            return
        if request.method == "OPTIONS":
            response = make_response(request, 200, headers=[("Allow", ALLOW), ("Accept", SDP)])
        elif request.method in ("NOTIFY", "MESSAGE") and request.to.tag is None:
            response = make_response(request, 200)
        elif request.method not in KNOWN_METHODS:
            response = make_response(request, 501)
        elif request.to.tag is not None or request.method in ("BYE", "INFO", "UPDATE", "PRACK"):
            # These exist only inside a dialog (RFC 3261 §15.1.2, RFC 6086 §4.2.1, RFC 3311):
            # outside one they name a call we do not have.
            response = make_response(request, 481)
        else:
            response = make_response(request, 405, headers=[("Allow", ALLOW)])
        send_response(self.connection, response, now)
