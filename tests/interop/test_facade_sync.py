"""``ExotelWebClient`` from plain synchronous code, against the real Kamailio + rtpengine rig.

No asyncio here: every test is a plain ``def``. The same scenarios through the asyncio API
(``Phone``/``Call``) are in tests/interop/test_facade_async.py; both assert the event
sequences in :mod:`tests.interop.scenarios`, so the two faces show the same events in the
same order.

Run inside the loopback namespace:
``scripts/in-netns.sh .venv/bin/pytest tests/interop/test_facade_sync.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from exotel_voice import ExotelWebClient, InvalidState
from exotel_voice.client import DtmfReceived
from exotel_voice.media import IceConfig, MediaConfig
from tests.interop.scenarios import (
    ANSWERED_REMOTE_HANGUP_CALLEE,
    CALLEE_SESSION_FULL,
    CALLER_LOCAL_HANGUP,
    REGISTER_UNREGISTER,
    REJECTED_CALLEE,
    collapse,
)
from tests.rig import netns_skip_reason
from tests.rig.kamailio import Kamailio


pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(netns_skip_reason() is not None, reason=str(netns_skip_reason())),
    pytest.mark.timeout(60),
]

MEDIA = MediaConfig(ice=IceConfig(host_addresses=["127.0.0.1"]))


def account(
    kamailio: Kamailio, user: str, password: str, *, secure: bool = False
) -> dict[str, Any]:
    """The guide's sipAccountInfo for a rig user (ws, or wss with the rig's CA)."""
    info = kamailio.info
    port = info.wss_port if secure else info.ws_port
    result: dict[str, Any] = {
        "userName": user,
        "authUser": user,
        "sipdomain": info.domain,
        "domain": f"127.0.0.1:{port}",
        "displayname": user.upper(),
        "secret": password,
        "port": str(port),
        "security": "wss" if secure else "ws",
    }
    if secure:
        result["caFile"] = str(info.ca_file)
    return result


class Recorder:
    """Collects every callback of one client, thread-safely, in arrival order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []
        self.objects: list[Any] = []
        self.threads: set[str] = set()
        self._cond = threading.Condition()

    def _add(self, item: tuple[str, ...]) -> None:
        with self._cond:
            self.events.append(item)
            self.threads.add(threading.current_thread().name)
            self._cond.notify_all()

    def register(self, state: str, phone: str) -> None:
        self._add(("register", state, phone))

    def call(self, call_obj: Any, event: str, phone: str) -> None:
        self.objects.append(call_obj)
        self._add(("call", event, phone))

    def session(self, state: str, phone: str) -> None:
        self._add(("session", state, phone))

    def kinds(self, kind: str) -> list[str]:
        """The words said to ``kind``'s callback, without the media's ICE states: like the
        JS SDK's, they interleave with the call's own words at the network's pace."""
        with self._cond:
            return [
                e[1] for e in self.events
                if e[0] == kind and not e[1].startswith("ice_connection_state_")
            ]

    def wait(self, kind: str, value: str, timeout: float = 10.0, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(1 for e in self.events if e[:2] == (kind, value)) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {kind} {value!r} within {timeout} s: {self.events}")
                self._cond.wait(remaining)


@pytest.fixture
def clients() -> Iterator[Callable[..., tuple[ExotelWebClient, Recorder]]]:
    made: list[ExotelWebClient] = []

    def make(info: dict[str, Any]) -> tuple[ExotelWebClient, Recorder]:
        client = ExotelWebClient()
        made.append(client)
        rec = Recorder()
        assert client.initWebrtc(info, rec.register, rec.call, rec.session, media=MEDIA) is True
        return client, rec

    yield make
    for client in made:
        client.close()


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_register_and_unregister(kamailio: Kamailio, clients: Any, secure: bool) -> None:
    user, password = kamailio.new_user("fsync")
    client, rec = clients(account(kamailio, user, password, secure=secure))

    assert client.checkClientStatus().result(5) == "not_initialized"
    assert client.DoRegister() is True  # returns at once
    assert client.wait_for_registration(10) is True
    assert client.checkClientStatus().result(5) == "registered"
    assert kamailio.registered_contacts(user)
    proto = "wss" if secure else "ws"
    assert kamailio.wait_event("SAVED", timeout=5, aor=user, proto=proto)

    assert client.UnRegister() is True
    assert client.wait_for_unregistration(10)
    rec.wait("register", "unregistered")
    assert collapse(rec.kinds("register")) == REGISTER_UNREGISTER
    assert all(e[2] == user for e in rec.events)
    assert not kamailio.registered_contacts(user)
    assert client.checkClientStatus().result(5) == "unregistered"
    # Every callback ran on the client's own thread, never on ours.
    assert rec.threads == {client.thread.name}


def test_wrong_password_reports_terminated(kamailio: Kamailio, clients: Any) -> None:
    user, _password = kamailio.new_user("fsyncbad")
    client, rec = clients(account(kamailio, user, "not-the-password"))
    assert client.DoRegister() is True
    assert client.wait_for_registration(10) is False
    assert rec.kinds("register")[-1] == "terminated"
    assert client.checkClientStatus().result(5) == "terminated"


def test_unreachable_server_reports_terminated(kamailio: Kamailio, clients: Any) -> None:
    user, password = kamailio.new_user("fsyncnowhere")
    info = account(kamailio, user, password)
    info["domain"] = "127.0.0.1:9"  # discard port: nothing listens
    client, rec = clients(info)
    assert client.DoRegister() is True
    assert client.wait_for_registration(10) is False
    assert rec.kinds("register") == ["terminated"]
    assert client.checkClientStatus().result(5) in ("websocket_connection_failed", "connecting")


def test_incoming_call_answer_hold_mute_dtmf_remote_hangup(
    kamailio: Kamailio, clients: Any
) -> None:
    callee_user, callee_pw = kamailio.new_user("fsyncee")
    caller_user, caller_pw = kamailio.new_user("fsyncer")
    callee, rec = clients(account(kamailio, callee_user, callee_pw))
    caller, caller_rec = clients(account(kamailio, caller_user, caller_pw))
    assert callee.DoRegister() and caller.DoRegister()
    assert callee.wait_for_registration(10) and caller.wait_for_registration(10)

    assert not callee.getCall()  # no call: an empty, falsy handle
    out = caller.MakeCall(callee_user, headers={"X-Exotel-Callsid": "sid-123"}).result(10)
    incoming = callee.wait_for_call(10)
    rec.wait("call", "ringing")
    assert callee.getCall() is incoming
    assert incoming.callDirection == "incoming"
    assert incoming["callState"] == "incoming"
    assert incoming.remoteId == caller_user
    assert incoming.callSid == "sid-123" == incoming["callSid"]
    assert incoming.callId and incoming.callId == out.callId
    assert any(k.lower() == "x-exotel-callsid" for k in incoming.sipHeaders)
    assert set(incoming) >= {"callId", "callState", "callDirection", "callStartTime",
                             "remoteDisplayName"}

    callee.getCall().Answer().result(15)
    rec.wait("call", "connected")
    out.wait_connected(10)
    assert incoming.callState == "connected"

    call = callee.getCall()
    call.Mute().result(5)
    call.Mute().result(5)  # idempotent: no second "muted"
    call.UnMute().result(5)
    call.MuteToggle().result(5)
    call.MuteToggle().result(5)
    call.Hold().result(10)
    assert incoming.call is not None and incoming.call.on_hold
    call.HoldToggle().result(10)
    assert not incoming.call.on_hold
    received: list[str] = []

    def on_phone_event(ev: Any) -> None:
        if isinstance(ev, DtmfReceived):
            received.append(ev.digit)

    assert caller.phone is not None
    caller.loop.call_soon_threadsafe(caller.phone.add_listener, on_phone_event)
    call.sendDTMF("1").result(5)
    call.sendDTMF("#").result(5)
    deadline = time.monotonic() + 5
    while len(received) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)

    out.Hangup().result(10)  # the far end hangs up: "terminated" here
    rec.wait("call", "terminated")
    caller_rec.wait("call", "callEnded")
    assert not callee.getCall()

    assert rec.kinds("call") == ANSWERED_REMOTE_HANGUP_CALLEE
    assert rec.kinds("session") == CALLEE_SESSION_FULL
    assert caller_rec.kinds("call") == CALLER_LOCAL_HANGUP
    assert all(obj is incoming for obj in rec.objects)  # one callObj per call
    # The hold re-INVITEs reached Kamailio over ws.
    invites = kamailio.wait_event("REQ", timeout=5, count=3, method="INVITE", proto="ws",
                                  callid=incoming.callId)
    assert len(invites) >= 3
    # Both digits went out as SIP INFO over ws and the caller saw them.
    infos = kamailio.wait_event("REQ", timeout=5, count=2, method="INFO", proto="ws",
                                callid=incoming.callId)
    assert len(infos) == 2
    assert received == ["1", "#"]


def test_reject_incoming_call(kamailio: Kamailio, clients: Any) -> None:
    callee_user, callee_pw = kamailio.new_user("fsyncrej")
    caller_user, caller_pw = kamailio.new_user("fsyncrejer")
    callee, rec = clients(account(kamailio, callee_user, callee_pw))
    caller, caller_rec = clients(account(kamailio, caller_user, caller_pw))
    assert callee.DoRegister() and caller.DoRegister()
    assert callee.wait_for_registration(10) and caller.wait_for_registration(10)

    out = caller.MakeCall(callee_user).result(10)
    callee.wait_for_call(10)
    callee.getCall().Hangup().result(10)  # ringing: 486 Busy Here
    rec.wait("call", "callEnded")
    caller_rec.wait("call", "terminated")
    assert out.call is not None and out.call.end_status == 486
    assert rec.kinds("call") == REJECTED_CALLEE


def test_out_of_order_calls_on_a_live_client(kamailio: Kamailio, clients: Any) -> None:
    user, password = kamailio.new_user("fsyncooo")
    client, rec = clients(account(kamailio, user, password))
    assert client.DoRegister()
    assert client.wait_for_registration(10)
    assert client.DoRegister() is False  # already registered: refused, logged

    # Hold with no call: a clear error on the future, never an exception or a hang.
    fut = client.getCall().Hold()
    with pytest.raises(InvalidState, match="no call"):
        fut.result(1)
    # initWebrtc again while registered: refused.
    assert client.initWebrtc(account(kamailio, user, password)) is False
    assert isinstance(client.last_error, InvalidState)

    # Waiting from inside a callback would deadlock: refused instead.
    errors: list[BaseException] = []

    def in_callback(status: str) -> None:
        try:
            client.wait_for_registration(1)
        except InvalidState as exc:
            errors.append(exc)

    client.checkClientStatus(in_callback).result(5)
    assert errors and "callback" in str(errors[0])

    # Dup-Reg: another client cannot take the same userName until UnRegister.
    other = ExotelWebClient()
    try:
        assert other.initWebrtc(account(kamailio, user, password)) is False
        assert "Dup-Reg" in str(other.last_error)
        assert client.UnRegister()
        assert client.wait_for_unregistration(10)
        assert other.initWebrtc(account(kamailio, user, password), media=MEDIA) is True
        assert client.DoRegister() is False  # now the other one holds the name
    finally:
        other.close()


def test_logger_callback_never_sees_the_password(kamailio: Kamailio, clients: Any) -> None:
    """A sentinel password through a real digest REGISTER/un-REGISTER at DEBUG."""
    import re

    user = f"fsynclog{time.monotonic_ns() % 100000}"
    sentinel = "S3ntinel-Pa55word-xyzzy"
    kamailio.add_user(user, sentinel)
    records: list[tuple[str, str, list[Any]]] = []
    lock = threading.Lock()

    def cb(kind: str, message: str, args: list[Any]) -> None:
        with lock:
            records.append((kind, message, args))

    ExotelWebClient.registerLoggerCallback(cb)
    try:
        client, rec = clients(account(kamailio, user, sentinel))
        assert client.DoRegister()
        assert client.wait_for_registration(10)
        assert client.UnRegister()
        assert client.wait_for_unregistration(10)
    finally:
        ExotelWebClient.registerLoggerCallback(None)
    with lock:
        text = "\n".join(f"{k} {m} {a}" for k, m, a in records)
        kinds = {k for k, _, _ in records}
    # The DEBUG trace of the digest exchange was there (the SDK logs message summaries,
    # not full wire dumps; the facade's redaction of those is unit-tested in test_facade.py).
    assert "REGISTER" in text and "401" in text
    assert sentinel not in text
    assert not re.search(r'response\s*=\s*"?[0-9a-f]{32}', text)
    assert {"log", "info"} <= kinds
