"""Call's public surface without a network: header redaction and event fan-out."""

from __future__ import annotations

import asyncio
from typing import Any

from exotel_voice.client import Call, CallEvent, CallRinging
from exotel_voice.sip import Headers, Request
from exotel_voice.sip.useragent import CallSession, SessionState
from tests.labels import call_label


class StubPhone:
    name = "agent"

    def __init__(self) -> None:
        self.published: list[Any] = []

    def _publish(self, event: Any) -> None:
        self.published.append(event)


def outgoing_call() -> Call:
    invite = Request(
        "INVITE",
        "sip:bob@example.test",
        Headers(
            [
                ("From", "<sip:alice@example.test>;tag=1"),
                ("To", "<sip:bob@example.test>"),
                ("Call-ID", "c1"),
                ("CSeq", "2 INVITE"),
                ("Proxy-Authorization", 'Digest username="alice", response="deadbeef"'),
                ("X-Ticket", "42"),
            ]
        ),
    )
    session = CallSession("o1", "outgoing", invite, SessionState.CALLING)
    phone = StubPhone()
    return Call(
        phone, session, None,  # type: ignore[arg-type]
        sip=lambda action: None, publish=phone._publish, new_source=lambda: None,  # type: ignore[arg-type,return-value]
    )


async def test_credentials_we_sent_are_not_exposed_through_headers() -> None:
    call = outgoing_call()
    assert call.headers["Proxy-Authorization"] == "[secure]"
    assert call.header("proxy-authorization") == "[secure]"
    assert "deadbeef" not in repr(call.headers)
    assert call.headers["X-Ticket"] == "42" and call.header("x-ticket") == "42"


async def test_every_events_iterator_gets_every_event() -> None:
    call = outgoing_call()
    got: dict[str, list[str]] = {"a": [], "b": []}

    async def consume(key: str) -> None:
        async for event in call.events():
            assert isinstance(event, CallEvent)
            got[key].append(call_label(event))

    tasks = [asyncio.ensure_future(consume(k)) for k in got]
    await asyncio.sleep(0)
    call._publish(CallRinging(call.phone.name, call, 180, "Ringing"))
    call._on_ended("remote", 486, "Busy Here")
    await asyncio.wait_for(asyncio.gather(*tasks), 2)
    assert got == {"a": ["ringing", "ended_remote"], "b": ["ringing", "ended_remote"]}
