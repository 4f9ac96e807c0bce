"""UserAgent core: two user agents wired back to back in memory, with an explicit clock.

Calls through a real Kamailio are in tests/interop/test_calls.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from exotel_voice.exceptions import InvalidState
from exotel_voice.sip import Headers, Request, Response, parse_message
from exotel_voice.sip.registration import Registered, RegistrationFailed
from exotel_voice.sip.uri import SipURI
from exotel_voice.sip.useragent import (
    CallAnswered,
    CallEnded,
    CallProgress,
    IncomingCall,
    InfoAnswered,
    InfoReceived,
    ReInviteAnswered,
    ReInviteReceived,
    ReInviteRejected,
    ReInviteRetryDue,
    SessionState,
    UserAgent,
    parse_dtmf_relay,
)
from exotel_voice.sip.utils import make_response


OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
ANSWER = OFFER.replace("o=- 1 1", "o=- 2 1")


def make_ua(user: str, rng: float = 0.5) -> UserAgent:
    return UserAgent(
        aor=SipURI("sip", user, "example.test"),
        registrar=SipURI("sip", None, "example.test"),
        auth_user=user,
        password="pw",
        display_name=user.title(),
        instance_id=f"00000000-0000-0000-0000-00000000000{len(user)}",
        rng=lambda: rng,
    )


@dataclass
class Pair:
    """Two user agents connected to each other; ``flush`` delivers everything queued."""

    a: UserAgent
    b: UserAgent
    now: float = 0.0

    def flush(self) -> None:
        for _ in range(20):
            moved = False
            for src, dst in ((self.a, self.b), (self.b, self.a)):
                for data in src.data_to_send():
                    moved = True
                    dst.receive_data(data, self.now)
            if not moved:
                return
        raise AssertionError("messages kept flowing")

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for ua in (self.a, self.b):
            deadline = ua.get_timer()
            while deadline is not None and deadline <= self.now:
                ua.handle_timer(self.now)
                self.flush()
                nxt = ua.get_timer()
                if nxt == deadline:
                    break
                deadline = nxt


@pytest.fixture
def pair() -> Pair:
    p = Pair(make_ua("alice"), make_ua("bob", rng=0.0))
    p.a.connection_made(0.0)
    p.b.connection_made(0.0)
    return p


def types(ua: UserAgent) -> list[str]:
    return [type(e).__name__ for e in ua.events_received()]


def establish(pair: Pair) -> tuple[object, object]:
    call_a = pair.a.invite("sip:bob@example.test", OFFER, pair.now,
                           headers=[("X-Exotel-Callsid", "abc123")])
    pair.flush()
    incoming = pair.b.events_received()
    assert [type(e) for e in incoming] == [IncomingCall]
    call_b = incoming[0].call
    pair.b.answer(call_b, ANSWER, pair.now)
    pair.flush()
    return call_a, call_b


def test_invite_ringing_answer_ack_bye(pair: Pair) -> None:
    call_a = pair.a.invite("bob", OFFER, 0.0, headers=[("X-Exotel-Callsid", "abc123")])
    assert str(call_a.invite.uri) == "sip:bob@example.test"
    pair.flush()
    (incoming,) = pair.b.events_received()
    assert isinstance(incoming, IncomingCall)
    call_b = incoming.call
    assert call_b.state is SessionState.INCOMING and call_b.remote_sdp == OFFER
    assert call_b.invite.headers["X-Exotel-Callsid"] == "abc123"
    assert call_b.remote_identity.display_name == "Alice"
    events = pair.a.events_received()
    assert [(type(e), getattr(e, "status", None)) for e in events] == [(CallProgress, 180)]
    assert call_a.state is SessionState.EARLY

    pair.b.answer(call_b, ANSWER, 0.0)
    pair.flush()
    (answered,) = pair.a.events_received()
    assert isinstance(answered, CallAnswered) and answered.sdp == ANSWER
    assert types(pair.b) == ["CallConfirmed"]
    assert call_a.state is call_b.state is SessionState.ESTABLISHED

    pair.b.hangup(call_b, 1.0)
    pair.flush()
    (ended_b,) = pair.b.events_received()
    (ended_a,) = pair.a.events_received()
    assert isinstance(ended_a, CallEnded) and ended_a.by == "remote"
    assert isinstance(ended_b, CallEnded) and ended_b.by == "local"
    assert not pair.a.calls and not pair.b.calls


def test_reject_with_chosen_code(pair: Pair) -> None:
    pair.a.invite("bob", OFFER, 0.0)
    pair.flush()
    call_b = pair.b.events_received()[0].call
    pair.b.hangup(call_b, 0.0, 603, "Decline")
    pair.flush()
    ended = [e for e in pair.a.events_received() if isinstance(e, CallEnded)]
    assert ended and ended[0].status == 603 and ended[0].by == "remote"
    assert [e.by for e in pair.b.events_received() if isinstance(e, CallEnded)] == ["local"]


def test_cancel_before_answer(pair: Pair) -> None:
    call_a = pair.a.invite("bob", OFFER, 0.0)
    pair.a.cancel(call_a, 0.0)  # no provisional yet: the CANCEL waits for the 180 (§9.1)
    pair.flush()
    ended_b = [e for e in pair.b.events_received() if isinstance(e, CallEnded)]
    assert ended_b and ended_b[0].status == 487 and ended_b[0].by == "remote"
    ended_a = [e for e in pair.a.events_received() if isinstance(e, CallEnded)]
    assert ended_a and ended_a[0].by == "local" and ended_a[0].status == 487


def methods(data: list[bytes]) -> list[str]:
    out = []
    for raw in data:
        message = parse_message(raw)
        out.append(message.method if hasattr(message, "method") else str(message.status))
    return out


def test_cancel_goes_out_on_a_proxys_100_trying() -> None:
    # Through a proxy the first provisional may be the proxy's 100 (the callee may never
    # ring): §9.1 allows the CANCEL from then on, so it must not wait for a 180.
    ua = make_ua("alice")
    ua.connection_made(0.0)
    call = ua.invite("bob", OFFER, 0.0)
    (raw,) = ua.data_to_send()
    invite = parse_message(raw)
    assert isinstance(invite, Request)
    ua.receive_data(make_response(invite, 100).serialize(), 0.1)
    assert ua.data_to_send() == [] and ua.events_received() == []
    ua.cancel(call, 0.2)
    assert methods(ua.data_to_send()) == ["CANCEL"]
    # A later 180 (and a repeat of it) starts no second CANCEL transaction.
    ringing = make_response(invite, 180, to_tag="t1")
    ua.receive_data(ringing.serialize(), 0.3)
    ua.receive_data(ringing.serialize(), 0.4)
    assert ua.data_to_send() == []
    ua.receive_data(make_response(invite, 487, to_tag="t1").serialize(), 0.5)
    ended = [e for e in ua.events_received() if isinstance(e, CallEnded)]
    assert ended and ended[0].by == "local" and ended[0].status == 487
    assert call.state is SessionState.TERMINATED


def test_cancel_wanted_before_any_response_waits_for_the_100() -> None:
    ua = make_ua("alice")
    ua.connection_made(0.0)
    call = ua.invite("bob", OFFER, 0.0)
    (raw,) = ua.data_to_send()
    invite = parse_message(raw)
    assert isinstance(invite, Request)
    ua.cancel(call, 0.0)
    assert ua.data_to_send() == [], "no provisional yet: the CANCEL must wait (§9.1)"
    ua.receive_data(make_response(invite, 100).serialize(), 0.1)
    assert methods(ua.data_to_send()) == ["CANCEL"]


def test_ring_timeout_sends_480(pair: Pair) -> None:
    pair.b.ring_timeout = 5.0
    pair.a.invite("bob", OFFER, 0.0)
    pair.flush()
    pair.b.events_received()
    pair.advance(5.0)
    ended = [e for e in pair.a.events_received() if isinstance(e, CallEnded)]
    assert ended and ended[0].status == 480


def test_info_dtmf_both_ways(pair: Pair) -> None:
    call_a, call_b = establish(pair)
    pair.a.events_received(), pair.b.events_received()
    pair.a.send_info(call_a, "application/dtmf-relay", b"Signal=5\r\nDuration=240", 1.0)  # type: ignore[arg-type]
    pair.flush()
    (info,) = pair.b.events_received()
    assert isinstance(info, InfoReceived) and info.digit == "5"
    assert parse_dtmf_relay(b"signal= #\r\n") == "#" and parse_dtmf_relay(b"x") is None


def test_hold_reinvite_and_remote_sees_it(pair: Pair) -> None:
    call_a, call_b = establish(pair)
    pair.a.events_received(), pair.b.events_received()
    hold = OFFER + "a=sendonly\r\n"
    pair.a.reinvite(call_a, hold, 1.0)  # type: ignore[arg-type]
    pair.flush()
    (reinvite,) = pair.b.events_received()
    assert isinstance(reinvite, ReInviteReceived) and "a=sendonly" in (reinvite.sdp or "")
    pair.b.answer_reinvite(call_b, ANSWER + "a=recvonly\r\n", 1.0)  # type: ignore[arg-type]
    pair.flush()
    (answered,) = pair.a.events_received()
    assert isinstance(answered, ReInviteAnswered) and "a=recvonly" in (answered.sdp or "")
    assert call_a.state is SessionState.ESTABLISHED  # type: ignore[attr-defined]


def test_glare_491_then_retry_after_the_rfc_delay(pair: Pair) -> None:
    call_a, call_b = establish(pair)
    pair.a.events_received(), pair.b.events_received()
    # Both re-INVITE at once: each side answers the other's with 491 (RFC 3261 §14.2).
    pair.a.reinvite(call_a, OFFER, 1.0)  # type: ignore[arg-type]
    pair.b.reinvite(call_b, OFFER, 1.0)  # type: ignore[arg-type]
    pair.flush()
    rejected_a = [e for e in pair.a.events_received() if isinstance(e, ReInviteRejected)]
    rejected_b = [e for e in pair.b.events_received() if isinstance(e, ReInviteRejected)]
    assert rejected_a[0].status == 491 and rejected_b[0].status == 491
    # alice placed the call (owns the Call-ID): 2.1 + 1.9 * 0.5 s; bob: 2 * 0.0 s.
    assert rejected_a[0].retry_in == pytest.approx(3.05)
    assert rejected_b[0].retry_in == pytest.approx(0.0)
    pair.advance(0.0)
    assert types(pair.b) == ["ReInviteRetryDue"]
    pair.advance(3.05)
    assert [type(e) for e in pair.a.events_received()] == [ReInviteRetryDue]


def test_second_call_while_one_is_active(pair: Pair) -> None:
    establish(pair)
    pair.a.events_received(), pair.b.events_received()
    pair.a.invite("bob", OFFER, 2.0)
    pair.flush()
    assert types(pair.b) == ["IncomingCall"]
    assert len(pair.b.calls) == 2


def test_commands_in_the_wrong_state_are_clear_errors(pair: Pair) -> None:
    call_a = pair.a.invite("bob", OFFER, 0.0)
    with pytest.raises(InvalidState, match="cannot answer"):
        pair.a.answer(call_a, ANSWER, 0.0)
    with pytest.raises(InvalidState, match="cannot re-INVITE"):
        pair.a.reinvite(call_a, OFFER, 0.0)
    with pytest.raises(ValueError, match="4xx-6xx"):
        pair.flush()
        pair.b.reject(pair.b.events_received()[0].call, 0.0, 200)  # type: ignore[attr-defined]


def test_no_ack_ends_the_call_with_bye(pair: Pair) -> None:
    pair.a.invite("bob", OFFER, 0.0)
    pair.flush()
    call_b = pair.b.events_received()[0].call
    pair.b.answer(call_b, ANSWER, 0.0)
    pair.b.data_to_send()  # the 200 is lost: no ACK ever comes
    pair.advance(64 * 0.5)
    ended = [e for e in pair.b.events_received() if isinstance(e, CallEnded)]
    assert ended and "no ACK" in ended[0].reason


def test_malformed_input_keeps_the_agent_working(pair: Pair) -> None:
    pair.b.receive_data(b"INVITE sip:x SIP/2.0\r\nVia: garbage\r\n\r\n", 0.0)
    pair.b.receive_data(b"\x00\xff" * 50, 0.0)
    rejected = pair.b.events_received()
    assert len(rejected) == 2
    call_a, call_b = establish(pair)
    assert call_b.state is SessionState.ESTABLISHED  # type: ignore[attr-defined]


def test_registration_through_the_agent_and_request_timeout() -> None:
    ua = make_ua("alice")
    ua.registration.request_timeout = 3.0
    ua.register(0.0)
    assert ua.data_to_send() == [], "no flow yet: REGISTER waits for the connection"
    ua.connection_made(0.0)
    (register,) = ua.data_to_send()
    request = parse_message(register)
    assert request.method == "REGISTER"  # type: ignore[union-attr]
    headers = Headers([(k, request.headers[k]) for k in ("Via", "From", "To", "Call-ID", "CSeq")])
    headers.add("Contact", request.headers["Contact"])
    ua.receive_data(Response(200, "OK", headers).serialize(), 0.1)
    assert [type(e) for e in ua.events_received()][-1] is Registered
    # The refresh meets a silent server: a timeout after request_timeout, not after Timer F.
    ua.handle_timer(240.1)
    assert ua.data_to_send(), "the refresh was sent"
    ua.events_received()
    ua.handle_timer(243.1)
    failed = [e for e in ua.events_received() if isinstance(e, RegistrationFailed)]
    assert failed and failed[0].status is None and failed[0].retry_in == 2.0
    # The flow drops; on reconnect the agent re-registers by itself.
    ua.connection_lost(244.0)
    ua.connection_made(245.0)
    assert parse_message(ua.data_to_send()[0]).method == "REGISTER"  # type: ignore[union-attr]




def test_info_burst_goes_out_one_transaction_at_a_time(pair: Pair) -> None:
    call_a, call_b = establish(pair)
    pair.a.events_received(), pair.b.events_received()
    for digit in "123":
        body = f"Signal={digit}\r\nDuration=240".encode()
        pair.a.send_info(call_a, "application/dtmf-relay", body, 1.0)  # type: ignore[arg-type]
    assert len(pair.a.data_to_send()) == 1, "only the first INFO is on the wire"
    # That INFO was lost: Timer F (32 s after t=1) answers it, and the next one goes out.
    pair.advance(64 * 0.5 + 1.0)
    pair.flush()
    infos = [e for e in pair.b.events_received() if isinstance(e, InfoReceived)]
    assert [e.digit for e in infos] == ["2", "3"]
    answered = [e for e in pair.a.events_received() if isinstance(e, InfoAnswered)]
    assert [(e.status, e.body[:8]) for e in answered] == [
        (None, b"Signal=1"), (200, b"Signal=2"), (200, b"Signal=3")
    ]


def _answer(request: Request, status: int, *headers: tuple[str, str]) -> bytes:
    base = Headers([(k, request.headers[k]) for k in ("Via", "From", "To", "Call-ID", "CSeq")])
    for name, value in headers:
        base.add(name, value)
    return Response(status, None, base).serialize()


def _sent(ua: UserAgent, method: str) -> Request:
    found = [m for m in map(parse_message, ua.data_to_send())
             if isinstance(m, Request) and m.method == method]
    assert found, f"no {method} sent"
    return found[-1]


def test_a_proxy_challenge_to_an_invite_does_not_follow_the_next_register() -> None:
    """RFC 3261 §22.3: a 407 to an INVITE is one proxy on that INVITE's path asking."""
    ua = make_ua("alice")
    ua.connection_made(0.0)
    ua.register(0.0)
    first = _sent(ua, "REGISTER")
    ua.receive_data(_answer(first, 401, ("WWW-Authenticate",
                                         'Digest realm="example.test", nonce="w1"')), 0.1)
    answered = _sent(ua, "REGISTER")
    assert "Authorization" in answered.headers
    ua.receive_data(_answer(answered, 200, ("Contact", answered.headers["Contact"])), 0.2)
    assert isinstance(ua.events_received()[-1], Registered)

    ua.invite("sip:bob@example.test", OFFER, 1.0)
    invite = _sent(ua, "INVITE")
    ua.receive_data(_answer(invite, 407, ("Proxy-Authenticate",
                                          'Digest realm="example.test", nonce="p1"')), 1.1)
    assert "Proxy-Authorization" in _sent(ua, "INVITE").headers

    ua.handle_timer(240.2)
    refresh = _sent(ua, "REGISTER")
    assert "Proxy-Authorization" not in refresh.headers
    assert 'nonce="w1"' in refresh.headers["Authorization"]


def _request(method: str, to_tag: str | None = None, call_id: str = "stray-1") -> bytes:
    to = "<sip:bob@example.test>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"{method} sip:bob@example.test SIP/2.0\r\n"
        "Via: SIP/2.0/WSS far.example;branch=z9hG4bK-m1\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:mallory@example.test>;tag=m1\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: 1 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _answers(ua: UserAgent) -> list[int]:
    return [m.status for m in map(parse_message, ua.data_to_send()) if isinstance(m, Response)]


@pytest.mark.parametrize(
    ("method", "status"),
    [("FROBNICATE", 501), ("X-CUSTOM", 501), ("SUBSCRIBE", 405), ("PUBLISH", 405)],
)
def test_an_unknown_method_is_501_and_a_known_unhandled_one_405(
    pair: Pair, method: str, status: int
) -> None:
    """RFC 3261 §21.5.2: a method we do not recognise is 501 Not Implemented; §21.4.6: one we
    recognise but do not handle is 405 with Allow. Outside a call and inside one alike."""
    pair.b.receive_data(_request(method), 0.0)
    assert _answers(pair.b) == [status]
    call_a, call_b = establish(pair)
    pair.a.events_received(), pair.b.events_received()
    dialog = call_b.dialog  # type: ignore[attr-defined]
    assert dialog is not None
    pair.b.receive_data(
        _request(method, to_tag=dialog.id.local_tag, call_id=dialog.id.call_id)
        .replace(b"From: <sip:mallory@example.test>;tag=m1",
                 f"From: <sip:alice@example.test>;tag={dialog.id.remote_tag}".encode())
        .replace(b"CSeq: 1 ", f"CSeq: {dialog.remote_seq + 1} ".encode()),
        1.0,
    )
    assert _answers(pair.b) == [status]
    assert call_b.state is SessionState.ESTABLISHED  # type: ignore[attr-defined]
