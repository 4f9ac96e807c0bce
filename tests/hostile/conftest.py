"""Fixtures of the hostile-server suite, and the run's tallies in pytest's terminal summary.

The sandbox runs in a child process (``sandbox_proc``) for the whole session; each test gets
its own :class:`~.server.HostileServer` relaying to it and one registered :class:`Phone`.
Run: ``scripts/in-netns.sh .venv/bin/python -m pytest -q tests/hostile`` (real media).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from exotel_voice.client import Phone
from exotel_voice.config import AccountConfig, ReconnectPolicy
from exotel_voice.media import IceConfig, MediaConfig, ToneSource

from .checks import TALLY, Observer
from .harness import Ctx
from .server import HostileServer


PASSWORD = "hostile-suite-password-1"
ROOT = Path(__file__).resolve().parents[2]
MEDIA = MediaConfig(ice=IceConfig(host_addresses=["127.0.0.1"], gather_timeout=1.0))


@pytest.fixture(scope="session")
def sandbox_info() -> Iterator[dict[str, Any]]:
    """The ``sipAccountInfo`` of user ``agent`` on a sandbox in a child process."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.hostile.sandbox_proc", PASSWORD],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None and proc.stdin is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        pytest.fail("the sandbox process did not start")
    try:
        yield json.loads(line)
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()


@pytest_asyncio.fixture
async def hostile(sandbox_info: dict[str, Any]) -> AsyncIterator[HostileServer]:
    server = HostileServer(sandbox_info["wsUrl"])
    await server.start()
    yield server
    await server.close()


@pytest_asyncio.fixture
async def phone(sandbox_info: dict[str, Any], hostile: HostileServer) -> AsyncIterator[Phone]:
    """A phone registered through the hostile server (relaying to the sandbox)."""
    account = AccountConfig.from_sip_account_info(
        sandbox_info,
        ws_url=hostile.url,
        register_timeout=2.0,
        reconnect=ReconnectPolicy(initial_delay=0.1, max_delay=1.0, jitter=0.0),
    )
    made = Phone(account, media=MEDIA, source=lambda: ToneSource(700, 0.3), ring_timeout=20)
    await made.register(timeout=10)
    yield made
    with contextlib.suppress(Exception):
        await asyncio.wait_for(made.close(), 10)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY.classes:
        return
    tr = terminalreporter
    tr.section("hostile server")
    for name, outcome in TALLY.classes.items():
        tr.write_line(f"{name:<22} {outcome}")
    tr.write_line(
        f"inputs tried {TALLY.inputs}, crashes {TALLY.crashes}, hangs {TALLY.hangs}, "
        f"stuck calls {TALLY.stuck}, leaks {TALLY.leaks}"
    )


@pytest_asyncio.fixture
async def ctx(phone: Phone, hostile: HostileServer) -> AsyncIterator[Ctx]:
    """The attack context: the registered phone, the server, and the crash observer."""
    observer = Observer()
    observer.install()
    try:
        yield Ctx(phone, hostile, observer)
    finally:
        observer.uninstall()
