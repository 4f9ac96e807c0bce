"""``diagnose()`` against real servers, inside the loopback-only namespace: Kamailio (ws)
and coturn (STUN and TURN, over UDP and TCP, with a user and a password).

Each failure is made for real: a wrong TURN password, UDP to coturn dropped by an iptables
rule, a WebSocket server that is not there; the matching check fails with its remedy, the
others still pass, and nothing waits longer than its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from exotel_voice.client import Phone
from exotel_voice.config import AccountConfig
from exotel_voice.diagnostics.network import CHECK_NAMES, Check, Verdict, diagnose
from exotel_voice.media import IceConfig, IceServer, MediaConfig
from tests.rig.ports import free_port


pytestmark = pytest.mark.interop

#: Each check's deadline in these tests.
TIMEOUT = 1.0


def account(kamailio: Any, user: str, password: str, *, url: str | None = None) -> AccountConfig:
    info = kamailio.info
    return AccountConfig.from_sip_account_info({
        "userName": user, "authUser": user, "sipdomain": info.domain, "secret": password,
        "wsUrl": url or info.ws_url,
    })


def media(coturn: Any, *, password: str | None = None, tcp: bool = True) -> MediaConfig:
    info = coturn.info
    urls = [info.turn_url] + ([info.turn_tcp_url] if tcp else [])
    return MediaConfig(ice=IceConfig(
        host_addresses=["127.0.0.1"],
        servers=[
            IceServer(urls=info.stun_url),
            IceServer(urls=urls, username=info.username, credential=password or info.password),
        ],
    ))


def verdicts(checks: Any) -> dict[str, str]:
    return {c.name: c.verdict.value for c in checks}


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


@contextlib.contextmanager
def udp_dropped(port: int, chain: str = "INPUT") -> Iterator[None]:
    """Drop UDP to ``port`` on loopback (iptables, inside the namespace): on ``INPUT`` the
    packets vanish on the way, as behind a remote firewall; on ``OUTPUT`` the sender gets
    EPERM, as from a local firewall."""
    where = "-i" if chain == "INPUT" else "-o"
    rule = [chain, where, "lo", "-p", "udp", "--dport", str(port), "-j", "DROP"]
    subprocess.run(["iptables", "-I", *rule], check=True)
    try:
        yield
    finally:
        subprocess.run(["iptables", "-D", *rule], check=True)


def test_every_check_passes_against_kamailio_and_coturn(kamailio: Any, coturn: Any) -> None:
    user, password = kamailio.new_user("diag")
    seen: list[Check] = []
    started = time.monotonic()
    report = asyncio.run(diagnose(account(kamailio, user, password), media=media(coturn),
                                  timeout=TIMEOUT, on_check=seen.append))
    took = time.monotonic() - started
    print(f"diagnose against Kamailio + coturn: {took:.3f} s")
    assert [c.name for c in report.checks] == list(CHECK_NAMES)
    assert verdicts(report.checks) == dict.fromkeys(CHECK_NAMES, "ok"), report.to_json()
    assert sorted(c.name for c in seen) == sorted(CHECK_NAMES)
    assert report.ok
    assert report.check("wss").value == kamailio.info.ws_url
    assert report.check("rtt").value.endswith(" ms")
    assert "REGISTER sent for this check" in report.check("userReg").detail
    # Each ICE check proved by a candidate of the right type.
    assert " typ host" in report.check("host").candidate
    assert " typ srflx" in report.check("srflx").candidate
    assert " typ relay" in report.check("relay").candidate
    assert report.check("relay").candidate.startswith("candidate:")
    assert " typ srflx" in report.check("udp").candidate
    assert " typ relay" in report.check("tcp").candidate  # allocated over TCP
    assert "over TCP" in report.check("tcp").detail
    # The relayed address is coturn's (its relay port range).
    relay_port = int(report.check("relay").value.rsplit(":", 1)[1])
    assert coturn.info.relay_min <= relay_port <= coturn.info.relay_max
    assert_no_secret(report.to_json(), password, coturn.info.password)


def test_the_phones_background_registration_answers_userreg(kamailio: Any, coturn: Any) -> None:
    user, password = kamailio.new_user("diag")

    async def scenario() -> tuple[Any, int]:
        config = account(kamailio, user, password)
        async with Phone(config, media=media(coturn)) as phone:
            await phone.register(timeout=5)
            before = len(kamailio.events("REQ", method="REGISTER"))
            report = await diagnose(config, phone=phone, timeout=TIMEOUT)
            return report, len(kamailio.events("REQ", method="REGISTER")) - before

    report, registers = asyncio.run(scenario())
    check = report.check("userReg")
    assert check.verdict is Verdict.OK and check.value == "registered"
    assert "background registration (no REGISTER sent)" in check.detail
    assert registers == 0
    assert report.check("relay").ok  # the phone's own ICE servers were used


def test_a_wrong_turn_password_fails_relay_with_the_credentials_remedy(
    kamailio: Any, coturn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Every log line of ours, aioice's and websockets' (some loggers may have a level of
    # their own, set by an earlier in-process CLI run).
    for name in (None, "aioice", "exotel_voice", "websockets"):
        caplog.set_level(logging.DEBUG, logger=name)
    user, password = kamailio.new_user("diag")
    wrong = "not-the-password-" + coturn.info.password[:4]
    report = asyncio.run(diagnose(account(kamailio, user, password),
                                  media=media(coturn, password=wrong), timeout=TIMEOUT))
    relay = report.check("relay")
    assert relay.verdict is Verdict.FAILED, report.to_json()
    assert "401" in relay.detail
    assert "check the TURN user and password" in relay.remedy
    assert relay.candidate == ""
    # Everything that does not need the credentials still passes.
    for name in ("wss", "rtt", "userReg", "udp", "tcp", "host", "srflx"):
        assert report.check(name).ok, report.to_json()
    assert not report.ok
    assert_no_secret(report.to_json(), wrong, password, coturn.info.password)
    assert_no_secret(repr(report), wrong, password, coturn.info.password)
    assert {"aioice.turn", "exotel_voice.sip.registration"} <= {r.name for r in caplog.records}
    assert_no_secret(caplog.text, wrong, password, coturn.info.password)


@pytest.mark.parametrize("chain", ["INPUT", "OUTPUT"])
def test_udp_to_coturn_dropped_fails_udp_and_relays_over_tcp(
    kamailio: Any, coturn: Any, chain: str
) -> None:
    user, password = kamailio.new_user("diag")
    started = time.monotonic()
    with udp_dropped(coturn.info.port, chain):
        report = asyncio.run(diagnose(account(kamailio, user, password), media=media(coturn),
                                      timeout=TIMEOUT))
    took = time.monotonic() - started
    udp = report.check("udp")
    assert udp.verdict is Verdict.FAILED, report.to_json()
    assert udp.remedy.startswith(
        f"UDP to the STUN server is blocked: allow UDP {coturn.info.port} or use TURN over TCP/TLS")
    srflx = report.check("srflx")
    assert srflx.verdict is Verdict.FAILED and "blocked" in srflx.remedy
    # TURN over TCP still gives a relay candidate; the report says UDP failed.
    relay = report.check("relay")
    assert relay.verdict is Verdict.WARNING, report.to_json()
    assert " typ relay" in relay.candidate
    assert "over TCP" in relay.detail
    assert "no answer over UDP" in relay.detail  # aioice swallows the EPERM: a timeout
    assert ("no answer over UDP" if chain == "INPUT" else "not permitted") in udp.detail
    assert f"allow UDP {coturn.info.port}" in relay.remedy
    assert report.check("tcp").ok and report.check("wss").ok
    # Each check has a deadline: the dropped packets cost about one deadline, not more.
    assert took < 10 * TIMEOUT


def test_udp_dropped_without_turn_over_tcp_fails_relay_too(kamailio: Any, coturn: Any) -> None:
    user, password = kamailio.new_user("diag")
    with udp_dropped(coturn.info.port):
        report = asyncio.run(diagnose(account(kamailio, user, password),
                                      media=media(coturn, tcp=False), timeout=TIMEOUT))
    relay = report.check("relay")
    assert relay.verdict is Verdict.FAILED
    assert "UDP to the TURN server is blocked" in relay.remedy
    # coturn's port still accepts TCP: said, with the advice to use it.
    tcp = report.check("tcp")
    assert tcp.verdict is Verdict.OK and "no TURN over TCP configured" in tcp.detail
    assert "transport=tcp" in tcp.remedy


def test_a_server_that_is_down_fails_wss_with_the_reason(coturn: Any, kamailio: Any) -> None:
    url = f"ws://127.0.0.1:{free_port()}/ws"
    report = asyncio.run(diagnose(account(kamailio, "nobody", "pw-unused-1", url=url),
                                  media=media(coturn), timeout=TIMEOUT))
    wss = report.check("wss")
    assert wss.verdict is Verdict.FAILED
    assert wss.value == url
    assert "cannot connect" in wss.detail and "Connection refused" in wss.detail
    assert "nothing listens there" in wss.remedy
    assert report.check("rtt").verdict is Verdict.SKIPPED
    assert report.check("userReg").verdict is Verdict.FAILED
    assert report.check("relay").ok  # the ICE checks do not depend on the SIP server
    assert not report.ok
