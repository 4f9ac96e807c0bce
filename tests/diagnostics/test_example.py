"""examples/guide_5_11_diagnostics.py (the network part) runs as a user runs it: against the
in-process sandbox, and inside the namespace against Kamailio (wss) + coturn."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exotel_voice.sandbox import SandboxConfig
from exotel_voice.sandbox.threaded import SandboxThread


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PASSWORD = "agent-example-secret-3"


def run_example(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / "guide_5_11_diagnostics.py"), "--timeout", "15", *args],
        env=env, cwd=EXAMPLES, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL,
    )


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXOTEL_")}
    env.update(extra)
    return env


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    config = SandboxConfig(ws_port=0, wss_port=None, http_port=None, users={"agent": PASSWORD})
    with SandboxThread(config) as sb:
        yield sb


def lines(out: str, key: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(f"diagnostics {key} ")]


def test_the_example_against_the_sandbox(sandbox: SandboxThread, tmp_path: Path) -> None:
    info = sandbox.sip_account_info("agent")
    report = tmp_path / "troubleshooting.log"
    result = run_example(clean_env(EXOTEL_DOMAIN=info["domain"], EXOTEL_PORT=info["port"],
                                   EXOTEL_SECRET=PASSWORD), "--report", str(report))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert lines(out, "wss") == [f"diagnostics wss connected ws://{info['domain']}/wss"]
    assert lines(out, "userReg") == ["diagnostics userReg registered agent"]
    assert lines(out, "host")[-1].startswith("diagnostics host connected candidate:")
    assert lines(out, "relay") == ["diagnostics relay disconnected "]
    assert lines(out, "udp") == ["diagnostics udp waiting ", "diagnostics udp disconnected "]
    log = report.read_text()
    assert "NETWORK EVENT =  HOST_CON_TEST_COMPLETE" in log
    assert "Network diagnostics done" in log and "no check failed" in log
    assert PASSWORD not in log and PASSWORD not in out + result.stderr


def test_the_example_against_kamailio_and_coturn(kamailio: Any, coturn: Any) -> None:
    user, password = kamailio.new_user("diagex")
    k, t = kamailio.info, coturn.info
    env = clean_env(
        EXOTEL_USERNAME=user, EXOTEL_SIPDOMAIN=k.domain, EXOTEL_DOMAIN=f"127.0.0.1:{k.wss_port}",
        EXOTEL_PORT=str(k.wss_port), EXOTEL_SECURITY="wss", EXOTEL_SECRET=password,
        EXOTEL_CA_FILE=str(k.ca_file), EXOTEL_ICE_HOSTS="127.0.0.1",
        EXOTEL_ICE_SERVERS=f"{t.stun_url},{t.turn_url},{t.turn_tcp_url}",
        EXOTEL_TURN_USERNAME=t.username, EXOTEL_TURN_PASSWORD=t.password,
        EXOTEL_NETNS=os.environ.get("EXOTEL_NETNS", ""),
    )
    result = run_example(env)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert lines(out, "wss")[0].startswith(f"diagnostics wss connected wss://127.0.0.1:{k.wss_port}")
    assert lines(out, "userReg") == [f"diagnostics userReg registered {user}"]
    for key, kind in (("srflx", "srflx"), ("relay", "relay"), ("tcp", "relay")):
        last = lines(out, key)[-1]
        assert last.startswith(f"diagnostics {key} connected candidate:"), last
        assert f"typ {kind}" in last
    assert t.password not in out + result.stderr and password not in out + result.stderr
