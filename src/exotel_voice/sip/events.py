"""Events that :class:`~exotel_voice.sip.connection.SipConnection` reports to its user.

Every event is a small frozen dataclass under one base, :class:`Event`, named in the past
tense (aioquic ``quic/events.py``). Drain them with
:meth:`SipConnection.events_received() <exotel_voice.sip.connection.SipConnection.events_received>`.

Order guarantees: for one transaction, ``ResponseReceived``/``TransactionTimedOut`` come
before its ``TransactionTerminated``, which is always the last event naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..exceptions import InvalidMessage
from .message import Request, Response


if TYPE_CHECKING:
    from .dialog import Dialog
    from .transaction import (
        ClientTransaction,
        ServerInviteTransaction,
        ServerTransaction,
        Transaction,
    )


__all__ = [
    "CancelReceived",
    "Event",
    "KeepaliveReceived",
    "MessageRejected",
    "RequestReceived",
    "RequestRejected",
    "ResponseReceived",
    "TransactionTerminated",
    "TransactionTimedOut",
]


@dataclass(frozen=True)
class Event:
    """Base class of every event."""


@dataclass(frozen=True)
class RequestReceived(Event):
    """A new request arrived (retransmissions are absorbed by the transaction layer).

    Attributes:
        request: the request.
        transaction: the new server transaction to answer through, or ``None`` for an ACK
            (an ACK for a 2xx is its own thing, RFC 3261 §17.1.1.3/§13.3.1.4; the ACK for a
            non-2xx is absorbed by the INVITE server transaction and never reported).
        dialog: the dialog the request belongs to, when it carried a To tag matching a
            dialog registered with :meth:`SipConnection.add_dialog`; the dialog has already
            validated the request and updated its remote CSeq/target (RFC 3261 §12.2.2).
    """

    request: Request
    transaction: ServerTransaction | None
    dialog: Dialog | None = None


@dataclass(frozen=True)
class ResponseReceived(Event):
    """A response arrived.

    Attributes:
        response: the response.
        transaction: the client transaction it matched, or ``None`` for a stray response,
            e.g. a retransmitted 2xx to an INVITE (RFC 3261 §13.2.2.4: the UAC core re-sends
            the ACK for each 2xx retransmission) or a 2xx from another fork.
        dialog: the registered dialog it belongs to, if any (already updated: early ->
            confirmed, remote target refresh, RFC 3261 §12.2.1.2).
    """

    response: Response
    transaction: ClientTransaction | None
    dialog: Dialog | None = None


@dataclass(frozen=True)
class CancelReceived(Event):
    """A CANCEL matched a pending INVITE server transaction (RFC 3261 §9.2).

    The connection has already answered the CANCEL with 200. The user "SHOULD" now answer the
    INVITE with 487 (Request Terminated) through ``invite_transaction``.

    Attributes:
        request: the CANCEL.
        invite_transaction: the INVITE server transaction being cancelled.
    """

    request: Request
    invite_transaction: ServerInviteTransaction


@dataclass(frozen=True)
class TransactionTimedOut(Event):
    """A transaction timer expired (RFC 3261 §17: Timer B, F or H; or §9.1 after a CANCEL).

    For a client transaction the user should act as if a 408 (Request Timeout) had arrived
    (§8.1.3.1). A ``TransactionTerminated`` for the same transaction follows.

    Attributes:
        transaction: the transaction.
        timer: the RFC name of the timer, e.g. ``"B"``.
    """

    transaction: Transaction
    timer: str


@dataclass(frozen=True)
class TransactionTerminated(Event):
    """A transaction reached TERMINATED and was forgotten by the connection.

    Attributes:
        transaction: the transaction.
    """

    transaction: Transaction


@dataclass(frozen=True)
class MessageRejected(Event):
    """An inbound message was malformed and dropped.

    Attributes:
        error: why (``error.status_hint`` is the status we answered with, if we answered).
        excerpt: a redacted description of what arrived: the message model's ``repr`` (start
            line, Call-ID, CSeq, branch), never raw text, never header values such as
            ``Authorization``.
        response: the response we queued in reply (400, 513, 505 ...), or ``None`` when the
            message was a response, an ACK, or too broken to answer.
    """

    error: InvalidMessage
    excerpt: str
    response: Response | None = None


@dataclass(frozen=True)
class RequestRejected(Event):
    """A well-formed request was answered by the connection itself, without the user.

    This covers an in-dialog request for an unknown dialog (481, RFC 3261 §12.2.2), an
    out-of-order in-dialog request (500, §12.2.2) and a CANCEL that matched nothing (481,
    §9.2).

    Attributes:
        request: the request.
        response: the response sent.
    """

    request: Request
    response: Response


@dataclass(frozen=True)
class KeepaliveReceived(Event):
    """A bare CRLF keepalive arrived (RFC 5626 §3.5.1, §4.4.1).

    Attributes:
        ping: ``True`` for a double-CRLF "ping" (answered with a single CRLF "pong" when the
            connection's ``answer_pings`` is true), ``False`` for a single-CRLF "pong".
    """

    ping: bool

