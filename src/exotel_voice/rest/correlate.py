"""Click-to-call with correlation: start ``Calls/connect`` and get the web phone's call.

Exotel rings ``From`` first; when ``From`` is a web phone's SIP user, its INVITE carries
the new call's Sid in ``X-Exotel-Callsid`` (guide section 6). :func:`click_to_call` starts
the REST call with ``From`` set to the phone's user and returns the phone's incoming
:class:`~exotel_voice.client.Call` whose :attr:`~exotel_voice.client.Call.call_sid` is the
REST Sid, ringing, for the application to answer.

The phone stays free of REST: this module takes a :class:`~exotel_voice.client.Phone` and
an :class:`~.client.AsyncExotelClient`; ``exotel_voice.client`` does not import httpx.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..exceptions import RestTimeout


if TYPE_CHECKING:
    from ..client import Call, Phone
    from .client import AsyncExotelClient

__all__ = ["click_to_call"]


async def click_to_call(
    phone: Phone,
    rest: AsyncExotelClient,
    to: str,
    *,
    caller_id: str,
    timeout: float = 30.0,
    **options: Any,
) -> Call:
    """Start a click-to-call from ``phone`` to ``to`` and return the phone's ringing call.

    The matching call is taken from the phone's incoming calls (``incoming_calls()`` and
    ``next_incoming_call()`` will not return it); other calls arriving meanwhile stay
    there for the application. Do not run a competing ``incoming_calls()`` loop while this
    waits: it could take the call first.

    Args:
        phone: a registered phone; its ``account.user_name`` is the REST ``From``.
        rest: the REST client.
        to: the number (or user) Exotel connects once the phone answers.
        caller_id: your ExoPhone.
        timeout: seconds for the whole thing (the REST request and the ring arriving).
        options: more :meth:`~.client.AsyncExotelClient.connect` arguments
            (``time_out``, ``custom_field``, ``status_callback`` ...).

    Returns:
        The incoming call, still ringing: ``await call.answer()``.

    Raises:
        RestError: the REST request failed (a subclass says how).
        TimeoutError: the call did not reach the phone in time (a :class:`RestTimeout`
            when the REST request itself took too long). The REST call may still be
            ringing the phone; its Sid is in the message.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        async with asyncio.timeout_at(deadline):
            resource = await rest.connect(
                from_=phone.account.user_name, to=to, caller_id=caller_id, **options
            )
    except RestTimeout:
        raise
    except TimeoutError:
        raise RestTimeout(
            "timed out", summary=f"POST Calls/connect: no answer within {timeout} s"
        ) from None
    sid = resource.sid
    try:
        return await phone.next_incoming_call(
            timeout=max(0.0, deadline - loop.time()), match=lambda call: call.call_sid == sid
        )
    except TimeoutError:
        raise TimeoutError(
            f"click-to-call {sid} ({resource.status}): no incoming call with that "
            f"X-Exotel-Callsid reached {phone.account.user_name} within {timeout} s"
        ) from None
