"""Registration against a real Kamailio (ws and wss), as a user of the SDK observes it.

Sans-I/O unit tests of the same state machine: tests/sip/test_registration.py.
Silent and hostile servers (test doubles): tests/client/test_phone_resilience.py.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from exotel_voice.client import (
    Phone,
    PhoneStatus,
    RegistrationState,
    RegistrationStateChanged,
    TransportStateChanged,
)
from exotel_voice.config import AccountConfig, ReconnectPolicy
from exotel_voice.exceptions import AuthenticationError, MediaError
from exotel_voice.media import IceConfig, MediaConfig
from exotel_voice.sip import auth as sip_auth
from tests.rig.certs import Certs
from tests.rig.fixtures import require_rig
from tests.rig.kamailio import Kamailio
from tests.rig.rtpengine import Rtpengine


pytestmark = pytest.mark.interop

MEDIA = MediaConfig(ice=IceConfig(host_addresses=["127.0.0.1"]))
FAST_RECONNECT = ReconnectPolicy(initial_delay=0.2, max_delay=1.0, jitter=0.1)


def account(kamailio: Any, user: str, password: str, *, secure: bool = False,
            **overrides: Any) -> AccountConfig:
    info = kamailio.info
    sip_account_info = {
        "userName": user,
        "authUser": user,
        "sipdomain": info.domain,
        "secret": password,
        "wsUrl": info.wss_url if secure else info.ws_url,
    }
    if secure:
        sip_account_info["caFile"] = str(info.ca_file)
    return AccountConfig.from_sip_account_info(sip_account_info, **overrides)


def record(phone: Phone) -> list[str]:
    """The guide's RegisterEventCallBack states, in order."""
    states: list[str] = []

    def on_event(event: object) -> None:
        if isinstance(event, RegistrationStateChanged):
            states.append(event.state)

    phone.add_listener(on_event)
    return states


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
async def test_register_then_unregister(kamailio: Any, secure: bool) -> None:
    user, password = kamailio.new_user("reg")
    cfg = account(kamailio, user, password, secure=secure)
    phone = Phone(cfg, media=MEDIA)
    states = record(phone)
    assert phone.status() is PhoneStatus.NOT_STARTED

    event = await phone.register(timeout=10)
    assert (event.state, event.status, event.expires) == (RegistrationState.REGISTERED, 200, 300)
    assert phone.status() == "registered"
    (binding,) = await asyncio.to_thread(kamailio.wait_registered, user)
    assert binding["Instance"] == f"<urn:uuid:{cfg.instance_id}>"
    assert str(binding["Reg-Id"]) == "1"
    assert f";transport={'wss' if secure else 'ws'}" in binding["Address"]
    # The first REGISTER is challenged, the second carries digest credentials.
    registers = kamailio.events("REQ", method="REGISTER", **{"from": cfg.aor})
    assert len(registers) >= 2 and registers[0].get("proto") == ("wss" if secure else "ws")
    assert kamailio.events("AUTHED", method="REGISTER", user=user)

    await phone.unregister(timeout=5)
    assert kamailio.registered_contacts(user) == []
    assert states == [
        RegistrationState.REGISTERING, RegistrationState.REGISTERING, RegistrationState.REGISTERED,
        RegistrationState.UNREGISTERING,
        RegistrationState.UNREGISTERED,
    ]
    assert phone.status() == "unregistered"


async def test_refresh_is_seen_on_the_server(kamailio: Any) -> None:
    user, password = kamailio.new_user("refresh")
    # Kamailio's min_expires is 10 s; refreshing at 30% of it makes the test take ~3 s.
    cfg = account(kamailio, user, password, register_expires=10, register_refresh=0.3)
    async with Phone(cfg, media=MEDIA) as phone:
        states = record(phone)
        await phone.register(timeout=10)
        first = len(kamailio.events("SAVED", aor=user))
        await wait_until(lambda: states.count("registered") >= 1, timeout=8)
        await asyncio.to_thread(kamailio.wait_event, "SAVED", 8.0, first + 1, aor=user)
        assert phone.status() == "registered"
        saved = kamailio.events("SAVED", aor=user)
        assert len(saved) >= first + 1 and saved[-1].get("expires") == "10"
        await phone.unregister()


async def test_two_accounts_in_one_process(kamailio: Any) -> None:
    (u1, p1), (u2, p2) = kamailio.new_user("two"), kamailio.new_user("two")
    async with Phone(account(kamailio, u1, p1), media=MEDIA) as a, Phone(
        account(kamailio, u2, p2, secure=True), media=MEDIA
    ) as b:
        await asyncio.gather(a.register(timeout=10), b.register(timeout=10))
        assert a.status() == b.status() == "registered"
        assert await asyncio.to_thread(kamailio.wait_registered, u1)
        assert await asyncio.to_thread(kamailio.wait_registered, u2)
        await a.unregister()
        assert kamailio.registered_contacts(u1) == []
        assert kamailio.registered_contacts(u2), "unregistering one phone leaves the other"
        assert b.status() == "registered"
        await b.unregister()


async def test_wrong_password_is_terminated_with_401(kamailio: Any) -> None:
    user, _ = kamailio.new_user("badpw")
    async with Phone(account(kamailio, user, "not-the-password"), media=MEDIA) as phone:
        events: list[RegistrationStateChanged] = []
        phone.add_listener(
            lambda e: events.append(e) if isinstance(e, RegistrationStateChanged) else None
        )
        with pytest.raises(AuthenticationError) as err:
            await phone.register(timeout=10)
        assert err.value.status == 401
        assert events[-1].state is RegistrationState.FAILED and events[-1].status == 401
        assert events[-1].retry_in is None, "a rejected password is not retried"
        assert phone.status() is PhoneStatus.FAILED
        assert kamailio.registered_contacts(user) == []


async def test_kamailio_killed_then_back_reregisters_without_the_app(fresh_kamailio: Any) -> None:
    k = fresh_kamailio
    user, password = k.new_user("kill")
    cfg = account(k, user, password, reconnect=FAST_RECONNECT)
    async with Phone(cfg, media=MEDIA) as phone:
        states = record(phone)
        transport: list[bool] = []
        phone.add_listener(
            lambda e: transport.append(e.connected)
            if isinstance(e, TransportStateChanged)
            else None
        )
        await phone.register(timeout=10)
        await asyncio.to_thread(k.kill)
        await wait_until(lambda: "unregistered" in states, timeout=10)
        assert transport[-1] is False
        assert phone.status() in ("disconnected", "connecting")
        assert not phone.registered
        await asyncio.sleep(0.5)  # a few reconnect attempts fail while it is down
        await asyncio.to_thread(k.start)
        await wait_until(lambda: states[-1] == "registered", timeout=15)
        assert phone.status() == "registered"
        assert await asyncio.to_thread(k.wait_registered, user)
        assert states.index("unregistered") < len(states) - 1
        await phone.unregister()


async def test_client_status_in_each_state(kamailio: Any, tmp_path: Any) -> None:
    from exotel_voice.media import WavFileSource

    user, password = kamailio.new_user("status")
    # media_permission_denied: the configured input source cannot be opened.
    missing = tmp_path / "no-such-microphone.wav"
    denied = Phone(account(kamailio, user, password), media=MEDIA,
                   source=lambda: WavFileSource(missing))
    await denied.start()
    assert denied.status() is PhoneStatus.MEDIA_UNAVAILABLE
    await denied.close()
    with pytest.raises((MediaError, OSError, ValueError)):
        WavFileSource(missing)

    # websocket_connection_failed: nothing listens there.
    cfg = account(kamailio, user, password).with_changes(
        ws_url="ws://127.0.0.1:9/ws", reconnect=FAST_RECONNECT
    )
    nowhere = Phone(cfg, media=MEDIA)
    await nowhere.start()
    assert nowhere.status() == "connecting"
    await wait_until(lambda: nowhere.status() is PhoneStatus.CONNECTION_FAILED, timeout=5)
    await nowhere.close()

    # unregistered (connected, never registered) -> initial -> registered.
    phone = Phone(account(kamailio, user, password), media=MEDIA)
    seen: list[PhoneStatus] = []
    phone.add_listener(lambda e: seen.append(phone.status())
                       if isinstance(e, RegistrationStateChanged)
                       and e.state is RegistrationState.REGISTERING
                       else None)
    await phone.start()
    await wait_until(lambda: phone.status() == "unregistered", timeout=5)
    await phone.register(timeout=10)
    assert seen[0] is PhoneStatus.REGISTERING
    assert phone.status() == "registered"
    await phone.unregister()
    assert phone.status() == "unregistered"


async def test_secrets_never_reach_the_logs(
    kamailio: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, _ = kamailio.new_user("secret")
    password = "Sentinel.Pw-31337"
    kamailio.add_user(user, password)
    issued: list[str] = []
    real_respond = sip_auth.DigestAuth.respond

    def spy(self: sip_auth.DigestAuth, request: Any, response: Any) -> tuple[str, str]:
        name, value = real_respond(self, request, response)
        issued.append(value)
        return name, value

    monkeypatch.setattr(sip_auth.DigestAuth, "respond", spy)
    with caplog.at_level(logging.DEBUG):
        phone = Phone(account(kamailio, user, password), media=MEDIA)
        logging.getLogger("exotel_voice.test").debug("phone %r config %r", phone, phone.account)
        await phone.register(timeout=10)
        await phone.unregister()
    responses = [m.group(1) for v in issued for m in [re.search(r'response="([0-9a-f]+)"', v)]
                 if m]
    assert responses, "the digest exchange happened"
    text = caplog.text
    assert "REGISTER" in text and "[secure]" not in password
    assert password not in text
    for response in responses:
        assert response not in text


# -- Kamailio's stock digest settings: no qop, nonces that expire, a new secret per start ------

#: The nonce lifetime of the stock-settings server: short, so expiries happen within a test.
SHORT_NONCE = 2


@pytest.fixture
def stock_kamailio(
    tmp_path: Path, rig_certs: Certs, rtpengine: Rtpengine
) -> Iterator[Kamailio]:
    """A private Kamailio challenging as a stock install does (no ``qop``, never
    ``stale=true``) with nonces that live :data:`SHORT_NONCE` seconds."""
    require_rig("kamailio")
    server = Kamailio(tmp_path / "kamailio", rtpengine_ng_port=rtpengine.ng_port,
                      certs=rig_certs, qop=False, nonce_expire=SHORT_NONCE)
    server.start()
    try:
        yield server
    finally:
        server.stop()


#: One line per endurance test that passed, printed at the end of the run (conftest.py).
ENDURANCE: list[str] = []


def spy_challenges(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The WWW-Authenticate values the SDK answers, as received."""
    seen: list[str] = []
    real_respond_all = sip_auth.DigestAuth.respond_all

    def spy(self: sip_auth.DigestAuth, request: Any, response: Any) -> list[tuple[str, str]]:
        seen.extend(response.headers.get_all("WWW-Authenticate"))
        return real_respond_all(self, request, response)

    monkeypatch.setattr(sip_auth.DigestAuth, "respond_all", spy)
    return seen


async def test_stays_registered_across_nonce_expiries_without_qop(
    stock_kamailio: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    k = stock_kamailio
    user, password = k.new_user("nonce")
    challenges = spy_challenges(monkeypatch)
    # Refresh every 3 s (30% of Kamailio's 10 s minimum): each refresh carries a nonce that
    # expired a second earlier, and Kamailio answers it with a fresh 401 and a new nonce.
    cfg = account(k, user, password, register_expires=10, register_refresh=0.3)
    expiries = 4
    async with Phone(cfg, media=MEDIA) as phone:
        states = record(phone)
        await phone.register(timeout=10)
        await wait_until(lambda: states.count("registered") >= 1 + expiries
                         or RegistrationState.FAILED in states, timeout=3.5 * expiries + 5)
        assert RegistrationState.FAILED not in states, states
        assert phone.status() == "registered"
        assert await asyncio.to_thread(k.wait_registered, user)
        # Every refresh met a new nonce: challenged, answered, accepted.
        challenged = k.events("CHALLENGE", method="REGISTER", user=user)
        assert len(challenged) >= 1 + expiries
        assert len(set(challenges)) >= 1 + expiries, "a new nonce each time"
        assert all("qop" not in c and "stale" not in c for c in challenges), challenges
        await phone.unregister()
    ENDURANCE.append(f"nonce expiries (stock Kamailio, no qop): {len(challenged) - 1} "
                     f"crossed, {states.count('registered')} registrations, 0 terminated")


async def test_ten_kamailio_restarts_without_the_app(stock_kamailio: Any) -> None:
    """SIGKILL and restart on the same ports: the phone comes back registered by itself."""
    k = stock_kamailio
    user, password = k.new_user("restart")
    cfg = account(k, user, password, reconnect=FAST_RECONNECT)
    cycles = 10
    recovered = 0
    started = time.monotonic()
    async with Phone(cfg, media=MEDIA) as phone:
        states = record(phone)
        await phone.register(timeout=10)
        for cycle in range(cycles):
            lost = states.count("unregistered")
            registered = states.count("registered")
            await asyncio.to_thread(k.kill)
            await wait_until(lambda n=lost: states.count("unregistered") > n, timeout=10)
            assert not phone.registered
            await asyncio.to_thread(k.start)
            # A new secret signs the nonces now: the phone's cached one is unknown to it.
            await wait_until(lambda n=registered: states.count("registered") > n
                             or RegistrationState.FAILED in states, timeout=15)
            assert RegistrationState.FAILED not in states, f"cycle {cycle + 1}: {states[-6:]}"
            assert phone.status() == "registered"
            assert await asyncio.to_thread(k.wait_registered, user)
            recovered += 1
        await phone.unregister()
    # Each comeback met a challenge: the REGISTER carried a nonce signed by the old secret.
    assert len(k.events("CHALLENGE", method="REGISTER", user=user)) >= 1 + cycles
    assert recovered == cycles
    ENDURANCE.append(f"kamailio restarts: {recovered}/{cycles} recovered without application "
                     f"code in {time.monotonic() - started:.1f} s")


async def test_wrong_password_fails_fast_without_qop(stock_kamailio: Any) -> None:
    k = stock_kamailio
    user, _ = k.new_user("stockbadpw")
    async with Phone(account(k, user, "not-the-password"), media=MEDIA) as phone:
        states = record(phone)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(AuthenticationError) as err:
            await phone.register(timeout=10)
        assert loop.time() - started < 3.0
        assert err.value.status == 401 and states[-1] is RegistrationState.FAILED
        await asyncio.sleep(0.5)
        # The answer to the first nonce, and at most one answer to a new one.
        registers = k.events("REQ", method="REGISTER", **{"from": phone.account.aor})
        assert 2 <= len(registers) <= 3, registers
        assert phone.status() is PhoneStatus.FAILED
        assert k.registered_contacts(user) == []
