"""The sandbox registrar with the SDK's Phone: digest over ws, unregister, no secrets in logs.
Signalling only (no media), so these run anywhere."""

from __future__ import annotations

import logging
import re

import pytest

from exotel_voice.client import Phone, RegistrationState
from exotel_voice.config import AccountConfig
from exotel_voice.sandbox import Sandbox


async def test_register_unregister_and_no_secret_in_debug_logs(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password = sandbox.users["agent"]
    account = AccountConfig.from_sip_account_info(sandbox.sip_account_info("agent"))
    async with Phone(account) as phone:
        event = await phone.register(timeout=10)
        assert event.state is RegistrationState.REGISTERED
        binding = sandbox.binding("agent")
        assert binding is not None and not binding.flow.secure
        await phone.unregister()
    assert sandbox.binding("agent") is None
    assert password not in caplog.text
    assert not re.search(r'response="[0-9a-f]{32}"', caplog.text)
    assert "agent registered" in caplog.text


async def test_register_over_wss_trusting_the_generated_certificate(sandbox: Sandbox) -> None:
    account = AccountConfig.from_sip_account_info(sandbox.sip_account_info("agent", secure=True))
    assert account.tls.ca_file == sandbox.ca_file
    async with Phone(account) as phone:
        await phone.register(timeout=10)
        binding = await sandbox.wait_registered("agent", timeout=5)
        assert binding.flow.secure


async def test_wait_registered_times_out_for_an_absent_user(sandbox: Sandbox) -> None:
    with pytest.raises(TimeoutError):
        await sandbox.wait_registered("bob", timeout=0.2)
