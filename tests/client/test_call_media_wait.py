"""CallMedia.reoffer(wait=True), which a dialog refresh and an ICE restart use: it waits for
the re-offer in progress and for the far end's offer being answered, offers the direction of
the moment it goes, and a re-offer the call's end overtakes fails with InvalidState saying so
(the fakes of tests/client/test_call_media.py; no network)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from exotel_voice.exceptions import InvalidState
from exotel_voice.sip.calls import (
    CallSession,
    ReInviteAnswered,
    ReInviteReceived,
    SessionState,
)
from tests.client.test_call_media import FakeMedia, Layer, Owner


class StrictLayer(Layer):
    """Refuses to send a re-INVITE while the far end's offer waits for our answer, as the
    call layer does (RFC 3261 §14.1)."""

    def __init__(self) -> None:
        super().__init__()
        self.their_offer_pending = False

    def reinvite(self, call: CallSession, sdp: str, now: float) -> None:
        if self.their_offer_pending:
            raise InvalidState("a re-INVITE is already in progress on this call")
        super().reinvite(call, sdp, now)

    def answer_reinvite(self, call: CallSession, sdp: str | None, now: float) -> None:
        self.their_offer_pending = False
        super().answer_reinvite(call, sdp, now)


def strict_owner(media: FakeMedia) -> tuple[Owner, StrictLayer]:
    o = Owner(SessionState.ESTABLISHED, media)
    layer = StrictLayer()
    o.layer = layer
    o.glue._run = lambda command: command(layer, 0.0)
    return o, layer


async def test_a_refresh_crossed_by_the_far_ends_offer_answers_it_first_then_goes() -> None:
    media = FakeMedia()
    media.gate = asyncio.Event()  # our offer is being made ...
    o, layer = strict_owner(media)
    refresh = asyncio.ensure_future(
        o.glue.reoffer(lambda: "sendrecv", lambda: None, what="refresh", wait=True)
    )
    await o.settle()
    layer.their_offer_pending = True  # ... when the far end's re-INVITE comes in
    o.glue.handle(ReInviteReceived(o.session, "their-offer"))
    media.gate.set()
    await o.settle()
    assert not refresh.done()
    # Ours was not sent: rolled back, their offer answered, then ours made again and sent.
    assert layer.sent == [("answer_reinvite", "update-answer"), ("reinvite", "offer-sendrecv")]
    calls = [c[0] for c in media.calls]
    assert calls == ["create_reoffer", "rollback", "update", "create_reoffer"]
    o.glue.handle(ReInviteAnswered(o.session, "refreshed"))
    await asyncio.wait_for(refresh, 1)


async def test_a_refresh_offers_the_direction_of_when_it_goes() -> None:
    media = FakeMedia()
    o = Owner(SessionState.ESTABLISHED, media)
    held: list[bool] = []
    hold = asyncio.ensure_future(
        o.glue.reoffer("sendonly", lambda: held.append(True), what="hold")
    )
    await o.settle()
    refresh = asyncio.ensure_future(o.glue.reoffer(
        lambda: "sendonly" if held else "sendrecv", lambda: None, what="refresh", wait=True
    ))
    await o.settle()
    o.glue.handle(ReInviteAnswered(o.session, "held"))
    await asyncio.wait_for(hold, 1)
    await o.settle()
    # Asked for while the hold was in progress, made after it: it keeps the hold.
    assert o.layer.sent == [("reinvite", "offer-sendonly")] * 2
    o.glue.handle(ReInviteAnswered(o.session, "refreshed"))
    await asyncio.wait_for(refresh, 1)


@pytest.mark.parametrize("while_", ["making the offer", "waiting for the answer"])
async def test_a_reoffer_the_end_overtakes_fails_with_invalid_state(while_: str) -> None:
    media = FakeMedia()
    if while_ == "making the offer":
        media.gate = asyncio.Event()
    o = Owner(SessionState.ESTABLISHED, media)
    hold = asyncio.ensure_future(o.glue.reoffer("sendonly", lambda: None, what="hold"))
    await o.settle()
    o.session.state = SessionState.TERMINATED
    o.glue.end()
    if media.gate is not None:
        media.gate.set()
    with pytest.raises(InvalidState, match="^cannot hold: the call ended$"):
        await asyncio.wait_for(hold, 1)


async def test_a_refresh_waiting_for_a_hold_ends_with_the_call() -> None:
    o = Owner(SessionState.ESTABLISHED, FakeMedia())
    hold = asyncio.ensure_future(o.glue.reoffer("sendonly", lambda: None, what="hold"))
    await o.settle()
    refresh = asyncio.ensure_future(
        o.glue.reoffer("sendrecv", lambda: None, what="refresh", wait=True)
    )
    await o.settle()
    o.session.state = SessionState.TERMINATED
    o.glue.end()
    results: list[Any] = await asyncio.wait_for(
        asyncio.gather(hold, refresh, return_exceptions=True), 1
    )
    assert [str(r) for r in results] == [
        "cannot hold: the call ended", "cannot refresh: the call ended"
    ]
    assert all(isinstance(r, InvalidState) for r in results)
