"""The guide examples' account (examples/_common.py): the EXOTEL_* variables as
AccountConfig.from_env reads them, the sandbox's defaults, and the options over both."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from exotel_voice.config import AccountConfig


ENV_VARIABLES = AccountConfig.ENV_VARIABLES
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SECRET = "ex-env-secret-5d1c"


@pytest.fixture
def common(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """examples/_common.py, with no EXOTEL_* variable in the environment."""
    for name in [k for k in os.environ if k.startswith("EXOTEL_")]:
        monkeypatch.delenv(name)
    spec = importlib.util.spec_from_file_location("examples_common", EXAMPLES / "_common.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_defaults_are_the_sandbox_on_this_machine(
        common: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXOTEL_SECRET", SECRET)
    _, info, options = common.parse(None, [])
    assert info == {
        "userName": "agent", "sipdomain": "sandbox.exotel.test", "domain": "127.0.0.1:8088",
        "port": "8088", "security": "ws", "displayname": "agent", "secret": SECRET,
    }
    assert AccountConfig.from_sip_account_info(info).ws_url == "ws://127.0.0.1:8088/wss"
    assert options["media"].ice.host_addresses == ["127.0.0.1"]


def test_the_variables_are_read_as_from_env_reads_them(
        common: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "EXOTEL_USERNAME": "agent1", "EXOTEL_AUTHUSER": "auth1",
        "EXOTEL_SIPDOMAIN": "tenant.exotel.test", "EXOTEL_DOMAIN": "voip.exotel.test:443",
        "EXOTEL_PORT": "443", "EXOTEL_SECURITY": "wss", "EXOTEL_ENDPOINT": "sip",
        "EXOTEL_DISPLAYNAME": "Agent One", "EXOTEL_SECRET": SECRET, "EXOTEL_CA_FILE": "ca.pem",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    _, info, options = common.parse(None, [])
    assert info == AccountConfig.sip_account_info_from_env(env)
    assert AccountConfig.from_sip_account_info(info, instance_id="i") == AccountConfig.from_env(
        env, instance_id="i")
    assert "media" not in options  # a server elsewhere: ICE on every interface


def test_ws_url_is_read_too(common: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXOTEL_SECRET", SECRET)
    monkeypatch.setenv("EXOTEL_WS_URL", "ws://127.0.0.1:5066/ws")
    _, info, options = common.parse(None, [])
    assert AccountConfig.from_sip_account_info(info).ws_url == "ws://127.0.0.1:5066/ws"
    assert options["media"].ice.host_addresses == ["127.0.0.1"]


def test_the_options_override_the_variables(
        common: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXOTEL_USERNAME", "agent1")
    monkeypatch.setenv("EXOTEL_PORT", "443")
    monkeypatch.setenv("EXOTEL_ENDPOINT", "")  # empty: unset
    _, info, _ = common.parse(None, ["--user", "agent2", "--port", "8443", "--ws-url",
                                     "wss://h.test/x"])
    assert (info["userName"], info["displayname"], info["port"]) == ("agent2", "agent2", "8443")
    assert info["wsUrl"] == "wss://h.test/x"
    assert "endpoint" not in info and "secret" not in info  # not set, and no terminal
    assert set(common.ACCOUNT_OPTIONS) == set(ENV_VARIABLES) - {"SECRET"}


def _run_5_1(**variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXOTEL_")}
    env.update(variables)
    return subprocess.run(
        [sys.executable, str(EXAMPLES / "guide_5_1_initialize.py")], env=env, cwd=EXAMPLES,
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )


def test_5_1_initialises_from_the_environment_and_initwebrtc_checks_it() -> None:
    ok = _run_5_1(EXOTEL_SECRET=SECRET, EXOTEL_WS_URL="ws://127.0.0.1:5066/ws")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "initWebrtc: True" in ok.stdout and "ws_url='ws://127.0.0.1:5066/ws'" in ok.stdout
    bad = _run_5_1(EXOTEL_SECRET=SECRET, EXOTEL_SECURITY="https")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "initWebrtc: False" in bad.stdout and "security" in bad.stdout
    assert SECRET not in ok.stdout + ok.stderr + bad.stdout + bad.stderr
