"""Registration state machine, sans-I/O, against an in-test registrar with real digest checks.

The same flows against a real Kamailio are in tests/interop/test_registration_kamailio.py.
"""

from __future__ import annotations

import hashlib
import logging
import re

import pytest

from exotel_voice.exceptions import AuthenticationError, TransactionTimeout
from exotel_voice.sip import Headers, Request, Response, parse_message
from exotel_voice.sip.auth import DigestAuth
from exotel_voice.sip.registration import (
    Registered,
    RegisterSent,
    Registration,
    RegistrationFailed,
    RegistrationState,
    Unregistered,
    make_contact,
)
from exotel_voice.sip.uri import SipURI


SENTINEL = "pw-SENTINEL-7731"
REALM = "test.realm"


def md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


class Registrar:
    """A minimal registrar that challenges with MD5 qop=auth and verifies the digest."""

    def __init__(self, password: str = SENTINEL, nonce: str = "n1", grant: int | None = None,
                 *, qop: bool = True):
        self.password = password
        self.nonce = nonce
        self.grant = grant
        self.qop = qop
        self.seen: list[Request] = []

    def answer(self, request: Request) -> Response:
        # The connection adds the Via; then the request goes over the wire and back.
        if "Via" not in request.headers:
            request.headers.prepend("Via", f"SIP/2.0/WSS a.invalid;branch=z9hG4bK{len(self.seen)}")
        request = parse_message(request.serialize())  # type: ignore[assignment]
        self.seen.append(request)
        base = Headers(
            [(k, request.headers[k]) for k in ("Via", "From", "To", "Call-ID", "CSeq")]
        )
        auth = request.headers.get("Authorization")
        if auth is None or not self._valid(request, auth):
            qop = ', qop="auth"' if self.qop else ""
            base.add(
                "WWW-Authenticate",
                f'Digest realm="{REALM}", nonce="{self.nonce}"{qop}, algorithm=MD5',
            )
            return Response(401, "Unauthorized", base)
        contact = request.headers["Contact"]
        asked = int(request.headers["Expires"])
        if asked:
            granted = self.grant if self.grant is not None else asked
            contact = re.sub(r"expires=\d+", f"expires={granted}", contact)
            base.add("Contact", contact)
        return Response(200, "OK", base)

    def _valid(self, request: Request, auth: str) -> bool:
        p = dict(re.findall(r'(\w+)="?([^",]*)"?', auth))
        if p.get("nonce") != self.nonce:
            return False
        ha1 = md5(f"{p['username']}:{REALM}:{self.password}")
        ha2 = md5(f"REGISTER:{p['uri']}")
        if not self.qop:  # RFC 2069 form, as Kamailio's stock settings use
            assert "cnonce" not in p and "nc" not in p and "qop" not in p
            return p.get("response") == md5(f"{ha1}:{p['nonce']}:{ha2}")
        expected = md5(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:auth:{ha2}")
        return p.get("response") == expected


def make_registration(password: str = SENTINEL) -> Registration:
    return Registration(
        aor=SipURI("sip", "alice", "example.test"),
        registrar=SipURI("sip", None, "example.test"),
        contact=make_contact(secure=True, instance_id="11111111-2222-3333-4444-555555555555"),
        auth=DigestAuth("alice", password),
        display_name="Alice",
        expires=300,
    )


def run(reg: Registration, server: Registrar, request: Request | None, now: float) -> None:
    while request is not None:
        request = reg.handle_response(server.answer(request), now)


def test_register_with_digest_then_refresh_then_unregister() -> None:
    reg = make_registration()
    server = Registrar()
    run(reg, server, reg.register(0.0), 0.0)
    events = reg.events_received()
    assert [type(e) for e in events] == [RegisterSent, RegisterSent, Registered]
    assert reg.state is RegistrationState.REGISTERED
    assert events[-1].expires == 300 and not events[-1].refresh  # type: ignore[attr-defined]
    first, second = server.seen
    assert "Authorization" not in first.headers and "Authorization" in second.headers
    assert second.cseq.seq == first.cseq.seq + 1 and second.call_id == first.call_id
    assert second.branch != first.branch
    contact = second.contacts[0]
    assert contact.params["+sip.instance"] == "<urn:uuid:11111111-2222-3333-4444-555555555555>"
    uuid = "11111111-2222-3333-4444-555555555555"
    assert f'+sip.instance="<urn:uuid:{uuid}>"' in second.headers["Contact"]
    assert contact.params["reg-id"] == "1"
    assert contact.sip_uri.transport == "wss" and "ob" in contact.sip_uri.params
    assert contact.sip_uri.host.endswith(".invalid")
    assert str(second.uri) == "sip:example.test"
    assert second.from_.display_name == "Alice" and second.from_.tag

    # Refresh at 80% of 300 s, pre-authorized with the cached nonce (nc=2): one round trip.
    assert reg.get_timer() == pytest.approx(240.0)
    assert reg.handle_timer(239.0) is None
    refresh = reg.handle_timer(240.0)
    assert refresh is not None and "nc=00000002" in refresh.headers["Authorization"]
    run(reg, server, refresh, 240.0)
    events = reg.events_received()
    assert [type(e) for e in events] == [RegisterSent, Registered]
    assert events[-1].refresh  # type: ignore[attr-defined]

    # The server rotates its nonce: the next refresh is challenged, answered, and succeeds.
    server.nonce = "n2"
    refresh = reg.handle_timer(reg.get_timer() or 0.0)
    run(reg, server, refresh, 480.0)
    assert [type(e) for e in reg.events_received()] == [RegisterSent, RegisterSent, Registered]
    assert reg.state is RegistrationState.REGISTERED

    unregister = reg.unregister(500.0)
    assert unregister is not None and unregister.headers["Expires"] == "0"
    assert "expires=0" in unregister.headers["Contact"]
    run(reg, server, unregister, 500.0)
    events = reg.events_received()
    assert [type(e) for e in events] == [RegisterSent, Unregistered]
    assert reg.state is RegistrationState.UNREGISTERED and reg.get_timer() is None


def test_granted_expiry_drives_the_refresh() -> None:
    reg = make_registration()
    run(reg, Registrar(grant=60), reg.register(10.0), 10.0)
    assert reg.granted_expires == 60
    assert reg.get_timer() == pytest.approx(10.0 + 48.0)


def test_wrong_password_is_terminated_with_401_and_no_retry() -> None:
    reg = make_registration(password="wrong")
    run(reg, Registrar(), reg.register(0.0), 0.0)
    events = reg.events_received()
    failed = events[-1]
    assert isinstance(failed, RegistrationFailed)
    assert failed.status == 401
    assert isinstance(failed.error, AuthenticationError) and failed.retry_in is None
    assert reg.state is RegistrationState.FAILED and reg.get_timer() is None
    assert len([e for e in events if isinstance(e, RegisterSent)]) == 2, "one retry only"


def test_403_is_terminated() -> None:
    reg = make_registration()
    request = reg.register(0.0)
    reply = Response(403, "Forbidden", Headers([("CSeq", f"{reg.cseq} REGISTER")]))
    assert reg.handle_response(reply, 0.0) is None
    failed = reg.events_received()[-1]
    assert isinstance(failed, RegistrationFailed) and failed.status == 403
    assert isinstance(failed.error, AuthenticationError) and request.method == "REGISTER"


def test_timeout_fails_visibly_then_retries_with_backoff() -> None:
    reg = make_registration()
    reg.register(0.0)
    reg.handle_timeout(10.0)
    failed = reg.events_received()[-1]
    assert isinstance(failed, RegistrationFailed) and failed.status is None
    assert isinstance(failed.error, TransactionTimeout) and failed.retry_in == 2.0
    retry = reg.handle_timer(12.0)
    assert retry is not None and reg.state is RegistrationState.REGISTERING
    reg.handle_timeout(22.0)
    assert reg.events_received()[-1].retry_in == 5.0  # type: ignore[attr-defined]
    run(reg, Registrar(), reg.handle_timer(27.0), 27.0)
    assert reg.state is RegistrationState.REGISTERED


def test_refresh_failure_never_leaves_registered_showing() -> None:
    reg = make_registration()
    run(reg, Registrar(), reg.register(0.0), 0.0)
    reg.events_received()
    assert reg.handle_timer(240.0) is not None
    reg.handle_timeout(250.0)
    assert reg.state is RegistrationState.FAILED
    assert isinstance(reg.events_received()[-1], RegistrationFailed)


def test_423_retries_with_min_expires() -> None:
    reg = make_registration()
    reg.register(0.0)
    reply = Response(423, "Interval Too Brief", Headers([("Min-Expires", "600")]))
    retry = reg.handle_response(reply, 0.0)
    assert retry is not None and retry.headers["Expires"] == "600"


def test_transport_lost_reports_unregistered() -> None:
    reg = make_registration()
    run(reg, Registrar(), reg.register(0.0), 0.0)
    reg.events_received()
    reg.transport_lost(5.0)
    assert [type(e) for e in reg.events_received()] == [Unregistered]
    assert reg.state is RegistrationState.UNREGISTERED and reg.get_timer() is None


def test_unregister_when_not_registered_needs_no_request() -> None:
    reg = make_registration()
    assert reg.unregister(0.0) is None
    assert reg.state is RegistrationState.UNREGISTERED


def test_secrets_never_in_logs_or_reprs(caplog: pytest.LogCaptureFixture) -> None:
    reg = make_registration()
    server = Registrar()
    with caplog.at_level(logging.DEBUG):
        request = reg.register(0.0)
        while request is not None:
            logging.getLogger("exotel_voice.test").debug("sending %r headers %r", request,
                                                          request.headers)
            response = server.answer(request)
            logging.getLogger("exotel_voice.test").debug("got %r", response)
            request = reg.handle_response(response, 0.0)
        for event in reg.events_received():
            logging.getLogger("exotel_voice.test").debug("event %r", event)
    authorization = server.seen[-1].headers["Authorization"]
    digest_response = re.search(r'response="([0-9a-f]+)"', authorization)
    assert digest_response is not None
    text = caplog.text + repr(reg) + repr(reg.auth)
    assert SENTINEL not in text
    assert digest_response.group(1) not in text
    assert "[secure]" in caplog.text


def test_register_headers_follow_a_replaced_contact_or_display_name() -> None:
    """To/From/Contact are rendered once and reused; replacing the objects re-renders them."""
    reg = make_registration()
    first = reg.register(0.0)
    assert first.headers["From"].startswith('"Alice" <sip:alice@example.test>;tag=')
    assert first.headers["To"] == "<sip:alice@example.test>"
    assert first.headers["Contact"].endswith(";expires=300")
    reg._pending = None  # as if answered: the next request is built from scratch
    reg.contact = make_contact(secure=False, instance_id="99999999-2222-3333-4444-555555555555")
    reg.display_name = "Bob"
    second = reg._new_request(300, 1.0)
    assert ";transport=ws;" in second.headers["Contact"]
    assert "99999999-2222" in second.headers["Contact"]
    assert second.headers["From"].startswith('"Bob" <sip:alice@example.test>;tag=')
    assert second.headers["From"].split("tag=")[1] == first.headers["From"].split("tag=")[1]


def test_a_contact_with_its_own_expires_gets_the_requested_one() -> None:
    reg = make_registration()
    own = make_contact(secure=True, instance_id="11111111-2222-3333-4444-555555555555")
    own.params["expires"] = "7"
    reg.contact = own
    contact = reg.register(0.0).headers["Contact"]
    assert contact.count("expires=") == 1
    assert ";expires=300" in contact


def _ok_with_contacts(reg: Registration, request: Request, *contacts: str) -> Response:
    base = Headers([(k, request.headers[k]) for k in ("Via", "From", "To", "Call-ID", "CSeq")])
    for value in contacts:
        base.add("Contact", value)
    return Response(200, "OK", base)


@pytest.mark.parametrize(
    ("others", "expected"),
    [
        # Kamailio's shape: our URI verbatim, then expires, a quoted received=, our instance.
        ([], 600),
        # Another device's binding first: skipped, ours is still found.
        (['<sip:other@10.0.0.9;transport=ws>;expires=77;+sip.instance="<urn:uuid:ffff>"'], 600),
        # A binding before ours that carries our instance id (another flow of ours): the
        # general rule takes the first binding that is ours, this one.
        (['<sip:x@y.invalid;transport=ws>;expires=42;+sip.instance="<urn:uuid:INSTANCE>"'], 42),
    ],
)
def test_granted_expiry_is_read_from_our_binding(others: list[str], expected: int) -> None:
    reg = make_registration()
    request = reg.register(0.0)
    request.headers.prepend("Via", "SIP/2.0/WSS a.invalid;branch=z9hG4bKx")
    instance = reg.contact.params["+sip.instance"]
    assert instance is not None
    ours = (
        f"<{reg.contact.uri}>;expires=600;received=\"sip:127.0.0.1:49822;transport=ws\";"
        f"+sip.instance=\"{instance}\";reg-id=1"
    )
    others = [o.replace("<urn:uuid:INSTANCE>", instance) for o in others]
    if expected == 600:  # ours is certain from the text: no Contact needs a full parse

        def unexpected(response: Response) -> None:
            raise AssertionError("the general path was taken")

        reg._matching_binding = unexpected  # type: ignore[method-assign,assignment]
    reg.handle_response(_ok_with_contacts(reg, request, *others, ours), 0.0)
    assert reg.state is RegistrationState.REGISTERED
    assert reg.granted_expires == expected


# -- nonce changes (Kamailio's stock digest: no qop, nonces expire, a restart changes them) ----


def test_stays_registered_across_nonce_expiries_without_qop() -> None:
    reg = make_registration()
    server = Registrar(qop=False)
    run(reg, server, reg.register(0.0), 0.0)
    assert reg.state is RegistrationState.REGISTERED
    reg.events_received()
    now = 0.0
    for i in range(2, 6):
        server.nonce = f"n{i}"  # the nonce we hold expired: a fresh 401, no stale=true
        now = reg.get_timer() or 0.0
        refresh = reg.handle_timer(now)
        assert refresh is not None and f'nonce="n{i - 1}"' in refresh.headers["Authorization"]
        run(reg, server, refresh, now)
        events = reg.events_received()
        assert [type(e) for e in events] == [RegisterSent, RegisterSent, Registered]
        assert reg.state is RegistrationState.REGISTERED
    assert not [e for e in reg.events_received() if isinstance(e, RegistrationFailed)]


def test_reregisters_after_a_server_restart_without_qop() -> None:
    """After a restart the server's secret is new: our cached nonce is unknown to it."""
    reg = make_registration()
    run(reg, Registrar(qop=False), reg.register(0.0), 0.0)
    for restart in range(3):
        reg.transport_lost(10.0 + restart)
        restarted = Registrar(qop=False, nonce=f"after-restart-{restart}")
        run(reg, restarted, reg.register(11.0 + restart), 11.0 + restart)
        assert reg.state is RegistrationState.REGISTERED
        assert isinstance(reg.events_received()[-1], Registered)
        assert len(restarted.seen) == 2, "the stale pre-emptive REGISTER, then one answer"


@pytest.mark.parametrize("rotate", [False, True], ids=["same-nonce", "new-nonce-each-time"])
def test_wrong_password_without_qop_fails_fast(rotate: bool) -> None:
    reg = make_registration(password="wrong")
    server = Registrar(qop=False)
    request: Request | None = reg.register(0.0)
    while request is not None:
        response = server.answer(request)
        if rotate:
            server.nonce = f"n{len(server.seen) + 1}"
        request = reg.handle_response(response, 0.0)
    failed = reg.events_received()[-1]
    assert isinstance(failed, RegistrationFailed) and failed.status == 401
    assert isinstance(failed.error, AuthenticationError) and failed.retry_in is None
    assert reg.state is RegistrationState.FAILED and reg.get_timer() is None
    # One retry for the nonce we answered; a new nonce is a fresh challenge, answered once.
    assert len(server.seen) == (3 if rotate else 2)


# -- 423 Interval Too Brief and Retry-After ----------------------------------------------------


def reply_to(request: Request, status: int, reason: str, *headers: tuple[str, str]) -> Response:
    return Response(status, reason, Headers([("CSeq", str(request.headers["CSeq"])), *headers]))


def test_a_growing_min_expires_is_followed_a_few_times_then_fails() -> None:
    reg = make_registration()
    request: Request | None = reg.register(0.0)
    asked: list[int] = []
    while request is not None and len(asked) < 1000:
        asked.append(int(request.headers["Expires"]))
        minimum = asked[-1] * 2  # a hostile registrar: never satisfied
        request = reg.handle_response(
            reply_to(request, 423, "Interval Too Brief", ("Min-Expires", str(minimum))), 0.0
        )
    assert len(asked) <= 1 + 3, asked  # Registration.MAX_INTERVAL_RETRIES
    assert max(asked) <= 3600
    failed = reg.events_received()[-1]
    assert isinstance(failed, RegistrationFailed)
    assert failed.status == 423 and failed.retry_in is None
    assert "Min-Expires" in failed.reason and "Min-Expires" in str(failed.error)
    assert reg.state is RegistrationState.FAILED and reg.get_timer() is None


def test_a_min_expires_above_the_cap_fails_at_once() -> None:
    reg = make_registration()
    request = reg.register(0.0)
    retry = reg.handle_response(
        reply_to(request, 423, "Interval Too Brief", ("Min-Expires", "86400")), 0.0
    )
    assert retry is None
    failed = reg.events_received()[-1]
    assert isinstance(failed, RegistrationFailed) and failed.status == 423
    assert "86400" in failed.reason and "3600" in failed.reason


def test_min_expires_is_kept_for_later_registers() -> None:
    reg = make_registration()
    server = Registrar()
    first = reg.register(0.0)
    retry = reg.handle_response(
        reply_to(first, 423, "Interval Too Brief", ("Min-Expires", "600")), 0.0
    )
    assert retry is not None and retry.headers["Expires"] == "600"
    run(reg, server, retry, 0.0)
    assert reg.state is RegistrationState.REGISTERED and reg.granted_expires == 600
    refresh = reg.handle_timer(reg.get_timer() or 0.0)
    assert refresh is not None and refresh.headers["Expires"] == "600"


@pytest.mark.parametrize(
    ("status", "value", "expected"),
    [
        (503, "30", 30.0),
        (503, "120 (maintenance);duration=60", 120.0),
        (500, "45", 45.0),
        (480, "7", 7.0),
        (503, "1", 2.0),  # never sooner than our own back-off
        (503, "99999999999", 600.0),  # capped at Registration.MAX_RETRY_AFTER
        (503, "soon", 2.0),  # unreadable: our own back-off
        (503, "9" * 5000, 600.0),
    ],
)
def test_retry_after_is_honoured(status: int, value: str, expected: float) -> None:
    reg = make_registration()
    request = reg.register(100.0)
    reg.handle_response(reply_to(request, status, "Unavailable", ("Retry-After", value)), 100.0)
    failed = reg.events_received()[-1]
    assert isinstance(failed, RegistrationFailed) and failed.status == status
    assert failed.retry_in == expected
    assert reg.get_timer() == pytest.approx(100.0 + expected)
    if expected > 2.0:
        assert reg.handle_timer(102.0) is None, "not after the default 2 s"
    again = reg.handle_timer(100.0 + expected)
    assert again is not None and again.method == "REGISTER"


def test_challenges_mixed_with_423s_are_bounded() -> None:
    """A registrar alternating fresh challenges and 423s still meets a failure, not a loop."""
    reg = make_registration()
    request: Request | None = reg.register(0.0)
    sent = 0
    while request is not None and sent < 1000:
        sent += 1
        if sent % 2:
            reply = reply_to(request, 401, "Unauthorized", (
                "WWW-Authenticate", f'Digest realm="{REALM}", nonce="n{sent}"'))
        else:
            reply = reply_to(request, 423, "Interval Too Brief",
                             ("Min-Expires", str(int(request.headers["Expires"]) + 1)))
        request = reg.handle_response(reply, 0.0)
    assert sent <= 10, sent
    failed = reg.events_received()[-1]
    assert isinstance(failed, RegistrationFailed) and failed.retry_in is None


@pytest.mark.parametrize("value", ["", "soon", "\u0661\u0662\u0660", "-5", "99999999999999"])
def test_an_unusable_min_expires_is_a_clear_failure(value: str) -> None:
    reg = make_registration()
    request = reg.register(0.0)
    assert reg.handle_response(
        reply_to(request, 423, "Interval Too Brief", ("Min-Expires", value)), 0.0
    ) is None
    failed = reg.events_received()[-1]
    assert isinstance(failed, RegistrationFailed) and failed.status == 423
    assert failed.reason.startswith("Interval Too Brief: the registrar ")
    assert "Min-Expires" in failed.reason and failed.retry_in is None
    assert str(failed.error) == f"REGISTER failed: 423 {failed.reason}"
