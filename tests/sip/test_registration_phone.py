"""A :class:`~exotel_voice.client.Phone` against a registrar double that misbehaves the way
real registrars do: nonces that expire (Kamailio's stock digest, no ``qop``), growing
``423 Min-Expires``, ``503`` with ``Retry-After``. What the application observes: events,
exceptions, and how many REGISTERs the server receives.

The registrar is an in-test WebSocket server on 127.0.0.1 (no third-party component, so
these run in the ordinary suite). The same nonce behaviour against a real Kamailio is in
tests/interop/test_registration_kamailio.py; the sans-I/O state machine in
tests/sip/test_registration.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from exotel_voice.client import Phone, PhoneStatus, RegistrationState, RegistrationStateChanged
from exotel_voice.config import AccountConfig, ReconnectPolicy
from exotel_voice.exceptions import AuthenticationError, SipError
from exotel_voice.sip import Headers, Request, Response, parse_message


PASSWORD = "registrar-double-pw"
REALM = "double.test"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@dataclass
class Registrar:
    """Answers REGISTERs over a WebSocket with the digest rules of a stock Kamailio (MD5,
    no ``qop``, no ``stale=true``), nonces that live ``nonce_life`` seconds, and a new nonce
    in every challenge. ``script`` may answer a REGISTER first (return a response or None)."""

    nonce_life: float = 300.0
    grant: int | None = None
    script: Callable[[Request, Headers], Response | None] | None = None
    registers: list[tuple[float, Request]] = field(default_factory=list)
    challenges: int = 0
    _nonces: dict[str, float] = field(default_factory=dict)

    async def handler(self, ws: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        async for message in ws:
            request = parse_message(message)
            assert isinstance(request, Request)
            self.registers.append((loop.time(), request))
            base = Headers(
                [(k, request.headers[k]) for k in ("Via", "From", "To", "Call-ID", "CSeq")]
            )
            scripted = self.script(request, base) if self.script is not None else None
            if scripted is not None:
                await ws.send(scripted.serialize())
                continue
            if not self._valid(request, loop.time()):
                self.challenges += 1
                nonce = f"nonce{self.challenges}"
                self._nonces[nonce] = loop.time() + self.nonce_life
                base.add("WWW-Authenticate", f'Digest realm="{REALM}", nonce="{nonce}"')
                await ws.send(Response(401, "Unauthorized", base).serialize())
                continue
            contact = request.headers["Contact"]
            if self.grant is not None:
                contact = re.sub(r"expires=\d+", f"expires={self.grant}", contact)
            base.add("Contact", contact)
            await ws.send(Response(200, "OK", base).serialize())

    def _valid(self, request: Request, now: float) -> bool:
        auth = request.headers.get("Authorization")
        if auth is None:
            return False
        p = dict(re.findall(r'(\w+)="?([^",]*)"?', auth))
        expires = self._nonces.get(p.get("nonce", ""))
        if expires is None or now > expires:
            return False  # unknown or expired: a fresh challenge, as Kamailio does
        assert "qop" not in p and "cnonce" not in p and "nc" not in p, "RFC 2069 form"
        ha1 = md5(f"alice:{REALM}:{PASSWORD}")
        ha2 = md5(f"REGISTER:{p['uri']}")
        return p.get("response") == md5(f"{ha1}:{p['nonce']}:{ha2}")


@pytest.fixture
async def registrar() -> AsyncIterator[tuple[Registrar, int]]:
    double = Registrar()
    async with serve(double.handler, "127.0.0.1", 0, subprotocols=["sip"]) as server:  # type: ignore[list-item]
        yield double, _port_of(server)


def _port_of(server: Server) -> int:
    return int(next(iter(server.sockets)).getsockname()[1])


def account(port: int, password: str = PASSWORD, **overrides: object) -> AccountConfig:
    return AccountConfig.from_sip_account_info(
        {"userName": "alice", "sipdomain": REALM, "secret": password,
         "wsUrl": f"ws://127.0.0.1:{port}/ws"},
        reconnect=ReconnectPolicy(initial_delay=0.1, max_delay=0.5),
        **overrides,  # type: ignore[arg-type]
    )


def record(phone: Phone) -> list[RegistrationStateChanged]:
    events: list[RegistrationStateChanged] = []
    phone.add_listener(
        lambda e: events.append(e) if isinstance(e, RegistrationStateChanged) else None
    )
    return events


async def wait_until(predicate: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_stays_registered_while_the_nonce_keeps_expiring(
    registrar: tuple[Registrar, int],
) -> None:
    double, port = registrar
    double.nonce_life = 0.3
    double.grant = 2  # refresh every 1 s (the shortest): each carries an expired nonce
    async with Phone(account(port, register_refresh=0.3)) as phone:
        events = record(phone)
        await phone.register(timeout=5)
        refreshes = 4
        await wait_until(
            lambda: sum(e.state is RegistrationState.REGISTERED for e in events) >= refreshes
            or any(e.state is RegistrationState.FAILED for e in events),
            timeout=10,
        )
        assert [e for e in events if e.state is RegistrationState.FAILED] == []
        assert phone.status() == "registered" and phone.registered
        registered = sum(e.state is RegistrationState.REGISTERED for e in events)
        assert double.challenges >= registered, "every refresh met a new nonce"
        await phone.unregister()


async def test_a_wrong_password_fails_fast_even_when_every_challenge_has_a_new_nonce(
    registrar: tuple[Registrar, int],
) -> None:
    double, port = registrar
    async with Phone(account(port, password="not-the-password")) as phone:
        events = record(phone)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(AuthenticationError) as info:
            await phone.register(timeout=5)
        assert loop.time() - started < 1.0
        assert info.value.status == 401
        assert events[-1].state is RegistrationState.FAILED and events[-1].retry_in is None
        assert phone.status() is PhoneStatus.FAILED
        # The first REGISTER, the answer, and one answer to the new nonce: then it stops.
        await asyncio.sleep(0.3)
        assert len(double.registers) == 3
        assert "not-the-password" not in str(info.value)


async def test_a_growing_min_expires_ends_in_a_clear_failure(
    registrar: tuple[Registrar, int],
) -> None:
    double, port = registrar

    def interval_too_brief(request: Request, base: Headers) -> Response:
        base.add("Min-Expires", str(int(request.headers["Expires"]) * 2))
        return Response(423, "Interval Too Brief", base)

    double.script = interval_too_brief
    async with Phone(account(port)) as phone:
        events = record(phone)
        with pytest.raises(SipError, match="Min-Expires") as info:
            await phone.register(timeout=5)
        assert not isinstance(info.value, AuthenticationError)
        failed = events[-1]
        assert failed.state is RegistrationState.FAILED and failed.status == 423
        assert failed.retry_in is None and "Min-Expires" in failed.reason
        await asyncio.sleep(0.3)
        asked = [int(r.headers["Expires"]) for _, r in double.registers]
        assert len(asked) <= 4 and max(asked) <= 3600, asked


async def test_503_with_retry_after_is_retried_when_the_server_asked(
    registrar: tuple[Registrar, int],
) -> None:
    double, port = registrar
    unavailable = True

    def maintenance(request: Request, base: Headers) -> Response | None:
        if not unavailable:
            return None
        base.add("Retry-After", "3 (maintenance)")
        return Response(503, "Service Unavailable", base)

    double.script = maintenance
    async with Phone(account(port)) as phone:
        events = record(phone)
        with pytest.raises(SipError, match="503"):
            await phone.register(timeout=5)
        assert events[-1].state is RegistrationState.FAILED and events[-1].retry_in == 3.0
        unavailable = False
        first = double.registers[0][0]
        await wait_until(lambda: phone.registered, timeout=6)
        retried_after = double.registers[1][0] - first
        assert 2.9 <= retried_after < 4.0, retried_after
        assert events[-1].state is RegistrationState.REGISTERED
        await phone.unregister()
