"""A network change in the guide's face: ``ExotelWebClient``'s SessionCallback reports the ICE
restart as a browser does (``ice_connection_state_checking``), then the ICE state it ends
in, never leaving the application at "checking"; the call stays connected.

The client calls the sandbox's ``echo``; the change of the host's addresses is handed to
the client's phone as its address watcher would hand it (on loopback the restart gathers
127.0.0.1 again, with new ICE credentials). Real media on 127.0.0.1:
``scripts/in-netns.sh .venv/bin/python -m pytest -q tests/client/test_facade_ice_restart.py``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from exotel_voice import ExotelWebClient, IceRestarted, PhoneEvent
from exotel_voice.media import AddressChange, _aiortc_compat as compat
from exotel_voice.sandbox.threaded import SandboxThread
from tests.client.test_facade_guide import Make, Recorder, clients, sandbox
from tests.sandbox.conftest import LOOPBACK_MEDIA


__all__ = ["clients", "sandbox"]  # fixtures

pytestmark = [pytest.mark.media, LOOPBACK_MEDIA, pytest.mark.timeout(60)]

CHANGE = AddressChange(frozenset({"127.0.0.1"}), frozenset(), frozenset({"127.0.0.1"}))


def ice_states(rec: Recorder) -> list[str]:
    return [s for s in rec.kinds("session") if s.startswith("ice_connection_state_")]


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def restart(client: ExotelWebClient, rec: Recorder) -> tuple[list[str], IceRestarted]:
    """Hand the phone a network change once ICE is up; the SessionCallback ICE strings it
    gave, and the asyncio face's outcome."""
    wait_until(lambda: "ice_connection_state_completed" in ice_states(rec), 15, "ICE up")
    outcomes: list[IceRestarted] = []
    got = threading.Event()

    def listen(event: PhoneEvent) -> None:
        if isinstance(event, IceRestarted):
            outcomes.append(event)
            got.set()

    before = len(ice_states(rec))
    phone = client.phone
    assert phone is not None
    client.loop.call_soon_threadsafe(phone.add_listener, listen)
    client.loop.call_soon_threadsafe(phone._on_network_change, CHANGE)
    assert got.wait(40), "no IceRestarted"
    wait_until(lambda: len(ice_states(rec)) >= before + 2, 5, "the restart's strings")
    return ice_states(rec)[before:], outcomes[0]


def test_an_ice_restart_is_checking_then_completed(clients: Make) -> None:
    if not compat.FEATURES.ice_restart:
        pytest.skip("ICE restart needs aiortc internals")
    client, rec = clients("agent")
    call = client.MakeCall("echo").result(10)
    call.wait_connected(10)
    states, outcome = restart(client, rec)
    assert outcome.ok, outcome.reason
    assert states == ["ice_connection_state_checking", "ice_connection_state_completed"]
    assert call.callState == "connected"
    call.Hangup().result(10)
    rec.wait("call", "callEnded")


def test_a_failed_ice_restart_reports_the_state_the_call_stayed_in(
    clients: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    import exotel_voice.media.session as session

    monkeypatch.setattr(session, "restart_available", lambda: False)  # as on the fallback path
    client, rec = clients("agent")
    call = client.MakeCall("echo").result(10)
    call.wait_connected(10)
    states, outcome = restart(client, rec)
    assert not outcome.ok and "unavailable" in outcome.reason
    # Not the browser's "failed": the call goes on on its pair, and says so.
    assert states == ["ice_connection_state_checking", "ice_connection_state_completed"]
    assert call.callState == "connected"
    call.Hangup().result(10)
    rec.wait("call", "callEnded")


_ = SandboxThread  # the fixtures' type
