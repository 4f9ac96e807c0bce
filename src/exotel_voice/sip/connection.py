"""The sans-I/O SIP connection: one per WebSocket flow (RFC 7118).

Theory of operation
-------------------
:class:`SipConnection` is the transport and transaction layers of RFC 3261 (§18, §17) for one
WebSocket, with no I/O of its own (websockets ``Protocol``, aioquic ``QuicConnection``)::

    bytes in  --receive_data(data, now)-->  +---------------+  --events_received()--> user
    user      --send_request/response-->    | SipConnection |  --data_to_send()-----> bytes out
    clock     --handle_timer(now)-->        +---------------+  --get_timer()-------> deadline

The I/O layer does three things only: feed each WebSocket message to :meth:`receive_data`,
write every item of :meth:`data_to_send` as one WebSocket message, and call
:meth:`handle_timer` when :meth:`get_timer` has passed. After *any* call it must drain both
:meth:`data_to_send` and :meth:`events_received`, and re-read :meth:`get_timer`.

What the connection does by itself:

* matches responses to client transactions and requests to server transactions (§17.1.3,
  §17.2.3); retransmissions are absorbed or answered with the last response;
* sends the ACK for 300-699 responses to INVITE (§17.1.1.3) and 100 Trying if the user has
  not answered an INVITE within 200 ms (§17.2.1);
* answers CANCEL (200 if it matched an INVITE, 481 if not, §9.2) and reports
  :class:`~exotel_voice.sip.events.CancelReceived`; the user then answers the INVITE 487;
* with dialogs registered through :meth:`add_dialog`: answers in-dialog requests for unknown
  dialogs with 481 and out-of-order ones with 500 (§12.2.2), and keeps the dialogs' remote
  CSeq, remote target and state up to date;
* answers a CRLFCRLF keepalive "ping" with a CRLF "pong" (RFC 5626 §3.5.1: the server
  "MUST immediately send a single CRLF"). WebSocket has its own ping, but SIP servers such
  as Kamailio may use these too; ``answer_pings=False`` turns this off;
* turns a malformed message into :class:`~exotel_voice.sip.events.MessageRejected` and, for a
  request with enough headers to answer (Via, From, To, Call-ID, CSeq, salvaged even when
  the start line is malformed), a 400 (or the parser's ``status_hint``: 414, 505, 513).
  A response or an ACK is never answered, only reported and logged (WARNING). Nothing
  raised by the network ever escapes :meth:`receive_data`.

What the user (TU) does: build requests (:func:`~exotel_voice.sip.utils.make_request`,
:meth:`~exotel_voice.sip.dialog.Dialog.create_request`), create and register dialogs, ACK
2xx responses with :meth:`send_ack` (including each stray 2xx retransmission, reported as
``ResponseReceived(transaction=None)``), and, on an unreliable transport, retransmit its
own 2xx until the ACK arrives (§13.3.1.4; not needed over WebSocket).
"""

from __future__ import annotations

import dataclasses
import logging
import secrets

from ..exceptions import InvalidMessage, InvalidState, LocalProtocolError
from .dialog import Dialog, DialogId, request_dialog_id, response_dialog_id
from .events import (
    CancelReceived,
    Event,
    KeepaliveReceived,
    MessageRejected,
    RequestReceived,
    RequestRejected,
    ResponseReceived,
)
from .headers import Headers, Via
from .message import (
    MAX_LINE_LENGTH,
    MAX_MESSAGE_SIZE,
    MAX_NUM_HEADERS,
    Request,
    Response,
    parse_message,
)
from .transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ClientTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    ServerTransaction,
    TimerValues,
    Transaction,
    TransactionKey,
    TransactionState,
    client_key,
    server_key,
)
from .uri import URI, AbsoluteURI, parse_uri
from .utils import MAGIC_COOKIE, LoggerLike, TokenFactory, make_response, new_branch, new_tag


__all__ = ["SipConnection"]

logger = logging.getLogger(__name__)

_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_MAX_EXCERPT = 200

#: What every outgoing request needs besides Via and Max-Forwards (RFC 3261 §8.1.1), in the
#: order a LocalProtocolError names them.
_REQUIRED = ("From", "To", "Call-ID", "CSeq")
#: What answering a malformed request needs (RFC 3261 §8.2.6.2 copies them into the response).
_ANSWER_NEEDS = ("Via", *_REQUIRED)


def _may_belong_to_a_dialog(method: str) -> bool:
    """Whether a response to ``method`` may belong to a dialog: all but REGISTER's (RFC 3261
    §10.2: a REGISTER never creates or belongs to one)."""
    return method != "REGISTER"


class SipConnection:
    """SIP transport + transaction layer for one WebSocket flow, without I/O.

    Args:
        reliable: ``True`` for WS/WSS/TLS/TCP (no retransmissions, RFC 3261 §17), ``False``
            for UDP-like transports.
        via_transport: the transport token of our Via (RFC 7118 §5.2: ``WS`` or ``WSS``).
        via_host: our Via sent-by host; RFC 7118 §5.2 clients use a random ``.invalid``
            domain. ``None`` draws one.
        t1: RFC 3261 T1, RTT estimate (s).
        t2: RFC 3261 T2, maximum retransmit interval (s).
        t4: RFC 3261 T4, maximum message lifetime (s).
        trying_delay: after this long without a response from the user to an INVITE, send
            100 Trying ourselves (§17.2.1); ``None`` never does.
        answer_pings: answer a CRLFCRLF keepalive with CRLF (RFC 5626 §3.5.1).
        logger: logger or adapter; defaults to this module's logger.
        token: random token source for branches and tags (tests make it deterministic).
    """

    def __init__(
        self,
        *,
        reliable: bool = True,
        via_transport: str = "WSS",
        via_host: str | None = None,
        t1: float = 0.5,
        t2: float = 4.0,
        t4: float = 5.0,
        trying_delay: float | None = 0.2,
        answer_pings: bool = True,
        logger: LoggerLike | None = None,
        token: TokenFactory = secrets.token_hex,
    ) -> None:
        self.reliable = reliable
        self.via_transport = via_transport.upper()
        self.via_host = via_host if via_host is not None else f"{token(6)}.invalid"
        self.timers = TimerValues(t1=t1, t2=t2, t4=t4, trying=trying_delay)
        self.answer_pings = answer_pings
        self.logger: LoggerLike = logger if logger is not None else globals()["logger"]
        self._token = token
        self._client: dict[TransactionKey, ClientTransaction] = {}
        self._server: dict[TransactionKey, ServerTransaction] = {}
        self._dialogs: dict[DialogId, Dialog] = {}
        self._sent_by: set[str] = {self.via_host.lower()}
        self._events: list[Event] = []
        self._out: list[bytes] = []

    # ========================================================================================
    # Public API
    # ========================================================================================
    def receive_data(self, data: str | bytes, now: float) -> None:
        """Process one WebSocket message: one SIP message or a CRLF keepalive (RFC 7118 §5.2).

        Never raises because of what ``data`` contains: malformed input becomes a
        :class:`~exotel_voice.sip.events.MessageRejected` event (and a 400 when possible).

        Args:
            data: the WebSocket message payload (text or binary).
            now: the current time.
        """
        raw = data.encode("utf-8", errors="surrogateescape") if isinstance(data, str) else data
        if raw and not raw.strip(b"\r\n"):
            self._keepalive(raw)
            return
        try:
            message = parse_message(raw)
        except InvalidMessage as exc:
            self._reject(raw, exc, _salvage(raw))
            return
        try:
            # What matching needs (parse_message has checked them against the grammar; a
            # request's From and To are read here too, before any transaction exists). A
            # response's From and To are checked here, before its transaction sees it, unless
            # it answers a REGISTER: that never belongs to a dialog (RFC 3261 §10.2), and
            # nothing reads them.
            via = message.via
            if isinstance(message, Request):
                _ = message.cseq, message.call_id, message.from_, message.to
            else:
                _ = message.call_id
                if _may_belong_to_a_dialog(message.cseq.method):
                    message.check_from_to()
        except InvalidMessage as exc:
            self._reject(raw, exc, message)
            return
        self.logger.debug("< %r", message)
        try:
            if isinstance(message, Request):
                self._receive_request(message, now)
            else:
                self._receive_response(message, now, via)
        except InvalidMessage as exc:  # a header only some paths parse (Contact, Record-Route)
            self._reject(raw, exc, message)
        except Exception as exc:  # a bug of ours must not take the flow down
            self.logger.error(
                "! internal error handling %r: %s", message, type(exc).__name__, exc_info=True
            )
            error = InvalidMessage(f"internal error ({type(exc).__name__})", status_hint=500)
            self._reject(raw, error, message)

    def events_received(self) -> list[Event]:
        """Return and forget the events produced since the last call."""
        self._sweep()
        out, self._events = self._events, []
        return out

    def data_to_send(self) -> list[bytes]:
        """Return and forget the messages to send, one WebSocket message each."""
        self._sweep()
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        """The earliest deadline of any transaction, or ``None``."""
        deadlines = [d for tx in self.transactions if (d := tx.get_timer()) is not None]
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> None:
        """Fire every transaction timer due at ``now`` (retransmissions, timeouts)."""
        for tx in self.transactions:
            deadline = tx.get_timer()
            if deadline is not None and deadline <= now:
                tx.handle_timer(now)
                self._collect(tx)

    def send_request(self, request: Request, now: float) -> ClientTransaction:
        """Send a request in a new client transaction (RFC 3261 §17.1).

        Adds a top Via (``SIP/2.0/<via_transport> <via_host>;branch=z9hG4bK...``) if there is
        none, and a fresh branch if the top Via has none or a pre-RFC 3261 one (§8.1.1.7:
        "The branch ID inserted by an element compliant with this specification MUST always
        begin with the characters 'z9hG4bK'"). Adds ``Max-Forwards: 70`` if missing (§8.1.1.6).
        A CANCEL must keep the INVITE's Via (build it with
        :func:`~exotel_voice.sip.utils.make_cancel`).

        Args:
            request: the request; modified in place (Via, Max-Forwards).
            now: the current time.

        Returns:
            The new client transaction.

        Raises:
            LocalProtocolError: ACK (use :meth:`send_ack`), a mandatory header is missing, or
                the branch is already in use.
            InvalidState: a CANCEL for an INVITE that has had no provisional response yet
                (§9.1: "the CANCEL request MUST NOT be sent"; wait for ``ResponseReceived``
                of a 1xx) or that has already completed.
        """
        method = request.method
        if method == "ACK":
            raise LocalProtocolError("send the ACK for a 2xx with send_ack()")
        self._check_outgoing(request)
        branch = self._ensure_via(request)
        invite: ClientTransaction | None = None
        if method == "CANCEL":
            invite = self._client.get((branch, "INVITE"))
            if invite is None:
                raise InvalidState("CANCEL matches no INVITE client transaction")
            if invite.state is not TransactionState.PROCEEDING:
                raise InvalidState(
                    f"cannot CANCEL an INVITE in state {invite.state.name} (RFC 3261 §9.1: "
                    "only after a provisional and before a final response)"
                )
        key = (branch, method)  # the new transaction's key (client_key)
        if key in self._client:
            raise LocalProtocolError(f"branch {branch} already used for a {method}")
        tx: ClientTransaction
        if method == "INVITE":
            tx = ClientInviteTransaction(
                request, reliable=self.reliable, timers=self.timers, logger=self.logger,
                branch=branch,
            )
        else:
            tx = ClientNonInviteTransaction(
                request, reliable=self.reliable, timers=self.timers, logger=self.logger,
                branch=branch,
            )
        self._client[key] = tx
        tx.start(now)
        if isinstance(invite, ClientInviteTransaction):
            invite.mark_cancelled(now)
            self._collect(invite)
        self._collect(tx)
        return tx

    def send_ack(self, ack: Request) -> None:
        """Send an ACK for a 2xx outside any transaction (RFC 3261 §13.2.2.4, §17.1.1.3).

        Adds a top Via with a new branch if missing ("ACK for 2xx [...] is a separate
        transaction" in all but name). Re-send the same object for each 2xx retransmission.

        Raises:
            LocalProtocolError: not an ACK, or a mandatory header is missing.
        """
        if ack.method != "ACK":
            raise LocalProtocolError(f"send_ack() needs an ACK, not {ack.method}")
        self._check_outgoing(ack)
        self._ensure_via(ack)
        self._send(ack)

    def send_response(self, response: Response, now: float) -> None:
        """Send a response through the server transaction it answers (RFC 3261 §17.2).

        The transaction is found from the response's top Via and CSeq, which
        :func:`~exotel_voice.sip.utils.make_response` copied from the request. A 2xx to an
        INVITE whose transaction is gone is sent directly: the TU retransmits 2xx itself
        (§13.3.1.4).

        Raises:
            LocalProtocolError: no server transaction matches.
            InvalidState: the transaction's state does not allow this response.
        """
        tx = self._find_server(response)
        if tx is None:
            if 200 <= response.status < 300 and response.cseq.method == "INVITE":
                self._send(response)
                return
            raise LocalProtocolError(f"no server transaction for {response!r}")
        tx.send_response(response, now)
        self._collect(tx)

    def send_keepalive(self) -> None:
        """Queue a CRLFCRLF keepalive "ping" (RFC 5626 §4.4.1); a peer answers with CRLF."""
        self._out.append(b"\r\n\r\n")

    def connection_lost(self) -> None:
        """Report that the WebSocket closed: every live transaction fails (§17.1.4, §17.2.4).

        Each one reports ``TransactionTimedOut(timer="transport")`` then
        ``TransactionTerminated``. Dialogs are kept: they may continue on a new flow.
        """
        for tx in self.transactions:
            tx.transport_error()
            self._collect(tx)

    # -- dialogs -------------------------------------------------------------------------
    def add_dialog(self, dialog: Dialog) -> None:
        """Register a dialog so in-dialog messages are matched and validated (RFC 3261 §12.2).

        Once a UA tracks dialogs, every in-dialog request (To tag present) that matches no
        registered dialog is answered 481 by the connection. Re-adding replaces.
        """
        self._dialogs[dialog.id] = dialog

    def remove_dialog(self, dialog: Dialog) -> None:
        """Forget a dialog (no error if unknown)."""
        self._dialogs.pop(dialog.id, None)

    def find_dialog(self, dialog_id: DialogId) -> Dialog | None:
        """The registered dialog with this id, or ``None``."""
        return self._dialogs.get(dialog_id)

    @property
    def dialogs(self) -> list[Dialog]:
        """Every registered dialog."""
        return list(self._dialogs.values())

    @property
    def transactions(self) -> list[Transaction]:
        """Every live transaction (client, then server)."""
        return [*self._client.values(), *self._server.values()]

    # ========================================================================================
    # Inbound
    # ========================================================================================
    def _receive_request(self, request: Request, now: float) -> None:
        key = server_key(request)
        if request.method == "ACK":
            self._receive_ack(request, key, now)
            return
        existing = self._server.get(key)
        if existing is not None:
            # §17.2.3: a retransmission; the transaction absorbs it or resends its response.
            existing.receive_request(request, now)
            self._collect(existing)
            return
        tx: ServerTransaction
        if request.method == "INVITE":
            tx = ServerInviteTransaction(
                request, now, reliable=self.reliable, timers=self.timers, logger=self.logger
            )
        else:
            tx = ServerNonInviteTransaction(
                request, now, reliable=self.reliable, timers=self.timers, logger=self.logger
            )
        self._server[key] = tx
        if request.method == "CANCEL":
            self._receive_cancel(request, tx, now)
            return
        dialog: Dialog | None = None
        dialog_id = request_dialog_id(request)
        if dialog_id is not None:
            dialog = self._dialogs.get(dialog_id)
            if dialog is None:
                # §12.2.2: "If the UAS wishes to reject the request because it does not wish to
                # recreate the dialog, it MUST respond to the request with a 481".
                self._auto_answer(tx, request, 481, now)
                return
            status = dialog.receive_request(request)
            if status is not None:
                self._auto_answer(tx, request, status, now)
                return
        self._events.append(RequestReceived(request, tx, dialog))
        self._collect(tx)

    def _receive_ack(self, ack: Request, key: TransactionKey, now: float) -> None:
        tx = self._server.get(key)
        if isinstance(tx, ServerInviteTransaction):
            to_user = tx.receive_ack(ack, now)
            self._collect(tx)
            if not to_user:
                return  # §17.2.1: the ACK for a non-2xx ends here
        dialog_id = request_dialog_id(ack)
        dialog = self._dialogs.get(dialog_id) if dialog_id is not None else None
        if dialog is not None:
            dialog.receive_request(ack)
        self._events.append(RequestReceived(ack, None, dialog))

    def _receive_cancel(self, cancel: Request, tx: ServerTransaction, now: float) -> None:
        invite = self._server.get(tx.key[:-1] + ("INVITE",))
        if not isinstance(invite, ServerInviteTransaction):
            # §9.2: "If the UAS did not find a matching transaction for the CANCEL according
            # to the procedure above, it SHOULD respond to the CANCEL with a 481".
            self._auto_answer(tx, cancel, 481, now)
            return
        # §9.2: "the To tag of the response to the CANCEL and the To tag in the response to
        # the original request SHOULD be the same" - reuse the tag of any response sent.
        sent = invite.last_response or invite.last_provisional
        to_tag = None
        if sent is not None:
            try:
                to_tag = sent.to.tag
            except InvalidMessage:
                to_tag = None
        # §9.2: "the UAS answers the CANCEL request itself with a 200 (OK) response" whether
        # or not the INVITE already has its final response.
        tx.send_response(make_response(cancel, 200, to_tag=to_tag or new_tag(self._token)), now)
        self._collect(tx)
        if invite.state is TransactionState.PROCEEDING:
            # §9.2: "the UAS core [...] SHOULD respond to the INVITE with a 487" - the user's job.
            self._events.append(CancelReceived(cancel, invite))

    def _auto_answer(
        self, tx: ServerTransaction, request: Request, status: int, now: float
    ) -> None:
        response = make_response(request, status, to_tag=new_tag(self._token))
        self.logger.info("answered %r with %d", request, status)
        tx.send_response(response, now)
        self._events.append(RequestRejected(request, response))
        self._collect(tx)

    def _receive_response(self, response: Response, now: float, via: Via) -> None:
        """``via``: the response's top Via, as read once by :meth:`receive_data`."""
        # §18.1.2: "If the value [of sent-by] does not match, the response MUST be silently
        # discarded."
        if via.host.lower() not in self._sent_by:
            self.logger.warning("! discarded %r: Via sent-by %s is not ours", response, via.host)
            return
        tx = self._client.get(client_key(response, via))
        if tx is None:
            # A stray: a 2xx retransmission or fork after the INVITE transaction ended
            # (§13.2.2.4: the UAC core ACKs each), or a late answer to a finished request.
            self.logger.debug("< stray %r", response)
            dialog = self._dialog_for_response(response, response.cseq.method)
            self._events.append(ResponseReceived(response, None, dialog))
            return
        tx.receive_response(response, now)
        self._collect(tx)

    def _dialog_for_response(self, response: Response, method: str) -> Dialog | None:
        if not _may_belong_to_a_dialog(method):
            return None
        dialog_id = response_dialog_id(response)
        if dialog_id is None:
            return None
        dialog = self._dialogs.get(dialog_id)
        if dialog is not None:
            dialog.receive_response(response, method)
        return dialog

    def _keepalive(self, raw: bytes) -> None:
        ping = b"\r\n\r\n" in raw
        if ping and self.answer_pings:
            self._out.append(b"\r\n")
        self.logger.debug("< keepalive %s", "ping" if ping else "pong")
        self._events.append(KeepaliveReceived(ping))

    def _reject(
        self, raw: bytes, error: InvalidMessage, message: Request | Response | None
    ) -> None:
        """Report a malformed message and answer it when that is possible and allowed."""
        excerpt = f"<{len(raw)} bytes, not SIP>"
        if message is not None:
            try:
                excerpt = repr(message)[:_MAX_EXCERPT]
            except Exception:  # noqa: BLE001 - describing garbage must not fail
                excerpt = f"<{len(raw)} bytes, unprintable {type(message).__name__}>"
        response: Response | None = None
        why = "not a SIP message"
        if isinstance(message, Response):
            why = "a response is never answered"
        elif isinstance(message, Request):
            cseq = message.headers.get("CSeq") or ""
            if message.method == "ACK" or cseq.rpartition(" ")[2].strip() == "ACK":
                why = "an ACK is never answered"  # RFC 3261 §17
            elif not all(n in message.headers for n in _ANSWER_NEEDS):
                why = "too few headers to answer"
            else:
                status = error.status_hint if 300 <= error.status_hint <= 699 else 400
                response = make_response(message, status, to_tag=new_tag(self._token))
                try:
                    # The copied values may be what is malformed (a Via nobody can parse, a
                    # bare CR): never send a message that is itself malformed.
                    parse_message(response.serialize())
                except InvalidMessage as exc:
                    why = f"the copied headers would make a malformed response ({exc})"
                    response = None
        if response is not None:
            self.logger.warning(
                "! rejected %s: %s (answered %d)", excerpt, error, response.status
            )
            self._send(response)
        else:
            self.logger.warning("! rejected %s: %s (not answered: %s)", excerpt, error, why)
        self._events.append(MessageRejected(error, excerpt, response))

    # ========================================================================================
    # Plumbing
    # ========================================================================================
    @staticmethod
    def _check_outgoing(request: Request) -> None:
        """Check the mandatory headers and the CSeq, add Max-Forwards if missing."""
        missing = [n for n in _REQUIRED if n not in request.headers]
        if missing:
            raise LocalProtocolError(f"{request.method} lacks {', '.join(missing)}")
        try:
            cseq = request.cseq
        except InvalidMessage as exc:
            raise LocalProtocolError(str(exc)) from None
        if cseq.method != request.method:
            raise LocalProtocolError(f"CSeq method {cseq.method} is not {request.method}")
        if "Max-Forwards" not in request.headers:
            request.headers.add("Max-Forwards", "70")

    def _ensure_via(self, request: Request) -> str:
        """Make sure the top Via has an RFC 3261 branch; return that branch."""
        if not request.headers.get_all("Via"):
            branch = new_branch(self._token)
            via = Via(self.via_transport, self.via_host, None, {"branch": branch})
            request.headers.prepend("Via", str(via))
            return branch
        try:
            top = request.via
        except InvalidMessage as exc:
            raise LocalProtocolError(f"invalid top Via: {exc}") from None
        self._sent_by.add(top.host.lower())
        branch = top.branch or ""
        if not branch.startswith(MAGIC_COOKIE):
            branch = top.params["branch"] = new_branch(self._token)
            request.headers.remove_first("Via")
            request.headers.prepend("Via", str(top))
        return branch

    def _find_server(self, response: Response) -> ServerTransaction | None:
        try:
            via = response.via
            method = response.cseq.method
        except InvalidMessage as exc:
            raise LocalProtocolError(f"response cannot be matched: {exc}") from None
        if (via.branch or "").startswith(MAGIC_COOKIE):
            port = via.port if via.port is not None else ""
            return self._server.get((via.branch or "", f"{via.host.lower()}:{port}", method))
        top = response.headers.get_all("Via")[0]
        for tx in self._server.values():
            request = tx.request
            if (
                request.method == method
                and request.headers.get_all("Via")[0] == top
                and request.headers.get("CSeq") == response.headers.get("CSeq")
                and request.headers.get("Call-ID") == response.headers.get("Call-ID")
            ):
                return tx
        return None

    def _send(self, message: Request | Response) -> None:
        self.logger.debug("> %r", message)
        self._out.append(message.serialize())

    def _collect(self, tx: Transaction) -> None:
        """Move a transaction's output and events here; forget it once TERMINATED."""
        for message in tx.messages_to_send():
            self._send(message)
        for event in tx.events():
            if isinstance(event, ResponseReceived) and event.dialog is None:
                dialog = self._dialog_for_response(event.response, tx.request.method)
                if dialog is not None:
                    event = dataclasses.replace(event, dialog=dialog)
            self._events.append(event)
        if tx.state is TransactionState.TERMINATED:
            if isinstance(tx, ClientTransaction):
                if self._client.get(tx.key) is tx:
                    del self._client[tx.key]
            elif isinstance(tx, ServerTransaction) and self._server.get(tx.key) is tx:
                del self._server[tx.key]

    def _sweep(self) -> None:
        """Collect output of transactions the user drove directly (e.g. ``tx.send_response``)."""
        for tx in self.transactions:
            if tx.has_output or tx.state is TransactionState.TERMINATED:
                self._collect(tx)


# ============================================================================================
# Salvaging what we can from a message the parser rejected
# ============================================================================================


_INVALID_URI = AbsoluteURI("invalid:request-uri")


def _salvage(raw: bytes) -> Request | Response | None:
    """Best-effort model of a malformed message: start line plus well-formed header lines.

    Used only to describe the message (its ``repr``, which redacts) and to copy Via, From,
    To, Call-ID and CSeq into the 400 (§8.2.6.2 copies them verbatim). A request only needs
    a token for its method: the Request-URI (kept when it parses) and the version may be
    anything, so that a request line with extra whitespace or an oversized Request-URI is
    still answered. Never raises.
    """
    try:
        text = raw[:MAX_MESSAGE_SIZE].decode("utf-8", errors="replace").lstrip("\r\n")
        head = text.replace("\r\n", "\n").split("\n\n", 1)[0]
        lines = head.split("\n")
        start = lines[0][:MAX_LINE_LENGTH]
        items: list[tuple[str, str]] = []
        kept = False  # whether the last line was kept (a continuation line extends it)
        for line in lines[1:]:
            if len(items) >= MAX_NUM_HEADERS:
                break
            if line[:1] in (" ", "\t"):  # a continuation line (RFC 3261 §7.3.1)
                if kept and len(items[-1][1]) + len(line) <= MAX_LINE_LENGTH:
                    name, value = items[-1]
                    items[-1] = (name, f"{value} {line.strip()}".strip())
                else:
                    kept = False
                continue
            kept = False
            if not line or len(line) > MAX_LINE_LENGTH:
                continue
            name, sep, value = line.partition(":")
            name = name.strip()
            if sep and name and all(c in _TOKEN_CHARS for c in name):
                items.append((name, value.strip()))
                kept = True
        headers = Headers(items)
        # Elements split at any run of whitespace: extra, leading or trailing SP/HTAB in the
        # start line is a common way for it to be malformed, and the answer needs none of it.
        parts = start.split(None, 2)
        if not parts:
            return None
        if parts[0][:4].upper() == "SIP/":
            code = parts[1] if len(parts) > 1 else ""
            valid = len(code) == 3 and code.isascii() and code.isdigit()
            # (status 0: not a status code; the object only describes the message)
            return Response(int(code) if valid else 0, parts[2] if len(parts) == 3 else "", headers)
        method = parts[0]
        if not all(c in _TOKEN_CHARS for c in method):
            return None
        uri: URI = _INVALID_URI
        if len(parts) > 1:
            try:
                uri = parse_uri(parts[1])
            except InvalidMessage:
                pass
        return Request(method, uri, headers)
    except Exception:  # noqa: BLE001 - salvage is best effort by definition
        return None
