"""Exotel's REST API (v1 calls) on httpx: click-to-call, call details, status callbacks.

::

    from exotel_voice.rest import ExotelClient

    with ExotelClient(account_sid, api_key, api_token, subdomain="api.in.exotel.com") as api:
        call = api.connect(from_="agent", to="09876543210", caller_id="08047112233")
        print(call.sid, call.status)             # the web phone's X-Exotel-Callsid

:class:`AsyncExotelClient` has the same methods for asyncio, and
:func:`~.correlate.click_to_call` starts a click-to-call and returns the web phone's
:class:`~exotel_voice.client.Call` it rang. Errors are :class:`RestError` subclasses
(defined in :mod:`exotel_voice.exceptions`); docs/rest.md shows it all.
"""

from __future__ import annotations

from ..exceptions import (
    AuthenticationFailed,
    InvalidRequest,
    NotFound,
    PaymentRequired,
    RateLimited,
    RestConnectionError,
    RestError,
    RestTimeout,
    ServerError,
)
from ._base import DEFAULT_SUBDOMAIN, REGIONS
from .client import AsyncExotelClient, ExotelClient
from .correlate import click_to_call
from .models import CallLeg, CallResource, CallStatus, StatusCallback, parse_status_callback


__all__ = [
    "DEFAULT_SUBDOMAIN",
    "REGIONS",
    "AsyncExotelClient",
    "AuthenticationFailed",
    "CallLeg",
    "CallResource",
    "CallStatus",
    "ExotelClient",
    "InvalidRequest",
    "NotFound",
    "PaymentRequired",
    "RateLimited",
    "RestConnectionError",
    "RestError",
    "RestTimeout",
    "ServerError",
    "StatusCallback",
    "click_to_call",
    "parse_status_callback",
]
