"""A real Phone places calls to a WebSocket test server on 127.0.0.1 that answers them badly.

A 200 without Contact or To tag, an SDP answer that does not parse or has no a=fingerprint,
a 183 whose answer cannot be used, and a second 200 from another fork. What the application
must see: the call ends with a ``terminated`` event whose reason names the problem (or, for
the 183 and the fork, the call goes on), the server gets the ACK and the BYE, nothing is
logged at ERROR and no task fails unobserved.

The server answers with a real aiortc answer (a MediaSession of its own), so these run real
media: ``scripts/in-netns.sh .venv/bin/pytest tests/test_call_answers.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from exotel_voice.client import Call, CallEvent, MediaStateChanged, Phone
from exotel_voice.config import AccountConfig, ReconnectPolicy
from exotel_voice.exceptions import SipError
from exotel_voice.media import IceConfig, MediaConfig, MediaSession
from exotel_voice.sip import Request, Response, parse_message
from exotel_voice.sip.utils import make_response
from tests.labels import call_label

from ..media.conftest import LOOPBACK_MEDIA


pytestmark = [pytest.mark.media, LOOPBACK_MEDIA, pytest.mark.timeout(60)]

LOOPBACK = MediaConfig(ice=IceConfig(host_addresses=["127.0.0.1"], gather_timeout=1.0))
CONTACT = "<sip:bob@127.0.0.1:5070;transport=ws>"
GARBAGE_SDP = "this is not SDP\r\nm=audio oops\r\n"


def strip_fingerprint(sdp: str) -> str:
    return "".join(
        line for line in sdp.splitlines(keepends=True) if not line.startswith("a=fingerprint")
    )


class BadAnswerServer:
    """Answers each INVITE with ``scenario``; answers BYE and CANCEL 200; keeps every request."""

    def __init__(self, scenario: Callable[[BadAnswerServer, Request], Awaitable[None]]) -> None:
        self.scenario = scenario
        self.received: list[Request] = []
        self.media: list[MediaSession] = []
        self.ws: ServerConnection | None = None

    async def send(self, response: Response) -> None:
        assert self.ws is not None
        await self.ws.send(response.serialize().decode())

    async def real_answer(self, invite: Request) -> str:
        media = MediaSession(config=LOOPBACK)
        self.media.append(media)
        return await media.accept_offer(invite.body.decode())

    def response(
        self, invite: Request, status: int, sdp: str | None, *, to_tag: str | None = "t1",
        contact: str | None = CONTACT,
    ) -> Response:
        response = make_response(
            invite, status, to_tag=to_tag or "unused",
            headers=[("Contact", contact)] if contact else [],
            body=sdp.encode() if sdp else b"",
            content_type="application/sdp" if sdp else None,
        )
        if to_tag is None:
            response.headers.set("To", invite.headers["To"])
        return response

    async def handler(self, ws: ServerConnection) -> None:
        self.ws = ws
        async for message in ws:
            request = parse_message(message)
            if not isinstance(request, Request):
                continue
            self.received.append(request)
            if request.method == "INVITE":
                await self.scenario(self, request)
            elif request.method in ("BYE", "CANCEL"):
                await self.send(make_response(request, 200))

    def methods(self) -> list[tuple[str, str | None]]:
        return [(r.method, r.to.tag) for r in self.received]

    async def wait_for(self, method: str, tag: str | None, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while (method, tag) not in self.methods():
                await asyncio.sleep(0.02)

    async def close(self) -> None:
        for media in self.media:
            await media.close()


@pytest.fixture
async def loop_errors() -> list[dict[str, Any]]:
    """What reached the event loop's exception handler ("Task exception was never retrieved")."""
    caught: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: caught.append(context))
    return caught


@contextlib.asynccontextmanager
async def place_call(
    scenario: Callable[[BadAnswerServer, Request], Awaitable[None]],
) -> AsyncIterator[tuple[BadAnswerServer, Call, list[CallEvent]]]:
    server = BadAnswerServer(scenario)
    async with serve(server.handler, "127.0.0.1", 0, subprotocols=["sip"]) as ws_server:  # type: ignore[list-item]
        port = int(next(iter(ws_server.sockets)).getsockname()[1])
        account = AccountConfig.from_sip_account_info(
            {"userName": "alice", "sipdomain": "answers.test", "secret": "answers-test-pw",
             "wsUrl": f"ws://127.0.0.1:{port}/ws"},
            reconnect=ReconnectPolicy(initial_delay=0.1, max_delay=0.5),
        )
        phone = Phone(account, media=LOOPBACK)
        events: list[CallEvent] = []
        phone.add_listener(lambda e: events.append(e) if isinstance(e, CallEvent) else None)
        await phone.start()
        try:
            async with asyncio.timeout(5):
                while True:
                    try:
                        call = await phone.dial("bob")
                        break
                    except SipError:  # not connected yet
                        await asyncio.sleep(0.05)
            yield server, call, events
        finally:
            await phone.close()
            await server.close()


def check_quiet(caplog: pytest.LogCaptureFixture, loop_errors: list[dict[str, Any]]) -> None:
    gc.collect()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert loop_errors == []


async def no_contact(server: BadAnswerServer, invite: Request) -> None:
    await server.send(server.response(invite, 200, await server.real_answer(invite), contact=None))


async def no_to_tag(server: BadAnswerServer, invite: Request) -> None:
    await server.send(server.response(invite, 200, await server.real_answer(invite), to_tag=None))


async def garbage_sdp(server: BadAnswerServer, invite: Request) -> None:
    await server.send(server.response(invite, 200, GARBAGE_SDP))


async def no_fingerprint(server: BadAnswerServer, invite: Request) -> None:
    answer = strip_fingerprint(await server.real_answer(invite))
    await server.send(server.response(invite, 200, answer))


@pytest.mark.parametrize(
    ("scenario", "named"),
    [
        (no_contact, "no Contact"),
        (no_to_tag, "no To tag"),
        (garbage_sdp, "SDP cannot be parsed"),
        (no_fingerprint, "no a=fingerprint"),
    ],
    ids=["no-contact", "no-to-tag", "garbage-sdp", "no-fingerprint"],
)
async def test_a_bad_200_is_acked_byed_and_ends_the_call_with_the_reason(
    scenario: Callable[[BadAnswerServer, Request], Awaitable[None]],
    named: str,
    caplog: pytest.LogCaptureFixture,
    loop_errors: list[dict[str, Any]],
) -> None:
    caplog.set_level(logging.WARNING, logger="exotel_voice")
    async with place_call(scenario) as (server, call, events):
        with pytest.raises(SipError, match=named):
            await call.wait_connected(timeout=10)
        await call.wait_ended(timeout=1)
        assert call.state == "ended" and call.ended_by == "remote"
        assert named in call.end_reason
        assert [call_label(e) for e in events if e.call is call] == ["ended_remote"]
        assert named in events[-1].reason and events[-1].status is None
        tag = None if scenario is no_to_tag else "t1"
        await server.wait_for("ACK", tag)
        await server.wait_for("BYE", tag)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await call.hangup()
        assert loop.time() - started < 0.5
        await asyncio.sleep(0.3)  # anything late (aiortc tasks) would show up now
    check_quiet(caplog, loop_errors)


async def test_a_183_with_an_unusable_answer_only_loses_early_media(
    caplog: pytest.LogCaptureFixture, loop_errors: list[dict[str, Any]]
) -> None:
    async def early_then_answer(server: BadAnswerServer, invite: Request) -> None:
        answer = await server.real_answer(invite)
        await server.send(server.response(invite, 183, strip_fingerprint(answer)))
        await asyncio.sleep(0.3)
        await server.send(server.response(invite, 200, answer))

    caplog.set_level(logging.WARNING, logger="exotel_voice")
    async with place_call(early_then_answer) as (server, call, events):
        await call.wait_connected(timeout=10)
        assert call.media is not None and call.media.state.value == "active"
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("early media" in w and "fingerprint" in w for w in warnings), warnings
        assert [call_label(e) for e in events if e.call is call
                and not isinstance(e, MediaStateChanged)] == ["progress", "connected"]
        await call.hangup()
        await server.wait_for("BYE", "t1")
        assert call.ended_by == "local"
    check_quiet(caplog, loop_errors)


async def test_a_second_200_from_another_fork_is_acked_and_byed(
    caplog: pytest.LogCaptureFixture, loop_errors: list[dict[str, Any]]
) -> None:
    async def forked(server: BadAnswerServer, invite: Request) -> None:
        await server.send(server.response(invite, 200, await server.real_answer(invite)))
        await server.send(server.response(
            invite, 200, await server.real_answer(invite), to_tag="t2",
            contact="<sip:carol@127.0.0.1:5080;transport=ws>",
        ))

    caplog.set_level(logging.WARNING, logger="exotel_voice")
    async with place_call(forked) as (server, call, events):
        await call.wait_connected(timeout=10)
        await server.wait_for("BYE", "t2")
        assert ("ACK", "t1") in server.methods() and ("ACK", "t2") in server.methods()
        (bye2,) = [r for r in server.received if r.method == "BYE"]
        assert str(bye2.uri) == "sip:carol@127.0.0.1:5080;transport=ws"
        await asyncio.sleep(0.2)
        assert call.state == "connected" and not call.ended
        assert [call_label(e) for e in events if e.call is call
                and not isinstance(e, MediaStateChanged)] == ["connected"]
        await call.hangup()
        await server.wait_for("BYE", "t1")
    check_quiet(caplog, loop_errors)


async def test_an_unusable_answer_to_our_hold_fails_the_hold_and_keeps_the_call(
    caplog: pytest.LogCaptureFixture, loop_errors: list[dict[str, Any]]
) -> None:
    async def garbage_on_reinvite(server: BadAnswerServer, invite: Request) -> None:
        if invite.to.tag is None:
            await server.send(server.response(invite, 200, await server.real_answer(invite)))
        else:
            await server.send(server.response(invite, 200, GARBAGE_SDP))

    caplog.set_level(logging.WARNING, logger="exotel_voice")
    async with place_call(garbage_on_reinvite) as (server, call, events):
        await call.wait_connected(timeout=10)
        with pytest.raises(SipError, match="hold failed: the answer cannot be used"):
            await asyncio.wait_for(call.hold(), 5)
        assert not call.on_hold and call.state == "connected"
        assert call.media is not None and call.media.state.value == "active"
        await call.hangup()
        await server.wait_for("BYE", "t1")
    check_quiet(caplog, loop_errors)
