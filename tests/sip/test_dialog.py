"""Dialogs (RFC 3261 §12) alone. Dialog flows through SipConnection are in test_connection.py."""

from __future__ import annotations

import pytest

from exotel_voice.exceptions import InvalidMessage, InvalidState
from exotel_voice.sip.dialog import Dialog, DialogId, DialogState, request_dialog_id
from exotel_voice.sip.message import Request, Response
from exotel_voice.sip.utils import make_response
from tests.sip.conftest import new_request


def _invite() -> Request:
    req = new_request("INVITE", cseq=5, from_tag="atag", call_id="cid")
    req.headers.prepend("Via", "SIP/2.0/WSS a.invalid;branch=z9hG4bKx")
    req.headers.add("Record-Route", "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>")
    return req


def _uac(status: int = 200, contact: str | None = "<sip:bob@10.0.0.2>") -> Dialog:
    invite = _invite()
    headers = [("Contact", contact)] if contact else None
    response = make_response(invite, status, to_tag="btag", headers=headers)
    return Dialog.from_response(invite, response)


def test_uac_dialog_from_2xx() -> None:
    d = _uac()
    assert d.id == DialogId("cid", "atag", "btag")
    assert d.state is DialogState.CONFIRMED
    assert d.local_seq == 5 and d.remote_seq is None
    assert str(d.remote_target) == "sip:bob@10.0.0.2"
    assert [str(r.uri) for r in d.route_set] == ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]
    assert d.local_uri.tag is None and d.remote_uri.tag is None


def test_uac_early_dialog_then_confirmed_then_terminated_by_481() -> None:
    invite = _invite()
    ringing = make_response(invite, 180, to_tag="btag")  # no Contact on this 1xx
    d = Dialog.from_response(invite, ringing)
    assert d.state is DialogState.EARLY and str(d.remote_target) == str(invite.uri)
    ok = make_response(invite, 200, to_tag="btag", headers=[("Contact", "<sip:bob@b2.invalid>")])
    ok.headers.remove("Record-Route")
    d.receive_response(ok)
    assert d.state is DialogState.CONFIRMED
    assert str(d.remote_target) == "sip:bob@b2.invalid"
    assert d.route_set == []  # §13.2.2.4: recomputed from the 2xx
    info = d.create_request("INFO")
    d.receive_response(make_response(info, 481))
    assert d.state is DialogState.TERMINATED


def test_early_dialog_dies_with_a_final_error() -> None:
    invite = _invite()
    d = Dialog.from_response(invite, make_response(invite, 183, to_tag="btag"))
    d.receive_response(make_response(invite, 486, to_tag="btag"))
    assert d.state is DialogState.TERMINATED


def test_dialog_creation_errors() -> None:
    invite = _invite()
    with pytest.raises(ValueError):
        Dialog.from_response(invite, make_response(invite, 100))
    with pytest.raises(InvalidMessage, match="To tag"):
        Dialog.from_response(invite, Response(180, headers=invite.headers.copy()))
    with pytest.raises(InvalidMessage, match="Contact"):
        _uac(contact=None)
    no_contact = _invite()
    no_contact.headers.remove("Contact")
    with pytest.raises(InvalidMessage, match="Contact"):
        Dialog.from_request(no_contact, "btag")


def test_a_tolerant_dialog_from_a_broken_2xx_can_ack_and_bye_it() -> None:
    invite = _invite()
    no_tag = Response(200, headers=invite.headers.copy())  # To copied: no tag, no Contact
    no_tag.headers.remove("Contact")
    d = Dialog.from_response(invite, no_tag, tolerant=True)
    assert d.remote_tag == "" and str(d.remote_target) == str(invite.uri)
    for request in (d.create_ack(5), d.create_request("BYE")):
        assert request.to.tag is None and request.from_.tag == "atag"
        assert str(request.uri) == str(invite.uri)
    bad_contact = make_response(invite, 200, to_tag="btag", headers=[("Contact", "<sip:")])
    with pytest.raises(InvalidMessage):
        Dialog.from_response(invite, bad_contact)
    d = Dialog.from_response(invite, bad_contact, tolerant=True)
    assert d.create_request("BYE").to.tag == "btag"


def test_create_request_increments_cseq_and_routes_loosely() -> None:
    d = _uac()
    bye = d.create_request("BYE", headers=[("Reason", "Q.850;cause=16")])
    assert bye.cseq.seq == 6 and d.local_seq == 6
    assert str(bye.uri) == "sip:bob@10.0.0.2"
    assert bye.headers.get_all("Route") == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
    assert bye.from_.tag == "atag" and bye.to.tag == "btag" and bye.call_id == "cid"
    assert "Contact" not in bye.headers  # not a target refresh
    assert bye.headers["Reason"] == "Q.850;cause=16"
    reinvite = d.create_request("INVITE", body=b"v=0\r\n", content_type="application/sdp")
    assert reinvite.cseq.seq == 7
    assert reinvite.headers["Contact"] == "<sip:alice@uac.invalid;transport=ws>"
    assert reinvite.headers["Content-Type"] == "application/sdp"
    ack = d.create_ack(7)
    assert ack.cseq.seq == 7 and ack.cseq.method == "ACK" and d.local_seq == 7
    with pytest.raises(InvalidState):
        d.create_request("ACK")


def test_strict_route() -> None:
    invite = _invite()
    invite.headers.set("Record-Route", "<sip:strict.example.com;maddr=1.2.3.4>")
    ok = make_response(invite, 200, to_tag="btag", headers=[("Contact", "<sip:bob@10.0.0.2>")])
    d = Dialog.from_response(invite, ok)
    req = d.create_request("INFO")
    # §12.2.1.1: the strict router becomes the Request-URI (without parameters) and the remote
    # target goes last in Route.
    assert str(req.uri) == "sip:strict.example.com"
    assert req.headers.get_all("Route") == ["<sip:bob@10.0.0.2>"]


def test_uas_dialog_and_validation() -> None:
    invite = _invite()
    d = Dialog.from_request(invite, "btag", local_contact="<sip:bob@b.invalid>")
    assert d.id == DialogId("cid", "btag", "atag")
    assert request_dialog_id(Request("BYE", "sip:b@b", invite.headers.copy())) is None
    assert d.remote_seq == 5 and d.local_seq is None and d.state is DialogState.EARLY
    assert [str(r.uri) for r in d.route_set] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    d.confirm()
    # Our first request picks a random CSeq below 2**31.
    first = d.create_request("INFO")
    assert 0 < first.cseq.seq < 2**31
    assert first.headers["To"] == "<sip:alice@example.com>;tag=atag"

    def incoming(method: str, seq: int, contact: str | None = None) -> Request:
        return new_request(
            method, cseq=seq, from_tag="atag", to_tag="btag", call_id="cid", contact=contact
        )

    assert d.receive_request(incoming("INFO", 4)) == 500  # lower: §12.2.2 MUST 500
    assert d.receive_request(incoming("INFO", 5)) == 500  # equal: not in order either
    assert d.remote_seq == 5
    assert d.receive_request(incoming("INVITE", 9, "<sip:alice@new.invalid>")) is None
    assert d.remote_seq == 9 and str(d.remote_target) == "sip:alice@new.invalid"
    assert d.receive_request(incoming("ACK", 9)) is None  # ACK keeps the INVITE's number
    assert d.receive_request(incoming("BYE", 10)) is None
    assert d.state is DialogState.TERMINATED
    with pytest.raises(InvalidState, match="TERMINATED"):
        d.create_request("INFO")
    d.create_request("BYE")  # still allowed, e.g. to answer a digest challenge
    with pytest.raises(InvalidState, match="CONFIRMED from TERMINATED"):
        d.confirm()
