"""A Phone against test-double servers: one that never answers, one that sends garbage.

Both run as WebSocket servers on 127.0.0.1. The real-server tests are in
tests/interop/test_registration_kamailio.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from exotel_voice.client import (
    Phone,
    PhoneStatus,
    RegistrationState,
    RegistrationStateChanged,
    TransportStateChanged,
)
from exotel_voice.config import AccountConfig, ReconnectPolicy
from exotel_voice.exceptions import TransactionTimeout
from exotel_voice.sip import Headers, Request, Response, parse_message


PASSWORD = "hostile-test-pw"
REALM = "hostile.test"


def account(port: int, **overrides: object) -> AccountConfig:
    return AccountConfig.from_sip_account_info(
        {"userName": "alice", "sipdomain": REALM, "secret": PASSWORD,
         "wsUrl": f"ws://127.0.0.1:{port}/ws"},
        reconnect=ReconnectPolicy(initial_delay=0.1, max_delay=0.5),
        **overrides,  # type: ignore[arg-type]
    )


def port_of(server: Server) -> int:
    return int(next(iter(server.sockets)).getsockname()[1])


@pytest.fixture
async def silent_server() -> AsyncIterator[Server]:
    async def handler(ws: ServerConnection) -> None:
        async for _ in ws:
            pass  # accepts everything, answers nothing

    async with serve(handler, "127.0.0.1", 0, subprotocols=["sip"]) as server:  # type: ignore[list-item]
        yield server


async def test_a_server_that_never_answers_gives_a_clear_timeout(silent_server: Server) -> None:
    phone = Phone(account(port_of(silent_server), register_timeout=1.0))
    events: list[RegistrationStateChanged] = []
    phone.add_listener(
        lambda e: events.append(e) if isinstance(e, RegistrationStateChanged) else None
    )
    await phone.start()
    loop = asyncio.get_running_loop()
    started = loop.time()
    register = asyncio.ensure_future(phone.register(timeout=10))
    await asyncio.sleep(0.3)
    assert phone.status() is PhoneStatus.REGISTERING
    with pytest.raises(TransactionTimeout, match="no response"):
        await register
    assert loop.time() - started < 3.0, "the timeout is register_timeout, not Timer F (32 s)"
    assert events[-1].state is RegistrationState.FAILED and events[-1].status is None
    assert events[-1].retry_in is not None, "a silent server is retried later"
    assert phone.status() is PhoneStatus.FAILED
    await phone.close()


def _headers_of(request: Request) -> Headers:
    return Headers([(k, request.headers[k]) for k in ("Via", "From", "To", "Call-ID", "CSeq")])


async def test_hostile_server_garbage_then_sane_answers(caplog: pytest.LogCaptureFixture) -> None:
    """Malformed SIP, an oversized message and a wrong Content-Length come before the
    real answers; the phone logs each, keeps running, and registers once sane answers come."""
    nonce = "hostile-nonce"
    hostile_sent = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal hostile_sent
        async for message in ws:
            request = parse_message(message)
            assert isinstance(request, Request)
            base = _headers_of(request)
            # 1. Garbage, a status line with no headers, a huge message, a lying Content-Length.
            for junk in (
                b"\x00\x01 not SIP at all \xff",
                "SIP/2.0 200 OK\r\n\r\n",
                "SIP/2.0 200 OK\r\n" + "X-Pad: " + "a" * 70000 + "\r\n\r\n",
                Response(200, "OK", base).serialize().decode().replace(
                    "Content-Length: 0", "Content-Length: 999"
                ) + "short body",
            ):
                await ws.send(junk)
                hostile_sent += 1
            # 2. Then sane answers: a digest challenge, and 200 for good credentials.
            auth = request.headers.get("Authorization")
            if auth is None:
                base.add("WWW-Authenticate",
                         f'Digest realm="{REALM}", nonce="{nonce}", qop="auth"')
                await ws.send(Response(401, "Unauthorized", base).serialize())
                continue
            p = dict(re.findall(r'(\w+)="?([^",]*)"?', auth))
            ha1 = hashlib.md5(f"alice:{REALM}:{PASSWORD}".encode()).hexdigest()
            ha2 = hashlib.md5(f"REGISTER:{p['uri']}".encode()).hexdigest()
            expected = hashlib.md5(
                f"{ha1}:{nonce}:{p['nc']}:{p['cnonce']}:auth:{ha2}".encode()
            ).hexdigest()
            status = 200 if p.get("response") == expected else 403
            if status == 200:
                base.add("Contact", request.headers["Contact"])
            await ws.send(Response(status, None, base).serialize())

    async with serve(handler, "127.0.0.1", 0, subprotocols=["sip"], max_size=None) as server:  # type: ignore[list-item]
        with caplog.at_level(logging.WARNING, logger="exotel_voice"):
            async with Phone(account(port_of(server))) as phone:
                event = await phone.register(timeout=10)
                assert event.state is RegistrationState.REGISTERED
                assert phone.status() == "registered"
                await phone.unregister()
    assert hostile_sent >= 8
    text = caplog.text
    assert "Content-Length" in text, "the lying Content-Length is named in the log"
    assert "exceeds" in text or "too large" in text.lower(), "the oversized message is named"
    assert PASSWORD not in text


async def test_socket_closed_mid_register_is_a_connection_loss_and_is_retried() -> None:
    """The server closes the WebSocket (1011) while our REGISTER is outstanding: that is a
    lost connection (named with its close code and reason), not "no response from the
    registrar"; the phone reconnects and registers on its own, and register() returns."""
    connections = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        first = connections == 1
        async for message in ws:
            request = parse_message(message)
            assert isinstance(request, Request)
            if first:
                await ws.close(1011, "registrar restarting")
                return
            base = _headers_of(request)
            base.add("Contact", request.headers["Contact"] + ";expires=300")
            await ws.send(Response(200, "OK", base).serialize())

    async with serve(handler, "127.0.0.1", 0, subprotocols=["sip"]) as server:  # type: ignore[list-item]
        events: list[RegistrationStateChanged] = []
        phone = Phone(account(port_of(server), register_timeout=5.0))
        phone.add_listener(
            lambda e: events.append(e) if isinstance(e, RegistrationStateChanged) else None
        )
        async with phone:
            loop = asyncio.get_running_loop()
            started = loop.time()
            event = await phone.register(timeout=10)
            assert event.state is RegistrationState.REGISTERED and phone.status() == "registered"
            assert loop.time() - started < 3.0, "retried at once, not after register_timeout"
            assert connections == 2
            sent = (RegistrationState.REGISTERING, RegistrationState.UNREGISTERING)
            states = [e.state for e in events if e.state not in sent]
            assert states == ["unregistered", "registered"], events
            lost = next(e for e in events if e.state is RegistrationState.UNREGISTERED)
            assert "no response" not in lost.reason
            assert "1011" in lost.reason and "registrar restarting" in lost.reason, lost
            assert lost.status is None


async def test_a_server_that_always_closes_mid_register_times_out_naming_the_loss() -> None:
    async def handler(ws: ServerConnection) -> None:
        async for _ in ws:
            await ws.close(1011, "registrar restarting")
            return

    async with serve(handler, "127.0.0.1", 0, subprotocols=["sip"]) as server:  # type: ignore[list-item]
        async with Phone(account(port_of(server))) as phone:
            with pytest.raises(TimeoutError) as info:
                await phone.register(timeout=1.5)
    message = str(info.value)
    assert "not registered within 1.5 s" in message
    assert "connection lost during REGISTER" in message and "1011" in message, message


async def test_an_outage_after_registering_is_a_lost_binding_not_a_failure() -> None:
    """Once registered, a server that goes away (and refuses the reconnects) makes the phone
    ``unregistered``, naming the loss; failed reconnects do not report ``terminated``."""

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            request = parse_message(message)
            assert isinstance(request, Request)
            base = _headers_of(request)
            base.add("Contact", request.headers["Contact"] + ";expires=300")
            await ws.send(Response(200, "OK", base).serialize())
            await ws.close(1001, "going away")

    states: list[RegistrationStateChanged] = []
    transport: list[TransportStateChanged] = []

    def on_event(e: object) -> None:
        if isinstance(e, RegistrationStateChanged):
            states.append(e)
        elif isinstance(e, TransportStateChanged):
            transport.append(e)

    server = await serve(handler, "127.0.0.1", 0, subprotocols=["sip"])  # type: ignore[arg-type]
    port = port_of(server)
    async with Phone(account(port)) as phone:
        phone.add_listener(on_event)
        await phone.register(timeout=5)
        server.close()
        await server.wait_closed()
        for _ in range(100):
            if sum(1 for t in transport if not t.connected) >= 3:
                break
            await asyncio.sleep(0.05)
        assert sum(1 for t in transport if not t.connected) >= 3, "reconnects were tried"
        names = [e.state for e in states]
        assert RegistrationState.FAILED not in names, states
        lost = [e for e in states if e.state is RegistrationState.UNREGISTERED]
        assert len(lost) == 1 and "1001" in lost[0].reason and "going away" in lost[0].reason
        assert phone.registration_error is None
