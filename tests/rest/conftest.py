"""Fixtures for the REST client tests: a sandbox, registered phones, a status-callback sink.

The sandbox's REST emulation listens on 127.0.0.1 only; tests that ring a phone (aiortc
media on 127.0.0.1) are marked ``LOOPBACK_MEDIA``: no root or namespace needed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs

import pytest_asyncio

from exotel_voice import AccountConfig, IceConfig, MediaConfig, Phone
from exotel_voice.sandbox import Sandbox, SandboxConfig

# The skip marks, one per reason (tests/rig/marks.py, docs/test-rig.md): real media on
# 127.0.0.1 needs neither root nor the namespace (LOOPBACK_MEDIA).
from tests.rig.marks import (
    LOOPBACK_MEDIA as LOOPBACK_MEDIA,
    NEEDS_NETNS as NEEDS_NETNS,
    NEEDS_NETNS_ROOT as NEEDS_NETNS_ROOT,
)


KEY, TOKEN = "rest-key", "rest-token-5a4b3c2d1e"
MEDIA = MediaConfig(ice=IceConfig(host_addresses=["127.0.0.1"], gather_timeout=1.0))


def config() -> SandboxConfig:
    return SandboxConfig(ws_port=0, wss_port=0, http_port=0, account_sid="acme",
                         users={"agent": "agent-pw-1"}, api_key=KEY, api_token=TOKEN)


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(config()) as sb:
        yield sb


@pytest_asyncio.fixture
async def phone(sandbox: Sandbox) -> AsyncIterator[Phone]:
    account = AccountConfig.from_sip_account_info(sandbox.sip_account_info("agent"))
    p = Phone(account, media=MEDIA)
    await p.register(timeout=10)
    yield p
    with contextlib.suppress(Exception):
        await asyncio.wait_for(p.close(), 5)


class CallbackSink:
    """A tiny HTTP server on 127.0.0.1 that keeps each POSTed form (Exotel's callbacks)."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[dict[str, str], bytes, str]] = asyncio.Queue()
        self.url = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/exotel/status"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        await self.received.put((form, body, headers.get("content-type", "")))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest_asyncio.fixture
async def callbacks() -> AsyncIterator[CallbackSink]:
    sink = CallbackSink()
    await sink.start()
    yield sink
    await sink.close()


Factory = Callable[..., Any]
