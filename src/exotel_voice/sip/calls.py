"""The call layer: INVITE sessions over one or more SIP connections, sans-I/O.

Theory of operation
-------------------
:class:`CallLayer` is the RFC 3261 transaction user for calls (§13-§15): it places and takes
INVITEs, keeps each call's dialog, and handles what happens inside it (ACK, BYE, CANCEL,
re-INVITE, INFO). It does no I/O and owns no connection. Each :class:`CallSession` remembers
the :class:`~exotel_voice.sip.connection.SipConnection` it lives on, so the same layer serves:

* a phone (:class:`~exotel_voice.sip.useragent.UserAgent`): one connection at a time; after
  a reconnect :meth:`CallLayer.connection_made` re-homes the live dialogs onto the new flow
  (RFC 5626), and incoming INVITEs are taken, rung (180) and reported automatically;
* a server (the sandbox): one connection per client flow; the server authenticates and
  routes a new INVITE itself, then hands it over with :meth:`CallLayer.accept_invite`;
  when a flow closes for good, :meth:`CallLayer.connection_lost` ends its calls.

Its owner feeds it the events of its connections (:meth:`CallLayer.handle_event` returns
whether the event was the layer's: a response to one of its transactions, a request in one
of its calls, a CANCEL of one of its INVITEs ...), re-arms :meth:`CallLayer.get_timer` /
:meth:`CallLayer.handle_timer` (ring, ACK and glare deadlines), and acts on
:meth:`CallLayer.events_received`. Media is not here: SDP goes in and out as text.

Call states (:class:`SessionState`; the moves are the table ``_TRANSITIONS``, and
``CallLayer._set_state`` refuses any other)::

    incoming: INCOMING --answer()--> ESTABLISHED (200 sent; ACK confirms) --BYE--> TERMINATED
              INCOMING --reject()/CANCEL/ring timeout--> TERMINATED
    outgoing: CALLING --1xx--> EARLY --2xx (ACK sent)--> ESTABLISHED --BYE--> TERMINATED
              CALLING/EARLY --4xx-6xx/timeout--> TERMINATED
              CALLING/EARLY --cancel()/ring timeout--> TERMINATING --487/timeout--> TERMINATED
                                 (a 2xx that crosses the CANCEL is ACKed, then ended by a BYE)
Besides its state, a call keeps its CANCEL's progress (``_cancel``), its armed deadlines
(``_deadlines``: ring, ACK, glare back-off) and the one re-INVITE in progress, if any.

A 2xx we cannot take (no To tag, no Contact) is ACKed and answered with a BYE where a
dialog can be built from it, and the call ends with :class:`CallEnded` (``by="remote"``,
``status=None``, ``reason`` naming what was wrong). SDP is opaque text here: the owner's media
judges it (an unusable answer ends the call through :meth:`CallLayer.fail`; an unusable 183
only loses its early media). After the first 2xx the INVITE
stays remembered for 64·T1 (RFC 6026 §8.4's Timer M): a retransmitted 2xx gets its dialog's
ACK again, and a 2xx from another fork (another To tag) gets an ACK and a BYE on that second
dialog (RFC 3261 §13.2.2.4); the call itself is unaffected. :meth:`CallLayer.fail` ends a
call whose media cannot work (the owner found the answer unusable) the same way.

Glare (RFC 3261 §14.1): a re-INVITE of ours answered 491 is retried after a random delay,
2.1-4 s when we own the Call-ID (we placed the call), 0-2 s otherwise: a
:class:`ReInviteRetryDue` event tells the owner to make a fresh offer. An incoming re-INVITE
that crosses an INVITE of ours still in progress gets 491; one that arrives before we have
answered the far end's previous re-INVITE, UPDATE offer or initial INVITE gets 500 with a
``Retry-After`` of 0-10 s (§14.2), and the first is still ours to answer.

An UPDATE with an offer (RFC 3311) is reported like a re-INVITE's (:class:`ReInviteReceived`
with ``method="UPDATE"``) and answered in its own 200; 491/500 for crossing offers (§5.2).
After a move to a new flow, :meth:`CallLayer.request_target_refresh` asks the owner for a
target refresh (:class:`TargetRefreshNeeded`); a refresh answered "dialog gone" (RFC 5057) or
not at all ends the call, and one refused otherwise (500 ...) is asked for again after
``refresh_retry_delays`` and ends the call (BYE) when the last attempt is refused too: until
a refresh goes through, nothing the far end sends in the dialog can reach us (see
``CallLayer._target_refresh_failed``). Session timers (RFC 4028) run when the far end asks: the
``SESSION_REFRESH`` / ``SESSION_EXPIRE`` deadlines refresh (UPDATE without a body, or a
re-INVITE the owner makes) or end the call with a BYE.
"""

from __future__ import annotations

import enum
import logging
import math
import random
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..exceptions import (
    AuthenticationError,
    InvalidMessage,
    InvalidState,
    LocalProtocolError,
    SipError,
)
from .auth import DigestAuth
from .connection import SipConnection
from .dialog import Dialog, DialogState
from .events import (
    CancelReceived,
    Event,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
)
from .headers import NameAddr
from .message import Request, Response
from .registration import ALLOW
from .transaction import ClientTransaction, ServerTransaction, TransactionState
from .uri import URI, SipURI, parse_uri
from .utils import KNOWN_METHODS, make_cancel, make_request, make_response, new_call_id, new_tag


__all__ = [
    "ALLOW",
    "DTMF_RELAY",
    "SDP",
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
    "UserAgentEvent",
    "parse_dtmf_relay",
    "send_response",
]

logger = logging.getLogger(__name__)

SDP = "application/sdp"
DTMF_RELAY = "application/dtmf-relay"
_DTMF_SIGNAL = re.compile(r"(?im)^\s*signal\s*=\s*([0-9A-Da-d*#])\s*$")


def parse_dtmf_relay(body: bytes) -> str | None:
    """The digit in an ``application/dtmf-relay`` body (``Signal=5``), or ``None``."""
    m = _DTMF_SIGNAL.search(body.decode("utf-8", "replace"))
    return m.group(1).upper() if m else None


class SessionState(enum.StrEnum):
    """Where a call's SIP session is (the client's :class:`~exotel_voice.client.CallState`
    adds the media: a session is ``ESTABLISHED`` before the call is ``CONNECTED``)."""

    INCOMING = "incoming"
    CALLING = "calling"
    EARLY = "early"
    ESTABLISHED = "established"
    TERMINATING = "terminating"
    TERMINATED = "terminated"


_S = SessionState

#: The moves a call's state may make: ``{state: states it may go to}``. ``TERMINATING`` is
#: an outgoing call being cancelled (its INVITE's final response is still to come).
_TRANSITIONS: Mapping[SessionState, frozenset[SessionState]] = {
    _S.INCOMING: frozenset({_S.ESTABLISHED, _S.TERMINATED}),
    _S.CALLING: frozenset({_S.EARLY, _S.ESTABLISHED, _S.TERMINATING, _S.TERMINATED}),
    _S.EARLY: frozenset({_S.ESTABLISHED, _S.TERMINATING, _S.TERMINATED}),
    _S.ESTABLISHED: frozenset({_S.TERMINATED}),
    _S.TERMINATING: frozenset({_S.TERMINATED}),
    _S.TERMINATED: frozenset(),
}


class _Cancel(enum.Enum):
    """Where the CANCEL of an outgoing INVITE is (RFC 3261 §9.1)."""

    NOT_WANTED = enum.auto()
    #: :meth:`CallLayer.cancel` was called; the CANCEL waits for a provisional response.
    WANTED = enum.auto()
    SENT = enum.auto()


class _Timer(enum.Enum):
    """A call's deadlines, fired in this order when several are due at once."""

    #: An incoming call unanswered (480), or an outgoing one (CANCEL, "no answer").
    RING = enum.auto()
    #: No ACK for our 2xx (RFC 3261 §13.3.1.4): BYE.
    ACK = enum.auto()
    #: The glare back-off after a 491 to our re-INVITE is over (§14.1).
    GLARE = enum.auto()
    #: We are the session refresher (RFC 4028): refresh at half the interval.
    SESSION_REFRESH = enum.auto()
    #: The far end is the refresher and has not refreshed (RFC 4028 §10): BYE.
    SESSION_EXPIRE = enum.auto()
    #: The back-off after a refused target refresh is over: ask for the next attempt.
    REFRESH_RETRY = enum.auto()


class _Kind(enum.Enum):
    """What a transaction is to its call (``CallLayer._tx_calls``)."""

    INVITE = "invite"
    REINVITE = "reinvite"
    BYE = "bye"
    FORK_BYE = "fork-bye"
    CANCEL = "cancel"
    INFO = "info"
    UPDATE = "update"


#: Final responses after which the far end no longer has the dialog, or the INVITE usage
#: in it (RFC 5057 §5.1: "Dialog Terminating" and the usage-terminating 481); RFC 3261
#: §12.2.1.2 adds 408. A target refresh answered with one of these ends the call.
_DIALOG_GONE = frozenset({404, 408, 410, 416, 481, 482, 483, 484, 485, 502, 604})


@dataclass(eq=False)
class CallSession:
    """One call, as the SIP core sees it.

    Attributes:
        id: a local identifier, unique in this process.
        direction: ``"incoming"`` or ``"outgoing"``.
        invite: the initial INVITE (as received, or as last sent).
        state: the call state.
        dialog: the dialog, once there is one.
        remote_sdp: the newest SDP from the far end.
        ended_by: ``"local"`` or ``"remote"`` once ended.
        end_status: the SIP status that ended the call, if any.
        end_reason: why it ended.
    """

    id: str
    direction: str
    invite: Request
    state: SessionState
    dialog: Dialog | None = None
    remote_sdp: str | None = None
    ended_by: str | None = None
    end_status: int | None = None
    end_reason: str = ""
    # -- internals ---------------------------------------------------------------------------
    _local_tag: str = ""
    _invite_tx: ServerTransaction | ClientTransaction | None = field(default=None, repr=False)
    _cancel: _Cancel = _Cancel.NOT_WANTED
    #: The end reason of a cancelled call (``cancel(reason=...)``).
    _cancel_reason: str = "cancelled"
    #: The armed deadlines (absolute times in the owner's clock).
    _deadlines: dict[_Timer, float] = field(default_factory=dict)
    #: The re-INVITE in progress: ours, or the far end's awaiting our answer (never both).
    _reinvite_tx: ClientTransaction | None = field(default=None, repr=False)
    _reinvite_server: tuple[Request, ServerTransaction] | None = field(default=None, repr=False)
    #: A 401/407 is answered once per call.
    _auth_retried: bool = False
    _rung: bool = False
    _info_queue: list[tuple[str, bytes, list[tuple[str, str]] | None]] = field(
        default_factory=list, repr=False
    )
    _info_tx: ClientTransaction | None = field(default=None, repr=False)
    #: The connection the call lives on (``None`` while its flow is down).
    connection: SipConnection | None = field(default=None, repr=False, compare=False)
    #: Our Contact in this call's dialog.
    local_contact: NameAddr | None = field(default=None, repr=False, compare=False)
    #: The methods the far end said it accepts (its ``Allow``), or ``None`` if it did not say.
    remote_allow: frozenset[str] | None = field(default=None, repr=False, compare=False)
    #: The far end knows us by a flow that is gone: the call moved to a new one (RFC 5626)
    #: and no target refresh of ours has gone out since.
    _target_stale: bool = False
    #: The target refresh in flight after a move to a new flow: its failure ends the call.
    _refresh_tx: ClientTransaction | None = field(default=None, repr=False)
    #: The target refreshes refused so far on this flow (:attr:`CallLayer.refresh_retry_delays`).
    _refresh_refusals: int = 0
    #: Our UPDATE without a body in progress (a target or session refresh).
    _update_tx: ClientTransaction | None = field(default=None, repr=False)
    #: The session timer (RFC 4028) in force: its interval in seconds (``None``: no timer)
    #: and who refreshes, ``"local"`` or ``"remote"``.
    session_expires: int | None = field(default=None, compare=False)
    session_refresher: str | None = field(default=None, compare=False)
    #: The far end supports timers (``Supported: timer``): our 2xx says ``Require: timer``.
    _timer_required: bool = False
    #: A 422 to our INVITE is answered once per call (RFC 4028 §7.4).
    _422_retried: bool = False

    @property
    def call_id(self) -> str:
        """The SIP Call-ID."""
        return self.invite.call_id

    @property
    def remote_identity(self) -> NameAddr:
        """The far end: From of an incoming INVITE, To of an outgoing one."""
        return self.invite.from_ if self.direction == "incoming" else self.invite.to

    @property
    def active(self) -> bool:
        """Whether the call has not ended."""
        return self.state is not SessionState.TERMINATED

    @property
    def update_allowed(self) -> bool:
        """Whether the far end accepts UPDATE (RFC 3311 §5.1: its ``Allow`` lists it)."""
        return self.remote_allow is not None and "UPDATE" in self.remote_allow

    @property
    def target_stale(self) -> bool:
        """Whether the far end still knows us by a flow that is gone (see
        :class:`TargetRefreshNeeded`)."""
        return self._target_stale

    def __repr__(self) -> str:
        return f"<CallSession {self.id} {self.direction} {self.state.value} {self.call_id}>"


# -- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserAgentEvent:
    """Base class of call events from :class:`CallLayer` (and so from ``UserAgent``)."""

    call: CallSession


@dataclass(frozen=True)
class IncomingCall(UserAgentEvent):
    """A new INVITE was taken; ``call.remote_sdp`` is the offer.

    A layer that accepts calls itself (a phone) has sent 180 Ringing with this event; after
    :meth:`CallLayer.accept_invite` with ``ring=False`` nothing has been sent yet.
    """


@dataclass(frozen=True)
class CallProgress(UserAgentEvent):
    """A provisional response to our INVITE (180 Ringing, 183 Session Progress).

    Attributes:
        status: the status code.
        reason: the reason phrase.
        sdp: the early-media answer, if the response carried one.
    """

    status: int
    reason: str
    sdp: str | None = None


@dataclass(frozen=True)
class CallAnswered(UserAgentEvent):
    """Our INVITE was answered (2xx); the ACK has been sent.

    Attributes:
        sdp: the answer (or an offer, when our INVITE had no body).
    """

    sdp: str | None


@dataclass(frozen=True)
class CallConfirmed(UserAgentEvent):
    """The ACK for our 2xx arrived.

    Attributes:
        sdp: the ACK's body: the answer, when our 200 carried the offer.
    """

    sdp: str | None


@dataclass(frozen=True)
class CallEnded(UserAgentEvent):
    """The call is over.

    Attributes:
        by: ``"local"`` or ``"remote"``.
        status: the SIP status involved, if any (486, 487, 408 ...).
        reason: a description.
    """

    by: str
    status: int | None
    reason: str


@dataclass(frozen=True)
class ReInviteReceived(UserAgentEvent):
    """The far end sent a re-INVITE, or an UPDATE with an offer (RFC 3311). Answer with
    :meth:`CallLayer.answer_reinvite` (or refuse with :meth:`CallLayer.reject_reinvite`):
    the answer goes in the 200 OK to whichever request it was (an UPDATE's 200 gets no ACK).

    Attributes:
        sdp: the new offer, or ``None`` for an offer-less re-INVITE.
        method: ``"INVITE"`` or ``"UPDATE"``.
    """

    sdp: str | None
    method: str = "INVITE"


@dataclass(frozen=True)
class ReInviteAnswered(UserAgentEvent):
    """Our re-INVITE got a 2xx (the ACK has been sent).

    Attributes:
        sdp: the answer.
    """

    sdp: str | None


@dataclass(frozen=True)
class ReInviteRejected(UserAgentEvent):
    """Our re-INVITE failed; the session continues as before.

    Attributes:
        status: the status (``None`` for a timeout).
        reason: the reason phrase.
        retry_in: for a 491 (glare), seconds until :class:`ReInviteRetryDue`.
    """

    status: int | None
    reason: str
    retry_in: float | None = None


@dataclass(frozen=True)
class ReInviteRetryDue(UserAgentEvent):
    """The glare back-off is over: make a fresh offer and call :meth:`CallLayer.reinvite`."""


@dataclass(frozen=True)
class TargetRefreshNeeded(UserAgentEvent):
    """The far end must learn our new Contact: the call lives on a new flow.

    After a reconnect the call's dialog moves onto the new flow (RFC 5626), but the far end
    (and a proxy such as Kamailio, which reaches a WebSocket client through the connection
    named in its Contact) still sends in-dialog requests to the old one. Once the REGISTER on
    the new flow has succeeded, this event asks the owner for a target refresh: a re-INVITE
    (:meth:`CallLayer.reinvite`, offering the session as it is) or, when
    ``update_allowed``, an UPDATE without a body (:meth:`CallLayer.refresh_target`, no
    media involved). Either carries the new Contact. If the far end or a proxy answers that
    the dialog is gone (481, 408, RFC 5057's dialog-terminating statuses) or nothing
    answers, the call ends with :class:`CallEnded` naming what happened (a BYE is sent
    when the far end may still have the call). Any other refusal (a proxy's 500 when the
    far end's own flow is gone too, 503, 488 ...) leaves no proof that it can reach us:
    this event comes again after :attr:`CallLayer.refresh_retry_delays` (2 s, then 4 s),
    and a refusal of the last attempt ends the call with a BYE and :class:`CallEnded`
    (``by="remote"``, the status, "the call's signalling could not be restored after the
    connection was lost: its refresh got 500 Server Internal Error (3 attempts)").

    Attributes:
        reason: why the refresh is needed (``"reconnected"``, also for each new attempt;
            ``"session-timer"`` for an RFC 4028 refresh).
        update_allowed: whether the far end accepts UPDATE.
    """

    reason: str = "reconnected"
    update_allowed: bool = False


@dataclass(frozen=True)
class InfoAnswered(UserAgentEvent):
    """Our INFO got its final response (or none: ``status`` is ``None`` on a timeout).

    Attributes:
        status: the final status, e.g. 200, 415 or 481.
        reason: the reason phrase.
        body: the INFO's body (e.g. ``Signal=5``), to tell which one was answered.
    """

    status: int | None
    reason: str
    body: bytes


@dataclass(frozen=True)
class InfoReceived(UserAgentEvent):
    """An in-dialog INFO arrived (answered 200).

    Attributes:
        content_type: its Content-Type (lower case, no parameters).
        body: its body.
        digit: the DTMF digit, for ``application/dtmf-relay``.
    """

    content_type: str | None
    body: bytes
    digit: str | None




CallOwner = tuple[_Kind, CallSession]


@dataclass(eq=False)
class _Answered:
    """An INVITE of ours that got a 2xx, kept for 64·T1 after the first one (RFC 6026 §8.4).

    ``acks`` holds the ACK of every dialog a 2xx made, by remote (To) tag, to re-send for
    its retransmissions; a 2xx with a new tag is another fork's (RFC 3261 §13.2.2.4).
    """

    call: CallSession
    invite: Request
    acks: dict[str, Request]
    until: float


class CallLayer:
    """Calls (INVITE sessions) over one or more :class:`SipConnection`, without I/O.

    Args:
        aor: our address: the From of outgoing INVITEs (unless :meth:`invite` is given
            ``from_``) and the domain that a bare user or number is dialled at.
        contact: our Contact, unless a call is given its own (a server has one per flow).
        display_name: the From display name of outgoing INVITEs.
        auth: credentials for answering a 401/407 to our INVITE, re-INVITE or BYE (once per
            call); ``None`` gives up on a challenge.
        accept_calls: take every new INVITE on a connection, ring it (180) and report
            :class:`IncomingCall` (a phone). ``False`` leaves new INVITEs to the owner, who
            hands over those it wants with :meth:`accept_invite` (a server that
            authenticates and routes first).
        invite_headers: headers added to every initial INVITE we send, after ``Allow``
            (e.g. ``Supported``, ``User-Agent``).
        user_agent: ``User-Agent`` value for our responses that establish a dialog.
        ring_timeout: an unanswered incoming call is ended with 480 after this many seconds;
            ``None`` lets it ring forever.
        t1: RFC 3261 T1: an answered call with no ACK is ended after 64·T1 (§13.3.1.4).
        rng: random numbers for the glare back-off (injectable for tests).
        session_expires: the longest session interval we accept when the far end asks for
            session timers (RFC 4028), in seconds.
        min_se: our ``Min-SE``: a shorter ``Session-Expires`` is refused with 422.
        refresh_retry_delays: after a move to a new flow, the seconds to wait before each
            further attempt at a target refresh the far end or a proxy refused (5xx, or a
            4xx other than 491 and the dialog-terminating ones); one more refusal after
            the last ends the call (see :class:`TargetRefreshNeeded`). The default, two
            more attempts 2 s and 4 s apart, gives a proxy that has just restarted time to
            get the far end's registration back. ``()`` ends the call at the first refusal.
    """

    def __init__(
        self,
        *,
        aor: SipURI | None = None,
        contact: NameAddr | None = None,
        display_name: str | None = None,
        auth: DigestAuth | None = None,
        accept_calls: bool = True,
        invite_headers: list[tuple[str, str]] | None = None,
        user_agent: str | None = None,
        ring_timeout: float | None = 60.0,
        t1: float = 0.5,
        rng: Callable[[], float] = random.random,
        session_expires: int = 1800,
        min_se: int = 90,
        refresh_retry_delays: Sequence[float] = (2.0, 4.0),
    ) -> None:
        if min_se < 90 or session_expires < min_se:
            raise ValueError(
                f"session timers need min_se >= 90 (RFC 4028 §4) and session_expires >= "
                f"min_se, not min_se={min_se}, session_expires={session_expires}"
            )
        self.session_expires = session_expires
        self.min_se = min_se
        self.refresh_retry_delays = refresh_retry_delays
        self.aor = aor
        self.contact = contact
        self.display_name = display_name
        self.auth = auth
        self.accept_calls = accept_calls
        self.invite_headers = list(invite_headers or [])
        self.user_agent = user_agent
        self.ring_timeout = ring_timeout
        self.t1 = t1
        self._rng = rng
        self.calls: dict[str, CallSession] = {}
        self._tx_calls: dict[int, CallOwner] = {}
        self._events: list[UserAgentEvent] = []
        self._counter = 0
        # Call-ID -> an answered INVITE of ours (2xx retransmissions and forks).
        self._answered: dict[str, _Answered] = {}

    def __repr__(self) -> str:
        return f"<CallLayer calls={len(self.calls)}>"

    @property
    def refresh_retry_delays(self) -> tuple[float, ...]:
        """The back-off before each further attempt at a refused target refresh (seconds;
        see the constructor). Settable; a value that is not a sequence of finite numbers
        >= 0 raises :class:`ValueError`."""
        return self._refresh_retry_delays

    @refresh_retry_delays.setter
    def refresh_retry_delays(self, delays: Sequence[float]) -> None:
        try:
            checked = tuple(float(d) for d in delays)
        except (TypeError, ValueError):
            raise ValueError(
                f"refresh_retry_delays must be a sequence of seconds, not {delays!r}"
            ) from None
        if not all(0.0 <= d < math.inf for d in checked):
            raise ValueError(
                f"refresh_retry_delays must be finite seconds >= 0, not {delays!r}"
            )
        self._refresh_retry_delays = checked

    # ========================================================================================
    # Plumbing
    # ========================================================================================
    @property
    def has_events(self) -> bool:
        """Whether :meth:`events_received` has anything to return."""
        return bool(self._events)

    def events_received(self) -> list[UserAgentEvent]:
        """Return and forget the call events produced since the last call."""
        out, self._events = self._events, []
        return out

    def get_timer(self, connection: SipConnection | None = None) -> float | None:
        """The earliest call deadline (ring, ACK, glare back-off), or ``None``.

        Args:
            connection: only the calls living on this connection (a server arms one timer
                per flow); ``None`` for every call.
        """
        deadlines = [
            d
            for call in self.calls.values()
            if connection is None or call.connection is connection
            for d in call._deadlines.values()
        ]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float, connection: SipConnection | None = None) -> None:
        """Fire the call deadlines due at ``now`` (of the calls on ``connection``, if given)."""
        for call in list(self.calls.values()):
            if connection is not None and call.connection is not connection:
                continue
            for timer in _Timer:
                due = call._deadlines.get(timer)
                if due is not None and now >= due:
                    del call._deadlines[timer]
                    self._on_deadline(call, timer, now)
        self._forget_answered(now)

    def _on_deadline(self, call: CallSession, timer: _Timer, now: float) -> None:
        if timer is _Timer.RING:
            if call.state is SessionState.INCOMING:
                self._respond_invite(call, 480, "Temporarily Unavailable", now)
                self._end(call, "remote", 480, "not answered in time")
            elif call.state in (SessionState.CALLING, SessionState.EARLY):
                self.cancel(call, now, reason="no answer")
        elif timer is _Timer.ACK:
            # §13.3.1.4: no ACK for our 2xx: "the UAS core SHOULD [...] terminate the dialog
            # by sending a BYE".
            if call.state is SessionState.ESTABLISHED:
                self._send_bye(call, now)
                self._end(call, "remote", 408, "no ACK for the 200 OK")
        elif timer is _Timer.SESSION_REFRESH:
            if call.state is SessionState.ESTABLISHED:
                self._session_refresh_due(call, now)
        elif timer is _Timer.SESSION_EXPIRE:
            if call.state is SessionState.ESTABLISHED:
                # RFC 4028 §10: "If the session refresh request is not received before the
                # interval passes [...], the UAS SHOULD send a BYE".
                self._send_bye(call, now)
                self._end(call, "remote", None, (
                    f"the far end did not refresh the session within its "
                    f"{call.session_expires} s session timer (RFC 4028)"))
        elif timer is _Timer.REFRESH_RETRY:
            # The next attempt at a refused target refresh, unless a request of ours that
            # refreshes the target is already out (a hold ...: its outcome counts instead),
            # or the flow went again (the next one asks afresh, request_target_refresh).
            if (
                call.state is SessionState.ESTABLISHED
                and call._target_stale
                and call._refresh_tx is None
                and call.connection is not None
            ):
                self._events.append(
                    TargetRefreshNeeded(call, "reconnected", call.update_allowed)
                )
        elif call.state is SessionState.ESTABLISHED:  # _Timer.GLARE
            self._events.append(ReInviteRetryDue(call))

    # -- session timers (RFC 4028) -----------------------------------------------------------
    def _arm_session_timer(self, call: CallSession, now: float) -> None:
        """(Re)start the session timer after a refresh (a 2xx to the INVITE, a re-INVITE
        or an UPDATE, either way)."""
        call._deadlines.pop(_Timer.SESSION_REFRESH, None)
        call._deadlines.pop(_Timer.SESSION_EXPIRE, None)
        interval = call.session_expires
        if interval is None or call.state is not SessionState.ESTABLISHED:
            return
        if call.session_refresher == "local":
            # §10: "the refresher SHOULD send the refresh at half the session interval".
            call._deadlines[_Timer.SESSION_REFRESH] = now + interval / 2
        else:
            # §10: the BYE goes "at the time of expiration minus either 32 seconds or one
            # third of the session interval, whichever is less".
            call._deadlines[_Timer.SESSION_EXPIRE] = now + interval - min(32, interval / 3)

    def _session_refresh_due(self, call: CallSession, now: float) -> None:
        if call.update_allowed and call._update_tx is None and call.connection is not None:
            self.refresh_target(call, now)
            return
        if call._reinvite_tx is not None or call._update_tx is not None:
            # A request of ours is in progress; its 2xx is the refresh. Check again later.
            call._deadlines[_Timer.SESSION_REFRESH] = now + self.t1 * 4
            return
        # No UPDATE at the far end: a re-INVITE, whose offer the owner makes.
        self._events.append(TargetRefreshNeeded(call, "session-timer", False))

    def _session_headers(
        self, call: CallSession, *, we_send_request: bool
    ) -> list[tuple[str, str]]:
        """``Session-Expires`` (with the refresher as this message's sender sees it) and
        friends, for a message of ours in a call with a session timer."""
        if call.session_expires is None:
            return []
        local = call.session_refresher == "local"
        # In a request the UAC is us; in a response the UAC is the far end.
        refresher = "uac" if local is we_send_request else "uas"
        headers = [("Session-Expires", f"{call.session_expires};refresher={refresher}")]
        if we_send_request:
            headers += [("Supported", "timer"), ("Min-SE", str(self.min_se))]
        elif call._timer_required:
            headers += [("Require", "timer")]
        return headers

    def _session_request(
        self, call: CallSession, request: Request
    ) -> Response | None:
        """Take the session timer a request of the far end asks for (RFC 4028 §9); a 422
        response when its interval is below our Min-SE, else ``None``."""
        se = _session_expires_of(request)
        if se is None:
            # No timer asked for; a refresh without Session-Expires keeps the one in force.
            return None
        interval, refresher = se
        if interval < self.min_se:
            return make_response(request, 422, headers=[("Min-SE", str(self.min_se))])
        supports = _supports_timer(request)
        floor = max(self.min_se, _min_se_of(request) or 90)
        interval = max(min(interval, self.session_expires), floor)
        if refresher is None:
            # §9: the UAS chooses; a UAC that supports timers refreshes, else we must.
            refresher = "uac" if supports else "uas"
        call.session_expires = interval
        call.session_refresher = "remote" if refresher == "uac" else "local"
        call._timer_required = supports
        return None

    def _session_response(self, call: CallSession, response: Response, now: float) -> None:
        """A 2xx to our INVITE, re-INVITE or UPDATE: the session timer it sets (§7.2)."""
        se = _session_expires_of(response)
        if se is None:
            if call.session_expires is not None:
                self._arm_session_timer(call, now)
            return
        interval, refresher = se
        call.session_expires = max(interval, 90)
        call.session_refresher = "remote" if refresher == "uas" else "local"
        self._arm_session_timer(call, now)

    def connection_made(
        self, connection: SipConnection, *, contact: NameAddr | None = None
    ) -> list[CallSession]:
        """A new flow is up: the live calls without one move onto it (RFC 5626 flow recovery).

        Their dialogs are registered with ``connection`` so in-dialog requests match, and
        they are marked as needing a target refresh (:meth:`request_target_refresh`).

        Args:
            connection: the new flow.
            contact: our Contact on the new flow, if it changed: the moved calls' dialogs
                put it in their next target-refresh request.

        Returns:
            The calls that moved.
        """
        moved = []
        for call in self.calls.values():
            if call.active and call.connection is None:
                call.connection = connection
                if contact is not None:
                    call.local_contact = contact
                if call.dialog is not None:
                    if contact is not None:
                        call.dialog.local_contact = contact
                    connection.add_dialog(call.dialog)
                    call._target_stale = True
                    # A new flow: the refresh starts over (request_target_refresh asks).
                    call._refresh_refusals = 0
                    call._deadlines.pop(_Timer.REFRESH_RETRY, None)
                moved.append(call)
        return moved

    def request_target_refresh(self) -> list[CallSession]:
        """Ask the owner to refresh the far end's target of every established call that moved
        to a new flow (:class:`TargetRefreshNeeded`); call it once the flow is usable (a
        phone: when the REGISTER on it has succeeded).

        Returns:
            The calls asked about.
        """
        asked = []
        for call in self.calls.values():
            if (
                call._target_stale
                and call.state is SessionState.ESTABLISHED
                and call.connection is not None
            ):
                asked.append(call)
                self._events.append(
                    TargetRefreshNeeded(call, "reconnected", call.update_allowed)
                )
        return asked

    def connection_lost(
        self,
        connection: SipConnection,
        now: float,
        *,
        end_calls: bool = False,
        reason: str = "connection lost",
    ) -> None:
        """``connection``'s flow is gone (feed its own transport-failure events first).

        Args:
            connection: the flow that closed.
            now: the current time.
            end_calls: end every call on it (:class:`CallEnded`, ``by="remote"``,
                ``reason``): a server's client is gone for good. Otherwise (a phone) the
                calls wait for :meth:`connection_made`.
            reason: the end reason when ``end_calls``.
        """
        for call in list(self.calls.values()):
            if call.connection is not connection:
                continue
            if end_calls:
                self._end(call, "remote", None, reason)
            call.connection = None

    def handle_event(self, connection: SipConnection, event: Event, now: float) -> bool:
        """Act on one event of ``connection`` if it belongs to a call.

        Returns:
            Whether the event was the layer's. Others (REGISTER and its responses,
            out-of-dialog OPTIONS, MESSAGE, rejected messages ...) are the owner's.

        Raises:
            SipError: a peer's message could not be handled (the call state is kept).
        """
        if isinstance(event, ResponseReceived):
            return self._on_response(connection, event, now)
        if isinstance(event, RequestReceived):
            return self._on_request(connection, event, now)
        if isinstance(event, CancelReceived):
            for call in self.calls.values():
                if call._invite_tx is event.invite_transaction:
                    if call.state is SessionState.INCOMING:
                        self._respond_invite(call, 487, "Request Terminated", now)
                        self._end(call, "remote", 487, "cancelled by the caller")
                    return True
            return False
        if isinstance(event, TransactionTimedOut):
            return self._on_timeout(event, now)
        if isinstance(event, TransactionTerminated):
            return self._tx_calls.pop(id(event.transaction), None) is not None
        return False

    # ========================================================================================
    # Commands
    # ========================================================================================
    def invite(
        self,
        connection: SipConnection,
        target: URI | str,
        sdp: str | None,
        now: float,
        *,
        headers: list[tuple[str, str]] | None = None,
        from_: NameAddr | None = None,
        to: NameAddr | None = None,
        contact: NameAddr | None = None,
        ring_timeout: float | None = None,
    ) -> CallSession:
        """Place a call on ``connection``.

        Args:
            connection: where to send the INVITE.
            target: the Request-URI: a SIP URI, or a user/number at the ``aor``'s domain.
            sdp: the offer.
            now: the current time.
            headers: extra headers (e.g. ``X-`` headers).
            from_: the From (a tag is added); default ``aor`` with ``display_name``.
            to: the To; default the target without parameters.
            contact: our Contact for this call; default the layer's.
            ring_timeout: CANCEL after this many seconds without an answer (the call then
                ends with reason ``"no answer"``); ``None``: only Timer B gives up.

        Raises:
            InvalidMessage: ``target`` is not a valid URI.
            InvalidState: no From or Contact is known.
        """
        uri = self._target_uri(target)
        local = contact or self._need_contact()
        if from_ is None:
            if self.aor is None:
                raise InvalidState("cannot place a call: no From address (aor) configured")
            from_ = NameAddr(self.aor, self.display_name, {})
        from_ = NameAddr(from_.uri, from_.display_name, {**from_.params, "tag": new_tag()})
        if to is None:
            to = NameAddr(uri.copy(params={}, headers={}) if isinstance(uri, SipURI) else uri)
        extra = [("Allow", ALLOW), *self.invite_headers, *(headers or [])]
        request = make_request(
            "INVITE",
            uri,
            from_=from_,
            to=to,
            call_id=new_call_id(),
            cseq=secrets.randbelow(10000) + 1,
            contact=local,
            headers=extra,
            body=sdp.encode() if sdp else b"",
            content_type=SDP if sdp else None,
        )
        call = self._new_call("outgoing", request, SessionState.CALLING, connection, local)
        tx = connection.send_request(request, now)
        call._invite_tx = tx
        self._tx_calls[id(tx)] = (_Kind.INVITE, call)
        if ring_timeout is not None:
            call._deadlines[_Timer.RING] = now + ring_timeout
        return call

    def accept_invite(
        self,
        connection: SipConnection,
        request: Request,
        transaction: ServerTransaction,
        now: float,
        *,
        ring: bool = True,
        contact: NameAddr | None = None,
    ) -> CallSession | None:
        """Take a new INVITE as an incoming call (reported as :class:`IncomingCall`).

        A layer with ``accept_calls`` does this for every new INVITE; a server calls it for
        the INVITEs it has authenticated and routed.

        Args:
            connection: the connection it came on.
            request: the INVITE (no To tag).
            transaction: its server transaction.
            now: the current time.
            ring: send 180 Ringing now (and start the ring timeout); else see :meth:`ring`.
            contact: our Contact for this call; default the layer's.

        Returns:
            The call, or ``None`` when the INVITE was refused (400 for one that cannot
            make a dialog, 415 for a body that is not SDP).
        """
        local = contact or self._need_contact()
        call = self._new_call("incoming", request, SessionState.INCOMING, connection, local)
        call._local_tag = new_tag()
        call._invite_tx = transaction
        call.remote_sdp = _sdp_of(request)
        call.remote_allow = _allow_of(request)
        try:
            call.dialog = Dialog.from_request(
                request, call._local_tag, local_contact=local, state=DialogState.EARLY
            )
        except InvalidMessage as exc:
            self._send_response(call, make_response(request, 400, str(exc)[:60]), now)
            self.calls.pop(call.id, None)
            return None
        connection.add_dialog(call.dialog)
        if request.content_type not in (None, SDP):
            self._respond_invite(call, 415, "Unsupported Media Type", now)
            self.calls.pop(call.id, None)
            connection.remove_dialog(call.dialog)
            return None
        too_small = self._session_request(call, request)
        if too_small is not None:
            # RFC 4028 §8.1: a Session-Expires below our Min-SE is refused with 422.
            self._send_response(call, too_small, now)
            self.calls.pop(call.id, None)
            connection.remove_dialog(call.dialog)
            return None
        if ring:
            self.ring(call, now)
        self._events.append(IncomingCall(call))
        return call

    def ring(self, call: CallSession, now: float) -> None:
        """Send 180 Ringing for an incoming call (once) and start its ring timeout."""
        if call.direction != "incoming" or call.state is not SessionState.INCOMING or call._rung:
            return
        call._rung = True
        self._respond_invite(call, 180, "Ringing", now)
        if self.ring_timeout is not None:
            call._deadlines[_Timer.RING] = now + self.ring_timeout

    def answer(self, call: CallSession, sdp: str, now: float) -> None:
        """Answer an incoming call with 200 OK carrying ``sdp``.

        Raises:
            InvalidState: the call is not ringing.
        """
        if call.direction != "incoming" or call.state is not SessionState.INCOMING:
            raise InvalidState(f"cannot answer a call that is {call.state.value}")
        call._deadlines.pop(_Timer.RING, None)
        self._respond_invite(call, 200, "OK", now, sdp=sdp)
        if call.dialog is not None and call.dialog.state is DialogState.EARLY:
            call.dialog.confirm()
        call._deadlines[_Timer.ACK] = now + 64 * self.t1
        self._set_state(call, SessionState.ESTABLISHED)
        self._arm_session_timer(call, now)

    def reject(
        self, call: CallSession, now: float, status: int = 486, reason: str | None = None
    ) -> None:
        """Decline an incoming call (486 Busy Here by default; 603 Decline, or any 4xx-6xx).

        Raises:
            InvalidState: the call is not ringing.
            ValueError: ``status`` is not a final error status.
        """
        if not 400 <= status <= 699:
            raise ValueError(f"a rejection needs a 4xx-6xx status, not {status}")
        if call.direction != "incoming" or call.state is not SessionState.INCOMING:
            raise InvalidState(f"cannot reject a call that is {call.state.value}")
        self._respond_invite(call, status, reason, now)
        self._end(call, "local", status, reason or "rejected")

    def cancel(self, call: CallSession, now: float, *, reason: str = "cancelled") -> None:
        """Cancel an outgoing call that has not been answered (RFC 3261 §9.1).

        If no provisional response has arrived yet, the CANCEL is sent as soon as one does
        (§9.1 forbids sending it earlier); the call is reported ended (with ``reason``)
        when the INVITE's 487 arrives.
        """
        placing = (SessionState.CALLING, SessionState.EARLY)
        if call.direction != "outgoing" or call.state not in placing:
            raise InvalidState(f"cannot cancel a call that is {call.state.value}")
        call._cancel = _Cancel.WANTED
        call._cancel_reason = reason
        call._deadlines.pop(_Timer.RING, None)
        self._set_state(call, SessionState.TERMINATING)
        self._send_cancel(call, now)

    def hangup(
        self, call: CallSession, now: float, status: int | None = None, reason: str | None = None
    ) -> None:
        """End a call whatever its state: reject if ringing, cancel if calling, BYE if up.

        Args:
            call: the call.
            now: the current time.
            status: for a ringing incoming call, the rejection status (486 default).
            reason: the rejection reason phrase.
        """
        if call.state is SessionState.INCOMING:
            self.reject(call, now, status or 486, reason)
        elif call.state in (SessionState.CALLING, SessionState.EARLY):
            self.cancel(call, now)
        elif call.state is SessionState.ESTABLISHED:
            self._send_bye(call, now)
            self._end(call, "local", None, "hung up")
        # TERMINATING / TERMINATED: nothing left to do.

    def fail(self, call: CallSession, now: float, reason: str, *, by: str = "remote") -> None:
        """End a call that cannot work (e.g. its media answer is unusable), naming why.

        An established call gets a BYE, a ringing incoming one 488 Not Acceptable Here; both
        end at once with :class:`CallEnded` (``by``, ``status=None``, ``reason``). ``by`` is
        ``"remote"`` when the far end's answer or offer was at fault, ``"local"`` when our
        own side cannot go on (the client's media watch: our media path died; the far end
        did not hang up). A call still being placed is cancelled (it ends with ``reason``
        when the INVITE's final response arrives). An ended call is left alone.
        """
        if by not in ("local", "remote"):
            raise ValueError(f"by must be 'local' or 'remote', not {by!r}")
        if call.state is SessionState.INCOMING:
            self._respond_invite(call, 488, "Not Acceptable Here", now)
            self._end(call, by, None, reason)
        elif call.state in (SessionState.CALLING, SessionState.EARLY):
            self.cancel(call, now, reason=reason)
        elif call.state is SessionState.ESTABLISHED:
            logger.warning("! call %s: %s; ending the call", call.id, reason)
            self._send_bye(call, now)
            self._end(call, by, None, reason)

    def reinvite(self, call: CallSession, sdp: str, now: float) -> None:
        """Send a re-INVITE with a new offer (hold, resume).

        Raises:
            InvalidState: the call is not established, or a re-INVITE is already pending.
        """
        if call.state is not SessionState.ESTABLISHED or call.dialog is None:
            raise InvalidState(f"cannot re-INVITE a call that is {call.state.value}")
        if call._reinvite_tx is not None or call._reinvite_server is not None:
            raise InvalidState("a re-INVITE is already in progress on this call")
        conn = self._need_connection(call, "send a re-INVITE")
        call._deadlines.pop(_Timer.GLARE, None)
        request = call.dialog.create_request(
            "INVITE", body=sdp.encode(), content_type=SDP,
            headers=[("Allow", ALLOW), *self._session_headers(call, we_send_request=True)],
        )
        tx = conn.send_request(request, now)
        call._reinvite_tx = tx
        self._tx_calls[id(tx)] = (_Kind.REINVITE, call)
        self._note_target_refresh(call, tx)

    def refresh_target(self, call: CallSession, now: float) -> None:
        """Send an UPDATE without a body (RFC 3311): it refreshes the far end's target with
        our Contact (and a session timer, RFC 4028) and involves no media. The outcome: the
        call goes on, or ends when the far end answers that the dialog is gone (see
        :class:`TargetRefreshNeeded`).

        Raises:
            InvalidState: the call is not established, the far end does not accept UPDATE
                (:attr:`CallSession.update_allowed`), an UPDATE of ours is in progress, or
                there is no connection.
        """
        if call.state is not SessionState.ESTABLISHED or call.dialog is None:
            raise InvalidState(f"cannot send UPDATE on a call that is {call.state.value}")
        if not call.update_allowed:
            raise InvalidState("the far end does not accept UPDATE (not in its Allow)")
        if call._update_tx is not None:
            raise InvalidState("an UPDATE is already in progress on this call")
        conn = self._need_connection(call, "send UPDATE")
        request = call.dialog.create_request(
            "UPDATE",
            headers=[("Allow", ALLOW), *self._session_headers(call, we_send_request=True)],
        )
        tx = conn.send_request(request, now)
        call._update_tx = tx
        self._tx_calls[id(tx)] = (_Kind.UPDATE, call)
        self._note_target_refresh(call, tx)

    @staticmethod
    def _note_target_refresh(call: CallSession, tx: ClientTransaction) -> None:
        if call._target_stale:
            call._target_stale = False
            call._refresh_tx = tx
            call._deadlines.pop(_Timer.REFRESH_RETRY, None)

    @staticmethod
    def _target_refreshed(call: CallSession) -> None:
        """The far end has our Contact again (a 2xx to our refresh, or our 2xx to its
        target-refresh request): the refresh is over."""
        call._refresh_tx = None
        call._target_stale = False
        call._refresh_refusals = 0
        call._deadlines.pop(_Timer.REFRESH_RETRY, None)

    def _target_refresh_failed(
        self, call: CallSession, tx: ClientTransaction, status: int | None, phrase: str,
        now: float, *, retry_after: float | None = None,
    ) -> bool:
        """A request of ours in ``call`` failed; if it was the target refresh after a move
        to a new flow, decide what follows. Returns whether the call was ended.

        The policy, with RFC 5057 in mind. A non-2xx to a re-INVITE is, by itself, a failed
        transaction that leaves the dialog alone (§5.1: 500, 488 ... affect the transaction
        only; RFC 3261 §14.1: the session stays as it was). But a refresh after a move to a
        new flow exists only to move the far end's remote target, and only an accepted one
        tells us it moved: a proxy's 500 (Kamailio's, when the far end's own flow is gone
        too) means the far end never saw the request, and a far end that refused it may or
        may not have taken our Contact (§12.2.2). Until a refresh is accepted, nothing the
        far end sends in the dialog (its BYE, its re-INVITE) can reach us, and our own
        requests may not reach it either. So:

        * "dialog gone" (481, 408, RFC 5057's dialog-terminating statuses) or no answer:
          the call ends at once (a BYE goes after 408 or a timeout, in case the far end
          still has the call).
        * Any other refusal (5xx such as a proxy's 500 when it cannot reach the far end's
          own dead flow, 488, 403 ...; never 491, which goes through the glare back-off, or
          a 401/407 answered with credentials) is retried after
          :attr:`refresh_retry_delays` (or the response's ``Retry-After``, when longer, up
          to 10 s), each time through :class:`TargetRefreshNeeded`: a proxy that has just
          restarted may not have the far end's registration back yet. 488 is no
          exception: the far end got the request but refused it, so we cannot count on its
          target having moved; the refresh offers the session unchanged, so there is no
          smaller offer to fall back to.
        * A refusal after the last retry ends the call: BYE (best effort; it may not get
          through, and its transaction's end concerns nobody) and :class:`CallEnded`
          (``by="remote"``, the last status, a reason naming the status and the attempts).
        """
        if tx is not call._refresh_tx:
            return False
        call._refresh_tx = None
        if status is not None and status not in _DIALOG_GONE:
            call._target_stale = True
            call._refresh_refusals += 1
            attempts = call._refresh_refusals
            delays = self.refresh_retry_delays
            if attempts <= len(delays):
                delay = delays[attempts - 1]
                if retry_after is not None:
                    delay = max(delay, min(retry_after, 10.0))
                call._deadlines[_Timer.REFRESH_RETRY] = now + delay
                logger.warning(
                    "! call %s: the target refresh got %s %s; the far end cannot reach us "
                    "until it goes through: trying again in %.1f s (attempt %d of %d)",
                    call.id, status, phrase, delay, attempts + 1, len(delays) + 1,
                )
                return False
            what = f"{status} {phrase}".strip()
            plural = "attempt" if attempts == 1 else "attempts"
            reason = (f"the call's signalling could not be restored after the connection was "
                      f"lost: its refresh got {what} ({attempts} {plural})")
            logger.warning("! call %s: %s; ending the call", call.id, reason)
            if tx is call._reinvite_tx or tx.request.method == "INVITE":
                call._reinvite_tx = None
                self._events.append(ReInviteRejected(call, status, phrase))
            self._send_bye(call, now)
            self._end(call, "remote", status, reason)
            return True
        if status == 481:
            reason = (f"the server no longer knows this call ({status} {phrase}) after the "
                      "connection was lost").replace(" )", ")")
        elif status is None:
            reason = ("no answer to the call's refresh after the connection was lost "
                      "(timeout)")
        else:
            reason = (f"the call's refresh after the connection was lost failed: the dialog "
                      f"is gone ({status} {phrase})").replace(" )", ")")
        if tx is call._reinvite_tx or tx.request.method == "INVITE":
            call._reinvite_tx = None
            self._events.append(ReInviteRejected(call, status, phrase or "no response"))
        if status is None or status == 408:
            # The far end may still have the call: tell it (RFC 3261 §12.2.1.2 ends the
            # dialog on 408 and on a timeout; the BYE is best effort).
            self._send_bye(call, now)
        self._end(call, "remote", status, reason)
        return True

    def answer_reinvite(self, call: CallSession, sdp: str | None, now: float) -> None:
        """Answer the far end's pending re-INVITE, or UPDATE with an offer, with 200 OK (and
        ``sdp``): :class:`ReInviteReceived` says which it was."""
        pending = call._reinvite_server
        if pending is None:
            raise InvalidState("no re-INVITE is waiting for an answer")
        request, _ = pending
        call._reinvite_server = None
        # Our 2xx carries our Contact: the far end takes it as its new target (RFC 3261
        # §12.2.1.2), which is the refresh a move to a new flow needs.
        self._target_refreshed(call)
        response = make_response(
            request,
            200,
            headers=self._refresh_headers(call),
            body=sdp.encode() if sdp else b"",
            content_type=SDP if sdp else None,
        )
        self._send_response(call, response, now)
        self._arm_session_timer(call, now)  # a 2xx to a re-INVITE/UPDATE is a refresh

    def reject_reinvite(self, call: CallSession, now: float, status: int = 488) -> None:
        """Decline the far end's pending re-INVITE or UPDATE offer (488 Not Acceptable Here
        by default); the session goes on as it was."""
        pending = call._reinvite_server
        if pending is None:
            raise InvalidState("no re-INVITE is waiting for an answer")
        request, _ = pending
        call._reinvite_server = None
        self._send_response(call, make_response(request, status), now)

    def send_info(
        self,
        call: CallSession,
        content_type: str,
        body: bytes,
        now: float,
        *,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        """Send an in-dialog INFO (e.g. ``application/dtmf-relay``), with extra ``headers``.

        INFOs on one call go out one transaction at a time, in order: the next is sent when
        the previous one has its final response (:class:`InfoAnswered`). A burst sent at once
        could reach the far end reordered through a proxy with several workers, and the far
        end must then reject the lower CSeq with 500 (RFC 3261 §12.2.2) - a lost digit.
        """
        if call.state is not SessionState.ESTABLISHED or call.dialog is None:
            raise InvalidState(f"cannot send INFO on a call that is {call.state.value}")
        self._need_connection(call, "send INFO")
        call._info_queue.append((content_type, body, headers))
        if call._info_tx is None:
            self._send_next_info(call, now)

    def _send_next_info(self, call: CallSession, now: float) -> None:
        if not call._info_queue or call._info_tx is not None:
            return
        if call.state is not SessionState.ESTABLISHED or call.dialog is None:
            call._info_queue.clear()
            return
        conn = call.connection
        if conn is None:
            return
        content_type, body, headers = call._info_queue.pop(0)
        request = call.dialog.create_request(
            "INFO", headers=headers, body=body, content_type=content_type
        )
        tx = conn.send_request(request, now)
        call._info_tx = tx
        self._tx_calls[id(tx)] = (_Kind.INFO, call)

    def _info_done(
        self, call: CallSession, status: int | None, reason: str, body: bytes, now: float
    ) -> None:
        call._info_tx = None
        self._events.append(InfoAnswered(call, status, reason, body))
        self._send_next_info(call, now)

    # ========================================================================================
    # Internals
    # ========================================================================================
    def _need_contact(self) -> NameAddr:
        if self.contact is None:
            raise InvalidState("no Contact: give the call one or configure the CallLayer's")
        return self.contact

    @staticmethod
    def _need_connection(call: CallSession, action: str) -> SipConnection:
        if call.connection is None:
            raise InvalidState(f"cannot {action}: not connected to the SIP server")
        return call.connection

    def _target_uri(self, target: URI | str) -> URI:
        if not isinstance(target, str):
            return target
        text = target.strip()
        if not text:
            raise InvalidMessage("empty call target")
        if ":" in text.split("@", 1)[0] and text.split(":", 1)[0].lower() in (
            "sip",
            "sips",
            "tel",
        ):
            return parse_uri(text)
        if "@" in text:
            return parse_uri(f"sip:{text}")
        if self.aor is None:
            raise InvalidMessage(f"{text!r} is not a URI and there is no domain to dial it at")
        return SipURI("sip", text, self.aor.host, self.aor.port)

    def _new_call(
        self,
        direction: str,
        invite: Request,
        state: SessionState,
        connection: SipConnection,
        contact: NameAddr,
    ) -> CallSession:
        self._counter += 1
        call = CallSession(f"{direction[0]}{self._counter}-{secrets.token_hex(3)}", direction,
                           invite, state)
        call.connection = connection
        call.local_contact = contact
        self.calls[call.id] = call
        logger.info("= call %s %s %s", call.id, direction, invite.call_id)
        return call

    @staticmethod
    def _set_state(call: CallSession, state: SessionState) -> bool:
        """The one place where a call's state changes. A move ``_TRANSITIONS`` does not allow
        is refused (logged, ``False``), as a transaction ignores a peer's input its table does
        not allow; the commands check their preconditions first and raise InvalidState."""
        if state is call.state:
            return True
        if state not in _TRANSITIONS[call.state]:
            logger.warning(
                "! call %s: refused state change %s -> %s", call.id, call.state.value, state.value
            )
            return False
        logger.debug("= call %s %s -> %s", call.id, call.state.value, state.value)
        call.state = state
        return True

    def _end(self, call: CallSession, by: str, status: int | None, reason: str) -> None:
        if call.state is SessionState.TERMINATED:
            return
        self._set_state(call, SessionState.TERMINATED)
        call.ended_by, call.end_status, call.end_reason = by, status, reason
        call._deadlines.clear()
        call._info_queue.clear()
        if call.dialog is not None:
            if call.dialog.state is not DialogState.TERMINATED:
                call.dialog.terminate()
            if call.connection is not None:
                call.connection.remove_dialog(call.dialog)
        self.calls.pop(call.id, None)
        logger.info("= call %s ended by %s: %s %s", call.id, by, status or "", reason)
        self._events.append(CallEnded(call, by, status, reason))

    def _refresh_headers(self, call: CallSession) -> list[tuple[str, str]]:
        """The headers of our 2xx to a target-refresh request (re-INVITE, UPDATE)."""
        return [
            ("Contact", str(call.local_contact)),
            ("Allow", ALLOW),
            *self._session_headers(call, we_send_request=False),
        ]

    @staticmethod
    def _send_response(call: CallSession, response: Response, now: float) -> None:
        send_response(call.connection, response, now)

    def _respond_invite(
        self,
        call: CallSession,
        status: int,
        reason: str | None,
        now: float,
        *,
        sdp: str | None = None,
    ) -> None:
        headers: list[tuple[str, str]] = []
        if status < 300:
            headers = [("Contact", str(call.local_contact)), ("Allow", ALLOW)]
            if self.user_agent:
                headers.append(("User-Agent", self.user_agent))
            if status >= 200:
                headers += self._session_headers(call, we_send_request=False)
        response = make_response(
            call.invite,
            status,
            reason,
            to_tag=call._local_tag,
            headers=headers,
            body=sdp.encode() if sdp else b"",
            content_type=SDP if sdp else None,
        )
        self._send_response(call, response, now)

    def _send_bye(self, call: CallSession, now: float) -> None:
        if call.dialog is None or call.connection is None:
            return
        request = call.dialog.create_request("BYE")
        try:
            tx = call.connection.send_request(request, now)
        except SipError as exc:
            logger.warning("! cannot send BYE for call %s: %s", call.id, exc)
            return
        self._tx_calls[id(tx)] = (_Kind.BYE, call)

    def _send_cancel(self, call: CallSession, now: float) -> None:
        """Send the CANCEL that :meth:`cancel` wants, once, as soon as §9.1 allows it: after
        a provisional response to the INVITE (its transaction is PROCEEDING)."""
        tx = call._invite_tx
        proceeding = tx is not None and tx.state is TransactionState.PROCEEDING
        if call._cancel is not _Cancel.WANTED or call.connection is None or not proceeding:
            return
        call._cancel = _Cancel.SENT
        try:
            cancel = call.connection.send_request(make_cancel(call.invite), now)
        except SipError as exc:
            logger.warning("! cannot CANCEL call %s: %s", call.id, exc)
            return
        self._tx_calls[id(cancel)] = (_Kind.CANCEL, call)

    # -- responses ---------------------------------------------------------------------------
    def _on_response(self, connection: SipConnection, event: ResponseReceived, now: float) -> bool:
        response = event.response
        tx = event.transaction
        if tx is None:
            # A 2xx retransmission, or one from another fork (§13.2.2.4).
            if 200 <= response.status < 300 and response.cseq.method == "INVITE":
                return self._on_late_2xx(connection, response, now)
            return False
        owner = self._tx_calls.get(id(tx))
        if owner is None:
            return False
        kind, call = owner
        if kind is _Kind.INVITE:
            self._on_invite_response(call, tx, response, event.dialog, now)
        elif kind is _Kind.REINVITE:
            self._on_reinvite_response(call, tx, response, now)
        elif kind is _Kind.UPDATE and response.status >= 200:
            self._on_update_response(call, tx, response, now)
        elif kind is _Kind.BYE and response.status in (401, 407):
            self._retry_in_dialog(call, tx.request, response, now, _Kind.BYE)
        elif kind is _Kind.INFO and response.status >= 200:
            if response.status in (401, 407) and not call._auth_retried:
                call._auth_retried = True
                if self._retry_in_dialog(call, tx.request, response, now, _Kind.INFO):
                    return True
            self._info_done(call, response.status, response.reason, tx.request.body, now)
        return True

    def _on_invite_response(
        self,
        call: CallSession,
        tx: ClientTransaction,
        response: Response,
        matched: Dialog | None,
        now: float,
    ) -> None:
        status = response.status
        sdp = _sdp_of(response)
        conn = call.connection
        if status < 200:
            # §9.1: the CANCEL may go once "a provisional response" has arrived; a 100 Trying
            # from a proxy counts (a callee that never rings must still be cancellable).
            self._send_cancel(call, now)
            if status == 100:
                return
            if response.to.tag and call.dialog is None:
                try:
                    call.dialog = Dialog.from_response(tx.request, response)
                except (InvalidMessage, ValueError):
                    call.dialog = None
                if call.dialog is not None and conn is not None:
                    conn.add_dialog(call.dialog)
            if call._cancel is not _Cancel.NOT_WANTED:
                return
            if call.state is SessionState.CALLING:
                self._set_state(call, SessionState.EARLY)
            if sdp:
                call.remote_sdp = sdp
            self._events.append(CallProgress(call, status, response.reason, sdp))
            return
        if status < 300:
            call._deadlines.pop(_Timer.RING, None)
            problem = _answer_problem(response)
            # The connection has already matched (and confirmed) a registered dialog; a 2xx
            # from another fork, or without an early dialog, creates one now (§13.2.2.4). A
            # 2xx we cannot take still gets a dialog if possible, to ACK and BYE it.
            dialog = matched
            if dialog is None:
                try:
                    dialog = Dialog.from_response(
                        tx.request, response, tolerant=problem is not None
                    )
                except (InvalidMessage, ValueError) as exc:
                    problem = f"the {_status_line(response)} cannot make a dialog: {exc}"
            early = call.dialog
            if early is not None and early is not dialog:
                # An early dialog of another fork ends with this final answer (§13.2.2.4).
                early.terminate()
                if conn is not None:
                    conn.remove_dialog(early)
                call.dialog = None
            if dialog is not None:
                if dialog.state is DialogState.EARLY:
                    dialog.receive_response(response, "INVITE")
                call.dialog = dialog
                if conn is not None:
                    conn.add_dialog(dialog)
                ack = dialog.create_ack(tx.request.cseq.seq)
                if conn is not None:
                    conn.send_ack(ack)
                self._remember_answer(call, tx.request, response, ack, now)
            if problem is not None:
                # §13.2.2.4 asks to ACK every 2xx; a call we cannot use is then ended with a
                # BYE (when there is a dialog to send it in) and reported, never left ringing.
                logger.warning("! call %s: %s; ending the call", call.id, problem)
                if dialog is not None:
                    self._send_bye(call, now)
                self._end(call, "remote", None, problem)
                return
            if call._cancel is not _Cancel.NOT_WANTED:
                # The 200 crossed our CANCEL (§9.1): the call is up, so end it with a BYE.
                self._send_bye(call, now)
                self._end(call, "local", None, call._cancel_reason)
                return
            if sdp:
                call.remote_sdp = sdp
            call.remote_allow = _allow_of(response)
            if self._set_state(call, SessionState.ESTABLISHED):
                self._session_response(call, response, now)
                self._events.append(CallAnswered(call, sdp))
            return
        if status in (401, 407) and self.auth is not None and not call._auth_retried:
            try:
                retry = self.auth.retry(tx.request, response, tx.request.cseq.seq + 1)
            except AuthenticationError as exc:
                self._end(call, "remote", status, str(exc))
                return
            call._auth_retried = True
            call.invite = retry
            if conn is not None:
                new_tx = conn.send_request(retry, now)
                call._invite_tx = new_tx
                self._tx_calls[id(new_tx)] = (_Kind.INVITE, call)
            return
        if status == 422 and not call._422_retried and call._cancel is _Cancel.NOT_WANTED:
            # RFC 4028 §7.4: a proxy (or the far end) wants a session timer of at least its
            # Min-SE: the INVITE goes again asking for that interval.
            min_se = _min_se_of(response)
            if min_se is not None and conn is not None:
                call._422_retried = True
                retry = Request(tx.request.method, tx.request.uri, tx.request.headers.copy(),
                                tx.request.body)
                retry.headers.remove("Via")
                for name in ("Session-Expires", "Min-SE"):
                    retry.headers.remove(name)
                retry.headers.set("CSeq", f"{tx.request.cseq.seq + 1} INVITE")
                retry.headers.add("Session-Expires", str(min_se))
                retry.headers.add("Min-SE", str(min_se))
                if "timer" not in ",".join(retry.headers.get_all("Supported")):
                    retry.headers.add("Supported", "timer")
                call.invite = retry
                new_tx = conn.send_request(retry, now)
                call._invite_tx = new_tx
                self._tx_calls[id(new_tx)] = (_Kind.INVITE, call)
                return
        if call._cancel is not _Cancel.NOT_WANTED:
            self._end(call, "local", status, call._cancel_reason)
            return
        self._end(call, "remote", status, response.reason)

    def _remember_answer(
        self, call: CallSession, invite: Request, response: Response, ack: Request, now: float
    ) -> None:
        record = self._answered.get(invite.call_id)
        if record is None:
            self._forget_answered(now)
            record = _Answered(call, invite, {}, now + 64 * self.t1)
            self._answered[invite.call_id] = record
        record.acks[response.to.tag or ""] = ack

    def _forget_answered(self, now: float) -> None:
        if self._answered:
            for call_id in [k for k, r in self._answered.items() if now >= r.until]:
                del self._answered[call_id]

    def _on_late_2xx(self, connection: SipConnection, response: Response, now: float) -> bool:
        """A 2xx to an INVITE of ours whose transaction has ended (RFC 3261 §13.2.2.4)."""
        record = self._answered.get(response.call_id)
        if record is None or now >= record.until:
            return False
        tag = response.to.tag or ""
        ack = record.acks.get(tag)
        if ack is not None:  # a retransmission: the same ACK again
            connection.send_ack(ack)
            return True
        # §13.2.2.4: "If the dialog identifier in the 2xx response does not match the
        # dialog identifier of any of the dialogs [...], a new dialog MUST be created [...].
        # The UAC core MUST generate an ACK request for each 2xx [...] and then a BYE to
        # terminate the dialog" (this UA keeps one dialog per call).
        call = record.call
        try:
            dialog = Dialog.from_response(record.invite, response, tolerant=True)
        except (InvalidMessage, ValueError) as exc:
            logger.warning("! call %s: cannot ACK a 2xx from another fork: %s", call.id, exc)
            return True
        ack = dialog.create_ack(response.cseq.seq)
        record.acks[tag] = ack
        connection.send_ack(ack)
        logger.info("= call %s: a 2xx from another fork (To tag %s): ACK and BYE",
                    call.id, tag or "none")
        try:
            tx = connection.send_request(dialog.create_request("BYE"), now)
        except SipError as exc:
            logger.warning("! call %s: cannot send BYE to the other fork: %s", call.id, exc)
            return True
        self._tx_calls[id(tx)] = (_Kind.FORK_BYE, call)
        return True

    def _on_reinvite_response(
        self, call: CallSession, tx: ClientTransaction, response: Response, now: float
    ) -> None:
        status = response.status
        if status < 200:
            return
        call._reinvite_tx = None
        if status < 300:
            if tx is call._refresh_tx:
                self._target_refreshed(call)
            if call.dialog is not None:
                ack = call.dialog.create_ack(tx.request.cseq.seq)
                if call.connection is not None:
                    call.connection.send_ack(ack)
            sdp = _sdp_of(response)
            if sdp:
                call.remote_sdp = sdp
            self._session_response(call, response, now)
            self._events.append(ReInviteAnswered(call, sdp))
            return
        if status in (401, 407) and not call._auth_retried:
            call._auth_retried = True
            if self._retry_in_dialog(call, tx.request, response, now, _Kind.REINVITE):
                return
        if status == 491:
            # §14.1: "If the UAC [...] is the owner of the Call-ID [...] T has a randomly
            # chosen value between 2.1 and 4 seconds [...]. If the UAC is not the owner of
            # the Call-ID, T has a randomly chosen value of between 0 and 2 seconds".
            owner = call.direction == "outgoing"
            delay = (2.1 + 1.9 * self._rng()) if owner else 2.0 * self._rng()
            call._deadlines[_Timer.GLARE] = now + delay
            if tx is call._refresh_tx:  # the retry is the refresh
                call._refresh_tx, call._target_stale = None, True
            self._events.append(ReInviteRejected(call, status, response.reason, delay))
            return
        if self._target_refresh_failed(
            call, tx, status, response.reason, now, retry_after=_retry_after_of(response)
        ):
            return
        if status in (408, 481):
            # §12.2.1.2: the dialog is gone.
            self._events.append(ReInviteRejected(call, status, response.reason))
            self._end(call, "remote", status, response.reason)
            return
        self._events.append(ReInviteRejected(call, status, response.reason))

    def _on_update_response(
        self, call: CallSession, tx: ClientTransaction, response: Response, now: float
    ) -> None:
        status = response.status
        call._update_tx = None
        if status < 300:
            if tx is call._refresh_tx:
                self._target_refreshed(call)
            self._session_response(call, response, now)
            return
        if status in (401, 407) and not call._auth_retried:
            call._auth_retried = True
            if self._retry_in_dialog(call, tx.request, response, now, _Kind.UPDATE):
                return
        if self._target_refresh_failed(
            call, tx, status, response.reason, now, retry_after=_retry_after_of(response)
        ):
            return
        if status in (408, 481):
            # §12.2.1.2: the dialog is gone.
            self._end(call, "remote", status, response.reason)
            return
        logger.warning("! call %s: our UPDATE got %s %s", call.id, status, response.reason)

    def _retry_in_dialog(
        self, call: CallSession, request: Request, response: Response, now: float, kind: _Kind
    ) -> bool:
        if call.dialog is None or call.connection is None or self.auth is None:
            return False
        dialog = call.dialog
        try:
            retry = self.auth.retry(request, response, (dialog.local_seq or 0) + 1)
        except AuthenticationError as exc:
            logger.warning("! call %s: %s", call.id, exc)
            return False
        dialog.local_seq = retry.cseq.seq
        tx = call.connection.send_request(retry, now)
        self._tx_calls[id(tx)] = (kind, call)
        if kind is _Kind.REINVITE:
            call._reinvite_tx = tx
        elif kind is _Kind.INFO:
            call._info_tx = tx
        elif kind is _Kind.UPDATE:
            call._update_tx = tx
        if call._refresh_tx is not None and call._refresh_tx.request is request:
            call._refresh_tx = tx
        return True

    def _on_timeout(self, event: TransactionTimedOut, now: float) -> bool:
        owner = self._tx_calls.pop(id(event.transaction), None)
        if owner is None:
            return False
        kind, call = owner
        if kind is _Kind.INVITE:
            if call.state in (SessionState.CALLING, SessionState.EARLY, SessionState.TERMINATING):
                reason = (
                    "connection lost" if event.timer == "transport" else "no answer (timeout)"
                )
                by = "remote" if call._cancel is _Cancel.NOT_WANTED else "local"
                self._end(call, by, 408, reason)
        elif kind in (_Kind.REINVITE, _Kind.UPDATE):
            tx = event.transaction
            if kind is _Kind.REINVITE:
                call._reinvite_tx = None
            else:
                call._update_tx = None
            if tx is call._refresh_tx and event.timer == "transport":
                # The new flow went too: the call waits for the next one, and refreshes then.
                call._refresh_tx, call._target_stale = None, True
            elif isinstance(tx, ClientTransaction) and self._target_refresh_failed(
                call, tx, None, "", now
            ):
                return True
            if kind is _Kind.REINVITE:
                self._events.append(ReInviteRejected(call, None, "no response to re-INVITE"))
        elif kind is _Kind.CANCEL and call.state is SessionState.TERMINATING:
            self._end(call, "local", None, "cancelled (no answer to CANCEL)")
        elif kind is _Kind.INFO:
            self._info_done(call, None, "no response to INFO", event.transaction.request.body, now)
        return True

    # -- requests ----------------------------------------------------------------------------
    def _on_request(self, connection: SipConnection, event: RequestReceived, now: float) -> bool:
        request = event.request
        method = request.method
        call = self._call_for(connection, request)
        if method == "ACK":
            if call is None:
                return False
            call._deadlines.pop(_Timer.ACK, None)
            sdp = _sdp_of(request)
            if sdp:
                call.remote_sdp = sdp
            self._events.append(CallConfirmed(call, sdp))
            return True
        tx = event.transaction
        if tx is None:
            return False
        if method == "INVITE" and event.dialog is None and request.to.tag is None:
            if not self.accept_calls:
                return False
            self.accept_invite(connection, request, tx, now)
            return True
        if call is None:
            return False
        if method == "OPTIONS":
            self._send_response(
                call, make_response(request, 200, headers=[("Allow", ALLOW), ("Accept", SDP)]),
                now,
            )
        elif method == "BYE":
            self._send_response(call, make_response(request, 200), now)
            self._end(call, "remote", None, "hung up by the far end")
        elif method == "INVITE":
            if call._reinvite_tx is not None or call.state in (
                SessionState.CALLING, SessionState.EARLY, SessionState.TERMINATING
            ):
                # §14.2: "A UAS that receives an INVITE on a dialog while an INVITE it had
                # sent on that dialog is in progress MUST return a 491 (Request Pending)".
                self._send_response(call, make_response(request, 491), now)
                return True
            if call._reinvite_server is not None or call.state is SessionState.INCOMING:
                # §14.2: a second INVITE before our final response to the first (their
                # re-INVITE, their UPDATE offer, or the initial INVITE still ringing): 500
                # with a Retry-After of 0-10 s; the first one is still ours to answer.
                self._send_response(call, self._crossing_500(request), now)
                return True
            too_small = self._session_request(call, request)
            if too_small is not None:
                self._send_response(call, too_small, now)
                return True
            call._reinvite_server = (request, tx)
            sdp = _sdp_of(request)
            if sdp:
                call.remote_sdp = sdp
            self._events.append(ReInviteReceived(call, sdp))
        elif method == "INFO":
            self._send_response(call, make_response(request, 200), now)
            digit = parse_dtmf_relay(request.body) if request.content_type == DTMF_RELAY else None
            self._events.append(InfoReceived(call, request.content_type, request.body, digit))
        elif method == "UPDATE":
            self._on_update(call, request, tx, now)
        elif method in ("NOTIFY", "MESSAGE"):
            self._send_response(call, make_response(request, 200), now)
        elif method not in KNOWN_METHODS:
            self._send_response(call, make_response(request, 501), now)
        else:
            self._send_response(
                call, make_response(request, 405, headers=[("Allow", ALLOW)]), now
            )
        return True

    def _on_update(
        self, call: CallSession, request: Request, tx: ServerTransaction, now: float
    ) -> None:
        """An UPDATE in an early or confirmed dialog (RFC 3311)."""
        if not call.active or call.state is SessionState.TERMINATING:
            self._send_response(call, make_response(request, 481), now)
            return
        too_small = self._session_request(call, request)
        if too_small is not None:
            self._send_response(call, too_small, now)
            return
        if not request.body:
            # A target (or session) refresh: nothing to negotiate (§5.2).
            call._target_stale = False  # our 200 carries our Contact
            response = make_response(request, 200, headers=self._refresh_headers(call))
            self._send_response(call, response, now)
            self._arm_session_timer(call, now)
            return
        sdp = _sdp_of(request)
        if sdp is None:
            self._send_response(
                call, make_response(request, 415, headers=[("Accept", SDP)]), now
            )
            return
        ours_pending = call._reinvite_tx is not None or (
            call.direction == "outgoing"
            and call.state in (SessionState.CALLING, SessionState.EARLY)
            and call.remote_sdp is None
        )
        if ours_pending:
            # §5.2: "If an UPDATE is received that contains an offer, and the UAS has
            # generated an offer [...] to which it has not yet received an answer, the UAS
            # MUST reject the UPDATE with a 491 response."
            self._send_response(call, make_response(request, 491), now)
            return
        if call._reinvite_server is not None or call.state is SessionState.INCOMING:
            # §5.2: "if an UPDATE is received that contains an offer, and the UAS has
            # received an offer [...] to which it has not yet generated an answer, the UAS
            # MUST reject the UPDATE with a 500 response, and MUST include a Retry-After
            # header field with a randomly chosen value between 0 and 10 seconds."
            self._send_response(call, self._crossing_500(request), now)
            return
        call._reinvite_server = (request, tx)
        call.remote_sdp = sdp
        self._events.append(ReInviteReceived(call, sdp, "UPDATE"))

    def _crossing_500(self, request: Request) -> Response:
        """500 with a ``Retry-After`` randomly chosen between 0 and 10 seconds, for an offer
        that crosses one of the far end's we have not answered yet (RFC 3261 §14.2, RFC
        3311 §5.2)."""
        retry = ("Retry-After", str(int(self._rng() * 10)))
        return make_response(request, 500, headers=[retry])

    def _call_for(self, connection: SipConnection, request: Request) -> CallSession | None:
        call_id = request.call_id
        for call in self.calls.values():
            if call.call_id == call_id and call.connection is connection:
                return call
        return None


def send_response(connection: SipConnection | None, response: Response, now: float) -> None:
    """Send ``response`` on ``connection``; log, never raise, if the flow is gone or its
    transaction no longer takes it (a peer's retransmission or CANCEL raced us)."""
    if connection is None:
        logger.warning("! cannot send %r: not connected", response)
        return
    try:
        connection.send_response(response, now)
    except (LocalProtocolError, InvalidState) as exc:
        logger.warning("! cannot send %r: %s", response, exc)


def _status_line(response: Response) -> str:
    return f"{response.status} {response.reason}".strip()


def _answer_problem(response: Response) -> str | None:
    """Why a 2xx to our INVITE cannot set up the call, or ``None``."""
    if response.to.tag is None:
        return f"the {_status_line(response)} has no To tag (RFC 3261 §8.2.6.2)"
    try:
        contacts = response.contacts
    except InvalidMessage as exc:
        return f"the {_status_line(response)} has a Contact that cannot be parsed: {exc}"
    if not contacts:
        return f"the {_status_line(response)} has no Contact (RFC 3261 §13.3.1.4)"
    return None


def _allow_of(message: Request | Response) -> frozenset[str] | None:
    """The methods a message's ``Allow`` lists (upper case), or ``None`` without one."""
    values = message.headers.get_all("Allow")
    if not values:
        return None
    return frozenset(
        m.strip().upper() for v in values for m in v.split(",") if m.strip()
    )


def _session_expires_of(message: Request | Response) -> tuple[int, str | None] | None:
    """``Session-Expires`` (RFC 4028 §4; compact ``x``): the interval and the refresher
    (``"uac"``, ``"uas"`` or ``None``); ``None`` when absent or unreadable."""
    value = message.headers.get("Session-Expires")
    if not value:
        return None
    parts = [p.strip() for p in value.split(";")]
    try:
        interval = int(parts[0])
    except ValueError:
        logger.warning("! ignoring an unreadable Session-Expires: %.60r", value)
        return None
    refresher = None
    for part in parts[1:]:
        name, _, val = part.partition("=")
        if name.strip().lower() == "refresher" and val.strip().lower() in ("uac", "uas"):
            refresher = val.strip().lower()
    return interval, refresher


def _retry_after_of(response: Response) -> float | None:
    """The seconds of a response's ``Retry-After`` (RFC 3261 §20.33), or ``None``."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    m = re.match(r"\s*(\d+)", value)
    return float(m.group(1)) if m else None


def _min_se_of(message: Request | Response) -> int | None:
    value = message.headers.get("Min-SE")
    try:
        return int(value.split(";")[0]) if value else None
    except ValueError:
        return None


def _supports_timer(message: Request | Response) -> bool:
    """Whether ``Supported`` (or ``Require``) lists ``timer``."""
    values = message.headers.get_all("Supported") + message.headers.get_all("Require")
    return any(t.strip().lower() == "timer" for v in values for t in v.split(","))


def _sdp_of(message: Request | Response) -> str | None:
    if message.body and message.content_type == SDP:
        return message.body.decode("utf-8", "replace")
    return None
