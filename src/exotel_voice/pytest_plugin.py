"""pytest plugin: an Exotel-like sandbox for your test suite (``exotel_sandbox`` fixture).

Loaded automatically through the ``pytest11`` entry point when exotel-voice is installed
(or with ``-p exotel_voice.pytest_plugin``). Example::

    async def test_agent_app_answers(exotel_sandbox):
        app = MyAgentApp(exotel_sandbox.sip_account_info("agent"))   # your code, registers
        await exotel_sandbox.wait_registered("agent")
        sid = await exotel_sandbox.connect("agent", "echo")          # as POST Calls/connect
        ...                                                          # your app answers
        assert await exotel_sandbox.wait_call_ended(sid) == "completed"

Fixtures:

* ``exotel_sandbox_config`` - the :class:`~exotel_voice.sandbox.SandboxConfig` to use:
  free ports on 127.0.0.1, user ``agent`` with password ``agent-password``, REST key
  ``test-key`` / token ``test-token``. Override it in your ``conftest.py`` to change users,
  the tone pitch and so on.
* ``exotel_sandbox`` - a running :class:`~exotel_voice.sandbox.threaded.SandboxThread`
  (one per test), closed afterwards.

The sandbox runs on its own thread and event loop, so it works with synchronous tests and
with any asyncio test runner or loop scope. Heavy imports happen only when a fixture is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest


if TYPE_CHECKING:
    from .sandbox import SandboxConfig
    from .sandbox.threaded import SandboxThread

__all__ = ["exotel_sandbox", "exotel_sandbox_config"]


@pytest.fixture
def exotel_sandbox_config() -> SandboxConfig:
    """The sandbox's configuration; override this fixture to customise it."""
    from .sandbox import SandboxConfig

    return SandboxConfig(
        ws_port=0,
        wss_port=0,
        http_port=0,
        users={"agent": "agent-password"},
        api_key="test-key",
        api_token="test-token",
    )


@pytest.fixture
def exotel_sandbox(exotel_sandbox_config: SandboxConfig) -> Iterator[SandboxThread]:
    """A running sandbox (SIP ws/wss + REST on 127.0.0.1), stopped after the test."""
    from .sandbox.threaded import SandboxThread

    with SandboxThread(exotel_sandbox_config) as sandbox:
        yield sandbox
