"""Tests for exotel_voice.sip.headers: the header multi-dict and structured values.

Header parsing inside whole messages (folding, RFC 4475) is covered by test_message.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from exotel_voice.exceptions import InvalidMessage
from exotel_voice.sip.headers import (
    CSeq,
    Headers,
    NameAddr,
    Via,
    canonical_name,
    parse_cseq,
    parse_name_addr,
    parse_params,
    parse_via,
    split_header_values,
)
from exotel_voice.sip.uri import AbsoluteURI, SipURI


def test_canonical_names_and_compact_forms() -> None:
    assert canonical_name("call-id") == "Call-ID"
    assert canonical_name("i") == "Call-ID"
    assert canonical_name("m") == "Contact"
    assert canonical_name("V") == "Via"
    assert canonical_name("WWW-AUTHENTICATE") == "WWW-Authenticate"
    assert canonical_name("x-custom-thing") == "X-Custom-Thing"


def test_multidict() -> None:
    h = Headers([("v", "SIP/2.0/WSS a;branch=z9hG4bK1"), ("Via", "SIP/2.0/WSS b, SIP/2.0/WSS c")])
    assert "VIA" in h and "via" in h and "Route" not in h and 5 not in h
    assert h.get("v") == "SIP/2.0/WSS a;branch=z9hG4bK1"
    assert h.get_all("Via") == ["SIP/2.0/WSS a;branch=z9hG4bK1", "SIP/2.0/WSS b", "SIP/2.0/WSS c"]
    assert h["via"] == "SIP/2.0/WSS a;branch=z9hG4bK1"
    with pytest.raises(KeyError):
        h["Route"]
    assert h.get("Route", "x") == "x"
    h.prepend("Via", "SIP/2.0/WSS top")
    h.add("f", "<sip:a@b>")
    assert list(h)[0] == ("Via", "SIP/2.0/WSS top") and h.items()[-1] == ("From", "<sip:a@b>")
    h.remove_first("Via")
    h.remove_first("Via")
    assert h.get_all("Via") == ["SIP/2.0/WSS b", "SIP/2.0/WSS c"]
    h.remove_first("Via")  # removes b out of the comma-joined pair
    assert h.get_all("Via") == ["SIP/2.0/WSS c"]
    h.set("Via", "SIP/2.0/WSS only")
    assert h.get_all("Via") == ["SIP/2.0/WSS only"]
    h.set("Max-Forwards", "70")
    assert h.to_dict() == {"Via": "SIP/2.0/WSS only", "From": "<sip:a@b>", "Max-Forwards": "70"}
    h.add("Max-Forwards", "69")
    assert h.to_dict()["Max-Forwards"] == ["70", "69"]
    h.remove("max-forwards")
    assert "Max-Forwards" not in h and len(h) == 2
    c = h.copy()
    c.add("X", "1")
    assert c != h and len(h) == 2 and h == h.copy()


def test_no_split_headers_keep_commas() -> None:
    h = Headers([("WWW-Authenticate", 'Digest realm="a", nonce="b"'), ("Date", "Sat, 13 Nov")])
    assert h.get_all("WWW-Authenticate") == ['Digest realm="a", nonce="b"']
    assert h.get_all("Date") == ["Sat, 13 Nov"]


def test_repr_redacts_credentials() -> None:
    h = Headers([("Authorization", 'Digest response="abc123"'), ("Proxy-Authorization", "x9")])
    assert "abc123" not in repr(h) and "x9" not in repr(h)
    assert repr(h).count("[secure]") == 2


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ("a, b,c", ["a", "b", "c"]),
        ('"Doe, J" <sip:a@b>, <sip:c@d;x=1>', ['"Doe, J" <sip:a@b>', "<sip:c@d;x=1>"]),
        ('"q\\", x" <sip:a@b>', ['"q\\", x" <sip:a@b>']),
        ("<sip:a,b@c>, d", ["<sip:a,b@c>", "d"]),
        (",, a ,,", ["a"]),
        ("", []),
        ('"unterminated, <sip:a@b>', ['"unterminated, <sip:a@b>']),
    ],
)
def test_split_header_values(value: str, parts: list[str]) -> None:
    assert split_header_values(value) == parts


def test_parse_params() -> None:
    assert parse_params(";tag=abc;lr; q = 0.5 ;x=\"a \\\" b\"") == {
        "tag": "abc",
        "lr": None,
        "q": "0.5",
        "x": 'a " b',
    }
    assert parse_params("received=2001:db8::1;rport") == {"received": "2001:db8::1", "rport": None}
    assert parse_params("") == {} and parse_params("  ") == {}
    assert parse_params(";Expires=60") == {"expires": "60"}


@pytest.mark.parametrize(
    "text", [";;", ";a=", ";a=b c", ";a=<x>", ';a="open', "; =1", ";a;", ";a b"]
)
def test_parse_params_invalid(text: str) -> None:
    with pytest.raises(InvalidMessage):
        parse_params(text)


def test_name_addr_forms() -> None:
    quoted = parse_name_addr('"Alice \\"A\\" Example" <sip:alice@example.com;transport=ws>;tag=1')
    assert quoted.display_name == 'Alice "A" Example'
    assert quoted.sip_uri.params == {"transport": "ws"} and quoted.tag == "1"
    token = parse_name_addr("Bob Smith <sip:bob@[::1]:5062>")
    assert token.display_name == "Bob Smith" and token.sip_uri.port == 5062
    bare = parse_name_addr("sip:carol@example.com;tag=77")
    assert bare.display_name is None and bare.tag == "77" and bare.sip_uri.params == {}
    no_space = parse_name_addr('"caller"<sip:caller@example.com>')
    assert no_space.display_name == "caller"
    utf8 = parse_name_addr('"Zoë Ünïcode" <sip:z@example.com>')
    assert utf8.display_name == "Zoë Ünïcode"
    tel = parse_name_addr("<tel:+12015550123>")
    assert isinstance(tel.uri, AbsoluteURI)
    with pytest.raises(InvalidMessage):
        _ = tel.sip_uri
    instance = parse_name_addr('<sip:a@b;ob>;+sip.instance="<urn:uuid:1-2>";reg-id=1')
    assert instance.params == {"+sip.instance": "<urn:uuid:1-2>", "reg-id": "1"}
    assert parse_name_addr(str(instance)) == instance


@pytest.mark.parametrize(
    "text",
    [
        "",
        "*",
        '"unterminated <sip:a@b>',
        "Bell, Alexander <sip:a@b>",
        "<sip:a@b",
        "< sip:a@b >",
        "<sip:a@b>>",
        "sip:a@b?x=y",
        "<sip:a@b> junk",
        "<>",
        '"a" sip:a@b',
    ],
)
def test_name_addr_invalid(text: str) -> None:
    with pytest.raises(InvalidMessage):
        parse_name_addr(text)


def test_name_addr_str_and_copy() -> None:
    na = NameAddr(SipURI(user="a", host="b"), 'Quote " and \\', {"tag": "x", "p": "has space"})
    text = str(na)
    assert text == '"Quote \\" and \\\\" <sip:a@b>;tag=x;p="has space"'
    assert parse_name_addr(text) == na
    other = na.copy()
    other.params["tag"] = "y"
    other.sip_uri.params["lr"] = None
    assert na.tag == "x" and na.sip_uri.params == {}


def test_via() -> None:
    via = parse_via("SIP/2.0/WSS k1x9.invalid;branch=z9hG4bK1;rport;received=127.0.0.1")
    assert via == Via("WSS", "k1x9.invalid", None, {"branch": "z9hG4bK1", "rport": None,
                                                    "received": "127.0.0.1"})
    assert via.branch == "z9hG4bK1"
    assert parse_via(str(via)) == via
    folded = parse_via("SIP  /  2.0 / udp   [2001:db8::1] : 5060 ; branch = z9hG4bK2")
    assert (folded.transport, folded.host, folded.port) == ("UDP", "[2001:db8::1]", 5060)
    assert folded.branch == "z9hG4bK2"
    assert via.copy() == via and via.copy().params is not via.params


@pytest.mark.parametrize(
    "text",
    [
        "SIP/2.0/UDP",
        "SIP/3.0/UDP host",
        "SIP/2.0/UDP host:70000",
        "SIP/2.0/UDP host;;",
        "SIP/2.0/UDP host junk",
        "HTTP/1.1/TCP host",
        "",
    ],
)
def test_via_invalid(text: str) -> None:
    with pytest.raises(InvalidMessage):
        parse_via(text)


def test_cseq() -> None:
    assert parse_cseq("0009 INVITE") == CSeq(9, "INVITE")
    assert str(CSeq(2, "REGISTER")) == "2 REGISTER"
    for bad in ("INVITE", "1", "x INVITE", "12345678901 INVITE", "1 IN VITE", "-1 BYE"):
        with pytest.raises(InvalidMessage):
            parse_cseq(bad)


@pytest.mark.parametrize(
    ("text", "params"),
    [
        ("SIP/2.0/WSS h.invalid;branch=z9hG4bK1", {"branch": "z9hG4bK1"}),
        ("SIP/2.0/WSS h;branch=z9hG4bK1;rport;received=1.2.3.4", None),
        ("SIP/2.0/UDP h:5060;rport;branch=z9hG4bKx", None),
        ("SIP/2.0/UDP h;BRANCH=X", {"branch": "X"}),
        ("SIP/2.0/UDP h;branch=a;branch=b", {"branch": "b"}),
        ("SIP/2.0/UDP h;branch", {"branch": None}),
        ("SIP/2.0/UDP h;branch=z9hG4bK:1", {"branch": "z9hG4bK:1"}),
        ("SIP/2.0/UDP h", {}),
    ],
)
def test_via_parameters_match_the_general_grammar(
    text: str, params: dict[str, str | None] | None
) -> None:
    # A Via's parameters are what the generic parameter grammar gives, in the same order.
    via = parse_via(text)
    rest = text[text.index(" ") + 1 :]
    expected = parse_params(rest[rest.index(";") :]) if ";" in rest else {}
    assert via.params == expected
    assert list(via.params) == list(expected)
    if params is not None:
        assert via.params == params


@pytest.mark.parametrize(
    "text",
    [
        "<sip:a@b>;tag=x",
        "<sip:a@b>;tag=x;foo",
        "<sip:a@b>;foo;tag=x",
        '<sip:a@b>;tag="q"',
        "<sip:a@b> ;tag=x",
        "<sip:a@b>;tag=x;tag=y",
        "<sip:a@b>;TAG=x",
        '"A" <sip:a@b;lr>;tag=1.2:3',
        "Alice <sip:a@b>",
    ],
)
def test_name_addr_parameters_match_the_general_grammar(text: str) -> None:
    # As for a Via (see test_via_parameters_...): the generic parameter grammar, in order.
    na = parse_name_addr(text)
    expected = parse_params(text[text.index(">") + 1 :])
    assert na.params == expected
    assert list(na.params) == list(expected)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [";", "=", '"', "a", "X-y", "1", "+sip.instance", "<urn:uuid:1>", ":", "[", "]",
             ".", "\\", "é", "\x01", "\x7f", "?", "@", "/", "tag", "lr", "transport=ws"]
        ),
        max_size=14,
    )
)
def test_leading_whitespace_does_not_change_a_parameter_list(parts: list[str]) -> None:
    """Whitespace before the first ";" is allowed: the same parameters, or both rejected."""
    text = ";" + "".join(parts)

    def outcome(value: str) -> object:
        try:
            return list(parse_params(value).items())
        except InvalidMessage:
            return "invalid"

    assert outcome(text) == outcome(" " + text)


def test_kamailio_contact_with_a_quoted_received_parameter() -> None:
    value = (
        '<sip:d8r2ofu3@k1x9qmw3ez5c.invalid;transport=ws>;expires=600;'
        'received="sip:127.0.0.1:49822;transport=ws";'
        '+sip.instance="<urn:uuid:5d3a7c1e-7f41-4a4e-9a2b-2f0a3c6d8e11>";reg-id=1'
    )
    assert split_header_values(value) == [value]
    contact = parse_name_addr(value)
    assert contact.params == {
        "expires": "600",
        "received": "sip:127.0.0.1:49822;transport=ws",
        "+sip.instance": "<urn:uuid:5d3a7c1e-7f41-4a4e-9a2b-2f0a3c6d8e11>",
        "reg-id": "1",
    }
