"""Crossing offers on incoming re-INVITEs (RFC 3261 §14.2, RFC 3311 §5.2).

* A re-INVITE that arrives while OUR re-INVITE (or initial INVITE) awaits its final response:
  ``491 Request Pending``; the far end backs off and retries (§14.1).
* A re-INVITE that arrives while we have not yet answered the far end's previous re-INVITE
  or UPDATE offer (or its initial INVITE): ``500`` with a ``Retry-After`` of 0-10 s; the
  first request is still ours to answer.

Two user agents wired back to back in memory, as in ``test_update.py``: alice's second
re-INVITE is built by hand from her dialog while her first is still pending at bob's.
"""

from __future__ import annotations

import pytest

from exotel_voice.sip import Request, Response, parse_message
from exotel_voice.sip.calls import SDP, CallSession
from exotel_voice.sip.uri import SipURI
from exotel_voice.sip.useragent import (
    CallAnswered,
    IncomingCall,
    ReInviteAnswered,
    ReInviteReceived,
    ReInviteRejected,
    SessionState,
    UserAgent,
)


OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
ANSWER = OFFER.replace("o=- 1 1", "o=- 2 1")
HOLD = OFFER.replace("o=- 1 1", "o=- 1 2") + "a=sendonly\r\n"
RESUME = OFFER.replace("o=- 1 1", "o=- 1 3")


def make_ua(user: str, rng: float = 0.5) -> UserAgent:
    return UserAgent(
        aor=SipURI("sip", user, "example.test"),
        registrar=SipURI("sip", None, "example.test"),
        auth_user=user,
        password="pw",
        instance_id=f"00000000-0000-0000-0000-00000000000{len(user)}",
        rng=lambda: rng,
    )


class Pair:
    def __init__(self, rng: float = 0.5) -> None:
        self.a, self.b = make_ua("alice"), make_ua("bob", rng)
        self.a.connection_made(0.0)
        self.b.connection_made(0.0)
        self.from_b: list[Request | Response] = []

    def flush(self) -> None:
        for _ in range(20):
            moved = False
            for data in self.a.data_to_send():
                moved = True
                self.b.receive_data(data, 0.0)
            for data in self.b.data_to_send():
                moved = True
                self.from_b.append(parse_message(data))
                self.a.receive_data(data, 0.0)
            if not moved:
                return
        raise AssertionError("messages kept flowing")

    def finals(self, method: str) -> list[Response]:
        """bob's final responses to ``method`` since the last call (then forgotten)."""
        out = [m for m in self.from_b
               if isinstance(m, Response) and m.cseq.method == method and m.status >= 200]
        self.from_b.clear()
        return out

    def send_a(self, call: CallSession, method: str, body: str | None = None) -> Request:
        """alice sends an in-dialog request built from her dialog, whatever she has pending."""
        assert call.dialog is not None and self.a.connection is not None
        request = call.dialog.create_request(
            method, body=body.encode() if body else b"", content_type=SDP if body else None
        )
        self.a.connection.send_request(request, 0.0)
        self.flush()
        return request


@pytest.fixture
def pair() -> Pair:
    return Pair()


def establish(pair: Pair) -> tuple[CallSession, CallSession]:
    call_a = pair.a.invite("sip:bob@example.test", OFFER, 0.0)
    pair.flush()
    (incoming,) = pair.b.events_received()
    assert isinstance(incoming, IncomingCall)
    pair.b.answer(incoming.call, ANSWER, 0.0)
    pair.flush()
    pair.a.events_received(), pair.b.events_received()
    pair.from_b.clear()
    return call_a, incoming.call


def assert_500_retry_after(response: Response) -> int:
    assert response.status == 500, f"{response.status} {response.reason}"
    retry = response.headers.get("Retry-After")
    assert retry is not None, "a 500 for crossing offers carries Retry-After (§14.2)"
    seconds = int(retry)
    assert 0 <= seconds <= 10
    return seconds


def test_a_reinvite_while_theirs_is_unanswered_is_500_with_retry_after(pair: Pair) -> None:
    """§14.2: "A UAS that receives a second INVITE before it sends the final response to a
    first INVITE with a lower CSeq sequence number on the same dialog MUST return a 500
    [...] and MUST include a Retry-After header field with a randomly chosen value of
    between 0 and 10 seconds"."""
    call_a, call_b = establish(pair)
    first = pair.send_a(call_a, "INVITE", HOLD)
    assert [type(e) for e in pair.b.events_received()] == [ReInviteReceived]
    second = pair.send_a(call_a, "INVITE", RESUME)
    (response,) = pair.finals("INVITE")
    assert response.cseq.seq == second.cseq.seq
    assert_500_retry_after(response)
    # The second offer is not reported and does not replace the first one.
    assert pair.b.events_received() == []
    assert call_b.remote_sdp == HOLD
    # The first re-INVITE is still bob's to answer, and the call goes on.
    pair.b.answer_reinvite(call_b, ANSWER + "a=recvonly\r\n", 0.0)
    pair.flush()
    (ok,) = pair.finals("INVITE")
    assert ok.status == 200 and ok.cseq.seq == first.cseq.seq and b"a=recvonly" in ok.body
    assert call_a.state is call_b.state is SessionState.ESTABLISHED


def test_a_reinvite_while_their_update_offer_is_unanswered_is_500(pair: Pair) -> None:
    """RFC 3311 §5.2 + RFC 3261 §14.2: an offer received in an UPDATE and not answered yet."""
    call_a, call_b = establish(pair)
    update = pair.send_a(call_a, "UPDATE", HOLD)
    (event,) = pair.b.events_received()
    assert isinstance(event, ReInviteReceived) and event.method == "UPDATE"
    pair.send_a(call_a, "INVITE", RESUME)
    (response,) = pair.finals("INVITE")
    assert_500_retry_after(response)
    assert pair.b.events_received() == [] and call_b.remote_sdp == HOLD
    pair.b.answer_reinvite(call_b, ANSWER, 0.0)
    pair.flush()
    (ok,) = pair.finals("UPDATE")
    assert ok.status == 200 and ok.cseq.seq == update.cseq.seq


@pytest.mark.parametrize("rng", [0.0, 0.37, 0.999])
def test_the_retry_after_is_random_between_0_and_10_seconds(rng: float) -> None:
    pair = Pair(rng)
    call_a, _ = establish(pair)
    pair.send_a(call_a, "INVITE", HOLD)
    pair.send_a(call_a, "INVITE", RESUME)
    (response,) = pair.finals("INVITE")
    assert assert_500_retry_after(response) == int(rng * 10)


def test_a_reinvite_while_ours_is_pending_is_491(pair: Pair) -> None:
    """§14.2: "A UAS that receives an INVITE on a dialog while an INVITE it had sent on
    that dialog is in progress MUST return a 491 (Request Pending)"."""
    call_a, call_b = establish(pair)
    pair.b.reinvite(call_b, HOLD, 0.0)
    ours = pair.b.data_to_send()  # bob's re-INVITE, not delivered yet: it crosses alice's
    pair.send_a(call_a, "INVITE", RESUME)
    (response,) = pair.finals("INVITE")
    assert response.status == 491
    assert "Retry-After" not in response.headers
    assert pair.b.events_received() == []
    # bob's own re-INVITE goes on: alice answers it.
    for data in ours:
        pair.a.receive_data(data, 0.0)
    (event,) = pair.a.events_received()
    assert isinstance(event, ReInviteReceived) and event.sdp == HOLD
    pair.a.answer_reinvite(call_a, ANSWER + "a=recvonly\r\n", 0.0)
    pair.flush()
    assert [type(e) for e in pair.b.events_received()] == [ReInviteAnswered]


def test_alice_backs_off_after_the_491_and_her_retry_is_taken(pair: Pair) -> None:
    """Both sides re-INVITE at once: each answers the other 491; each retries after its
    own back-off (§14.1) and the later one goes through once the first is done."""
    call_a, call_b = establish(pair)
    pair.a.reinvite(call_a, HOLD, 0.0)
    pair.b.reinvite(call_b, HOLD, 0.0)
    pair.flush()
    rejected_a = [e for e in pair.a.events_received() if isinstance(e, ReInviteRejected)]
    rejected_b = [e for e in pair.b.events_received() if isinstance(e, ReInviteRejected)]
    assert [e.status for e in rejected_a] == [491] and [e.status for e in rejected_b] == [491]
    assert call_a.state is call_b.state is SessionState.ESTABLISHED
    # A later re-INVITE (the retry) is taken normally: no glare state is left behind.
    pair.send_a(call_a, "INVITE", RESUME)
    (event,) = pair.b.events_received()
    assert isinstance(event, ReInviteReceived) and event.sdp == RESUME


def test_a_reinvite_after_the_first_was_answered_is_taken(pair: Pair) -> None:
    call_a, call_b = establish(pair)
    pair.send_a(call_a, "INVITE", HOLD)
    pair.b.events_received()
    pair.b.answer_reinvite(call_b, ANSWER, 0.0)
    pair.flush()
    pair.from_b.clear()
    pair.send_a(call_a, "INVITE", RESUME)
    (event,) = pair.b.events_received()
    assert isinstance(event, ReInviteReceived) and event.sdp == RESUME
    assert pair.finals("INVITE") == []  # waiting for bob's answer


def test_a_reinvite_in_the_early_dialog_of_a_ringing_call_is_500(pair: Pair) -> None:
    """bob has not sent the final response to alice's INVITE (it rings): a second INVITE
    on the early dialog crosses it (§14.2: 500 with Retry-After), and the call still rings
    and can be answered."""
    call_a = pair.a.invite("sip:bob@example.test", OFFER, 0.0)
    pair.flush()
    (incoming,) = pair.b.events_received()
    assert isinstance(incoming, IncomingCall)
    assert call_a.dialog is not None  # the 180's early dialog
    pair.from_b.clear()
    pair.send_a(call_a, "INVITE", HOLD)
    (response,) = pair.finals("INVITE")
    assert_500_retry_after(response)
    assert pair.b.events_received() == []
    call_b = incoming.call
    assert call_b.state is SessionState.INCOMING and call_b.remote_sdp == OFFER
    pair.b.answer(call_b, ANSWER, 0.0)
    pair.flush()
    assert call_b.state is SessionState.ESTABLISHED
    assert any(isinstance(e, CallAnswered) for e in pair.a.events_received())


def test_a_reinvite_while_our_initial_invite_is_pending_is_491(pair: Pair) -> None:
    """bob calls alice; her phone rings (early dialog). A re-INVITE from alice on that
    early dialog crosses bob's own INVITE, still without a final response: 491."""
    call_b = pair.b.invite("sip:alice@example.test", OFFER, 0.0)
    # deliver bob's INVITE to alice and her 180 back
    for data in pair.b.data_to_send():
        pair.a.receive_data(data, 0.0)
    (incoming,) = pair.a.events_received()
    assert isinstance(incoming, IncomingCall)
    call_a = incoming.call
    pair.flush()
    pair.b.events_received()
    pair.from_b.clear()
    # alice's early dialog: a re-INVITE built by hand on it
    assert call_a.dialog is not None
    pair.send_a(call_a, "INVITE", HOLD)
    (response,) = pair.finals("INVITE")
    assert response.status == 491
    assert pair.b.events_received() == []
    assert call_b.state is SessionState.EARLY
