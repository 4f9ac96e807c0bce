"""A wss server whose certificate cannot be verified: the phone says so at once.

The server runs on 127.0.0.1 with a certificate from a CA the phone does not trust, a
self-signed certificate, or a trusted CA's certificate for another host name. ``register()``
must raise :class:`TransportError` with the verification reason within a second or two (not a
bare ``TimeoutError`` after the whole timeout), and the application must get a registration
event (``terminated``, with the reason) -- from the asyncio ``Phone`` and through the
``ExotelWebClient`` facade's ``RegisterEventCallBack``.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme
from websockets.asyncio.server import Server, ServerConnection, serve

from exotel_voice import ExotelWebClient
from exotel_voice.client import (
    Phone,
    PhoneEvent,
    PhoneStatus,
    RegistrationState,
    RegistrationStateChanged,
)
from exotel_voice.config import AccountConfig, ReconnectPolicy, TlsConfig
from exotel_voice.exceptions import TransportError
from exotel_voice.sandbox.certs import make_certificate


pytestmark = pytest.mark.timeout(30)

PASSWORD = "tls-test-pw-Zq8"


@pytest.fixture(scope="module")
def untrusted_ca() -> trustme.CA:
    return trustme.CA()


async def _handler(ws: ServerConnection) -> None:
    async for _ in ws:
        pass


@pytest.fixture(params=["untrusted-ca", "self-signed", "wrong-host"])
async def bad_tls_server(
    request: pytest.FixtureRequest, untrusted_ca: trustme.CA, tmp_path: Path
) -> AsyncIterator[tuple[Server, str | None, str]]:
    """(server, CA file the client trusts or None, expected reason)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca_file: str | None = None
    if request.param == "untrusted-ca":
        untrusted_ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
        expected = "certificate verify failed"
    elif request.param == "self-signed":
        cert = make_certificate(["127.0.0.1"], tmp_path)
        ctx.load_cert_chain(cert.cert_file, cert.key_file)
        expected = "self-signed certificate"
    else:
        ca = trustme.CA()
        ca.issue_cert("sip.other.example").configure_cert(ctx)
        ca_file = str(tmp_path / "ca.pem")
        ca.cert_pem.write_to_path(ca_file)
        expected = "mismatch"
    async with serve(_handler, "127.0.0.1", 0, subprotocols=["sip"], ssl=ctx) as server:  # type: ignore[list-item]
        yield server, ca_file, expected


def _url(server: Server) -> str:
    port = next(iter(server.sockets)).getsockname()[1]
    return f"wss://127.0.0.1:{port}/ws"


async def test_register_raises_the_certificate_error_at_once(
    bad_tls_server: tuple[Server, str | None, str],
) -> None:
    server, ca_file, expected = bad_tls_server
    account = AccountConfig.from_sip_account_info(
        {"userName": "alice", "sipdomain": "tls.test", "secret": PASSWORD,
         "wsUrl": _url(server)},
        tls=TlsConfig(ca_file=ca_file),
        reconnect=ReconnectPolicy(initial_delay=0.2, max_delay=1.0),
    )
    events: list[PhoneEvent] = []
    async with Phone(account) as phone:
        phone.add_listener(events.append)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TransportError) as info:
            await phone.register(timeout=20)
        assert loop.time() - started < 5.0, "reported at once, not after the timeout"
        message = str(info.value)
        assert expected in message, message
        assert "certificate" in message
        assert PASSWORD not in message
        regs = [e for e in events if isinstance(e, RegistrationStateChanged)]
        assert regs, "the application got no registration event"
        assert regs[-1].state is RegistrationState.FAILED
        assert regs[-1].status is None
        assert expected in regs[-1].reason
        assert phone.status() in (PhoneStatus.FAILED, PhoneStatus.CONNECTION_FAILED)


@pytest.fixture
def wss_untrusted(untrusted_ca: trustme.CA) -> Iterator[str]:
    """A wss server with an untrusted certificate, on its own thread's loop."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    url: list[str] = []
    stop = asyncio.Event()

    async def main() -> None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        untrusted_ca.issue_cert("127.0.0.1").configure_cert(ctx)
        async with serve(_handler, "127.0.0.1", 0, subprotocols=["sip"], ssl=ctx) as server:  # type: ignore[list-item]
            url.append(_url(server))
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(5)
    try:
        yield url[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(5)
        loop.close()


def test_facade_reports_terminated_with_the_reason(wss_untrusted: str) -> None:
    states: list[str] = []
    got = threading.Event()

    def on_register(state: str, phone: str) -> None:
        states.append(state)
        if state == "terminated":
            got.set()

    client = ExotelWebClient()
    try:
        assert client.initWebrtc(
            {"userName": "alice-tls", "sipdomain": "tls.test", "secret": PASSWORD,
             "wsUrl": wss_untrusted},
            on_register, None, None, strict=True,
        )
        started = time.monotonic()
        assert client.DoRegister()
        assert got.wait(10), f"no terminated event: {states}"
        assert time.monotonic() - started < 5.0
        assert client.wait_for_registration(5) is False
        assert client.registration_state == "terminated"
        error = client.last_error
        assert isinstance(error, TransportError), repr(error)
        assert "certificate verify failed" in str(error)
        assert PASSWORD not in str(error)
        time.sleep(1.5)  # reconnect attempts fail the same way: reported once
        assert states == ["terminated"], states
    finally:
        client.close()
