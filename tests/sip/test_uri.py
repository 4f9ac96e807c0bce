"""Tests for exotel_voice.sip.uri (RFC 3261 §19.1 SIP/SIPS URIs).

URIs inside whole messages (RFC 4475) are covered by test_message.py.
"""

from __future__ import annotations

import pytest

from exotel_voice.exceptions import InvalidMessage
from exotel_voice.sip.uri import AbsoluteURI, SipURI, excerpt, parse_uri


def sip(text: str) -> SipURI:
    uri = parse_uri(text)
    assert isinstance(uri, SipURI)
    return uri


def test_simple() -> None:
    uri = sip("sip:alice@example.com")
    assert (uri.scheme, uri.user, uri.host, uri.port, uri.params) == (
        "sip",
        "alice",
        "example.com",
        None,
        {},
    )
    assert uri.aor == "sip:alice@example.com"
    assert str(uri) == "sip:alice@example.com"


def test_everything() -> None:
    uri = sip("SIPS:a%20b:pw@[2001:db8::1]:5061;Transport=WS;lr;maddr=[::1]?Subject=hi%20there&x=")
    assert uri.scheme == "sips" and uri.user == "a b" and uri.password == "pw"
    assert uri.host == "[2001:db8::1]" and uri.port == 5061
    assert uri.params == {"transport": "WS", "lr": None, "maddr": "[::1]"}
    assert uri.transport == "ws"
    assert uri.headers == {"Subject": "hi there", "x": ""}
    assert parse_uri(str(uri)) == uri


@pytest.mark.parametrize(
    "text",
    [
        "sip:[::1]",
        "sip:127.0.0.1:5060",
        "sip:host.invalid;transport=ws",
        "sip:+1-212-555@gw.example.com;user=phone",
        "sip:user;par=u%40example.net@example.com",
        "sip:%61lice@example.com;%6C%72",
    ],
)
def test_round_trip(text: str) -> None:
    uri = sip(text)
    assert parse_uri(str(uri)) == uri


def test_escapes_are_decoded() -> None:
    uri = sip("sip:%61lice@example.com;%6C%72;n%61me=v%61lue%25%34%31")
    assert uri.user == "alice"
    assert uri.params == {"lr": None, "name": "value%41"}
    assert "name=value%2541" in str(uri)


def test_other_schemes_are_kept_verbatim() -> None:
    for text in ("tel:+1-201-555-0123", "urn:uuid:f81d4fae-7dec", "soap.beep://192.0.2.1:3002"):
        uri = parse_uri(text)
        assert isinstance(uri, AbsoluteURI) and str(uri) == text
    assert parse_uri("TEL:+1").scheme == "tel"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip:",
        "nocolon",
        ":x",
        "sip:user@",
        "sip:@example.com",
        "sip:a b@example.com",
        "sip:host:99999",
        "sip:host:port",
        "sip:host;",
        "sip:host;;lr",
        "sip:host;a=",
        "sip:%zzhost@example.com",
        "sip:us%2@example.com",
        "sip:host?",
        "sip:host?a",
        "sip:[::1",
        "sip:<host>",
        'sip:"host"',
        "tel:+1 2",
        "tel:",
    ],
)
def test_invalid(text: str) -> None:
    with pytest.raises(InvalidMessage):
        parse_uri(text)


def test_repr_masks_password() -> None:
    uri = sip("sip:alice:s3cret@example.com")
    assert "s3cret" not in repr(uri)
    assert "[secure]" in repr(uri)
    assert "s3cret" in str(uri)  # the wire form keeps it


def test_copy() -> None:
    uri = sip("sip:alice@example.com;transport=ws")
    same = uri.copy()
    assert same == uri and same is not uri and same.params is not uri.params
    other = uri.copy(host="example.org", port=5080)
    assert str(other) == "sip:alice@example.org:5080;transport=ws"
    assert uri.host == "example.com"


SENTINEL = "S3ntinelPw9"


@pytest.mark.parametrize(
    "text",
    [
        f"sip:alice:{SENTINEL}@",
        f"sip:alice:{SENTINEL}@host;;",
        f"sips:alice:{SENTINEL}@host?bad",
        f"sip:al ice:{SENTINEL}@host",
        f"SIP:alice:{SENTINEL}@[::1",
        f"alice:{SENTINEL}@ho st",
        f"sip:alice:{SENTINEL}@h@st:99999x",
        f"sip:alice:{'p' * 100}{SENTINEL}@host;;",
    ],
)
def test_invalid_uri_errors_mask_the_password(text: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        parse_uri(text)
    assert SENTINEL[:6] not in str(info.value)
    assert "[secure]" in str(info.value) or "alice" not in str(info.value)


def test_excerpt_keeps_what_is_not_secret() -> None:
    assert excerpt("sip:alice@host;;") == "'sip:alice@host;;'"
    assert excerpt("sip:alice:pw@host") == "'sip:alice:[secure]@host'"
    assert excerpt("<sip:a:pw@h>, <sip:b@h>") == "'<sip:a:[secure]@h>, <sip:b@h>'"
    assert excerpt("x" * 100, 10) == repr("x" * 10)
