"""A registered Phone receives requests with malformed start lines and answers 400 or 414.

A test-double registrar on 127.0.0.1 (WebSocket, as in tests/test_phone_resilience.py)
accepts the phone's REGISTER, then sends requests whose start line is malformed (extra or
trailing whitespace, a 9,000-character Request-URI), a malformed ACK and a malformed
response, and reads what the phone sends back. The sans-I/O rules are tested in
tests/sip/test_connection.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from exotel_voice.client import Phone, RegistrationState
from exotel_voice.config import AccountConfig, ReconnectPolicy
from exotel_voice.sip import Headers, Request, Response, parse_message


PASSWORD = "malformed-test-pw"
REALM = "malformed.test"


def _account(port: int) -> AccountConfig:
    return AccountConfig.from_sip_account_info(
        {"userName": "alice", "sipdomain": REALM, "secret": PASSWORD,
         "wsUrl": f"ws://127.0.0.1:{port}/ws"},
        reconnect=ReconnectPolicy(initial_delay=0.1, max_delay=0.5),
    )


class Registrar:
    """Answers REGISTER with 200 and queues every other message the phone sends."""

    def __init__(self) -> None:
        self.ws: ServerConnection | None = None
        self.received: asyncio.Queue[Request | Response] = asyncio.Queue()

    async def handler(self, ws: ServerConnection) -> None:
        async for data in ws:
            message = parse_message(data)
            if isinstance(message, Request) and message.method == "REGISTER":
                headers = Headers(
                    [(k, message.headers[k]) for k in ("Via", "From", "To", "Call-ID", "CSeq")]
                )
                headers.add("Contact", message.headers["Contact"] + ";expires=600")
                self.ws = ws
                await ws.send(Response(200, "OK", headers).serialize())
            else:
                await self.received.put(message)

    async def send(self, data: str) -> None:
        assert self.ws is not None
        await self.ws.send(data)

    async def next_message(self) -> Request | Response:
        return await asyncio.wait_for(self.received.get(), timeout=5)


@asynccontextmanager
async def registered_phone() -> AsyncIterator[tuple[Phone, Registrar]]:
    registrar = Registrar()
    async with serve(registrar.handler, "127.0.0.1", 0, subprotocols=["sip"]) as server:  # type: ignore[list-item]
        port = int(next(iter(server.sockets)).getsockname()[1])
        async with Phone(_account(port)) as phone:
            event = await phone.register(timeout=10)
            assert event.state is RegistrationState.REGISTERED
            yield phone, registrar


def _request(start: str, branch: str, call_id: str, method: str = "OPTIONS") -> str:
    return (
        f"{start}\r\n"
        f"Via: SIP/2.0/WS registrar.invalid;branch={branch}\r\n"
        f"From: <sip:server@{REALM}>;tag=srv1\r\n"
        f"To: <sip:alice@{REALM}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: 7 {method}\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n"
        "\r\n"
    )


MALFORMED = [
    ("double-space", "OPTIONS  sip:alice@127.0.0.1 SIP/2.0", 400, "Bad Request"),
    ("trailing-space", "OPTIONS sip:alice@127.0.0.1 SIP/2.0 ", 400, "Bad Request"),
    ("invite-double-space", "INVITE sip:alice@127.0.0.1  SIP/2.0", 400, "Bad Request"),
    (
        "9000-char-uri",
        "OPTIONS sip:" + "a" * 9000 + "@127.0.0.1 SIP/2.0",
        414,
        "Request-URI Too Long",
    ),
]


async def test_a_registered_phone_answers_malformed_start_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    loop_errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    with caplog.at_level(logging.WARNING, logger="exotel_voice"):
        async with registered_phone() as (phone, registrar):
            for name, start, status, reason in MALFORMED:
                method = start.split()[0]
                branch = f"z9hG4bK-{name}"
                await registrar.send(_request(start, branch, f"call-{name}", method))
                answer = await registrar.next_message()
                assert isinstance(answer, Response), name
                assert (answer.status, answer.reason) == (status, reason), name
                assert answer.branch == branch and answer.call_id == f"call-{name}", name
                assert answer.headers["CSeq"] == f"7 {method}", name
                assert answer.from_.tag == "srv1" and answer.to.tag, name
            assert phone.status() == "registered"
    assert not loop_errors, loop_errors
    warnings = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(warnings) == len(MALFORMED), warnings
    assert all(len(w) < 1000 for w in warnings), "the 9,000-character URI is not logged whole"
    assert PASSWORD not in caplog.text


async def test_a_malformed_ack_or_response_gets_no_answer() -> None:
    async with registered_phone() as (phone, registrar):
        await registrar.send(
            _request("ACK  sip:alice@127.0.0.1 SIP/2.0", "z9hG4bK-ack", "call-ack", "ACK")
        )
        await registrar.send(_request("SIP/2.0  200 OK", "z9hG4bK-resp", "call-resp"))
        # A well-formed OPTIONS afterwards: its 200 is the next thing the phone sends, so
        # nothing was sent for the ACK or the response.
        await registrar.send(
            _request("OPTIONS sip:alice@127.0.0.1 SIP/2.0", "z9hG4bK-ok", "call-ok")
        )
        answer = await registrar.next_message()
        assert isinstance(answer, Response) and answer.status == 200
        assert answer.call_id == "call-ok"
        assert registrar.received.empty()
        assert phone.status() == "registered"
