"""What the sync and async REST clients share: requests, answers, errors, the retry rule.

As httpx shares one ``BaseClient`` between ``Client`` and ``AsyncClient``, everything here
is I/O-free: :class:`BaseExotelClient` builds each request (:class:`RestRequest`), turns a
response into a model or a typed error, and decides whether and when to try again. The
two clients in :mod:`.client` only send and sleep.

Retries (``retries`` more attempts, waits ``backoff * 2**n`` capped at ``max_backoff``, or
the server's ``Retry-After`` capped at ``max_retry_after``):

* ``GET`` (idempotent): on 429, 500, 502, 503, 504, and on a timeout or lost connection;
* ``POST Calls/connect``: only where Exotel cannot have created the call: 429 and 503
  (refused before any work) and a connection that could not be opened. Never on another
  5xx or a timeout after the request went out: the call may exist, and a second POST would
  place a second call (the error says so; check with ``get_call`` or the status callback).
"""

from __future__ import annotations

import datetime
import email.utils
import json
import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from ..exceptions import (
    AuthenticationFailed,
    ConfigurationError,
    InvalidRequest,
    NotFound,
    PaymentRequired,
    RateLimited,
    RestConnectionError,
    RestError,
    RestTimeout,
    ServerError,
)
from .models import CallResource


__all__ = ["DEFAULT_SUBDOMAIN", "REGIONS", "BaseExotelClient", "RestRequest"]

logger = logging.getLogger("exotel_voice.rest")

#: Exotel's documented v1 API hosts by region (developer.exotel.com, "Authentication"):
#: an account lives in one cluster, shown as the "Subdomain" on the dashboard's API page.
REGIONS = {"singapore": "api.exotel.com", "mumbai": "api.in.exotel.com"}
DEFAULT_SUBDOMAIN = REGIONS["singapore"]

Format = Literal["json", "xml"]

_RETRY_ANY = frozenset({429, 500, 502, 503, 504})
_RETRY_CONNECT = frozenset({429, 503})


@dataclass(frozen=True)
class RestRequest:
    """One request to send: ``idempotent`` decides which failures are retried."""

    method: str
    path: str
    fmt: Format
    idempotent: bool
    data: dict[str, str] | None = field(default=None)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


class BaseExotelClient:
    """The shared part of :class:`~.client.ExotelClient` and
    :class:`~.client.AsyncExotelClient` (see their docstrings for the arguments)."""

    #: Headers on every request: both formats Exotel answers in.
    HEADERS = {"Accept": "application/json, application/xml"}

    def __init__(
        self,
        account_sid: str,
        api_key: str,
        api_token: str,
        *,
        subdomain: str = DEFAULT_SUBDOMAIN,
        base_url: str | None = None,
        timeout: float = 15.0,
        retries: int = 2,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_retry_after: float = 30.0,
        format: Format = "json",  # noqa: A002 - Exotel's word
    ) -> None:
        for name, value in (("account_sid", account_sid), ("api_key", api_key),
                            ("api_token", api_token)):
            if not value or not isinstance(value, str):
                raise ConfigurationError(name, "is required")
        if format not in ("json", "xml"):
            raise ConfigurationError("format", "must be 'json' or 'xml'")
        if retries < 0:
            raise ConfigurationError("retries", "must be 0 or more")
        self.account_sid = account_sid
        self.api_key = api_key
        self.format: Format = format
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.base_url = _base_url(subdomain, base_url)
        self._auth = httpx.BasicAuth(api_key, api_token)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} account={self.account_sid} {self.base_url}>"

    # -- requests ------------------------------------------------------------------------
    def _path(self, resource: str, fmt: Format) -> str:
        return f"/v1/Accounts/{self.account_sid}/Calls/{resource}" + (
            ".json" if fmt == "json" else ""
        )

    def _connect_request(
        self,
        from_: str,
        to: str,
        caller_id: str,
        call_type: str | None,
        time_limit: int | None,
        time_out: int | None,
        status_callback: str | None,
        status_callback_events: list[str] | tuple[str, ...] | None,
        custom_field: str | None,
        record: bool | None,
        fmt: Format | None,
        extra: dict[str, Any],
    ) -> RestRequest:
        missing = [name for name, value in (("from_", from_), ("to", to),
                                            ("caller_id", caller_id)) if not value]
        if missing:
            raise ConfigurationError(", ".join(missing), "is required by Calls/connect")
        data = {"From": from_, "To": to, "CallerId": caller_id}
        optional: dict[str, Any] = {
            "CallType": call_type,
            "TimeLimit": time_limit,
            "TimeOut": time_out,
            "StatusCallback": status_callback,
            "CustomField": custom_field,
            "Record": None if record is None else ("true" if record else "false"),
        }
        for i, event in enumerate(status_callback_events or ()):
            optional[f"StatusCallbackEvents[{i}]"] = event
        optional.update(extra)
        data.update({k: str(v) for k, v in optional.items() if v is not None})
        fmt = fmt or self.format
        return RestRequest("POST", self._path("connect", fmt), fmt, idempotent=False, data=data)

    def _get_call_request(self, sid: str, fmt: Format | None) -> RestRequest:
        if not sid or "/" in sid:
            raise ConfigurationError("sid", "must be a call Sid")
        fmt = fmt or self.format
        return RestRequest("GET", self._path(sid, fmt), fmt, idempotent=True)

    # -- answers -------------------------------------------------------------------------
    def _call_from(self, request: RestRequest, response: httpx.Response) -> CallResource:
        try:
            if request.fmt == "json":
                return CallResource.from_json(response.json())
            return CallResource.from_xml(response.content)
        except (ValueError, ET.ParseError) as exc:
            raise RestError(
                f"unexpected answer body: {exc}", status=response.status_code,
                summary=f"{request}: {response.status_code} with a body that is not a Call",
            ) from None

    def _error(self, request: RestRequest, response: httpx.Response) -> RestError:
        status = response.status_code
        message, code = _rest_exception(response)
        message = message or response.reason_phrase or "error"
        summary = f"{request}: {status} {message}" + (f" (code {code})" if code else "")
        if status == 429:
            return RateLimited(message, status=status, code=code, summary=summary,
                               retry_after=_retry_after(response))
        cls: type[RestError]
        if status in (401, 403):
            cls = AuthenticationFailed
        elif status == 402:
            cls = PaymentRequired
        elif status == 404:
            cls = NotFound
        elif status >= 500:
            cls = ServerError
        elif 400 <= status < 500:
            cls = InvalidRequest
        else:
            cls = RestError
        if status >= 500 and not request.idempotent:
            summary += (" - not retried: the call may have been created; check with"
                        " get_call() or the status callback before trying again")
        return cls(message, status=status, code=code, summary=summary)

    def _transport_error(self, request: RestRequest, exc: httpx.TransportError) -> RestError:
        what = type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            text = f"{request}: no answer within {self.timeout} s ({what})"
            if not request.idempotent and not isinstance(exc, httpx.ConnectTimeout):
                text += "; the call may have been created: check before trying again"
            return RestTimeout("timed out", summary=text)
        return RestConnectionError(
            "could not reach the API",
            summary=f"{request}: could not reach {self.base_url} ({what}: {exc})",
        )

    # -- the retry rule ------------------------------------------------------------------
    def _retry_delay(
        self,
        request: RestRequest,
        attempt: int,
        response: httpx.Response | None = None,
        exc: httpx.TransportError | None = None,
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None``: do not retry."""
        if attempt >= self.retries:
            return None
        if exc is not None:
            opened = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            if opened and not request.idempotent:
                return None
        elif response is not None:
            allowed = _RETRY_ANY if request.idempotent else _RETRY_CONNECT
            if response.status_code not in allowed:
                return None
            after = _retry_after(response)
            if after is not None:
                return min(after, self.max_retry_after)
        return float(min(self.backoff * 2.0**attempt, self.max_backoff))

    def _log_retry(self, request: RestRequest, attempt: int, delay: float, why: str) -> None:
        logger.info("%s: %s; retrying in %.2f s (attempt %d of %d)", request, why, delay,
                    attempt + 2, self.retries + 1)


def _base_url(subdomain: str, base_url: str | None) -> str:
    if base_url is None:
        host = REGIONS.get(subdomain.lower(), subdomain)
        if not host or "/" in host or "@" in host:
            raise ConfigurationError(
                "subdomain", f"must be a host name or one of {', '.join(sorted(REGIONS))}"
            )
        return f"https://{host}"
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL:
        raise ConfigurationError("base_url", "is not a valid URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError("base_url", "must be an http:// or https:// URL")
    if url.userinfo:
        raise ConfigurationError(
            "base_url", "must not carry credentials: pass api_key and api_token"
        )
    # An account's REST base (e.g. Sandbox.rest_url) stands for its host.
    path = re.sub(r"/v1/Accounts/[^/]+$", "", url.path.rstrip("/"))
    return str(url.copy_with(path=path or "/", query=None, fragment=None)).rstrip("/")


def _rest_exception(response: httpx.Response) -> tuple[str | None, str | None]:
    """Exotel's ``RestException`` message and code, from a JSON or XML body."""
    body = response.content
    if not body:
        return None, None
    fields: dict[str, Any] = {}
    try:
        if body.lstrip().startswith(b"<"):
            root = ET.fromstring(body)
            node = root if root.tag == "RestException" else root.find("RestException")
            if node is not None:
                fields = {child.tag: child.text for child in node}
        else:
            data = json.loads(body)
            if isinstance(data, dict):
                inner = data.get("RestException", data)
                fields = inner if isinstance(inner, dict) else {}
    except (ValueError, ET.ParseError):
        return None, None
    message = fields.get("Message") or fields.get("message")
    code = fields.get("Code") or fields.get("code")
    return (str(message) if message else None), (str(code) if code else None)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = datetime.datetime.now(when.tzinfo or datetime.timezone.utc)
    return max(0.0, (when - now).total_seconds())
