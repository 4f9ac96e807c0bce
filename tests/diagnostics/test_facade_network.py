"""``ExotelWebClient.initDiagnostics`` + ``startNetworkDiagnostics`` (guide 5.11, the
network part), as the guide's synchronous code calls them, against the in-process sandbox
(and coturn for the ICE servers, inside the namespace)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from exotel_voice import ExotelWebClient
from exotel_voice.diagnostics.network import DiagnosticsReport
from exotel_voice.exceptions import InvalidState
from exotel_voice.media import IceConfig, IceServer, MediaConfig
from exotel_voice.sandbox import SandboxConfig
from exotel_voice.sandbox.threaded import SandboxThread


pytestmark = pytest.mark.timeout(60)

PASSWORD = "agent-diag-secret-7"
NETWORK_KEYS = ("wss", "rtt", "userReg", "udp", "tcp", "host", "srflx", "relay")
LOOPBACK = MediaConfig(ice=IceConfig(host_addresses=["127.0.0.1"], gather_timeout=1.0))


class Diagnostics:
    """What the two diagnostics callbacks received, in order."""

    def __init__(self) -> None:
        self.key_values: list[tuple[str, Any, str]] = []
        self.reports: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def report(self, log_status: str, log_data: str) -> None:
        with self.lock:
            self.reports.append((log_status, log_data))

    def key_value(self, key: str, status: Any, description: str) -> None:
        with self.lock:
            self.key_values.append((key, status, description))

    def network(self) -> list[tuple[str, Any, str]]:
        """The network keys' reports, in order (the device keys left out)."""
        return [kv for kv in self.key_values if kv[0] in NETWORK_KEYS]

    def results(self) -> dict[str, tuple[Any, str]]:
        """The last (status, description) of each network key that is not ``waiting``."""
        return {k: (s, d) for k, s, d in self.network() if s != "waiting"}


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    config = SandboxConfig(ws_port=0, wss_port=None, http_port=None, users={"agent": PASSWORD})
    with SandboxThread(config) as sb:
        yield sb


def registered_client(sandbox: SandboxThread, media: MediaConfig) -> ExotelWebClient:
    client = ExotelWebClient()
    assert client.initWebrtc(sandbox.sip_account_info("agent"), media=media) is True
    assert client.DoRegister() is True
    assert client.wait_for_registration(10) is True
    return client


def test_network_diagnostics_report_the_guides_keys_in_order(sandbox: SandboxThread) -> None:
    diag = Diagnostics()
    with registered_client(sandbox, LOOPBACK) as client:
        assert client.initDiagnostics(diag.report, diag.key_value) is True
        report = client.startNetworkDiagnostics().result(15)
    assert isinstance(report, DiagnosticsReport)
    # The JS SDK's order: every ICE key "waiting" first, then each result as it completes.
    network = diag.network()
    assert network[:4] == [(k, "waiting", "") for k in ("udp", "tcp", "host", "srflx")]
    results = network[4:]
    assert sorted(k for k, _, _ in results) == sorted(
        ["wss", "rtt", "userReg", "udp", "tcp", "host", "srflx", "relay"])
    got = diag.results()
    assert got["wss"] == ("connected", sandbox.ws_url)
    assert got["userReg"] == ("registered", "agent")
    status, description = got["host"]
    assert status == "connected" and description.startswith("candidate:")
    assert " 127.0.0.1 " in description and description.endswith("typ host")
    # The sandbox has no STUN or TURN server: disconnected, with an empty description.
    for key in ("udp", "tcp", "srflx", "relay"):
        assert got[key] == ("disconnected", ""), key
    rtt, text = got["rtt"]
    assert isinstance(rtt, float) and rtt >= 0 and text == "rtt ok"
    # The troubleshooting log: the whole log after each line, in the JS SDK's format.
    assert {s for s, _ in diag.reports} == {"troubleShootReport"}
    log = diag.reports[-1][1]
    assert "TROUBLESHOOTER_FSM_REPORT: NETWORK EVENT =  UDP_TEST_STARTING" in log
    assert "NETWORK EVENT =  HOST_CON_TEST_COMPLETE" in log
    assert "Gathered candidate candidate:" in log
    assert "no STUN server configured" in log  # a skipped check's reason and remedy
    assert PASSWORD not in log and PASSWORD not in repr(diag.key_values)
    assert report.ok, report.to_json()


def test_userreg_is_the_background_registrations_state_without_a_register(
    sandbox: SandboxThread,
) -> None:
    diag = Diagnostics()
    client = ExotelWebClient()
    with client:
        assert client.initWebrtc(sandbox.sip_account_info("agent"), media=LOOPBACK) is True
        assert client.initDiagnostics(diag.report, diag.key_value) is True
        report = client.startNetworkDiagnostics().result(15)  # never registered
    assert diag.results()["userReg"] == ("unregistered", "agent")
    assert report.check("userReg").verdict.value == "skipped"
    assert diag.results()["wss"][0] == "connected"


def test_start_network_diagnostics_needs_init_diagnostics(sandbox: SandboxThread) -> None:
    with ExotelWebClient() as client:
        assert client.initWebrtc(sandbox.sip_account_info("agent"), media=LOOPBACK) is True
        future = client.startNetworkDiagnostics()
        with pytest.raises(InvalidState, match="initDiagnostics"):
            future.result(5)


def test_network_diagnostics_with_coturn_report_candidate_lines(
    sandbox: SandboxThread, coturn: Any
) -> None:
    info = coturn.info
    media = MediaConfig(ice=IceConfig(host_addresses=["127.0.0.1"], gather_timeout=1.0, servers=[
        IceServer(urls=info.stun_url),
        IceServer(urls=[info.turn_url, info.turn_tcp_url], username=info.username,
                  credential=info.password),
    ]))
    diag = Diagnostics()
    with registered_client(sandbox, media) as client:
        assert client.initDiagnostics(diag.report, diag.key_value) is True
        report = client.startNetworkDiagnostics().result(15)
    assert report.ok, report.to_json()
    got = diag.results()
    for key, kind in (("host", "host"), ("srflx", "srflx"), ("udp", "srflx"), ("relay", "relay"),
                      ("tcp", "relay")):
        status, line = got[key]
        assert status == "connected" and line.startswith("candidate:"), key
        assert line.endswith(f"typ {kind}") or f" typ {kind} " in line, (key, line)
    log = diag.reports[-1][1]
    assert info.password not in log and info.password not in repr(diag.key_values)
