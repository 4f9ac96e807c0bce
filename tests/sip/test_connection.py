"""SipConnection: a UAC core against a UAS core in memory, with an explicit clock.

Transaction state machines alone: tests/sip/test_transaction.py. Dialog rules alone:
tests/sip/test_dialog.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from exotel_voice.exceptions import InvalidMessage, InvalidState, LocalProtocolError
from exotel_voice.sip.connection import SipConnection
from exotel_voice.sip.dialog import Dialog, DialogState
from exotel_voice.sip.events import (
    CancelReceived,
    KeepaliveReceived,
    MessageRejected,
    RequestReceived,
    RequestRejected,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
)
from exotel_voice.sip.headers import parse_cseq
from exotel_voice.sip.message import Request, Response, parse_message
from exotel_voice.sip.transaction import (
    ClientInviteTransaction,
    ServerInviteTransaction,
    ServerTransaction,
    TransactionState,
)
from exotel_voice.sip.utils import make_cancel, make_response
from tests.sip.conftest import (
    ConnectionPair,
    assert_sent,
    counter_token,
    new_request,
    of_type,
)


DATA = Path(__file__).parent / "data"


def _server_tx(conn: SipConnection) -> tuple[Request, ServerTransaction]:
    [ev] = of_type(conn.events_received(), RequestReceived)
    assert ev.transaction is not None
    return ev.request, ev.transaction


# -------------------------------------------------------------------------------------------
# Non-INVITE
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["REGISTER", "OPTIONS"])
def test_non_invite_success(pair: ConnectionPair, method: str) -> None:
    tx = pair.uac.send_request(new_request(method, cseq=7), pair.now)
    [sent] = pair.deliver(pair.uac)
    assert isinstance(sent, Request)
    # The connection added a Via with our transport, host and an RFC 3261 branch.
    assert sent.via.transport == "WSS" and sent.via.host == "uac.invalid"
    assert sent.branch == "z9hG4bKc0001" and tx.branch == "z9hG4bKc0001"
    assert sent.headers["Max-Forwards"] == "70"

    request, stx = _server_tx(pair.uas)
    assert request.method == method and stx.state is TransactionState.TRYING
    pair.uas.send_response(make_response(request, 200), pair.now)
    # Reliable transport: Timer J is zero, the server transaction is gone at once.
    assert stx.state is TransactionState.TERMINATED
    assert of_type(pair.uas.events_received(), TransactionTerminated)[0].transaction is stx
    assert pair.uas.transactions == []

    [resp] = pair.deliver(pair.uas)
    assert isinstance(resp, Response) and resp.status == 200 and resp.cseq.seq == 7
    events = pair.uac.events_received()
    assert [type(e) for e in events] == [ResponseReceived, TransactionTerminated]
    assert events[0].transaction is tx and tx.state is TransactionState.TERMINATED
    assert pair.uac.get_timer() is None and pair.uas.get_timer() is None


def test_non_invite_provisional_then_final(pair: ConnectionPair) -> None:
    tx = pair.uac.send_request(new_request("MESSAGE"), pair.now)
    pair.deliver(pair.uac)
    request, stx = _server_tx(pair.uas)
    pair.uas.send_response(make_response(request, 100), pair.now)
    assert stx.state is TransactionState.PROCEEDING
    pair.deliver(pair.uas)
    assert tx.state is TransactionState.PROCEEDING
    pair.uas.send_response(make_response(request, 202), pair.now)
    pair.deliver(pair.uas)
    statuses = [e.response.status for e in of_type(pair.uac.events_received(), ResponseReceived)]
    assert statuses == [100, 202]


# -------------------------------------------------------------------------------------------
# INVITE
# -------------------------------------------------------------------------------------------


def _invite_to_uas(
    pair: ConnectionPair,
) -> tuple[ClientInviteTransaction, Request, ServerInviteTransaction]:
    tx = pair.uac.send_request(new_request("INVITE", cseq=1), pair.now)
    assert isinstance(tx, ClientInviteTransaction)
    pair.deliver(pair.uac)
    request, stx = _server_tx(pair.uas)
    assert isinstance(stx, ServerInviteTransaction)
    return tx, request, stx


def test_invite_100_180_200_and_ack(pair: ConnectionPair) -> None:
    tx, invite, stx = _invite_to_uas(pair)
    assert tx.state is TransactionState.CALLING
    uas_tag = "bobtag"
    for status in (100, 180):
        pair.uas.send_response(make_response(invite, status, to_tag=uas_tag), pair.now)
        pair.deliver(pair.uas)
        assert tx.state is TransactionState.PROCEEDING
    ok = make_response(
        invite, 200, to_tag=uas_tag, headers=[("Contact", "<sip:bob@uas.invalid;transport=ws>")]
    )
    pair.uas.send_response(ok, pair.now)
    assert stx.state is TransactionState.ACCEPTED  # RFC 6026
    [resp] = pair.deliver(pair.uas)
    events = pair.uac.events_received()
    assert [type(e) for e in events] == [
        ResponseReceived, ResponseReceived, ResponseReceived, TransactionTerminated
    ]
    assert [e.response.status for e in events[:3]] == [100, 180, 200]
    assert tx.state is TransactionState.TERMINATED
    assert isinstance(resp, Response)

    # The TU builds the dialog and ACKs the 2xx itself (RFC 3261 §13.2.2.4).
    dialog = Dialog.from_response(tx.request, resp)
    pair.uac.add_dialog(dialog)
    ack = dialog.create_ack(tx.request.cseq.seq)
    pair.uac.send_ack(ack)
    [sent_ack] = pair.deliver(pair.uac)
    assert isinstance(sent_ack, Request)
    assert sent_ack.method == "ACK" and sent_ack.cseq.seq == 1 and sent_ack.cseq.method == "ACK"
    assert sent_ack.branch != tx.branch  # a new branch, not the INVITE's
    assert str(sent_ack.uri) == "sip:bob@uas.invalid;transport=ws"
    [ev] = of_type(pair.uas.events_received(), RequestReceived)
    assert ev.request.method == "ACK" and ev.transaction is None
    # The server transaction lingers in ACCEPTED for Timer L = 64*T1 = 32 s, then goes.
    assert pair.uas.get_timer() == pytest.approx(pair.now + 32.0)
    pair.advance(31.9)
    assert stx.state is TransactionState.ACCEPTED
    pair.advance(0.1)
    assert stx.state is TransactionState.TERMINATED
    assert pair.uas.get_timer() is None


def test_stray_2xx_retransmission_reaches_tu_for_reack(pair: ConnectionPair) -> None:
    tx, invite, _ = _invite_to_uas(pair)
    ok = make_response(invite, 200, to_tag="b1", headers=[("Contact", "<sip:bob@uas.invalid>")])
    pair.uas.send_response(ok, pair.now)
    pair.deliver(pair.uas)
    pair.uac.events_received()
    dialog = Dialog.from_response(tx.request, ok)
    pair.uac.add_dialog(dialog)
    # The UAS core retransmits its 2xx (RFC 3261 §13.3.1.4): no transaction matches any more.
    pair.uas.send_response(ok, pair.now)
    pair.deliver(pair.uas)
    [ev] = pair.uac.events_received()
    assert isinstance(ev, ResponseReceived)
    assert ev.transaction is None and ev.response.status == 200 and ev.dialog is dialog


def test_invite_486_is_acked_by_the_transaction(pair: ConnectionPair) -> None:
    tx, invite, stx = _invite_to_uas(pair)
    pair.uas.send_response(make_response(invite, 486, to_tag="busy"), pair.now)
    assert stx.state is TransactionState.COMPLETED
    assert pair.uas.get_timer() == pytest.approx(pair.now + 32.0)  # Timer H
    pair.deliver(pair.uas)
    events = pair.uac.events_received()
    assert [type(e) for e in events] == [ResponseReceived, TransactionTerminated]
    assert events[0].response.status == 486
    ack = assert_sent(pair.pending(pair.uac), method="ACK")
    assert ack.branch == tx.branch  # §17.1.1.3: same Via as the INVITE
    assert ack.to.tag == "busy" and ack.cseq.seq == invite.cseq.seq
    pair.uas.receive_data(ack.serialize(), pair.now)
    # Reliable: CONFIRMED with Timer I = 0, so straight to TERMINATED; the ACK is absorbed.
    assert stx.state is TransactionState.TERMINATED
    events = pair.uas.events_received()
    assert [type(e) for e in events] == [TransactionTerminated]


def test_server_sends_100_trying_after_200ms(pair: ConnectionPair) -> None:
    _, _, stx = _invite_to_uas(pair)
    assert pair.uas.get_timer() == pytest.approx(pair.now + 0.2)
    pair.advance(0.19)
    assert pair.uas.data_to_send() == []
    pair.advance(0.01)
    assert_sent(pair.uas.data_to_send(), status=100)
    assert stx.state is TransactionState.PROCEEDING
    assert pair.uas.get_timer() is None


def test_cancel_before_answer(pair: ConnectionPair) -> None:
    tx, invite, stx = _invite_to_uas(pair)
    cancel = make_cancel(tx.request)
    # §9.1: no CANCEL before a provisional response.
    with pytest.raises(InvalidState, match="CALLING"):
        pair.uac.send_request(cancel, pair.now)
    pair.uas.send_response(make_response(invite, 180, to_tag="b"), pair.now)
    pair.deliver(pair.uas)
    pair.uac.events_received()
    ctx = pair.uac.send_request(cancel, pair.now)
    assert ctx.branch == tx.branch
    pair.deliver(pair.uac)

    events = pair.uas.events_received()
    [cancelled] = of_type(events, CancelReceived)
    assert cancelled.invite_transaction is stx
    # The connection answered the CANCEL 200 itself, with the same To tag as the 180.
    [ok] = pair.deliver(pair.uas)
    assert isinstance(ok, Response) and ok.status == 200 and ok.cseq.method == "CANCEL"
    assert ok.to.tag == "b"
    events = pair.uac.events_received()
    assert [type(e) for e in events] == [ResponseReceived, TransactionTerminated]
    assert events[0].transaction is ctx

    pair.uas.send_response(make_response(invite, 487, to_tag="b"), pair.now)
    [terminated] = pair.deliver(pair.uas)
    assert isinstance(terminated, Response) and terminated.status == 487
    events = pair.uac.events_received()
    assert events[0].response.status == 487 and events[0].transaction is tx
    ack = assert_sent(pair.pending(pair.uac), method="ACK")
    pair.uas.receive_data(ack.serialize(), pair.now)
    assert stx.state is TransactionState.TERMINATED
    assert pair.uac.transactions == [] and pair.uas.transactions == []


def test_cancel_matching_nothing_gets_481(pair: ConnectionPair) -> None:
    tx, invite, stx = _invite_to_uas(pair)
    pair.uas.send_response(make_response(invite, 180), pair.now)
    pair.deliver(pair.uas)
    cancel = make_cancel(tx.request)
    cancel.headers.set("Via", "SIP/2.0/WSS uac.invalid;branch=z9hG4bKnothere")
    pair.uas.receive_data(cancel.serialize(), pair.now)
    assert_sent(pair.uas.data_to_send(), status=481)
    [rejected] = of_type(pair.uas.events_received(), RequestRejected)
    assert rejected.response.status == 481
    assert stx.state is TransactionState.PROCEEDING


def test_cancel_after_final_gets_200_without_event(pair: ConnectionPair) -> None:
    tx, invite, stx = _invite_to_uas(pair)
    pair.uas.send_response(make_response(invite, 180, to_tag="t"), pair.now)
    pair.uas.send_response(make_response(invite, 200, to_tag="t"), pair.now)
    pair.uas.data_to_send()
    pair.uas.receive_data(make_cancel(tx.request).serialize(), pair.now)
    assert_sent(pair.uas.data_to_send(), status=200)
    assert of_type(pair.uas.events_received(), CancelReceived) == []
    assert stx.state is TransactionState.ACCEPTED


# -------------------------------------------------------------------------------------------
# Timers
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS"])
def test_timeout_b_f_when_nobody_answers(pair: ConnectionPair, method: str) -> None:
    start = pair.now
    tx = pair.uac.send_request(new_request(method), pair.now)
    pair.uac.data_to_send()  # lost on the way
    # Reliable: no retransmission timer, only B/F = 64*T1.
    assert pair.uac.get_timer() == start + 32.0
    pair.advance(31.999)
    assert pair.uac.events_received() == [] and pair.uac.data_to_send() == []
    pair.advance(0.001)
    events = pair.uac.events_received()
    assert [type(e) for e in events] == [TransactionTimedOut, TransactionTerminated]
    assert events[0].transaction is tx
    assert events[0].timer == ("B" if method == "INVITE" else "F")
    assert pair.uac.get_timer() is None


def test_unreliable_invite_timer_a_doubles(lossy_pair: ConnectionPair) -> None:
    p = lossy_pair
    start = p.now
    p.uac.send_request(new_request("INVITE"), p.now)
    assert len(p.uac.data_to_send()) == 1
    fired = []
    for _ in range(6):
        deadline = p.uac.get_timer()
        assert deadline is not None
        p.now = deadline
        p.uac.handle_timer(p.now)
        if p.uac.data_to_send():
            fired.append(round(p.now - start, 6))
    # §17.1.1.2: A = T1, 2T1, 4T1 ... (no T2 cap for INVITE) until B at 64*T1.
    assert fired == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    p.now = p.uac.get_timer() or 0
    assert p.now - start == pytest.approx(32.0)
    p.uac.handle_timer(p.now)
    assert [e.timer for e in of_type(p.uac.events_received(), TransactionTimedOut)] == ["B"]


def test_unreliable_non_invite_timer_e_caps_at_t2(lossy_pair: ConnectionPair) -> None:
    p = lossy_pair
    start = p.now
    p.uac.send_request(new_request("OPTIONS"), p.now)
    p.uac.data_to_send()
    fired = []
    while True:
        deadline = p.uac.get_timer()
        assert deadline is not None
        p.now = deadline
        p.uac.handle_timer(p.now)
        if of_type(p.uac.events_received(), TransactionTimedOut):
            break
        assert len(p.uac.data_to_send()) == 1
        fired.append(round(p.now - start, 6))
    # §17.1.2.2: E = T1, then MIN(2E, T2): 0.5, 1, 2, 4, 4, 4 ... until F at 32 s.
    assert fired[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]
    assert fired[-1] == 31.5 and p.now - start == pytest.approx(32.0)


def test_unreliable_non_invite_proceeding_retransmits_at_t2(lossy_pair: ConnectionPair) -> None:
    p = lossy_pair
    tx = p.uac.send_request(new_request("OPTIONS"), p.now)
    p.deliver(p.uac)
    request, _ = _server_tx(p.uas)
    p.uas.send_response(make_response(request, 100), p.now)
    p.deliver(p.uas)
    assert tx.state is TransactionState.PROCEEDING
    # The pending E deadline (T1) still fires; after that it is reset to T2.
    p.advance(0.5)
    assert len(p.uac.data_to_send()) == 1
    assert p.uac.get_timer() == pytest.approx(p.now + 4.0)


def test_unreliable_server_retransmission_absorption(lossy_pair: ConnectionPair) -> None:
    p = lossy_pair
    p.uac.send_request(new_request("OPTIONS"), p.now)
    [first] = p.uac.data_to_send()
    p.uas.receive_data(first, p.now)
    request, stx = _server_tx(p.uas)
    # A retransmission while TRYING is absorbed: no event, nothing sent.
    p.uas.receive_data(first, p.now)
    assert p.uas.events_received() == [] and p.uas.data_to_send() == []
    p.uas.send_response(make_response(request, 200, to_tag="x"), p.now)
    [ok] = p.uas.data_to_send()
    # COMPLETED: a retransmission gets the same final response again (§17.2.2).
    p.uas.receive_data(first, p.now)
    assert p.uas.data_to_send() == [ok]
    assert p.uas.events_received() == []
    # Timer J = 64*T1 on an unreliable transport.
    assert p.uas.get_timer() == pytest.approx(p.now + 32.0)
    p.advance(32.0)
    assert stx.state is TransactionState.TERMINATED


def test_unreliable_invite_server_timer_g_and_ack(lossy_pair: ConnectionPair) -> None:
    p = lossy_pair
    p.uac.send_request(new_request("INVITE"), p.now)
    [inv] = p.uac.data_to_send()
    p.uas.receive_data(inv, p.now)
    invite, stx = _server_tx(p.uas)
    p.uas.send_response(make_response(invite, 180, to_tag="g"), p.now)
    [ringing] = p.uas.data_to_send()
    # PROCEEDING: an INVITE retransmission gets the last provisional response again.
    p.uas.receive_data(inv, p.now)
    assert p.uas.data_to_send() == [ringing]
    start = p.now
    p.uas.send_response(make_response(invite, 603, to_tag="g"), p.now)
    [decline] = p.uas.data_to_send()
    fired = []
    for _ in range(5):
        p.now = p.uas.get_timer() or 0
        p.uas.handle_timer(p.now)
        assert p.uas.data_to_send() == [decline]
        fired.append(round(p.now - start, 6))
    # §17.2.1: G = T1, then MIN(2G, T2).
    assert fired == [0.5, 1.5, 3.5, 7.5, 11.5]
    p.uac.receive_data(decline, p.now)
    [ack] = p.uac.data_to_send()
    p.uas.receive_data(ack, p.now)
    assert stx.state is TransactionState.CONFIRMED
    assert p.uas.get_timer() == pytest.approx(p.now + 5.0)  # Timer I = T4
    # Retransmitted final response at the client: the ACK is resent, the TU hears nothing.
    p.uac.events_received()
    p.uac.receive_data(decline, p.now)
    assert p.uac.data_to_send() == [ack] and p.uac.events_received() == []
    p.advance(5.0)
    assert stx.state is TransactionState.TERMINATED


def test_unreliable_timer_h_without_ack(lossy_pair: ConnectionPair) -> None:
    p = lossy_pair
    p.uac.send_request(new_request("INVITE"), p.now)
    p.deliver(p.uac)
    invite, stx = _server_tx(p.uas)
    p.uas.send_response(make_response(invite, 480), p.now)
    p.advance(32.0)
    events = p.uas.events_received()
    assert [e.timer for e in of_type(events, TransactionTimedOut)] == ["H"]
    assert stx.state is TransactionState.TERMINATED


def test_cancel_gives_up_on_invite_after_64_t1(pair: ConnectionPair) -> None:
    tx, invite, _ = _invite_to_uas(pair)
    pair.uas.send_response(make_response(invite, 180), pair.now)
    pair.deliver(pair.uas)
    pair.uac.send_request(make_cancel(tx.request), pair.now)
    pair.uac.data_to_send()  # the CANCEL is lost; no 487 will ever come
    pair.uac.events_received()
    assert pair.uac.get_timer() == pytest.approx(pair.now + 32.0)
    pair.advance(32.0)
    timers = sorted(e.timer for e in of_type(pair.uac.events_received(), TransactionTimedOut))
    assert timers == ["CANCEL", "F"]
    assert tx.state is TransactionState.TERMINATED


def test_get_timer_is_the_earliest_of_all_transactions(pair: ConnectionPair) -> None:
    pair.uac.send_request(new_request("OPTIONS"), pair.now)
    pair.now += 3
    pair.uac.send_request(new_request("OPTIONS"), pair.now)
    assert pair.uac.get_timer() == pair.now - 3 + 32.0
    pair.advance(29.0)
    assert len(pair.uac.transactions) == 1
    assert pair.uac.get_timer() == pair.now + 3.0


# -------------------------------------------------------------------------------------------
# Dialogs through the connection
# -------------------------------------------------------------------------------------------


def _establish(pair: ConnectionPair) -> tuple[Dialog, Dialog]:
    """INVITE through a record-routing proxy (simulated), 200, ACK; both sides track dialogs."""
    tx = pair.uac.send_request(new_request("INVITE", cseq=10), pair.now)
    [raw] = pair.uac.data_to_send()
    # A proxy on the path adds Record-Route entries (p2 is nearest the UAS).
    invite_msg = parse_message(raw)
    assert isinstance(invite_msg, Request)
    invite_msg.headers.add("Record-Route", "<sip:p2.example.com;lr>")
    invite_msg.headers.add("Record-Route", "<sip:p1.example.com;lr>")
    pair.uas.receive_data(invite_msg.serialize(), pair.now)
    invite, _ = _server_tx(pair.uas)
    uas_dialog = Dialog.from_request(invite, "uastag", local_contact="<sip:bob@uas.invalid>")
    assert [str(r.uri) for r in uas_dialog.route_set] == [
        "sip:p2.example.com;lr", "sip:p1.example.com;lr"
    ]
    pair.uas.add_dialog(uas_dialog)
    ok = make_response(invite, 200, to_tag="uastag", headers=[("Contact", "<sip:bob@uas.invalid>")])
    pair.uas.send_response(ok, pair.now)
    uas_dialog.confirm()
    [resp] = pair.deliver(pair.uas)
    assert isinstance(resp, Response)
    uac_dialog = Dialog.from_response(tx.request, resp)
    # §12.1.2: the UAC's route set is the Record-Route reversed.
    assert [str(r.uri) for r in uac_dialog.route_set] == [
        "sip:p1.example.com;lr", "sip:p2.example.com;lr"
    ]
    pair.uac.add_dialog(uac_dialog)
    pair.uac.send_ack(uac_dialog.create_ack(10))
    pair.deliver(pair.uac)
    pair.uac.events_received()
    [ack_ev] = of_type(pair.uas.events_received(), RequestReceived)
    assert ack_ev.dialog is uas_dialog
    return uac_dialog, uas_dialog


def test_in_dialog_bye(pair: ConnectionPair) -> None:
    uac_dialog, uas_dialog = _establish(pair)
    bye = uac_dialog.create_request("BYE")
    assert bye.cseq.seq == 11 and bye.cseq.method == "BYE"
    assert str(bye.uri) == "sip:bob@uas.invalid"
    assert bye.headers.get_all("Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    tx = pair.uac.send_request(bye, pair.now)
    pair.deliver(pair.uac)
    [ev] = of_type(pair.uas.events_received(), RequestReceived)
    assert ev.dialog is uas_dialog and uas_dialog.state is DialogState.TERMINATED
    assert uas_dialog.remote_seq == 11
    assert ev.transaction is not None
    pair.uas.send_response(make_response(ev.request, 200), pair.now)
    pair.deliver(pair.uas)
    [resp] = of_type(pair.uac.events_received(), ResponseReceived)
    assert resp.transaction is tx and resp.dialog is uac_dialog and resp.response.status == 200


def test_reinvite_refreshes_remote_target(pair: ConnectionPair) -> None:
    uac_dialog, uas_dialog = _establish(pair)
    # The UAS sends a re-INVITE with a new Contact.
    uas_dialog.local_contact = uas_dialog.local_contact and type(uas_dialog.local_contact)(
        uas_dialog.local_contact.uri.copy(host="bob-new.invalid")  # type: ignore[union-attr]
    )
    reinvite = uas_dialog.create_request("INVITE")
    assert reinvite.headers["Contact"] == "<sip:bob@bob-new.invalid>"
    # UAS route set is in Record-Route order; Request-URI is Alice's Contact.
    assert reinvite.headers.get_all("Route") == [
        "<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"
    ]
    assert str(reinvite.uri) == "sip:alice@uac.invalid;transport=ws"
    first_seq = reinvite.cseq.seq
    tx = pair.uas.send_request(reinvite, pair.now)
    pair.deliver(pair.uas)
    [ev] = of_type(pair.uac.events_received(), RequestReceived)
    assert ev.dialog is uac_dialog
    assert str(uac_dialog.remote_target) == "sip:bob@bob-new.invalid"
    assert uac_dialog.remote_seq == first_seq
    ok = make_response(ev.request, 200, headers=[("Contact", "<sip:alice@alice-new.invalid>")])
    pair.uac.send_response(ok, pair.now)
    pair.deliver(pair.uac)
    [resp] = of_type(pair.uas.events_received(), ResponseReceived)
    assert resp.transaction is tx and resp.dialog is uas_dialog
    # §12.2.1.2: the 2xx to a target refresh replaces the remote target.
    assert str(uas_dialog.remote_target) == "sip:alice@alice-new.invalid"
    # The next in-dialog request increments CSeq again and goes to the new target.
    info = uas_dialog.create_request("INFO")
    assert info.cseq.seq == first_seq + 1
    assert str(info.uri) == "sip:alice@alice-new.invalid"


def test_unknown_dialog_gets_481(pair: ConnectionPair) -> None:
    _establish(pair)
    stale = new_request("BYE", to_tag="nosuchtag", cseq=99)
    tx = pair.uac.send_request(stale, pair.now)
    pair.deliver(pair.uac)
    events = pair.uas.events_received()
    assert of_type(events, RequestReceived) == []
    [rejected] = of_type(events, RequestRejected)
    assert rejected.response.status == 481
    pair.deliver(pair.uas)
    [resp] = of_type(pair.uac.events_received(), ResponseReceived)
    assert resp.transaction is tx and resp.response.status == 481


def test_out_of_order_cseq_gets_500(pair: ConnectionPair) -> None:
    uac_dialog, uas_dialog = _establish(pair)
    uac_dialog.local_seq = 5  # below the INVITE's 10: a broken peer
    pair.uac.send_request(uac_dialog.create_request("INFO"), pair.now)
    pair.deliver(pair.uac)
    [rejected] = of_type(pair.uas.events_received(), RequestRejected)
    assert rejected.response.status == 500
    assert uas_dialog.remote_seq == 10
    assert uas_dialog.state is DialogState.CONFIRMED


# -------------------------------------------------------------------------------------------
# Malformed input and keepalives
# -------------------------------------------------------------------------------------------

_BAD_REQUEST = (
    "OPTIONS sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/WSS uac.invalid;branch=z9hG4bKbad1\r\n"
    "From: <sip:alice@example.com>;tag=a1\r\n"
    "To: <sip:bob@example.com>\r\n"
    "Call-ID: bad-call\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Authorization: Digest username=\"alice\", response=\"SECRET-RESPONSE-VALUE\"\r\n"
    "Content-Length: 999\r\n"  # more than the body: invalid
    "\r\n"
)


def test_malformed_request_gets_400_and_connection_keeps_working(
    pair: ConnectionPair, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="exotel_voice")
    pair.uas.receive_data(_BAD_REQUEST, pair.now)
    [rejected] = pair.uas.events_received()
    assert isinstance(rejected, MessageRejected)
    assert rejected.error.status_hint == 400
    assert "OPTIONS" in rejected.excerpt and "bad-call" in rejected.excerpt
    assert "SECRET-RESPONSE-VALUE" not in rejected.excerpt
    assert "SECRET-RESPONSE-VALUE" not in caplog.text
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("rejected" in w and "Content-Length" in w for w in warnings), warnings
    resp = assert_sent(pair.uas.data_to_send(), status=400)
    assert resp.call_id == "bad-call" and resp.branch == "z9hG4bKbad1"
    assert resp.to.tag is not None and resp.from_.tag == "a1"
    assert rejected.response is not None and rejected.response.status == 400
    # The next valid message is processed normally.
    pair.uac.send_request(new_request("OPTIONS"), pair.now)
    pair.deliver(pair.uac)
    request, _ = _server_tx(pair.uas)
    assert request.method == "OPTIONS"


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\xff garbage",
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/WSS uac.invalid;branch=z9hG4bKx\r\n\r\n",  # no CSeq
        "ACK sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/WSS a.invalid;branch=z9hG4bKa\r\n"
        "From: <sip:a@b>;tag=1\r\nTo: <sip:b@c>\r\nCall-ID: x\r\nCSeq: 1 ACK\r\n"
        "Content-Length: 5\r\n\r\n",
        "",
    ],
    ids=["garbage", "response", "ack", "empty"],
)
def test_malformed_unanswerable_input_is_only_reported(
    pair: ConnectionPair, data: str | bytes
) -> None:
    pair.uas.receive_data(data, pair.now)
    [rejected] = pair.uas.events_received()
    assert isinstance(rejected, MessageRejected) and rejected.response is None
    assert pair.uas.data_to_send() == []


def test_unparsable_from_is_answered_400(pair: ConnectionPair) -> None:
    bad = _BAD_REQUEST.replace("Content-Length: 999", "Content-Length: 0").replace(
        "From: <sip:alice@example.com>;tag=a1", "From: <<<>"
    )
    pair.uas.receive_data(bad, pair.now)
    [rejected] = pair.uas.events_received()
    assert isinstance(rejected, MessageRejected)
    # §8.2.6.2 copies From verbatim, so the 400 carries the broken From back.
    [raw] = pair.uas.data_to_send()
    assert raw.startswith(b"SIP/2.0 400 ") and b"From: <<<>\r\n" in raw


# Malformed start lines (RFC 4475 §3.1.2.7-3.1.2.10 and the like): the message is still a
# request with the headers a response needs, so it is answered (RFC 3261 §8.2.6.2 copies them).
_MALFORMED_START_HEADERS = (
    "Via: SIP/2.0/WSS peer.invalid;branch=z9hG4bKmal1;received=127.0.0.1\r\n"
    "Via: SIP/2.0/WSS proxy.invalid;branch=z9hG4bKmal0\r\n"
    "From: <sip:alice@example.com>;tag=f1\r\n"
    "To: <sip:bob@example.com>\r\n"
    "Call-ID: malformed-start@peer\r\n"
    "CSeq: 42 OPTIONS\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)
_LONG_URI = "sip:" + "a" * 9000 + "@example.com"


@pytest.mark.parametrize(
    ("start", "status"),
    [
        ("OPTIONS  sip:bob@example.com SIP/2.0", 400),
        ("OPTIONS sip:bob@example.com  SIP/2.0", 400),
        ("OPTIONS sip:bob@example.com SIP/2.0 ", 400),
        ("OPTIONS sip:bob@example.com SIP/2.0  ", 400),
        (" OPTIONS sip:bob@example.com SIP/2.0", 400),
        ("OPTIONS\tsip:bob@example.com SIP/2.0", 400),
        ("OPTIONS sip:bob@example.com; lr SIP/2.0", 400),
        ("OPTIONS sip:bob@example.com", 400),
        (f"OPTIONS {_LONG_URI} SIP/2.0", 414),
        (f"OPTIONS  {_LONG_URI}  SIP/2.0 ", 414),
    ],
    ids=[
        "double-space", "double-space-2", "trailing-space", "two-trailing-spaces",
        "leading-space", "tab", "lws-in-uri", "no-version", "9000-char-uri",
        "9000-char-uri-and-spaces",
    ],
)
def test_malformed_start_line_is_answered(
    pair: ConnectionPair, caplog: pytest.LogCaptureFixture, start: str, status: int
) -> None:
    caplog.set_level(logging.DEBUG, logger="exotel_voice")
    pair.uas.receive_data((start + "\r\n" + _MALFORMED_START_HEADERS).encode(), pair.now)
    [rejected] = pair.uas.events_received()
    assert isinstance(rejected, MessageRejected)
    assert rejected.response is not None and rejected.response.status == status
    [raw] = pair.uas.data_to_send()
    reason = {400: b"Bad Request", 414: b"Request-URI Too Long"}[status]
    assert raw.startswith(b"SIP/2.0 %d %s\r\n" % (status, reason))
    # §8.2.6.2: Via (all of them, in order), From, Call-ID and CSeq copied; a To tag added.
    assert b"\r\nVia: SIP/2.0/WSS peer.invalid;branch=z9hG4bKmal1;received=127.0.0.1\r\n" \
        b"Via: SIP/2.0/WSS proxy.invalid;branch=z9hG4bKmal0\r\n" in raw
    response = parse_message(raw)
    assert isinstance(response, Response) and response.status == status
    assert response.call_id == "malformed-start@peer"
    assert response.cseq == parse_cseq("42 OPTIONS")
    assert response.from_.tag == "f1"
    assert response.to.tag and str(response.to.uri) == "sip:bob@example.com"
    # The log line says what was answered, and is not 9,000 characters long.
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"answered {status}" in warning and len(warning) < 1000, warning
    # The connection goes on: the next request is processed normally.
    pair.uac.send_request(new_request("OPTIONS"), pair.now)
    pair.deliver(pair.uac)
    request, _ = _server_tx(pair.uas)
    assert request.method == "OPTIONS"


@pytest.mark.parametrize("name", ["lwsstart", "trws", "lwsruri", "ltgtruri"])
def test_rfc4475_bad_request_lines_are_answered_400(pair: ConnectionPair, name: str) -> None:
    data = (DATA / "rfc4475" / f"{name}.sip").read_bytes()
    pair.uas.receive_data(data, pair.now)
    [rejected] = pair.uas.events_received()
    assert isinstance(rejected, MessageRejected)
    response = assert_sent(pair.uas.data_to_send(), status=400)
    start = data.split(b"\r\n", 1)[0]
    request = parse_message(data.replace(start, start.split()[0] + b" sip:x@y SIP/2.0", 1))
    assert response.call_id == request.call_id and response.branch == request.branch
    assert response.headers.get("CSeq") == request.headers.get("CSeq")


@pytest.mark.parametrize(
    "start",
    ["ACK  sip:bob@example.com SIP/2.0", f"ACK {_LONG_URI} SIP/2.0", "ack  sip:b@c SIP/2.0"],
)
def test_malformed_ack_is_never_answered(pair: ConnectionPair, start: str) -> None:
    headers = _MALFORMED_START_HEADERS.replace("42 OPTIONS", "42 ACK")
    pair.uas.receive_data((start + "\r\n" + headers).encode(), pair.now)
    [rejected] = pair.uas.events_received()
    assert isinstance(rejected, MessageRejected) and rejected.response is None
    assert pair.uas.data_to_send() == []


@pytest.mark.parametrize(
    "start",
    ["SIP/2.0  200 OK", "SIP/2.0 2000 OK", "SIP/2.0 20 OK", "sip/2.0  486 Busy Here"],
)
def test_malformed_response_is_dropped_and_logged(
    pair: ConnectionPair, caplog: pytest.LogCaptureFixture, start: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="exotel_voice")
    tx = pair.uac.send_request(new_request("OPTIONS"), pair.now)
    [raw_request] = pair.uac.data_to_send()
    request = parse_message(raw_request)
    assert isinstance(request, Request)
    good = make_response(request, 200).serialize()
    pair.uac.receive_data(start.encode() + good[good.index(b"\r\n"):], pair.now)
    [rejected] = pair.uac.events_received()
    assert isinstance(rejected, MessageRejected) and rejected.response is None
    assert pair.uac.data_to_send() == []  # a response is never answered
    assert tx.state is TransactionState.TRYING
    [record] = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert record.levelno == logging.WARNING
    # The line says it was a response and which one (by Call-ID), not "not SIP".
    assert "<Response " in record.getMessage() and "never answered" in record.getMessage()
    assert request.call_id in record.getMessage(), record.getMessage()


def test_salvage_unfolds_continuation_lines(pair: ConnectionPair) -> None:
    """A malformed request with folded Via and CSeq lines gets a 400 with the unfolded
    values (the salvage skipped continuation lines and sent an empty Via and CSeq)."""
    bad = (
        "INVITE <sip:bob@example.com> SIP/2.0\r\n"
        "Via:\r\n SIP/2.0/WSS peer.invalid;branch=z9hG4bKfold\r\n"
        "From: <sip:alice@example.com>;tag=f1\r\nTo: <sip:bob@example.com>\r\n"
        "Call-ID: folded\r\nCSeq:\r\n\t7\r\n  INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    pair.uas.receive_data(bad, pair.now)
    response = assert_sent(pair.uas.data_to_send(), status=400)
    assert response.branch == "z9hG4bKfold" and response.headers["CSeq"] == "7 INVITE"


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("From", "<sip:alice@example.com>;t\rag=f1"),  # a bare CR would go out in the 400
        ("Via", "SIP/2.0/UDP 192.0.2.15;;,;,,"),  # RFC 4475 badinv01: no valid Via to copy
        ("CSeq", ""),
    ],
    ids=["bare-cr", "garbage-via", "empty-cseq"],
)
def test_no_answer_that_would_itself_be_malformed(
    pair: ConnectionPair, header: str, value: str
) -> None:
    lines = {
        "Via": "SIP/2.0/WSS peer.invalid;branch=z9hG4bKm", "From": "<sip:a@b>;tag=f1",
        "To": "<sip:b@c>", "Call-ID": "c1", "CSeq": "1 OPTIONS",
    }
    lines[header] = value
    bad = "OPTIONS  sip:b@c SIP/2.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in lines.items())
    pair.uas.receive_data(bad + "\r\n", pair.now)
    [rejected] = pair.uas.events_received()
    assert isinstance(rejected, MessageRejected) and rejected.response is None
    assert pair.uas.data_to_send() == []


def test_keepalive_ping_gets_pong(pair: ConnectionPair) -> None:
    pair.uas.receive_data(b"\r\n\r\n", pair.now)
    assert pair.uas.data_to_send() == [b"\r\n"]
    assert pair.uas.events_received() == [KeepaliveReceived(ping=True)]
    pair.uac.receive_data("\r\n", pair.now)
    assert pair.uac.data_to_send() == []
    assert pair.uac.events_received() == [KeepaliveReceived(ping=False)]
    quiet = SipConnection(answer_pings=False)
    quiet.receive_data(b"\r\n\r\n", 0.0)
    assert quiet.data_to_send() == []
    quiet.send_keepalive()
    assert quiet.data_to_send() == [b"\r\n\r\n"]


def test_response_with_foreign_sent_by_is_discarded(pair: ConnectionPair) -> None:
    tx = pair.uac.send_request(new_request("OPTIONS"), pair.now)
    [raw] = pair.uac.data_to_send()
    req = parse_message(raw)
    assert isinstance(req, Request)
    resp = make_response(req, 200)
    resp.headers.set("Via", f"SIP/2.0/WSS elsewhere.invalid;branch={tx.branch}")
    pair.uac.receive_data(resp.serialize(), pair.now)
    assert pair.uac.events_received() == []
    assert tx.state is TransactionState.TRYING


# -------------------------------------------------------------------------------------------
# Local misuse
# -------------------------------------------------------------------------------------------


def test_local_misuse_raises(pair: ConnectionPair) -> None:
    with pytest.raises(LocalProtocolError, match="send_ack"):
        pair.uac.send_request(new_request("ACK"), pair.now)
    with pytest.raises(LocalProtocolError, match="needs an ACK"):
        pair.uac.send_ack(new_request("BYE"))
    broken = new_request("OPTIONS")
    broken.headers.remove("Call-ID")
    with pytest.raises(LocalProtocolError, match="Call-ID"):
        pair.uac.send_request(broken, pair.now)
    req = new_request("OPTIONS")
    pair.uac.send_request(req, pair.now)
    with pytest.raises(LocalProtocolError, match="already used"):
        pair.uac.send_request(req, pair.now)
    with pytest.raises(LocalProtocolError, match="no server transaction"):
        pair.uas.send_response(make_response(req, 200), pair.now)


def test_second_final_response_raises_invalid_state(lossy_pair: ConnectionPair) -> None:
    p = lossy_pair
    p.uac.send_request(new_request("OPTIONS"), p.now)
    p.deliver(p.uac)
    request, stx = _server_tx(p.uas)
    p.uas.send_response(make_response(request, 180, to_tag="x"), p.now)
    p.uas.send_response(make_response(request, 200, to_tag="x"), p.now)
    assert stx.state is TransactionState.COMPLETED
    with pytest.raises(InvalidState, match="COMPLETED"):
        p.uas.send_response(make_response(request, 486, to_tag="x"), p.now)
    assert stx.state is TransactionState.COMPLETED


def test_send_request_fixes_old_branch_and_keeps_given_via() -> None:
    conn = SipConnection(via_host="me.invalid", token=counter_token("t"))
    req = new_request("OPTIONS")
    req.headers.prepend("Via", "SIP/2.0/WS me.invalid;branch=oldstyle")
    tx = conn.send_request(req, 0.0)
    assert tx.branch == "z9hG4bKt0001"
    sent = parse_message(conn.data_to_send()[0])
    assert sent.via.transport == "WS" and sent.branch == "z9hG4bKt0001"
    assert len(sent.vias) == 1


# -------------------------------------------------------------------------------------------
# Checks of outgoing requests: the fast CSeq check agrees with the grammar
# -------------------------------------------------------------------------------------------


def _cseq_accepted(value: str, method: str) -> bool:
    """The general rule: the CSeq parses and names the request's method."""
    try:
        return parse_cseq(value).method == method
    except InvalidMessage:
        return False


_CSEQ_VALUES = [
    "5 REGISTER", "0 REGISTER", "2147483647 REGISTER", "0000000005 REGISTER",
    " 5 REGISTER", "5  REGISTER", "5\tREGISTER", "5 REGISTER ", "5 register", "5 INVITE",
    "2147483648 REGISTER", "12345678901 REGISTER", "REGISTER", "5", "", " REGISTER",
    "\u00b25 REGISTER", "\u0665 REGISTER", "-5 REGISTER", "+5 REGISTER", "5 REGISTER x",
    "1 FOO", "1 FOO.BAR~",
]


@pytest.mark.parametrize("value", _CSEQ_VALUES)
@pytest.mark.parametrize("method", ["REGISTER", "FOO"])
def test_send_request_checks_cseq_like_the_grammar(value: str, method: str) -> None:
    conn = SipConnection(token=counter_token("c"))
    req = new_request("OPTIONS")
    req.method = method
    req.headers.set("CSeq", value)
    if _cseq_accepted(value, method):
        conn.send_request(req, 0.0)
        [raw] = conn.data_to_send()
        sent = parse_message(raw)
        assert sent.cseq == parse_cseq(value)
    else:
        with pytest.raises(LocalProtocolError):
            conn.send_request(req, 0.0)
        assert conn.data_to_send() == [] and conn.transactions == []


def test_send_request_uses_the_first_cseq() -> None:
    conn = SipConnection()
    req = new_request("OPTIONS", cseq=3)
    req.headers.add("CSeq", "4 OPTIONS")
    conn.send_request(req, 0.0)  # the first one counts: valid
    bad = new_request("OPTIONS")
    bad.headers.set("CSeq", "1 BYE")
    bad.headers.add("CSeq", "2 OPTIONS")
    with pytest.raises(LocalProtocolError, match="CSeq method BYE is not OPTIONS"):
        conn.send_request(bad, 0.0)


def test_send_request_names_every_missing_header_and_adds_max_forwards() -> None:
    conn = SipConnection()
    req = new_request("OPTIONS")
    for name in ("From", "CSeq", "Max-Forwards"):
        req.headers.remove(name)
    with pytest.raises(LocalProtocolError, match="OPTIONS lacks From, CSeq$"):
        conn.send_request(req, 0.0)
    assert "Max-Forwards" not in req.headers  # nothing changed
    ok = new_request("OPTIONS")
    ok.headers.remove("Max-Forwards")
    conn.send_request(ok, 0.0)
    assert ok.headers.get_all("Max-Forwards") == ["70"]
    kept = new_request("OPTIONS")
    kept.headers.set("Max-Forwards", "5")
    conn.send_request(kept, 0.0)
    assert kept.headers.get_all("Max-Forwards") == ["5"]


def test_send_request_adds_via_only_when_there_is_none() -> None:
    conn = SipConnection(via_transport="ws", via_host="me.invalid", token=counter_token("v"))
    req = new_request("OPTIONS")
    tx = conn.send_request(req, 0.0)
    assert req.headers.get_all("Via") == [f"SIP/2.0/WS me.invalid;branch={tx.branch}"]
    assert [name for name, _ in req.headers][0] == "Via"
    given_via = new_request("OPTIONS")
    given_via.headers.prepend("Via", "SIP/2.0/WS other.invalid;branch=z9hG4bKmine")
    tx = conn.send_request(given_via, 0.0)
    assert tx.branch == "z9hG4bKmine" and len(given_via.headers.get_all("Via")) == 1


def test_message_starting_with_crlf_is_not_a_keepalive(pair: ConnectionPair) -> None:
    pair.uac.send_request(new_request("OPTIONS"), pair.now)
    [raw] = pair.uac.data_to_send()
    pair.uas.receive_data(b"\r\n" + raw, pair.now)
    assert of_type(pair.uas.events_received(), RequestReceived)
    pair.uas.receive_data(b"\n\r\n\r", pair.now)
    assert pair.uas.events_received() == [KeepaliveReceived(ping=False)]
    pair.uas.receive_data(b"", pair.now)
    assert of_type(pair.uas.events_received(), MessageRejected)


def test_get_timer_none_and_earliest_across_client_and_server(pair: ConnectionPair) -> None:
    assert pair.uac.get_timer() is None
    pair.uac.send_request(new_request("INVITE"), pair.now)
    pair.deliver(pair.uac)
    pair.uac.send_request(new_request("OPTIONS"), pair.now + 1)
    # The UAS's INVITE server transaction sends 100 Trying after 200 ms: the earliest.
    assert pair.uas.get_timer() == pytest.approx(pair.now + 0.2)
    assert pair.uac.get_timer() == pytest.approx(pair.now + 32.0)


@pytest.mark.parametrize("method", ["OPTIONS", "REGISTER"])
def test_response_with_a_malformed_to(pair: ConnectionPair, method: str) -> None:
    """A response's From and To are checked before its transaction sees it, unless it answers
    a REGISTER (never part of a dialog; nothing reads them)."""
    tx = pair.uac.send_request(new_request(method), pair.now)
    pair.deliver(pair.uac)
    request, _ = _server_tx(pair.uas)
    good = make_response(request, 200).serialize()
    to_line = next(line for line in good.split(b"\r\n") if line.startswith(b"To: "))
    bad = good.replace(to_line, b"To: <<<>")
    pair.uac.receive_data(bad, pair.now)
    events = pair.uac.events_received()
    if method == "REGISTER":
        assert [type(e) for e in events] == [ResponseReceived, TransactionTerminated]
        assert tx.state is TransactionState.TERMINATED
    else:
        [rejected] = events
        assert isinstance(rejected, MessageRejected) and "invalid To header" in str(rejected.error)
        assert tx.state is TransactionState.TRYING  # untouched: the good 200 still counts
        pair.uac.receive_data(good, pair.now)
        assert [type(e) for e in pair.uac.events_received()] == [
            ResponseReceived,
            TransactionTerminated,
        ]


def test_wire_lines_follow_the_log_level_set_after_the_connection_was_made(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = SipConnection(token=counter_token("d"))
    caplog.set_level(logging.INFO, logger="exotel_voice")
    conn.send_request(new_request("OPTIONS"), 0.0)
    assert not [r for r in caplog.records if r.getMessage().startswith("> ")]
    caplog.set_level(logging.DEBUG, logger="exotel_voice")
    conn.send_request(new_request("OPTIONS", call_id="second"), 0.0)
    assert [r for r in caplog.records if r.getMessage().startswith("> <Request OPTIONS")]
