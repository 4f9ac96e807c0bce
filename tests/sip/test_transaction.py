"""The four RFC 3261 §17 state machines, driven alone (no connection, no event loop).

End-to-end flows through SipConnection: tests/sip/test_connection.py.
"""

from __future__ import annotations

import logging

import pytest

from exotel_voice.exceptions import InvalidState
from exotel_voice.sip.events import ResponseReceived, TransactionTerminated, TransactionTimedOut
from exotel_voice.sip.message import Request, Response
from exotel_voice.sip.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Input,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    TransactionState as S,
    client_key,
    server_key,
)
from exotel_voice.sip.utils import make_response
from tests.sip.conftest import new_request


def _with_via(request: Request, branch: str = "z9hG4bKabc", host: str = "h.invalid") -> Request:
    request.headers.prepend("Via", f"SIP/2.0/WSS {host};branch={branch}")
    return request


def _tables() -> list[type]:
    return [
        ClientInviteTransaction,
        ClientNonInviteTransaction,
        ServerInviteTransaction,
        ServerNonInviteTransaction,
    ]


@pytest.mark.parametrize("cls", _tables())
def test_tables_are_complete_data(cls: type) -> None:
    table = cls.TRANSITIONS  # type: ignore[attr-defined]
    # Every state reachable from the initial one has a row; TERMINATED has no way out.
    assert table[S.TERMINATED] == {}
    reachable = {cls.INITIAL}  # type: ignore[attr-defined]
    for row in table.values():
        reachable |= set(row.values())
    assert reachable == set(table)
    assert all(isinstance(i, Input) for row in table.values() for i in row)


def test_client_invite_reliable_flow() -> None:
    tx = ClientInviteTransaction(_with_via(new_request("INVITE")), reliable=True)
    tx.start(10.0)
    assert tx.messages_to_send() == [tx.request]
    assert tx.get_timer() == 42.0  # only Timer B
    tx.receive_response(make_response(tx.request, 180, to_tag="t"), 11.0)
    assert tx.state is S.PROCEEDING
    assert tx.get_timer() is None  # Timer B runs in CALLING only (Figure 5)
    tx.receive_response(make_response(tx.request, 404, to_tag="t"), 12.0)
    [ack] = tx.messages_to_send()
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.headers.get_all("Via") == tx.request.headers.get_all("Via")[:1]
    assert str(ack.uri) == str(tx.request.uri)
    assert tx.state is S.TERMINATED  # Timer D = 0 on reliable transports
    events = tx.events()
    assert [type(e) for e in events] == [ResponseReceived, ResponseReceived, TransactionTerminated]


def test_client_invite_ignores_late_responses() -> None:
    tx = ClientInviteTransaction(_with_via(new_request("INVITE")), reliable=False)
    tx.start(0.0)
    tx.messages_to_send()
    tx.receive_response(make_response(tx.request, 500, to_tag="t"), 0.1)
    tx.events()
    [ack] = tx.messages_to_send()
    assert tx.state is S.COMPLETED and tx.get_timer() == pytest.approx(32.1)  # Timer D
    tx.receive_response(make_response(tx.request, 180, to_tag="t"), 0.2)
    tx.receive_response(make_response(tx.request, 200, to_tag="t"), 0.3)
    assert tx.events() == [] and tx.messages_to_send() == []
    tx.handle_timer(32.1)
    assert tx.state is S.TERMINATED
    assert ack.method == "ACK"


def test_client_transaction_cannot_start_twice() -> None:
    tx = ClientNonInviteTransaction(_with_via(new_request("OPTIONS")))
    tx.start(0.0)
    with pytest.raises(InvalidState, match="already started"):
        tx.start(1.0)


def test_wrong_methods_are_refused() -> None:
    with pytest.raises(ValueError):
        ClientInviteTransaction(_with_via(new_request("OPTIONS")))
    with pytest.raises(ValueError):
        ClientNonInviteTransaction(_with_via(new_request("INVITE")))
    with pytest.raises(ValueError):
        ServerInviteTransaction(_with_via(new_request("BYE")), 0.0)
    with pytest.raises(ValueError):
        ServerNonInviteTransaction(_with_via(new_request("ACK")), 0.0)


def test_client_non_invite_timer_k_unreliable() -> None:
    tx = ClientNonInviteTransaction(_with_via(new_request("REGISTER")), reliable=False)
    tx.start(0.0)
    tx.receive_response(make_response(tx.request, 200, to_tag="t"), 1.0)
    assert tx.state is S.COMPLETED
    assert tx.get_timer() == 6.0  # Timer K = T4 = 5 s
    tx.handle_timer(5.999)
    assert tx.state is S.COMPLETED
    tx.handle_timer(6.0)
    assert tx.state is S.TERMINATED


def test_custom_t1_scales_timeouts() -> None:
    from exotel_voice.sip.transaction import TimerValues

    tx = ClientNonInviteTransaction(
        _with_via(new_request("OPTIONS")), reliable=True, timers=TimerValues(t1=0.25)
    )
    tx.start(0.0)
    assert tx.get_timer() == 16.0
    tx.handle_timer(16.0)
    events = tx.events()
    assert isinstance(events[0], TransactionTimedOut) and events[0].timer == "F"


def test_server_invite_state_errors_name_the_state() -> None:
    tx = ServerInviteTransaction(_with_via(new_request("INVITE")), 0.0, reliable=True)
    tx.send_response(make_response(tx.request, 486, to_tag="t"), 0.0)
    assert tx.state is S.COMPLETED
    with pytest.raises(InvalidState, match="in state COMPLETED"):
        tx.send_response(make_response(tx.request, 200, to_tag="t"), 0.0)
    with pytest.raises(InvalidState, match="in state COMPLETED"):
        tx.send_response(make_response(tx.request, 180, to_tag="t"), 0.0)


def test_server_invite_accepted_passes_ack_and_absorbs_invites() -> None:
    invite = _with_via(new_request("INVITE"))
    tx = ServerInviteTransaction(invite, 0.0, reliable=True)
    ok = make_response(invite, 200, to_tag="t")
    tx.send_response(ok, 0.1)
    assert tx.state is S.ACCEPTED and tx.messages_to_send() == [ok]
    tx.receive_request(invite, 0.2)
    assert tx.messages_to_send() == []
    # The TU may retransmit its 2xx through the transaction while ACCEPTED (RFC 6026).
    tx.send_response(ok, 0.5)
    assert tx.messages_to_send() == [ok]
    ack = Request("ACK", invite.uri, invite.headers.copy())
    assert tx.receive_ack(ack, 0.6) is True
    assert tx.state is S.ACCEPTED
    tx.handle_timer(32.1)
    assert tx.state is S.TERMINATED


def test_server_trying_disabled_and_cancelled() -> None:
    from exotel_voice.sip.transaction import TimerValues

    invite = _with_via(new_request("INVITE"))
    quiet = ServerInviteTransaction(invite, 0.0, timers=TimerValues(trying=None))
    assert quiet.get_timer() is None
    tx = ServerInviteTransaction(invite, 0.0)
    tx.send_response(make_response(invite, 180, to_tag="t"), 0.1)
    assert tx.get_timer() is None  # the TU answered within 200 ms: no 100 Trying
    [ringing] = tx.messages_to_send()
    assert isinstance(ringing, Response) and ringing.status == 180


def test_transport_error_terminates() -> None:
    tx = ClientNonInviteTransaction(_with_via(new_request("OPTIONS")))
    tx.start(0.0)
    tx.transport_error()
    events = tx.events()
    assert isinstance(events[0], TransactionTimedOut) and events[0].timer == "transport"
    assert isinstance(events[1], TransactionTerminated)
    tx.transport_error()  # idempotent
    assert tx.events() == []


def test_keys() -> None:
    invite = _with_via(new_request("INVITE"), branch="z9hG4bK1", host="Host.Invalid")
    assert server_key(invite) == ("z9hG4bK1", "host.invalid:", "INVITE")
    ack = Request("ACK", invite.uri, invite.headers.copy())
    ack.headers.set("CSeq", f"{invite.cseq.seq} ACK")
    assert server_key(ack) == server_key(invite)  # §17.2.3: ACK matches its INVITE
    cancel = Request("CANCEL", invite.uri, invite.headers.copy())
    cancel.headers.set("CSeq", f"{invite.cseq.seq} CANCEL")
    assert server_key(cancel)[:-1] == server_key(invite)[:-1]
    assert server_key(cancel) != server_key(invite)
    resp = make_response(invite, 180)
    assert client_key(resp) == ("z9hG4bK1", "INVITE")
    old = _with_via(new_request("OPTIONS"), branch="1234")
    key = server_key(old)
    assert key[0] == "rfc2543" and key[-1] == "OPTIONS"


def test_debug_turned_on_after_creation_shows_state_changes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A user who turns DEBUG on mid-call sees the transactions that already exist."""
    caplog.set_level(logging.INFO, logger="exotel_voice")
    tx = ClientInviteTransaction(_with_via(new_request("INVITE")), reliable=True)
    tx.start(10.0)
    caplog.set_level(logging.DEBUG, logger="exotel_voice")
    tx.receive_response(make_response(tx.request, 180, to_tag="t"), 11.0)
    assert any("CALLING -> PROCEEDING" in r.getMessage() for r in caplog.records)
