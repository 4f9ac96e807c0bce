"""Target refresh after a reconnect: a call that moved onto a new flow (RFC 5626) tells the
far end its Contact again, and ends cleanly when the far end no longer has the dialog.

Two user agents wired back to back in memory; alice's REGISTERs go to a fake registrar.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from exotel_voice.sip import Headers, Request, Response, parse_message
from exotel_voice.sip.calls import CallSession
from exotel_voice.sip.registration import Registered, make_contact
from exotel_voice.sip.uri import SipURI
from exotel_voice.sip.useragent import (
    CallEnded,
    IncomingCall,
    ReInviteAnswered,
    ReInviteReceived,
    ReInviteRejected,
    SessionState,
    TargetRefreshNeeded,
    UserAgent,
)


OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
ANSWER = OFFER.replace("o=- 1 1", "o=- 2 1")


def make_ua(user: str) -> UserAgent:
    return UserAgent(
        aor=SipURI("sip", user, "example.test"),
        registrar=SipURI("sip", None, "example.test"),
        auth_user=user,
        password="pw",
        instance_id=f"00000000-0000-0000-0000-00000000000{len(user)}",
        rng=lambda: 0.5,
    )


def _answer(request: Request, status: int, *headers: tuple[str, str]) -> bytes:
    base = Headers([(k, request.headers[k]) for k in ("Via", "From", "To", "Call-ID", "CSeq")])
    for name, value in headers:
        base.add(name, value)
    return Response(status, None, base).serialize()


@dataclass
class Rig:
    """alice and bob back to back; alice's REGISTERs are answered by ``registrar_status``;
    ``hold`` keeps alice's requests of a method from reaching bob (``held``)."""

    a: UserAgent
    b: UserAgent
    now: float = 0.0
    registrar_status: int = 200
    hold: set[str] = field(default_factory=set)
    held: list[Request] = field(default_factory=list)
    sent_by_a: list[Request | Response] = field(default_factory=list)

    def flush(self) -> None:
        for _ in range(30):
            moved = False
            for data in self.a.data_to_send():
                moved = True
                msg = parse_message(data)
                self.sent_by_a.append(msg)
                if isinstance(msg, Request) and msg.method == "REGISTER":
                    contact = ("Contact", msg.headers["Contact"] + ";expires=300")
                    self.a.receive_data(_answer(msg, self.registrar_status, contact), self.now)
                elif isinstance(msg, Request) and msg.method in self.hold:
                    self.held.append(msg)
                else:
                    self.b.receive_data(data, self.now)
            for data in self.b.data_to_send():
                moved = True
                self.a.receive_data(data, self.now)
            if not moved:
                return
        raise AssertionError("messages kept flowing")

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            due = [d for d in (self.a.get_timer(), self.b.get_timer()) if d is not None]
            if not due or min(due) > end:
                break
            self.now = max(self.now, min(due))
            for ua in (self.a, self.b):
                ua.handle_timer(self.now)
            self.flush()
        self.now = end

    def sent(self, method: str) -> list[Request]:
        return [m for m in self.sent_by_a if isinstance(m, Request) and m.method == method]


@pytest.fixture
def rig() -> Rig:
    r = Rig(make_ua("alice"), make_ua("bob"))
    r.a.register(0.0)
    r.a.connection_made(0.0)
    r.b.connection_made(0.0)
    r.flush()
    assert any(isinstance(e, Registered) for e in r.a.events_received())
    return r


def establish(rig: Rig) -> tuple[CallSession, CallSession]:
    call_a = rig.a.invite("sip:bob@example.test", OFFER, rig.now)
    rig.flush()
    (incoming,) = rig.b.events_received()
    assert isinstance(incoming, IncomingCall)
    rig.b.answer(incoming.call, ANSWER, rig.now)
    rig.flush()
    rig.a.events_received(), rig.b.events_received()
    assert call_a.state is SessionState.ESTABLISHED
    return call_a, incoming.call


def reconnect(rig: Rig) -> list[object]:
    """alice's WebSocket drops and comes back; returns her events from the new flow."""
    rig.now += 1.0
    rig.a.connection_lost(rig.now, "1006")
    rig.a.events_received()
    rig.now += 1.0
    rig.a.connection_made(rig.now)
    rig.flush()
    return list(rig.a.events_received())


def test_a_moved_call_asks_for_a_refresh_once_the_new_flow_is_registered(rig: Rig) -> None:
    call_a, call_b = establish(rig)
    rig.now += 1.0
    rig.a.connection_lost(rig.now, "1006")
    rig.a.events_received()
    rig.a.connection_made(rig.now)
    # The REGISTER on the new flow is out but not answered: no refresh yet (the proxy could
    # not route its answer back to us before the binding exists).
    assert not [e for e in rig.a.events_received() if isinstance(e, TargetRefreshNeeded)]
    assert call_a.target_stale
    rig.flush()
    events = rig.a.events_received()
    kinds = [type(e) for e in events if isinstance(e, (Registered, TargetRefreshNeeded))]
    assert kinds == [Registered, TargetRefreshNeeded]
    (need,) = [e for e in events if isinstance(e, TargetRefreshNeeded)]
    assert need.call is call_a and need.reason == "reconnected"
    assert need.update_allowed, "bob's 200 OK listed UPDATE in Allow"

    # The owner answers with a re-offer: the re-INVITE carries our Contact on the new flow.
    rig.a.reinvite(call_a, OFFER, rig.now)
    rig.flush()
    reinvite = rig.sent("INVITE")[-1]
    assert reinvite.to.tag, "an in-dialog re-INVITE"
    assert reinvite.headers["Contact"] == str(rig.a.contact)
    (received,) = rig.b.events_received()
    assert isinstance(received, ReInviteReceived) and received.method == "INVITE"
    rig.b.answer_reinvite(call_b, ANSWER, rig.now)
    rig.flush()
    assert [type(e) for e in rig.a.events_received()] == [ReInviteAnswered]
    assert not call_a.target_stale and call_a.state is SessionState.ESTABLISHED
    # A later REGISTER refresh does not ask again.
    rig.advance(300.0)
    assert not [e for e in rig.a.events_received() if isinstance(e, TargetRefreshNeeded)]


def test_no_refresh_is_asked_while_the_new_flow_is_not_registered(rig: Rig) -> None:
    call_a, _ = establish(rig)
    rig.registrar_status = 403
    events = reconnect(rig)
    assert not [e for e in events if isinstance(e, TargetRefreshNeeded)]
    assert call_a.active and call_a.target_stale


def test_the_refresh_can_be_an_update_without_a_body(rig: Rig) -> None:
    call_a, call_b = establish(rig)
    reconnect(rig)
    rig.a.refresh_target(call_a, rig.now)
    rig.flush()
    (update,) = rig.sent("UPDATE")
    assert update.body == b"" and update.headers["Contact"] == str(rig.a.contact)
    assert rig.b.events_received() == [], "an UPDATE without an offer involves no media"
    assert call_a.state is SessionState.ESTABLISHED and call_b.state is SessionState.ESTABLISHED
    assert not call_a.target_stale
    assert rig.a.events_received() == []


def test_the_refresh_carries_a_contact_that_changed_with_the_flow(rig: Rig) -> None:
    call_a, _ = establish(rig)
    rig.a.contact = make_contact(secure=True, instance_id="00000000-0000-0000-0000-0000000000ff")
    reconnect(rig)
    assert call_a.local_contact == rig.a.contact
    rig.a.reinvite(call_a, OFFER, rig.now)
    rig.flush()
    assert rig.sent("INVITE")[-1].headers["Contact"] == str(rig.a.contact)


@pytest.mark.parametrize(
    ("status", "bye", "words"),
    [
        (481, False, "the server no longer knows this call (481 Call/Transaction Does Not "
                     "Exist) after the connection was lost"),
        (408, True, "the dialog is gone (408 Request Timeout)"),
        (404, False, "the dialog is gone (404 Not Found)"),
    ],
)
def test_a_refresh_answered_dialog_gone_ends_the_call_with_the_reason(
    rig: Rig, status: int, bye: bool, words: str
) -> None:
    call_a, _ = establish(rig)
    reconnect(rig)
    rig.hold = {"INVITE"}
    rig.a.reinvite(call_a, OFFER, rig.now)
    rig.flush()
    (reinvite,) = rig.held
    rig.sent_by_a.clear()
    rig.a.receive_data(_answer(reinvite, status), rig.now)
    rig.flush()
    events = rig.a.events_received()
    assert [type(e) for e in events] == [ReInviteRejected, CallEnded]
    ended = events[-1]
    assert isinstance(ended, CallEnded)
    assert ended.by == "remote" and ended.status == status
    assert words in ended.reason and "after the connection was lost" in ended.reason
    assert call_a.state is SessionState.TERMINATED
    assert bool(rig.sent("BYE")) is bye


def test_no_answer_to_the_refresh_ends_the_call_on_both_sides(rig: Rig) -> None:
    call_a, call_b = establish(rig)
    reconnect(rig)
    rig.hold = {"INVITE"}
    rig.a.reinvite(call_a, OFFER, rig.now)
    rig.flush()
    rig.hold = set()
    rig.advance(64 * 0.5 + 1.0)  # Timer B
    ended = [e for e in rig.a.events_received() if isinstance(e, CallEnded)]
    assert len(ended) == 1 and ended[0].status is None
    assert "no answer" in ended[0].reason and "connection was lost" in ended[0].reason
    # The BYE reached bob: his call ended too.
    assert rig.sent("BYE")
    assert call_b.state is SessionState.TERMINATED


def refused_refresh(rig: Rig, call: CallSession, status: int,
                    *headers: tuple[str, str]) -> list[object]:
    """alice re-INVITEs (the owner's answer to TargetRefreshNeeded), the INVITE is held
    from bob and answered ``status`` instead (as Kamailio does when it cannot reach him);
    returns alice's events."""
    rig.hold = {"INVITE"}
    rig.held.clear()
    rig.a.reinvite(call, OFFER, rig.now)
    rig.flush()
    (reinvite,) = rig.held
    rig.a.receive_data(_answer(reinvite, status, *headers), rig.now)
    rig.flush()
    return list(rig.a.events_received())


def wait_for_next_attempt(rig: Rig, call: CallSession, seconds: float) -> None:
    """Nothing is asked before ``seconds``; then the call asks for its refresh again."""
    rig.advance(seconds - 0.05)
    assert not [e for e in rig.a.events_received() if isinstance(e, TargetRefreshNeeded)]
    rig.advance(0.1)
    asked = [e for e in rig.a.events_received() if isinstance(e, TargetRefreshNeeded)]
    assert [(e.call, e.reason) for e in asked] == [(call, "reconnected")]


@pytest.mark.parametrize(
    ("status", "phrase"),
    [(500, "Server Internal Error"), (503, "Service Unavailable"), (488, "Not Acceptable Here")],
)
def test_a_refresh_refused_three_times_ends_the_call_on_both_sides(
    rig: Rig, status: int, phrase: str
) -> None:
    """Kamailio answers 500 when the far end's own flow is gone: the refresh is tried
    again after 2 s and 4 s, then the call ends with a BYE and the reason. 488 (the far
    end refused the unchanged session) is no different: its target still names our dead
    flow."""
    call_a, call_b = establish(rig)
    reconnect(rig)
    assert [type(e) for e in refused_refresh(rig, call_a, status)] == [ReInviteRejected]
    assert call_a.state is SessionState.ESTABLISHED and call_a.target_stale
    wait_for_next_attempt(rig, call_a, 2.0)
    assert [type(e) for e in refused_refresh(rig, call_a, status)] == [ReInviteRejected]
    wait_for_next_attempt(rig, call_a, 4.0)
    rig.hold = {"INVITE"}  # the BYE goes through
    assert not rig.sent("BYE")
    events = refused_refresh(rig, call_a, status)
    assert [type(e) for e in events] == [ReInviteRejected, CallEnded]
    ended = events[-1]
    assert isinstance(ended, CallEnded)
    assert (ended.by, ended.status) == ("remote", status)
    assert ended.reason == (
        "the call's signalling could not be restored after the connection was lost: its "
        f"refresh got {status} {phrase} (3 attempts)"
    )
    assert call_a.state is SessionState.TERMINATED
    # Our BYE reached bob: his call ended too; nothing more is asked or sent.
    assert len(rig.sent("BYE")) == 1
    assert call_b.state is SessionState.TERMINATED
    rig.advance(60.0)
    assert rig.a.events_received() == [] and len(rig.sent("INVITE")) == 4


def test_a_refused_refresh_then_accepted_keeps_the_call(rig: Rig) -> None:
    call_a, call_b = establish(rig)
    reconnect(rig)
    refused_refresh(rig, call_a, 500)
    wait_for_next_attempt(rig, call_a, 2.0)
    rig.hold = set()
    rig.a.reinvite(call_a, OFFER, rig.now)
    rig.flush()
    assert rig.sent("INVITE")[-1].headers["Contact"] == str(rig.a.contact)
    assert [e for e in rig.b.events_received() if isinstance(e, ReInviteReceived)]
    rig.b.answer_reinvite(call_b, ANSWER, rig.now)
    rig.flush()
    assert [type(e) for e in rig.a.events_received()] == [ReInviteAnswered]
    assert call_a.state is SessionState.ESTABLISHED and not call_a.target_stale
    # Nothing more is asked, and the refusals are forgotten: after the next reconnect the
    # refresh has its three attempts again.
    rig.advance(30.0)
    assert not [e for e in rig.a.events_received() if isinstance(e, TargetRefreshNeeded)]
    reconnect(rig)
    refused_refresh(rig, call_a, 500)
    wait_for_next_attempt(rig, call_a, 2.0)
    refused_refresh(rig, call_a, 500)
    assert call_a.state is SessionState.ESTABLISHED


def test_a_refused_refresh_waits_for_its_retry_after(rig: Rig) -> None:
    """500 with Retry-After (the far end owes an answer to an offer of its own, RFC 3261
    §14.2): the next attempt waits that long when it is longer than the back-off."""
    call_a, _ = establish(rig)
    reconnect(rig)
    refused_refresh(rig, call_a, 500, ("Retry-After", "7"))
    wait_for_next_attempt(rig, call_a, 7.0)


def test_the_refresh_retries_are_configurable(rig: Rig) -> None:
    rig.a.call_layer.refresh_retry_delays = [0.5]
    call_a, _ = establish(rig)
    reconnect(rig)
    refused_refresh(rig, call_a, 500)
    wait_for_next_attempt(rig, call_a, 0.5)
    events = refused_refresh(rig, call_a, 500)
    ended = events[-1]
    assert isinstance(ended, CallEnded) and ended.reason.endswith("(2 attempts)")
    for bad in ([-1.0], [float("nan")], ["soon"], 3):
        with pytest.raises(ValueError, match="refresh_retry_delays"):
            rig.a.call_layer.refresh_retry_delays = bad  # type: ignore[assignment]


def test_a_refused_refresh_retries_on_the_next_flow_if_this_one_goes(rig: Rig) -> None:
    call_a, _ = establish(rig)
    reconnect(rig)
    refused_refresh(rig, call_a, 500)
    rig.hold = set()
    events = reconnect(rig)  # before the back-off is over
    assert [e.call for e in events if isinstance(e, TargetRefreshNeeded)] == [call_a]
    rig.advance(10.0)  # the old back-off asks nothing more
    assert not [e for e in rig.a.events_received() if isinstance(e, TargetRefreshNeeded)]
    assert call_a.state is SessionState.ESTABLISHED


def test_a_flow_lost_again_during_the_refresh_waits_for_the_next_one(rig: Rig) -> None:
    call_a, _ = establish(rig)
    reconnect(rig)
    rig.hold = {"INVITE"}
    rig.a.reinvite(call_a, OFFER, rig.now)
    rig.flush()
    rig.hold = set()
    events = reconnect(rig)
    assert call_a.state is SessionState.ESTABLISHED
    assert [e.call for e in events if isinstance(e, TargetRefreshNeeded)] == [call_a]
