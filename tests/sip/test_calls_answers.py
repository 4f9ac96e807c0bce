"""Bad answers to our INVITE, sans-I/O: a 2xx without Contact or To tag, an SDP that does not
parse in a 183 or a 200 (opaque here: the owner's media judges it), and a second 2xx from
another fork (RFC 3261 §13.2.2.4).

Each test drives one UserAgent with hand-built responses and checks what goes out on the
wire (ACK, BYE) and which call events come out.
"""

from __future__ import annotations

import logging

import pytest

from exotel_voice.sip import Request, Response, parse_message
from exotel_voice.sip.uri import SipURI
from exotel_voice.sip.useragent import (
    CallAnswered,
    CallEnded,
    CallProgress,
    CallSession,
    SessionState,
    UserAgent,
)
from exotel_voice.sip.utils import make_response


OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
ANSWER = OFFER.replace("o=- 1 1", "o=- 2 1")
GARBAGE_SDP = b"this is not SDP\r\nm=audio oops\r\n"
CONTACT = ("Contact", "<sip:bob@192.0.2.7:5070;transport=ws>")


def make_ua() -> UserAgent:
    ua = UserAgent(
        aor=SipURI("sip", "alice", "example.test"),
        registrar=SipURI("sip", None, "example.test"),
        auth_user="alice",
        password="pw",
        instance_id="00000000-0000-0000-0000-000000000001",
    )
    ua.connection_made(0.0)
    return ua


def dial(ua: UserAgent) -> tuple[CallSession, Request]:
    call = ua.invite("sip:bob@example.test", OFFER, 0.0)
    (raw,) = ua.data_to_send()
    invite = parse_message(raw)
    assert isinstance(invite, Request)
    return call, invite


def answer(
    invite: Request,
    status: int = 200,
    *,
    to_tag: str | None = "t1",
    contact: bool = True,
    body: bytes = ANSWER.encode(),
) -> Response:
    response = make_response(
        invite, status, to_tag=to_tag or "unused", headers=[CONTACT] if contact else [],
        body=body, content_type="application/sdp" if body else None,
    )
    if to_tag is None:
        response.headers.set("To", invite.headers["To"])
    return response


def sent(ua: UserAgent) -> list[Request]:
    out = []
    for raw in ua.data_to_send():
        message = parse_message(raw)
        assert isinstance(message, Request)
        out.append(message)
    return out


def ended(ua: UserAgent) -> CallEnded:
    events = ua.events_received()
    assert not any(isinstance(e, CallAnswered) for e in events), "a bad 2xx is not an answer"
    (end,) = [e for e in events if isinstance(e, CallEnded)]
    return end


def test_200_without_contact_is_acked_byed_and_ends_the_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ua = make_ua()
    call, invite = dial(ua)
    with caplog.at_level(logging.WARNING, logger="exotel_voice"):
        ua.receive_data(answer(invite, contact=False).serialize(), 0.1)
    ack, bye = sent(ua)
    assert (ack.method, bye.method) == ("ACK", "BYE")
    # No Contact: the requests go to the Request-URI of the INVITE, in the dialog of the 200.
    for request in (ack, bye):
        assert str(request.uri) == str(invite.uri)
        assert request.to.tag == "t1" and request.from_.tag == invite.from_.tag
        assert request.call_id == invite.call_id
    assert ack.cseq.seq == invite.cseq.seq
    end = ended(ua)
    assert end.by == "remote" and end.status is None
    assert "Contact" in end.reason and "200" in end.reason
    assert call.state is SessionState.TERMINATED and call.end_reason == end.reason
    assert not ua.calls
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # The far end's 200 to our BYE is absorbed; hangup() on the ended call does nothing.
    ua.receive_data(make_response(bye, 200).serialize(), 0.2)
    assert ua.events_received() == []
    ua.hangup(call, 0.3)
    assert ua.data_to_send() == [] and ua.events_received() == []


def test_200_without_contact_after_an_early_dialog_uses_its_target() -> None:
    ua = make_ua()
    call, invite = dial(ua)
    ua.receive_data(answer(invite, 183, body=b"").serialize(), 0.1)
    assert [type(e) for e in ua.events_received()] == [CallProgress]
    ua.receive_data(answer(invite, contact=False).serialize(), 0.2)
    ack, bye = sent(ua)
    assert (ack.method, bye.method) == ("ACK", "BYE")
    assert str(bye.uri) == "sip:bob@192.0.2.7:5070;transport=ws", "the 183's Contact"
    assert "Contact" in ended(ua).reason
    assert call.state is SessionState.TERMINATED


def test_200_without_to_tag_is_acked_byed_and_ends_the_call() -> None:
    ua = make_ua()
    call, invite = dial(ua)
    ua.receive_data(answer(invite, to_tag=None).serialize(), 0.1)
    ack, bye = sent(ua)
    assert (ack.method, bye.method) == ("ACK", "BYE")
    for request in (ack, bye):
        assert request.to.tag is None, "no tag to echo: the To of the 200 as it came"
        assert str(request.uri) == "sip:bob@192.0.2.7:5070;transport=ws"
    end = ended(ua)
    assert end.by == "remote" and "To tag" in end.reason
    assert call.state is SessionState.TERMINATED and not ua.calls


def test_hangup_of_a_call_whose_200_had_no_contact_returns_at_once() -> None:
    """Before the fix, hangup() left such a call TERMINATING forever (a CANCEL for a
    transaction that had already ended, and no 487 to end it)."""
    ua = make_ua()
    call, invite = dial(ua)
    ua.receive_data(answer(invite, contact=False).serialize(), 0.1)
    ua.data_to_send()
    ua.events_received()
    ua.hangup(call, 0.2)
    assert call.state is SessionState.TERMINATED


def test_sdp_is_opaque_text_the_owner_judges_it(caplog: pytest.LogCaptureFixture) -> None:
    """The SIP layer hands any SDP on as text (a 183's and a 200's alike): the owner's media
    judges it, and ends a call whose answer it cannot use with fail_call (ACK, then BYE)."""
    ua = make_ua()
    call, invite = dial(ua)
    with caplog.at_level(logging.WARNING, logger="exotel_voice"):
        ua.receive_data(answer(invite, 183, body=GARBAGE_SDP).serialize(), 0.1)
    (progress,) = ua.events_received()
    assert isinstance(progress, CallProgress) and progress.status == 183
    assert progress.sdp == GARBAGE_SDP.decode()
    assert call.state is SessionState.EARLY
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    ua.receive_data(answer(invite, body=GARBAGE_SDP).serialize(), 0.2)
    (ack,) = sent(ua)
    assert ack.method == "ACK" and ack.to.tag == "t1"
    (answered,) = ua.events_received()
    assert isinstance(answered, CallAnswered) and answered.sdp == GARBAGE_SDP.decode()
    ua.fail_call(call, 0.3, "the answer in the 200 OK cannot be used: the SDP cannot be parsed")
    (bye,) = sent(ua)
    assert bye.method == "BYE" and bye.uri == ack.uri and bye.to.tag == "t1"
    (end,) = ua.events_received()
    assert isinstance(end, CallEnded) and (end.by, end.status) == ("remote", None)
    assert "SDP cannot be parsed" in end.reason
    assert call.state is SessionState.TERMINATED and not ua.calls


def test_a_second_2xx_from_another_fork_is_acked_and_byed() -> None:
    ua = make_ua()
    call, invite = dial(ua)
    first = answer(invite, to_tag="t1")
    ua.receive_data(first.serialize(), 0.1)
    (ack1,) = sent(ua)
    assert ack1.method == "ACK" and ack1.to.tag == "t1"
    assert [type(e) for e in ua.events_received()] == [CallAnswered]

    other = make_response(
        invite, 200, to_tag="t2",
        headers=[("Contact", "<sip:carol@192.0.2.8:5080;transport=ws>")],
        body=ANSWER.encode(), content_type="application/sdp",
    )
    ua.receive_data(other.serialize(), 0.2)
    ack2, bye2 = sent(ua)
    assert (ack2.method, bye2.method) == ("ACK", "BYE")
    for request in (ack2, bye2):
        assert request.to.tag == "t2", "the second dialog, not the first"
        assert str(request.uri) == "sip:carol@192.0.2.8:5080;transport=ws"
        assert request.from_.tag == invite.from_.tag and request.call_id == invite.call_id
    assert ack2.cseq.seq == invite.cseq.seq
    # The first call is unaffected.
    assert ua.events_received() == []
    assert call.state is SessionState.ESTABLISHED
    assert call.dialog is not None and call.dialog.remote_tag == "t1"

    # Retransmissions: each 2xx gets its own dialog's ACK again, and no second BYE.
    ua.receive_data(other.serialize(), 0.3)
    (again2,) = sent(ua)
    assert again2.method == "ACK" and again2.to.tag == "t2"
    ua.receive_data(first.serialize(), 0.4)
    (again1,) = sent(ua)
    assert again1.method == "ACK" and again1.to.tag == "t1"
    # The fork's 200 to our BYE concerns nobody.
    ua.receive_data(make_response(bye2, 200).serialize(), 0.5)
    assert ua.events_received() == [] and call.state is SessionState.ESTABLISHED

    # The first call still works: our BYE goes to the first dialog.
    ua.hangup(call, 1.0)
    (bye1,) = sent(ua)
    assert bye1.method == "BYE" and bye1.to.tag == "t1"


def test_a_fork_2xx_after_the_call_ended_is_still_acked_and_byed() -> None:
    ua = make_ua()
    call, invite = dial(ua)
    ua.receive_data(answer(invite, to_tag="t1").serialize(), 0.1)
    ua.hangup(call, 0.2)
    assert [r.method for r in sent(ua)] == ["ACK", "BYE"]
    ua.events_received()
    ua.receive_data(answer(invite, to_tag="t3").serialize(), 1.0)
    ack, bye = sent(ua)
    assert (ack.method, bye.method) == ("ACK", "BYE") and ack.to.tag == bye.to.tag == "t3"
    assert ua.events_received() == []


def test_fork_records_are_forgotten_after_64_t1() -> None:
    ua = make_ua()
    call, invite = dial(ua)
    ua.receive_data(answer(invite, to_tag="t1").serialize(), 0.1)
    ua.hangup(call, 0.2)
    ua.data_to_send()
    ua.handle_timer(0.1 + 64 * ua.t1 + 1)
    ua.data_to_send()
    assert ua.call_layer._answered == {}


def test_fail_call_ends_an_established_call_with_bye_and_the_reason() -> None:
    ua = make_ua()
    call, invite = dial(ua)
    ua.receive_data(answer(invite).serialize(), 0.1)
    ua.data_to_send()
    ua.events_received()
    ua.fail_call(call, 0.2, "the answer has no a=fingerprint")
    (bye,) = sent(ua)
    assert bye.method == "BYE" and bye.to.tag == "t1"
    (end,) = ua.events_received()
    assert isinstance(end, CallEnded)
    assert (end.by, end.status, end.reason) == ("remote", None, "the answer has no a=fingerprint")
    assert call.state is SessionState.TERMINATED


@pytest.mark.parametrize("ending", ["answered then hung up", "bad 200"])
def test_an_early_dialog_of_another_fork_ends_with_the_call(ending: str) -> None:
    """A 183 from one fork makes an early dialog; the 200 comes from another fork (another
    To tag). The early dialog ends with the final answer (RFC 3261 §13.2.2.4) and the
    connection keeps no dialog of the call once it is over."""
    ua = make_ua()
    call, invite = dial(ua)
    ua.receive_data(answer(invite, 183, to_tag="fork-a", body=b"").serialize(), 0.1)
    assert [type(e) for e in ua.events_received()] == [CallProgress]
    connection = ua.connection
    assert connection is not None and len(connection._dialogs) == 1
    if ending == "bad 200":
        ua.receive_data(answer(invite, to_tag="fork-b", contact=False).serialize(), 0.2)
        assert ended(ua).status is None
    else:
        ua.receive_data(answer(invite, to_tag="fork-b").serialize(), 0.2)
        assert [type(e) for e in ua.events_received()] == [CallAnswered]
        assert call.dialog is not None and call.dialog.id.remote_tag == "fork-b"
        assert len(connection._dialogs) == 1, "only the answered fork's dialog is kept"
        ua.hangup(call, 0.3)
        (bye,) = [r for r in sent(ua) if r.method == "BYE"]
        ua.receive_data(make_response(bye, 200).serialize(), 0.4)
    assert call.state is SessionState.TERMINATED
    assert connection._dialogs == {}
