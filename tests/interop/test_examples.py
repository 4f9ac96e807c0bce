"""Every guide example in examples/ runs against the real Kamailio + rtpengine rig.

Each example is started as a subprocess with its ``sipAccountInfo`` in ``EXOTEL_*``
environment variables (see examples/_common.py); a peer calls in where the section needs
a call: a baresip phone (plain SIP over UDP, through rtpengine) or, for DTMF, a second
``ExotelWebClient`` that records the digits it receives. The examples' printed callbacks
are checked, and where possible the server side (Kamailio's RIG events) too.

Each example checks what it shows (audio heard, the tone expected, every hold answered,
digits confirmed ...) and exits 1 with a ``check failed:`` line otherwise; every test
asserts the exit status, and the sandbox tests at the end show that a failed check does
fail (a wrong expected tone, a click-to-call to ``busy``).

Run inside the loopback namespace:
``scripts/in-netns.sh .venv/bin/pytest tests/interop/test_examples.py``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exotel_voice import ExotelWebClient
from exotel_voice.client import DtmfReceived
from exotel_voice.media import IceConfig, MediaConfig
from exotel_voice.sandbox import SandboxConfig
from exotel_voice.sandbox.threaded import SandboxThread
from tests.rig import netns_skip_reason
from tests.rig.kamailio import Kamailio


pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(netns_skip_reason() is not None, reason=str(netns_skip_reason())),
    pytest.mark.timeout(60),
]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def rig_env(kamailio: Kamailio, user: str, password: str, *, secure: bool = True) -> dict[str, str]:
    info = kamailio.info
    port = info.wss_port if secure else info.ws_port
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXOTEL_")}
    env.update({
        "EXOTEL_USERNAME": user,
        "EXOTEL_SIPDOMAIN": info.domain,
        "EXOTEL_DOMAIN": f"127.0.0.1:{port}",
        "EXOTEL_PORT": str(port),
        "EXOTEL_SECURITY": "wss" if secure else "ws",
        "EXOTEL_SECRET": password,
        "EXOTEL_ICE_HOSTS": "127.0.0.1",
        "EXOTEL_NETNS": os.environ.get("EXOTEL_NETNS", ""),
    })
    if secure:
        env["EXOTEL_CA_FILE"] = str(info.ca_file)
    return env


class Example:
    """One example running as a subprocess; its output is collected line by line."""

    def __init__(self, script: str, env: dict[str, str], *args: str) -> None:
        self.script = script
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / script), "--timeout", "30", *args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, cwd=EXAMPLES,
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_line(self, text: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(text in line for line in self.lines):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"{self.script}: no {text!r}; output:\n{self.output}")
                self._cond.wait(min(remaining, 0.2))

    def finish(self, timeout: float = 30.0) -> tuple[int, str]:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.script} did not finish; output:\n{self.output}") from None
        self._reader.join(5)
        return rc, self.output

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def run() -> Iterator[Any]:
    started: list[Example] = []

    def start(script: str, env: dict[str, str], *args: str) -> Example:
        ex = Example(script, env, *args)
        started.append(ex)
        return ex

    yield start
    for ex in started:
        ex.kill()


def events_of(output: str, prefix: str) -> list[str]:
    """The states printed by ``prefix: <state> <phone>`` lines, in order, without the media's
    ICE states (``ice_connection_state_*``: like the JS SDK's, they interleave with the
    call's own states at the network's pace)."""
    return [
        line.split()[1] for line in output.splitlines()
        if line.startswith(prefix + ":")
        and not line.split()[1].startswith("ice_connection_state_")
    ]


def test_5_1_initialize(kamailio: Kamailio, run: Any) -> None:
    user, password = kamailio.new_user("ex51")
    rc, out = run("guide_5_1_initialize.py", rig_env(kamailio, user, password)).finish()
    assert rc == 0, out
    assert "initWebrtc: True" in out
    assert password not in out  # the account's repr hides the secret
    env = rig_env(kamailio, user, password)
    env["EXOTEL_SECURITY"] = "https"
    rc, out = run("guide_5_1_initialize.py", env).finish()
    assert rc == 1 and "initWebrtc: False" in out and "security" in out


def test_5_2_register(kamailio: Kamailio, run: Any) -> None:
    user, password = kamailio.new_user("ex52")
    ex = run("guide_5_2_register.py", rig_env(kamailio, user, password), "--stay", "0.5")
    ex.wait_line("RegisterEventCallBack: registered")
    assert kamailio.registered_contacts(user)
    rc, out = ex.finish()
    assert rc == 0, out
    assert "DoRegister: True" in out
    states = events_of(out, "RegisterEventCallBack")
    assert "registered" in states
    assert states[-1] == "unregistered"  # close() unregisters
    assert kamailio.wait_event("SAVED", timeout=5, aor=user, proto="wss")


def test_5_2_register_wrong_password(kamailio: Kamailio, run: Any) -> None:
    user, _ = kamailio.new_user("ex52bad")
    rc, out = run("guide_5_2_register.py", rig_env(kamailio, user, "wrong-password")).finish()
    assert rc == 1, out
    assert "RegisterEventCallBack: terminated" in out


def test_5_3_unregister(kamailio: Kamailio, run: Any) -> None:
    user, password = kamailio.new_user("ex53")
    rc, out = run("guide_5_3_unregister.py", rig_env(kamailio, user, password)).finish()
    assert rc == 0, out
    states = events_of(out, "RegisterEventCallBack")
    assert "registered" in states and states[-1] == "unregistered"
    assert "unregistration finished" in out
    assert not kamailio.registered_contacts(user)


def test_5_4_receive_calls(kamailio: Kamailio, run: Any, baresip_factory: Any) -> None:
    user, password = kamailio.new_user("ex54")
    peer = baresip_factory()
    ex = run("guide_5_4_receive_calls.py", rig_env(kamailio, user, password))
    ex.wait_line("RegisterEventCallBack: registered")
    peer.dial(kamailio.info.aor(user))
    ex.wait_line("CallListenerCallback: incoming")
    peer.wait_event("CALL_RINGING", 10)
    peer.hangup()  # the caller gives up: CANCEL
    rc, out = ex.finish()
    assert rc == 0, out
    assert events_of(out, "CallListenerCallback") == ["incoming", "ringing", "terminated"]
    assert f"remoteId={peer.user}" in out and "callDirection=incoming" in out
    assert "callState=incoming" in out


def test_5_5_accept_calls(kamailio: Kamailio, run: Any, baresip_factory: Any) -> None:
    user, password = kamailio.new_user("ex55")
    peer = baresip_factory()
    ex = run("guide_5_5_accept_calls.py", rig_env(kamailio, user, password),
             "--expect-tone-hz", "440")  # baresip's default audio file
    ex.wait_line("RegisterEventCallBack: registered")
    peer.dial(kamailio.info.aor(user))
    peer.wait_event("CALL_ESTABLISHED", 10)
    peer.wait_event("CALL_CLOSED", 15)  # the example hangs up once it has heard the tone
    rc, out = ex.finish()
    assert rc == 0, out
    assert "heard: 440 Hz" in out
    assert events_of(out, "CallListenerCallback") == ["incoming", "ringing", "connected",
                                                      "callEnded"]
    assert events_of(out, "SessionCallback") == ["incoming", "connected", "callEnded"]
    assert "callState=connected" in out


def test_5_6_reject(kamailio: Kamailio, run: Any, baresip_factory: Any) -> None:
    user, password = kamailio.new_user("ex56")
    peer = baresip_factory()
    ex = run("guide_5_6_hangup_reject.py", rig_env(kamailio, user, password))
    ex.wait_line("RegisterEventCallBack: registered")
    peer.dial(kamailio.info.aor(user))
    closed = peer.wait_event("CALL_CLOSED", 15)
    rc, out = ex.finish()
    assert rc == 0, out
    assert events_of(out, "CallListenerCallback") == ["incoming", "ringing", "callEnded"]
    assert "486" in closed.param or "Busy" in closed.param, closed


def test_5_6_hangup_answered(kamailio: Kamailio, run: Any, baresip_factory: Any) -> None:
    user, password = kamailio.new_user("ex56b")
    peer = baresip_factory()
    ex = run("guide_5_6_hangup_reject.py", rig_env(kamailio, user, password),
             "--answer-first", "--talk", "0.5")
    ex.wait_line("RegisterEventCallBack: registered")
    peer.dial(kamailio.info.aor(user))
    peer.wait_event("CALL_ESTABLISHED", 15)
    peer.wait_event("CALL_CLOSED", 15)
    rc, out = ex.finish()
    assert rc == 0, out
    assert events_of(out, "CallListenerCallback") == ["incoming", "ringing", "connected",
                                                      "callEnded"]


def test_5_7_mute(kamailio: Kamailio, run: Any, baresip_factory: Any) -> None:
    user, password = kamailio.new_user("ex57")
    peer = baresip_factory()
    ex = run("guide_5_7_mute_unmute.py", rig_env(kamailio, user, password))
    ex.wait_line("RegisterEventCallBack: registered")
    peer.dial(kamailio.info.aor(user))
    peer.wait_event("CALL_CLOSED", 20)
    rc, out = ex.finish()
    assert rc == 0, out
    assert events_of(out, "SessionCallback") == [
        "incoming", "connected", "muted", "unmuted", "muted", "unmuted", "callEnded"]
    assert "muteHandler: callOnMute=True" in out and "muteHandler: callOnMute=False" in out
    assert "callState: connected" in out  # mute does not change the call state
    assert events_of(out, "CallListenerCallback")[-1] == "callEnded"


def test_5_8_hold(kamailio: Kamailio, run: Any, baresip_factory: Any) -> None:
    user, password = kamailio.new_user("ex58")
    peer = baresip_factory()
    ex = run("guide_5_8_hold_resume.py", rig_env(kamailio, user, password))
    ex.wait_line("RegisterEventCallBack: registered")
    peer.dial(kamailio.info.aor(user))
    peer.wait_event("CALL_CLOSED", 25)
    rc, out = ex.finish()
    assert rc == 0, out
    session = events_of(out, "SessionCallback")
    assert session == ["incoming", "connected"] + ["holdunhold_success"] * 4 + ["callEnded"]
    assert "HoldToggle: on hold=True" in out and "callState: connected" in out
    # Four re-INVITEs from the example reached Kamailio over wss.
    def reinvites() -> list[Any]:
        return [e for e in kamailio.events("REQ", method="INVITE", proto="wss")
                if e["from"].split(";")[0] == kamailio.info.aor(user)]

    deadline = time.monotonic() + 5  # Kamailio's log may lag a little
    while len(reinvites()) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(reinvites()) == 4


def test_5_9_send_dtmf(kamailio: Kamailio, run: Any) -> None:
    user, password = kamailio.new_user("ex59")
    peer_user, peer_password = kamailio.new_user("ex59peer")
    peer = ExotelWebClient()
    try:
        info = {"userName": peer_user, "sipdomain": kamailio.info.domain,
                "domain": f"127.0.0.1:{kamailio.info.ws_port}", "security": "ws",
                "secret": peer_password, "port": str(kamailio.info.ws_port)}
        assert peer.initWebrtc(info, media=MediaConfig(ice=IceConfig(host_addresses=["127.0.0.1"])))
        assert peer.DoRegister() and peer.wait_for_registration(10)
        digits: list[str] = []
        assert peer.phone is not None
        peer.loop.call_soon_threadsafe(
            peer.phone.add_listener,
            lambda e: digits.append(e.digit) if isinstance(e, DtmfReceived) else None,
        )
        ex = run("guide_5_9_send_dtmf.py", rig_env(kamailio, user, password),
                 "--digits", "159*#")
        ex.wait_line("RegisterEventCallBack: registered")
        call = peer.MakeCall(user).result(10)
        call.wait_ended(20)
        rc, out = ex.finish()
        assert rc == 0, out
        assert [line.split()[1] for line in out.splitlines()
                if line.startswith("sendDTMF:")] == list("159*#")
        assert digits == list("159*#")
        assert events_of(out, "CallListenerCallback")[-1] == "callEnded"
    finally:
        peer.close()


def test_5_12_auto_reconnect(fresh_kamailio: Kamailio, run: Any) -> None:
    user, password = fresh_kamailio.new_user("ex512")
    ex = run("guide_5_12_auto_reconnect.py", rig_env(fresh_kamailio, user, password),
             "--registrations", "2")
    ex.wait_line("RegisterEventCallBack: registered")
    fresh_kamailio.restart()  # the WebSocket drops; registration is lost
    rc, out = ex.finish(40)
    assert rc == 0, out
    states = events_of(out, "RegisterEventCallBack")
    assert states.count("registered") >= 2
    first = states.index("registered")
    assert "unregistered" in states[first:]  # the loss was reported before re-registering
    assert "auto retry: DoRegister" in out
    assert states[-1] == "unregistered"  # the user pressed UNREGISTER at the end


def test_5_13_check_readiness(kamailio: Kamailio, run: Any) -> None:
    user, password = kamailio.new_user("ex513")
    rc, out = run("guide_5_13_check_readiness.py", rig_env(kamailio, user, password)).finish()
    assert rc == 0, out
    assert [line.split()[2] for line in out.splitlines() if line.startswith("SDK Status")] == [
        "not_initialized", "not_initialized", "registered", "unregistered"]


def test_5_15_logger_callback(kamailio: Kamailio, run: Any) -> None:
    user, password = kamailio.new_user("ex515")
    rc, out = run("guide_5_15_logger_callback.py", rig_env(kamailio, user, password)).finish()
    assert rc == 0, out
    kinds = {line.split()[0] for line in out.splitlines() if " demo: " in line}
    assert {"[log]", "[info]"} <= kinds
    assert "registration: registered" in out
    assert password not in out


# -- against the sandbox: an example's check passes, and fails when it should ----------------
@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    config = SandboxConfig(ws_port=0, wss_port=0, http_port=0,
                           users={"agent": secrets.token_urlsafe(12)})
    with SandboxThread(config) as sb:
        yield sb


def sandbox_env(sandbox: SandboxThread, **extra: str) -> dict[str, str]:
    """The examples' defaults are the sandbox's; only the port and password differ here."""
    info = sandbox.sip_account_info("agent")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXOTEL_")}
    env.update({"EXOTEL_DOMAIN": info["domain"], "EXOTEL_PORT": info["port"],
                "EXOTEL_SECRET": info["secret"], **extra})
    return env


def ring(sandbox: SandboxThread, ex: Example, to: str) -> str:
    """Click-to-call: the sandbox rings the example's agent, then connects ``to``."""
    ex.wait_line("RegisterEventCallBack: registered")
    return asyncio.run(sandbox.connect("agent", to))


def test_5_5_hears_the_sandbox_tone(sandbox: SandboxThread, run: Any) -> None:
    ex = run("guide_5_5_accept_calls.py", sandbox_env(sandbox), "--expect-tone-hz", "440")
    sid = ring(sandbox, ex, "tone")
    rc, out = ex.finish()
    assert rc == 0, out
    assert "heard: 440 Hz" in out and "check failed" not in out
    assert asyncio.run(sandbox.wait_call_ended(sid)) == "completed"


def test_5_5_fails_when_the_tone_is_not_the_expected_one(sandbox: SandboxThread,
                                                         run: Any) -> None:
    env = sandbox_env(sandbox, EXOTEL_EXPECT_TONE_HZ="1000")
    ex = run("guide_5_5_accept_calls.py", env)
    ring(sandbox, ex, "tone")
    rc, out = ex.finish()
    assert rc == 1, out
    assert "check failed: expected a 1000 Hz tone, heard 440 Hz" in out


def test_5_5_fails_when_no_audio_comes(sandbox: SandboxThread, run: Any) -> None:
    ex = run("guide_5_5_accept_calls.py", sandbox_env(sandbox))
    ring(sandbox, ex, "busy")  # the agent answers, then the other side is busy: no audio
    rc, out = ex.finish()
    assert rc == 1, out
    assert "check failed:" in out


def test_5_9_digits_confirmed_by_the_sandbox_ivr(sandbox: SandboxThread, run: Any) -> None:
    ex = run("guide_5_9_send_dtmf.py", sandbox_env(sandbox), "--digits", "42#", "--confirmed")
    sid = ring(sandbox, ex, "ivr")
    rc, out = ex.finish()
    assert rc == 0, out
    assert [line.split()[1] for line in out.splitlines()
            if line.startswith("DTMFCallback:")] == list("42#")
    assert sandbox.ivr_digits(sid) == "42#"
