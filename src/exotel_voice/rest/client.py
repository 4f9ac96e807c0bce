"""The REST clients: :class:`ExotelClient` (blocking) and :class:`AsyncExotelClient` (asyncio).

Both have the same methods over one implementation (:mod:`._base`): they only send the
request it builds, and sleep between attempts it asks for.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Any

import httpx

from ._base import DEFAULT_SUBDOMAIN, BaseExotelClient, Format, RestRequest
from .models import CallResource, parse_status_callback


__all__ = ["AsyncExotelClient", "ExotelClient"]


class ExotelClient(BaseExotelClient):
    """Exotel's v1 call API, blocking. Use as ``with ExotelClient(...) as client:``.

    Args:
        account_sid: the account SID (the ``<sid>`` of ``/v1/Accounts/<sid>``).
        api_key: the API key (HTTP Basic user name).
        api_token: the API token (HTTP Basic password). Never logged, never in a repr or
            an error message.
        subdomain: the account's API host, as the dashboard's API settings show it:
            ``api.exotel.com`` (Singapore, the default) or ``api.in.exotel.com`` (Mumbai);
            the region names ``"singapore"`` and ``"mumbai"`` work too.
        base_url: overrides ``subdomain`` with a whole URL (``https://host:port``), e.g. the
            sandbox's ``http://127.0.0.1:<port>`` (its ``rest_url`` is accepted as well).
        timeout: seconds for each attempt (connect, send, read).
        retries: further attempts after a retryable failure (see :mod:`._base`).
        backoff: the first wait between attempts, doubled each time.
        max_backoff: the longest wait computed by backoff.
        max_retry_after: the longest ``Retry-After`` honoured.
        format: ``"json"`` (``.json`` paths, the default) or ``"xml"`` (Exotel's XML).
        transport: an httpx transport (tests: ``respx``, ``httpx.MockTransport``).
    """

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
        format: Format = "json",  # noqa: A002
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            account_sid, api_key, api_token, subdomain=subdomain, base_url=base_url,
            timeout=timeout, retries=retries, backoff=backoff, max_backoff=max_backoff,
            max_retry_after=max_retry_after, format=format,
        )
        self._http = httpx.Client(
            base_url=self.base_url, auth=self._auth, timeout=timeout, transport=transport,
            headers=self.HEADERS,
        )

    def connect(
        self,
        *,
        from_: str,
        to: str,
        caller_id: str,
        call_type: str | None = None,
        time_limit: int | None = None,
        time_out: int | None = None,
        status_callback: str | None = None,
        status_callback_events: list[str] | tuple[str, ...] | None = None,
        custom_field: str | None = None,
        record: bool | None = None,
        format: Format | None = None,  # noqa: A002
        **extra: Any,
    ) -> CallResource:
        """Start a click-to-call (``POST Calls/connect``): ring ``from_``, then ``to``.

        Args:
            from_: called first: a number, or the web phone's SIP user (its ``userName``).
            to: connected once ``from_`` answers.
            caller_id: your ExoPhone.
            call_type: ``"trans"`` (transactional), where your account needs it.
            time_limit: the call's longest duration, seconds.
            time_out: seconds each leg rings.
            status_callback: a URL Exotel POSTs to when the call ends
                (parse it with :meth:`parse_status_callback`).
            status_callback_events: ``["terminal"]`` (and/or ``"answered"``) for the
                extended callback (``CustomField``, times, legs ...).
            custom_field: your value (an order id ...), echoed in the status callback.
            record: record the conversation.
            format: this request's format, overriding the client's.
            extra: other Exotel parameters, by Exotel's names (``WaitUrl="..."``).

        Returns:
            The new call; ``.sid`` is what the web phone sees as ``X-Exotel-Callsid``.

        Raises:
            RestError: one of its subclasses (see :mod:`exotel_voice.exceptions`).
        """
        request = self._connect_request(
            from_, to, caller_id, call_type, time_limit, time_out, status_callback,
            status_callback_events, custom_field, record, format, extra,
        )
        return self._call_from(request, self._send(request))

    def get_call(self, sid: str, *, format: Format | None = None) -> CallResource:  # noqa: A002
        """The call's details now (``GET Calls/<sid>``).

        Raises:
            NotFound: no such call in this account.
        """
        request = self._get_call_request(sid, format)
        return self._call_from(request, self._send(request))

    parse_status_callback = staticmethod(parse_status_callback)

    def _send(self, request: RestRequest) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._http.request(request.method, request.path, data=request.data)
            except httpx.TransportError as exc:
                delay = self._retry_delay(request, attempt, exc=exc)
                if delay is None:
                    raise self._transport_error(request, exc) from None
                self._log_retry(request, attempt, delay, type(exc).__name__)
            else:
                if response.is_success:
                    return response
                delay = self._retry_delay(request, attempt, response=response)
                if delay is None:
                    raise self._error(request, response)
                self._log_retry(request, attempt, delay, str(response.status_code))
            time.sleep(delay)
            attempt += 1

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> ExotelClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncExotelClient(BaseExotelClient):
    """Exotel's v1 call API for asyncio: ``async with AsyncExotelClient(...) as client:``.

    The arguments are :class:`ExotelClient`'s (``transport``: an async httpx transport).
    """

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
        format: Format = "json",  # noqa: A002
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            account_sid, api_key, api_token, subdomain=subdomain, base_url=base_url,
            timeout=timeout, retries=retries, backoff=backoff, max_backoff=max_backoff,
            max_retry_after=max_retry_after, format=format,
        )
        self._http = httpx.AsyncClient(
            base_url=self.base_url, auth=self._auth, timeout=timeout, transport=transport,
            headers=self.HEADERS,
        )

    async def connect(
        self,
        *,
        from_: str,
        to: str,
        caller_id: str,
        call_type: str | None = None,
        time_limit: int | None = None,
        time_out: int | None = None,
        status_callback: str | None = None,
        status_callback_events: list[str] | tuple[str, ...] | None = None,
        custom_field: str | None = None,
        record: bool | None = None,
        format: Format | None = None,  # noqa: A002
        **extra: Any,
    ) -> CallResource:
        """Start a click-to-call; see :meth:`ExotelClient.connect`."""
        request = self._connect_request(
            from_, to, caller_id, call_type, time_limit, time_out, status_callback,
            status_callback_events, custom_field, record, format, extra,
        )
        return self._call_from(request, await self._send(request))

    async def get_call(self, sid: str, *, format: Format | None = None) -> CallResource:  # noqa: A002
        """The call's details now; see :meth:`ExotelClient.get_call`."""
        request = self._get_call_request(sid, format)
        return self._call_from(request, await self._send(request))

    parse_status_callback = staticmethod(parse_status_callback)

    async def _send(self, request: RestRequest) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    request.method, request.path, data=request.data
                )
            except httpx.TransportError as exc:
                delay = self._retry_delay(request, attempt, exc=exc)
                if delay is None:
                    raise self._transport_error(request, exc) from None
                self._log_retry(request, attempt, delay, type(exc).__name__)
            else:
                if response.is_success:
                    return response
                delay = self._retry_delay(request, attempt, response=response)
                if delay is None:
                    raise self._error(request, response)
                self._log_retry(request, attempt, delay, str(response.status_code))
            await asyncio.sleep(delay)
            attempt += 1

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncExotelClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


