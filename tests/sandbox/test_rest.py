"""The REST emulation of Exotel's Calls/connect and call details (exotel_voice.sandbox.rest).

Bad input needs no media; the click-to-call tests ring a real SDK phone (marked media).
"""

from __future__ import annotations

import asyncio
import base64
import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from exotel_voice.sandbox import Sandbox
from exotel_voice.sandbox.rest import http_request

from .conftest import LOOPBACK_MEDIA, PhoneFactory


CALL_FIELDS = [
    "Sid", "ParentCallSid", "DateCreated", "DateUpdated", "AccountSid", "To", "From",
    "PhoneNumberSid", "Status", "StartTime", "EndTime", "Duration", "Price", "Direction",
    "AnsweredBy", "ForwardedFrom", "CallerName", "Uri", "RecordingUrl",
]
FORM = {"From": "agent", "To": "echo", "CallerId": "08047112233"}


async def rest(
    sandbox: Sandbox, method: str, path: str, form: dict[str, str] | None = None, *,
    key: str = "key1", token: str = "token1",
) -> tuple[int, str]:
    return await http_request(method, sandbox.rest_url + path, username=key, password=token,
                              form=form)


async def rest_json(sandbox: Sandbox, method: str, path: str,
                    form: dict[str, str] | None = None, **kw: str) -> tuple[int, dict[str, Any]]:
    status, text = await rest(sandbox, method, path, form, **kw)
    return status, json.loads(text)


@pytest.mark.parametrize(
    ("key", "token"), [("key1", "wrong"), ("wrong", "token1"), ("", "")]
)
async def test_wrong_credentials_get_401(sandbox: Sandbox, key: str, token: str) -> None:
    status, body = await rest_json(sandbox, "POST", "/Calls/connect.json", FORM,
                                   key=key, token=token)
    assert status == 401
    assert body["RestException"]["Status"] == 401
    assert "token1" not in json.dumps(body)
    assert sandbox.calls == []


async def test_no_credentials_get_401_with_basic_challenge(sandbox: Sandbox) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", sandbox.ports["http"])
    writer.write(b"POST /v1/Accounts/sandbox/Calls/connect HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Length: 0\r\n\r\n")
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 ")
    assert b'WWW-Authenticate: Basic realm="Exotel sandbox"' in head
    root = ET.fromstring(body)
    assert root.tag == "TwilioResponse"
    assert root.findtext("RestException/Status") == "401"


@pytest.mark.parametrize("missing", ["From", "To", "CallerId"])
async def test_missing_parameter_gets_400(sandbox: Sandbox, missing: str) -> None:
    form = {k: v for k, v in FORM.items() if k != missing}
    status, body = await rest_json(sandbox, "POST", "/Calls/connect.json", form)
    assert status == 400
    assert missing in body["RestException"]["Message"]
    assert sandbox.calls == []


@pytest.mark.parametrize(
    ("field", "value"), [("From", "mallory"), ("From", "echo"), ("To", "nobody")]
)
async def test_unknown_party_gets_400(sandbox: Sandbox, field: str, value: str) -> None:
    status, body = await rest_json(sandbox, "POST", "/Calls/connect.json",
                                   {**FORM, field: value})
    assert status == 400
    assert value in body["RestException"]["Message"]
    assert sandbox.calls == []


async def test_another_account_is_403_and_unknown_paths_404(sandbox: Sandbox) -> None:
    status, text = await http_request(
        "POST", sandbox.rest_url.replace("/sandbox", "/other") + "/Calls/connect.json",
        username="key1", password="token1", form=FORM)
    assert status == 403
    status, body = await rest_json(sandbox, "GET", "/Calls/0123abcd.json")
    assert status == 404 and "0123abcd" in body["RestException"]["Message"]
    status, _ = await rest(sandbox, "GET", "/Calls/connect.json")
    assert status == 405
    status, _ = await http_request("GET", sandbox.rest_url.replace("/v1/Accounts/sandbox", "/x"))
    assert status == 404


async def test_malformed_request_gets_400(sandbox: Sandbox) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", sandbox.ports["http"])
    writer.write(b"NONSENSE\r\n\r\n")
    data = await reader.read()
    writer.close()
    assert data.startswith(b"HTTP/1.1 400 ")


async def test_basic_auth_header_is_standard(sandbox: Sandbox) -> None:
    """A client that builds the header itself (as curl -u does) is accepted."""
    token = base64.b64encode(b"key1:token1").decode()
    reader, writer = await asyncio.open_connection("127.0.0.1", sandbox.ports["http"])
    writer.write(("GET /v1/Accounts/sandbox/Calls/nope.json HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Basic {token}\r\n\r\n").encode())
    data = await reader.read()
    writer.close()
    assert data.startswith(b"HTTP/1.1 404 ")  # authenticated; the call does not exist


@pytest.mark.media
@LOOPBACK_MEDIA
async def test_connect_rings_from_with_the_sid_then_connects_to(
    sandbox: Sandbox, phones: PhoneFactory
) -> None:
    phone = await phones("agent", tone_hz=1000)
    status, body = await rest_json(sandbox, "POST", "/Calls/connect.json", FORM)
    assert status == 200
    call_json = body["Call"]
    assert list(call_json) == CALL_FIELDS
    sid = call_json["Sid"]
    assert call_json["Status"] == "queued"
    assert call_json["From"] == "agent" and call_json["To"] == "echo"
    assert call_json["PhoneNumberSid"] == "08047112233"
    assert call_json["Direction"] == "outbound-api"
    assert call_json["AccountSid"] == "sandbox"
    assert call_json["Uri"] == f"/v1/Accounts/sandbox/Calls/{sid}.json"

    incoming = await phone.next_incoming_call(timeout=10)
    assert incoming.header("X-Exotel-Callsid") == sid
    assert incoming.call_sid == sid
    assert incoming.remote_number == "08047112233"
    status, body = await rest_json(sandbox, "GET", f"/Calls/{sid}.json")
    assert body["Call"]["Status"] == "ringing"

    await incoming.answer()
    await incoming.wait_connected(10)
    record = sandbox.find_call(sid)
    assert record is not None
    async with asyncio.timeout(5):
        while record.status != "in-progress":
            await asyncio.sleep(0.02)
    await incoming.hangup()
    await record.wait_ended(5)

    status, text = await rest(sandbox, "GET", f"/Calls/{sid}")  # no .json: XML
    assert status == 200
    root = ET.fromstring(text)
    assert root.tag == "TwilioResponse"
    call_xml = root.find("Call")
    assert call_xml is not None
    assert [child.tag for child in call_xml] == CALL_FIELDS
    assert call_xml.findtext("Sid") == sid
    assert call_xml.findtext("Status") == "completed"
    assert call_xml.findtext("EndTime")
    assert call_xml.findtext("Duration") is not None
    assert call_xml.findtext("Uri") == f"/v1/Accounts/sandbox/Calls/{sid}"


@pytest.mark.media
@LOOPBACK_MEDIA
async def test_connect_when_from_declines_is_busy(
    sandbox: Sandbox, phones: PhoneFactory
) -> None:
    phone = await phones("agent")
    status, body = await rest_json(sandbox, "POST", "/Calls/connect.json", FORM)
    incoming = await phone.next_incoming_call(timeout=10)
    await incoming.reject(486)
    record = sandbox.find_call(body["Call"]["Sid"])
    assert record is not None
    await record.wait_ended(5)
    assert record.status == "busy"


@pytest.mark.media
@LOOPBACK_MEDIA
async def test_connect_to_unregistered_from_fails(sandbox: Sandbox) -> None:
    status, body = await rest_json(sandbox, "POST", "/Calls/connect.json", FORM)
    assert status == 200  # as on Exotel, the call is accepted and fails afterwards
    record = sandbox.find_call(body["Call"]["Sid"])
    assert record is not None
    await record.wait_ended(5)
    status, body = await rest_json(sandbox, "GET", f"/Calls/{record.sid}.json")
    assert body["Call"]["Status"] == "failed"


@pytest.mark.media
@LOOPBACK_MEDIA
async def test_connect_agent_to_another_user_bridges_audio(
    sandbox: Sandbox, phones: PhoneFactory
) -> None:
    from exotel_voice.media.analysis import dominant_frequency

    from .conftest import listen

    agent = await phones("agent", tone_hz=1000)
    bob = await phones("bob", tone_hz=600)
    status, body = await rest_json(sandbox, "POST", "/Calls/connect.json",
                                   {**FORM, "To": "sip:bob@sandbox.exotel.test"})
    assert status == 200
    sid = body["Call"]["Sid"]
    first = await agent.next_incoming_call(timeout=10)
    assert first.call_sid == sid
    await first.answer()
    second = await bob.next_incoming_call(timeout=10)
    assert second.call_sid == sid
    await second.answer()
    heard_by_agent, heard_by_bob = await asyncio.gather(listen(first, 0.8), listen(second, 0.8))
    assert abs(dominant_frequency(heard_by_agent, 16000) - 600) < 20
    assert abs(dominant_frequency(heard_by_bob, 16000) - 1000) < 20
    await second.hangup()
    await first.wait_ended(5)  # the sandbox hangs up the other leg
    record = sandbox.find_call(sid)
    assert record is not None
    await record.wait_ended(5)
    assert record.status == "completed"


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.parametrize(("to", "expected"), [("busy", "busy"), ("noanswer", "no-answer")])
async def test_connect_to_busy_or_noanswer_hangs_up_the_agent(
    sandbox: Sandbox, phones: PhoneFactory, to: str, expected: str
) -> None:
    phone = await phones("agent")
    status, body = await rest_json(sandbox, "POST", "/Calls/connect.json",
                                   {**FORM, "To": to, "TimeOut": "1"})
    assert status == 200
    incoming = await phone.next_incoming_call(timeout=10)
    await incoming.answer()
    await incoming.wait_ended(5)  # the sandbox sends BYE
    assert incoming.ended_by == "remote"
    status, body = await rest_json(sandbox, "GET", f"/Calls/{body['Call']['Sid']}.json")
    assert body["Call"]["Status"] == expected


@pytest.mark.media
@LOOPBACK_MEDIA
async def test_time_limit_ends_the_call(sandbox: Sandbox, phones: PhoneFactory) -> None:
    phone = await phones("agent")
    status, body = await rest_json(sandbox, "POST", "/Calls/connect.json",
                                   {**FORM, "To": "tone", "TimeLimit": "1"})
    incoming = await phone.next_incoming_call(timeout=10)
    await incoming.answer()
    await incoming.wait_ended(5)
    record = sandbox.find_call(body["Call"]["Sid"])
    assert record is not None and record.status == "completed"


async def test_bad_timeout_is_400(sandbox: Sandbox) -> None:
    status, body = await rest_json(sandbox, "POST", "/Calls/connect.json",
                                   {**FORM, "TimeOut": "soon"})
    assert status == 400 and "TimeOut" in body["RestException"]["Message"]
