"""Differential tests of the C accelerator's URI, name-addr and Via parsers.

``exotel_voice.sip._cmessage.sip_uri`` / ``name_addr`` / ``via`` must answer exactly what the
pure-Python fast path answers for the same text: ``FAST_SIP_URI_RE.fullmatch`` +
``sip_uri_from_match`` (uri.py), ``FAST_NAME_ADDR_RE.fullmatch`` + ``name_addr_from_match``
and ``FAST_VIA_RE.fullmatch`` + ``via_from_match`` (headers.py): ``None`` exactly when the
regex does not match, otherwise equal objects with the same instance attributes (an absent
port is left unset, as the Python builders leave it) and parameter dicts in the same order.
Non-ASCII text is always ``None`` (the Python parser judges it).

The extension is required (``make test`` builds it); with ``EXOTEL_VOICE_NO_SPEEDUPS`` set
the module is skipped.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from exotel_voice.sip.headers import (
    FAST_NAME_ADDR_RE,
    FAST_VIA_RE,
    NameAddr,
    Via,
    name_addr_from_match,
    split_header_values,
    via_from_match,
)
from exotel_voice.sip.uri import FAST_SIP_URI_RE, SipURI, sip_uri_from_match


# As the package reads it: anything but "" or "0" turns the accelerators off.
if os.environ.get("EXOTEL_VOICE_NO_SPEEDUPS", "") not in ("", "0"):
    pytest.skip("EXOTEL_VOICE_NO_SPEEDUPS is set", allow_module_level=True)


def _import_extension() -> ModuleType:
    try:
        return importlib.import_module("exotel_voice.sip._cmessage")
    except ImportError as exc:  # a missing build is a failure, not a skip
        raise ImportError(
            "exotel_voice.sip._cmessage is not built: run `python setup.py build_ext "
            "--inplace` (or set EXOTEL_VOICE_NO_SPEEDUPS=1 to test without it)"
        ) from exc


_cmessage = _import_extension()


@pytest.fixture(autouse=True, scope="module")
def _registered() -> None:
    _cmessage.register("SipURI", SipURI)
    _cmessage.register("NameAddr", NameAddr)
    _cmessage.register("Via", Via)


# -- references and comparison ---------------------------------------------------------------


def ref_sip_uri(text: str) -> SipURI | None:
    m = FAST_SIP_URI_RE.fullmatch(text)
    return sip_uri_from_match(m, 1) if m is not None else None


def ref_name_addr(text: str) -> NameAddr | None:
    m = FAST_NAME_ADDR_RE.fullmatch(text)
    return name_addr_from_match(m) if m is not None else None


def ref_via(text: str) -> Via | None:
    m = FAST_VIA_RE.fullmatch(text)
    return via_from_match(m) if m is not None else None


def assert_same_vars(got: object, want: object) -> None:
    """The same class, the same instance attributes in the same order, the same values."""
    assert type(got) is type(want)
    got_vars, want_vars = vars(got), vars(want)
    assert list(got_vars) == list(want_vars)
    for name, want_value in want_vars.items():
        got_value = got_vars[name]
        assert type(got_value) is type(want_value), name
        if isinstance(want_value, dict):
            assert list(got_value.items()) == list(want_value.items()), name
        elif isinstance(want_value, SipURI):
            assert_same_vars(got_value, want_value)
        else:
            assert got_value == want_value, name


def check(c_func: Callable[[str], object], ref: Callable[[str], object], text: str) -> object:
    """Assert that the C function agrees with the Python fast path on ``text``."""
    got = c_func(text)
    if not text.isascii():
        assert got is None
        return None
    want = ref(text)
    if want is None:
        assert got is None, (text, got)
        return None
    assert got is not None, (text, want)
    assert got == want
    assert_same_vars(got, want)
    return got


def check_uri(text: str) -> object:
    return check(_cmessage.sip_uri, ref_sip_uri, text)


def check_name_addr(text: str) -> object:
    return check(_cmessage.name_addr, ref_name_addr, text)


def check_via(text: str) -> object:
    return check(_cmessage.via, ref_via, text)


# -- strategies ------------------------------------------------------------------------------

REALISTIC_URIS = [
    "sip:alice@example.com:5060;transport=ws;lr",
    "sips:bob@[::1]:5061;ob",
    "sip:127.0.0.1:8443;lr;r2=on;transport=ws",
    "sip:h2k9d0rl@t3zq81lcvb7o.invalid;transport=ws",
    "sip:+911234567890;phone-context=x@pbx.example.com;user=phone",
    "sip:d8r2ofu3@127.0.0.1:49822;transport=ws;ob;alias=127.0.0.1~49822~5",
    "sip:pbx.example.com",
]
REALISTIC_NAME_ADDRS = [
    '"Bob" <sip:bob@[::1]:5061;ob>;tag=abc;expires=600',
    '"Alice Example" <sip:alice@pbx.example.com>;tag=0hrgsj6k3c',
    "Alice  Example\t<sip:alice@pbx.example.com> ;tag=x ; expires = 60 ",
    "<sip:d8r2ofu3@k1x9qmw3ez5c.invalid;transport=ws>;+sip.ice;reg-id=1;"
    '+sip.instance="<urn:uuid:5d3a7c1e-7f41-4a4e-9a2b-2f0a3c6d8e11>";expires=600',
    "  <sip:127.0.0.1:8443;lr;r2=on;transport=ws>  ",
    '"" <sip:a@b>;q=0.5;TAG=Up;tag=dup',
]
REALISTIC_VIAS = [
    "SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKabc;rport;received=[::1]",
    "SIP/2.0/WSS 127.0.0.1:8443;branch=z9hG4bK0b6e.8c7d2f21ab3c47c1b5a1d4f70d1f6e01.0",
    "SIP/2.0/wss k1x9qmw3ez5c.invalid;rport=49822;received=127.0.0.1;branch=z9hG4bK4752380",
    "SIP/2.0/UDP [2001:db8::1]:65535;branch=z9hG4bK1;Branch=z9hG4bK2",
    "SIP/2.0/TCP host;branch=z9hG4bKx",
]

BASIC_FRAGMENTS = [
    "sip", "sips", "SIP", "sip:", "sips:", "SIP/2.0/", "SIP/2.0", "/", ":", ";", "=", "@",
    "<", ">", '"', "[", "]", ".", "-", " ", "\t", ",", "?", "&", "%", "\\", "!", "~", "*",
    "'", "(", ")", "+", "$", "`", "_", "#", "\x00", "\x1f", "\x7f", "0", "1", "9", "00",
    "5060", "65535", "65536", "99999", "00001", "10000", "123456", "a", "B", "z", "alice",
    "example.com", "[::1]", "::", "tag", "tag=", ";tag=", "branch", ";branch=", "lr", ";lr",
    "transport=ws", "z9hG4bK", "WSS", "ws", "é",
]
FRAGMENTS = BASIC_FRAGMENTS + REALISTIC_URIS + REALISTIC_NAME_ADDRS + REALISTIC_VIAS
ALPHABET = "".join(sorted({c for f in BASIC_FRAGMENTS for c in f}))

fragment_texts = st.lists(st.sampled_from(FRAGMENTS), max_size=12).map("".join)
alphabet_texts = st.text(ALPHABET, max_size=40)


@st.composite
def mutated(draw: st.DrawFn, values: st.SearchStrategy[str]) -> str:
    """A value with a few fragments inserted or replaced, or characters deleted or cut."""
    text = draw(values)
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "cut"]))
        piece = draw(st.sampled_from(BASIC_FRAGMENTS))
        if action == "insert":
            text = text[:pos] + piece + text[pos:]
        elif action == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 4)):]
        elif action == "replace":
            text = text[:pos] + piece + text[pos + len(piece):]
        else:
            text = text[:pos]
    return text


# Valid characters of each part of the grammars, and characters that break that part.
USER_CHARS, USER_NOISE = "abcXY09-_.!~*'()&=+$,;?/", "@:%<"
HOST_CHARS, HOST_NOISE = "abcXYZ019-.", "_:;@"
IPV6_CHARS, IPV6_NOISE = "0123456789abcdefABCDEF:.", "gG][ "
UPARAM_CHARS, UPARAM_NOISE = "abcLR09-_.!~*'()[]/:&+$", "=;?,%@>"
TOKEN_CHARS, TOKEN_NOISE = "abcTAG09-.!%*_+`'~", "=;:[ "
GEN_CHARS, GEN_NOISE = TOKEN_CHARS + ":[]", "\"<>,;= "
QUOTED_CHARS, QUOTED_NOISE = "ab <>@:=,'\t", "\\\"\x00\x01\x1f\x7fé"
# A display name may hold ";", a quoted parameter value may not.
NAME_CHARS, VALUE_NOISE = QUOTED_CHARS + ";", ";;;" + QUOTED_NOISE


def _joined(*parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(*parts).map("".join)


class Grammar:
    """Values built part by part from the grammars of the fast paths.

    ``Grammar(False)`` builds values in the fast subset (whitespace, empty display names,
    ports 0-65535 ...). ``Grammar(True)`` builds the same, except that in most examples one
    part (drawn per example) is broken: a character that does not belong there, a wrong
    delimiter, a port out of range; so near misses are common. Its parts are numbered: use
    one instance per kind of value.
    """

    instances = 0

    def __init__(self, noisy: bool) -> None:
        self.noisy = noisy
        self.parts = 0
        # The index of the broken part, one per example (== self.parts: none is broken).
        Grammar.instances += 1
        self.broken = st.shared(
            st.deferred(lambda: st.sampled_from(range(self.parts + 1))),
            key=f"broken-part-{Grammar.instances}",
        )

    def uri(self) -> st.SearchStrategy[str]:
        return _joined(
            st.sampled_from(["sip:", "sips:"]) | self.often("sip:", "SIP:", "sip", "sipz:", ""),
            st.one_of(
                st.just(""),
                _joined(self.part(USER_CHARS, USER_NOISE, 1, 8), self.often("@", "", "@@")),
            ),
            self.host(),
            self.port(),
            st.lists(
                _joined(
                    self.often(";", "", ";;"),
                    self.part(UPARAM_CHARS, UPARAM_NOISE, 1, 5),
                    st.one_of(
                        st.just(""),
                        _joined(self.often("=", "=="), self.part(UPARAM_CHARS, UPARAM_NOISE, 1, 5)),
                    ),
                ),
                max_size=4,
            ).map("".join),
        )

    def name_addr(self) -> st.SearchStrategy[str]:
        spaces = st.sampled_from(["", "", "", " ", "\t", "  ", " \t"])
        quoted_name = _joined(
            st.just('"'), self.part(NAME_CHARS, QUOTED_NOISE), self.often('"', "")
        )
        display_names = st.one_of(
            st.just(""),
            _joined(quoted_name, spaces),
            _joined(
                st.lists(
                    _joined(spaces, self.part(TOKEN_CHARS, TOKEN_NOISE, 1, 5)),
                    min_size=1,
                    max_size=3,
                ).map("".join),
                spaces,
            ),
        )
        quoted_value = _joined(
            st.just('"'), self.part(QUOTED_CHARS, VALUE_NOISE), self.often('"', "")
        )
        header_params = st.lists(
            st.one_of(
                _joined(st.just(";tag="), self.part(GEN_CHARS, GEN_NOISE, 1, 6)),
                _joined(
                    spaces,
                    self.often(";", ""),
                    spaces,
                    self.part(TOKEN_CHARS, TOKEN_NOISE, 1, 5),
                    st.one_of(
                        st.just(""),
                        _joined(
                            spaces,
                            self.often("=", ""),
                            spaces,
                            st.one_of(self.part(GEN_CHARS, GEN_NOISE, 1, 6), quoted_value),
                        ),
                    ),
                ),
            ),
            max_size=4,
        ).map("".join)
        return _joined(
            spaces, display_names, self.often("<", "", "<<"), self.uri(),
            self.often(">", "", ">>"), header_params, spaces,
        )

    def via(self) -> st.SearchStrategy[str]:
        return _joined(
            self.often("SIP/2.0/", "sip/2.0/", "SIP/2.0", "SIP/2.1/", "SIP/2.0//"),
            self.part(TOKEN_CHARS, TOKEN_NOISE, 1, 4),
            self.often(" ", "  ", "\t", ""),
            self.host(),
            self.port(),
            st.lists(
                st.one_of(
                    _joined(st.just(";branch="), self.part(GEN_CHARS, GEN_NOISE, 1, 6)),
                    _joined(
                        self.often(";", ""),
                        self.part(TOKEN_CHARS, TOKEN_NOISE, 1, 5),
                        st.one_of(
                            st.just(""),
                            _joined(self.often("=", ""), self.part(GEN_CHARS, GEN_NOISE, 1, 6)),
                        ),
                    ),
                ),
                max_size=4,
            ).map("".join),
        )

    def choice(
        self, good: st.SearchStrategy[str], bad: st.SearchStrategy[str]
    ) -> st.SearchStrategy[str]:
        """``good``, or ``bad`` when this part is the broken one of the example."""
        if not self.noisy:
            return good
        index = self.parts
        self.parts += 1
        return self.broken.flatmap(lambda broken: bad if broken == index else good)

    def part(
        self, valid: str, noise: str, min_size: int = 0, max_size: int = 6
    ) -> st.SearchStrategy[str]:
        """Text of valid characters; broken: one character of ``noise`` among them."""
        short = st.text(valid, max_size=max_size // 2)
        return self.choice(
            st.text(valid, min_size=min_size, max_size=max_size),
            _joined(short, st.sampled_from(noise), short),
        )

    def often(self, good: str, *bad: str) -> st.SearchStrategy[str]:
        """The delimiter ``good``; broken: one of ``bad``."""
        return self.choice(st.just(good), st.sampled_from(bad))

    def host(self) -> st.SearchStrategy[str]:
        return st.one_of(
            self.part(HOST_CHARS, HOST_NOISE, 1, 8),
            _joined(st.just("["), self.part(IPV6_CHARS, IPV6_NOISE, 1, 8), self.often("]", "")),
            self.choice(st.just("[::1]"), st.sampled_from(["[]", "[", "[::1", "::1]"])),
        )

    def port(self) -> st.SearchStrategy[str]:
        return self.choice(
            st.one_of(st.just(""), st.integers(0, 65535).map(lambda p: f":{p}")),
            st.one_of(
                st.integers(65536, 99999).map(lambda p: f":{p}"),
                st.integers(0, 9999).map(lambda p: f":{p:05d}"),
                st.integers(100000, 10**7).map(lambda p: f":{p}"),
                st.sampled_from([":", "::1", ": 1", ":1a"]),
            ),
        )


CLEAN_URIS, NOISY_URIS = Grammar(False).uri(), Grammar(True).uri()
CLEAN_NAME_ADDRS, NOISY_NAME_ADDRS = Grammar(False).name_addr(), Grammar(True).name_addr()
CLEAN_VIAS, NOISY_VIAS = Grammar(False).via(), Grammar(True).via()


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )


def _inputs(
    clean: st.SearchStrategy[str], noisy: st.SearchStrategy[str], pattern: re.Pattern[str],
    realistic: list[str],
) -> st.SearchStrategy[str]:
    return st.one_of(
        clean,
        noisy,
        noisy,
        mutated(st.sampled_from(realistic) | clean),
        # Hypothesis reads the expression itself: what a hand-written grammar could miss.
        st.from_regex(pattern, fullmatch=True, alphabet=st.characters(codec="ascii")),
        fragment_texts,
        alphabet_texts,
    )


# -- properties ------------------------------------------------------------------------------


@_settings(800)
@given(_inputs(CLEAN_URIS, NOISY_URIS, FAST_SIP_URI_RE, REALISTIC_URIS))
def test_sip_uri_matches_python(text: str) -> None:
    check_uri(text)


@_settings(700)
@given(
    _inputs(CLEAN_NAME_ADDRS, NOISY_NAME_ADDRS, FAST_NAME_ADDR_RE, REALISTIC_NAME_ADDRS)
    | NOISY_URIS.map(lambda u: f"<{u}>")
)
def test_name_addr_matches_python(text: str) -> None:
    check_name_addr(text)


@_settings(800)
@given(_inputs(CLEAN_VIAS, NOISY_VIAS, FAST_VIA_RE, REALISTIC_VIAS))
def test_via_matches_python(text: str) -> None:
    check_via(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_arbitrary_text_matches_python(text: str) -> None:
    check_uri(text)
    check_name_addr(text)
    check_via(text)


# -- examples --------------------------------------------------------------------------------

# Every ASCII character in every place of each grammar: the character classes exactly.
URI_SLOTS = [
    "{c}", "si{c}:h", "sip{c}h", "sip:{c}", "sip:{c}@h", "sip:a{c}b@h", "sip:h{c}", "sip:h{c}x",
    "sip:[::{c}]", "sip:[{c}1]", "sip:h:5{c}", "sip:h;{c}", "sip:h;a{c}b", "sip:h;a={c}",
    "sip:h;a=b{c}c", "sip:a{c}@h;b",
]
NAME_ADDR_SLOTS = [
    "{c}<sip:h>", "{c}a <sip:h>", "a{c}b <sip:h>", "a {c} <sip:h>", "a{c}<sip:h>",
    '"{c}" <sip:h>', '"a{c}b"<sip:h>', '"a"{c}<sip:h>', "<sip:{c}@h>", "<sip:h{c}>",
    "<sip:h;{c}>", "<sip:h>{c}", "<sip:h>;{c}", "<sip:h>;a{c}", "<sip:h>;a={c}",
    "<sip:h>;a=b{c}", '<sip:h>;a="{c}"', '<sip:h>;a="x{c}y";b', "<sip:h>;tag={c}",
    "<sip:h>;tag=a{c}", "<sip:h> {c};a", "<sip:h>;a{c}=b", "<sip:h>;a={c}b;c",
]
VIA_SLOTS = [
    "SIP/2.0/{c} h", "SIP/2.0/W{c} h", "SIP/2.0/W{c}h", "SIP/2.0/W {c}", "SIP/2.0/W h{c}",
    "SIP/2.0/W h;{c}", "SIP/2.0/W h;a={c}", "SIP/2.0/W h;branch={c}", "SIP/2.0/W h;a{c}b",
    "SIP/2.0/W h:1{c}", "SIP/2.0/W [{c}]", "SIP{c}2.0/W h", "SIP/2.0/W h;branch=x{c};a",
]


@pytest.mark.parametrize("code", [range(64), range(64, 128)], ids=["0-63", "64-127"])
def test_every_ascii_character_in_every_place(code: range) -> None:
    for c in map(chr, code):
        for slot in URI_SLOTS:
            check_uri(slot.replace("{c}", c))
            check_uri(slot.replace("{c}", c * 2))
        for slot in NAME_ADDR_SLOTS:
            check_name_addr(slot.replace("{c}", c))
            check_name_addr(slot.replace("{c}", c * 2))
        for slot in VIA_SLOTS:
            check_via(slot.replace("{c}", c))
            check_via(slot.replace("{c}", c * 2))


def test_every_port_spelling() -> None:
    """Runs of 1-6 digits after the host: 0-65535, leading zeros only below 5 digits."""
    near_limits = [*range(1000), *range(9000, 11000), *range(64000, 70000), *range(99000, 10**5)]
    numbers = {
        1: range(10), 2: range(100), 3: range(1000), 4: range(10**4),
        5: sorted({*near_limits, *range(0, 10**5, 101)}), 6: range(0, 10**6, 997),
    }
    for width, candidates in numbers.items():
        for number in candidates:
            digits = f"{number:0{width}d}"
            uri = check_uri(f"sip:h:{digits};lr")
            via = check_via(f"SIP/2.0/UDP h:{digits}")
            in_range = width < 5 or (width == 5 and digits[0] != "0" and number <= 65535)
            expected = number if in_range else None
            assert (uri is None, via is None) == (expected is None, expected is None), digits
            if expected is not None:
                assert isinstance(uri, SipURI) and isinstance(via, Via)
                assert uri.port == via.port == expected




@pytest.mark.parametrize(
    ("text", "user", "host", "params"),
    [
        # The user run is possessive and holds ";" and "?": with an "@" after it, it is the
        # user; without, the text is host and parameters.
        ("sip:a;b@host", "a;b", "host", {}),
        ("sip:host;lr", None, "host", {"lr": None}),
        ("sip:a?b=c@h;x=1;X=2;y", "a?b=c", "h", {"x": "2", "y": None}),
        ("sips:[::1]:0", None, "[::1]", {}),
    ],
)
def test_sip_uri_examples(
    text: str, user: str | None, host: str, params: dict[str, str | None]
) -> None:
    uri = check_uri(text)
    assert isinstance(uri, SipURI)
    assert (uri.user, uri.host, uri.params) == (user, host, params)


@pytest.mark.parametrize(
    "text",
    [
        "sip:a@b@c", "sip:@host", "sip:host;lr@", "SIP:host", "sip:host:", "sip:host:65536",
        "sip:host:01234", "sip:host:123456", "sip:[]", "sip:[::1", "sip:host;", "sip:host;a=",
        "sip:host;=a", "sip:host?x=y", "sip:a:pw@host", "sip:host;a=b=c", "sip:%41@host",
    ],
)
def test_sip_uri_outside_fast_subset(text: str) -> None:
    assert check_uri(text) is None


@pytest.mark.parametrize(
    ("text", "port"),
    [("sip:h:0", 0), ("sip:h:0000", 0), ("sip:h:9999", 9999), ("sip:h:10000", 10000),
     ("sip:h:65535", 65535), ("sip:h", None)],
)
def test_ports(text: str, port: int | None) -> None:
    uri = check_uri(text)
    assert isinstance(uri, SipURI)
    assert uri.port == port
    assert ("port" in vars(uri)) == (port is not None)


@pytest.mark.parametrize(
    ("text", "display", "params"),
    [
        ("Bob  Smith <sip:x>", "Bob  Smith", {}),
        ("Bob<sip:x>", "Bob", {}),
        ('"" <sip:x>', "", {}),
        ('\t"A, B" <sip:x> ;tag=1 ; Q = "a=b c" ;lr ', "A, B", {"tag": "1", "q": "a=b c",
                                                         "lr": None}),
        ("<sip:x>;tag=a;TAG=b;x", None, {"tag": "b", "x": None}),
    ],
)
def test_name_addr_examples(
    text: str, display: str | None, params: dict[str, str | None]
) -> None:
    value = check_name_addr(text)
    assert isinstance(value, NameAddr)
    assert value.display_name == display
    assert list(value.params.items()) == list(params.items())


@pytest.mark.parametrize(
    "text",
    [
        "sip:x", "<sip:x", "<sip:x> x", '"a\\"b" <sip:x>', '"a <sip:x>', "<sip:x>;tag=",
        '<sip:x>;a="b;c"', "<sip:x>;a=", "<sip:x>;", "Bob, Al <sip:x>", "<tel:1>",
    ],
)
def test_name_addr_outside_fast_subset(text: str) -> None:
    assert check_name_addr(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "SIP/2.0/WSS  host", "sip/2.0/WSS host", "SIP/2.0/WSS host ;branch=x",
        "SIP/2.0/WSS host;branch=", "SIP/2.0/WSS host;branch=\"x\"", "SIP/2.0/ host",
        "SIP/2.0/WSS host:", "SIP/2.0/WSS host:99999",
    ],
)
def test_via_outside_fast_subset(text: str) -> None:
    assert check_via(text) is None


def test_via_transport_upper_and_duplicates() -> None:
    value = check_via("SIP/2.0/wSs h:5;rport;BRANCH=1;branch=2;received=[::1]")
    assert isinstance(value, Via)
    assert value.transport == "WSS"
    assert list(value.params.items()) == [("rport", None), ("branch", "2"), ("received", "[::1]")]


@pytest.mark.parametrize(
    "text",
    ["sip:alicé@example.com", "\"Bob é\" <sip:b@h>", "SIP/2.0/WSS hé", "sip:a@h;x=\U0001f600"],
)
def test_non_ascii_is_none(text: str) -> None:
    assert _cmessage.sip_uri(text) is None
    assert _cmessage.name_addr(text) is None
    assert _cmessage.via(text) is None


def test_non_str_is_none() -> None:
    assert _cmessage.sip_uri(b"sip:a@b") is None
    assert _cmessage.name_addr(None) is None


# -- recorded traffic ------------------------------------------------------------------------

WSS = Path(__file__).parent / "data" / "wss"
NAME_ADDR_HEADERS = {"from", "f", "to", "t", "contact", "m", "route", "record-route"}
# Outside the fast subset (the Python general parser takes them): a quoted parameter value
# holding ";" (received="sip:...;transport=ws").
OUTSIDE_FAST_SUBSET = {
    '<sip:d8r2ofu3@k1x9qmw3ez5c.invalid;transport=ws>;expires=600;received="sip:127.0.0.1:'
    '49822;transport=ws";+sip.instance="<urn:uuid:5d3a7c1e-7f41-4a4e-9a2b-2f0a3c6d8e11>";'
    "reg-id=1",
}


def _recorded() -> tuple[list[str], list[str], list[str]]:
    uris: list[str] = []
    name_addrs: list[str] = []
    vias: list[str] = []
    for path in sorted(WSS.glob("*.sip")):
        head = path.read_bytes().split(b"\r\n\r\n", 1)[0].decode("ascii")
        start, *lines = head.split("\r\n")
        if not start.startswith("SIP/2.0 "):
            uris.append(start.split(" ")[1])
        for line in lines:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            if key in ("via", "v"):
                vias.extend(split_header_values(value))
            elif key in NAME_ADDR_HEADERS:
                name_addrs.extend(split_header_values(value))
    return uris, name_addrs, vias


def test_recorded_values() -> None:
    uris, name_addrs, vias = _recorded()
    assert len(uris) == 4 and len(name_addrs) >= 20 and len(vias) >= 8
    for text in uris:
        assert check_uri(text) is not None, text
    for text in name_addrs:
        if text in OUTSIDE_FAST_SUBSET:
            assert check_name_addr(text) is None
        else:
            assert check_name_addr(text) is not None, text
    for text in vias:
        assert check_via(text) is not None, text
