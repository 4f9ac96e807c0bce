"""Fixtures for the sandbox tests: a sandbox on free ports, and SDK phones registered to it.

Tests that run real media (aiortc) are marked ``media`` and ``LOOPBACK_MEDIA``: every session
stays on 127.0.0.1, so they run as any user, without root or the network namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest_asyncio

from exotel_voice.client import Call, Phone
from exotel_voice.config import AccountConfig, TlsConfig
from exotel_voice.media import IceConfig, MediaConfig, ToneSource
from exotel_voice.sandbox import Sandbox, SandboxConfig

# The skip marks, one per reason (tests/rig/marks.py, docs/test-rig.md): real media on
# 127.0.0.1 needs neither root nor the namespace (LOOPBACK_MEDIA).
from tests.rig.marks import (
    LOOPBACK_MEDIA as LOOPBACK_MEDIA,
    NEEDS_NETNS as NEEDS_NETNS,
    NEEDS_NETNS_ROOT as NEEDS_NETNS_ROOT,
)


PASSWORDS = {"agent": "agent-secret-1", "bob": "bob-secret-2"}
MEDIA = MediaConfig(ice=IceConfig(host_addresses=["127.0.0.1"], gather_timeout=1.0))


def sandbox_config(**changes: Any) -> SandboxConfig:
    config = SandboxConfig(
        ws_port=0, wss_port=0, http_port=0, users=dict(PASSWORDS), api_key="key1",
        api_token="token1",
    )
    for name, value in changes.items():
        setattr(config, name, value)
    return config


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(sandbox_config()) as sb:
        yield sb


PhoneFactory = Callable[..., Any]


@pytest_asyncio.fixture
async def phones(sandbox: Sandbox) -> AsyncIterator[PhoneFactory]:
    """``await phones("agent", tone_hz=1000, secure=False)``: a registered SDK phone."""
    made: list[Phone] = []

    async def make(user: str = "agent", *, tone_hz: float | None = None,
                   secure: bool = False) -> Phone:
        info = sandbox.sip_account_info(user, secure=secure)
        account = AccountConfig.from_sip_account_info(info)
        if secure:
            account = account.with_changes(tls=TlsConfig(ca_file=sandbox.ca_file))
        source = (lambda: ToneSource(tone_hz, 0.5)) if tone_hz else None
        phone = Phone(account, media=MEDIA, source=source)
        made.append(phone)
        await phone.register(timeout=10)
        return phone

    yield make
    for phone in made:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(phone.close(), 5)


async def listen(call: Call, seconds: float, *, skip: float = 0.3) -> np.ndarray[Any, Any]:
    """Received audio at 16 kHz for ``seconds`` after ``skip``; silence if nothing came."""
    loop = asyncio.get_running_loop()
    start = loop.time() + skip
    frames: list[np.ndarray[Any, Any]] = []
    try:
        async with asyncio.timeout_at(start + seconds + 0.5):
            async for frame in call.received_frames(sample_rate=16000):
                if loop.time() >= start:
                    frames.append(frame)
                    if len(frames) >= int(seconds * 50):
                        break
    except TimeoutError:
        pass
    return np.concatenate(frames) if frames else np.zeros(int(seconds * 16000), np.int16)
