"""CallLayer in a server role: a UAS-only layer on bare connections, without registration.

The phone role (CallLayer inside UserAgent) is tested through tests/sip/test_useragent.py;
the sandbox, which uses CallLayer this way over real WebSockets, in tests/sandbox/.
"""

from __future__ import annotations

import logging

import pytest

from exotel_voice.exceptions import InvalidState
from exotel_voice.sip import NameAddr, Request, SipURI, parse_message
from exotel_voice.sip.auth import DigestAuth
from exotel_voice.sip.calls import (
    _TRANSITIONS,
    CallAnswered,
    CallConfirmed,
    CallEnded,
    CallLayer,
    CallProgress,
    CallSession,
    IncomingCall,
    InfoReceived,
    ReInviteReceived,
    SessionState,
)
from exotel_voice.sip.connection import SipConnection
from exotel_voice.sip.events import Event, RequestReceived
from exotel_voice.sip.uri import parse_uri
from exotel_voice.sip.useragent import UserAgent
from exotel_voice.sip.utils import make_response


OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
ANSWER = OFFER.replace("o=- 1 1", "o=- 2 1")
DOMAIN = "sandbox.test"


def server_contact(port: int) -> NameAddr:
    return NameAddr(SipURI("sip", "server", "127.0.0.1", port, {"transport": "ws"}))


def make_phone(user: str) -> UserAgent:
    ua = UserAgent(
        aor=SipURI("sip", user, DOMAIN),
        registrar=SipURI("sip", None, DOMAIN),
        auth_user=user,
        password="pw",
        instance_id="00000000-0000-0000-0000-000000000001",
    )
    ua.connection_made(0.0)
    return ua


class Server:
    """A UAS-only call layer with one SipConnection per client; no registrar, no Registration.

    ``unclaimed`` collects the connection events the layer did not take, as a server's own
    code (registrar, router) would see them.
    """

    def __init__(self, **layer_args: object) -> None:
        self.layer = CallLayer(
            aor=SipURI("sip", "server", DOMAIN),
            accept_calls=False,
            ring_timeout=None,
            **layer_args,  # type: ignore[arg-type]
        )
        self.conns: dict[str, SipConnection] = {}
        self.unclaimed: list[Event] = []
        self.now = 0.0

    def connection(self, name: str) -> SipConnection:
        conn = SipConnection(via_transport="WS", via_host="127.0.0.1")
        self.conns[name] = conn
        return conn

    def feed(self, name: str, data: bytes) -> None:
        conn = self.conns[name]
        conn.receive_data(data, self.now)
        self.drain(name)

    def drain(self, name: str) -> None:
        conn = self.conns[name]
        for event in conn.events_received():
            if not self.layer.handle_event(conn, event, self.now):
                self.unclaimed.append(event)


class Wire:
    """Phones wired to the server: phone name == the server's connection name."""

    def __init__(self, server: Server, phones: dict[str, UserAgent]) -> None:
        self.server = server
        self.phones = phones
        for name in phones:
            server.connection(name)

    def flush(self) -> None:
        for _ in range(20):
            moved = False
            for name, phone in self.phones.items():
                for data in phone.data_to_send():
                    moved = True
                    self.server.feed(name, data)
                for data in self.server.conns[name].data_to_send():
                    moved = True
                    phone.receive_data(data, self.server.now)
            if not moved:
                return
        raise AssertionError("messages kept flowing")

    def advance(self, seconds: float) -> None:
        self.server.now += seconds
        now = self.server.now
        for name, conn in self.server.conns.items():
            deadline = self.server.layer.get_timer(conn)
            if deadline is not None and deadline <= now:
                self.server.layer.handle_timer(now, conn)
            if (d := conn.get_timer()) is not None and d <= now:
                conn.handle_timer(now)
                self.server.drain(name)
        for phone in self.phones.values():
            if (d := phone.get_timer()) is not None and d <= now:
                phone.handle_timer(now)
        self.flush()


def new_invites(server: Server) -> list[RequestReceived]:
    out = [
        e for e in server.unclaimed
        if isinstance(e, RequestReceived) and e.request.method == "INVITE"
    ]
    server.unclaimed.clear()
    return out


def take_call(wire: Wire, name: str, *, ring: bool) -> CallSession:
    (event,) = new_invites(wire.server)
    assert event.transaction is not None
    call = wire.server.layer.accept_invite(
        wire.server.conns[name], event.request, event.transaction, wire.server.now,
        ring=ring, contact=server_contact(8088),
    )
    assert call is not None
    return call


def test_uas_only_layer_leaves_new_invites_to_its_owner_then_answers() -> None:
    server = Server()
    wire = Wire(server, {"alice": make_phone("alice")})
    alice = wire.phones["alice"]
    out = alice.invite("echo", OFFER, 0.0, headers=[("X-Test", "1")])
    wire.flush()
    # The layer does not take a new INVITE itself: the server authenticates and routes first.
    assert server.layer.calls == {}
    call = take_call(wire, "alice", ring=False)
    assert [type(e) for e in server.layer.events_received()] == [IncomingCall]
    assert call.remote_sdp == OFFER and call.connection is server.conns["alice"]
    wire.flush()
    assert [type(e) for e in alice.events_received()] == [], "no 180 until ring()"

    server.layer.ring(call, 0.1)
    server.layer.ring(call, 0.2)  # once only
    wire.flush()
    assert [(type(e), getattr(e, "status", None)) for e in alice.events_received()] == [
        (CallProgress, 180)
    ]
    server.layer.answer(call, ANSWER, 0.3)
    wire.flush()
    (answered,) = alice.events_received()
    assert isinstance(answered, CallAnswered) and answered.sdp == ANSWER
    assert [type(e) for e in server.layer.events_received()] == [CallConfirmed]
    # Our Contact for this call is the one the server gave it.
    assert out.dialog is not None and "127.0.0.1:8088" in str(out.dialog.remote_target)

    alice.send_info(out, "application/dtmf-relay", b"Signal=7\r\nDuration=200", 1.0)
    wire.flush()
    (info,) = server.layer.events_received()
    assert isinstance(info, InfoReceived) and info.digit == "7"

    alice.hangup(out, 2.0)
    wire.flush()
    (ended,) = server.layer.events_received()
    assert isinstance(ended, CallEnded) and ended.by == "remote"
    assert call.state is SessionState.TERMINATED and server.layer.calls == {}
    assert server.conns["alice"].dialogs == []


def test_outgoing_from_the_server_with_its_own_from_to_and_ring_timeout() -> None:
    server = Server()
    wire = Wire(server, {"agent": make_phone("agent")})
    agent = wire.phones["agent"]
    conn = server.conns["agent"]
    call = server.layer.invite(
        conn,
        parse_uri("sip:abcd@xyz.invalid;transport=ws"),
        OFFER,
        0.0,
        from_=NameAddr(SipURI("sip", "0800", DOMAIN), "Caller"),
        to=NameAddr(SipURI("sip", "agent", DOMAIN)),
        contact=server_contact(8088),
        headers=[("X-Exotel-Callsid", "sid1")],
        ring_timeout=5.0,
    )
    assert server.layer.get_timer(conn) == 5.0
    wire.flush()
    (incoming,) = agent.events_received()
    assert isinstance(incoming, IncomingCall)
    invite = incoming.call.invite
    assert invite.from_.display_name == "Caller" and invite.from_.tag
    assert str(invite.to.uri) == f"sip:agent@{DOMAIN}"
    assert invite.headers["X-Exotel-Callsid"] == "sid1"
    assert [type(e) for e in server.layer.events_received()] == [CallProgress]
    # Nobody answers: after the ring timeout the server CANCELs; the 487 ends the call.
    wire.advance(5.0)
    ended = [e for e in server.layer.events_received() if isinstance(e, CallEnded)]
    assert ended and (ended[0].by, ended[0].status, ended[0].reason) == ("local", 487, "no answer")
    assert call.state is SessionState.TERMINATED
    assert [e.status for e in agent.events_received() if isinstance(e, CallEnded)] == [487]


def test_one_layer_many_connections_timers_and_flow_loss_are_per_connection() -> None:
    server = Server(t1=0.5)
    wire = Wire(server, {"a": make_phone("alice"), "b": make_phone("bob")})
    out_a = wire.phones["a"].invite("x", OFFER, 0.0)
    wire.phones["b"].invite("y", OFFER, 0.0)
    wire.flush()
    events = new_invites(server)
    assert len(events) == 2
    server.unclaimed.extend(events[:1])
    call_a = take_call(wire, "a", ring=True)
    server.unclaimed.extend(events[1:])
    call_b = take_call(wire, "b", ring=True)
    assert call_a.connection is server.conns["a"] and call_b.connection is server.conns["b"]
    server.layer.answer(call_a, ANSWER, 1.0)
    # The 200 to alice is lost: only conn a has the ACK deadline (64 x T1).
    server.conns["a"].data_to_send()
    assert server.layer.get_timer(server.conns["a"]) == 33.0
    assert server.layer.get_timer(server.conns["b"]) is None
    server.layer.handle_timer(40.0, server.conns["b"])
    assert call_a.state is SessionState.ESTABLISHED, "conn b's timer does not fire conn a's calls"
    # Bob's flow closes for good: the server ends the calls on it, and only those.
    server.layer.events_received()
    server.layer.connection_lost(server.conns["b"], 41.0, end_calls=True,
                                 reason="client connection lost")
    (ended,) = server.layer.events_received()
    assert isinstance(ended, CallEnded) and ended.call is call_b
    assert (ended.by, ended.reason) == ("remote", "client connection lost")
    assert list(server.layer.calls.values()) == [call_a]
    # Alice never ACKs: the server BYEs her after 64 x T1.
    server.layer.handle_timer(33.0, server.conns["a"])
    ended_a = [e for e in server.layer.events_received() if isinstance(e, CallEnded)]
    assert ended_a and "no ACK" in ended_a[0].reason
    assert [parse_message(d).method for d in server.conns["a"].data_to_send()] == ["BYE"]  # type: ignore[union-attr]
    assert out_a.state is not SessionState.TERMINATED  # alice never saw the 200 nor the BYE


def test_events_that_are_not_the_layers_are_left_to_the_owner() -> None:
    server = Server()
    wire = Wire(server, {"alice": make_phone("alice")})
    alice = wire.phones["alice"]
    alice.register(0.0)
    wire.flush()
    (register,) = server.unclaimed
    assert isinstance(register, RequestReceived) and register.request.method == "REGISTER"
    assert register.transaction is not None
    # The registrar (the owner) answers it; the layer has nothing to do with it.
    server.conns["alice"].send_response(make_response(register.request, 403), 0.0)
    server.unclaimed.clear()
    wire.flush()
    # A response that matches no transaction of the server's is not the layer's either.
    conn = server.conns["alice"]
    conn.receive_data(make_response(register.request, 200).serialize(), 0.0)
    events = conn.events_received()
    assert events and not any(server.layer.handle_event(conn, e, 0.0) for e in events)
    assert server.layer.events_received() == []


def test_a_phone_layer_rehomes_dialogs_onto_a_new_connection() -> None:
    layer = CallLayer(aor=SipURI("sip", "bob", DOMAIN), contact=server_contact(5060),
                      ring_timeout=None)
    first = SipConnection(via_host="bob.invalid")
    alice = make_phone("alice")
    out = alice.invite(f"sip:bob@{DOMAIN}", OFFER, 0.0)
    for data in alice.data_to_send():
        first.receive_data(data, 0.0)
    for event in first.events_received():
        layer.handle_event(first, event, 0.0)
    (incoming,) = layer.events_received()
    assert isinstance(incoming, IncomingCall)  # accept_calls: taken and rung by the layer
    call = incoming.call
    layer.answer(call, ANSWER, 0.1)
    for data in first.data_to_send():
        alice.receive_data(data, 0.1)
    for data in alice.data_to_send():
        first.receive_data(data, 0.2)
    for event in first.events_received():
        layer.handle_event(first, event, 0.2)
    assert out.state is call.state is SessionState.ESTABLISHED
    assert [type(e) for e in layer.events_received()] == [CallConfirmed]
    # The flow drops; commands now fail clearly; a new flow takes the dialog over.
    first.connection_lost()
    for event in first.events_received():
        layer.handle_event(first, event, 1.0)
    layer.connection_lost(first, 1.0)
    assert call.connection is None and call.active
    with pytest.raises(InvalidState, match="not connected"):
        layer.reinvite(call, OFFER, 1.0)
    second = SipConnection(via_host="bob.invalid")
    layer.connection_made(second)
    assert call.connection is second and second.dialogs == [call.dialog]
    alice.reinvite(out, OFFER + "a=sendonly\r\n", 2.0)
    for data in alice.data_to_send():
        second.receive_data(data, 2.0)
    for event in second.events_received():
        assert layer.handle_event(second, event, 2.0)
    (reinvite,) = layer.events_received()
    assert isinstance(reinvite, ReInviteReceived) and "sendonly" in (reinvite.sdp or "")


def test_a_challenge_without_credentials_ends_the_call() -> None:
    layer = CallLayer(aor=SipURI("sip", "server", DOMAIN), contact=server_contact(8088))
    conn = SipConnection(via_host="server.invalid")
    call = layer.invite(conn, f"sip:bob@{DOMAIN}", OFFER, 0.0)
    (raw,) = conn.data_to_send()
    invite = parse_message(raw)
    assert isinstance(invite, Request)
    challenge = make_response(invite, 407, to_tag="t", headers=[
        ("Proxy-Authenticate", 'Digest realm="x", nonce="n"')])
    conn.receive_data(challenge.serialize(), 0.1)
    for event in conn.events_received():
        layer.handle_event(conn, event, 0.1)
    ended = [e for e in layer.events_received() if isinstance(e, CallEnded)]
    assert ended and ended[0].status == 407 and call.state is SessionState.TERMINATED


def test_commands_need_a_contact_and_a_from() -> None:
    layer = CallLayer()
    conn = SipConnection(via_host="x.invalid")
    with pytest.raises(InvalidState, match="Contact"):
        layer.invite(conn, f"sip:bob@{DOMAIN}", OFFER, 0.0)
    with pytest.raises(InvalidState, match="From"):
        layer.invite(conn, f"sip:bob@{DOMAIN}", OFFER, 0.0, contact=server_contact(1))


def test_every_state_has_a_row_and_the_table_refuses_other_moves(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert set(_TRANSITIONS) == set(SessionState)
    assert _TRANSITIONS[SessionState.TERMINATED] == frozenset()
    layer = CallLayer(aor=SipURI("sip", "server", DOMAIN), contact=server_contact(8088))
    conn = SipConnection(via_host="server.invalid")
    call = layer.invite(conn, f"sip:bob@{DOMAIN}", OFFER, 0.0)
    assert layer._set_state(call, SessionState.EARLY)
    with caplog.at_level(logging.WARNING, logger="exotel_voice.sip.calls"):
        assert not layer._set_state(call, SessionState.INCOMING)
    assert call.state is SessionState.EARLY
    assert "refused state change early -> incoming" in caplog.text
    layer.hangup(call, 0.1)
    assert call.state is SessionState.TERMINATING
    assert not layer._set_state(call, SessionState.ESTABLISHED)
    assert call.state is SessionState.TERMINATING


def test_a_cancel_after_a_digest_retry_waits_for_the_new_invites_provisional() -> None:
    """§9.1 holds per INVITE: a 100 to the challenged INVITE does not allow cancelling the
    retried one (its transaction has had no provisional response yet)."""
    layer = CallLayer(aor=SipURI("sip", "server", DOMAIN), contact=server_contact(8088),
                      auth=DigestAuth("server", "pw"))
    conn = SipConnection(via_host="server.invalid")

    def feed(response: bytes, now: float) -> None:
        conn.receive_data(response, now)
        for event in conn.events_received():
            layer.handle_event(conn, event, now)

    def sent() -> list[Request]:
        out = [parse_message(d) for d in conn.data_to_send()]
        assert all(isinstance(m, Request) for m in out)
        return out  # type: ignore[return-value]

    call = layer.invite(conn, f"sip:bob@{DOMAIN}", OFFER, 0.0)
    (first,) = sent()
    feed(make_response(first, 100).serialize(), 0.1)
    feed(make_response(first, 407, to_tag="t", headers=[
        ("Proxy-Authenticate", 'Digest realm="x", nonce="n"')]).serialize(), 0.2)
    retry = [m for m in sent() if m.method == "INVITE"]
    assert len(retry) == 1 and "Proxy-Authorization" in retry[0].headers
    layer.cancel(call, 0.3)
    assert sent() == [], "no provisional to the retried INVITE yet: the CANCEL waits"
    feed(make_response(retry[0], 100).serialize(), 0.4)
    (cancel,) = sent()
    assert cancel.method == "CANCEL" and cancel.via.branch == retry[0].via.branch
    feed(make_response(retry[0], 180, to_tag="u").serialize(), 0.5)
    assert sent() == [], "one CANCEL per INVITE"
