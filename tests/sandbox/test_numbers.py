"""The test numbers, called by the SDK's Phone over SIP (exotel_voice.sandbox.numbers).

echo returns our audio, tone plays a known pitch, ivr confirms DTMF by INFO and by audio,
busy answers 486, noanswer rings until cancelled. Real media: run in the namespace.
"""

from __future__ import annotations

import asyncio

import pytest

from exotel_voice.exceptions import AuthenticationError, SipError
from exotel_voice.media import ToneSource
from exotel_voice.media.analysis import dominant_frequency, rms_dbfs
from exotel_voice.sandbox import IvrApp, Sandbox
from exotel_voice.sandbox.numbers import detect_dtmf

from .conftest import LOOPBACK_MEDIA, PhoneFactory, listen, sandbox_config


pytestmark = [pytest.mark.media, LOOPBACK_MEDIA, pytest.mark.timeout(60)]


async def test_echo_sends_back_what_it_hears(sandbox: Sandbox, phones: PhoneFactory) -> None:
    phone = await phones("agent")
    call = await phone.dial("echo", source=ToneSource(1000, 0.5))
    await call.wait_connected(10)
    heard = await listen(call, 0.8)
    assert abs(dominant_frequency(heard, 16000) - 1000) < 15
    assert rms_dbfs(heard) > -25
    await call.set_source(ToneSource(700, 0.5))  # it follows what we send
    heard = await listen(call, 0.8)
    assert abs(dominant_frequency(heard, 16000) - 700) < 15
    record = sandbox.calls[-1]
    assert (record.to, record.status, record.direction) == ("echo", "in-progress", "inbound")
    await call.hangup()
    await record.wait_ended(5)
    assert record.status == "completed"


async def test_echo_over_wss_and_hold_resume(sandbox: Sandbox, phones: PhoneFactory) -> None:
    phone = await phones("agent", secure=True)
    assert sandbox.bindings["agent"].flow.secure
    call = await phone.dial("echo", source=ToneSource(1000, 0.5))
    await call.wait_connected(10)
    assert rms_dbfs(await listen(call, 0.5)) > -25
    await call.hold()
    assert rms_dbfs(await listen(call, 0.5)) < -60
    await call.unhold()
    assert abs(dominant_frequency(await listen(call, 0.5), 16000) - 1000) < 15
    await call.hangup()


async def test_tone_plays_440_hz(sandbox: Sandbox, phones: PhoneFactory) -> None:
    phone = await phones("agent")
    call = await phone.dial("tone")
    await call.wait_connected(10)
    heard = await listen(call, 1.0)
    assert abs(dominant_frequency(heard, 16000) - 440) < 5
    assert rms_dbfs(heard) > -20
    await call.hangup()


async def test_tone_frequency_is_configurable(phones: PhoneFactory) -> None:
    from exotel_voice.client import Phone
    from exotel_voice.config import AccountConfig

    from .conftest import MEDIA

    async with Sandbox(sandbox_config(tone_hz=523.0)) as other:
        account = AccountConfig.from_sip_account_info(other.sip_account_info("agent"))
        async with Phone(account, media=MEDIA) as phone:
            await phone.register(timeout=10)
            call = await phone.dial("sip:tone@sandbox.exotel.test")
            await call.wait_connected(10)
            assert abs(dominant_frequency(await listen(call, 1.0), 16000) - 523) < 5
            await call.hangup()


async def test_ivr_confirms_info_and_rfc4733_digits(
    sandbox: Sandbox, phones: PhoneFactory
) -> None:
    phone = await phones("agent")
    call = await phone.dial("ivr")
    await call.wait_connected(10)
    confirmed: list[str] = []

    async def collect() -> None:
        async for digit in call.dtmf_received():
            confirmed.append(digit)
            if len(confirmed) == 6:
                return

    collector = asyncio.ensure_future(collect())
    audio = asyncio.ensure_future(listen(call, 3.5, skip=0.0))
    await call.send_dtmf("159", method="info", duration_ms=160)
    await asyncio.sleep(1.0)  # let the INFO confirmations' tones play first
    await call.send_dtmf("*0#", method="rfc4733", duration_ms=120)
    await asyncio.wait_for(collector, 8)
    assert "".join(confirmed) == "159*0#"  # confirmed back by SIP INFO
    record = sandbox.calls[-1]
    assert isinstance(record.app, IvrApp)
    assert record.app.received == [
        ("1", "info"), ("5", "info"), ("9", "info"),
        ("*", "rfc4733"), ("0", "rfc4733"), ("#", "rfc4733"),
    ]
    assert detect_dtmf(await audio, 16000) == "159*0#"  # and as tones we can hear
    await call.hangup()


async def test_busy_rejects_with_486(sandbox: Sandbox, phones: PhoneFactory) -> None:
    phone = await phones("agent")
    call = await phone.dial("busy")
    with pytest.raises(SipError, match="486"):
        await call.wait_connected(10)
    assert call.end_status == 486
    assert sandbox.calls[-1].status == "busy"


async def test_noanswer_rings_until_cancelled(sandbox: Sandbox, phones: PhoneFactory) -> None:
    phone = await phones("agent")
    call = await phone.dial("noanswer")
    async with asyncio.timeout(5):
        while call.state != "ringing":
            await asyncio.sleep(0.02)
    await asyncio.sleep(1.5)
    assert call.state == "ringing" and not call.ended
    record = sandbox.calls[-1]
    assert record.status == "ringing"
    await call.hangup()  # CANCEL
    await record.wait_ended(5)
    assert record.status == "canceled"
    assert record.legs[0].end_status == 487
    assert call.ended


async def test_unknown_number_is_404_and_user_to_user_calls_bridge(
    sandbox: Sandbox, phones: PhoneFactory
) -> None:
    agent = await phones("agent", tone_hz=1000)
    call = await agent.dial("nobody")
    with pytest.raises(SipError, match="404"):
        await call.wait_connected(10)
    bob = await phones("bob", tone_hz=600)
    call = await agent.dial("bob")
    incoming = await bob.next_incoming_call(timeout=10)
    assert incoming.remote_number == "agent"
    assert incoming.call_sid == sandbox.calls[-1].sid
    await incoming.answer()
    await call.wait_connected(10)
    heard_by_agent, heard_by_bob = await asyncio.gather(listen(call, 0.8), listen(incoming, 0.8))
    assert abs(dominant_frequency(heard_by_agent, 16000) - 600) < 15
    assert abs(dominant_frequency(heard_by_bob, 16000) - 1000) < 15
    await call.hangup()
    await incoming.wait_ended(5)


async def test_wrong_password_is_refused(sandbox: Sandbox) -> None:
    from exotel_voice.client import Phone
    from exotel_voice.config import AccountConfig

    info = {**sandbox.sip_account_info("agent"), "secret": "not-the-password"}
    async with Phone(AccountConfig.from_sip_account_info(info)) as phone:
        with pytest.raises(AuthenticationError):
            await phone.register(timeout=10)
    assert sandbox.binding("agent") is None


async def test_a_lost_connection_ends_the_call(sandbox: Sandbox, phones: PhoneFactory) -> None:
    sandbox.config.connection_grace = 0.0  # no grace period (test_connection_grace has one)
    phone = await phones("agent")
    call = await phone.dial("tone")
    await call.wait_connected(10)
    record = sandbox.calls[-1]
    flow = sandbox.bindings["agent"].flow
    await flow.ws.close()  # the client's socket drops
    await record.wait_ended(5)
    assert record.status == "completed"
    assert record.legs[0].end_reason == "client connection lost"
    assert sandbox.binding("agent") is None
