"""The asyncio Call's conveniences: what an application would otherwise parse or guard by hand.

* mute/unmute on an ended call raise ``InvalidState``, like the other controls;
* ``answer(source=...)`` with a source that cannot be opened raises ``AudioSourceError`` and
  leaves the call ringing, so it can be answered with another source;
* ``received_frames()`` waits for media, takes a timeout and detaches by ``async with``;
* a negotiation whose ICE cannot succeed (only loopback here, only public addresses there)
  warns at once: a WARNING and a ``MediaWarning`` event, before ``CallConnected``;
* the dialog tags, the remote identity and the codec as properties.

The unit tests need no network. The sandbox and media tests run real aiortc media on
127.0.0.1: ``scripts/in-netns.sh .venv/bin/python -m pytest tests/test_call_api.py``. The
ICE-warning tests build SDPs with TEST-NET addresses (192.0.2.0/24) and never wait for ICE;
in the loopback-only namespace nothing can be sent there anyway.
"""

from __future__ import annotations

import asyncio
import logging
import re
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from exotel_voice import (
    AudioSource,
    AudioSourceError,
    Call,
    CallConnected,
    CallMuted,
    CallState,
    Codec,
    Identity,
    InvalidState,
    MediaError,
    MediaStateChanged,
    MediaWarning,
    ToneSource,
    WavFileSource,
)
from exotel_voice.media import MediaSession
from exotel_voice.media.analysis import dominant_frequency
from exotel_voice.media.ice import reachability_problem
from exotel_voice.sandbox import Sandbox
from exotel_voice.sip import Headers, Request
from exotel_voice.sip.dialog import Dialog
from exotel_voice.sip.useragent import CallSession, SessionState
from tests.client.test_call_answers import BadAnswerServer, place_call
from tests.media.conftest import LOOPBACK_MEDIA
from tests.sandbox import conftest as sandbox_fixtures
from tests.sandbox.conftest import MEDIA, PhoneFactory


# The sandbox's fixtures (tests/sandbox/conftest.py), for the tests below.
sandbox = sandbox_fixtures.sandbox
phones = sandbox_fixtures.phones



# -- without a network ------------------------------------------------------------------------
class StubPhone:
    name = "agent"

    def __init__(self) -> None:
        self.published: list[Any] = []

    def _publish(self, event: Any) -> None:
        self.published.append(event)


def make_call(direction: str, *headers: tuple[str, str]) -> tuple[Call, StubPhone]:
    invite = Request(
        "INVITE",
        "sip:bob@example.test",
        Headers(
            [
                ("From", '"Alice A" <sip:+911234@example.test>;tag=from-1'),
                ("To", "<sip:bob@example.test>"),
                ("Call-ID", "c1"),
                ("CSeq", "1 INVITE"),
                ("Contact", "<sip:alice@192.0.2.1>"),
                *headers,
            ]
        ),
    )
    state = SessionState.INCOMING if direction == "incoming" else SessionState.CALLING
    session = CallSession("x1", direction, invite, state)
    if direction == "incoming":
        session.dialog = Dialog.from_request(invite, "to-9")
    phone = StubPhone()
    call = Call(
        phone, session, None,  # type: ignore[arg-type]
        sip=lambda action: None, publish=phone._publish, new_source=lambda: None,  # type: ignore[arg-type,return-value]
    )
    return call, phone


async def test_mute_and_unmute_on_an_ended_call_raise_invalid_state() -> None:
    call, phone = make_call("outgoing")
    call.mute()  # before the answer: allowed, the call starts muted
    assert call.muted
    call._on_ended("remote", None, "bye")
    phone.published.clear()
    for control in (call.mute, call.unmute, call.toggle_mute):
        with pytest.raises(InvalidState, match="ended"):
            control()
    assert not any(isinstance(e, CallMuted) for e in phone.published)


async def test_a_broken_wav_file_is_an_audio_source_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing.wav"
    with pytest.raises(AudioSourceError, match="missing.wav") as info:
        WavFileSource(missing)
    assert "missing.wav" in info.value.source and isinstance(info.value, MediaError)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    with pytest.raises(AudioSourceError, match="broken.wav"):
        WavFileSource(broken)
    eight_bit = tmp_path / "8bit.wav"
    with wave.open(str(eight_bit), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(1)
        wav.setframerate(8000)
        wav.writeframes(b"\x80" * 800)
    with pytest.raises(AudioSourceError, match="16-bit"):
        WavFileSource(eight_bit)


async def test_tags_and_identities_of_an_incoming_call() -> None:
    call, _ = make_call(
        "incoming", ("P-Asserted-Identity", '"Exotel" <sip:+919999@pstn.test>, <tel:+919999>')
    )
    assert (call.local_tag, call.remote_tag) == ("to-9", "from-1")
    assert call.remote_identity == Identity("sip:+911234@example.test", "Alice A", "+911234")
    assert call.asserted_identity == Identity("sip:+919999@pstn.test", "Exotel", "+919999")
    assert call.codec is None  # not answered


async def test_tags_and_identities_of_an_outgoing_call_before_an_answer() -> None:
    call, _ = make_call("outgoing", ("P-Asserted-Identity", "<sip:me@example.test>"))
    assert (call.local_tag, call.remote_tag) == ("from-1", None)
    assert call.remote_identity == Identity("sip:bob@example.test", None, "bob")
    assert call.asserted_identity is None  # only an incoming INVITE's is the far end's
    assert call.codec is None
    unparsable, _ = make_call("incoming", ("P-Asserted-Identity", "<<not an address"))
    assert unparsable.asserted_identity is None


def sdp_with(*candidates: str) -> str:
    """A minimal WebRTC audio SDP with these ``a=candidate`` addresses (host, UDP)."""
    lines = [
        "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0",
        "m=audio 40000 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 0.0.0.0",
        "a=rtpmap:111 opus/48000/2", "a=sendrecv", "a=mid:0", "a=rtcp-mux",
        "a=ice-ufrag:abcd", "a=ice-pwd:0123456789abcdefghijkl",
        "a=fingerprint:sha-256 " + ":".join(["AB"] * 32), "a=setup:actpass",
    ]
    lines += [
        f"a=candidate:{i} 1 udp 2130706431 {address} {40000 + i} typ host"
        for i, address in enumerate(candidates, 1)
    ]
    return "\r\n".join(lines) + "\r\n"


@pytest.mark.parametrize(
    ("local", "remote", "problem"),
    [
        (["127.0.0.1"], ["192.0.2.10"], r"only loopback ICE candidates here \(127\.0\.0\.1\)"),
        (["198.51.100.7"], ["127.0.0.1"], r"far end offers only loopback .*\(127\.0\.0\.1\)"),
        (["::1", "127.0.0.1"], ["192.0.2.10"], r"only loopback .*\(::1, 127\.0\.0\.1\)"),
        (["2001:db8::7"], ["192.0.2.10"], r"same address family"),
        ([], ["192.0.2.10"], r"no local ICE candidate was gathered"),
        (["198.51.100.7"], [], r"far end's SDP has no ICE candidate"),
        (["127.0.0.1"], ["127.0.0.1"], None),
        (["198.51.100.7"], ["192.0.2.10"], None),
        (["127.0.0.1", "198.51.100.7"], ["192.0.2.10"], None),
        (["198.51.100.7"], ["4f1c6b0a-2d3e.local"], None),  # a browser's mDNS name
    ],
)
def test_reachability_problem(local: list[str], remote: list[str], problem: str | None) -> None:
    found = reachability_problem(sdp_with(*local), sdp_with(*remote))
    if problem is None:
        assert found is None
    else:
        assert found is not None and re.search(problem, found), found
        assert "no audio can flow" in found


# -- real media -------------------------------------------------------------------------------
@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(30)
async def test_a_loopback_only_session_warns_at_once_against_a_public_offer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="exotel_voice")
    session = MediaSession(config=MEDIA)  # gathers 127.0.0.1 only
    try:
        await session.accept_offer(sdp_with("192.0.2.10"))
        problem = session.ice_problem
    finally:
        await session.close()  # ICE is never waited for
    assert problem is not None and "127.0.0.1" in problem and "192.0.2.10" in problem
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"! media: {problem}"]


async def public_answer(server: BadAnswerServer, invite: Request) -> None:
    """A real answer whose candidates all moved to a TEST-NET address."""
    answer = (await server.real_answer(invite)).replace("127.0.0.1", "192.0.2.10")
    await server.send(server.response(invite, 200, answer))


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(60)
async def test_an_unreachable_answer_warns_before_connected_and_the_properties_are_set(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="exotel_voice")
    async with place_call(public_answer) as (server, call, events):
        assert call.local_tag and call.local_tag in call.header("From")  # type: ignore[operator]
        assert call.remote_tag is None and call.codec is None
        await call.wait_connected(10)
        kinds = [type(e) for e in events if e.call is call]
        # The SDP problem is told before the call connects; the media watch starts with the
        # call connected, so ICE/DTLS states (MediaStateChanged) may follow, never precede.
        assert kinds[:2] == [MediaWarning, CallConnected], kinds
        assert set(kinds[2:]) <= {MediaStateChanged}, kinds
        warning = events[0]
        assert isinstance(warning, MediaWarning)
        assert "only loopback" in warning.reason and "192.0.2.10" in warning.reason
        logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert logged == [f"! media: {warning.reason}"]
        assert call.remote_tag == "t1"
        assert call.codec == Codec("opus", 48000)
        assert call.remote_identity.user == "bob"
        await call.hangup()
    assert call.codec == Codec("opus", 48000)  # still known after the end


class FailingSource(AudioSource):
    """A microphone that is not there."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    async def start(self) -> None:
        self.attempts += 1
        raise OSError("Device unavailable [PaErrorCode -9985]")

    def read(self, sample_rate: int) -> None:
        return None


async def ringing_pair(phones: PhoneFactory) -> tuple[Call, Call]:
    """agent (sending 1000 Hz) calls bob; returns (agent's call, bob's ringing call)."""
    agent = await phones("agent", tone_hz=1000)
    bob = await phones("bob")
    call = await agent.dial("bob")
    incoming = await bob.next_incoming_call(timeout=10)
    return call, incoming


async def take(frames: Any, count: int) -> list[Any]:
    got = []
    async for frame in frames:
        got.append(frame)
        if len(got) == count:
            break
    return got


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(60)
async def test_answer_with_a_failing_source_raises_and_the_call_keeps_ringing(
    sandbox: Sandbox, phones: PhoneFactory
) -> None:
    call, incoming = await ringing_pair(phones)
    failing = FailingSource()
    with pytest.raises(AudioSourceError, match=r"FailingSource.*Device unavailable") as info:
        await incoming.answer(source=failing)
    assert "FailingSource" in info.value.source
    assert incoming.state is CallState.INCOMING and not incoming.ended
    await asyncio.sleep(0.3)
    assert call.state is CallState.RINGING  # nothing was sent to the caller
    await incoming.answer(source=ToneSource(600, 0.5))  # another source: it connects
    await call.wait_connected(10)
    assert failing.attempts == 1
    async with call.received_frames(timeout=5) as frames:
        heard = await take(frames, 40)
    assert abs(dominant_frequency(np.concatenate(heard[-25:]), 16000) - 600) < 15
    await call.hangup()


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(60)
async def test_received_frames_before_the_answer_waits_for_media_and_detaches(
    sandbox: Sandbox, phones: PhoneFactory
) -> None:
    call, incoming = await ringing_pair(phones)
    assert incoming.media is None and incoming.codec is None

    async def first_frames() -> list[Any]:
        async with incoming.received_frames(timeout=10) as frames:
            return await take(frames, 40)

    listening = asyncio.ensure_future(first_frames())
    await asyncio.sleep(0.2)
    assert not listening.done()  # waiting for the answer, not failed
    await incoming.answer()
    got = await asyncio.wait_for(listening, 10)
    assert all(frame.shape == (320,) and frame.dtype == np.int16 for frame in got)
    assert abs(dominant_frequency(np.concatenate(got[-25:]), 16000) - 1000) < 15
    assert incoming.media is not None and incoming.media._sinks == []  # detached by itself
    assert incoming.codec == Codec("opus", 48000) and call.codec == Codec("opus", 48000)
    # A plain `async for` still works, and ends with the call.
    frames = incoming.received_frames()
    first = await anext(frames)
    assert first.shape == (320,)
    await call.hangup()
    rest = [frame async for frame in frames]  # what was queued, then the end
    assert len(rest) <= 50


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(60)
async def test_received_frames_times_out_when_no_audio_comes_and_ends_with_the_call(
    sandbox: Sandbox, phones: PhoneFactory
) -> None:
    call, incoming = await ringing_pair(phones)
    events: list[Any] = []
    call.phone.add_listener(events.append)
    incoming.phone.add_listener(events.append)
    waiting = asyncio.ensure_future(anext(incoming.received_frames(), None))
    await asyncio.sleep(0.2)
    await call.hangup()  # the caller gives up before the answer
    assert await asyncio.wait_for(waiting, 5) is None
    tone = await call.phone.dial("noanswer")  # rings, never answers: media but no audio
    with pytest.raises(TimeoutError, match="no audio received"):
        async for _ in tone.received_frames(timeout=0.5):
            pass
    await tone.hangup()
    assert [e for e in events if isinstance(e, MediaWarning)] == []  # loopback both ends
