"""Property-based tests of exotel_voice.sip.message.parse_message (Hypothesis).

* Round trip: for generated requests and responses, ``parse(serialize(m)) == m`` and the
  structured views (Via, From, To, Contact, CSeq, Request-URI) come back equal.
* Fuzzing: arbitrary bytes, and mutated or byte-sliced valid messages, give a message or
  :class:`InvalidMessage`, never anything else (the parser contract, test_message.py tests
  the RFC 4475 vectors against the same contract).
"""

from __future__ import annotations

import string
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from exotel_voice.exceptions import InvalidMessage
from exotel_voice.sip.headers import CSeq, Headers, NameAddr, Via
from exotel_voice.sip.message import Request, Response, parse_message
from exotel_voice.sip.uri import SipURI


DATA = Path(__file__).parent / "data"
SAMPLES = [p.read_bytes() for p in sorted(DATA.glob("*/*.sip"))]

INTERESTING = [b"\r\n", b":", b";", b",", b"<", b">", b'"', b"\\", b" ", b"%", b"\r", b"\n\n"]
INTERESTING += [b"@", b"\x00", b"\xff", b"\r\n ", b"[", b"]", b"=", b"?", b"SIP/2.0"]

TOKEN_CHARS = string.ascii_letters + string.digits + "-.!%*_+`'~"
PARAM_CHARS = string.ascii_letters + string.digits + "-_.!~*'()[]/:&+$"

tokens = st.text(TOKEN_CHARS, min_size=1, max_size=12)
lower_tokens = tokens.map(str.lower)
# Text without CR/LF; other controls and non-ASCII included (they travel as quoted-pairs/UTF-8).
free_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20
)
hostnames = st.from_regex(
    r"[a-z0-9]([a-z0-9\-]{0,10}[a-z0-9])?(\.[a-z0-9]{1,8}){0,3}", fullmatch=True
)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8).map(
    lambda groups: "[" + ":".join(f"{g:x}" for g in groups) + "]"
)
hosts = st.one_of(hostnames, ipv4, ipv6, st.just("[::1]"), st.just("[2001:db8::9:1]"))
ports = st.one_of(st.none(), st.integers(1, 65535))
uri_params = st.dictionaries(
    st.text(PARAM_CHARS, min_size=1, max_size=8).map(str.lower),
    st.one_of(st.none(), st.text(PARAM_CHARS, min_size=1, max_size=10)),
    max_size=3,
)
header_params = st.dictionaries(
    lower_tokens, st.one_of(st.none(), tokens, free_text, ipv4, st.just("")), max_size=3
)
users = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)


@st.composite
def sip_uris(draw: st.DrawFn) -> SipURI:
    user = draw(st.one_of(st.none(), users))
    return SipURI(
        scheme=draw(st.sampled_from(["sip", "sips"])),
        user=user,
        host=draw(hosts),
        port=draw(ports),
        params=draw(uri_params),
        headers={},
        password=draw(st.one_of(st.none(), st.text(string.ascii_letters + "&=+$,", max_size=8)))
        if user is not None
        else None,
    )


@st.composite
def name_addrs(draw: st.DrawFn) -> NameAddr:
    return NameAddr(draw(sip_uris()), draw(st.one_of(st.none(), free_text)), draw(header_params))


@st.composite
def vias(draw: st.DrawFn) -> Via:
    params = draw(header_params)
    params["branch"] = "z9hG4bK" + draw(st.text(TOKEN_CHARS, max_size=10))
    return Via(draw(tokens).upper(), draw(hosts), draw(ports), params)


@st.composite
def messages(draw: st.DrawFn) -> tuple[Request | Response, dict[str, object]]:
    via_list = draw(st.lists(vias(), min_size=1, max_size=3))
    from_ = draw(name_addrs())
    to = draw(name_addrs())
    contacts = draw(st.lists(name_addrs(), max_size=2))
    method = draw(st.sampled_from(["INVITE", "REGISTER", "BYE", "OPTIONS"]) | tokens)
    cseq = CSeq(draw(st.integers(0, 2**31 - 1)), method)
    items: list[tuple[str, str]] = []
    # Vias either one per line or comma-joined, in order.
    if draw(st.booleans()):
        items += [("Via", str(v)) for v in via_list]
    else:
        items.append(("Via", ", ".join(str(v) for v in via_list)))
    items += [
        ("From", str(from_)),
        ("To", str(to)),
        ("Call-ID", draw(st.text(TOKEN_CHARS + "@", min_size=1, max_size=20))),
        ("CSeq", str(cseq)),
    ]
    extra = draw(
        st.lists(
            st.tuples(tokens.map(lambda t: "X-" + t), free_text.map(lambda v: v.strip(" \t"))),
            max_size=4,
        )
    )
    items += extra
    items += [("Contact", str(c)) for c in contacts]
    body = draw(st.binary(max_size=64))
    items.append(("Content-Length", str(len(body))))
    if draw(st.booleans()):  # header order is free, but the Vias must stay in order
        items = items[len(items) // 2 :] + items[: len(items) // 2]
    headers = Headers(items)
    message: Request | Response
    if draw(st.booleans()):
        message = Request(method, draw(sip_uris()), headers, body)
    else:
        status = draw(st.integers(100, 699))
        reason = draw(st.text(string.ascii_letters + " ", max_size=15)).strip()
        message = Response(status, reason or None, headers, body)
    expected = {"vias": via_list, "from_": from_, "to": to, "contacts": contacts, "cseq": cseq}
    return message, expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_round_trip(case: tuple[Request | Response, dict[str, object]]) -> None:
    message, expected = case
    wire = message.serialize()
    parsed = parse_message(wire)
    assert parsed == message
    assert parsed.vias == expected["vias"]
    assert parsed.from_ == expected["from_"]
    assert parsed.to == expected["to"]
    assert parsed.contacts == expected["contacts"]
    if isinstance(message, Request):
        assert parsed.cseq == expected["cseq"]
        assert isinstance(parsed, Request) and parsed.uri == message.uri
    assert bytes(parsed) == wire


def check_contract(data: bytes) -> None:
    try:
        message = parse_message(data)
    except InvalidMessage as exc:
        assert 400 <= exc.status_hint <= 599
    else:
        assert isinstance(message, (Request, Response))
        repr(message)
        message.serialize()


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes(data: bytes) -> None:
    check_contract(data)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text(text: str) -> None:
    try:
        parse_message(text)
    except InvalidMessage:
        pass


def edit_lists(max_size: int) -> st.SearchStrategy[list[tuple[str, float, bytes]]]:
    """Edits for :func:`mutate`: up to ``max_size`` inserts, deletes and replacements."""
    return st.lists(
        st.tuples(
            st.sampled_from(["insert", "delete", "replace"]),
            st.floats(0, 1),
            st.binary(min_size=1, max_size=4) | st.sampled_from(INTERESTING),
        ),
        min_size=1,
        max_size=max_size,
    )


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(SAMPLES), edit_lists(6))
def test_mutated_valid_messages(sample: bytes, edits: list[tuple[str, float, bytes]]) -> None:
    check_contract(mutate(sample, edits))


def mutate(sample: bytes, edits: list[tuple[str, float, bytes]]) -> bytes:
    """Apply ``(insert|delete|replace, where in 0..1, chunk)`` edits to a message."""
    data = bytearray(sample)
    for op, where, chunk in edits:
        i = int(where * len(data))
        if op == "insert":
            data[i:i] = chunk
        elif op == "delete":
            del data[i : i + len(chunk)]
        else:
            data[i : i + len(chunk)] = chunk
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SAMPLES), st.floats(0, 1), st.floats(0, 1))
def test_byte_sliced_valid_messages(sample: bytes, a: float, b: float) -> None:
    start, end = sorted((int(a * len(sample)), int(b * len(sample))))
    check_contract(sample[start:end])
    check_contract(sample[:start] + sample[end:])
