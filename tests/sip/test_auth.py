"""Unit tests for exotel_voice.sip.auth (Digest, RFC 2617 / RFC 7616 / RFC 8760)."""

from __future__ import annotations

import hashlib
import itertools
import re

import pytest

from exotel_voice.exceptions import AuthenticationError, InvalidMessage
from exotel_voice.sip import auth as auth_module
from exotel_voice.sip.auth import (
    SUPPORTED_ALGORITHMS,
    DigestAuth,
    DigestChallenge,
    _default_cnonce,
    parse_challenge,
    parse_challenges,
)
from exotel_voice.sip.headers import Headers
from exotel_voice.sip.message import Request, Response
from exotel_voice.sip.uri import AbsoluteURI


SENTINEL = "S3ntinel-Pa55word-q9Zx"

RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


def params_of(value: str) -> dict[str, str]:
    """Independent little parser for the credentials we produce."""
    assert value.startswith("Digest ")
    out = {}
    for m in re.finditer(r'(\w+)=(?:"([^"]*)"|([^,\s]+))', value[7:]):
        out[m.group(1)] = m.group(2) if m.group(2) is not None else m.group(3)
    return out


def make_request(method: str = "REGISTER", uri: str = "sip:127.0.0.1", cseq: int = 1) -> Request:
    headers = Headers(
        [
            ("Via", "SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK776asdhds"),
            ("From", "<sip:alice@127.0.0.1>;tag=1928301774"),
            ("To", "<sip:alice@127.0.0.1>"),
            ("Call-ID", "a84b4c76e66710"),
            ("CSeq", f"{cseq} {method}"),
        ]
    )
    return Request(method, uri, headers)


def challenge_response(status: int, *values: str) -> Response:
    name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    return Response(status, headers=Headers([(name, v) for v in values]))


def retry(request: Request, header: tuple[str, str]) -> Request:
    """What the UA does: same request, CSeq+1, new branch, with the credentials."""
    new = make_request(request.method, str(request.uri), request.cseq.seq + 1)
    new.headers.add(*header)
    return new


# -- RFC vectors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1_vectors(algorithm: str, expected: str) -> None:
    auth = DigestAuth("Mufasa", "Circle of Life", cnonce_factory=lambda: RFC7616_CNONCE)
    request = Request("GET", AbsoluteURI("/dir/index.html"))
    response = challenge_response(
        401,
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"',
    )
    name, value = auth.respond(request, response)
    assert name == "Authorization"
    p = params_of(value)
    assert p["response"] == expected
    assert p == {
        "username": "Mufasa",
        "realm": "http-auth@example.org",
        "nonce": RFC7616_NONCE,
        "uri": "/dir/index.html",
        "response": expected,
        "algorithm": algorithm,
        "cnonce": RFC7616_CNONCE,
        "opaque": RFC7616_OPAQUE,
        "qop": "auth",
        "nc": "00000001",
    }


def test_rfc2617_section_3_5_example() -> None:
    auth = DigestAuth("Mufasa", "Circle Of Life", cnonce_factory=lambda: "0a4f113b")
    request = Request("GET", AbsoluteURI("/dir/index.html"))
    response = challenge_response(
        401,
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"',
    )
    _, value = auth.respond(request, response)
    p = params_of(value)
    assert p["response"] == "6629fae49393a05397450978507c4ef1"
    assert p["nc"] == "00000001"
    assert p["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41"


def _h(algorithm: str, text: str) -> str:
    name = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}[algorithm]
    return hashlib.new(name, text.encode()).hexdigest()


def test_rfc2069_mode_without_qop() -> None:
    auth = DigestAuth("alice", "secret", cnonce_factory=lambda: "unused")
    request = make_request("INVITE", "sip:bob@127.0.0.1")
    response = challenge_response(407, 'Digest realm="pbx", nonce="n0nce"')
    name, value = auth.respond(request, response)
    assert name == "Proxy-Authorization"
    p = params_of(value)
    ha1 = _h("MD5", "alice:pbx:secret")
    ha2 = _h("MD5", "INVITE:sip:bob@127.0.0.1")
    assert p["response"] == _h("MD5", f"{ha1}:n0nce:{ha2}")
    # RFC 2617 §3.2.2: no cnonce/nc/qop when the server sent no qop.
    assert "cnonce" not in p and "nc" not in p and "qop" not in p
    assert p["algorithm"] == "MD5"


@pytest.mark.parametrize(
    "algorithm", ["MD5-sess", "SHA-256-sess", "SHA-512-256", "SHA-512-256-sess"]
)
def test_sess_and_sha512_256(algorithm: str) -> None:
    if algorithm.upper() not in SUPPORTED_ALGORITHMS:
        pytest.skip("this OpenSSL has no SHA-512/256")
    base = algorithm.upper().removesuffix("-SESS")
    base = {"MD5": "MD5", "SHA-256": "SHA-256", "SHA-512-256": "SHA-512-256"}[base]
    cnonces = iter(["c1", "c2", "c3"])
    auth = DigestAuth("alice", "pw", cnonce_factory=lambda: next(cnonces))
    req = make_request()
    resp = challenge_response(
        401, f'Digest realm="r", nonce="N", qop="auth", algorithm={algorithm}'
    )
    _, value = auth.respond(req, resp)
    p = params_of(value)
    ha1 = _h(base, "alice:r:pw")
    if algorithm.lower().endswith("-sess"):
        ha1 = _h(base, f"{ha1}:N:c1")
    ha2 = _h(base, "REGISTER:sip:127.0.0.1")
    assert p["response"] == _h(base, f"{ha1}:N:00000001:c1:auth:{ha2}")
    assert p["algorithm"] == algorithm
    # The next request under the same nonce: nc 2; -sess keeps the session cnonce.
    _, value2 = auth.authorize(make_request(cseq=3)) or ("", "")
    p2 = params_of(value2)
    assert p2["nc"] == "00000002"
    if algorithm.lower().endswith("-sess"):
        assert p2["cnonce"] == "c1"
        assert p2["response"] == _h(base, f"{ha1}:N:00000002:c1:auth:{ha2}")
    else:
        assert p2["cnonce"] == "c2"


# -- parse_challenge ---------------------------------------------------------------------------


def test_parse_kamailio_challenge() -> None:
    ch = parse_challenge(
        'Digest realm="127.0.0.1", nonce="Zk9x1WZPcKnbTz5qJ0uGN8Yv8nM=", qop="auth"'
    )
    assert ch == DigestChallenge(
        scheme="Digest",
        realm="127.0.0.1",
        nonce="Zk9x1WZPcKnbTz5qJ0uGN8Yv8nM=",
        opaque=None,
        algorithm="MD5",
        qop=["auth"],
        stale=False,
        domain=None,
    )


def test_parse_challenge_details() -> None:
    ch = parse_challenge(
        'digest  realm="a \\"q\\" b",nonce=abc ,  algorithm=sha-256-sess, stale=TRUE, '
        'domain="sip:x.example sip:y.example", opaque="o", qop="auth-int, auth"'
    )
    assert ch.scheme == "Digest"
    assert ch.realm == 'a "q" b'
    assert ch.nonce == "abc"
    assert ch.algorithm == "SHA-256-SESS"
    assert ch.stale is True
    assert ch.domain == "sip:x.example sip:y.example"
    assert ch.opaque == "o"
    assert ch.qop == ["auth-int", "auth"]
    assert ch.params["algorithm"] == "sha-256-sess"


def test_parse_several_challenges_in_one_value() -> None:
    value = (
        'Basic realm="x", Digest realm="r", nonce="1", algorithm=SHA-256, '
        'Digest realm="r", nonce="2", algorithm=MD5'
    )
    chs = parse_challenges(value)
    assert [(c.nonce, c.algorithm) for c in chs] == [("1", "SHA-256"), ("2", "MD5")]
    assert parse_challenge(value).nonce == "1"
    assert parse_challenges('Basic dXNlcjpwYXNz, Digest realm="r", nonce="n"')[0].nonce == "n"


@pytest.mark.parametrize(
    "value",
    [
        'Digest realm="unterminated',
        "Digest realm=",
        'Digest realm="r" nonce="n"',
        "Digest ,,, =x",
        'Digest nonce="n"',  # no realm
        'Digest realm="r"',  # no nonce
        "",
    ],
)
def test_parse_garbage(value: str) -> None:
    with pytest.raises((InvalidMessage, AuthenticationError)):
        parse_challenge(value)


def test_parse_non_digest_is_authentication_error() -> None:
    with pytest.raises(AuthenticationError):
        parse_challenge('Basic realm="x"')
    with pytest.raises(InvalidMessage):
        parse_challenge('Digest nonce="n"')


# -- the flow ----------------------------------------------------------------------------------

KAMAILIO = 'Digest realm="127.0.0.1", nonce="{nonce}", qop="auth"'


def test_kamailio_register_flow_and_nc_increments() -> None:
    counter = itertools.count(1)
    auth = DigestAuth("alice", SENTINEL, cnonce_factory=lambda: f"cn{next(counter)}")
    assert auth.authorize(make_request()) is None
    req = make_request()
    name, value = auth.respond(req, challenge_response(401, KAMAILIO.format(nonce="N1")))
    assert name == "Authorization"
    p = params_of(value)
    assert (p["nc"], p["cnonce"], p["uri"], p["username"]) == (
        "00000001",
        "cn1",
        "sip:127.0.0.1",
        "alice",
    )
    ha1 = _h("MD5", f"alice:127.0.0.1:{SENTINEL}")
    ha2 = _h("MD5", "REGISTER:sip:127.0.0.1")
    assert p["response"] == _h("MD5", f"{ha1}:N1:00000001:cn1:auth:{ha2}")
    ncs = []
    for seq in range(3, 6):
        hdr = auth.authorize(make_request(cseq=seq))
        assert hdr is not None and hdr[0] == "Authorization"
        ncs.append(params_of(hdr[1])["nc"])
    assert ncs == ["00000002", "00000003", "00000004"]
    # The registrar's challenge is not used for an INVITE (RFC 3261 §22.3 scope) ...
    assert auth.authorize(make_request("INVITE", "sip:bob@127.0.0.1;transport=ws")) is None
    # ... until an INVITE is challenged for that realm too; then authorize() digests the new
    # request's method and URI, and the count goes on for the same nonce.
    auth.respond(make_request("INVITE", "sip:x@127.0.0.1"),
                 challenge_response(401, KAMAILIO.format(nonce="N1")))
    hdr = auth.authorize(make_request("INVITE", "sip:bob@127.0.0.1;transport=ws"))
    assert hdr is not None
    p = params_of(hdr[1])
    assert p["uri"] == "sip:bob@127.0.0.1;transport=ws"
    ha2 = _h("MD5", "INVITE:sip:bob@127.0.0.1;transport=ws")
    assert p["response"] == _h("MD5", f"{ha1}:N1:00000006:{p['cnonce']}:auth:{ha2}")


def test_rechallenge_after_credentials_is_failure() -> None:
    auth = DigestAuth("alice", SENTINEL, cnonce_factory=lambda: "c")
    req = make_request()
    hdr = auth.respond(req, challenge_response(401, KAMAILIO.format(nonce="N1")))
    req2 = retry(req, hdr)
    # Wrong password: the server challenges again, for the nonce we answered.
    with pytest.raises(AuthenticationError) as info:
        auth.respond(req2, challenge_response(401, KAMAILIO.format(nonce="N1")))
    assert info.value.status == 401
    assert "127.0.0.1" in str(info.value)


def test_rechallenge_same_nonce_after_preemptive_is_failure() -> None:
    auth = DigestAuth("alice", SENTINEL)
    auth.respond(make_request(), challenge_response(401, KAMAILIO.format(nonce="N1")))
    hdr = auth.authorize(make_request(cseq=3))
    assert hdr is not None
    req = make_request(cseq=3)
    req.headers.add(*hdr)
    with pytest.raises(AuthenticationError):
        auth.respond(req, challenge_response(401, KAMAILIO.format(nonce="N1")))


def test_refresh_later_with_new_nonce_is_not_failure() -> None:
    """A REGISTER refresh with cached credentials meets a fresh 401 (nonce expired, no stale)."""
    auth = DigestAuth("alice", SENTINEL)
    first = make_request()
    hdr = auth.respond(first, challenge_response(401, KAMAILIO.format(nonce="N1")))
    retry(first, hdr)  # ... 200 OK
    refresh = make_request(cseq=3)
    pre = auth.authorize(refresh)
    assert pre is not None
    refresh.headers.add(*pre)
    name, value = auth.respond(refresh, challenge_response(401, KAMAILIO.format(nonce="N2")))
    assert params_of(value)["nonce"] == "N2"
    assert params_of(value)["nc"] == "00000001"  # a new nonce restarts the count
    # And a fresh REGISTER without credentials meeting a 401 is answered too.
    name, value = auth.respond(
        make_request(cseq=9), challenge_response(401, KAMAILIO.format(nonce="N3"))
    )
    assert params_of(value)["nonce"] == "N3"
    # The retry of that one meeting a new nonce is answered once; the next one fails.
    again = retry(make_request(cseq=9), (name, value))
    hdr = auth.respond(again, challenge_response(401, KAMAILIO.format(nonce="N4")))
    again = retry(again, hdr)
    with pytest.raises(AuthenticationError):
        auth.respond(again, challenge_response(401, KAMAILIO.format(nonce="N5")))


def test_stale_true_retries_with_new_nonce() -> None:
    auth = DigestAuth("alice", SENTINEL, cnonce_factory=lambda: "c")
    req = make_request()
    hdr = auth.respond(req, challenge_response(401, KAMAILIO.format(nonce="N1")))
    req2 = retry(req, hdr)
    stale = 'Digest realm="127.0.0.1", nonce="N2", qop="auth", stale=true'
    hdr2 = auth.respond(req2, challenge_response(401, stale))
    assert params_of(hdr2[1])["nonce"] == "N2"
    assert params_of(hdr2[1])["nc"] == "00000001"
    # The stale retry is itself rejected without stale: failure.
    req3 = retry(req2, hdr2)
    with pytest.raises(AuthenticationError):
        auth.respond(req3, challenge_response(401, KAMAILIO.format(nonce="N3")))


def test_stale_loop_is_bounded() -> None:
    auth = DigestAuth("alice", SENTINEL)
    req = make_request()
    hdr = auth.respond(req, challenge_response(401, KAMAILIO.format(nonce="N1")))
    req = retry(req, hdr)
    hdr = auth.respond(req, challenge_response(401, KAMAILIO.format(nonce="N2") + ", stale=true"))
    req = retry(req, hdr)
    with pytest.raises(AuthenticationError):
        auth.respond(req, challenge_response(401, KAMAILIO.format(nonce="N3") + ", stale=true"))


def test_407_uses_proxy_headers_and_failure_status() -> None:
    auth = DigestAuth("alice", SENTINEL)
    req = make_request("INVITE", "sip:bob@127.0.0.1")
    name, value = auth.respond(req, challenge_response(407, KAMAILIO.format(nonce="P1")))
    assert name == "Proxy-Authorization"
    # A 401 challenge for the same realm is a different protection space (other header).
    req2 = retry(req, (name, value))
    name2, _ = auth.respond(req2, challenge_response(401, KAMAILIO.format(nonce="W1")))
    assert name2 == "Authorization"
    with pytest.raises(AuthenticationError) as info:
        auth.respond(req2, challenge_response(407, KAMAILIO.format(nonce="P1")))
    assert info.value.status == 407
    hdr = auth.authorize(make_request("INVITE", "sip:carol@127.0.0.1"))
    assert hdr is not None and hdr[0] == "Authorization"  # most recently cached
    assert [h for h, _ in auth.authorize_all(make_request("INVITE", "sip:carol@x"))] == [
        "Proxy-Authorization",
        "Authorization",
    ]
    assert auth.authorize_all(make_request()) == [], "INVITE challenges only: not for REGISTER"


def test_prefers_strongest_algorithm() -> None:
    auth = DigestAuth("alice", SENTINEL)
    resp = challenge_response(
        401,
        'Digest realm="r", nonce="m", qop="auth", algorithm=MD5',
        'Digest realm="r", nonce="s", qop="auth", algorithm=SHA-256',
    )
    _, value = auth.respond(make_request(), resp)
    assert params_of(value)["algorithm"] == "SHA-256"
    assert params_of(value)["nonce"] == "s"
    # Unknown algorithms are skipped when a supported one is offered.
    resp = challenge_response(
        401,
        'Digest realm="q", nonce="x", algorithm=SHA3-512',
        'Digest realm="q", nonce="y", algorithm=MD5',
    )
    _, value = DigestAuth("a", "b").respond(make_request(), resp)
    assert params_of(value)["nonce"] == "y"


def test_respond_all_answers_each_realm() -> None:
    auth = DigestAuth("alice", SENTINEL)
    resp = challenge_response(
        407, 'Digest realm="p1", nonce="a", qop="auth"', 'Digest realm="p2", nonce="b"'
    )
    out = auth.respond_all(make_request("INVITE", "sip:bob@127.0.0.1"), resp)
    assert [(h, params_of(v)["realm"]) for h, v in out] == [
        ("Proxy-Authorization", "p1"),
        ("Proxy-Authorization", "p2"),
    ]


@pytest.mark.parametrize(
    ("status", "values"),
    [
        (401, ['Digest realm="r", nonce="n", qop="auth-int"']),
        (401, ['Digest realm="r", nonce="n", algorithm=SHA3-512']),
        (407, ['Digest realm="r", nonce="n", algorithm=AKAv1-MD5']),
        (401, []),
        (401, ['Basic realm="r"']),
        (407, ['Digest realm="r"']),
        (401, ["Digest !!!"]),
    ],
)
def test_unanswerable_challenges(status: int, values: list[str]) -> None:
    auth = DigestAuth("alice", SENTINEL)
    with pytest.raises(AuthenticationError) as info:
        auth.respond(make_request(), challenge_response(status, *values))
    assert info.value.status == status
    assert auth.authorize(make_request()) is None


def test_not_a_challenge_status() -> None:
    with pytest.raises(AuthenticationError) as info:
        DigestAuth("a", "b").respond(make_request(), Response(403))
    assert info.value.status == 403


def test_reset_forgets_challenges() -> None:
    auth = DigestAuth("alice", SENTINEL)
    req = make_request()
    hdr = auth.respond(req, challenge_response(401, KAMAILIO.format(nonce="N1")))
    auth.reset()
    assert auth.authorize(make_request()) is None
    # After reset even a retry meeting a new nonce is answered (the marker is gone) ...
    req2 = retry(req, hdr)
    _, value = auth.respond(req2, challenge_response(401, KAMAILIO.format(nonce="N2")))
    assert params_of(value)["nonce"] == "N2"


def test_quoting_of_odd_values() -> None:
    auth = DigestAuth('al"ice\\', SENTINEL)
    resp = challenge_response(401, 'Digest realm="r\\"x", nonce="n"')
    _, value = auth.respond(make_request(), resp)
    assert 'username="al\\"ice\\\\"' in value
    assert 'realm="r\\"x"' in value


# -- secrets never leak ------------------------------------------------------------------------


def test_password_and_response_never_shown() -> None:
    auth = DigestAuth("alice", SENTINEL)
    assert SENTINEL not in repr(auth) and SENTINEL not in str(auth)
    req = make_request()
    name, value = auth.respond(req, challenge_response(401, KAMAILIO.format(nonce="N1")))
    digest = params_of(value)["response"]
    assert SENTINEL not in repr(auth)
    req2 = retry(req, (name, value))
    assert digest not in repr(req2) and digest not in repr(req2.headers)
    texts = [repr(auth), repr(auth._cache)]
    for resp in (
        challenge_response(401, KAMAILIO.format(nonce="N1")),
        challenge_response(401, 'Digest realm="127.0.0.1", nonce="x", qop="auth-int"'),
        challenge_response(401, "Digest " + SENTINEL),
    ):
        with pytest.raises(AuthenticationError) as info:
            auth.respond(req2, resp)
        texts += [str(info.value), repr(info.value)]
    for text in texts:
        assert SENTINEL not in text
        assert digest not in text


def test_format_challenge_round_trips_through_parse_challenge() -> None:
    from exotel_voice.sip.auth import DigestChallenge, format_challenge, parse_challenge, quote

    challenge = DigestChallenge(
        scheme="Digest", realm='we "quote"', nonce="n1", opaque="o", algorithm="SHA-256",
        qop=["auth"], stale=True, domain="sip:pbx sip:pbx2",
    )
    parsed = parse_challenge(format_challenge(challenge))
    assert (parsed.realm, parsed.nonce, parsed.opaque, parsed.algorithm, parsed.qop,
            parsed.stale, parsed.domain) == (
        'we "quote"', "n1", "o", "SHA-256", ["auth"], True, "sip:pbx sip:pbx2"
    )
    assert parsed == challenge
    assert quote('a"b\\c') == '"a\\"b\\\\c"'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (KAMAILIO.format(nonce="N1"), ("127.0.0.1", "N1", None, "MD5", ["auth"], False, None)),
        ('Digest realm="r", nonce="n", opaque="o", algorithm=SHA-256, qop="auth", stale=true',
         ("r", "n", "o", "SHA-256", ["auth"], True, None)),
        ('Digest realm="r",nonce="n",domain="sip:a sip:b",stale=FALSE,',
         ("r", "n", None, "MD5", [], False, "sip:a sip:b")),
        ('  , Digest\trealm="r", nonce="n", nonce="m"', ("r", "m", None, "MD5", [], False, None)),
        ('Digest realm = "r" , nonce=tok, charset=UTF-8, qop="auth, Auth-Int"',
         ("r", "tok", None, "MD5", ["auth", "auth-int"], False, None)),
        ('Digest realm="r", nonce="n", Basic abc', ("r", "n", None, "MD5", [], False, None)),
    ],
)
def test_challenge_shapes_parse_by_the_one_grammar(
    value: str, expected: tuple[object, ...]
) -> None:
    (ch,) = parse_challenges(value)
    assert (ch.realm, ch.nonce, ch.opaque, ch.algorithm, ch.qop, ch.stale, ch.domain) == expected


def _expected_md5_response(
    user: str, password: str, realm: str, nonce: str, method: str, uri: str, nc: str, cnonce: str
) -> str:
    ha1 = _h("MD5", f"{user}:{realm}:{password}")
    ha2 = _h("MD5", f"{method}:{uri}")
    return _h("MD5", f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")


def test_ha1_follows_username_password_realm_and_algorithm() -> None:
    auth = DigestAuth("alice", "pw1", cnonce_factory=lambda: "c")

    def answer(realm: str, algorithm: str = "MD5") -> dict[str, str]:
        value = f'Digest realm="{realm}", nonce="N", qop="auth", algorithm={algorithm}'
        auth.reset()
        return params_of(auth.respond(make_request(), challenge_response(401, value))[1])

    def expected(user: str, password: str, realm: str) -> str:
        return _expected_md5_response(
            user, password, realm, "N", "REGISTER", "sip:127.0.0.1", "00000001", "c"
        )

    assert answer("r1")["response"] == expected("alice", "pw1", "r1")
    assert answer("r2")["response"] == expected("alice", "pw1", "r2")
    assert answer("r1")["response"] == expected("alice", "pw1", "r1")
    ha1_sha = _h("SHA-256", "alice:r1:pw1")
    ha2_sha = _h("SHA-256", "REGISTER:sip:127.0.0.1")
    assert answer("r1", "SHA-256")["response"] == _h(
        "SHA-256", f"{ha1_sha}:N:00000001:c:auth:{ha2_sha}"
    )
    auth.username = "bob"
    assert answer("r1")["response"] == expected("bob", "pw1", "r1")
    auth._password = "pw2"  # no public setter; nothing derived from the old one is kept
    assert answer("r1")["response"] == expected("bob", "pw2", "r1")
    # H(A1) is password-equivalent: never in a repr.
    for ha1 in (_h("MD5", "bob:r1:pw2"), _h("MD5", "alice:r1:pw1"), ha1_sha):
        assert ha1 not in repr(auth) and ha1 not in repr(auth._cache)


def test_each_method_and_uri_is_digested() -> None:
    auth = DigestAuth("alice", "pw", cnonce_factory=lambda: "c")
    auth.respond(make_request(), challenge_response(401, KAMAILIO.format(nonce="N")))
    # An INVITE challenged for the same realm and nonce: one entry, one nonce count.
    auth.respond(make_request("INVITE", "sip:x@127.0.0.1"),
                 challenge_response(401, KAMAILIO.format(nonce="N")))
    nc = 2
    for method, uri in [
        ("REGISTER", "sip:127.0.0.1"),
        ("REGISTER", "sip:127.0.0.1"),
        ("INVITE", "sip:bob@127.0.0.1"),
        ("INVITE", "sip:127.0.0.1"),
        ("REGISTER", "sip:127.0.0.1"),
    ]:
        nc += 1
        got = auth.authorize(make_request(method, uri))
        assert got is not None
        p = params_of(got[1])
        assert p["uri"] == uri
        assert p["response"] == _expected_md5_response(
            "alice", "pw", "127.0.0.1", "N", method, uri, f"{nc:08x}", "c"
        )


def test_default_cnonces_are_distinct_128_bit_hex() -> None:
    values = [_default_cnonce() for _ in range(200)]
    assert len(set(values)) == len(values)
    assert all(re.fullmatch(r"[0-9a-f]{32}", v) for v in values)
    auth = DigestAuth("alice", "pw")
    _, first = auth.respond(make_request(), challenge_response(401, KAMAILIO.format(nonce="N")))
    second = auth.authorize(make_request())
    assert second is not None
    cnonces = [params_of(first)["cnonce"], params_of(second[1])["cnonce"]]
    assert cnonces[0] != cnonces[1]
    assert all(re.fullmatch(r"[0-9a-f]{32}", c) for c in cnonces)


def test_digest_hashes_agree_with_hashlib() -> None:
    for data in (b"", b"alice:atlanta.com:secret", bytes(range(256)) * 3):
        assert auth_module._MD5 is not None and auth_module._SHA256 is not None
        assert auth_module._MD5(data) == hashlib.md5(data).hexdigest()
        assert auth_module._SHA256(data) == hashlib.sha256(data).hexdigest()


# -- nonce changes, retries and the scope of cached credentials (RFC 3261 §22) ----------------

STOCK = 'Digest realm="127.0.0.1", nonce="{nonce}"'  # Kamailio's stock challenge: no qop


@pytest.mark.parametrize("challenge", [STOCK, KAMAILIO], ids=["no-qop", "qop"])
def test_a_refresh_meeting_a_new_nonce_is_answered(challenge: str) -> None:
    """The nonce expired (or the server restarted): a fresh 401 without stale=true."""
    auth = DigestAuth("alice", SENTINEL)
    first = make_request()
    retry(first, auth.respond(first, challenge_response(401, challenge.format(nonce="N1"))))
    for seq, nonce in ((5, "N2"), (9, "N3"), (13, "N4")):  # ... 200 OK each time
        refresh = make_request(cseq=seq)
        pre = auth.authorize(refresh)
        assert pre is not None and params_of(pre[1])["nonce"] != nonce
        refresh.headers.add(*pre)
        name, value = auth.respond(refresh, challenge_response(401, challenge.format(nonce=nonce)))
        assert name == "Authorization" and params_of(value)["nonce"] == nonce
        retry(refresh, (name, value))


@pytest.mark.parametrize("challenge", [STOCK, KAMAILIO], ids=["no-qop", "qop"])
def test_a_new_nonce_for_our_retry_is_answered_once(challenge: str) -> None:
    auth = DigestAuth("alice", SENTINEL)
    req = make_request()
    req = retry(req, auth.respond(req, challenge_response(401, challenge.format(nonce="N1"))))
    # The answer met a new nonce: a fresh challenge, answered once.
    hdr = auth.respond(req, challenge_response(401, challenge.format(nonce="N2")))
    assert params_of(hdr[1])["nonce"] == "N2"
    req = retry(req, hdr)
    # Its answer meets yet another nonce: the server keeps refusing what we send.
    with pytest.raises(AuthenticationError) as info:
        auth.respond(req, challenge_response(401, challenge.format(nonce="N3")))
    assert info.value.status == 401 and "127.0.0.1" in str(info.value)


@pytest.mark.parametrize("challenge", [STOCK, KAMAILIO], ids=["no-qop", "qop"])
def test_the_same_nonce_for_our_retry_is_a_rejection(challenge: str) -> None:
    """Wrong password: the second 401 for the nonce we answered fails after one retry."""
    auth = DigestAuth("alice", "wrong")
    req = make_request()
    req = retry(req, auth.respond(req, challenge_response(401, challenge.format(nonce="N1"))))
    with pytest.raises(AuthenticationError) as info:
        auth.respond(req, challenge_response(401, challenge.format(nonce="N1")))
    assert info.value.status == 401 and "rejected" in str(info.value)
    assert "wrong" not in str(info.value)


def test_proxy_credentials_earned_by_an_invite_stay_with_invites() -> None:
    auth = DigestAuth("alice", SENTINEL)
    invite = make_request("INVITE", "sip:bob@127.0.0.1")
    name, _ = auth.respond(invite, challenge_response(407, STOCK.format(nonce="P1")))
    assert name == "Proxy-Authorization"
    # A REGISTER goes to the registrar, not through the proxy that challenged the INVITE.
    assert auth.authorize(make_request()) is None
    assert auth.authorize_all(make_request()) == []
    # The next INVITE may carry them pre-emptively.
    again = auth.authorize(make_request("INVITE", "sip:carol@127.0.0.1"))
    assert again is not None and again[0] == "Proxy-Authorization"
    # The registrar's own challenge is used for REGISTERs, and only its credentials.
    register = make_request(cseq=7)
    auth.respond(register, challenge_response(401, STOCK.format(nonce="W1")))
    auth.respond(make_request("INVITE", "sip:dave@127.0.0.1"),
                 challenge_response(407, STOCK.format(nonce="P2")))
    refresh = auth.authorize(make_request(cseq=9))
    assert refresh is not None and refresh[0] == "Authorization"
    assert params_of(refresh[1])["nonce"] == "W1"
    assert [h for h, _ in auth.authorize_all(make_request(cseq=11))] == ["Authorization"]
