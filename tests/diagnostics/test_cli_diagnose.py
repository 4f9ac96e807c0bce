"""``exotel-voice diagnose``, run as a user runs it: a subprocess with a clean environment,
against an in-process sandbox, and (inside the namespace) against Kamailio + coturn through
an account file with ``iceServers``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from exotel_voice import cli
from exotel_voice.diagnostics.network import CHECK_NAMES
from tests.cli.conftest import assert_one_error_line, cli_env, run


def timed_run(*args: str, **kwargs: Any) -> Any:
    started = time.monotonic()
    result = run(*args, env=cli_env(COLUMNS="160"), **kwargs)
    print(f"exotel-voice {' '.join(args)}: {time.monotonic() - started:.2f} s "
          "(process start included)")
    return result


def test_diagnose_the_sandbox_prints_a_table_with_verdicts_and_remedies() -> None:
    result = timed_run("diagnose", "--sandbox")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for name in CHECK_NAMES:
        assert f" {name} " in out, name
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 3}
    for name in ("wss", "rtt", "userReg", "host"):
        assert " ok " in rows[name], rows[name]
    for name in ("udp", "tcp", "srflx", "relay"):
        assert " skipped " in rows[name], rows[name]
    assert "What to do:" in out
    assert "relay: no TURN server configured" in out
    assert "host: candidate:" in out and "typ host" in out
    assert "no check failed" in out
    assert out.startswith("checking an in-process sandbox")


def test_diagnose_json_is_the_report_for_a_support_ticket() -> None:
    result = timed_run("diagnose", "--sandbox", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == list(CHECK_NAMES)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["wss"]["verdict"] == "ok" and checks["wss"]["value"] == report["server"]
    assert checks["relay"]["verdict"] == "skipped"
    assert "no TURN server configured" in checks["relay"]["remedy"]
    assert checks["host"]["candidate"].startswith("candidate:")
    assert set(checks["rtt"]) == {"name", "verdict", "value", "detail", "remedy", "duration",
                                  "candidate"}
    assert report["versions"]["sdk"].startswith("exotel-voice/")
    assert "in-process sandbox" in result.stderr  # progress off stdout with --json


def test_diagnose_prints_plain_text_without_rich(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for module in ("rich", "rich.console", "rich.table", "rich.markup"):
        monkeypatch.setitem(sys.modules, module, None)
    assert cli.main(["diagnose", "--sandbox"]) == 0
    out = capsys.readouterr().out
    assert "│" not in out and "┃" not in out
    lines = out.splitlines()
    assert ["check", "verdict", "value", "detail"] in [line.split() for line in lines]
    relay = next(line for line in lines if line.startswith("relay "))
    assert relay.split()[1] == "skipped"
    assert "no check failed" in out


def test_diagnose_rejects_bad_ice_servers(tmp_path: Path) -> None:
    account = tmp_path / "account.json"
    account.write_text(json.dumps({
        "userName": "agent", "sipdomain": "x.test", "port": "443", "secret": "s3cret-value-1",
        "iceServers": [{"urls": "http://stun.example.test"}],
    }))
    result = run("diagnose", "--account", str(account))
    assert_one_error_line(result, 2, "iceServers[0]", "not a STUN/TURN URL")
    assert "s3cret-value-1" not in result.stderr + result.stdout


# -- the rig (inside the namespace) ----------------------------------------------------------
def account_file(tmp_path: Path, kamailio: Any, coturn: Any, *, turn_password: str | None = None
                 ) -> tuple[Path, str]:
    user, password = kamailio.new_user("diagcli")
    info = coturn.info
    path = tmp_path / "account.json"
    path.write_text(json.dumps({
        "userName": user, "authUser": user, "sipdomain": kamailio.info.domain,
        "secret": password, "wsUrl": kamailio.info.ws_url,
        "iceServers": [
            {"urls": info.stun_url},
            {"urls": [info.turn_url, info.turn_tcp_url], "username": info.username,
             "credential": turn_password or info.password},
        ],
    }))
    return path, password


def test_diagnose_against_kamailio_and_coturn(tmp_path: Path, kamailio: Any, coturn: Any) -> None:
    path, password = account_file(tmp_path, kamailio, coturn)
    table = timed_run("diagnose", "--account", str(path))
    assert table.returncode == 0, table.stdout + table.stderr
    assert "no check failed" in table.stdout
    assert "relay: candidate:" in table.stdout and "typ relay" in table.stdout
    result = timed_run("diagnose", "--account", str(path), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert {c["name"]: c["verdict"] for c in report["checks"]} == dict.fromkeys(CHECK_NAMES, "ok")
    for text in (table.stdout, table.stderr, result.stdout, result.stderr):
        assert password not in text and coturn.info.password not in text


def test_diagnose_fails_on_a_wrong_turn_password(tmp_path: Path, kamailio: Any,
                                                 coturn: Any) -> None:
    wrong = "wrong-turn-password-9"
    path, password = account_file(tmp_path, kamailio, coturn, turn_password=wrong)
    table = timed_run("diagnose", "--account", str(path), "--timeout", "1")
    assert table.returncode == 1
    assert "FAILED: relay" in table.stdout
    assert "relay: TURN refused the credentials (401): check the TURN user and password" in (
        table.stdout)
    result = timed_run("diagnose", "--account", str(path), "--timeout", "1", "--json")
    assert result.returncode == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["relay"]["verdict"] == "failed"
    assert checks["relay"]["remedy"].startswith("TURN refused the credentials (401)")
    for text in (table.stdout, table.stderr, result.stdout, result.stderr):
        for secret in (wrong, password, coturn.info.password):
            assert secret not in text
