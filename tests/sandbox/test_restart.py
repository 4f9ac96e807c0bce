"""A registered Phone across a sandbox restart: it registers again, and places calls, with no
application code.

The restarted sandbox is a new :class:`Sandbox` on the same port with the same users: a new
digest secret, so the credentials the phone kept carry a nonce it never issued. That nonce
is challenged afresh (``401``/``407`` with ``stale=true``), as Kamailio does, never refused
as a wrong password.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from exotel_voice.client import (
    CallEnded,
    Phone,
    PhoneEvent,
    RegistrationState,
    RegistrationStateChanged,
)
from exotel_voice.config import AccountConfig, ReconnectPolicy
from exotel_voice.sandbox import Sandbox

from .conftest import MEDIA, PASSWORDS, sandbox_config


pytestmark = pytest.mark.timeout(40)


async def restarted(old: Sandbox, *, crash: bool = False) -> Sandbox:
    """Stop ``old`` (gracefully, or as a killed process) and start a new one on its port."""
    port = old.ports["ws"]
    await (old.crash() if crash else old.close())
    new = Sandbox(sandbox_config(ws_port=port, wss_port=None, http_port=None))
    await new.start()
    return new


@pytest.fixture
async def setup() -> AsyncIterator[tuple[list[Sandbox], Phone, list[PhoneEvent]]]:
    first = Sandbox(sandbox_config(wss_port=None, http_port=None))
    await first.start()
    account = AccountConfig.from_sip_account_info(
        first.sip_account_info("agent"),
        reconnect=ReconnectPolicy(initial_delay=0.05, max_delay=0.2),
    )
    phone = Phone(account, media=MEDIA)
    events: list[PhoneEvent] = []
    phone.add_listener(events.append)
    await phone.register(timeout=10)
    sandboxes = [first]
    yield sandboxes, phone, events
    await asyncio.wait_for(phone.close(), 5)
    for sandbox in sandboxes:
        await sandbox.close()


@pytest.mark.parametrize("crash", [False, True], ids=["closed", "killed"])
async def test_a_registered_phone_registers_again_after_a_restart(
    setup: tuple[list[Sandbox], Phone, list[PhoneEvent]], crash: bool
) -> None:
    sandboxes, phone, events = setup
    assert PASSWORDS["agent"]  # the same users on both runs
    events.clear()
    sandbox = await restarted(sandboxes[0], crash=crash)
    sandboxes.append(sandbox)
    binding = await sandbox.wait_registered("agent", timeout=10)
    assert binding is not None
    await asyncio.sleep(0.1)  # the 200 reaches the phone
    assert phone.registration_state is RegistrationState.REGISTERED
    states = [e.state for e in events if isinstance(e, RegistrationStateChanged)]
    assert RegistrationState.FAILED not in states, states
    assert states[-1] is RegistrationState.REGISTERED


async def test_a_call_after_a_restart_passes_the_new_proxy_challenge(
    setup: tuple[list[Sandbox], Phone, list[PhoneEvent]],
) -> None:
    sandboxes, phone, events = setup
    # A first call earns INVITE credentials, which the next INVITE carries unasked.
    first = await phone.dial("busy")
    await first.wait_ended(10)
    assert first.end_status == 486
    sandbox = await restarted(sandboxes[0])
    sandboxes.append(sandbox)
    await sandbox.wait_registered("agent", timeout=10)
    await asyncio.sleep(0.1)
    call = await phone.dial("busy")
    await call.wait_ended(10)
    ended = [e for e in events if isinstance(e, CallEnded) and e.call is call]
    # 486 from the number itself: the INVITE got past the proxy's challenge (not a 403).
    assert call.end_status == 486 and ended and ended[0].status == 486, call.end_reason
