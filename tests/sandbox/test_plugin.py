"""The pytest plugin (exotel_voice.pytest_plugin): examples/sandbox_pytest passes when run
as a user's own suite would be, and the fixture works in a synchronous test."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import LOOPBACK_MEDIA


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sandbox_pytest"


def _plugin_args() -> list[str]:
    installed = any(
        ep.name == "exotel_voice" for ep in importlib.metadata.entry_points(group="pytest11")
    )
    # Without the entry point (not yet installed), load the plugin by name, as -p allows.
    return [] if installed else ["-p", "exotel_voice.pytest_plugin"]


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(120)
def test_the_example_suite_passes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *_plugin_args(),
         str(EXAMPLE)],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=110,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout, result.stdout


def test_sandbox_thread_in_a_synchronous_test() -> None:
    """What the ``exotel_sandbox`` fixture yields, used from plain synchronous code."""
    from exotel_voice.sandbox import SandboxConfig
    from exotel_voice.sandbox.threaded import SandboxThread

    config = SandboxConfig(ws_port=0, wss_port=0, http_port=0, users={"agent": "pw"})
    with SandboxThread(config) as sandbox:
        assert sandbox.ws_url.startswith("ws://127.0.0.1:")
        assert sandbox.users == {"agent": "pw"}
        info = sandbox.sip_account_info("agent")
        assert info["secret"] == "pw" and info["wsUrl"] == sandbox.ws_url
        with pytest.raises(ValueError, match="nobody"):
            sandbox.run(lambda sb: _connect(sb, "nobody"))
        assert sandbox.last_call() is None
    with pytest.raises(Exception, match="not running"):
        _ = sandbox.ws_url


async def _connect(sb: object, to: str) -> None:
    sb.connect("agent", to)  # type: ignore[attr-defined]
