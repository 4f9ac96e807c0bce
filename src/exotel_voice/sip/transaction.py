"""SIP transactions (RFC 3261 §17, with the RFC 6026 "Accepted" state on the server side).

Theory of operation
-------------------
A transaction is one request and every response to it. Four state machines exist:

============================  ==========  =====================================  ========
class                         RFC         states                                 figure
============================  ==========  =====================================  ========
ClientInviteTransaction       §17.1.1     CALLING PROCEEDING COMPLETED TERMINATED  5
ClientNonInviteTransaction    §17.1.2     TRYING PROCEEDING COMPLETED TERMINATED   6
ServerInviteTransaction       §17.2.1     PROCEEDING COMPLETED CONFIRMED           7
                              RFC 6026    ACCEPTED TERMINATED
ServerNonInviteTransaction    §17.2.2     TRYING PROCEEDING COMPLETED TERMINATED   8
============================  ==========  =====================================  ========

Each machine's transitions are data: a ``TRANSITIONS`` table ``{state: {Input: new state}}``
next to the class (h11 style). Anything missing from the table is not allowed:

* a *local* input (the user calling :meth:`ServerTransaction.send_response` at the wrong
  time) raises :class:`~exotel_voice.exceptions.InvalidState` naming the state;
* a *remote* input (a late 1xx, a stray ACK) is ignored and logged at DEBUG, because the
  network must never be able to raise into the caller.

No clock is read. Timers are deadlines (absolute times in the caller's clock): read the
earliest with :meth:`Transaction.get_timer` and call :meth:`Transaction.handle_timer` with
the current time once it has passed. Output is pulled, not pushed: messages to put on the
wire come from :meth:`Transaction.messages_to_send`, events for the user from
:meth:`Transaction.events`. :class:`~exotel_voice.sip.connection.SipConnection` drives all
of this; the classes can also be driven alone (``tests/sip/test_transaction.py``).

Reliable transports (WebSocket, TLS, TCP): RFC 3261 §17.1.1.2 "If an unreliable transport
is being used, the client transaction MUST start timer A" - so on a reliable transport there
are no retransmissions (A, E, G unused) and Timers D, I, J and K are zero: COMPLETED and
CONFIRMED are left at once. Timers B, F, H, L stay 64*T1 (32 s with T1 = 0.5 s).

Why RFC 6026 on the server side: under plain RFC 3261 the INVITE server transaction dies as
soon as the TU sends a 2xx, so a retransmitted INVITE would reach the TU as a new call.
RFC 6026 §7.1 adds the ACCEPTED state (Timer L = 64*T1) that absorbs those. On the client
side we keep RFC 3261: a 2xx terminates the transaction and any further 2xx (retransmissions
or other forks) reach the user as stray responses, which the dialog layer ACKs (§13.2.2.4).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from ..exceptions import InvalidState
from .events import Event, ResponseReceived, TransactionTerminated, TransactionTimedOut
from .headers import Via
from .message import Request, Response
from .utils import MAGIC_COOKIE, LoggerLike, make_ack_for_non2xx, make_response


__all__ = [
    "ClientInviteTransaction",
    "ClientNonInviteTransaction",
    "ClientTransaction",
    "Input",
    "ServerInviteTransaction",
    "ServerNonInviteTransaction",
    "ServerTransaction",
    "TimerValues",
    "Transaction",
    "TransactionKey",
    "TransactionState",
    "client_key",
    "server_key",
]

logger = logging.getLogger(__name__)

#: A transaction key: for us (client) ``(branch, method)``; for a server transaction with an
#: RFC 3261 branch ``(branch, sent-by, method)``; see :func:`client_key` and :func:`server_key`.
TransactionKey = tuple[str, ...]


class TransactionState(enum.Enum):
    """Transaction states, named as in RFC 3261 §17 (and RFC 6026 for ACCEPTED)."""

    CALLING = enum.auto()
    TRYING = enum.auto()
    PROCEEDING = enum.auto()
    COMPLETED = enum.auto()
    CONFIRMED = enum.auto()
    ACCEPTED = enum.auto()
    TERMINATED = enum.auto()


class Input(enum.Enum):
    """What drives a transaction: messages from the network, from the user, and timers."""

    RECV_1XX = "receive 1xx"
    RECV_2XX = "receive 2xx"
    RECV_FINAL = "receive 300-699"
    RECV_REQUEST = "receive request retransmission"
    RECV_ACK = "receive ACK"
    SEND_1XX = "send 1xx"
    SEND_2XX = "send 2xx"
    SEND_FINAL = "send 300-699"
    CANCEL_SENT = "note CANCEL sent"
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_K = "Timer K"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_L = "Timer L"
    TIMER_TRYING = "Timer 100"
    TIMER_CANCEL = "Timer CANCEL"
    TRANSPORT_ERROR = "transport error"


S = TransactionState
I = Input  # noqa: E741 - short alias keeps the tables readable

_NO_TRANSITIONS: Mapping[Input, TransactionState] = {}

#: Timers that mean "the transaction failed" (reported as TransactionTimedOut).
_TIMEOUTS = {I.TIMER_B: "B", I.TIMER_F: "F", I.TIMER_H: "H", I.TIMER_CANCEL: "CANCEL"}


@dataclass(frozen=True)
class TimerValues:
    """RFC 3261 §17.1.1.1 / Table 4 base values, in seconds.

    Attributes:
        t1: RTT estimate, default 500 ms.
        t2: maximum retransmit interval for non-INVITE requests and INVITE responses, 4 s.
        t4: maximum duration a message remains in the network, 5 s.
        trying: how long a server INVITE transaction waits for the user's first response
            before sending 100 Trying itself (§17.2.1 "200 ms"); ``None`` disables it.
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    trying: float | None = 0.2


def _sent_by(via: Via) -> str:
    return f"{via.host.lower()}:{via.port if via.port is not None else ''}"


def server_key(request: Request) -> TransactionKey:
    """The key matching a request to a server transaction (RFC 3261 §17.2.3).

    "the branch parameter in the request is equal to the one in the top Via header field of
    the request that created the transaction, the sent-by value in the top Via of the request
    is equal to the one in the request that created the transaction, and the method of the
    request matches the one that created the transaction, except for ACK, where the method
    of the request that created the transaction is INVITE."

    For a branch without the ``z9hG4bK`` cookie (RFC 2543 peers) the key falls back to
    Request-URI, From tag, Call-ID, CSeq number and top Via (§17.2.3, simplified: the To tag
    is not compared, so an ACK still matches its INVITE).

    A CANCEL gets its own key (method CANCEL); :meth:`SipConnection` looks up the INVITE it
    cancels with ``server_key(cancel)[:-1] + ("INVITE",)``.

    Raises:
        InvalidMessage: the top Via, From or CSeq cannot be parsed.
    """
    via = request.via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch
    if branch and branch.startswith(MAGIC_COOKIE):
        return (branch, _sent_by(via), method)
    return (
        "rfc2543",
        str(request.uri),
        request.from_.tag or "",
        request.call_id,
        str(request.cseq.seq),
        str(via),
        method,
    )


def client_key(message: Request | Response, via: Via | None = None) -> TransactionKey:
    """The key matching a response to a client transaction (RFC 3261 §17.1.3).

    "If the response has the same value of the branch parameter in the top Via header field
    as the branch parameter in the top Via header field of the request that created the
    transaction" and "If the method parameter in the CSeq header field matches the method of
    the request that created the transaction."

    Args:
        message: the response (or request).
        via: its top Via when the caller has already built it (saves building it again).

    Raises:
        InvalidMessage: the top Via or CSeq cannot be parsed.
    """
    top = via if via is not None else message.via
    return (top.branch or "", message.cseq.method)


class Transaction:
    """Common machinery of the four transaction state machines.

    Attributes:
        request: the request that created the transaction (as sent or received).
        reliable: whether the transport is reliable (no retransmissions, zero D/I/J/K).
        timers: the T1/T2/T4 values.
        state: the current :class:`TransactionState`.
        last_response: the last response received (client) or sent (server).
    """

    TRANSITIONS: ClassVar[Mapping[TransactionState, Mapping[Input, TransactionState]]]
    INITIAL: ClassVar[TransactionState]

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool = True,
        timers: TimerValues | None = None,
        logger: LoggerLike | None = None,
        branch: str | None = None,
    ) -> None:
        self.request = request
        self.reliable = reliable
        self.timers = timers if timers is not None else TimerValues()
        self.logger: LoggerLike = logger if logger is not None else globals()["logger"]
        self.state = self.INITIAL
        self.last_response: Response | None = None
        # ``branch``: the top Via's branch when the caller has just written it (saves
        # parsing the Via back); it must be the request's.
        self.branch = branch if branch is not None else (request.branch or "")
        self._deadlines: dict[Input, float] = {}
        self._intervals: dict[Input, float] = {}
        self._outgoing: list[Request | Response] = []
        self._events: list[Event] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.request.method} {self.branch} {self.state.name}>"

    @property
    def method(self) -> str:
        """The method of the request that created the transaction."""
        return self.request.method

    @property
    def terminated(self) -> bool:
        """Whether the transaction reached TERMINATED."""
        return self.state is S.TERMINATED

    # -- output --------------------------------------------------------------------------
    @property
    def has_output(self) -> bool:
        """Whether messages or events wait for :meth:`messages_to_send` / :meth:`events`."""
        return bool(self._outgoing or self._events)

    def messages_to_send(self) -> list[Request | Response]:
        """Return and forget the messages this transaction wants on the wire."""
        out, self._outgoing = self._outgoing, []
        return out

    def events(self) -> list[Event]:
        """Return and forget the events this transaction produced for the user."""
        out, self._events = self._events, []
        return out

    # -- timers --------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        """The earliest deadline of a running timer, or ``None``."""
        return min(self._deadlines.values()) if self._deadlines else None

    def handle_timer(self, now: float) -> None:
        """Fire every timer whose deadline is ``<= now``, earliest first.

        Args:
            now: the current time, in the same clock as the deadlines.
        """
        while self._deadlines:
            timer, deadline = min(self._deadlines.items(), key=lambda item: item[1])
            if deadline > now:
                return
            del self._deadlines[timer]
            self._fire(timer, deadline, now)

    def _start_timer(self, timer: Input, start: float, interval: float) -> None:
        """Arm ``timer`` to fire ``interval`` seconds after ``start``; zero fires at once."""
        self._intervals[timer] = interval
        if interval <= 0:
            self._fire(timer, start, start)
        else:
            self._deadlines[timer] = start + interval

    def _stop_timers(self, *timers: Input) -> None:
        for timer in timers:
            self._deadlines.pop(timer, None)

    def _fire(self, timer: Input, deadline: float, now: float) -> None:
        """Run the transition for ``timer``. ``deadline`` is when it was due."""
        new = self._lookup(timer, local=False)
        if new is None:
            return
        self._on_timer(timer, deadline, now)
        if timer in _TIMEOUTS:
            self._events.append(TransactionTimedOut(self, _TIMEOUTS[timer]))
        self._set_state(new)

    def _on_timer(self, timer: Input, deadline: float, now: float) -> None:
        """Subclass hook: actions (retransmissions) of a timer firing."""

    # -- state ---------------------------------------------------------------------------
    def _lookup(self, inp: Input, *, local: bool) -> TransactionState | None:
        """Return the state ``inp`` leads to; raise (local) or return ``None`` (remote)."""
        new = self.TRANSITIONS.get(self.state, _NO_TRANSITIONS).get(inp)
        if new is None:
            if local:
                raise InvalidState(
                    f"{type(self).__name__} {self.branch}: cannot {inp.value} "
                    f"in state {self.state.name}"
                )
            self.logger.debug("= %s ignored %s in %s", self.branch, inp.value, self.state.name)
        return new

    def _set_state(self, new: TransactionState) -> None:
        """The one place where state changes; logs ``old -> new``."""
        if new is self.state:
            return
        self.logger.debug("= %s %s %s -> %s", self.branch, self.method, self.state.name, new.name)
        self.state = new
        if new is S.TERMINATED:
            self._deadlines.clear()
            self._events.append(TransactionTerminated(self))

    def transport_error(self) -> None:
        """The transport failed (RFC 3261 §17.1.4 / §17.2.4): inform the user, terminate.

        §17.1.4: "the client transaction SHOULD inform the TU that a transport failure has
        occurred, and the client transaction SHOULD transition directly to the 'Terminated'
        state". Reported as :class:`TransactionTimedOut` with ``timer="transport"``.
        """
        new = self._lookup(I.TRANSPORT_ERROR, local=False)
        if new is None:
            return
        self._events.append(TransactionTimedOut(self, "transport"))
        self._set_state(new)


# ============================================================================================
# Client transactions
# ============================================================================================


def _response_input(status: int) -> Input:
    if status < 200:
        return I.RECV_1XX
    if status < 300:
        return I.RECV_2XX
    return I.RECV_FINAL


class ClientTransaction(Transaction):
    """Base of the two client transactions: created by the user sending a request."""

    @property
    def key(self) -> TransactionKey:
        """This transaction's :func:`client_key`."""
        return (self.branch, self.method)

    def start(self, now: float) -> None:
        """Send the request and start the timers (RFC 3261 §17.1.1.2, §17.1.2.2)."""
        raise NotImplementedError

    def receive_response(self, response: Response, now: float) -> None:
        """Handle a response whose :func:`client_key` matches this transaction.

        Responses the current state has no use for (a 1xx after the final response, a
        retransmitted final response) are absorbed.
        """
        raise NotImplementedError


class ClientInviteTransaction(ClientTransaction):
    """RFC 3261 §17.1.1, Figure 5.

    ::

                 CALLING --1xx--> PROCEEDING --300-699--> COMPLETED --Timer D--> TERMINATED
        (A: resend, B: timeout)     |   2xx to TU               (resend ACK)
                    \\--2xx/B/300-699-------------------------------------------^
    """

    INITIAL = S.CALLING
    TRANSITIONS = {
        S.CALLING: {
            I.TIMER_A: S.CALLING,
            I.TIMER_B: S.TERMINATED,
            I.RECV_1XX: S.PROCEEDING,
            I.RECV_2XX: S.TERMINATED,
            I.RECV_FINAL: S.COMPLETED,
            I.CANCEL_SENT: S.CALLING,
            I.TIMER_CANCEL: S.TERMINATED,
            I.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.PROCEEDING: {
            I.RECV_1XX: S.PROCEEDING,
            I.RECV_2XX: S.TERMINATED,
            I.RECV_FINAL: S.COMPLETED,
            I.CANCEL_SENT: S.PROCEEDING,
            I.TIMER_CANCEL: S.TERMINATED,
            I.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.COMPLETED: {
            I.RECV_FINAL: S.COMPLETED,
            I.TIMER_D: S.TERMINATED,
            I.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.TERMINATED: {},
    }

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool = True,
        timers: TimerValues | None = None,
        logger: LoggerLike | None = None,
        branch: str | None = None,
    ) -> None:
        if request.method != "INVITE":
            raise ValueError(f"ClientInviteTransaction needs an INVITE, not {request.method}")
        super().__init__(request, reliable=reliable, timers=timers, logger=logger, branch=branch)
        self.ack: Request | None = None
        self._started = False

    def start(self, now: float) -> None:
        """Send the INVITE.

        §17.1.1.2: "If an unreliable transport is being used, the client transaction MUST
        start timer A with a value of T1. [...] For any transport, the client transaction
        MUST start timer B with a value of 64*T1 seconds".
        """
        if self._started:
            raise InvalidState(f"ClientInviteTransaction {self.branch} already started")
        self._started = True
        self._outgoing.append(self.request)
        if not self.reliable:
            self._start_timer(I.TIMER_A, now, self.timers.t1)
        self._start_timer(I.TIMER_B, now, 64 * self.timers.t1)

    def _on_timer(self, timer: Input, deadline: float, now: float) -> None:
        if timer is I.TIMER_A:
            # §17.1.1.2: "When timer A fires, the client transaction MUST retransmit the
            # request [...] and reset the timer with a value of 2*T1" (doubling, no T2 cap).
            self._outgoing.append(self.request)
            self._start_timer(I.TIMER_A, deadline, 2 * self._intervals[I.TIMER_A])

    def mark_cancelled(self, now: float) -> None:
        """Note that a CANCEL for this INVITE was sent (RFC 3261 §9.1).

        §9.1: "If no final response has been received after 64*T1 seconds, the client SHOULD
        then consider the original transaction cancelled and SHOULD destroy the client
        transaction handling the original request." This arms that deadline; when it passes
        the transaction reports ``TransactionTimedOut(timer="CANCEL")`` and terminates.
        Calling it again does not move the deadline. Ignored once a final response arrived.
        """
        if self._lookup(I.CANCEL_SENT, local=False) is None:
            return
        if I.TIMER_CANCEL not in self._deadlines:
            self._start_timer(I.TIMER_CANCEL, now, 64 * self.timers.t1)

    def receive_response(self, response: Response, now: float) -> None:
        inp = _response_input(response.status)
        new = self._lookup(inp, local=False)
        if new is None:
            return
        if self.state is S.COMPLETED:
            # §17.1.1.2: "Any retransmissions of the final response that are received while
            # in the 'Completed' state MUST cause the ACK to be re-passed to the transport
            # layer for retransmission, but the newly received response MUST NOT be passed
            # up to the TU."
            if self.ack is not None:
                self._outgoing.append(self.ack)
            return
        self.last_response = response
        self._stop_timers(I.TIMER_A, I.TIMER_B)  # B only runs in CALLING (Figure 5)
        if inp is I.RECV_FINAL:
            # §17.1.1.2: "the client transaction MUST pass the received response up to the TU,
            # and the client transaction MUST generate an ACK request".
            self.ack = make_ack_for_non2xx(self.request, response)
            self._outgoing.append(self.ack)
            self._stop_timers(I.TIMER_CANCEL)
        elif inp is I.RECV_2XX:
            # §17.1.1.2: "When in either the 'Calling' or 'Proceeding' states, reception of a
            # 2xx response MUST cause the client transaction to enter the 'Terminated' state,
            # and the response MUST be passed up to the TU."
            self._stop_timers(I.TIMER_CANCEL)
        self._events.append(ResponseReceived(response, self))
        self._set_state(new)
        if new is S.COMPLETED:
            # "The client transaction SHOULD start timer D [...] with a value of at least 32
            # seconds for unreliable transports, and a value of zero seconds for reliable".
            self._start_timer(I.TIMER_D, now, 0.0 if self.reliable else 32.0)


class ClientNonInviteTransaction(ClientTransaction):
    """RFC 3261 §17.1.2, Figure 6.

    ::

        TRYING --1xx--> PROCEEDING --200-699--> COMPLETED --Timer K--> TERMINATED
          (E: resend, F: timeout)   (E: resend at T2)
          \\--200-699------------------------^
    """

    INITIAL = S.TRYING
    TRANSITIONS = {
        S.TRYING: {
            I.TIMER_E: S.TRYING,
            I.TIMER_F: S.TERMINATED,
            I.RECV_1XX: S.PROCEEDING,
            I.RECV_2XX: S.COMPLETED,
            I.RECV_FINAL: S.COMPLETED,
            I.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.PROCEEDING: {
            I.TIMER_E: S.PROCEEDING,
            I.TIMER_F: S.TERMINATED,
            I.RECV_1XX: S.PROCEEDING,
            I.RECV_2XX: S.COMPLETED,
            I.RECV_FINAL: S.COMPLETED,
            I.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.COMPLETED: {
            I.RECV_1XX: S.COMPLETED,
            I.RECV_2XX: S.COMPLETED,
            I.RECV_FINAL: S.COMPLETED,
            I.TIMER_K: S.TERMINATED,
        },
        S.TERMINATED: {},
    }

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool = True,
        timers: TimerValues | None = None,
        logger: LoggerLike | None = None,
        branch: str | None = None,
    ) -> None:
        if request.method in ("INVITE", "ACK"):
            raise ValueError(f"ClientNonInviteTransaction cannot carry {request.method}")
        super().__init__(request, reliable=reliable, timers=timers, logger=logger, branch=branch)
        self._started = False

    def start(self, now: float) -> None:
        """Send the request.

        §17.1.2.2: "The 'Trying' state is entered when the TU initiates a new client
        transaction with a request. When entering this state, the client transaction SHOULD
        set timer F to fire in 64*T1 seconds. [...] If an unreliable transport is in use,
        the client transaction MUST set timer E to fire in T1 seconds."
        """
        if self._started:
            raise InvalidState(f"ClientNonInviteTransaction {self.branch} already started")
        self._started = True
        self._outgoing.append(self.request)
        if not self.reliable:
            self._start_timer(I.TIMER_E, now, self.timers.t1)
        self._start_timer(I.TIMER_F, now, 64 * self.timers.t1)

    def _on_timer(self, timer: Input, deadline: float, now: float) -> None:
        if timer is I.TIMER_E:
            self._outgoing.append(self.request)
            if self.state is S.TRYING:
                # "the timer is reset with a value of MIN(2*T1, T2). When the timer fires
                # again, it is reset to a MIN(4*T1, T2)."
                interval = min(2 * self._intervals[I.TIMER_E], self.timers.t2)
            else:
                # "If Timer E fires while in the 'Proceeding' state, the request MUST be passed
                # to the transport layer for retransmission, and Timer E MUST be reset with a
                # value of T2 seconds."
                interval = self.timers.t2
            self._start_timer(I.TIMER_E, deadline, interval)

    def receive_response(self, response: Response, now: float) -> None:
        inp = _response_input(response.status)
        new = self._lookup(inp, local=False)
        if new is None or self.state is S.COMPLETED:
            return  # §17.1.2.2: retransmissions in Completed are absorbed
        self.last_response = response
        self._events.append(ResponseReceived(response, self))
        self._set_state(new)
        if new is S.COMPLETED:
            self._stop_timers(I.TIMER_E, I.TIMER_F)
            # "Once the client transaction enters the 'Completed' state, it MUST set Timer K to
            # fire in T4 seconds for unreliable transports, and zero seconds for reliable".
            self._start_timer(I.TIMER_K, now, 0.0 if self.reliable else self.timers.t4)


# ============================================================================================
# Server transactions
# ============================================================================================


class ServerTransaction(Transaction):
    """Base of the two server transactions: created by a request from the network."""

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool = True,
        timers: TimerValues | None = None,
        logger: LoggerLike | None = None,
    ) -> None:
        super().__init__(request, reliable=reliable, timers=timers, logger=logger)
        self.key: TransactionKey = server_key(request)
        self.last_provisional: Response | None = None

    def receive_request(self, request: Request, now: float) -> None:
        """Handle a retransmission of the request (same :func:`server_key`).

        §17.2.1 / §17.2.2: in PROCEEDING the last provisional response is resent, in
        COMPLETED the final response; otherwise the retransmission is absorbed.
        """
        if self._lookup(I.RECV_REQUEST, local=False) is None:
            return
        if self.state is S.PROCEEDING and self.last_provisional is not None:
            self._outgoing.append(self.last_provisional)
        elif self.state is S.COMPLETED and self.last_response is not None:
            self._outgoing.append(self.last_response)

    def send_response(self, response: Response, now: float) -> None:
        """Send a response to the request through this transaction.

        Raises:
            InvalidState: the state does not allow this response (e.g. a second final
                response: §17.2.2 "any other final responses passed by the TU to the server
                transaction MUST be discarded while in the 'Completed' state").
        """
        raise NotImplementedError


class ServerInviteTransaction(ServerTransaction):
    """RFC 3261 §17.2.1 (Figure 7) with RFC 6026 §7.1 ACCEPTED.

    ::

        PROCEEDING --send 300-699--> COMPLETED --ACK--> CONFIRMED --Timer I--> TERMINATED
         (100 after 200 ms)           (G: resend, H: timeout)
           \\--send 2xx--> ACCEPTED --Timer L--> TERMINATED   (RFC 6026)
    """

    INITIAL = S.PROCEEDING
    TRANSITIONS = {
        S.PROCEEDING: {
            I.RECV_REQUEST: S.PROCEEDING,
            I.SEND_1XX: S.PROCEEDING,
            I.SEND_2XX: S.ACCEPTED,
            I.SEND_FINAL: S.COMPLETED,
            I.TIMER_TRYING: S.PROCEEDING,
            I.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.COMPLETED: {
            I.RECV_REQUEST: S.COMPLETED,
            I.RECV_ACK: S.CONFIRMED,
            I.TIMER_G: S.COMPLETED,
            I.TIMER_H: S.TERMINATED,
            I.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.CONFIRMED: {
            I.RECV_REQUEST: S.CONFIRMED,
            I.RECV_ACK: S.CONFIRMED,
            I.TIMER_I: S.TERMINATED,
        },
        S.ACCEPTED: {
            I.RECV_REQUEST: S.ACCEPTED,
            I.RECV_ACK: S.ACCEPTED,
            I.SEND_2XX: S.ACCEPTED,
            I.TIMER_L: S.TERMINATED,
        },
        S.TERMINATED: {},
    }

    def __init__(
        self,
        request: Request,
        now: float,
        *,
        reliable: bool = True,
        timers: TimerValues | None = None,
        logger: LoggerLike | None = None,
    ) -> None:
        if request.method != "INVITE":
            raise ValueError(f"ServerInviteTransaction needs an INVITE, not {request.method}")
        super().__init__(request, reliable=reliable, timers=timers, logger=logger)
        # §17.2.1: "The server transaction MUST generate a 100 (Trying) response unless it
        # knows that the TU will generate a provisional or final response within 200 ms".
        # We give the TU those 200 ms and send 100 ourselves if it stays silent.
        if self.timers.trying is not None:
            self._start_timer(I.TIMER_TRYING, now, self.timers.trying)

    def _on_timer(self, timer: Input, deadline: float, now: float) -> None:
        if timer is I.TIMER_TRYING:
            trying = make_response(self.request, 100)
            self.last_provisional = trying
            self._outgoing.append(trying)
        elif timer is I.TIMER_G and self.last_response is not None:
            # §17.2.1: "If timer G fires, the response is passed to the transport layer once
            # more for retransmission, and timer G is set to fire in MIN(2*T1, T2) seconds."
            self._outgoing.append(self.last_response)
            interval = min(2 * self._intervals[I.TIMER_G], self.timers.t2)
            self._start_timer(I.TIMER_G, deadline, interval)

    def send_response(self, response: Response, now: float) -> None:
        inp = _send_input(response.status)
        new = self._lookup(inp, local=True)
        assert new is not None
        self._stop_timers(I.TIMER_TRYING)
        self._outgoing.append(response)
        if inp is I.SEND_1XX:
            self.last_provisional = response
            self._set_state(new)
            return
        first_final = self.state is S.PROCEEDING
        self.last_response = response
        self._set_state(new)
        if not first_final:
            return  # a 2xx retransmission by the TU in ACCEPTED (RFC 6026 §8.7)
        if inp is I.SEND_FINAL:
            # §17.2.1: "For unreliable transports, timer G is set to fire in T1 seconds [...].
            # For any transport, timer H MUST be set to fire in 64*T1 seconds."
            if not self.reliable:
                self._start_timer(I.TIMER_G, now, self.timers.t1)
            self._start_timer(I.TIMER_H, now, 64 * self.timers.t1)
        else:
            # RFC 6026 §7.1: "the server transaction MUST [...] start Timer L" (64*T1).
            self._start_timer(I.TIMER_L, now, 64 * self.timers.t1)

    def receive_ack(self, ack: Request, now: float) -> bool:
        """Handle an ACK matching this transaction.

        Returns:
            ``True`` when the ACK must be passed to the user: RFC 6026 §8.7 "If an ACK is
            received while the INVITE server transaction is in the 'Accepted' state, then the
            ACK must be passed directly to the TU". ACKs for a non-2xx are absorbed.
        """
        new = self._lookup(I.RECV_ACK, local=False)
        if new is None:
            return False
        if self.state is S.ACCEPTED:
            return True
        if self.state is S.COMPLETED:
            self._stop_timers(I.TIMER_G, I.TIMER_H)
            self._set_state(new)
            # §17.2.1: "timer I is set to fire in T4 seconds for unreliable transports, and
            # zero seconds for reliable transports."
            self._start_timer(I.TIMER_I, now, 0.0 if self.reliable else self.timers.t4)
        return False


def _send_input(status: int) -> Input:
    if not 100 <= status <= 699:
        raise ValueError(f"invalid status code {status}")
    if status < 200:
        return I.SEND_1XX
    if status < 300:
        return I.SEND_2XX
    return I.SEND_FINAL


class ServerNonInviteTransaction(ServerTransaction):
    """RFC 3261 §17.2.2, Figure 8.

    ::

        TRYING --send 1xx--> PROCEEDING --send 200-699--> COMPLETED --Timer J--> TERMINATED
          \\--send 200-699-----------------------^
    """

    INITIAL = S.TRYING
    TRANSITIONS = {
        S.TRYING: {
            I.RECV_REQUEST: S.TRYING,
            I.SEND_1XX: S.PROCEEDING,
            I.SEND_2XX: S.COMPLETED,
            I.SEND_FINAL: S.COMPLETED,
            I.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.PROCEEDING: {
            I.RECV_REQUEST: S.PROCEEDING,
            I.SEND_1XX: S.PROCEEDING,
            I.SEND_2XX: S.COMPLETED,
            I.SEND_FINAL: S.COMPLETED,
            I.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.COMPLETED: {
            I.RECV_REQUEST: S.COMPLETED,
            I.TIMER_J: S.TERMINATED,
            I.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.TERMINATED: {},
    }

    def __init__(
        self,
        request: Request,
        now: float,
        *,
        reliable: bool = True,
        timers: TimerValues | None = None,
        logger: LoggerLike | None = None,
    ) -> None:
        if request.method in ("INVITE", "ACK"):
            raise ValueError(f"ServerNonInviteTransaction cannot carry {request.method}")
        super().__init__(request, reliable=reliable, timers=timers, logger=logger)

    def send_response(self, response: Response, now: float) -> None:
        inp = _send_input(response.status)
        new = self._lookup(inp, local=True)
        assert new is not None
        self._outgoing.append(response)
        if inp is I.SEND_1XX:
            self.last_provisional = response
            self._set_state(new)
            return
        self.last_response = response
        self._set_state(new)
        # §17.2.2: "When the server transaction enters the 'Completed' state, it MUST set
        # Timer J to fire in 64*T1 seconds for unreliable transports, and zero seconds for
        # reliable transports."
        self._start_timer(I.TIMER_J, now, 0.0 if self.reliable else 64 * self.timers.t1)

