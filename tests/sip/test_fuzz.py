"""Bounded-time fuzzing of every parser that reads what the network sends (Hypothesis).

Targets, each fed (a) mutated real traffic (the captured WebSocket exchange and the RFC 4475
torture messages under ``tests/sip/data``) and (b) generated input:

* :func:`~exotel_voice.sip.message.parse_message`, and every header accessor of what it
  returns;
* the media layer's check of a remote SDP (``exotel_voice.media._sdp.check_remote``) and
  its line helpers that read one;
* the URI, name-addr, Via, CSeq and parameter parsers;
* Digest challenge parsing (:func:`~exotel_voice.sip.auth.parse_challenges`);
* a whole ``SipConnection.receive_data``, as a server (requests for nobody) and as a
  client with transactions in flight.

The contract checked: a parsed object or the documented error (``InvalidMessage``,
``InvalidSDP``), never any other exception and never a hang (each example runs under an
alarm; a slow one fails the Hypothesis deadline); round trips where they hold
(``parse(str(x)) == x`` for URIs, name-addrs, Vias, CSeqs and challenges, and a parsed
message re-parses equal from its own serialization); a connection never answers a response
or an ACK and never raises.

Bounded: the ``exotel-voice-fuzz`` settings profile and the per-test ``max_examples`` keep the
module at about 30 s on two cores. The run is seeded (default :data:`DEFAULT_SEED`) so a CI
failure reproduces: the end-of-run line printed by ``tests/sip/conftest.py`` names the seed.
``EXOTEL_VOICE_FUZZ_SEED=<n>`` (or ``random``) and ``EXOTEL_VOICE_FUZZ_SCALE=<factor>``
(more examples) make longer exploratory runs.
"""

from __future__ import annotations

import os
import random
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, note, seed, settings, strategies as st

from exotel_voice.exceptions import InvalidMessage, InvalidSDP
from exotel_voice.media import _sdp as media_sdp
from exotel_voice.sip.auth import format_challenge, parse_challenge, parse_challenges
from exotel_voice.sip.connection import SipConnection
from exotel_voice.sip.events import MessageRejected
from exotel_voice.sip.headers import (
    parse_cseq,
    parse_name_addr,
    parse_params,
    parse_via,
    split_header_values,
)
from exotel_voice.sip.message import Request, Response, parse_message
from exotel_voice.sip.uri import parse_uri
from exotel_voice.sip.utils import make_request, make_response
from tests.sip.conftest import FUZZ_STATS, counter_token
from tests.sip.test_parser_properties import (
    edit_lists,
    messages,
    mutate,
    name_addrs,
    sip_uris,
    vias,
)


T = TypeVar("T")

#: The seed of a CI run; EXOTEL_VOICE_FUZZ_SEED overrides it ("random" draws one).
DEFAULT_SEED = 20240612
_seed_env = os.environ.get("EXOTEL_VOICE_FUZZ_SEED", "").strip()
FUZZ_SEED = (
    random.SystemRandom().randrange(2**32)
    if _seed_env == "random"
    else int(_seed_env or DEFAULT_SEED)
)
FUZZ_STATS["seed"] = FUZZ_SEED
#: Multiplies every test's max_examples (EXOTEL_VOICE_FUZZ_SCALE, for longer runs).
SCALE = float(os.environ.get("EXOTEL_VOICE_FUZZ_SCALE", "1") or 1)
#: An example that has not finished after this long is a hang (the deadline catches slowness).
HANG_SECONDS = 10.0

settings.register_profile(
    "exotel-voice-fuzz",
    # A parse of at most 64 KiB takes milliseconds; 2 s is far beyond any legitimate
    # example even on a loaded CI machine, and far below a super-linear blow-up.
    deadline=timedelta(seconds=2),
    database=None,  # reproducible from the seed alone
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
FUZZ = settings.get_profile("exotel-voice-fuzz")


def fuzz(max_examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The fuzz profile with ``max_examples`` (times SCALE), seeded with FUZZ_SEED."""

    def apply(test: Callable[..., None]) -> Callable[..., None]:
        bounded = settings(FUZZ, max_examples=max(1, int(max_examples * SCALE)))(test)
        return seed(FUZZ_SEED)(bounded)

    return apply


# -------------------------------------------------------------------------------------------
# The contract: the documented error or a result, nothing else, never a hang
# -------------------------------------------------------------------------------------------


class Hang(BaseException):
    """Raised by the alarm (a BaseException: the parsers' ``except Exception`` let it go)."""


@contextmanager
def no_hang(seconds: float = HANG_SECONDS) -> Iterator[None]:
    """Raise :class:`Hang` in the block after ``seconds``; keeps pytest-timeout's alarm."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise Hang(f"no result after {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    outer, interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:  # an enclosing alarm (pytest-timeout): give it back what is left
            left = max(outer - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, interval)


def attempt(
    target: str, parse: Callable[..., T], *args: Any, errors: Any = InvalidMessage
) -> T | None:
    """``parse(*args)``, or ``None`` when it raises one of ``errors``; counts the input, and
    counts (and re-raises) any other exception as a crash."""
    counts: dict[str, int] = FUZZ_STATS["inputs"]
    counts[target] = counts.get(target, 0) + 1
    try:
        return parse(*args)
    except errors:
        return None
    except Hang:
        FUZZ_STATS["hangs"] += 1
        raise
    except Exception:
        FUZZ_STATS["crashes"] += 1
        raise


# -------------------------------------------------------------------------------------------
# Seeds: the captured traffic, and the values inside it
# -------------------------------------------------------------------------------------------

DATA = Path(__file__).parent / "data"
SAMPLES = [p.read_bytes() for p in sorted(DATA.glob("*/*.sip"))]
_PARSED: list[Request | Response] = []
for _sample in SAMPLES:
    try:
        _PARSED.append(parse_message(_sample))
    except InvalidMessage:
        pass


def _values(*names: str) -> list[str]:
    out: list[str] = []
    for message in _PARSED:
        for name in names:
            for value in message.headers.get_all(name):
                out.append(value)
    return sorted(set(out))


URI_SEEDS = sorted(
    {str(m.uri) for m in _PARSED if isinstance(m, Request)}
    | {u for v in _values("From", "To", "Contact", "Route", "Record-Route")
       for u in re.findall(r"<([^>]*)>", v)}
)
NAME_ADDR_SEEDS = _values("From", "To", "Contact", "Route", "Record-Route")
VIA_SEEDS = _values("Via")
CSEQ_SEEDS = sorted({m.headers["CSeq"] for m in _PARSED})
CHALLENGE_SEEDS = _values("WWW-Authenticate", "Proxy-Authenticate") + [
    'Digest realm="127.0.0.1", nonce="5f2a8c0000000000a1b2c3d4e5f6a7b8"',  # Kamailio, no qop
    'Digest realm="pbx", nonce="abc", opaque="xyz", algorithm=MD5, qop="auth,auth-int"',
    'Digest realm="pbx", nonce="n2", algorithm=SHA-256, qop="auth", stale=true',
    'Basic realm="x", Digest realm="pbx", nonce="n3", domain="sip:pbx sip:pbx2"',
    'Digest realm="a\\"b", nonce="n4", qop=auth, Digest realm="c", nonce="n5"',
]
SDP_SEEDS = [m.body for m in _PARSED if m.body.startswith(b"v=0")]
START_LINES = [s.split(b"\r\n", 1)[0] for s in SAMPLES]
HEADER_LINES = sorted(
    {line for s in SAMPLES for line in s.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]}
)

#: Start lines that are malformed in the ways servers get them wrong.
BAD_START_LINES = [
    b"INVITE  sip:bob@example.com SIP/2.0",
    b"INVITE sip:bob@example.com SIP/2.0 ",
    b" INVITE sip:bob@example.com SIP/2.0",
    b"INVITE\tsip:bob@example.com SIP/2.0",
    b"INVITE sip:bob@example.com",
    b"INVITE sip:" + b"a" * 9000 + b"@example.com SIP/2.0",
    b"INVITE <sip:bob@example.com> SIP/2.0",
    b"INVITE sip:bob@example.com SIP/3.0",
    b"SIP/2.0  200 OK",
    b"SIP/2.0 2000 OK",
    b"SIP/2.0 099 Low",
    b"SIP/2.0 200 " + b"O" * 9000,
    b"ACK  sip:bob@example.com SIP/2.0",
    b"",
]

TEXT_INTERESTING = ["<", ">", ";", ",", '"', "\\", " ", "\t", "%", "%0", "@", ":", "=", "?",
                    "[", "]", "\x00", "\r\n", "\r\n ", "é", "\udcff", "sip:", "tag=", "branch=",
                    "z9hG4bK", "9" * 40, "a" * 300, "[::1]", ";;", ",,", "\u2028"]


def text_edits(max_size: int) -> st.SearchStrategy[list[tuple[str, float, str]]]:
    return st.lists(
        st.tuples(
            st.sampled_from(["insert", "delete", "replace"]),
            st.floats(0, 1),
            st.sampled_from(TEXT_INTERESTING) | st.text(min_size=1, max_size=4),
        ),
        max_size=max_size,
    )


def mutate_text(sample: str, edits: list[tuple[str, float, str]]) -> str:
    """:func:`mutate` for text (the element parsers take ``str``)."""
    chars = list(sample)
    for op, where, chunk in edits:
        i = int(where * len(chars))
        if op == "insert":
            chars[i:i] = chunk
        elif op == "delete":
            del chars[i : i + len(chunk)]
        else:
            chars[i : i + len(chunk)] = chunk
    return "".join(chars)


def mutated_text(seeds: list[str], generated: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A captured or generated value, mutated (or not)."""
    return st.builds(mutate_text, st.sampled_from(seeds) | generated, text_edits(5))


# -------------------------------------------------------------------------------------------
# Message inputs: (a) mutated traffic, (b) generated messages
# -------------------------------------------------------------------------------------------


@st.composite
def line_mutated(draw: st.DrawFn) -> bytes:
    """A captured message with whole-line edits: duplicated, dropped, swapped, folded or
    lengthened lines, whitespace, another start line, a line from another message."""
    sample = draw(st.sampled_from(SAMPLES))
    head, sep, body = sample.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(
            ["dup", "drop", "swap", "space", "fold", "long", "line", "start", "length", "case"]
        ))
        line = lines[i]
        at = draw(st.integers(0, len(line)))
        if op == "dup":
            lines.insert(i, line)
        elif op == "drop" and len(lines) > 1:
            del lines[i]
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "space":
            lines[i] = line[:at] + draw(st.sampled_from([b" ", b"  ", b"\t", b" \t "])) + line[at:]
        elif op == "fold":
            lines[i] = line[:at] + b"\r\n" + draw(st.sampled_from([b" ", b"\t"])) + line[at:]
        elif op == "long":
            run = draw(st.sampled_from([b"a", b" ", b";", b",", b"<", b"%", b"0", b"\\"]))
            lines[i] = line[:at] + run * draw(st.integers(1, 9000)) + line[at:]
        elif op == "line":
            lines.insert(i, draw(st.sampled_from(HEADER_LINES)))
        elif op == "start":
            lines[0] = draw(st.sampled_from(BAD_START_LINES + START_LINES))
        elif op == "length":
            lines.insert(i, b"Content-Length: %d" % draw(st.integers(-5, 70000)))
        else:
            lines[i] = line.swapcase()
    return b"\r\n".join(lines) + sep + body


@st.composite
def assembled(draw: st.DrawFn) -> bytes:
    """A start line and header lines taken from different captured messages."""
    start = draw(st.sampled_from(START_LINES + BAD_START_LINES))
    lines = draw(st.lists(st.sampled_from(HEADER_LINES), min_size=0, max_size=20))
    body = draw(st.sampled_from([b"", *SDP_SEEDS]) | st.binary(max_size=64))
    return b"\r\n".join([start, *lines]) + b"\r\n\r\n" + body


def _generated(case: tuple[Request | Response, dict[str, object]]) -> bytes:
    return case[0].serialize()


message_inputs = st.one_of(
    st.builds(mutate, st.sampled_from(SAMPLES), edit_lists(8)),  # (a) byte edits
    line_mutated(),  # (a) line edits
    assembled(),  # (b) recombined
    st.builds(mutate, messages().map(_generated), edit_lists(4)),  # (b) generated, mutated
    messages().map(_generated),  # (b) generated
    st.binary(max_size=300),
)


def _comparable(message: Request | Response) -> tuple[object, ...]:
    start = (
        (message.method, str(message.uri))
        if isinstance(message, Request)
        else (message.status, message.reason)
    )
    headers = [(k, v) for k, v in message.headers if k != "Content-Length"]
    return (*start, headers, message.body)


#: The structured header accessors of a parsed message (the others are parsed when read).
_ACCESSORS = ("vias", "via", "branch", "from_", "to", "call_id", "cseq", "contacts", "routes",
              "record_routes", "max_forwards", "content_type")


def check_message(data: bytes) -> Request | Response | None:
    message = attempt("parse_message", parse_message, data)
    if message is not None:
        repr(message)
        wire = message.serialize()
        # Round trip: what we parsed serializes to a message that parses back the same (but
        # for Content-Length, which serialize() always writes) and serializes identically.
        again = parse_message(wire)
        assert _comparable(again) == _comparable(message), (message, again)
        assert again.serialize() == wire
        for name in _ACCESSORS:  # each a value or InvalidMessage
            attempt("message headers", getattr, message, name)
    return message


@fuzz(1200)
@given(message_inputs)
def test_parse_message(data: bytes) -> None:
    note(repr(data[:2000]))
    with no_hang():
        check_message(data)


# -------------------------------------------------------------------------------------------
# SDP
# -------------------------------------------------------------------------------------------

SDP_LINES = sorted({line for body in SDP_SEEDS for line in body.split(b"\r\n") if line})


@st.composite
def sdp_inputs(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 3))
    if choice == 0:  # byte edits of a captured SDP
        return mutate(draw(st.sampled_from(SDP_SEEDS)), draw(edit_lists(6)))
    if choice == 1:  # lines of captured SDPs, recombined
        lines = draw(st.lists(st.sampled_from(SDP_LINES), max_size=30))
        first = draw(st.sampled_from([[b"v=0"], []]))
        return b"\r\n".join(first + lines) + draw(st.sampled_from([b"\r\n", b"\n", b""]))
    if choice == 2:  # a captured SDP with generated lines put in
        lines = draw(st.sampled_from(SDP_SEEDS)).split(b"\r\n")
        for _ in range(draw(st.integers(1, 4))):
            kind = draw(st.sampled_from(list(b"vosicbtrzkamuep") + [ord("x")]))
            value = draw(st.text(max_size=40)).encode("utf-8", "surrogatepass")
            lines.insert(draw(st.integers(0, len(lines))), bytes([kind]) + b"=" + value)
        return b"\r\n".join(lines)
    return draw(st.binary(max_size=200))


@fuzz(1500)
@given(sdp_inputs())
def test_remote_sdp_check(data: bytes) -> None:
    note(repr(data[:2000]))
    with no_hang():
        text = data.decode("utf-8", "replace")  # as the call layer hands SDP to media
        attempt("media._sdp.check_remote", media_sdp.check_remote, text, errors=InvalidSDP)
        # The media layer reads a remote SDP with these (before and after the check).
        for helper in (media_sdp.audio_formats, media_sdp.telephone_events,
                       media_sdp.audio_direction, media_sdp.origin,
                       media_sdp.candidate_addresses, media_sdp.redact,
                       media_sdp.without_origin):
            attempt("media._sdp", helper, text, errors=())
        attempt("media._sdp", media_sdp.free_payload_type, text, 101, errors=())


# -------------------------------------------------------------------------------------------
# URI, name-addr, Via, CSeq, parameters
# -------------------------------------------------------------------------------------------


@fuzz(1000)
@given(mutated_text(URI_SEEDS, sip_uris().map(str)))
def test_parse_uri(text: str) -> None:
    with no_hang():
        uri = attempt("parse_uri", parse_uri, text)
        if uri is not None:
            assert parse_uri(str(uri)) == uri


@fuzz(1000)
@given(mutated_text(NAME_ADDR_SEEDS, name_addrs().map(str)))
def test_parse_name_addr(text: str) -> None:
    with no_hang():
        for part in attempt("split_header_values", split_header_values, text) or [text]:
            value = attempt("parse_name_addr", parse_name_addr, part)
            if value is not None:
                assert parse_name_addr(str(value)) == value


@fuzz(1000)
@given(mutated_text(VIA_SEEDS, vias().map(str)))
def test_parse_via(text: str) -> None:
    with no_hang():
        via = attempt("parse_via", parse_via, text)
        if via is not None:
            assert parse_via(str(via)) == via
        attempt("parse_params", parse_params, text[text.find(";"):] if ";" in text else text)


@fuzz(200)
@given(mutated_text(CSEQ_SEEDS, st.text(max_size=20)))
def test_parse_cseq(text: str) -> None:
    with no_hang():
        cseq = attempt("parse_cseq", parse_cseq, text)
        if cseq is not None:
            assert parse_cseq(str(cseq)) == cseq
            assert 0 <= cseq.seq <= 2**31 - 1


# -------------------------------------------------------------------------------------------
# Digest challenges
# -------------------------------------------------------------------------------------------


@fuzz(1000)
@given(mutated_text(CHALLENGE_SEEDS, st.text(max_size=80)))
def test_parse_challenges(text: str) -> None:
    with no_hang():
        challenges = attempt("parse_challenges", parse_challenges, text)
        if challenges:
            assert attempt("parse_challenge", parse_challenge, text) == challenges[0]
            for challenge in challenges:
                assert parse_challenge(format_challenge(challenge)) == challenge


# -------------------------------------------------------------------------------------------
# A whole connection
# -------------------------------------------------------------------------------------------


def _kind(data: bytes) -> bytes:
    """``b"SIP/"`` for a response, ``b"ACK"`` for an ACK, else the first word, as the
    connection reads a malformed start line."""
    start = data.lstrip(b"\r\n").split(b"\n", 1)[0].split(None, 1)
    if not start:
        return b""
    return b"SIP/" if start[0][:4].upper() == b"SIP/" else start[0]


def feed(conn: SipConnection, data: bytes, now: float) -> None:
    """One input to a connection; check what it sends back."""
    attempt("SipConnection.receive_data", conn.receive_data, data, now, errors=())
    out = [item for item in conn.data_to_send() if item.strip(b"\r\n")]  # (not a pong)
    for event in conn.events_received():
        if isinstance(event, MessageRejected):
            assert len(event.excerpt) <= 300, event.excerpt
    kind = _kind(data)
    assert not (kind == b"ACK" and out), f"an ACK was answered: {out}"
    for item in out:
        # Whatever the connection sends is a valid message ...
        answer = parse_message(item)
        if kind == b"SIP/":
            # ... a response only ever gets the ACK of a non-2xx final response to INVITE,
            assert isinstance(answer, Request) and answer.method == "ACK", answer
        else:
            # ... and a request only ever gets responses.
            assert isinstance(answer, Response) and 100 <= answer.status <= 599, answer


@fuzz(700)
@given(st.lists(message_inputs, min_size=1, max_size=3))
def test_connection_receives_anything(inputs: list[bytes]) -> None:
    with no_hang():
        conn = SipConnection(via_host="fuzz.invalid", token=counter_token("f"))
        now = 100.0
        for data in inputs:
            feed(conn, data, now)
            now += 0.1
        conn.handle_timer(now + 64)
        conn.data_to_send()
        conn.events_received()


def _client_connection() -> tuple[SipConnection, list[Request]]:
    """A connection with an INVITE, a REGISTER and an OPTIONS in flight."""
    conn = SipConnection(via_host="fuzz.invalid", token=counter_token("f"))
    sent = []
    for method in ("INVITE", "REGISTER", "OPTIONS"):
        request = make_request(
            method, "sip:bob@example.com", from_="<sip:alice@example.com>;tag=fuzzf",
            to="<sip:bob@example.com>", call_id=f"fuzz-{method}", cseq=1,
            contact="<sip:alice@fuzz.invalid;transport=ws>",
        )
        conn.send_request(request, 0.0)
        sent.append(parse_message(conn.data_to_send()[0]))
    return conn, [m for m in sent if isinstance(m, Request)]


_SDP_BODY = SDP_SEEDS[0] if SDP_SEEDS else b""


@st.composite
def responses_to_our_requests(draw: st.DrawFn) -> tuple[int, bytes]:
    """A response to one of the requests in flight (status, Contact, Record-Route, SDP),
    then byte or line edits."""
    index = draw(st.integers(0, 2))
    status = draw(st.sampled_from([100, 180, 183, 200, 202, 302, 401, 407, 423, 486, 503, 603]))
    return index, b"%d" % status + draw(st.sampled_from([b"", b"contact", b"sdp", b"both"]))


@fuzz(500)
@given(st.lists(st.tuples(responses_to_our_requests(), edit_lists(4), st.booleans()),
                min_size=1, max_size=4))
def test_connection_as_a_client(cases: list[tuple[tuple[int, bytes], Any, bool]]) -> None:
    with no_hang():
        conn, requests = _client_connection()
        now = 0.1
        for (index, spec), edits, mutated in cases:
            status = int(spec[:3])
            extra: list[tuple[str, str]] = []
            if b"contact" in spec or b"both" in spec:
                extra.append(("Contact", "<sip:bob@192.0.2.1:5060;transport=ws>"))
                extra.append(("Record-Route", "<sip:proxy.invalid;lr>, <sip:p2.invalid;lr>"))
            body = _SDP_BODY if b"sdp" in spec or b"both" in spec else b""
            response = make_response(
                requests[index], status, to_tag="fuzzt", headers=extra, body=body,
                content_type="application/sdp" if body else None,
            )
            data = response.serialize()
            if mutated:
                data = mutate(data, edits)
            feed(conn, data, now)
            now += 0.1
        conn.handle_timer(now + 64)
        for item in conn.data_to_send():  # (retransmissions of our own requests only)
            assert isinstance(parse_message(item), Request)



def test_the_hang_guard_interrupts_and_gives_back_the_outer_alarm() -> None:
    """The guard every example runs under: it stops a loop that never ends, and an
    enclosing alarm (pytest-timeout's) is still armed afterwards."""
    previous = signal.signal(signal.SIGALRM, signal.SIG_IGN)
    outer = signal.setitimer(signal.ITIMER_REAL, 100)  # (pytest-timeout's, if any)
    try:
        with pytest.raises(Hang), no_hang(0.05):
            while True:
                pass
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 90 < left <= 100
        assert signal.getsignal(signal.SIGALRM) == signal.SIG_IGN
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer[0]:
            signal.setitimer(signal.ITIMER_REAL, *outer)
