"""UPDATE (RFC 3311) and ``Allow``: an offer in an UPDATE is answered like a re-INVITE's,
in the UPDATE's own 200 OK; every method ``Allow`` lists gets a real answer.

Two user agents wired back to back in memory (bob answers; alice's UPDATEs are built by
hand from her dialog, as JsSIP's ``hold({useUpdate: true})`` sends them).
"""

from __future__ import annotations

import pytest

from exotel_voice.sip import Request, Response, parse_message
from exotel_voice.sip.calls import SDP, CallSession
from exotel_voice.sip.registration import ALLOW
from exotel_voice.sip.uri import SipURI
from exotel_voice.sip.useragent import (
    CallConfirmed,
    IncomingCall,
    ReInviteReceived,
    SessionState,
    UserAgent,
)


OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
ANSWER = OFFER.replace("o=- 1 1", "o=- 2 1")
HOLD = OFFER.replace("o=- 1 1", "o=- 1 2") + "a=sendonly\r\n"


def make_ua(user: str) -> UserAgent:
    return UserAgent(
        aor=SipURI("sip", user, "example.test"),
        registrar=SipURI("sip", None, "example.test"),
        auth_user=user,
        password="pw",
        instance_id=f"00000000-0000-0000-0000-00000000000{len(user)}",
        rng=lambda: 0.5,
    )


class Pair:
    def __init__(self) -> None:
        self.a, self.b = make_ua("alice"), make_ua("bob")
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

    def statuses(self, method: str) -> list[int]:
        out = [m.status for m in self.from_b
               if isinstance(m, Response) and m.cseq.method == method and m.status >= 200]
        self.from_b.clear()
        return out

    def send_a(self, call: CallSession, method: str, body: str | None = None) -> Request:
        """alice sends an in-dialog request built from her dialog."""
        assert call.dialog is not None and self.a.connection is not None
        if method == "ACK":
            request = call.dialog.create_ack(call.invite.cseq.seq)
            self.a.connection.send_ack(request)
        else:
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


def test_an_update_offer_is_answered_in_its_own_200(pair: Pair) -> None:
    call_a, call_b = establish(pair)
    pair.send_a(call_a, "UPDATE", HOLD)
    (event,) = pair.b.events_received()
    assert isinstance(event, ReInviteReceived)
    assert event.method == "UPDATE" and event.sdp == HOLD and call_b.remote_sdp == HOLD
    assert pair.statuses("UPDATE") == [], "nothing is answered before the owner's answer"
    pair.b.answer_reinvite(call_b, ANSWER + "a=recvonly\r\n", 0.0)
    pair.flush()
    (ok,) = [m for m in pair.from_b if isinstance(m, Response) and m.cseq.method == "UPDATE"]
    assert ok.status == 200 and b"a=recvonly" in ok.body and ok.content_type == SDP
    assert ok.headers["Contact"] == str(call_b.local_contact)
    # No ACK is awaited for an UPDATE: bob's call stays up, with no "no ACK" BYE later.
    pair.b.handle_timer(100.0)
    assert call_b.state is SessionState.ESTABLISHED
    assert not [m for m in map(parse_message, pair.b.data_to_send())
                if isinstance(m, Request) and m.method == "BYE"]


def test_an_update_offer_can_be_refused_and_the_call_goes_on(pair: Pair) -> None:
    call_a, call_b = establish(pair)
    pair.send_a(call_a, "UPDATE", HOLD)
    pair.b.events_received()
    pair.b.reject_reinvite(call_b, 0.0)
    pair.flush()
    assert pair.statuses("UPDATE") == [488]
    assert call_b.state is SessionState.ESTABLISHED


def test_an_update_offer_crossing_our_reinvite_is_491(pair: Pair) -> None:
    """RFC 3311 §5.2: an offer of ours awaits its answer: the UPDATE's offer gets 491."""
    call_a, call_b = establish(pair)
    pair.b.reinvite(call_b, HOLD, 0.0)  # not delivered yet
    pending = pair.b.data_to_send()
    pair.send_a(call_a, "UPDATE", HOLD)
    assert pair.statuses("UPDATE") == [491]
    assert pair.b.events_received() == []
    for data in pending:
        pair.a.receive_data(data, 0.0)


def test_an_update_offer_while_we_owe_an_answer_is_500_with_retry_after(pair: Pair) -> None:
    """RFC 3311 §5.2: we received an offer not yet answered: 500 with Retry-After 0-10."""
    call_a, call_b = establish(pair)
    pair.send_a(call_a, "INVITE", HOLD)  # a re-INVITE that bob has not answered yet
    assert [type(e) for e in pair.b.events_received()] == [ReInviteReceived]
    pair.send_a(call_a, "UPDATE", OFFER)
    (response,) = [m for m in pair.from_b if isinstance(m, Response) and m.cseq.method == "UPDATE"]
    assert response.status == 500 and 0 <= int(response.headers["Retry-After"]) <= 10


def test_an_update_without_a_body_is_a_target_refresh(pair: Pair) -> None:
    call_a, call_b = establish(pair)
    pair.send_a(call_a, "UPDATE")
    (ok,) = [m for m in pair.from_b if isinstance(m, Response) and m.cseq.method == "UPDATE"]
    assert ok.status == 200 and ok.body == b""
    assert ok.headers["Contact"] == str(call_b.local_contact)
    assert pair.b.events_received() == []


def test_an_update_offer_in_the_early_dialog_of_a_ringing_call_is_500(pair: Pair) -> None:
    """The INVITE's offer is not answered yet (RFC 3311 §5.2)."""
    call_a = pair.a.invite("sip:bob@example.test", OFFER, 0.0)
    pair.flush()
    pair.b.events_received()
    assert call_a.dialog is not None  # the 180's early dialog
    pair.from_b.clear()
    pair.send_a(call_a, "UPDATE", HOLD)
    assert pair.statuses("UPDATE") == [500]


def test_allow_lists_no_method_that_we_refuse() -> None:
    assert "REFER" not in ALLOW.split(",")


@pytest.mark.parametrize("method", ALLOW.split(","))
def test_every_method_in_allow_gets_a_real_answer_in_and_out_of_a_dialog(
    pair: Pair, method: str
) -> None:
    """Allow (RFC 3261 §20.5) lists what we handle: no method in it is answered 405 or
    501, neither inside a call nor outside one."""
    refused = {405, 501}
    # Outside any call: a request without To tag, on a call we do not have.
    b_conn = pair.b.connection
    assert b_conn is not None
    stray = (
        f"{method} sip:bob@example.test SIP/2.0\r\n"
        "Via: SIP/2.0/WSS far.example;branch=z9hG4bK-out1\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:carol@example.test>;tag=c1\r\n"
        "To: <sip:bob@example.test>\r\n"
        "Call-ID: stray-out-1\r\n"
        f"CSeq: 1 {method}\r\n"
        "Contact: <sip:carol@far.example;transport=ws>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    pair.b.receive_data(stray, 0.0)
    answers = [m.status for m in map(parse_message, pair.b.data_to_send())
               if isinstance(m, Response)]
    events = pair.b.events_received()
    assert not refused & set(answers), f"{method} outside a dialog: {answers}"
    if method != "ACK":
        assert answers or events, f"{method} outside a dialog got nothing"
    if method == "INVITE":
        assert [type(e) for e in events] == [IncomingCall]
        pair.b.reject(events[0].call, 0.0)  # type: ignore[attr-defined]
        pair.b.data_to_send(), pair.b.events_received()

    # Inside a call.
    call_a, call_b = establish(pair)
    if method == "ACK":
        pair.send_a(call_a, "ACK")
        assert [type(e) for e in pair.b.events_received()] == [CallConfirmed]
        return
    if method == "CANCEL":
        # A CANCEL in a dialog names no INVITE in progress: 481 (RFC 3261 §9.2).
        assert call_a.dialog is not None
        request = call_a.dialog.create_request("OPTIONS")
        raw = request.serialize().replace(b"OPTIONS", b"CANCEL")
        raw = raw.replace(b"Max-Forwards", b"Via: SIP/2.0/WSS a.invalid;branch=z9hG4bK-c9\r\n"
                                            b"Max-Forwards", 1)
        pair.b.receive_data(raw, 0.0)
        answers = [m.status for m in map(parse_message, pair.b.data_to_send())
                   if isinstance(m, Response)]
        assert answers and not refused & set(answers)
        return
    body = OFFER if method in ("INVITE", "UPDATE") else None
    pair.send_a(call_a, method, body)
    answers = pair.statuses(method)
    events = pair.b.events_received()
    assert not refused & set(answers), f"{method} in a dialog: {answers}"
    assert answers or events, f"{method} in a dialog got nothing"
