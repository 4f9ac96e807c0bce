"""Exceptions raised by exotel-voice.

The whole tree::

    SipError                              base of everything this package raises on purpose
    ├── InvalidMessage                    a SIP message could not be parsed (.status_hint, e.g. 400)
    │   └── SecurityError                 a documented size limit was exceeded
    │       ├── LineTooLong
    │       ├── TooManyHeaders
    │       └── MessageTooLarge
    ├── InvalidSDP                        an SDP body could not be parsed
    ├── ProtocolError
    │   └── LocalProtocolError            we were asked to do something the protocol forbids
    ├── InvalidState                      a method was called in a state that does not allow it
    ├── TransactionError
    │   └── TransactionTimeout            no final response before Timer B/F fired
    ├── AuthenticationError               credentials were rejected, or a challenge cannot be met
    ├── ConfigurationError                a configuration value is missing or invalid (.field)
    ├── TransportError
    │   └── ConnectionClosed              the WebSocket closed (.code, .reason)
    ├── MediaError                        the media stack failed (wraps aiortc errors)
    │   └── AudioSourceError              an audio source cannot be opened (.source)
    ├── InvalidDTMF                       a DTMF digit outside 0-9, A-D, *, #
    └── RestError                         Exotel's REST API failed (.status, .code, .message)
        ├── InvalidRequest                400 (and other 4xx not listed below)
        ├── AuthenticationFailed          401, 403: wrong API key/token, or another account
        ├── PaymentRequired               402: not on your plan, or over its limits
        ├── NotFound                      404: no such call (or path)
        ├── RateLimited                   429 (.retry_after)
        ├── ServerError                   5xx
        ├── RestTimeout                   no answer in time (.status is None)
        └── RestConnectionError           the API host could not be reached (.status is None)

No exception message ever contains a password, a digest response or an API token.
"""

from __future__ import annotations

from typing import Any


__all__ = [
    "AudioSourceError",
    "AuthenticationError",
    "AuthenticationFailed",
    "ConfigurationError",
    "ConnectionClosed",
    "InvalidDTMF",
    "InvalidMessage",
    "InvalidRequest",
    "InvalidSDP",
    "InvalidState",
    "LineTooLong",
    "LocalProtocolError",
    "MediaError",
    "MessageTooLarge",
    "NotFound",
    "PaymentRequired",
    "ProtocolError",
    "RateLimited",
    "RestConnectionError",
    "RestError",
    "RestTimeout",
    "SecurityError",
    "ServerError",
    "SipError",
    "TooManyHeaders",
    "TransactionError",
    "TransactionTimeout",
    "TransportError",
]


class SipError(Exception):
    """Base class of every exception exotel-voice raises on purpose."""


class InvalidMessage(SipError):
    """Raised when bytes cannot be parsed as one SIP message.

    Attributes:
        status_hint: the SIP status a server should answer with (400 unless a
            more specific one applies, such as 513 Message Too Large).
    """

    def __init__(self, message: str, *, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class SecurityError(InvalidMessage):
    """Raised when a message exceeds one of the parser's documented size limits."""


class LineTooLong(SecurityError):
    """A start line or header line is longer than ``MAX_LINE_LENGTH``."""


class TooManyHeaders(SecurityError):
    """A message has more than ``MAX_NUM_HEADERS`` header fields."""


class MessageTooLarge(SecurityError):
    """A message is larger than ``MAX_MESSAGE_SIZE``."""

    def __init__(self, message: str, *, status_hint: int = 513) -> None:
        super().__init__(message, status_hint=status_hint)


class InvalidSDP(SipError):
    """Raised when an SDP body cannot be parsed."""


class ProtocolError(SipError):
    """A violation of the SIP protocol."""


class LocalProtocolError(ProtocolError):
    """We were asked to do something the protocol does not allow."""


class InvalidState(SipError, AssertionError):
    """A method was called in a state that does not allow it."""


class TransactionError(SipError):
    """A SIP transaction did not succeed."""


class TransactionTimeout(TransactionError):
    """No final response arrived before the transaction timer fired."""


class AuthenticationError(SipError):
    """Credentials were rejected, or a challenge cannot be answered.

    Attributes:
        status: the SIP status that ended the attempt (401, 403, 407), if any.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ConfigurationError(SipError, ValueError):
    """A configuration value is missing or invalid.

    Attributes:
        field: the name of the offending field, e.g. ``"sipdomain"``.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class TransportError(SipError):
    """The transport to the SIP server failed."""


class ConnectionClosed(TransportError):
    """The WebSocket closed.

    Attributes:
        code: the WebSocket close code, if known.
        reason: the close reason, if known.
    """

    def __init__(self, code: int | None = None, reason: str = "", *args: Any) -> None:
        super().__init__(f"connection closed (code={code}, reason={reason!r})", *args)
        self.code = code
        self.reason = reason


class MediaError(SipError):
    """The media stack (ICE, DTLS, codecs, devices) failed."""


class AudioSourceError(MediaError):
    """An audio source cannot be opened: a missing or refused device, an unreadable file.

    :meth:`Call.answer() <exotel_voice.client.Call.answer>` raises it with the call still
    ringing (answer again with another source, or reject it); the guide's facade reports it
    as ``media_permission_denied``.

    Attributes:
        source: a description of the source (its class and device or file).
    """

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"audio source {source} cannot be opened: {problem}")
        self.source = source


class InvalidDTMF(SipError, ValueError):
    """A DTMF digit outside ``0-9``, ``A-D``, ``*`` and ``#``."""


class RestError(SipError):
    """Exotel's REST API refused a request, failed, or could not be reached.

    The message says what failed (method, path, HTTP status and Exotel's own message); it
    never contains the API token.

    Attributes:
        status: the HTTP status (``None`` when no response came: timeout, unreachable).
        code: Exotel's error code from the ``RestException`` body, if it gave one.
        message: Exotel's message from the ``RestException`` body (or the HTTP reason).
    """

    def __init__(
        self, message: str, *, status: int | None = None, code: str | None = None,
        summary: str | None = None,
    ) -> None:
        super().__init__(summary or message)
        self.status = status
        self.code = code
        self.message = message


class InvalidRequest(RestError):
    """400 (or another 4xx without its own class): a missing or invalid parameter."""


class AuthenticationFailed(RestError):
    """401 or 403: the API key or token is wrong, or it does not open this account."""


class PaymentRequired(RestError):
    """402: the action is not on the account's plan, or the plan's limits are used up."""


class NotFound(RestError):
    """404: no such call (or an unknown path: check the account SID and subdomain)."""


class RateLimited(RestError):
    """429: too many requests (Exotel allows 200 voice API calls a minute).

    Attributes:
        retry_after: the seconds the server asked to wait (``Retry-After``), if it said.
    """

    def __init__(
        self, message: str, *, status: int | None = 429, code: str | None = None,
        summary: str | None = None, retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, summary=summary)
        self.retry_after = retry_after


class ServerError(RestError):
    """5xx: the API failed on its side (retried first when that is safe)."""


class RestTimeout(RestError, TimeoutError):
    """No response within the client's timeout (``status`` is ``None``)."""


class RestConnectionError(RestError):
    """The API host could not be reached (DNS, refused, TLS; ``status`` is ``None``)."""
