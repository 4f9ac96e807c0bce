"""The C SDP parser (exotel_voice.sip._csdp) against the pure-Python reference.

``_csdp.parse(text)`` must return what ``parse_sdp`` returns (same classes, same instance
``__dict__`` keys in the same order, same values and value types) or ``None``, and ``None``
whenever the reference raises. Inside its subset (ASCII, no control characters but the
line ends) it must not decline valid SDP either. The inputs: real SDPs (Chrome, rtpengine,
aiortc, SIP.js captures), generated SDPs with every line type, and mutations of both.

The module is skipped only when ``EXOTEL_VOICE_NO_SPEEDUPS`` is set and the extension is
missing; otherwise a missing extension fails here (``make test`` builds it).
``EXOTEL_VOICE_SDP_EXAMPLES`` raises the Hypothesis example counts (e.g. for a sanitizer
run).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from exotel_voice.exceptions import InvalidSDP
from exotel_voice.sip import _speedups, sdp as sdp_module
from exotel_voice.sip.sdp import (
    Attribute,
    Bandwidth,
    Connection,
    MediaDescription,
    Origin,
    SessionDescription,
    Timing,
    parse_sdp,
)

from .test_sdp import (
    CHROME_OFFER,
    HOLD_OFFER,
    RTPENGINE_AVP_OFFER,
    RTPENGINE_WEBRTC_ANSWER,
)


NO_SPEEDUPS = _speedups.DISABLED
if NO_SPEEDUPS:
    _csdp: Any = pytest.importorskip("exotel_voice.sip._csdp")
    # sdp.py did not hand the classes over; do it here so the C parser is still tested.
    _csdp.setup(
        SessionDescription, MediaDescription, Attribute, Origin, Connection, Bandwidth, Timing
    )
else:
    from exotel_voice.sip import _csdp


DATA = pathlib.Path(__file__).parent / "data"
EXAMPLES = int(os.environ.get("EXOTEL_VOICE_SDP_EXAMPLES", "300"))
_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

_CLASSES = (SessionDescription, MediaDescription, Attribute, Origin, Connection, Bandwidth, Timing)


# -- the reference and the comparison ---------------------------------------------------------


def reference(text: str | bytes) -> SessionDescription:
    """The pure-Python parser, whatever ``sdp._fast_parse`` is."""
    return sdp_module._parse_sdp_python(text)


def assert_same(fast: object, ref: object, path: str = "sdp") -> None:
    """``fast`` and ``ref`` are equal, with the same types and ``__dict__`` keys down."""
    assert type(fast) is type(ref), f"{path}: {type(fast)} is not {type(ref)}"
    if isinstance(ref, list):
        assert isinstance(fast, list)
        assert len(fast) == len(ref), f"{path}: {len(fast)} items, not {len(ref)}"
        for i, (f, r) in enumerate(zip(fast, ref, strict=True)):
            assert_same(f, r, f"{path}[{i}]")
    elif dataclasses.is_dataclass(ref):
        fast_vars, ref_vars = vars(fast), vars(ref)
        assert list(fast_vars) == list(ref_vars), f"{path}: {list(fast_vars)}"
        if not isinstance(ref, Attribute):  # parse_sdp makes those with object.__new__
            assert list(fast_vars) == [f.name for f in dataclasses.fields(ref)], path
        for name in ref_vars:
            assert_same(fast_vars[name], ref_vars[name], f"{path}.{name}")
    else:
        assert isinstance(ref, (str, int, type(None))), f"{path}: unexpected {type(ref)}"
        assert fast == ref, f"{path}: {fast!r} != {ref!r}"


def in_subset(text: str | bytes) -> bool:
    """Whether ``text`` is in the C parser's subset of characters."""
    if isinstance(text, bytes):
        if not text.isascii():
            return False
        text = text.decode("ascii")
    if not text.isascii():
        return False
    for i, ch in enumerate(text):
        if ch == "\n" or " " <= ch < "\x7f":
            continue
        if ch == "\r" and text[i + 1:i + 2] == "\n":
            continue
        return False
    return True


def check(text: str | bytes) -> SessionDescription | None:
    """The differential property for one input; returns the C result."""
    fast = _csdp.parse(text)
    try:
        ref = reference(text)
    except InvalidSDP:
        assert fast is None, f"C parsed what Python rejects: {text!r}"
        return None
    if fast is None:
        # Inside the subset, valid SDP is never declined.
        assert not in_subset(text), f"C declined valid SDP in its subset: {text!r}"
        return None
    assert fast == ref
    assert_same(fast, ref)
    return fast


# -- real SDPs: the fast path is taken ---------------------------------------------------------

# aiortc 1.x createOffer() (one audio track), captured; candidates in documentation ranges.
AIORTC_OFFER = (
    "v=0\r\n"
    "o=- 4004715786 4004715786 IN IP4 0.0.0.0\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=group:BUNDLE 0\r\n"
    "a=msid-semantic:WMS *\r\n"
    "m=audio 48319 UDP/TLS/RTP/SAVPF 96 9 0 8\r\n"
    "c=IN IP4 192.0.2.2\r\n"
    "a=sendrecv\r\n"
    "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
    "a=extmap:2 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
    "a=mid:0\r\n"
    "a=msid:b5d19c0e-a554-4b50-aea7-0d44b47104cd 18d46209-2c27-4457-bfe9-46980a89fac9\r\n"
    "a=rtcp:9 IN IP4 0.0.0.0\r\n"
    "a=rtcp-mux\r\n"
    "a=ssrc:1837817817 cname:1d6c1edb-d5d4-4504-9910-24fcce41f09a\r\n"
    "a=rtpmap:96 opus/48000/2\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=candidate:f957a2332b1715da3b0ef8ba684454eb 1 udp 2130706431 192.0.2.2 48319 typ host\r\n"
    "a=candidate:d0bcf3d9c29a2bc887618212a1623bfa 1 udp 2130706431 2001:db8::2 38443 typ host"
    "\r\n"
    "a=end-of-candidates\r\n"
    "a=ice-ufrag:mUKb\r\n"
    "a=ice-pwd:I7MafVOz3TWNED8iHPVOqp\r\n"
    "a=fingerprint:sha-256 43:FF:A3:A0:AD:D3:E5:05:9E:A7:CF:19:A8:38:F4:13:C2:6D:05:BF:D9:4C:"
    "96:38:3A:F2:68:62:B2:43:CB:B1\r\n"
    "a=setup:actpass\r\n"
)

# Every line type of RFC 8866 §5, two timings with a repeat, two media sections, LF ends.
ALL_LINE_TYPES = (
    "v=0\no=jdoe 3724394400 3724394405 IN IP4 198.51.100.1\ns=Call to John Smith\n"
    "i=SDP Offer #1\nu=http://www.jdoe.example.com/home.html\n"
    "e=Jane Doe <jane@jdoe.example.com>\ne=j@example.com\np=+1 617 555-6011\n"
    "c=IN IP4 198.51.100.1\nb=AS:  128 \nb=CT:64\nt=2873397496 2873404696\nr=7d 1h 0 25h\n"
    "r=1d 1h 0\nt=0 0\nz=2882844526 -1h 2898848070 0\nk=prompt\na=recvonly\n"
    "a=tool:x:y:z\n\n"
    "m=audio 49170/2 RTP/AVP 0\ni=media title\nc=IN IP6 ff15::101/3\nb=TIAS:64000\n"
    "k=clear:secretkey\na=key-mgmt:mikey AQAFgM0XflABAAAAAAAAAAAAAAsAyONQ6gAAAAAJAAQBAAA\n"
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\na=sctp-port:5000\na=max-message-size:\n"
)

# Spaces runs, leading zeros, a 23-digit session version, a minimal media line.
ODD_BUT_VALID = (
    "v= 0 \r\n"
    "o=  alice   007   18446744073709551616999  IN  IP4   192.0.2.1  \r\n"
    "s=\r\n"
    "t= 00 0000000000000000000000000001 \r\n"
    "a=x-flag\r\n"
    "a=x-empty:\r\n"
    "m= audio   00009/0002   RTP/AVP  \r\n"
    "b=X-YZ:0000000000000000000000000000042\r\n"
    "a=candidate:1 1 UDP 2130706431 192.0.2.1 9 typ host\r\n"
)


def _wss_bodies() -> list[tuple[str, bytes]]:
    out = []
    for path in sorted((DATA / "wss").glob("*.sip")):
        body = path.read_bytes().split(b"\r\n\r\n", 1)[1]
        if body.startswith(b"v="):
            out.append((path.name, body))
    return out


WSS_BODIES = _wss_bodies()

REAL_SDPS = {
    "chrome-offer": CHROME_OFFER,
    "rtpengine-webrtc-answer": RTPENGINE_WEBRTC_ANSWER,
    "rtpengine-avp-offer": RTPENGINE_AVP_OFFER,
    "hold-offer": HOLD_OFFER,
    "aiortc-offer": AIORTC_OFFER,
    "all-line-types": ALL_LINE_TYPES,
    "odd-but-valid": ODD_BUT_VALID,
    "chrome-offer-lf": CHROME_OFFER.replace("\r\n", "\n"),
    "chrome-offer-no-final-crlf": CHROME_OFFER[:-2],
    "chrome-offer-blank-lines": CHROME_OFFER.replace("a=mid:0\r\n", "\r\n\na=mid:0\r\n\r\n"),
    **{name: body.decode("ascii") for name, body in WSS_BODIES},
}


def test_wss_captures_have_sdp_bodies() -> None:
    assert len(WSS_BODIES) >= 3


@pytest.mark.parametrize("name", sorted(REAL_SDPS))
def test_fast_path_taken_for_real_sdps(name: str) -> None:
    text = REAL_SDPS[name]
    for value in (text, text.encode("ascii")):
        fast = _csdp.parse(value)
        assert fast is not None, name
        assert_same(fast, reference(value))


def test_candidates_are_kept_and_parse() -> None:
    fast = _csdp.parse(WSS_BODIES[0][1])
    assert fast is not None
    candidates = fast.media[0].candidates
    assert [c.type for c in candidates] == ["host", "srflx", "host", "relay"]
    assert candidates[1].raddr == "192.0.2.10" and candidates[1].rport == 54321
    aiortc = _csdp.parse(AIORTC_OFFER)
    assert aiortc is not None and [c.ip for c in aiortc.media[0].candidates] == [
        "192.0.2.2",
        "2001:db8::2",
    ]


def test_values_and_defaults() -> None:
    fast = _csdp.parse(ODD_BUT_VALID)
    assert fast is not None
    assert fast.origin == Origin("alice", "007", 18446744073709551616999, "IN", "IP4", "192.0.2.1")
    assert type(fast.origin.session_id) is str
    assert fast.timing == [Timing(0, 1, [])]
    media = fast.media[0]
    assert (media.port, media.port_count, media.formats) == (9, 2, [])
    assert media.bandwidths == [Bandwidth("X-YZ", 42)]
    assert media.connection is None and media.information is None
    assert media.encryption_key is None
    assert fast.information is None and fast.uri is None and fast.time_zones is None
    assert fast.encryption_key is None and fast.connection is None
    assert fast.attributes == [Attribute("x-flag"), Attribute("x-empty", "")]
    assert fast.attributes[0].value is None and fast.attributes[1].value == ""
    full = _csdp.parse(ALL_LINE_TYPES)
    assert full is not None
    assert full.timing[0].repeats == ["7d 1h 0 25h", "1d 1h 0"]
    assert full.bandwidths == [Bandwidth("AS", 128), Bandwidth("CT", 64)]
    assert full.attributes[1] == Attribute("tool", "x:y:z")
    assert full.media[1].attributes[-1] == Attribute("max-message-size", "")
    # new lists each time: nothing is shared between two parses
    again = _csdp.parse(ODD_BUT_VALID)
    assert again is not None and again == fast
    assert again.media[0].bandwidths is not fast.media[0].bandwidths
    assert again.emails is not fast.emails and again.timing[0].repeats is not fast.timing[0].repeats


def test_parse_sdp_uses_the_c_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    if NO_SPEEDUPS:
        assert sdp_module._fast_parse is None
        pytest.skip("EXOTEL_VOICE_NO_SPEEDUPS is set: parse_sdp is pure Python")
    assert sdp_module._fast_parse is _csdp.parse
    ref = reference(CHROME_OFFER)

    def no_python(text: str | bytes) -> SessionDescription:
        raise AssertionError("the Python parser was called")

    monkeypatch.setattr(sdp_module, "_parse_sdp_python", no_python)
    assert_same(parse_sdp(CHROME_OFFER), ref)
    assert_same(parse_sdp(CHROME_OFFER.encode()), ref)
    with pytest.raises(AssertionError):
        parse_sdp(CHROME_OFFER.replace("s=-", "s=\u00e9"))  # outside the subset: Python


def test_parse_sdp_falls_back_to_python() -> None:
    for text, ok in (
        (CHROME_OFFER.replace("s=-", "s=caf\u00e9"), True),
        (CHROME_OFFER.replace("a=mid:0", "a=mid:0\tx"), True),
        (CHROME_OFFER.replace("s=-\r\n", "s=-\r"), True),
        (CHROME_OFFER.encode() + b"a=x:\xc3\xa9\r\n", True),
        (bytearray(CHROME_OFFER.encode()), True),
        (memoryview(CHROME_OFFER.encode()), True),
        (CHROME_OFFER.replace("m=audio 9", "m=audio 70000"), False),
        (b"\xff\xfe", False),
        ("", False),
    ):
        assert _csdp.parse(text) is None
        if ok:
            assert_same(parse_sdp(text), reference(text))
        else:
            with pytest.raises(InvalidSDP):
                parse_sdp(text)


def test_declines_what_it_does_not_handle() -> None:
    class Str(str):
        pass

    class Bytes(bytes):
        pass

    for value in (None, 0, [CHROME_OFFER], Str(CHROME_OFFER), Bytes(CHROME_OFFER.encode())):
        assert _csdp.parse(value) is None
    # int() past sys.get_int_max_str_digits(): left to Python.
    huge = CHROME_OFFER.replace("o=- 7567879320438927790 2 ", "o=- 1 " + "9" * 5000 + " ")
    assert _csdp.parse(huge) is None


@pytest.mark.parametrize(
    "text",
    [
        CHROME_OFFER,
        ALL_LINE_TYPES,
        ODD_BUT_VALID,
        ALL_LINE_TYPES + "m=a 1 p\nc=a b c\nc=a b c\n",  # invalid at the very end
    ],
)
def test_allocation_failures(text: str) -> None:
    """Every allocation of a parse failing in turn: MemoryError or the right answer."""
    testcapi = pytest.importorskip("_testcapi")
    try:
        expected: SessionDescription | None = reference(text)
    except InvalidSDP:
        expected = None
    failures = 0
    for start in range(1000):
        for stop in (start + 1, 0):  # that allocation only, or it and all later ones
            testcapi.set_nomemory(start, stop)
            try:
                result = _csdp.parse(text)
            except MemoryError:
                result = MemoryError
            testcapi.remove_mem_hooks()  # before anything else allocates
            if result is MemoryError:
                failures += 1
            elif expected is None:
                assert result is None
            else:
                assert result is not None
                assert_same(result, expected)
    assert failures > 0
    assert result is not MemoryError  # 1000 allocations were enough: every one was tried


def test_setup_checks_the_classes() -> None:
    with pytest.raises(TypeError):
        _csdp.setup(*_CLASSES[:-1])
    with pytest.raises(TypeError):
        _csdp.setup(*_CLASSES[:-1], object())

    @dataclasses.dataclass
    class OtherTiming:
        start: int = 0
        stop: int = 0

    with pytest.raises(TypeError, match="Timing"):
        _csdp.setup(*_CLASSES[:-1], OtherTiming)
    assert _csdp.parse(CHROME_OFFER) is not None  # a refused setup changes nothing
    _csdp.setup(*_CLASSES)
    assert _csdp.parse(CHROME_OFFER) is not None


def test_without_setup_parse_declines() -> None:
    code = (
        "from exotel_voice.sip import sdp, _csdp\n"
        "assert sdp._fast_parse is None\n"
        f"assert _csdp.parse({CHROME_OFFER!r}) is None\n"
        f"assert sdp.parse_sdp({CHROME_OFFER!r}).media[0].mid == '0'\n"
    )
    env = {**os.environ, "EXOTEL_VOICE_NO_SPEEDUPS": "1"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


@pytest.mark.parametrize(
    "text",
    [
        "v=0",
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-",
        "v=0\r\ns=-\r\no=- 1 1 IN IP4 h\r\nt=0 0\r\nr=x\r\nm=a 1 p\r\na=b:c",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nm=a 65535 p\nm=b 0/0 q f\nc=a b c\nm=c 1 p",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nv=0",
        "v=0\no=- 1 1 IN IP4 h\ns=-\n\nv=0",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nm=a 65536 p",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nm=a 0000000000000000000000065535 p",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nm=a 0000000000000000000000065536 p",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nm=a 1/ p",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nm=a 1/2/3 p",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nm=a /2 p",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nr=1",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nb=:1",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nb=A:",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nb=A: ",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nb=A:1 2",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nb=A:-1",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nb=A:+1",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nb=A:1_0",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nb= A :1:",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nb= A : 1 ",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nt=1 2 3",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nt=1",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nt=1 x",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nc=a b c\nc=a b c",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nc=a b c\nm=a 1 p\nc=a b c\nc=a b c",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nc=a b c d",
        "v=0\no=- 1 x IN IP4 h\ns=-",
        "v=0\no=- 1 1 IN IP4\ns=-",
        "v=0\no=- 1 1 IN IP4 h x\ns=-",
        "v=0\no=- 1 1 IN IP4 h\ns=-\na=",
        "v=0\no=- 1 1 IN IP4 h\ns=-\na=:x",
        "v=0\no=- 1 1 IN IP4 h\ns=-\na",
        "v=0\no=- 1 1 IN IP4 h\ns=-\n=",
        "v=0\no=- 1 1 IN IP4 h\ns=-\n==",
        "v=0\no=- 1 1 IN IP4 h\ns=-\n a=b",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nA=b",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nx=b",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nm=a 1 p\ns=again",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nm=a 1 p\ni=x\ni=y\nk=1\nk=2\nb=a:1",
        "v=0\no=- 1 1 IN IP4 h\ns=-\ni=x\ni=y\nk=1\nk=2\nz=1\nz=2\nu=1\nu=2\ns=again",
        "v=0\no=a 1 1 IN IP4 h\no=b 2 2 IN IP4 h\ns=-",
        "v=0\no=- 1 9999999999999999999 IN IP4 h\ns=-\nt=9223372036854775808 999999999999999999"
        "\nb=A:9223372036854775807\nm=a 1/18446744073709551616 p",
        "v=1\no=- 1 1 IN IP4 h\ns=-",
        "v=00\no=- 1 1 IN IP4 h\ns=-",
        "v=\no=- 1 1 IN IP4 h\ns=-",
        "v=0 0\no=- 1 1 IN IP4 h\ns=-",
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r",
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\r\n",
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\n\r\n\r\n",
        "\nv=0\no=- 1 1 IN IP4 h\ns=-",
        " v=0\no=- 1 1 IN IP4 h\ns=-",
        "v=0\no=- 1 1 IN IP4 h\ns=-\x00",
        "v=0\no=- 1 1 IN IP4 h\ns=-\x1c",
        "v=0\no=- 1 1 IN IP4 h\ns=-\x7f",
        "v=0\no=- 1 1 IN IP4 h\ns=\x85",
        "v=0\no=- 1 1 IN IP4 h\ns=\u2028x",
        "v=0\no=- \u0661 1 IN IP4 h\ns=-",
        "v=0\no=- 1 \u0661 IN IP4 h\ns=-",
    ],
)
def test_edge_cases(text: str) -> None:
    check(text)
    check(text.encode("utf-8"))


# -- generated SDPs ----------------------------------------------------------------------------

_PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F))
_tok = st.text(alphabet=_PRINTABLE, min_size=1, max_size=8)
_name = st.one_of(
    st.sampled_from(
        ["candidate", "rtpmap", "fmtp", "mid", "ice-ufrag", "ice-pwd", "fingerprint", "setup",
         "sendrecv", "rtcp-mux", "ssrc", "extmap", "group", "msid-semantic", "crypto", "x",
         "rtcp-mux-only", "end-of-candidates", "extmap-allow-mixed", "maxptime", "ptime",
         "candidatx", "candidates", "rtpma", "Mid", "mid-", "ssrc-grou", "sendrecv2",
         "sxndrecv", "ice-Pwd"]
    ),
    _tok.filter(lambda s: ":" not in s),
    _tok,
)
_text = st.text(alphabet=_PRINTABLE + " ", max_size=20)
_digits = st.one_of(
    st.integers(0, 70000).map(str),
    st.integers(0, 10**30).map(str),
    st.from_regex(r"0{1,25}[0-9]{0,5}", fullmatch=True),
    st.sampled_from(
        ["999999999999999999", "9223372036854775807", "9223372036854775808",
         "9999999999999999999", "18446744073709551615", "18446744073709551616999"]
    ),
)
_port_digits = st.one_of(
    st.integers(0, 65535).map(str),
    st.tuples(st.from_regex(r"0{0,25}", fullmatch=True), st.integers(0, 65535)).map(
        lambda zp: f"{zp[0]}{zp[1]}"
    ),
)
_spaces = st.sampled_from([" ", " ", " ", "  ", "   "])
_edge = st.sampled_from(["", "", "", "", " ", "  "])


class _Gen:
    """Line strategies; ``strict`` ones make valid lines only, the others also make lines
    with a field too many or too few, non-numbers, ports out of range, a missing ':' ..."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        number = _digits if strict else st.one_of(_digits, _digits, _digits, _tok)
        port = _port_digits if strict else st.one_of(_port_digits, number)
        port = st.one_of(port, st.tuples(port, st.just("/"), number).map("".join))
        name = _name.filter(lambda s: ":" not in s) if strict else _name
        self.attribute = st.one_of(
            self.line("a", name),
            self.line("a", st.tuples(name, st.just(":"), _text).map("".join)),
            self.line("a", st.tuples(name, st.just(":"), _text, st.just(":"), _text).map("".join)),
        )
        btype = _tok.filter(lambda s: ":" not in s)
        if not strict:
            btype = st.one_of(btype, st.just(""), st.just(" AS "))
        self.bandwidth = self.line(
            "b",
            st.tuples(
                btype,
                st.just(":") if strict else st.sampled_from([":", ":", ":", ""]),
                _edge,
                number,
                _edge,
            ).map("".join),
        )
        self.connection = self.line("c", self.fields([_tok, _tok, _tok]))
        self.media = self.line(
            "m",
            st.lists(_tok, max_size=6).flatmap(
                lambda formats: self.fields([_tok, port, _tok] + [st.just(f) for f in formats])
            ),
        )
        self.origin = self.line("o", self.fields([_tok, _tok | number, number, _tok, _tok, _tok]))
        self.timing = self.line("t", self.fields([number, number]))
        self.value = st.tuples(st.sampled_from("sizuepk"), _text).map(lambda kv: "=".join(kv))
        self.media_value = st.tuples(st.sampled_from("ik"), _text).map(lambda kv: "=".join(kv))

    @staticmethod
    def line(kind: str, value: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return value.map(lambda v: f"{kind}={v}")

    def fields(self, parts: list[st.SearchStrategy[str]]) -> st.SearchStrategy[str]:
        return _fields(parts, self.strict)


@st.composite
def _fields(draw: st.DrawFn, parts: list[st.SearchStrategy[str]], strict: bool) -> str:
    """Fields joined by runs of spaces, maybe with leading/trailing spaces; unless strict,
    sometimes with one field more or one fewer."""
    values = [draw(p) for p in parts]
    mutation = "none" if strict else draw(st.sampled_from(["none"] * 8 + ["drop", "add"]))
    if mutation == "drop" and values:
        del values[draw(st.integers(0, len(values) - 1))]
    elif mutation == "add":
        values.insert(draw(st.integers(0, len(values))), draw(_tok))
    out = draw(_edge)
    for i, v in enumerate(values):
        out += (draw(_spaces) if i else "") + v
    return out + draw(_edge)


_STRICT, _LOOSE = _Gen(strict=True), _Gen(strict=False)
_noise_line = st.one_of(
    st.sampled_from(["", "", "v=0", "x", "a", "=", "y=1", "a=", "s=late", "t=1", "r=1"]),
    _text,
)


@st.composite
def sdp_texts(draw: st.DrawFn) -> str:
    """SDP texts with every line type, CRLF and LF mixed, blank lines; half of them valid
    by construction, the others with anything the loose line strategies make."""
    strict = draw(st.booleans())
    gen = _STRICT if strict else _LOOSE
    v_values = ["0", " 0 ", "0  "] if strict else ["0", "0", "0", " 0 ", "1", "00", ""]
    lines = ["v=" + draw(st.sampled_from(v_values))]
    session = [draw(gen.origin), draw(_line_s), draw(gen.timing)]
    kinds = [gen.origin, gen.timing, gen.bandwidth, gen.attribute, gen.attribute, gen.value]
    if not strict:
        kinds.append(gen.connection)
    session += draw(st.lists(st.one_of(kinds), max_size=8))
    session += draw(st.lists(_LOOSE.line("r", _text), max_size=2))  # after a t=: valid
    if draw(st.booleans()):
        session.append(draw(gen.connection))
    if not strict and draw(st.booleans()):
        session = draw(st.permutations(session))
    lines += session
    for _ in range(draw(st.integers(0, 3))):
        lines.append(draw(gen.media))
        kinds = [gen.attribute, gen.attribute, gen.attribute, gen.bandwidth, gen.media_value]
        if not strict:
            kinds.append(gen.connection)
        lines += draw(st.lists(st.one_of(kinds), max_size=8))
        if draw(st.booleans()):
            lines.insert(len(lines) - draw(st.integers(0, 2)), draw(gen.connection))
    if not strict and draw(st.integers(0, 3)) == 0:
        for _ in range(draw(st.integers(1, 2))):
            lines.insert(draw(st.integers(0, len(lines))), draw(_noise_line))
    out = ""
    for line in lines:
        out += line + draw(st.sampled_from(["\r\n", "\r\n", "\n", "\r\n\r\n", "\n\n"]))
    if draw(st.booleans()):
        out = out.rstrip("\r\n")
    return out


_line_s = _Gen.line("s", _text)


_BYTES = (
    b" :=/\r\n\t\x00\x0b\x0c\x1c\x1f\x7f\x80\xc3\xa9\xff0123456789"
    b"vosiuepcbtrzkamxAZ-"
)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    """A text with random insertions, deletions and byte changes."""
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "flip"]))
        pos = draw(st.integers(0, len(data)))
        if op == "insert":
            chunk = draw(st.one_of(st.sampled_from(list(_BYTES)).map(lambda b: bytes([b])),
                                   st.binary(max_size=4)))
            data[pos:pos] = chunk
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 8))]
        elif pos < len(data):
            if op == "replace":
                data[pos] = draw(st.sampled_from(list(_BYTES)))
            else:
                data[pos] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


_SEEDS = [text.encode("ascii") for text in REAL_SDPS.values()]


def _rfc4475_bodies() -> list[bytes]:
    out = []
    for path in sorted((DATA / "rfc4475").glob("*.sip")):
        data = path.read_bytes()
        at = data.find(b"v=0")
        if at >= 0:
            out.append(data[at:])
    return out


RFC4475_BODIES = _rfc4475_bodies()


@pytest.mark.parametrize("body", RFC4475_BODIES)
def test_rfc4475_bodies(body: bytes) -> None:
    check(body)
    check(body.decode("utf-8", "replace"))


@_SETTINGS
@given(sdp_texts())
@example("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n")
def test_generated(text: str) -> None:
    check(text)
    check(text.encode("ascii"))


@_SETTINGS
@given(mutated(st.one_of(st.sampled_from(_SEEDS), sdp_texts().map(str.encode))))
def test_mutated(data: bytes) -> None:
    check(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    check(text)


@_SETTINGS
@given(st.one_of(st.text(max_size=200), st.text(alphabet=_PRINTABLE + " \r\n", max_size=200)))
def test_random_text(text: str) -> None:
    check(text)
    check("v=0\r\n" + text)
    check("v=0\no=- 1 1 IN IP4 h\ns=-\n" + text)


@_SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    check(data)
    check(b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\n" + data)
