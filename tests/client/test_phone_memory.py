"""Ended calls are released: a Phone keeps no Call, session, dialog or transaction of a call
that is over, so memory stays flat over any number of calls.

A test-double registrar on 127.0.0.1 sends the phone INVITEs that the application rejects
(no media needed). Calls we place need real media: that test is marked ``media`` and runs in
the loopback-only namespace (``scripts/in-netns.sh``).
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from exotel_voice.client import Call, Phone
from exotel_voice.config import AccountConfig, ReconnectPolicy
from exotel_voice.exceptions import SipError
from exotel_voice.sandbox import Sandbox
from exotel_voice.sip import Request, Response, parse_message
from exotel_voice.sip.utils import make_response

from ..sandbox.conftest import LOOPBACK_MEDIA, MEDIA, sandbox_config


REALM = "leak.test"
SDP_OFFER = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


class InvitingServer:
    """Registers anybody (200, no challenge) and, on :meth:`invite`, calls the phone."""

    def __init__(self) -> None:
        self.ws: ServerConnection | None = None
        self.counter = 0
        self.finals: dict[str, asyncio.Future[int]] = {}
        self.registered = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        self.ws = ws
        async for raw in ws:
            message = parse_message(raw)
            if isinstance(message, Request):
                if message.method == "REGISTER":
                    await ws.send(make_response(
                        message, 200, headers=[("Contact", message.headers["Contact"] +
                                                ";expires=300")]
                    ).serialize())
                    self.registered.set()
                elif message.method != "ACK":
                    await ws.send(make_response(message, 200).serialize())
            elif isinstance(message, Response) and message.status >= 200:
                future = self.finals.pop(message.call_id, None)
                if future is not None and not future.done():
                    future.set_result(message.status)
                if message.cseq.method == "INVITE":
                    await ws.send(self._ack(message))

    def _ack(self, response: Response) -> str:
        h = response.headers
        return (
            f"ACK sip:alice@{REALM} SIP/2.0\r\nVia: {h['Via']}\r\nMax-Forwards: 70\r\n"
            f"From: {h['From']}\r\nTo: {h['To']}\r\nCall-ID: {response.call_id}\r\n"
            f"CSeq: {response.cseq.seq} ACK\r\nContent-Length: 0\r\n\r\n"
        )

    async def invite(self) -> asyncio.Future[int]:
        assert self.ws is not None
        self.counter += 1
        n = self.counter
        call_id = f"leak-{n}@127.0.0.1"
        body = SDP_OFFER.encode()
        self.finals[call_id] = asyncio.get_running_loop().create_future()
        await self.ws.send(
            f"INVITE sip:alice@{REALM};transport=ws SIP/2.0\r\n"
            f"Via: SIP/2.0/WS 127.0.0.1:5060;branch=z9hG4bK-leak-{n}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:bob@{REALM}>;tag=from-{n}\r\n"
            f"To: <sip:alice@{REALM}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:bob@127.0.0.1:5060;transport=ws>\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n"
            + SDP_OFFER
        )
        return self.finals[call_id]


@pytest.fixture
async def inviting_server() -> AsyncIterator[tuple[InvitingServer, Server]]:
    double = InvitingServer()
    async with serve(double.handler, "127.0.0.1", 0, subprotocols=["sip"]) as server:  # type: ignore[list-item]
        yield double, server


def account(port: int) -> AccountConfig:
    return AccountConfig.from_sip_account_info(
        {"userName": "alice", "sipdomain": REALM, "secret": "leak-test-pw",
         "wsUrl": f"ws://127.0.0.1:{port}/ws"},
        reconnect=ReconnectPolicy(initial_delay=0.1, max_delay=0.5),
    )


def live_calls() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, Call))


async def _reject_calls(phone: Phone, double: InvitingServer, n: int,
                        refs: list[weakref.ref[Call]] | None = None) -> None:
    for _ in range(n):
        final = await double.invite()
        call = await phone.next_incoming_call(timeout=5)
        if refs is not None:
            refs.append(weakref.ref(call))
        await call.reject()
        assert await asyncio.wait_for(final, 5) == 486
        assert call.ended
        del call
    # Let the last ACK arrive and the transactions terminate.
    for _ in range(50):
        await asyncio.sleep(0.01)
        if not phone._ua.connection._server:  # type: ignore[union-attr]
            break


async def test_rejected_incoming_calls_are_released(
    inviting_server: tuple[InvitingServer, Server],
) -> None:
    double, server = inviting_server
    port = int(next(iter(server.sockets)).getsockname()[1])
    async with Phone(account(port)) as phone:
        await phone.register(timeout=5)
        before = live_calls()
        refs: list[weakref.ref[Call]] = []
        await _reject_calls(phone, double, 200, refs)
        gc.collect()
        alive = [r() for r in refs if r() is not None]
        assert alive == [], f"{len(alive)} of 200 ended calls are still alive"
        assert live_calls() == before
        assert phone.calls == [] and phone.current_call is None
        assert phone._calls == {}
        ua = phone._ua
        assert ua.calls == {} and ua.call_layer._tx_calls == {}
        assert ua.connection is not None
        assert ua.connection._dialogs == {}
        assert ua.connection._client == {} and ua.connection._server == {}

        # Memory: after a warm-up, another batch of calls does not grow the heap with the
        # number of calls (a leak of ~20 kB a call would be 4 MB here).
        await _reject_calls(phone, double, 50)
        gc.collect()
        tracemalloc.start()
        try:
            first = tracemalloc.take_snapshot()
            await _reject_calls(phone, double, 200)
            gc.collect()
            second = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        growth = sum(s.size_diff for s in second.compare_to(first, "filename"))
        assert growth < 200_000, f"the heap grew by {growth} bytes over 200 calls"


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(120)
async def test_outgoing_calls_are_released() -> None:
    """Calls we place (rejected with 486, or answered and hung up) leave no Call, no media
    session and no peer connection behind."""
    async with Sandbox(sandbox_config()) as sandbox:
        info = sandbox.sip_account_info("agent", secure=False)
        async with Phone(AccountConfig.from_sip_account_info(info), media=MEDIA) as phone:
            await phone.register(timeout=10)
            refs: list[weakref.ref[Any]] = []

            def track(call: Call) -> None:
                assert call.media is not None
                refs.extend([weakref.ref(call), weakref.ref(call.media),
                             weakref.ref(call.media._pc)])

            for _ in range(40):
                call = await phone.dial("busy")
                track(call)
                with pytest.raises(SipError, match="486"):
                    await call.wait_connected(10)
                del call
            for _ in range(3):
                call = await phone.dial("echo")
                track(call)
                await call.wait_connected(10)
                await call.hangup()
                del call
            await asyncio.sleep(0.5)  # the media sessions close in the background
            gc.collect()
            alive = [type(r()).__name__ for r in refs if r() is not None]
            assert alive == [], f"{len(alive)} objects of ended calls are still alive"
            assert phone._calls == {} and phone._ua.calls == {}
            assert phone._ua.call_layer._tx_calls == {}
            connection = phone._ua.connection
            assert connection is not None
            assert connection._dialogs == {}
            assert connection._client == {} and connection._server == {}


def test_facade_keeps_no_ended_call() -> None:
    """Through ExotelWebClient, calls rejected from the CallListenerCallback (nobody calls
    wait_for_call) leave nothing behind either."""
    import threading

    from exotel_voice import ExotelWebClient

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    holder: list[tuple[InvitingServer, int]] = []

    async def main() -> None:
        double = InvitingServer()
        async with serve(double.handler, "127.0.0.1", 0, subprotocols=["sip"]) as server:  # type: ignore[list-item]
            holder.append((double, int(next(iter(server.sockets)).getsockname()[1])))
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(5)
    double, port = holder[0]

    async def one_call() -> int:
        final = await double.invite()
        return await asyncio.wait_for(final, 5)

    ended: list[str] = []
    refs: list[weakref.ref[Call]] = []

    def on_call(call_obj: object, event: str, phone: str) -> None:
        if event == "incoming":
            assert call_obj.call is not None  # type: ignore[attr-defined]
            refs.append(weakref.ref(call_obj.call))  # type: ignore[attr-defined]
            call_obj.Hangup(486)  # type: ignore[attr-defined]
        elif event == "callEnded":
            ended.append(event)

    client = ExotelWebClient()
    try:
        assert client.initWebrtc(
            {"userName": "alice-mem", "sipdomain": REALM, "secret": "leak-test-pw",
             "wsUrl": f"ws://127.0.0.1:{port}/ws"},
            None, on_call, None, strict=True,
        )
        assert client.DoRegister()
        assert client.wait_for_registration(5)
        for _ in range(100):
            status = asyncio.run_coroutine_threadsafe(one_call(), loop).result(10)
            assert status == 486
        # Let the client's loop finish with the last call, then count what is left.
        client.checkClientStatus().result(5)
        assert len(ended) == 100
        # The client's thread may still be unwinding the last callback (its frame holds the
        # call for a moment): a leak is a call still alive after that, so look for up to 2 s.
        deadline = time.monotonic() + 2.0
        while True:
            gc.collect()
            alive = [r for r in refs if r() is not None]
            if not alive or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert alive == [], f"{len(alive)} of 100 ended calls are still alive"
        assert client._incoming.qsize() == 0
        assert not client.getCall()
    finally:
        client.close()
        loop.call_soon_threadsafe(stop.set)
        thread.join(5)
        loop.close()
