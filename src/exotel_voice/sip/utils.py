"""Identifiers and message builders for the SIP core.

* :func:`new_branch`, :func:`new_tag`, :func:`new_call_id` draw from :mod:`secrets`
  (RFC 3261 §8.1.1.7: the branch "MUST be unique across space and time"; §19.3: tags and
  Call-IDs "MUST be globally unique" and cryptographically random). Each takes an optional
  ``token`` function so tests can make them deterministic.
* :func:`make_request` builds a request outside any dialog (§8.1.1).
* :func:`make_response` builds a response to a request (§8.2.6).
* :func:`make_cancel` builds the CANCEL for a pending request (§9.1).
* :func:`make_ack_for_non2xx` builds the ACK a client INVITE transaction sends for a
  300-699 response (§17.1.1.3). The ACK for a 2xx is built by
  :meth:`~exotel_voice.sip.dialog.Dialog.create_ack` (§13.2.2.4).

Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from .headers import CSeq, Headers, NameAddr, Via, parse_name_addr, parse_params
from .message import Request, Response
from .uri import URI, parse_uri


__all__ = [
    "KNOWN_METHODS",
    "MAGIC_COOKIE",
    "HeaderItems",
    "LoggerLike",
    "TokenFactory",
    "add_tag",
    "make_ack_for_non2xx",
    "make_cancel",
    "make_request",
    "make_response",
    "new_branch",
    "new_call_id",
    "new_cseq",
    "new_tag",
]

#: RFC 3261 §8.1.1.7: every branch we generate "MUST always begin with the characters z9hG4bK".
MAGIC_COOKIE = "z9hG4bK"

#: Request methods we recognise (RFC 3261 and the SIP extensions registered with IANA). A
#: request with any other method is answered ``501 Not Implemented`` (RFC 3261 §21.5.2); a
#: recognised method we do not handle is answered ``405 Method Not Allowed`` with ``Allow``
#: (§21.4.6).
KNOWN_METHODS = frozenset({
    "INVITE", "ACK", "CANCEL", "BYE", "REGISTER", "OPTIONS", "INFO", "PRACK", "SUBSCRIBE",
    "NOTIFY", "UPDATE", "MESSAGE", "REFER", "PUBLISH",
})

#: ``token(nbytes) -> str`` giving ``2 * nbytes`` token characters, like :func:`secrets.token_hex`.
TokenFactory = Callable[[int], str]

#: A logger or a ``LoggerAdapter`` (to add a call-id or branch to every line).
LoggerLike = logging.Logger | logging.LoggerAdapter[Any]

#: Extra header fields accepted by the builders.
HeaderItems = Headers | Iterable[tuple[str, str]]


def new_branch(token: TokenFactory = secrets.token_hex) -> str:
    """Return a new Via branch: the RFC 3261 magic cookie plus 64 random bits (§8.1.1.7)."""
    return MAGIC_COOKIE + token(8)


def new_tag(token: TokenFactory = secrets.token_hex) -> str:
    """Return a new From/To tag with 48 random bits (§19.3: "at least 32 bits of randomness")."""
    return token(6)


def new_call_id(token: TokenFactory = secrets.token_hex) -> str:
    """Return a new Call-ID with 96 random bits (§8.1.1.4)."""
    return token(12)


def new_cseq() -> int:
    """Return a random initial CSeq number.

    RFC 3261 §8.1.1.5: the number "MUST be expressible as a 32-bit unsigned integer and MUST
    be less than 2**31". We stay far below so that a long call cannot overflow.
    """
    return secrets.randbelow(2**20) + 1


def add_tag(value: str, tag: str) -> str:
    """Append ``;tag=...`` to a raw From/To value that has none (works even if it is unparsable)."""
    return f"{value};tag={tag}"


def _to_name_addr(value: NameAddr | URI | str) -> NameAddr:
    if isinstance(value, NameAddr):
        return value
    if isinstance(value, str):
        return parse_name_addr(value)
    return NameAddr(value)


def _extend(headers: Headers, extra: HeaderItems | None) -> None:
    if extra is None:
        return
    for name, value in extra:
        headers.add(name, value)


def make_request(
    method: str,
    uri: URI | str,
    *,
    from_: NameAddr | URI | str,
    to: NameAddr | URI | str,
    call_id: str,
    cseq: int,
    contact: NameAddr | URI | str | None = None,
    via: Via | str | None = None,
    route: Iterable[NameAddr | str] = (),
    max_forwards: int = 70,
    headers: HeaderItems | None = None,
    body: bytes = b"",
    content_type: str | None = None,
) -> Request:
    """Build a request outside a dialog (RFC 3261 §8.1.1).

    §8.1.1: "A valid SIP request formulated by a UAC MUST, at a minimum, contain the following
    header fields: To, From, CSeq, Call-ID, Max-Forwards, and Via". The Via may be left out:
    :meth:`SipConnection.send_request <exotel_voice.sip.connection.SipConnection.send_request>`
    adds one with a fresh branch.

    Args:
        method: the method, e.g. ``"REGISTER"``.
        uri: the Request-URI.
        from_: the From value; it should carry a tag (§8.1.1.3 "MUST contain a new tag").
        to: the To value, without a tag for an out-of-dialog request.
        call_id: the Call-ID.
        cseq: the CSeq number; the method is taken from ``method``.
        contact: the Contact, required for INVITE and REGISTER bindings (§8.1.1.8).
        via: an explicit top Via, if the caller manages branches itself.
        route: a pre-existing route set (§8.1.2), in order.
        max_forwards: §8.1.1.6 "SHOULD be 70".
        headers: further header fields, appended in order.
        body: the body.
        content_type: the Content-Type of the body.

    Returns:
        The request.
    """
    h = Headers()
    if via is not None:
        h.add("Via", str(via))
    h.add("Max-Forwards", str(max_forwards))
    for r in route:
        h.add("Route", str(r))
    h.add("From", str(_to_name_addr(from_)))
    h.add("To", str(_to_name_addr(to)))
    h.add("Call-ID", call_id)
    h.add("CSeq", str(CSeq(cseq, method)))
    if contact is not None:
        h.add("Contact", str(_to_name_addr(contact)))
    _extend(h, headers)
    if content_type is not None:
        h.set("Content-Type", content_type)
    return Request(method, uri if not isinstance(uri, str) else parse_uri(uri), h, body)


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: HeaderItems | None = None,
    body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """Build a response to ``request`` (RFC 3261 §8.2.6).

    Copies header values verbatim, so it works on a request whose headers could not be parsed:

    * §8.2.6.2: "The From field of the response MUST equal the From header field of the
      request. The Call-ID header field of the response MUST equal the Call-ID header field
      of the request. The CSeq header field of the response MUST equal the CSeq field of the
      request. The Via header field values in the response MUST equal the Via header field
      values in the request and MUST maintain the same ordering."
    * "If a request contained a To tag in the request, the To header field in the response
      MUST equal that of the request. However, if the To header field in the request did not
      contain a tag, [...] the UAS MUST add a tag to the To header field in the response (with
      the exception of the 100 (Trying) response, in which a tag MAY be present)."
      ``to_tag`` is that tag; a new one is drawn when needed and not given.
    * §12.1.1: a response that establishes a dialog (101-299) "MUST copy all Record-Route
      header field values from the request into the response".

    Args:
        request: the request being answered.
        status: the status code.
        reason: the reason phrase; the RFC default when ``None``.
        to_tag: the To tag to add when the request's To has none.
        headers: further header fields, appended in order.
        body: the body.
        content_type: the Content-Type of the body.

    Returns:
        The response.
    """
    h = Headers()
    for name, value in request.headers:
        if name == "Via":
            h.add(name, value)
    # §8.2.6.1: "[Timestamp] MUST be copied into the 100 (Trying)" - we copy it always, harmless.
    if 101 <= status < 300:
        for name, value in request.headers:
            if name == "Record-Route":
                h.add(name, value)
    h.add("From", _raw(request, "From"))
    to = _raw(request, "To")
    if status != 100 and not _has_tag(to):
        to = add_tag(to, to_tag if to_tag is not None else new_tag())
    h.add("To", to)
    h.add("Call-ID", _raw(request, "Call-ID"))
    h.add("CSeq", _raw(request, "CSeq"))
    if status == 100 and "Timestamp" in request.headers:
        h.add("Timestamp", request.headers["Timestamp"])
    _extend(h, headers)
    if content_type is not None:
        h.set("Content-Type", content_type)
    return Response(status, reason, h, body)


def _raw(message: Request | Response, name: str) -> str:
    value = message.headers.get(name)
    return value if value is not None else ""


def _has_tag(value: str) -> bool:
    """Whether a raw From/To value carries a tag, without failing on bad input."""
    try:
        return parse_name_addr(value).tag is not None
    except Exception:  # noqa: BLE001 - a malformed To: look for the parameter textually
        tail = value.rsplit(">", 1)[-1]
        try:
            return "tag" in parse_params(tail)
        except Exception:  # noqa: BLE001
            return ";tag=" in value.lower()


def make_cancel(request: Request) -> Request:
    """Build a CANCEL for a pending request (RFC 3261 §9.1).

    §9.1: "The Request-URI, Call-ID, To, the numeric part of CSeq, and From header fields in
    the CANCEL request MUST be identical to those in the request being cancelled, including
    tags. [...] A CANCEL constructed by a client MUST have only a single Via header field
    value matching the top Via value in the request being cancelled." and "If the request
    being cancelled contains a Route header field, the CANCEL request MUST include that Route
    header field's values."

    Args:
        request: the request (an INVITE) being cancelled, as it was sent (with its Via).

    Returns:
        The CANCEL.
    """
    return _copy_for(request, "CANCEL", to=_raw(request, "To"))


def make_ack_for_non2xx(request: Request, response: Response) -> Request:
    """Build the ACK for a 300-699 response to an INVITE (RFC 3261 §17.1.1.3).

    "The ACK request constructed by the client transaction MUST contain values for the
    Call-ID, From, and Request-URI that are equal to the values of those header fields in the
    request passed to the transport by the client transaction [...]. The To header field in
    the ACK MUST equal the To header field in the response being acknowledged [...]. The ACK
    MUST contain a single Via header field, and this MUST be equal to the top Via header field
    of the original request. The CSeq header field in the ACK MUST contain the same value for
    the sequence number as was present in the original request, but the method parameter MUST
    be equal to 'ACK'." and "If the INVITE request whose response is being acknowledged had
    Route header fields, those header fields MUST appear in the ACK."

    Args:
        request: the INVITE as sent.
        response: the 300-699 response.

    Returns:
        The ACK.
    """
    return _copy_for(request, "ACK", to=_raw(response, "To"))


def _copy_for(request: Request, method: str, *, to: str) -> Request:
    h = Headers()
    vias = request.headers.get_all("Via")
    if vias:
        h.add("Via", vias[0])
    h.add("Max-Forwards", "70")
    for value in request.headers.get_all("Route"):
        h.add("Route", value)
    h.add("From", _raw(request, "From"))
    h.add("To", to)
    h.add("Call-ID", _raw(request, "Call-ID"))
    h.add("CSeq", str(CSeq(request.cseq.seq, method)))
    return Request(method, request.uri, h)
