"""Typed events of the asyncio API.

Every event a :class:`~exotel_voice.client.phone.Phone` publishes is one of these frozen
dataclasses. Each also carries the string the guide's callbacks use (``guide_state`` /
``guide_event``), so the ``ExotelWebClient`` facade is a thin mapping of the same events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal


if TYPE_CHECKING:
    from .call import Call

__all__ = [
    "CallEvent",
    "ClientStatus",
    "DtmfReceived",
    "PhoneEvent",
    "RegistrationStateChanged",
    "TransportStateChanged",
]

#: The statuses of the guide's ``checkClientStatus`` (section 5.13).
ClientStatus = Literal[
    "media_permission_denied",
    "not_initialized",
    "websocket_connection_failed",
    "unregistered",
    "terminated",
    "initial",
    "registered",
    "unknown",
    "disconnected",
    "connecting",
]


@dataclass(frozen=True)
class PhoneEvent:
    """Base class of events published by a phone.

    Attributes:
        phone: the phone's name (the guide's ``userName``).
    """

    phone: str


@dataclass(frozen=True)
class RegistrationStateChanged(PhoneEvent):
    """The registration changed state.

    Attributes:
        state: the guide's state string: ``sent_request``, ``registered``,
            ``unregistered`` or ``terminated``.
        status: the SIP status behind it (``None`` when no response was involved, e.g. a
            timeout or a lost connection).
        reason: the reason phrase or a description.
        expires: the granted expiry for ``registered``.
        retry_in: for ``terminated``: seconds until an automatic retry, or ``None``.
    """

    state: str
    status: int | None = None
    reason: str = ""
    expires: int | None = None
    retry_in: float | None = None


@dataclass(frozen=True)
class TransportStateChanged(PhoneEvent):
    """The WebSocket connected or was lost.

    Attributes:
        connected: whether it is open now.
        error: what went wrong, for a loss.
        retry_in: seconds until the next connection attempt, or ``None``.
    """

    connected: bool
    error: str = ""
    retry_in: float | None = None


@dataclass(frozen=True)
class CallEvent(PhoneEvent):
    """Something happened to a call.

    Attributes:
        call: the call.
        event: the guide's event string (``incoming``, ``ringing``, ``connected``,
            ``callEnded``, ``terminated``) or one of ours (``progress``, ``hold``,
            ``unhold``, ``remote_hold``, ``remote_unhold``, ``muted``, ``unmuted``,
            ``dtmf``, ``failed``).
        status: the SIP status involved, if any.
        reason: a reason phrase or description.
    """

    call: Call = field(repr=False)
    event: str
    status: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class DtmfReceived(PhoneEvent):
    """A DTMF digit arrived (SIP INFO or RFC 4733).

    Attributes:
        call: the call.
        digit: the digit.
        method: ``"info"`` or ``"rfc4733"``.
    """

    call: Call = field(repr=False)
    digit: str
    method: str
