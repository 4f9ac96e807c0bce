"""The parts of the network diagnostics that need no server: ICE server URLs, the report,
the guide's key/value mapping, the troubleshooting log, and a STUN server that never
answers (a local UDP socket that reads and says nothing)."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from exotel_voice.client.facade import guide_network_key_value
from exotel_voice.config import AccountConfig
from exotel_voice.diagnostics import DiagnosticsSession
from exotel_voice.diagnostics.network import (
    Check,
    DiagnosticsReport,
    Verdict,
    _parse_url,
    _servers,
    diagnose,
)
from exotel_voice.media import IceConfig, IceServer, MediaConfig


def test_ice_server_urls_are_parsed_with_the_rfc_default_ports() -> None:
    server = IceServer(urls="turn:turn.example.test", username="u", credential="secret-1")
    turn = _parse_url("turn:turn.example.test", server)
    assert (turn.kind, turn.host, turn.port, turn.transport) == ("turn", "turn.example.test",
                                                                3478, "udp")
    assert "secret-1" not in repr(turn)
    turns = _parse_url("turns:turn.example.test", server)
    assert (turns.secure, turns.port, turns.transport) == (True, 5349, "tcp")
    tcp = _parse_url("turn:[::1]:3479?transport=tcp", server)
    assert (tcp.host, tcp.port, tcp.transport, tcp.where) == ("::1", 3479, "tcp", "[::1]:3479")
    stun = _parse_url("stun:127.0.0.1:19302", IceServer(urls="stun:127.0.0.1:19302"))
    assert stun.label == "stun:127.0.0.1:19302"
    with pytest.raises(ValueError, match="bad port"):
        _servers(MediaConfig(ice=IceConfig(servers=[IceServer(urls="stun:host:port")])))


def test_the_report_lists_names_and_failures() -> None:
    checks = (Check("wss", Verdict.OK, "ws://x"), Check("relay", Verdict.FAILED, detail="why"))
    report = DiagnosticsReport(checks, "sip:a@b", "ws://x", time.time(), 0.5)
    assert not report.ok and [c.name for c in report.failed] == ["relay"]
    assert report.check("wss").ok
    with pytest.raises(KeyError, match="no check 'nope'"):
        report.check("nope")
    assert report.to_dict()["checks"][1]["verdict"] == "failed"


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        (Check("wss", Verdict.OK, "wss://h/ws"), ("wss", "connected", "wss://h/ws")),
        (Check("wss", Verdict.FAILED, "wss://h/ws", "refused"),
         ("wss", "disconnected", "wss://h/ws")),
        (Check("userReg", Verdict.OK, "registered"), ("userReg", "registered", "agent")),
        (Check("userReg", Verdict.SKIPPED, "unregistered"), ("userReg", "unregistered", "agent")),
        (Check("rtt", Verdict.OK, "12.5 ms"), ("rtt", 12.5, "rtt ok")),
        (Check("rtt", Verdict.WARNING, "", "no response"), ("rtt", "disconnected", "no response")),
        (Check("srflx", Verdict.OK, candidate="candidate:1 1 udp 1 1.2.3.4 5 typ srflx"),
         ("srflx", "connected", "candidate:1 1 udp 1 1.2.3.4 5 typ srflx")),
        (Check("relay", Verdict.FAILED, detail="401"), ("relay", "disconnected", "")),
        (Check("udp", Verdict.SKIPPED), ("udp", "disconnected", "")),
    ],
)
def test_checks_map_to_the_guides_key_values(check: Check, expected: tuple[object, ...]) -> None:
    assert guide_network_key_value(check, "agent") == expected


def test_the_troubleshooting_log_is_the_js_sdks_and_survives_a_failing_callback() -> None:
    got: list[tuple[str, str]] = []

    def report(status: str, text: str) -> None:
        got.append((status, text))
        raise RuntimeError("the application's bug")

    session = DiagnosticsSession(report, None, clock=lambda: 0.0)
    session.log("one")
    session.log("two", "WARNING")
    session.key_value("wss", "connected", "")  # no key/value callback: nothing happens
    assert len(got) == 2 and got[1][0] == "troubleShootReport"
    lines = got[1][1].splitlines()
    assert lines[0].endswith("] [INFO] TROUBLESHOOTER_FSM_REPORT: one")
    assert lines[1].endswith("] [WARNING] TROUBLESHOOTER_FSM_REPORT: two")
    session.close()
    session.log("three")
    assert len(got) == 2


def test_a_silent_stun_server_fails_udp_within_its_deadline() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    account = AccountConfig.from_sip_account_info({
        "userName": "agent", "sipdomain": "x.test", "secret": "sip-secret-1",
        "wsUrl": "ws://127.0.0.1:9/ws"})
    media = MediaConfig(ice=IceConfig(host_addresses=["127.0.0.1"],
                                      servers=[IceServer(urls=f"stun:127.0.0.1:{port}")]))
    try:
        started = time.monotonic()
        report = asyncio.run(diagnose(account, media=media, timeout=0.5, register=False))
        took = time.monotonic() - started
        assert silent.recv(2048)[:2] == b"\x00\x01"  # a Binding request did arrive
    finally:
        silent.close()
    udp = report.check("udp")
    assert udp.verdict is Verdict.FAILED
    assert udp.remedy.startswith(f"UDP to the STUN server is blocked: allow UDP {port}")
    assert report.check("srflx").verdict is Verdict.FAILED
    assert report.check("relay").verdict is Verdict.SKIPPED
    assert report.check("userReg").verdict is Verdict.SKIPPED
    assert report.check("wss").verdict is Verdict.FAILED
    assert took < 5.0  # one deadline (0.5 s) and change, not a retransmission schedule


def test_diagnose_refuses_a_bad_timeout() -> None:
    account = AccountConfig.from_sip_account_info({
        "userName": "agent", "sipdomain": "x.test", "secret": "s", "wsUrl": "ws://h/ws"})
    with pytest.raises(ValueError, match="timeout"):
        asyncio.run(diagnose(account, timeout=0))
