"""The REST clients against the sandbox's REST emulation (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import asyncio

import pytest

from exotel_voice import Phone
from exotel_voice.rest import (
    AsyncExotelClient,
    AuthenticationFailed,
    CallStatus,
    ExotelClient,
    InvalidRequest,
    NotFound,
    click_to_call,
)
from exotel_voice.sandbox import Sandbox
from exotel_voice.sandbox.threaded import SandboxThread

from .conftest import KEY, LOOPBACK_MEDIA, TOKEN, CallbackSink, config


def base(sandbox: Sandbox) -> str:
    return f"http://127.0.0.1:{sandbox.ports['http']}"


async def test_async_connect_get_call_and_the_status_callback(
    sandbox: Sandbox, callbacks: CallbackSink
) -> None:
    # agent is not registered: the call fails at once, and the callback says so.
    async with AsyncExotelClient("acme", KEY, TOKEN, base_url=base(sandbox)) as api:
        call = await api.connect(
            from_="agent", to="echo", caller_id="08047112233", time_out=5,
            custom_field="order-42", status_callback=callbacks.url,
            status_callback_events=["terminal"],
        )
        assert call.sid and call.direction == "outbound-api" and call.from_ == "agent"
        assert call.status in (CallStatus.QUEUED, CallStatus.RINGING, CallStatus.FAILED)
        form, body, content_type = await asyncio.wait_for(callbacks.received.get(), 10)
        assert content_type == "application/x-www-form-urlencoded"
        status = api.parse_status_callback(body, content_type)
        assert status == api.parse_status_callback(form)
        assert (status.call_sid, status.status, status.event_type, status.custom_field) == (
            call.sid, CallStatus.FAILED, "terminal", "order-42")
        assert status.to == "echo" and status.direction == "outbound-api"
        assert status.date_updated is not None
        details = await api.get_call(call.sid)
        assert details.sid == call.sid and details.status == "failed"
        assert details.end_time is not None
        xml = await api.get_call(call.sid, format="xml")
        assert xml.sid == details.sid and xml.end_time == details.end_time
        assert xml.uri == f"/v1/Accounts/acme/Calls/{call.sid}"  # XML: no .json suffix
        with pytest.raises(NotFound):
            await api.get_call("no-such-call")


async def test_without_terminal_event_the_callback_has_the_four_default_fields(
    sandbox: Sandbox, callbacks: CallbackSink
) -> None:
    async with AsyncExotelClient("acme", KEY, TOKEN, base_url=sandbox.rest_url) as api:
        call = await api.connect(from_="agent", to="echo", caller_id="0804",
                                 custom_field="x", status_callback=callbacks.url)
        form, _, _ = await asyncio.wait_for(callbacks.received.get(), 10)
    assert set(form) == {"CallSid", "Status", "RecordingUrl", "DateUpdated"}
    assert form["CallSid"] == call.sid


def test_sync_client_against_the_threaded_sandbox() -> None:
    with SandboxThread(config()) as sb:
        url = sb.rest_url
        with ExotelClient("acme", KEY, TOKEN, base_url=url, format="xml") as api:
            call = api.connect(from_="agent", to="echo", caller_id="0804")
            assert api.get_call(call.sid).sid == call.sid
            with pytest.raises(InvalidRequest, match="neither a sandbox user"):
                api.connect(from_="agent", to="nobody", caller_id="0804")
        with ExotelClient("acme", KEY, "wrong", base_url=url) as api:
            with pytest.raises(AuthenticationFailed) as info:
                api.get_call(call.sid)
            assert info.value.status == 401
        with ExotelClient("other", KEY, TOKEN, base_url=url) as api:
            with pytest.raises(AuthenticationFailed) as info:
                api.get_call(call.sid)
            assert info.value.status == 403


@LOOPBACK_MEDIA
async def test_click_to_call_returns_the_phone_call_with_the_rest_sid(
    sandbox: Sandbox, phone: Phone, callbacks: CallbackSink
) -> None:
    decoy = sandbox.connect("agent", "echo", "0804")  # another call, another Sid
    async with AsyncExotelClient("acme", KEY, TOKEN, base_url=base(sandbox)) as api:
        call = await click_to_call(phone, api, "echo", caller_id="08047112233",
                                   timeout=10, status_callback=callbacks.url)
        assert call.call_sid != decoy.sid
        details = await api.get_call(call.call_sid or "")
        assert details.status == "ringing"
        # The decoy was left for the application, not swallowed.
        other = await phone.next_incoming_call(timeout=5)
        assert other.call_sid == decoy.sid
        await other.reject()
        await call.answer()
        await call.wait_connected(timeout=10)
        for _ in range(50):  # the sandbox's side follows the phone's answer within moments
            if (await api.get_call(call.call_sid or "")).status == "in-progress":
                break
            await asyncio.sleep(0.1)
        assert (await api.get_call(call.call_sid or "")).status == "in-progress"
        await call.hangup()
        form, _, _ = await asyncio.wait_for(callbacks.received.get(), 10)
        assert (form["CallSid"], form["Status"]) == (call.call_sid, "completed")


@LOOPBACK_MEDIA
async def test_click_to_call_times_out_with_the_sid_when_no_call_arrives(
    sandbox: Sandbox, phone: Phone
) -> None:
    await phone.unregister()
    async with AsyncExotelClient("acme", KEY, TOKEN, base_url=base(sandbox)) as api:
        with pytest.raises(TimeoutError, match="no incoming call with that X-Exotel-Callsid"):
            await click_to_call(phone, api, "echo", caller_id="0804", timeout=1.0)
