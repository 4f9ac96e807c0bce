"""Tests for exotel_voice.sip.message: the one-message parser, its limits and serializer.

Property-based tests of the same parser (round trip, fuzzing) are in test_parser_properties.py;
URIs and header values are tested in test_uri.py and test_headers.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from exotel_voice.exceptions import (
    InvalidMessage,
    LineTooLong,
    MessageTooLarge,
    TooManyHeaders,
)
from exotel_voice.sip import message as message_module
from exotel_voice.sip.headers import Headers, NameAddr
from exotel_voice.sip.message import Request, Response, parse_message
from exotel_voice.sip.uri import AbsoluteURI, SipURI, parse_uri


DATA = Path(__file__).parent / "data"
RFC4475 = DATA / "rfc4475"
WSS = DATA / "wss"

ACCEPT = "accept"  # parse_message() returns a message, and every header accessor a value
REJECT = "reject"  # parse_message() raises InvalidMessage
READ_REJECTS = "reject-read"  # parse_message() returns; reading a header accessor raises

#: What we do with each RFC 4475 message, and why. Section numbers are RFC 4475's.
RFC4475_VERDICTS: dict[str, tuple[str, str]] = {
    # 3.1.1 Valid messages: all must parse.
    "wsinv": (ACCEPT, "3.1.1.1 folding, LWS, compact forms, escapes: valid"),
    "intmeth": (ACCEPT, "3.1.1.2 unusual but legal characters everywhere: valid"),
    "esc01": (ACCEPT, "3.1.1.3 valid % escapes: valid"),
    "escnull": (ACCEPT, "3.1.1.4 escaped NULs in URIs: valid"),
    "esc02": (ACCEPT, "3.1.1.5 % that is not an escape (method, display name): valid"),
    "lwsdisp": (ACCEPT, "3.1.1.6 no LWS between display name and <: valid"),
    "longreq": (ACCEPT, "3.1.1.7 long values, within our MAX_LINE_LENGTH: valid"),
    "dblreq": (ACCEPT, "3.1.1.8 extra octets after Content-Length: truncated, valid"),
    "semiuri": (ACCEPT, "3.1.1.9 ; inside the user part: valid"),
    "transports": (ACCEPT, "3.1.1.10 unknown Via transports: valid"),
    "mpart01": (ACCEPT, "3.1.1.11 multipart body with binary octets: valid"),
    "unreason": (ACCEPT, "3.1.1.12 UTF-8 reason phrase: valid"),
    "noreason": (ACCEPT, "3.1.1.13 empty reason phrase: valid"),
    # 3.1.2 Invalid messages.
    "badinv01": (REJECT, "3.1.2.1 ';;,;,,' in Via: empty Via parameters"),
    "clerr": (REJECT, "3.1.2.2 Content-Length larger than the body (one WS frame = one message)"),
    "ncl": (REJECT, "3.1.2.3 negative Content-Length"),
    "scalar02": (REJECT, "3.1.2.4 CSeq number above 2**31-1"),
    "scalarlg": (REJECT, "3.1.2.5 response CSeq number above 2**31-1"),
    "quotbal": (REJECT, "3.1.2.6 unterminated quoted display name in To"),
    "ltgtruri": (REJECT, "3.1.2.7 Request-URI enclosed in <>"),
    "lwsruri": (REJECT, "3.1.2.8 LWS inside the Request-URI"),
    "lwsstart": (REJECT, "3.1.2.9 more than one SP between Request-Line elements"),
    "trws": (REJECT, "3.1.2.10 SP at the end of the Request-Line"),
    "escruri": (REJECT, "3.1.2.11 headers in the Request-URI (RFC 3261 §19.1.5)"),
    "baddate": (
        ACCEPT,
        "3.1.2.12 non-GMT Date: the RFC allows being liberal; this SDK never interprets Date",
    ),
    "regbadct": (
        READ_REJECTS,
        "3.1.2.13 Contact URI with '?' outside <>: Contact is not on the transaction path, "
        "so only reading .contacts rejects it",
    ),
    "badaspec": (REJECT, "3.1.2.14 spaces inside <> around the To addr-spec; we take the 400"),
    "baddn": (REJECT, "3.1.2.15 non-token characters (comma) in an unquoted display name"),
    "badvers": (REJECT, "3.1.2.16 SIP/7.0: status_hint 505"),
    "mismatch01": (REJECT, "3.1.2.17 CSeq method differs from the request method"),
    "mismatch02": (REJECT, "3.1.2.18 unknown method with a different CSeq method"),
    "bigcode": (REJECT, "3.1.2.19 status code with more than 3 digits"),
    # 3.2 Transaction layer.
    "badbranch": (
        ACCEPT,
        "3.2.1 branch is only the magic cookie: syntactically fine; the transaction layer "
        "decides what to do with it",
    ),
    # 3.3 Application layer: well-formed messages an application answers with an error.
    "insuf": (REJECT, "3.3.1 missing Call-ID, From and To: no transaction can be built"),
    "unkscm": (ACCEPT, "3.3.2 unknown Request-URI scheme: parsed as AbsoluteURI, app answers 416"),
    "novelsc": (ACCEPT, "3.3.3 novel scheme in the Request-URI: parsed as AbsoluteURI"),
    "unksm2": (ACCEPT, "3.3.4 unknown schemes in To/From/Contact: parsed as AbsoluteURI"),
    "bext01": (ACCEPT, "3.3.5 unknown Require option: the app answers 420"),
    "invut": (ACCEPT, "3.3.6 unknown Content-Type: the app answers 415"),
    "regaut01": (ACCEPT, "3.3.7 unknown authorization scheme: for the auth layer"),
    "multi01": (REJECT, "3.3.8 several values in single-value From/To/Call-ID/CSeq"),
    "mcl01": (REJECT, "3.3.9 several Content-Length values: the body length is unknowable"),
    "bcast": (ACCEPT, "3.3.10 200 OK with a broadcast Via: for the transport to drop"),
    "zeromf": (ACCEPT, "3.3.11 Max-Forwards 0: valid; a proxy answers 483"),
    "cparam01": (ACCEPT, "3.3.12 REGISTER with Contact parameters: valid"),
    "cparam02": (ACCEPT, "3.3.13 REGISTER with URI parameters in the Contact: valid"),
    "regescrt": (ACCEPT, "3.3.14 REGISTER Contact with escaped headers inside <>: valid"),
    "sdp01": (ACCEPT, "3.3.15 unacceptable Accept: the app answers 415"),
    "inv2543": (ACCEPT, "3.3.16 RFC 2543 style INVITE (no branch cookie, no Content-Length)"),
}


def read(path: Path) -> bytes:
    return path.read_bytes()


#: Every structured header accessor of a message.
ACCESSORS = ("vias", "via", "branch", "from_", "to", "call_id", "cseq", "contacts", "routes",
             "record_routes", "max_forwards", "content_type")


def read_headers(message: Request | Response) -> None:
    """Read every structured header (what the lazy parse left as text is parsed now)."""
    for name in ACCESSORS:
        getattr(message, name)


def test_every_rfc4475_message_has_a_verdict() -> None:
    files = {p.stem for p in RFC4475.glob("*.sip")}
    assert len(files) == 49
    assert files == set(RFC4475_VERDICTS)


@pytest.mark.parametrize("name", sorted(RFC4475_VERDICTS))
def test_rfc4475(name: str) -> None:
    verdict, why = RFC4475_VERDICTS[name]
    data = read(RFC4475 / f"{name}.sip")
    if verdict == REJECT:
        with pytest.raises(InvalidMessage):
            parse_message(data)
        return
    message = parse_message(data)
    assert isinstance(message, (Request, Response)), why
    if verdict == READ_REJECTS:
        with pytest.raises(InvalidMessage):
            read_headers(message)
        return
    read_headers(message)


@pytest.mark.parametrize("name", sorted(RFC4475_VERDICTS))
@pytest.mark.parametrize("cut", [1, 7, 60, 200])
def test_rfc4475_truncated_gives_message_or_invalid_message(name: str, cut: int) -> None:
    data = read(RFC4475 / f"{name}.sip")
    for piece in (data[:-cut], data[cut:], data[: len(data) // 2]):
        try:
            read_headers(parse_message(piece))
        except InvalidMessage:
            pass


def test_wsinv_details() -> None:
    m = parse_message(read(RFC4475 / "wsinv.sip"))
    assert isinstance(m, Request)
    assert m.method == "INVITE"
    assert isinstance(m.uri, SipURI) and m.uri.params == {"unknownparam": None}
    assert [v.branch for v in m.vias] == ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"]
    assert [v.transport for v in m.vias] == ["UDP", "TCP", "UDP"]
    assert m.to.tag == "1918181833n"
    assert m.from_.display_name == 'J Rosenberg \\"'
    assert m.from_.tag == "98asjd8"
    assert m.cseq.seq == 9 and m.cseq.method == "INVITE"
    assert m.max_forwards == 68
    assert m.headers["Subject"] == ""
    assert m.headers["NewFangledHeader"] == "newfangled value continued newfangled value"
    assert m.headers["UnknownHeaderWithUnusualValue"] == ";;,,;;,;"
    (contact,) = m.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert m.routes[0].sip_uri.params["lr"] is None
    assert len(m.body) == 150


def test_intmeth_details() -> None:
    m = parse_message(read(RFC4475 / "intmeth.sip"))
    assert isinstance(m, Request)
    assert m.method == "!interesting-Method0123456789_*+`.%indeed'~"
    uri = m.uri
    assert isinstance(uri, SipURI)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert "pas$wo" not in repr(uri) and "pas$wo" not in repr(m)
    assert m.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert m.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert m.from_.params["fromparam''~+*_!.-%"] == "работающий"
    assert m.branch == "z9hG4bK-.!%66*_+`'~"
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.headers["extensionHeader-!.%*+_`'~"] == "\ufeff大停電"


def test_escapes() -> None:
    esc01 = parse_message(read(RFC4475 / "esc01.sip"))
    assert isinstance(esc01.uri, SipURI) and esc01.uri.user == "sips:user@example.com"
    assert esc01.from_.sip_uri.user == "I have spaces"
    assert esc01.contacts[0].sip_uri.params == {"lr": None, "name": "value%41"}
    escnull = parse_message(read(RFC4475 / "escnull.sip"))
    assert escnull.to.sip_uri.user == "null-\x00-null"
    assert [c.sip_uri.user for c in escnull.contacts] == ["\x00", "\x00\x00"]
    esc02 = parse_message(read(RFC4475 / "esc02.sip"))
    assert isinstance(esc02, Request) and esc02.method == "RE%47IST%45R"
    assert esc02.to.display_name == "%Z%45"
    assert len(esc02.contacts) == 2  # "C%6Fntact" is another header


def test_other_valid_details() -> None:
    semiuri = parse_message(read(RFC4475 / "semiuri.sip"))
    assert isinstance(semiuri.uri, SipURI) and semiuri.uri.user == "user;par=u@example.net"
    dblreq = parse_message(read(RFC4475 / "dblreq.sip"))
    assert isinstance(dblreq, Request) and dblreq.method == "REGISTER" and dblreq.body == b""
    noreason = parse_message(read(RFC4475 / "noreason.sip"))
    assert isinstance(noreason, Response) and noreason.status == 100 and noreason.reason == ""
    unreason = parse_message(read(RFC4475 / "unreason.sip"))
    assert isinstance(unreason, Response)
    assert unreason.reason.startswith("= 2**3 * 5**2 но сто")
    lwsdisp = parse_message(read(RFC4475 / "lwsdisp.sip"))
    assert lwsdisp.from_.display_name == "caller"
    mpart = parse_message(read(RFC4475 / "mpart01.sip"))
    assert len(mpart.body) == 553 and b"\x00" in mpart.body
    unkscm = parse_message(read(RFC4475 / "unkscm.sip"))
    assert isinstance(unkscm.uri, AbsoluteURI)
    unksm2 = parse_message(read(RFC4475 / "unksm2.sip"))
    assert isinstance(unksm2.to.uri, AbsoluteURI) and unksm2.to.uri.scheme == "isbn"
    inv2543 = parse_message(read(RFC4475 / "inv2543.sip"))
    assert inv2543.branch is None and len(inv2543.body) > 0


def test_status_hints() -> None:
    with pytest.raises(InvalidMessage) as exc_info:
        parse_message(read(RFC4475 / "badvers.sip"))
    assert exc_info.value.status_hint == 505
    with pytest.raises(InvalidMessage) as exc_info:
        parse_message(read(RFC4475 / "clerr.sip"))
    assert exc_info.value.status_hint == 400


@pytest.mark.parametrize(
    ("start", "hint"),
    [
        ("OPTIONS sip:" + "a" * 9000 + "@example.com SIP/2.0", 414),
        ("OPTIONS  sip:" + "a" * 9000 + "@example.com  SIP/2.0 ", 414),
        ("OPTIONS sip:bob@example.com SIP/2.0" + " " * 9000, 400),
        ("X" * 9000 + " sip:bob@example.com SIP/2.0", 400),
        ("SIP/2.0 200 " + "O" * 9000, 400),
    ],
    ids=["long-uri", "long-uri-extra-spaces", "long-trailing-space", "long-method", "long-reason"],
)
def test_a_long_request_uri_hints_414(start: str, hint: int) -> None:
    """RFC 3261 §21.4.12: 414 when the Request-URI is what makes the request line too long."""
    with pytest.raises(LineTooLong) as exc_info:
        parse_message(start + "\r\n" + BASIC.split("\r\n", 1)[1] + "\r\n")
    assert exc_info.value.status_hint == hint
    assert len(str(exc_info.value)) < 200
    assert message_module.reason_phrase(414) == "Request-URI Too Long"


@pytest.mark.parametrize("text", ["sip-", "sipx", "sips", "sipsx", "SIP-"])
def test_a_uri_without_a_colon_is_invalid(text: str) -> None:
    """Found by tests/sip/test_fuzz.py's round trip: ``parse_uri("sip-")`` read the scheme as
    ``text[:-1]`` (no colon) and returned ``sip:sip-``, a different URI."""
    with pytest.raises(InvalidMessage, match="invalid URI"):
        parse_uri(text)
    with pytest.raises(InvalidMessage):
        parse_message(f"OPTIONS {text} SIP/2.0\r\n" + _NO_SCHEME_HEADERS)
    with pytest.raises(InvalidMessage, match="invalid To"):
        parse_message(
            "OPTIONS sip:b@c SIP/2.0\r\n" + _NO_SCHEME_HEADERS.replace("<sip:b@c>", text)
        )


_NO_SCHEME_HEADERS = (
    "Via: SIP/2.0/WSS a.invalid;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
    "To: <sip:b@c>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n"
)


# -- the WebSocket exchange (SIP.js 0.21 through Kamailio 5.6) -------------------------------


def test_register_exchange() -> None:
    register = parse_message(read(WSS / "01-register.sip"))
    assert isinstance(register, Request) and register.method == "REGISTER"
    assert register.via.transport == "WSS" and register.via.host.endswith(".invalid")
    assert register.branch is not None and register.branch.startswith("z9hG4bK")
    (contact,) = register.contacts
    assert contact.sip_uri.transport == "ws"
    assert contact.params["+sip.instance"] == "<urn:uuid:5d3a7c1e-7f41-4a4e-9a2b-2f0a3c6d8e11>"
    assert contact.params["reg-id"] == "1" and contact.params["+sip.ice"] is None
    assert register.headers.get_all("Supported") == ["path", "gruu", "outbound"]

    challenge = parse_message(read(WSS / "02-401-unauthorized.sip"))
    assert isinstance(challenge, Response) and challenge.status == 401
    assert challenge.via.params["received"] == "127.0.0.1"
    assert challenge.via.params["rport"] == "49822"
    assert challenge.headers.get_all("WWW-Authenticate")[0].startswith('Digest realm="pbx')

    retry = parse_message(read(WSS / "03-register-authorization.sip"))
    assert retry.cseq.seq == 2 and retry.call_id == register.call_id
    assert 'response="0bd2c1f3' in retry.headers["Authorization"]
    for text in (repr(retry), repr(retry.headers)):
        assert "0bd2c1f3" not in text and "[secure]" in text or "Authorization" not in text

    ok = parse_message(read(WSS / "04-200-register.sip"))
    assert isinstance(ok, Response) and ok.status == 200
    (bound,) = ok.contacts
    assert bound.params["expires"] == "600"
    assert bound.params["received"] == "sip:127.0.0.1:49822;transport=ws"


def test_invite_through_kamailio() -> None:
    invite = parse_message(read(WSS / "06-invite-via-kamailio.sip"))
    assert isinstance(invite, Request) and invite.method == "INVITE"
    assert [v.host for v in invite.vias] == ["127.0.0.1", "k1x9qmw3ez5c.invalid"]
    rr = invite.record_routes
    assert [r.sip_uri.transport for r in rr] == ["ws", "udp"]
    assert all(r.sip_uri.params["r2"] == "on" and "lr" in r.sip_uri.params for r in rr)
    assert invite.contacts[0].sip_uri.params["ob"] is None
    assert invite.max_forwards == 69
    assert invite.content_type == "application/sdp"
    assert b"a=fingerprint:sha-256 " in invite.body and b"a=ice-pwd:" in invite.body
    ok = parse_message(read(WSS / "07-200-invite.sip"))
    assert [r.sip_uri.transport for r in ok.record_routes] == ["ws", "udp"]
    assert ok.to.tag == "9qp3lbj1ar"


def test_an_sdp_body_is_opaque_to_the_parser() -> None:
    data = read(WSS / "05-invite-webrtc.sip")
    invite = parse_message(data)
    assert invite.content_type == "application/sdp" and invite.body.startswith(b"v=0\r\n")
    broken = parse_message(data.replace(b"v=0\r\n", b"v=X\r\n"))  # the media layer judges it
    assert broken.body.startswith(b"v=X\r\n")


@pytest.mark.parametrize("path", sorted(WSS.glob("*.sip")), ids=lambda p: p.name)
def test_wss_files_round_trip(path: Path) -> None:
    message = parse_message(read(path))
    read_headers(message)
    again = parse_message(message.serialize())
    assert again == message
    assert bytes(again) == message.serialize()


# -- framing, Content-Length and limits ------------------------------------------------------

BASIC = (
    "OPTIONS sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/WSS host.invalid;branch=z9hG4bKabc\r\n"
    "From: <sip:alice@example.com>;tag=1\r\n"
    "To: <sip:bob@example.com>\r\n"
    "Call-ID: c1\r\n"
    "CSeq: 1 OPTIONS\r\n"
)


def test_body_longer_than_content_length_is_cut() -> None:
    m = parse_message(BASIC + "Content-Length: 3\r\n\r\nabcdef")
    assert m.body == b"abc"


def test_content_length_larger_than_body_is_an_error() -> None:
    with pytest.raises(InvalidMessage, match="Content-Length"):
        parse_message(BASIC + "Content-Length: 7\r\n\r\nabcdef")


def test_missing_content_length_takes_the_whole_frame() -> None:
    assert parse_message(BASIC + "\r\nabcdef").body == b"abcdef"


@pytest.mark.parametrize("value", ["-1", "1.0", "x", "", "١"])
def test_bad_content_length(value: str) -> None:
    with pytest.raises(InvalidMessage):
        parse_message(BASIC + f"Content-Length: {value}\r\n\r\n")


def test_leading_crlf_lf_line_ends_and_folding() -> None:
    text = BASIC.replace("To: <sip:bob@example.com>", "To:\r\n <sip:bob@example.com>\r\n\t;tag=9")
    m = parse_message("\r\n\r\n" + text + "\r\n")
    assert m.to.tag == "9"
    lf = parse_message(BASIC.replace("\r\n", "\n") + "\nbody")
    assert lf.body == b"body" and lf.call_id == "c1"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\r\n",
        "garbage",
        BASIC,  # no blank line after the headers, no final CRLF pair
        BASIC.replace("Call-ID: c1\r\n", "Call-ID: c1\rX: y\r\n") + "\r\n",
        BASIC.replace("Call-ID: c1\r\n", "Call-ID: c1\r\n\nX: y\r\n") + "\r\n",
        " " + BASIC + "\r\n",
        BASIC.replace("Via", "V ia") + "\r\n",
        BASIC.replace("Call-ID: c1", "Call-ID:") + "\r\n",
        BASIC.replace("CSeq: 1 OPTIONS", "CSeq: 1 OPTIONS\r\nCSeq: 2 OPTIONS") + "\r\n",
        BASIC.replace("SIP/2.0\r\n", "SIP/2.0 \r\n", 1) + "\r\n",
        BASIC.replace("OPTIONS sip", "OPTIONS  sip", 1) + "\r\n",
        BASIC.replace("From: <sip:alice@example.com>;tag=1", "From: <sip:alice@example.com;tag=1")
        + "\r\n",
        "SIP/2.0 99 Too Low\r\n" + BASIC.split("\r\n", 1)[1] + "\r\n",
        "SIP/2.0 700 Too High\r\n" + BASIC.split("\r\n", 1)[1] + "\r\n",
        "SIP/2.0 2000 OK\r\n" + BASIC.split("\r\n", 1)[1] + "\r\n",
    ],
)
def test_invalid_messages(text: str) -> None:
    with pytest.raises(InvalidMessage):
        parse_message(text)


def test_invalid_utf8_in_headers() -> None:
    with pytest.raises(InvalidMessage, match="UTF-8"):
        parse_message(BASIC.encode() + b"X-Bad: \xff\xfe\r\n\r\n")


def test_binary_body_is_kept() -> None:
    body = bytes(range(256))
    m = parse_message(BASIC.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    assert m.body == body


def test_response_without_reason_and_status_hint_505() -> None:
    r = parse_message("SIP/2.0 180\r\n" + BASIC.split("\r\n", 1)[1] + "\r\n")
    assert isinstance(r, Response) and r.status == 180 and r.reason == ""
    with pytest.raises(InvalidMessage) as exc_info:
        parse_message("SIP/3.0 200 OK\r\n" + BASIC.split("\r\n", 1)[1] + "\r\n")
    assert exc_info.value.status_hint == 505


def test_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MessageTooLarge) as too_large:
        parse_message(BASIC + "X: " + "a" * message_module.MAX_MESSAGE_SIZE + "\r\n\r\n")
    assert too_large.value.status_hint == 513
    monkeypatch.setattr(message_module, "MAX_LINE_LENGTH", 100)
    with pytest.raises(LineTooLong):
        parse_message(BASIC + "X: " + "a" * 101 + "\r\n\r\n")
    with pytest.raises(LineTooLong):
        parse_message(BASIC + "X: " + "a" * 60 + "\r\n " + "b" * 60 + "\r\n\r\n")
    monkeypatch.setattr(message_module, "MAX_NUM_HEADERS", 10)
    with pytest.raises(TooManyHeaders):
        parse_message(BASIC + "X: 1\r\n" * 6 + "\r\n")
    assert parse_message(BASIC + "X: 1\r\n" * 5 + "\r\n").call_id == "c1"


def test_header_lines_spellings_folding_and_line_ends() -> None:
    text = BASIC + "X-Novel : one\r\nx-novel:two \r\nSubject:\r\nv: SIP/2.0/WSS b.invalid\r\n\r\n"
    message = parse_message(text)
    assert message.headers.get_all("X-Novel") == ["one", "two"]
    assert message.headers["Subject"] == ""
    assert [v.host for v in message.vias] == ["host.invalid", "b.invalid"]
    for bad in (BASIC + "Via\r\n\r\n", BASIC + "X-Novel\r\n\r\n", BASIC + " X: y\r\n\r\n",
                BASIC + "X Novel: y\r\n\r\n"):
        with pytest.raises(InvalidMessage):
            parse_message(bad)
    folded = parse_message(BASIC.replace("Call-ID: c1", "Call-ID:\r\n c1") + "\r\n")
    assert folded.call_id == "c1"
    lf = parse_message((BASIC + "X-Novel: z\r\n").replace("\r\n", "\n") + "\n")
    assert lf.headers["X-Novel"] == "z" and lf.call_id == "c1"
    with pytest.raises(InvalidMessage, match="bare CR"):
        parse_message(BASIC + "X-Novel: a\rb\r\n\r\n")
    # A header line splits at its first ":"; a value keeps the ": " it holds.
    colons = BASIC + "Subject: a: b\r\nX-Novel :  c\r\nX-Novel:d: e\r\n\r\n"
    got = parse_message(colons).headers.items()[-3:]
    assert got == [("Subject", "a: b"), ("X-Novel", "c"), ("X-Novel", "d: e")]
    # The header section ends at the first blank line, whatever the line ends.
    mixed = parse_message(BASIC + "X-Novel: z\n\nbody\r\n\r\nmore")
    assert mixed.headers["X-Novel"] == "z" and mixed.body == b"body\r\n\r\nmore"


def test_accepts_str_bytearray_memoryview() -> None:
    raw = (BASIC + "\r\n").encode()
    for data in (raw, raw.decode(), bytearray(raw), memoryview(raw)):
        assert parse_message(data).call_id == "c1"


# -- parsed views, caching and ownership -----------------------------------------------------


def test_views_are_owned_by_the_caller_and_follow_header_changes() -> None:
    m = parse_message(BASIC + "\r\n")
    first = m.from_
    first.params["tag"] = "changed"
    assert m.from_.tag == "1"
    via = m.via
    via.params["branch"] = "other"
    assert m.branch == "z9hG4bKabc"
    carol = NameAddr(SipURI(user="carol", host="example.org"), None, {"tag": "2"})
    m.headers.set("From", str(carol))
    assert m.from_.tag == "2" and m.from_.sip_uri.user == "carol"
    m.headers.set("Via", "SIP/2.0/WSS other.invalid;branch=z9hG4bKnew")
    assert m.branch == "z9hG4bKnew"
    m.headers = Headers([("CSeq", "5 OPTIONS")])
    assert m.cseq.seq == 5
    with pytest.raises(InvalidMessage):
        _ = m.via


def test_headers_off_the_transaction_path_are_checked_when_read() -> None:
    for extra, accessor in (
        ("Max-Forwards: 256", "max_forwards"),
        ("Contact: Bad, Name <sip:a@b>", "contacts"),
        ("Route: <sip:a@b", "routes"),
        ("Record-Route: sip:a@b?x=1", "record_routes"),
    ):
        m = parse_message(BASIC + extra + "\r\n\r\n")  # lazily accepted ...
        with pytest.raises(InvalidMessage):
            getattr(m, accessor)  # ... and checked when read
    assert parse_message(BASIC + "Contact: *\r\nExpires: 0\r\n\r\n").contacts == []


# -- construction, serialization, repr -------------------------------------------------------


def test_build_and_serialize() -> None:
    headers = Headers(
        [
            ("v", "SIP/2.0/WSS h.invalid;branch=z9hG4bK1"),
            ("f", "<sip:a@b>;tag=x"),
            ("t", "<sip:c@d>"),
            ("i", "id"),
            ("CSeq", "1 MESSAGE"),
            ("Content-Length", "999"),
        ]
    )
    req = Request("MESSAGE", "sip:c@d", headers, b"hi")
    wire = bytes(req)
    assert wire.startswith(b"MESSAGE sip:c@d SIP/2.0\r\nVia: SIP/2.0/WSS")
    assert b"Content-Length: 2\r\n\r\nhi" in wire
    parsed = parse_message(wire)
    assert parsed != req  # the stale Content-Length: 999 was rewritten on the wire
    req.headers.set("Content-Length", "2")
    assert parsed == req
    resp = Response(486, headers=headers.copy())
    resp.headers.set("Content-Length", "0")
    assert resp.reason == "Busy Here"
    assert parse_message(resp.serialize()) == resp
    assert Response(299).reason == "Unknown"


def test_repr_hides_secrets() -> None:
    headers = Headers(
        [
            ("Via", "SIP/2.0/WSS h.invalid;branch=z9hG4bKrepr"),
            ("Call-ID", "abc"),
            ("CSeq", "2 REGISTER"),
            ("Authorization", 'Digest username="u", response="secretdigest"'),
            ("Proxy-Authorization", 'Digest username="u", response="proxysecret"'),
        ]
    )
    req = Request("REGISTER", "sip:u:hunter2@example.com", headers)
    resp = Response(200, headers=headers)
    for text in (repr(req), repr(resp), repr(headers), str(req.uri.__repr__())):
        assert "secretdigest" not in text and "proxysecret" not in text
        assert "hunter2" not in text
    assert "branch=z9hG4bKrepr" in repr(req) and "Call-ID=abc" in repr(resp)
    assert "[secure]" in repr(headers)


# --------------------------------------------------------------------------------------------
# Secrets never reach exception texts (the connection logs str(exc) at WARNING)
# --------------------------------------------------------------------------------------------

SENTINEL = "S3ntinelPw9"

_HEAD = (
    "Via: SIP/2.0/WSS h.invalid;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\n"
    "Call-ID: c1\r\nCSeq: 1 INVITE\r\n"
)


@pytest.mark.parametrize(
    "text",
    [
        # malformed Request-URIs carrying a password
        f"INVITE sip:alice:{SENTINEL}@h;;bad SIP/2.0\r\n{_HEAD}\r\n",
        f"INVITE sip:alice:{SENTINEL}@ SIP/2.0\r\n{_HEAD}\r\n",
        f"INVITE sip:al ice:{SENTINEL}@h SIP/2.0\r\n{_HEAD}\r\n",
        f"INVITE sip:alice:{SENTINEL}@h SIP/2.0 extra\r\n{_HEAD}\r\n",
        f"INVITE sip:{'x' * 120}:{SENTINEL}@h?bad SIP/2.0\r\n{_HEAD}\r\n",
        # malformed headers carrying one
        f"INVITE sip:b@h SIP/2.0\r\n{_HEAD.replace('<sip:a@h>', f'<sip:a:{SENTINEL}@h')}\r\n",
        f"INVITE sip:b@h SIP/2.0\r\n{_HEAD.replace('<sip:b@h>', f'sip:b:{SENTINEL}@h?x=1')}\r\n",
        f"INVITE sip:b@h SIP/2.0\r\n{_HEAD.replace('<sip:b@h>', f'<sip:b:{SENTINEL}@h>junk')}\r\n",
        f"INVITE sip:b@h SIP/2.0\r\n{_HEAD.replace('<sip:b@h>', f'<sip:b:{SENTINEL}@h>;;')}\r\n",
        f"INVITE sip:b@h SIP/2.0\r\n{_HEAD.replace('<sip:b@h>', f'b:{SENTINEL}@h x')}\r\n",
        f"INVITE sip:b@h SIP/2.0\r\n{_HEAD.replace('h.invalid', f'u:{SENTINEL}@h.invalid')}\r\n",
        f"INVITE sip:b@h SIP/2.0\r\n{_HEAD}Authorization Digest response={SENTINEL}\r\n\r\n",
        f"INVITE sip:b@h SIP/2.0\r\n{_HEAD}Contact: <sip:c:{SENTINEL}@h;x=\"\r\n\r\n",
        f"INVITE sip:b@h SIP/2.0\r\n{_HEAD}Route: sip:c:{SENTINEL}@h?x\r\n\r\n",
    ],
)
def test_exception_texts_never_carry_passwords(text: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        read_headers(parse_message(text.encode()))
    # Not even a cut-off piece of it (the old texts cut at 40/80 characters).
    assert SENTINEL[:6] not in str(info.value)
    assert SENTINEL[:6] not in repr(info.value)


_RESPONSE_BAD_FROM = (
    "SIP/2.0 200 OK\r\nVia: SIP/2.0/WSS a.invalid;branch=z9hG4bKx1\r\nFrom: <<<>\r\n"
    "To: <sip:bob@example.com>;tag=t9\r\nCall-ID: c1\r\nCSeq: 3 REGISTER\r\n"
    "Content-Length: 0\r\n\r\n"
)


def test_a_response_from_and_to_are_checked_when_read() -> None:
    # Not on a response's transaction path (RFC 3261 §17.1.3): parse_message accepts it ...
    message = parse_message(_RESPONSE_BAD_FROM)
    assert isinstance(message, Response) and message.cseq.method == "REGISTER"
    assert message.to.tag == "t9"
    # ... and reading or checking From is what fails.
    with pytest.raises(InvalidMessage, match="invalid From header"):
        _ = message.from_
    with pytest.raises(InvalidMessage):
        message.check_from_to()
    missing = _RESPONSE_BAD_FROM.replace("From: <<<>\r\n", "")
    with pytest.raises(InvalidMessage, match="missing mandatory header From"):
        parse_message(missing)  # still present exactly once


def test_a_request_from_and_to_are_checked_by_the_parser() -> None:
    request = (
        "OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/WSS a.invalid;branch=z9hG4bKx1\r\n"
        "From: <<<>\r\nTo: <sip:bob@example.com>\r\nCall-ID: c1\r\nCSeq: 3 OPTIONS\r\n\r\n"
    )
    with pytest.raises(InvalidMessage, match="invalid From header"):
        parse_message(request)
    good = parse_message(request.replace("From: <<<>", "From: <sip:a@example.com>;tag=f"))
    good.check_from_to()  # already checked: nothing to do
    assert good.from_.tag == "f"
