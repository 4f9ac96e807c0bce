"""``ExotelWebClient`` as the integration guide writes it, against the in-process sandbox.

Plain synchronous code: a :class:`SandboxThread` and clients of the guide's face. Tests with
calls run real media and need the loopback-only namespace:
``scripts/in-netns.sh .venv/bin/python -m pytest -q tests/test_facade_guide.py``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from exotel_voice import ExotelWebClient, InvalidState
from exotel_voice.exceptions import AudioSourceError
from exotel_voice.media import IceConfig, MediaConfig, ToneSource, WavFileSource
from exotel_voice.media.analysis import dominant_frequency
from exotel_voice.sandbox import Sandbox, SandboxConfig
from exotel_voice.sandbox.threaded import SandboxThread
from tests.sandbox.conftest import LOOPBACK_MEDIA


pytestmark = pytest.mark.timeout(60)

MEDIA = MediaConfig(ice=IceConfig(host_addresses=["127.0.0.1"], gather_timeout=1.0))
PASSWORDS = {"agent": "agent-secret-1", "bob": "bob-secret-2"}


class Recorder:
    """Every callback of one client, in arrival order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.objects: list[Any] = []
        self._cond = threading.Condition()

    def add(self, kind: str, value: str) -> None:
        with self._cond:
            self.events.append((kind, value))
            self._cond.notify_all()

    def register(self, state: str, phone: str) -> None:
        self.add("register", state)

    def call(self, call_obj: Any, event: str, phone: str) -> None:
        self.objects.append(call_obj)
        self.add("call", event)

    def session(self, state: str, phone: str) -> None:
        self.add("session", state)

    def kinds(self, kind: str) -> list[str]:
        with self._cond:
            return [v for k, v in self.events if k == kind]

    def wait(self, kind: str, value: str, timeout: float = 10.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: (kind, value) in self.events, timeout):
                raise AssertionError(f"no {kind} {value!r} within {timeout} s: {self.events}")


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    config = SandboxConfig(ws_port=0, wss_port=0, http_port=0, users=dict(PASSWORDS))
    with SandboxThread(config) as sb:
        yield sb


Make = Callable[..., tuple[ExotelWebClient, Recorder]]


@pytest.fixture
def clients(sandbox: SandboxThread) -> Iterator[Make]:
    made: list[ExotelWebClient] = []

    def make(user: str, register: bool = True, **kwargs: Any) -> tuple[ExotelWebClient, Recorder]:
        client = ExotelWebClient()
        made.append(client)
        rec = Recorder()
        info = sandbox.sip_account_info(user)
        assert client.initWebrtc(info, rec.register, rec.call, rec.session, media=MEDIA,
                                 **kwargs) is True
        if register:
            assert client.DoRegister() is True
            assert client.wait_for_registration(10) is True
        return client, rec

    yield make
    for client in made:
        client.close()


def drop_flows(sandbox: SandboxThread) -> None:
    """Close every client WebSocket on the server side (a network blip)."""

    async def drop(sb: Sandbox) -> None:
        await asyncio.gather(*(flow.close() for flow in list(sb.flows)))

    sandbox.run(drop)


# -- initWebrtc ------------------------------------------------------------------------------


def test_init_webrtc_on_the_class_names_the_fix(sandbox: SandboxThread) -> None:
    """The guide calls ``exWebClient.initWebrtc(sipAccountInfo, ...)`` on the import."""
    info = sandbox.sip_account_info("agent")
    with pytest.raises(TypeError) as err:
        ExotelWebClient.initWebrtc(info, print, print, print)  # type: ignore[arg-type]
    text = str(err.value)
    assert "client = ExotelWebClient()" in text and "client.initWebrtc(" in text
    assert PASSWORDS["agent"] not in text


def test_init_webrtc_names_every_missing_field(
    sandbox: SandboxThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="exotel_voice")
    info = {k: v for k, v in sandbox.sip_account_info("agent").items()
            if k != "wsUrl"}
    client = ExotelWebClient()
    try:
        assert client.initWebrtc(info) is True
        del info["port"]
        assert client.initWebrtc(info) is False
        assert client.last_error is not None and "port" in str(client.last_error)
        info["secret"] = ""
        assert client.initWebrtc(info) is False
        err = client.last_error
        assert getattr(err, "field", None) == "secret, port"
        assert "required" in str(err) and "secret, port" in caplog.text
        assert PASSWORDS["agent"] not in caplog.text
    finally:
        client.close()


# -- 5.12: DoRegister from RegisterEventCallBack; checkClientStatus after DoRegister ---------


def test_guide_5_12_retry_pattern_and_status_after_do_register(
    sandbox: SandboxThread, caplog: pytest.LogCaptureFixture
) -> None:
    """The guide's 5.12 callback calls DoRegister() for every state but "registered"."""
    caplog.set_level(logging.INFO, logger="exotel_voice")
    client = ExotelWebClient()
    rec = Recorder()
    returned: list[tuple[str, bool]] = []
    should_auto_retry = True

    def register_event(state: str, phone: str) -> None:
        rec.register(state, phone)
        if state != "registered" and should_auto_retry:
            returned.append((state, client.DoRegister()))

    try:
        assert client.initWebrtc(sandbox.sip_account_info("agent"), register_event) is True
        assert client.DoRegister() is True
        # Right after DoRegister the registration is under way, not "not initialised".
        assert client.checkClientStatus().result(5) == "connecting"
        assert client.wait_for_registration(10) is True
        # A REGISTER and its digest retry: the callback's DoRegister restarted nothing.
        assert rec.kinds("register") == ["sent_request", "sent_request", "registered"]
        assert returned == [("sent_request", True), ("sent_request", True)]

        drop_flows(sandbox)
        rec.wait("register", "unregistered")
        deadline = time.monotonic() + 10
        while rec.kinds("register").count("registered") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rec.kinds("register").count("registered") == 2
        assert ("unregistered", True) in returned
        assert all(ok for _, ok in returned)
        assert "already registered" not in caplog.text
        assert client.checkClientStatus().result(5) == "registered"
        assert client.DoRegister() is False  # registered: refused, as the JS SDK does
    finally:
        should_auto_retry = False  # close() reports unregistered: no retry from the callback
        client.close()


# -- calls -----------------------------------------------------------------------------------


def call_agent(clients: Make, **agent_kwargs: Any) -> tuple[Any, ...]:
    agent, rec = clients("agent", **agent_kwargs)
    bob, bob_rec = clients("bob")
    out = bob.MakeCall("agent").result(10)
    incoming = agent.wait_for_call(10)
    rec.wait("call", "ringing")
    return agent, rec, bob, bob_rec, out, incoming


@pytest.mark.media
@LOOPBACK_MEDIA
def test_session_callback_gets_the_guides_words(clients: Make) -> None:
    agent, rec, bob, bob_rec, out, incoming = call_agent(clients)
    incoming.Answer().result(15)
    rec.wait("call", "connected")
    out.wait_connected(10)
    out.Hangup().result(10)
    rec.wait("call", "terminated")
    bob_rec.wait("call", "callEnded")
    # 5.10: incoming / connected / callEnded (whoever hung up), never accepted/terminated;
    # the media's ICE states (ice_connection_state_*) only between connected and callEnded.
    for r, words in ((rec, ["incoming", "connected", "callEnded"]),
                     (bob_rec, ["connected", "callEnded"])):
        said = r.kinds("session")
        assert [s for s in said if not s.startswith("ice_connection_state_")] == words
        ice = [i for i, s in enumerate(said) if s.startswith("ice_connection_state_")]
        assert all(said.index("connected") < i < said.index("callEnded") for i in ice), said
    assert rec.kinds("call") == ["incoming", "ringing", "connected", "terminated"]


@pytest.mark.media
@LOOPBACK_MEDIA
def test_mute_on_an_ended_call_fails_like_hold(clients: Make) -> None:
    agent, rec, bob, bob_rec, out, incoming = call_agent(clients)
    incoming.Answer().result(15)
    out.wait_connected(10)
    out.Hangup().result(10)
    rec.wait("call", "terminated")
    for op in (incoming.Hold, incoming.Mute, incoming.UnMute, incoming.MuteToggle):
        with pytest.raises(InvalidState, match="ended"):
            op().result(5)
    assert "muted" not in rec.kinds("session")


@pytest.mark.media
@LOOPBACK_MEDIA
def test_answer_with_a_broken_source_reports_media_permission_denied(
    clients: Make, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00not a wav file")
    agent, rec, bob, bob_rec, out, incoming = call_agent(
        clients, source=lambda: WavFileSource(broken)
    )
    with pytest.raises(AudioSourceError, match="cannot be opened"):
        incoming.Answer().result(15)
    assert "media_permission_denied" in rec.kinds("session")
    # Not left ringing: rejected with 480, so the platform may offer the call elsewhere.
    rec.wait("call", "callEnded")
    bob_rec.wait("call", "terminated")
    assert out.call is not None and out.call.end_status == 480
    assert isinstance(agent.last_error, AudioSourceError)
    assert agent.checkClientStatus().result(5) == "media_permission_denied"
    # A missing file (or device) is the same.
    broken.unlink()
    out2 = bob.MakeCall("agent").result(10)
    second = agent.wait_for_call(10)
    with pytest.raises(AudioSourceError):
        second.Answer().result(15)
    out2.wait_ended(10)
    assert out2.call is not None and out2.call.end_status == 480
    # And a source given to Answer() that fails to start (a device that will not open).
    out3 = bob.MakeCall("agent").result(10)
    third = agent.wait_for_call(10)
    with pytest.raises(AudioSourceError):
        third.Answer(source=_DeadDevice()).result(15)
    out3.wait_ended(10)
    assert out3.call is not None and out3.call.end_status == 480
    assert rec.kinds("session").count("media_permission_denied") == 3


class _DeadDevice(ToneSource):
    def __init__(self) -> None:
        super().__init__(440)

    async def start(self) -> None:
        raise OSError("device unplugged")


@pytest.mark.media
@LOOPBACK_MEDIA
def test_sync_face_receives_dtmf_and_touches_audio(clients: Make, tmp_path: Path) -> None:
    agent, rec, bob, bob_rec, out, incoming = call_agent(clients)
    digits: list[tuple[Any, str, str, str]] = []
    agent.registerDTMFCallback(
        lambda call_obj, digit, phone: digits.append(
            (call_obj, digit, phone, threading.current_thread().name)
        )
    )
    incoming.Answer(source=ToneSource(1000, 0.5)).result(15)
    out.wait_connected(10)
    # Frames from plain synchronous code: bob hears the agent's 1 kHz tone.
    frames = out.receivedFrames(50, timeout=10)
    assert len(frames) == 50
    pcm = np.concatenate(frames[10:])
    assert abs(dominant_frequency(pcm, 16000) - 1000) < 50
    # Switch the agent's source; bob records it to a WAV file.
    incoming.setSource(ToneSource(600, 0.5)).result(5)
    time.sleep(0.3)
    path = tmp_path / "bob.wav"
    out.startRecording(str(path)).result(5)
    time.sleep(1.0)
    out.stopRecording().result(5)
    with wave.open(str(path), "rb") as wav:
        rate = wav.getframerate()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert data.size > rate * 0.5
    assert abs(dominant_frequency(data, rate) - 600) < 50
    # Digits from bob arrive through the DTMF callback, on the agent's thread.
    out.sendDTMF("1#").result(5)
    deadline = time.monotonic() + 5
    while len(digits) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [d for _, d, _, _ in digits] == ["1", "#"]
    assert all(obj is incoming and phone == "agent" and thread == agent.thread.name
               for obj, _, phone, thread in digits)

    # Blocking calls refuse to run inside a callback.
    errors: list[BaseException] = []

    def in_callback(status: str) -> None:
        try:
            out.receivedFrames(1, timeout=1)
        except InvalidState as exc:
            errors.append(exc)

    bob.checkClientStatus(in_callback).result(5)
    assert errors and "callback" in str(errors[0])
    out.Hangup().result(10)
    rec.wait("call", "terminated")
    # After the call: no media to touch.
    with pytest.raises(InvalidState):
        incoming.setSource(ToneSource(500)).result(5)
    with pytest.raises(InvalidState):
        incoming.startRecording(str(tmp_path / "late.wav")).result(5)


@pytest.mark.media
@LOOPBACK_MEDIA
def test_a_call_the_server_dropped_with_the_connection_is_terminated_not_active(
    clients: Make, sandbox: SandboxThread
) -> None:
    # With no grace period the sandbox ends a call whose client connection is lost. After
    # the reconnect and the new registration the call's dialog refresh gets 481:
    # "terminated", never "activeSession" (which needs the far end to keep the call).
    sandbox.config.connection_grace = 0.0
    agent, rec, bob, bob_rec, out, incoming = call_agent(clients)
    incoming.Answer().result(15)
    rec.wait("call", "connected")
    assert "activeSession" not in rec.kinds("call")
    drop_flows(sandbox)
    rec.wait("register", "unregistered")
    rec.wait("call", "terminated")
    assert incoming.call is not None and incoming.call.ended
    assert incoming.call.end_status == 481, incoming.call.end_reason
    assert "activeSession" not in rec.kinds("call")
    assert rec.kinds("register").count("registered") >= 2
