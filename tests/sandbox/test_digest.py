"""The sandbox's server-side digest (exotel_voice.sandbox.digest), checked against the SDK's
client-side DigestAuth (exotel_voice.sip.auth). No I/O."""

from __future__ import annotations

from exotel_voice.sandbox.digest import DigestServer, Verdict, format_challenge
from exotel_voice.sip.auth import DigestAuth, parse_challenge
from exotel_voice.sip.message import Request, Response
from exotel_voice.sip.utils import make_request, make_response


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def register() -> Request:
    return make_request(
        "REGISTER", "sip:sandbox.test", from_="<sip:agent@sandbox.test>;tag=a1",
        to="<sip:agent@sandbox.test>", call_id="c1", cseq=1,
        via="SIP/2.0/WS h.invalid;branch=z9hG4bKx1",
    )


def challenged(server: DigestServer, request: Request, *, stale: bool = False) -> Response:
    return make_response(request, 401, headers=[("WWW-Authenticate",
                                                 server.challenge_header(stale=stale))])


def answer(auth: DigestAuth, request: Request, response: Response) -> Request:
    name, value = auth.respond(request, response)
    retry = register()
    retry.headers.add(name, value)
    return retry


def make_server(clock: Clock, **kwargs: object) -> DigestServer:
    return DigestServer("sandbox.test", {"agent": "s3cret"}, clock=clock, **kwargs)  # type: ignore[arg-type]


def test_challenge_round_trips_through_the_client_parser() -> None:
    server = make_server(Clock())
    challenge = parse_challenge(server.challenge_header(stale=True))
    assert challenge.realm == "sandbox.test"
    assert challenge.qop == ["auth"]
    assert challenge.algorithm == "MD5"
    assert challenge.stale is True
    assert challenge.opaque
    assert format_challenge(challenge).startswith('Digest realm="sandbox.test", nonce="')


def test_sdk_credentials_are_accepted() -> None:
    server = make_server(Clock())
    request = register()
    retry = answer(DigestAuth("agent", "s3cret"), request, challenged(server, request))
    result = server.verify(retry)
    assert result.verdict is Verdict.OK and result.username == "agent"


def test_sha256_credentials_are_accepted() -> None:
    server = make_server(Clock(), algorithm="SHA-256")
    request = register()
    retry = answer(DigestAuth("agent", "s3cret"), request, challenged(server, request))
    assert server.verify(retry).ok


def test_later_nonce_counts_are_accepted() -> None:
    server = make_server(Clock())
    auth = DigestAuth("agent", "s3cret")
    request = register()
    answer(auth, request, challenged(server, request))
    second = register()
    name, value = auth.authorize(second) or ("", "")
    second.headers.add(name, value)
    assert "nc=00000002" in value
    assert server.verify(second).ok


def test_wrong_password_unknown_user_missing_and_foreign_nonce() -> None:
    server = make_server(Clock())
    request = register()
    assert server.verify(request).verdict is Verdict.MISSING
    wrong = answer(DigestAuth("agent", "nope"), request, challenged(server, request))
    assert server.verify(wrong).verdict is Verdict.WRONG
    stranger = answer(DigestAuth("mallory", "x"), request, challenged(server, request))
    assert server.verify(stranger).verdict is Verdict.UNKNOWN_USER
    other = make_server(Clock())  # another server's secret: its nonces are not ours
    foreign = answer(DigestAuth("agent", "nope"), request, challenged(other, request))
    assert server.verify(foreign).verdict is Verdict.FOREIGN, "challenged afresh, not refused"


def test_a_nonce_we_did_not_issue_with_the_right_password_is_stale() -> None:
    # A restarted server (a new secret, a new opaque) meets credentials from before.
    request = register()
    before = make_server(Clock())
    old = answer(DigestAuth("agent", "s3cret"), request, challenged(before, request))
    after = make_server(Clock())
    assert after.verify(old).verdict is Verdict.STALE
    # With qop absent (RFC 2069 form, as Kamailio's stock nonces) too.
    bare = old.headers.get("Authorization") or ""
    bare = ", ".join(p for p in bare.split(", ") if not p.startswith(("qop=", "nc=", "cnonce=")))
    nonce = bare.split('nonce="')[1].split('"')[0]
    from exotel_voice.sip.auth import digest_hash
    md5 = digest_hash("MD5")
    assert md5 is not None
    ha1 = md5(b"agent:sandbox.test:s3cret")
    ha2 = md5(b"REGISTER:sip:sandbox.test")
    response = md5(f"{ha1}:{nonce}:{ha2}".encode())
    bare = bare.split('response="')[0] + f'response="{response}"' + (
        bare.split('response="')[1].split('"', 1)[1])
    plain = register()
    plain.headers.add("Authorization", bare)
    assert after.verify(plain).verdict is Verdict.STALE
    # A wrong password on our own fresh nonce stays a refusal.
    wrong = answer(DigestAuth("agent", "nope"), request, challenged(after, request))
    assert after.verify(wrong).verdict is Verdict.WRONG


def test_old_nonce_is_stale_not_wrong() -> None:
    clock = Clock()
    server = make_server(clock, nonce_ttl=60)
    request = register()
    retry = answer(DigestAuth("agent", "s3cret"), request, challenged(server, request))
    clock.now += 61
    assert server.verify(retry).verdict is Verdict.STALE


def test_repr_and_results_hold_no_secret() -> None:
    server = make_server(Clock())
    request = register()
    retry = answer(DigestAuth("agent", "s3cret"), request, challenged(server, request))
    result = server.verify(retry)
    assert "s3cret" not in repr(server) + repr(result)
