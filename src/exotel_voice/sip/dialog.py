"""SIP dialogs (RFC 3261 §12): identity, route set, CSeq spaces and remote target.

Theory of operation
-------------------
A dialog is the peer-to-peer relationship an INVITE (or SUBSCRIBE, REFER) sets up. It is
identified by ``(Call-ID, local tag, remote tag)`` (:class:`DialogId`, §12) and holds what
every later request in it needs: the route set, the remote target, and both CSeq numbers.

========== ============================== =========================================
state      entered when                   left when
========== ============================== =========================================
EARLY      1xx with To tag (UAC), or the  2xx -> CONFIRMED; 300-699 -> TERMINATED
           UAS creates it before its 2xx
CONFIRMED  2xx to the dialog-creating     BYE received, :meth:`Dialog.terminate`, or a
           request                        481/408 to an in-dialog request (§12.2.1.2)
TERMINATED -                              -
========== ============================== =========================================

The transitions are a table (:data:`TRANSITIONS`); an invalid one raises
:class:`~exotel_voice.exceptions.InvalidState`.

* UAC: :meth:`Dialog.from_response` (§12.1.2) - route set is the response's Record-Route
  *reversed*, remote target its Contact.
* UAS: :meth:`Dialog.from_request` (§12.1.1) - route set is the request's Record-Route *in
  order*, remote target its Contact.
* :meth:`Dialog.create_request` builds in-dialog requests (§12.2.1.1), :meth:`Dialog.create_ack`
  the ACK for a 2xx (§13.2.2.4), :meth:`Dialog.receive_request` validates incoming ones
  (§12.2.2) and :meth:`Dialog.receive_response` applies responses (§12.2.1.2, §13.2.2.4).

A dialog never sends anything; the caller passes its requests to
:meth:`SipConnection.send_request <exotel_voice.sip.connection.SipConnection.send_request>`.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field

from ..exceptions import InvalidMessage, InvalidState
from .headers import CSeq, Headers, NameAddr, parse_name_addr
from .message import Request, Response
from .uri import URI, SipURI
from .utils import HeaderItems, LoggerLike, new_cseq


__all__ = [
    "TARGET_REFRESH_METHODS",
    "TRANSITIONS",
    "Dialog",
    "DialogId",
    "DialogState",
    "request_dialog_id",
    "response_dialog_id",
]

logger = logging.getLogger(__name__)

#: Requests that refresh the remote target (RFC 3261 §12.2: re-INVITE; RFC 3311 UPDATE;
#: RFC 6665 SUBSCRIBE/NOTIFY; RFC 3515 REFER).
TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


class DialogState(enum.Enum):
    """Dialog states (RFC 3261 §12)."""

    EARLY = enum.auto()
    CONFIRMED = enum.auto()
    TERMINATED = enum.auto()


#: Allowed state changes: ``{old: {new, ...}}``.
TRANSITIONS: dict[DialogState, frozenset[DialogState]] = {
    DialogState.EARLY: frozenset(
        {DialogState.EARLY, DialogState.CONFIRMED, DialogState.TERMINATED}
    ),
    DialogState.CONFIRMED: frozenset({DialogState.CONFIRMED, DialogState.TERMINATED}),
    DialogState.TERMINATED: frozenset({DialogState.TERMINATED}),
}


@dataclass(frozen=True)
class DialogId:
    """A dialog identifier (RFC 3261 §12): Call-ID, local tag, remote tag."""

    call_id: str
    local_tag: str
    remote_tag: str


def request_dialog_id(request: Request) -> DialogId | None:
    """The id of the dialog an *incoming* request belongs to, or ``None`` without a To tag.

    §12.2.2: "the local tag [is] the tag in the To header field of the request, and the remote
    tag [...] the tag in the From header field."

    Raises:
        InvalidMessage: From or To cannot be parsed.
    """
    local = request.to.tag
    if local is None:
        return None
    return DialogId(request.call_id, local, request.from_.tag or "")


def response_dialog_id(response: Response) -> DialogId | None:
    """The id of the dialog a response to *our* request belongs to, or ``None`` without To tag.

    Raises:
        InvalidMessage: From or To cannot be parsed.
    """
    remote = response.to.tag
    if remote is None:
        return None
    return DialogId(response.call_id, response.from_.tag or "", remote)


def _without_tag(addr: NameAddr) -> NameAddr:
    params = {k: v for k, v in addr.params.items() if k != "tag"}
    return NameAddr(addr.uri, addr.display_name, params)


def _record_route(message: Request | Response) -> list[NameAddr]:
    return [parse_name_addr(v) for v in message.headers.get_all("Record-Route")]


def _contact_uri(message: Request | Response) -> URI | None:
    contacts = message.contacts
    return contacts[0].uri if contacts else None


@dataclass(eq=False)
class Dialog:
    """One SIP dialog (RFC 3261 §12).

    Attributes:
        call_id: the Call-ID.
        local_tag: our tag (From tag as UAC, To tag as UAS).
        remote_tag: the peer's tag.
        local_uri: our address (From of our requests), without tag.
        remote_uri: the peer's address (To of our requests), without tag.
        local_seq: the last CSeq number we used, ``None`` until we send a request.
        remote_seq: the last CSeq number the peer used, ``None`` until it sends one.
        remote_target: where requests go (the peer's Contact), §12.2.1.1.
        route_set: the Route values to put in requests, in order.
        secure: whether the dialog is SIPS (§12.1.1).
        state: the :class:`DialogState`.
        local_contact: the Contact we put in target-refresh requests.
    """

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: NameAddr
    remote_uri: NameAddr
    local_seq: int | None
    remote_seq: int | None
    remote_target: URI
    route_set: list[NameAddr] = field(default_factory=list)
    secure: bool = False
    state: DialogState = DialogState.EARLY
    local_contact: NameAddr | None = None
    logger: LoggerLike = field(default=logger, repr=False)

    def __repr__(self) -> str:
        return (
            f"<Dialog {self.call_id} local={self.local_tag} remote={self.remote_tag} "
            f"{self.state.name}>"
        )

    @property
    def id(self) -> DialogId:
        """The :class:`DialogId`."""
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    # -- creation ------------------------------------------------------------------------
    @classmethod
    def from_response(
        cls,
        request: Request,
        response: Response,
        *,
        logger: LoggerLike | None = None,
        tolerant: bool = False,
    ) -> Dialog:
        """Create the UAC side of a dialog from a 1xx-with-tag or 2xx response (§12.1.2).

        §12.1.2: "The route set MUST be set to the list of URIs in the Record-Route header
        field from the response, taken in reverse order [...]. The remote target MUST be set
        to the URI from the Contact header field of the response. The local sequence number
        MUST be set to the value of the sequence number in the CSeq header field of the
        request. The remote sequence number MUST be empty [...]. The call identifier [...]
        MUST be set to the value of the Call-ID in the request. The local tag MUST be set to
        the value of the tag in the From header field in the request, and the remote tag MUST
        be set to the value of the tag in the To header field of the response."

        With ``tolerant`` a broken 2xx still gives the dialog needed to ACK it and end it with
        a BYE: without a To tag the remote tag is empty ("considered to have a value of null",
        §12.1.2, and requests then carry no To tag), and without a Contact (or with one that
        does not parse) the remote target is the request's Request-URI.

        Args:
            request: the dialog-creating request as sent (INVITE, SUBSCRIBE ...).
            response: a 101-199 response with a To tag, or a 2xx.
            logger: where the dialog logs.
            tolerant: build a dialog from a 2xx without To tag or Contact (to tear it down).

        Raises:
            InvalidMessage: the response has no To tag or lacks a header the dialog needs
                (without ``tolerant``), or its Contact or Record-Route cannot be parsed.
            ValueError: the status cannot create a dialog.
        """
        if not 101 <= response.status < 300:
            raise ValueError(f"a {response.status} response does not create a dialog")
        remote_tag = response.to.tag
        if remote_tag is None:
            if not tolerant:
                raise InvalidMessage("response creating a dialog has no To tag")
            remote_tag = ""
        local_tag = request.from_.tag
        if local_tag is None:
            raise InvalidMessage("request creating a dialog has no From tag")
        try:
            target = _contact_uri(response)
        except InvalidMessage:
            if not tolerant:
                raise
            target = None
        if target is None:
            if response.status >= 200 and not tolerant:
                raise InvalidMessage("2xx creating a dialog has no Contact")
            target = request.uri  # a 1xx may lack Contact; the 2xx will set it
        contacts = request.contacts
        dialog = cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=_without_tag(request.from_),
            remote_uri=_without_tag(response.to),
            local_seq=request.cseq.seq,
            remote_seq=None,
            remote_target=target,
            route_set=list(reversed(_record_route(response))),
            # §12.1.2: "If the request was sent over TLS, and the Request-URI contained a
            # SIPS URI, the 'secure' flag is set to TRUE."
            secure=request.uri.scheme == "sips",
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
            local_contact=contacts[0] if contacts else None,
        )
        if logger is not None:
            dialog.logger = logger
        dialog._log_created()
        return dialog

    @classmethod
    def from_request(
        cls,
        request: Request,
        local_tag: str,
        *,
        local_contact: NameAddr | URI | str | None = None,
        state: DialogState = DialogState.EARLY,
        logger: LoggerLike | None = None,
    ) -> Dialog:
        """Create the UAS side of a dialog from a received INVITE (§12.1.1).

        §12.1.1: "The route set MUST be set to the list of URIs in the Record-Route header
        field from the request, taken in order and preserving all URI parameters. [...] The
        remote target MUST be set to the URI from the Contact header field of the request.
        The remote sequence number MUST be set to the value of the sequence number in the
        CSeq header field of the request. The local sequence number MUST be empty."

        Use the same ``local_tag`` as the To tag of the responses (see
        :func:`~exotel_voice.sip.utils.make_response`). Call :meth:`confirm` when the 2xx is
        sent.

        Raises:
            InvalidMessage: the request has no Contact or no From tag.
        """
        target = _contact_uri(request)
        if target is None:
            raise InvalidMessage("dialog-creating request has no Contact")
        remote_tag = request.from_.tag
        if remote_tag is None:
            raise InvalidMessage("dialog-creating request has no From tag")
        contact: NameAddr | None
        if local_contact is None or isinstance(local_contact, NameAddr):
            contact = local_contact
        elif isinstance(local_contact, str):
            contact = parse_name_addr(local_contact)
        else:
            contact = NameAddr(local_contact)
        dialog = cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=_without_tag(request.to),
            remote_uri=_without_tag(request.from_),
            local_seq=None,
            remote_seq=request.cseq.seq,
            remote_target=target,
            route_set=_record_route(request),
            secure=request.uri.scheme == "sips",
            state=state,
            local_contact=contact,
        )
        if logger is not None:
            dialog.logger = logger
        dialog._log_created()
        return dialog

    def _log_created(self) -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug("= dialog %s created %s", self.id, self.state.name)

    # -- state ---------------------------------------------------------------------------
    def _set_state(self, new: DialogState) -> None:
        if new not in TRANSITIONS[self.state]:
            raise InvalidState(
                f"dialog {self.call_id}: cannot go to {new.name} from {self.state.name}"
            )
        if new is not self.state and self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug("= dialog %s %s -> %s", self.call_id, self.state.name, new.name)
        self.state = new

    def confirm(self) -> None:
        """Move to CONFIRMED (the UAS sent, or the UAC received, a 2xx)."""
        self._set_state(DialogState.CONFIRMED)

    def terminate(self) -> None:
        """Move to TERMINATED (e.g. when a BYE we sent completed)."""
        self._set_state(DialogState.TERMINATED)

    # -- outgoing ------------------------------------------------------------------------
    def create_request(
        self,
        method: str,
        *,
        headers: HeaderItems | None = None,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """Build a request within the dialog (RFC 3261 §12.2.1.1).

        The CSeq number is incremented ("MUST be incremented by one", §12.2.1.1; initialised
        at random if empty). The Request-URI and Route follow the route set: with a loose
        router first (``;lr``) the Request-URI is the remote target and Route is the route set;
        with a strict router the Request-URI is that router and the remote target goes last in
        Route. Target-refresh requests carry our Contact (§12.2.1.1 "MUST").

        Use :meth:`create_ack` for the ACK of a 2xx and
        :func:`~exotel_voice.sip.utils.make_cancel` for CANCEL.

        Raises:
            InvalidState: the dialog is TERMINATED (BYE is still allowed: re-sending a BYE
                after a 401 challenge must work), or ``method`` is ACK/CANCEL.
        """
        if method in ("ACK", "CANCEL"):
            raise InvalidState(f"use create_ack()/make_cancel() for {method}, not create_request()")
        if self.state is DialogState.TERMINATED and method != "BYE":
            raise InvalidState(f"dialog {self.call_id} is TERMINATED: cannot send {method}")
        # §12.2.1.1: "If the local sequence number is empty, an initial value MUST be chosen
        # [...]. Otherwise the local sequence number MUST be incremented by one".
        self.local_seq = new_cseq() if self.local_seq is None else self.local_seq + 1
        return self._build(method, self.local_seq, headers, body, content_type)

    def create_ack(
        self,
        invite_cseq: int,
        *,
        headers: HeaderItems | None = None,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """Build the ACK for a 2xx to an INVITE (RFC 3261 §13.2.2.4).

        "The UAC core MUST generate an ACK request for each 2xx received from the transaction
        layer. The header fields of the ACK are constructed in the same way as for any request
        sent within a dialog [...] with the exception of the CSeq and the header fields related
        to authentication. The sequence number of the CSeq header field MUST be the same as
        the INVITE being acknowledged, but the CSeq method MUST be ACK."

        The ACK has no Via; :meth:`SipConnection.send_ack` adds one with a new branch. Keep the
        result and re-send it for every 2xx retransmission.

        Args:
            invite_cseq: the CSeq number of the INVITE being acknowledged.
        """
        return self._build("ACK", invite_cseq, headers, body, content_type)

    def _build(
        self,
        method: str,
        seq: int,
        extra: HeaderItems | None,
        body: bytes,
        content_type: str | None,
    ) -> Request:
        h = Headers()
        h.add("Max-Forwards", "70")
        uri: URI = self.remote_target
        routes = [str(r) for r in self.route_set]
        if self.route_set and not _is_loose(self.route_set[0]):
            # §12.2.1.1: strict router: "the UAC MUST place the first URI from the route set
            # into the Request-URI, stripping any parameters that are not allowed in a
            # Request-URI. The UAC MUST add a Route header field containing the remainder of
            # the route set values in order [...] then MUST place the remote target URI into
            # the Route header field as the last value."
            first = self.route_set[0].uri
            uri = first.copy(params={}, headers={}) if isinstance(first, SipURI) else first
            routes = routes[1:] + [f"<{self.remote_target}>"]
        for r in routes:
            h.add("Route", r)
        local = NameAddr(
            self.local_uri.uri, self.local_uri.display_name, dict(self.local_uri.params)
        )
        local.params["tag"] = self.local_tag
        remote = NameAddr(
            self.remote_uri.uri, self.remote_uri.display_name, dict(self.remote_uri.params)
        )
        if self.remote_tag:  # empty: a peer that sent no To tag (see from_response)
            remote.params["tag"] = self.remote_tag
        h.add("From", str(local))
        h.add("To", str(remote))
        h.add("Call-ID", self.call_id)
        h.add("CSeq", str(CSeq(seq, method)))
        if self.local_contact is not None and method in TARGET_REFRESH_METHODS:
            h.add("Contact", str(self.local_contact))
        if extra is not None:
            for name, value in extra:
                h.add(name, value)
        if content_type is not None:
            h.set("Content-Type", content_type)
        return Request(method, uri, h, body)

    # -- incoming ------------------------------------------------------------------------
    def receive_request(self, request: Request) -> int | None:
        """Validate and apply a request received within this dialog (RFC 3261 §12.2.2).

        * "If the remote sequence number was not empty, but the sequence number of the request
          is lower than the remote sequence number, the request is out of order and MUST be
          rejected with a 500 (Server Internal Error) response." We also reject an *equal*
          number: retransmissions are absorbed by the transaction layer before they get here,
          so an equal CSeq is a new request that failed to increment (§12.2.1.1 "MUST").
          ACK and CANCEL carry the INVITE's number and are not checked.
        * "If the remote sequence number was empty, it MUST be set to the value of the sequence
          number in the CSeq header field value in the request."
        * Target refresh: "When a UAS receives a target refresh request, it MUST replace the
          dialog's remote target URI with the URI from the Contact header field in that
          request, if present."
        * A BYE moves the dialog to TERMINATED (§15.1.2).

        Returns:
            ``None`` when the request is accepted, else the status to reject it with (500).
        """
        seq = request.cseq.seq
        if request.method not in ("ACK", "CANCEL"):
            if self.remote_seq is not None and seq <= self.remote_seq:
                self.logger.warning(
                    "! dialog %s: out-of-order %s CSeq %d <= %d, rejecting with 500",
                    self.call_id, request.method, seq, self.remote_seq,
                )
                return 500
            self.remote_seq = seq
        if request.method in TARGET_REFRESH_METHODS:
            target = _contact_uri(request)
            if target is not None:
                self.remote_target = target
        if request.method == "BYE" and self.state is not DialogState.TERMINATED:
            self._set_state(DialogState.TERMINATED)
        return None

    def receive_response(self, response: Response, method: str | None = None) -> None:
        """Apply a response to one of our requests within this dialog.

        * §13.2.2.4: a 2xx to the INVITE moves an early dialog to CONFIRMED and "the route
          set for the dialog MUST be recomputed based on the 2xx response".
        * §12.2.1.2: "When a UAC receives a 2xx response to a target refresh request, it MUST
          replace the dialog's remote target URI with the URI from the Contact header field in
          that response, if present."
        * §12.2.1.2: "If the response for a request within a dialog is a 481 [...] or a 408
          [...], the UAC SHOULD terminate the dialog."
        * §13.2.2.3 / §12.3: a 300-699 to the INVITE terminates an early dialog.

        Args:
            response: the response.
            method: the request's method; defaults to the CSeq method of the response.
        """
        method = method if method is not None else response.cseq.method
        status = response.status
        if self.state is DialogState.TERMINATED:
            return
        if 200 <= status < 300:
            if method in TARGET_REFRESH_METHODS:
                target = _contact_uri(response)
                if target is not None:
                    self.remote_target = target
            if self.state is DialogState.EARLY and method == "INVITE":
                self.route_set = list(reversed(_record_route(response)))
                self._set_state(DialogState.CONFIRMED)
        elif 101 <= status < 200 and self.state is DialogState.EARLY and method == "INVITE":
            target = _contact_uri(response)
            if target is not None:
                self.remote_target = target  # §12.1.2 / §13.2.2.4: early target refresh
        elif status in (408, 481):
            self._set_state(DialogState.TERMINATED)
        elif status >= 300 and self.state is DialogState.EARLY and method == "INVITE":
            self._set_state(DialogState.TERMINATED)


def _is_loose(route: NameAddr) -> bool:
    return isinstance(route.uri, SipURI) and "lr" in route.uri.params
