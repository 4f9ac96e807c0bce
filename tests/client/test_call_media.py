"""CallMedia, the offer/answer glue a phone's Call and a sandbox Leg share, without a network.

A fake media session records what the glue asks of it (and can be told to refuse), and a
fake call layer records the commands the glue runs. The same steps with real aiortc media
run in tests/test_call_answers.py (a phone against a server that answers badly),
tests/interop/test_glare.py (491 and the retry) and tests/sandbox (the sandbox's legs).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from exotel_voice.client._call_media import CallMedia, same_but_version
from exotel_voice.exceptions import InvalidState, MediaError, SipError
from exotel_voice.media import MediaState
from exotel_voice.sip import Headers, Request
from exotel_voice.sip.calls import (
    CallAnswered,
    CallProgress,
    CallSession,
    ReInviteAnswered,
    ReInviteReceived,
    ReInviteRejected,
    ReInviteRetryDue,
    SessionState,
)


EARLY = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n"


class FakeMedia:
    """Records each call; an SDP equal to ``bad`` is refused with MediaError."""

    def __init__(self, bad: str = "bad") -> None:
        self.bad = bad
        self.calls: list[tuple[str, ...]] = []
        self.state = MediaState.OFFERING
        self.remote_hold = False
        self.remote_direction = "sendrecv"
        self.ice_problem: str | None = None
        self.gate: asyncio.Event | None = None

    async def _step(self, *call: str) -> None:
        self.calls.append(call)
        if self.gate is not None:
            await self.gate.wait()
        if self.bad in call[1:]:
            raise MediaError(f"cannot use {call[1]!r}")

    async def accept_offer(self, sdp: str) -> str:
        await self._step("accept_offer", sdp)
        return "answer"

    async def set_answer(self, sdp: str, *, provisional: bool = False) -> None:
        await self._step("set_answer", sdp, "provisional" if provisional else "final")
        self.state = MediaState.ACTIVE

    async def update(self, sdp: str) -> str:
        await self._step("update", sdp)
        self.remote_hold = "sendonly" in sdp
        return "update-answer"

    async def create_reoffer(self, direction: str) -> str:
        await self._step("create_reoffer", direction)
        return f"offer-{direction}"

    async def rollback(self) -> bool:
        await self._step("rollback")
        return True


class Layer:
    """The commands the glue ran, as ``(name, *args)``."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def answer(self, call: CallSession, sdp: str, now: float) -> None:
        call.state = SessionState.ESTABLISHED
        self.sent.append(("answer", sdp))

    def reject(
        self, call: CallSession, now: float, status: int = 486, reason: str | None = None
    ) -> None:
        call.state = SessionState.TERMINATED
        self.sent.append(("reject", status))

    def reinvite(self, call: CallSession, sdp: str, now: float) -> None:
        self.sent.append(("reinvite", sdp))

    def answer_reinvite(self, call: CallSession, sdp: str | None, now: float) -> None:
        self.sent.append(("answer_reinvite", sdp))

    def reject_reinvite(self, call: CallSession, now: float, status: int = 488) -> None:
        self.sent.append(("reject_reinvite", status))


class Owner:
    """A CallMedia with its fakes, and what it told its owner."""

    def __init__(self, state: SessionState, media: FakeMedia | None = None) -> None:
        invite = Request("INVITE", "sip:bob@example.test", Headers([("Call-ID", "c1")]))
        self.session = CallSession("s1", "outgoing", invite, state)
        self.layer = Layer()
        self.told: list[Any] = []
        self.glue = CallMedia(
            self.session,
            lambda command: command(self.layer, 0.0),
            name="call s1",
            media=media,  # type: ignore[arg-type]
            on_connected=lambda: self.told.append("connected"),
            on_failed=lambda problem: self.told.append(("failed", problem)),
            on_remote_hold=lambda held: self.told.append(("remote_hold", held)),
        )

    async def settle(self) -> None:
        for _ in range(20):
            await asyncio.sleep(0)


async def test_the_200s_answer_connects_the_call() -> None:
    media = FakeMedia()
    o = Owner(SessionState.ESTABLISHED, media)
    o.glue.handle(CallAnswered(o.session, "final"))
    await o.settle()
    assert media.calls == [("set_answer", "final", "final")]
    assert o.told == ["connected"]


async def test_an_unusable_200_answer_fails_the_call_naming_why() -> None:
    o = Owner(SessionState.ESTABLISHED, FakeMedia())
    o.glue.handle(CallAnswered(o.session, "bad"))
    await o.settle()
    assert o.told == [("failed", "the answer in the 200 OK cannot be used: cannot use 'bad'")]


async def test_a_200_without_an_answer_to_our_offer_fails_the_call() -> None:
    o = Owner(SessionState.ESTABLISHED, FakeMedia())
    o.glue.handle(CallAnswered(o.session, None))
    await o.settle()
    assert o.told == [("failed", "the 200 OK carries no SDP answer to our offer")]


async def test_steps_run_in_order_one_at_a_time() -> None:
    media = FakeMedia()
    media.gate = asyncio.Event()
    o = Owner(SessionState.EARLY, media)
    o.glue.handle(CallProgress(o.session, 183, "Session Progress", "early"))
    o.glue.handle(CallAnswered(o.session, "final"))
    await o.settle()
    assert media.calls == [("set_answer", "early", "provisional")], "the 200 waits its turn"
    media.gate.set()
    await o.settle()
    assert media.calls[1] == ("set_answer", "final", "final")
    assert o.told == ["connected"]


async def test_an_unusable_early_answer_only_loses_early_media() -> None:
    o = Owner(SessionState.EARLY, FakeMedia())
    o.glue.handle(CallProgress(o.session, 183, "Session Progress", "bad"))
    await o.settle()
    assert o.told == []
    o.session.state = SessionState.ESTABLISHED
    o.glue.handle(CallAnswered(o.session, "final"))
    await o.settle()
    assert o.told == ["connected"]


async def test_a_200_repeating_the_early_answer_with_a_new_version_keeps_the_early_one() -> None:
    final = EARLY.replace("o=- 1 1", "o=- 1 2")
    media = FakeMedia(bad=final)
    o = Owner(SessionState.EARLY, media)
    o.glue.handle(CallProgress(o.session, 183, "Session Progress", EARLY))
    o.session.state = SessionState.ESTABLISHED
    o.glue.handle(CallAnswered(o.session, final))
    await o.settle()
    assert media.calls[-1] == ("set_answer", EARLY, "final")
    assert o.told == ["connected"]


def test_same_but_version_ignores_only_the_session_version() -> None:
    assert same_but_version(EARLY, EARLY.replace("o=- 1 1", "o=- 1 7"))
    assert not same_but_version(EARLY, EARLY.replace("o=- 1 1", "o=- 2 1"))
    assert not same_but_version(EARLY, EARLY.replace("m=audio 9", "m=audio 10"))


async def test_answering_an_incoming_offer_sends_the_200() -> None:
    media = FakeMedia()
    o = Owner(SessionState.INCOMING)
    o.session.remote_sdp = "offer"
    await o.glue.answer(lambda: media)  # type: ignore[arg-type,return-value]
    assert o.glue.media is media
    assert o.layer.sent == [("answer", "answer")]
    assert o.told == ["connected"]
    with pytest.raises(InvalidState):
        await o.glue.answer(lambda: media)  # type: ignore[arg-type,return-value]


async def test_an_offer_that_cannot_be_answered_is_rejected_with_488() -> None:
    o = Owner(SessionState.INCOMING)
    o.session.remote_sdp = "bad"
    with pytest.raises(MediaError, match="cannot answer the call's offer: cannot use 'bad'"):
        await o.glue.answer(FakeMedia)  # type: ignore[arg-type]
    assert o.layer.sent == [("reject", 488)]
    assert o.told == []


async def test_a_reinvite_is_answered_from_the_media_and_reports_remote_hold() -> None:
    media = FakeMedia()
    o = Owner(SessionState.ESTABLISHED, media)
    o.glue.handle(ReInviteReceived(o.session, "a=sendonly"))
    await o.settle()
    o.glue.handle(ReInviteReceived(o.session, "bad"))
    await o.settle()
    o.glue.handle(ReInviteReceived(o.session, None))
    await o.settle()
    assert o.layer.sent == [
        ("answer_reinvite", "update-answer"),
        ("reject_reinvite", 488),
        ("answer_reinvite", None),
    ]
    assert o.glue.remote_hold and o.told == [("remote_hold", True)]


async def test_a_reoffer_applies_the_answer_then_returns() -> None:
    media = FakeMedia()
    o = Owner(SessionState.ESTABLISHED, media)
    applied: list[str] = []
    waiter = asyncio.ensure_future(
        o.glue.reoffer("sendonly", lambda: applied.append("held"), what="hold")
    )
    await o.settle()
    assert o.layer.sent == [("reinvite", "offer-sendonly")]
    with pytest.raises(InvalidState, match="a hold is already in progress"):
        await o.glue.reoffer("sendrecv", lambda: None)
    o.glue.handle(ReInviteAnswered(o.session, "held-answer"))
    await asyncio.wait_for(waiter, 1)
    assert applied == ["held"]
    assert media.calls[-1] == ("set_answer", "held-answer", "final")


async def test_a_refused_reoffer_rolls_back_and_fails_naming_the_status() -> None:
    media = FakeMedia()
    o = Owner(SessionState.ESTABLISHED, media)
    waiter = asyncio.ensure_future(o.glue.reoffer("sendonly", lambda: None, what="hold"))
    await o.settle()
    o.glue.handle(ReInviteRejected(o.session, 488, "Not Acceptable Here"))
    with pytest.raises(SipError, match="^hold failed: 488 Not Acceptable Here$"):
        await asyncio.wait_for(waiter, 1)
    await o.settle()
    assert media.calls[-1] == ("rollback",)


async def test_glare_rolls_back_then_offers_again_when_the_retry_is_due() -> None:
    media = FakeMedia()
    o = Owner(SessionState.ESTABLISHED, media)
    waiter = asyncio.ensure_future(o.glue.reoffer("sendonly", lambda: None, what="hold"))
    await o.settle()
    o.glue.handle(ReInviteRejected(o.session, 491, "Request Pending", retry_in=2.5))
    await o.settle()
    assert not waiter.done() and media.calls[-1] == ("rollback",)
    o.glue.handle(ReInviteRetryDue(o.session))
    await o.settle()
    assert o.layer.sent == [("reinvite", "offer-sendonly")] * 2
    o.glue.handle(ReInviteAnswered(o.session, "ok"))
    await asyncio.wait_for(waiter, 1)


async def test_an_unusable_answer_to_a_reoffer_rolls_back_and_fails() -> None:
    media = FakeMedia()
    o = Owner(SessionState.ESTABLISHED, media)
    applied: list[str] = []
    waiter = asyncio.ensure_future(
        o.glue.reoffer("sendrecv", lambda: applied.append("x"), what="resume")
    )
    await o.settle()
    o.glue.handle(ReInviteAnswered(o.session, "bad"))
    with pytest.raises(SipError, match="^resume failed: the answer cannot be used"):
        await asyncio.wait_for(waiter, 1)
    assert media.calls[-1] == ("rollback",) and applied == []


async def test_ending_fails_a_pending_reoffer_and_hands_over_the_media() -> None:
    media = FakeMedia()
    o = Owner(SessionState.ESTABLISHED, media)
    waiter = asyncio.ensure_future(o.glue.reoffer("sendonly", lambda: None))
    await o.settle()
    assert o.glue.end() is media and o.glue.media is None
    with pytest.raises(SipError, match="the call ended"):
        await asyncio.wait_for(waiter, 1)
    with pytest.raises(InvalidState):
        await o.glue.reoffer("sendonly", lambda: None)


async def test_a_refresh_waits_for_the_reoffer_in_progress_then_goes() -> None:
    media = FakeMedia()
    o = Owner(SessionState.ESTABLISHED, media)
    hold = asyncio.ensure_future(o.glue.reoffer("sendonly", lambda: None, what="hold"))
    await o.settle()
    refresh = asyncio.ensure_future(
        o.glue.reoffer("sendonly", lambda: None, what="refresh", wait=True)
    )
    await o.settle()
    assert o.layer.sent == [("reinvite", "offer-sendonly")] and not refresh.done()
    o.glue.handle(ReInviteAnswered(o.session, "held"))
    await asyncio.wait_for(hold, 1)
    await o.settle()
    assert o.layer.sent == [("reinvite", "offer-sendonly")] * 2  # the refresh, after the hold
    o.glue.handle(ReInviteAnswered(o.session, "refreshed"))
    await asyncio.wait_for(refresh, 1)


async def test_a_reoffer_cancelled_before_it_was_sent_does_not_block_the_next() -> None:
    media = FakeMedia()
    media.gate = asyncio.Event()  # create_reoffer hangs until the gate opens
    o = Owner(SessionState.ESTABLISHED, media)
    stuck = asyncio.ensure_future(o.glue.reoffer("sendonly", lambda: None, what="hold"))
    await o.settle()
    stuck.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stuck
    media.gate = None
    resume = asyncio.ensure_future(o.glue.reoffer("sendrecv", lambda: None, what="resume"))
    await o.settle()
    assert o.layer.sent == [("reinvite", "offer-sendrecv")]
    o.glue.handle(ReInviteAnswered(o.session, "ok"))
    await asyncio.wait_for(resume, 1)
