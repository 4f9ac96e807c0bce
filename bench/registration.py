"""Registration against a real Kamailio on loopback: latency and scale.

Part 1, latency (``BENCH_ITERATIONS`` rounds, default 200).  Each round runs, in a rotating
order so background load hits them alike:

* ``floor_options``: one WebSocket message round trip through Kamailio -- a raw
  ``websockets`` client sends ``OPTIONS sip:127.0.0.1:<ws port>`` on an open connection and
  waits for Kamailio's stateless ``200`` (request parsed, routed, logged, answered);
* ``raw_register``: the full digest exchange (REGISTER, 401, REGISTER with credentials, 200)
  hand-built on an open raw ``websockets`` connection: what the server and the library cost
  without our SDK;
* ``sdk_register``: ``await phone.register()`` on a fresh :class:`~exotel_voice.client.Phone`
  whose WebSocket is already open (a fresh phone has no cached nonce, so it is the full
  digest exchange), with per-round-trip times taken at the transport (``send`` of each
  REGISTER to ``message_received`` of its reply);
* ``sdk_register_connect``: ``await phone.register()`` on a fresh phone, WebSocket handshake
  included -- what an application calling ``register()`` first thing sees;
* ``sdk_reregister``: ``await phone.register()`` again on a phone that stays registered: the
  REGISTER carries credentials for the cached nonce (nc + 1), so it is one round trip when
  the server accepts them (the result counts how many did) -- what a refresh or a
  re-registration after a reconnect costs.

Part 2, scale (``BENCH_SCALE`` steps, default ``100,300,1000``): phones are added in steps up
to the total, all kept registered, ``BENCH_SCALE_CONCURRENCY`` (default 1000, i.e. all of a
step at once) registrations in flight.  Per step: wall time, successes (our ``register()``
and Kamailio's usrloc), RSS of this process.  Then one more pass with ``tracemalloc``: Python
heap per registered phone, and per bare ``websockets`` connection for comparison.

Starts and stops its own rtpengine + Kamailio (tests/rig) on 127.0.0.1; run it inside the
loopback-only namespace: ``scripts/in-netns.sh .venv/bin/python bench/run_all.py registration``.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import os
import re
import resource
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any


REPO = Path(__file__).resolve().parents[1]
# sippy installs a top-level package named `tests`; the repository's `tests` (a regular
# package) wins when the repository comes first on the path.
if str(REPO) not in sys.path[:1]:
    sys.path.insert(0, str(REPO))

from tests.rig import missing_binaries, netns_skip_reason  # noqa: E402
from tests.rig.certs import make_certs  # noqa: E402
from tests.rig.kamailio import DOMAIN, Kamailio  # noqa: E402
from tests.rig.rtpengine import Rtpengine  # noqa: E402
from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.typing import Subprotocol  # noqa: E402

from exotel_voice.client import Phone, TransportStateChanged  # noqa: E402
from exotel_voice.config import AccountConfig  # noqa: E402


ITERATIONS = int(os.environ.get("BENCH_ITERATIONS", "200"))
SCALE = [int(x) for x in os.environ.get("BENCH_SCALE", "100,300,1000").split(",") if x]
CONCURRENCY = int(os.environ.get("BENCH_SCALE_CONCURRENCY", "1000"))
TRACE_PHONES = int(os.environ.get("BENCH_TRACE_PHONES", "1000"))
# Kamailio shared memory in MB.  The rig runs with -m 64, which holds only ~450 WebSocket
# connections (each costs ~55-70 KiB of shm in the websocket module + tcp buffers); the
# bench runs its private Kamailio with more.  BENCH_KAMAILIO_SHM_MB=64 reproduces the rig.
KAMAILIO_SHM_MB = int(os.environ.get("BENCH_KAMAILIO_SHM_MB", "256"))
LATENCY_BUDGET = float(os.environ.get("BENCH_LATENCY_SECONDS", "60"))  # wall-clock cap, part 1
STEP_TIMEOUT = 60.0  # per scale step
FD_WANTED = 65536


# -- helpers ---------------------------------------------------------------------------------
def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


def summary(values: list[float]) -> dict[str, float]:
    """Median, p90, min in milliseconds (values are seconds)."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "median_ms": round(statistics.median(values) * 1e3, 3),
        "p90_ms": round(pct(values, 90) * 1e3, 3),
        "min_ms": round(min(values) * 1e3, 3),
    }


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def raise_fd_limit() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = FD_WANTED if hard == resource.RLIM_INFINITY else min(FD_WANTED, hard)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def account(k: Kamailio, user: str, password: str) -> AccountConfig:
    return AccountConfig.from_sip_account_info(
        {
            "userName": user,
            "sipdomain": k.info.domain,
            "secret": password,
            "wsUrl": k.info.ws_url,
        }
    )


async def ws_open(url: str) -> ClientConnection:
    # Same settings as exotel_voice.transport.WebSocketTransport, minus keepalive pings.
    return await connect(
        url,
        subprotocols=[Subprotocol("sip")],
        open_timeout=10,
        ping_interval=None,
        close_timeout=2.0,
        compression=None,
        proxy=None,
    )


# -- raw SIP over a raw websockets connection -------------------------------------------------
class RawClient:
    """Hand-built OPTIONS and REGISTER (with MD5 digest) on one open WebSocket."""

    def __init__(self, ws: ClientConnection, k: Kamailio, user: str, password: str) -> None:
        self.ws = ws
        self.k = k
        self.user = user
        self.password = password
        self.cseq = 0
        self.local_port = ws.transport.get_extra_info("sockname")[1]
        self.host = f"{secrets.token_hex(4)}.invalid"

    def _common(self, method: str, ruri: str, to: str, call_id: str, extra: str = "") -> str:
        self.cseq += 1
        return (
            f"{method} {ruri} SIP/2.0\r\n"
            f"Via: SIP/2.0/WS {self.host};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:{self.user}@{DOMAIN}>;tag={secrets.token_hex(5)}\r\n"
            f"To: <{to}>\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {self.cseq} {method}\r\n"
            f"Contact: <sip:{self.user}@{self.host};transport=ws>\r\n"
            f"{extra}"
            "Content-Length: 0\r\n\r\n"
        )

    async def round_trip(self, message: str) -> str:
        await self.ws.send(message)
        reply = await asyncio.wait_for(self.ws.recv(), 5.0)
        return reply if isinstance(reply, str) else reply.decode()

    async def options(self) -> float:
        msg = self._common(
            "OPTIONS",
            f"sip:127.0.0.1:{self.k.info.ws_port}",
            f"sip:127.0.0.1:{self.k.info.ws_port}",
            secrets.token_hex(8),
        )
        t0 = time.perf_counter()
        reply = await self.round_trip(msg)
        t1 = time.perf_counter()
        if not reply.startswith("SIP/2.0 200"):
            raise RuntimeError(f"OPTIONS floor: {reply.splitlines()[0]!r}")
        return t1 - t0

    async def register(self) -> tuple[float, float, float]:
        """(total, first round trip, second round trip) of one full digest exchange."""
        call_id = secrets.token_hex(8)
        ruri = f"sip:{DOMAIN}"
        aor = f"sip:{self.user}@{DOMAIN}"
        t0 = time.perf_counter()
        first = await self.round_trip(
            self._common("REGISTER", ruri, aor, call_id, "Expires: 300\r\n")
        )
        t1 = time.perf_counter()
        if not first.startswith("SIP/2.0 401"):
            raise RuntimeError(f"raw REGISTER: {first.splitlines()[0]!r}")
        challenge = re.search(r"(?im)^WWW-Authenticate:\s*Digest\s+(.*)$", first)
        assert challenge is not None
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.group(1)))
        cnonce = secrets.token_hex(8)
        ha1 = hashlib.md5(f"{self.user}:{params['realm']}:{self.password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"REGISTER:{ruri}".encode()).hexdigest()
        response = hashlib.md5(
            f"{ha1}:{params['nonce']}:00000001:{cnonce}:auth:{ha2}".encode()
        ).hexdigest()
        authorization = (
            f'Authorization: Digest username="{self.user}", realm="{params["realm"]}", '
            f'nonce="{params["nonce"]}", uri="{ruri}", response="{response}", '
            f'algorithm=MD5, qop=auth, nc=00000001, cnonce="{cnonce}"\r\n'
        )
        t2 = time.perf_counter()
        second = await self.round_trip(
            self._common("REGISTER", ruri, aor, call_id, "Expires: 300\r\n" + authorization)
        )
        t3 = time.perf_counter()
        if not second.startswith("SIP/2.0 200"):
            raise RuntimeError(f"raw REGISTER with credentials: {second.splitlines()[0]!r}")
        return t3 - t0, t1 - t0, t3 - t2

    async def crlf_ping(self) -> float | None:
        """Round trip of a double-CRLF keepalive, or None if Kamailio does not answer it."""
        t0 = time.perf_counter()
        await self.ws.send("\r\n\r\n")
        try:
            reply = await asyncio.wait_for(self.ws.recv(), 0.5)
        except TimeoutError:
            return None
        t1 = time.perf_counter()
        if reply not in ("\r\n", b"\r\n"):
            raise RuntimeError(f"CRLF ping answered with {reply!r}")
        return t1 - t0


# -- the SDK ---------------------------------------------------------------------------------
class Timed:
    """A Phone whose REGISTER sends and received replies are timestamped."""

    def __init__(self, phone: Phone) -> None:
        self.phone = phone
        self.sent: list[float] = []
        self.received: list[float] = []
        self.connected = asyncio.get_running_loop().create_future()
        real_received = phone.message_received

        def message_received(data: str | bytes) -> None:
            self.received.append(time.perf_counter())
            real_received(data)

        phone.message_received = message_received  # type: ignore[method-assign]
        phone.add_listener(self._on_event)

    def _on_event(self, event: object) -> None:
        if isinstance(event, TransportStateChanged) and event.connected:
            if not self.connected.done():
                self.connected.set_result(None)

    async def start(self) -> None:
        await self.phone.start()
        transport = self.phone._transport  # the bench times the real send path
        assert transport is not None
        real_send = transport.send

        async def send(data: bytes | str) -> None:
            self.sent.append(time.perf_counter())
            await real_send(data)

        transport.send = send  # type: ignore[method-assign]
        await asyncio.wait_for(self.connected, 10.0)


async def sdk_register_open(k: Kamailio, user: str, password: str) -> dict[str, float]:
    timed = Timed(Phone(account(k, user, password)))
    await timed.start()
    t0 = time.perf_counter()
    await timed.phone.register(timeout=10)
    t1 = time.perf_counter()
    s, r = timed.sent, timed.received
    if len(s) != 2 or len(r) != 2:
        raise RuntimeError(f"expected 2 REGISTERs and 2 replies, saw {len(s)} and {len(r)}")
    await timed.phone.unregister(timeout=5)
    return {
        "total": t1 - t0,
        "rt1": r[0] - s[0],
        "rt2": r[1] - s[1],
        "to_first_send": s[0] - t0,
        "401_to_second_send": s[1] - r[0],
        "200_to_return": t1 - r[1],
    }


async def sdk_register_connect(k: Kamailio, user: str, password: str) -> float:
    phone = Phone(account(k, user, password))
    t0 = time.perf_counter()
    await phone.register(timeout=10)
    t1 = time.perf_counter()
    await phone.unregister(timeout=5)
    return t1 - t0


async def latency(k: Kamailio) -> dict[str, Any]:
    users = [k.new_user("lat") for _ in range(4)]
    raw_ws = await ws_open(k.info.ws_url)
    raw = RawClient(raw_ws, k, *users[0])
    crlf = await raw.crlf_ping()
    # A phone that stays registered: each later register() is a re-REGISTER that carries
    # credentials for the cached nonce (nc + 1), so Kamailio answers 200 at once.
    refresher = Timed(Phone(account(k, *users[3])))
    await refresher.start()
    await refresher.phone.register(timeout=10)
    # Warm up every path (imports, first connections, Kamailio's children).
    for _ in range(3):
        await refresher.phone.register(timeout=10)
        await raw.options()
        await raw.register()
        await sdk_register_open(k, *users[1])
        await sdk_register_connect(k, *users[2])

    samples: dict[str, list[float]] = {
        "floor_options": [],
        "floor_crlf": [],
        "raw_register": [],
        "raw_rt1": [],
        "raw_rt2": [],
        "sdk_register": [],
        "sdk_rt1": [],
        "sdk_rt2": [],
        "sdk_to_first_send": [],
        "sdk_401_to_second_send": [],
        "sdk_200_to_return": [],
        "sdk_register_connect": [],
        "sdk_client_side": [],
        "raw_client_side": [],
        "sdk_reregister": [],
    }
    reregister_round_trips: list[int] = []

    async def floor() -> None:
        samples["floor_options"].append(await raw.options())
        if crlf is not None:
            pong = await raw.crlf_ping()
            if pong is not None:
                samples["floor_crlf"].append(pong)

    async def raw_reg() -> None:
        total, rt1, rt2 = await raw.register()
        samples["raw_register"].append(total)
        samples["raw_rt1"].append(rt1)
        samples["raw_rt2"].append(rt2)
        samples["raw_client_side"].append(total - rt1 - rt2)

    async def sdk_open() -> None:
        r = await sdk_register_open(k, *users[1])
        samples["sdk_register"].append(r["total"])
        samples["sdk_rt1"].append(r["rt1"])
        samples["sdk_rt2"].append(r["rt2"])
        samples["sdk_to_first_send"].append(r["to_first_send"])
        samples["sdk_401_to_second_send"].append(r["401_to_second_send"])
        samples["sdk_200_to_return"].append(r["200_to_return"])
        samples["sdk_client_side"].append(r["total"] - r["rt1"] - r["rt2"])

    async def sdk_connect() -> None:
        samples["sdk_register_connect"].append(await sdk_register_connect(k, *users[2]))

    async def sdk_reregister() -> None:
        sent = len(refresher.sent)
        t0 = time.perf_counter()
        await refresher.phone.register(timeout=10)
        samples["sdk_reregister"].append(time.perf_counter() - t0)
        reregister_round_trips.append(len(refresher.sent) - sent)

    contenders: list[Callable[[], Awaitable[None]]] = [
        floor, raw_reg, sdk_open, sdk_connect, sdk_reregister
    ]
    load_before = load()
    started = time.perf_counter()
    rounds = 0
    for i in range(ITERATIONS):
        if time.perf_counter() - started > LATENCY_BUDGET:
            break
        for j in range(len(contenders)):
            await contenders[(i + j) % len(contenders)]()
        rounds += 1
    elapsed = time.perf_counter() - started
    await raw_ws.close()
    await refresher.phone.unregister(timeout=5)

    stats = {name: summary(v) for name, v in samples.items()}
    floor_med = statistics.median(samples["floor_options"])
    floor_p90 = pct(samples["floor_options"], 90)
    # Per round trip of the SDK's exchange: the whole register() over its two round trips,
    # and each round trip measured at the transport.
    per_rt = [t / 2 for t in samples["sdk_register"]]
    raw_per_rt = [t / 2 for t in samples["raw_register"]]
    stats["sdk_per_round_trip"] = summary(per_rt)
    stats["raw_per_round_trip"] = summary(raw_per_rt)

    def ratio(name: str, values: list[float]) -> dict[str, Any]:
        med = statistics.median(values) / floor_med
        p90 = pct(values, 90) / floor_p90
        return {"what": name, "median_x_floor": round(med, 2), "p90_x_floor": round(p90, 2)}

    ratios = [
        ratio("sdk register() / 2 (per round trip)", per_rt),
        ratio("sdk round trip 1 (REGISTER->401)", samples["sdk_rt1"]),
        ratio("sdk round trip 2 (REGISTER+auth->200)", samples["sdk_rt2"]),
        ratio("raw register / 2 (per round trip)", raw_per_rt),
        ratio("raw round trip 1", samples["raw_rt1"]),
        ratio("raw round trip 2", samples["raw_rt2"]),
        ratio("sdk register() with connect (whole)", samples["sdk_register_connect"]),
        ratio("sdk re-register() with the cached nonce (whole)", samples["sdk_reregister"]),
    ]
    return {
        "rounds": rounds,
        "seconds": round(elapsed, 1),
        "load_before": load_before,
        "load_after": load(),
        "crlf_ping_answered": crlf is not None,
        "crlf_ping_ms": None if crlf is None else round(crlf * 1e3, 3),
        "reregister_single_round_trip": sum(1 for n in reregister_round_trips if n == 1),
        "reregister_rounds": len(reregister_round_trips),
        "stats": stats,
        "ratios": ratios,
    }


# -- scale -----------------------------------------------------------------------------------
async def register_many(
    k: Kamailio, creds: list[tuple[str, str]], concurrency: int
) -> tuple[list[Phone], list[str], float]:
    """Register one phone per credential; returns (registered phones, errors, seconds)."""
    gate = asyncio.Semaphore(concurrency)
    phones: list[Phone] = []
    errors: list[str] = []

    async def one(user: str, password: str) -> None:
        phone = Phone(account(k, user, password))
        async with gate:
            try:
                await phone.register(timeout=STEP_TIMEOUT)
            except Exception as exc:  # counted and reported, never hidden
                errors.append(f"{type(exc).__name__}: {exc}")
                await phone.close()
                return
        phones.append(phone)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(u, p) for u, p in creds))
    return phones, errors, time.perf_counter() - t0


def kamailio_cpu(k: Kamailio) -> float:
    """CPU seconds used so far by every Kamailio process (its process group)."""
    if k.pid is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == k.pid:  # pgrp
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / tick


def own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def server_bindings(k: Kamailio, users: set[str]) -> int:
    result = k.rpc("ul.dump", timeout=30)
    n = 0
    for domain in result.get("Domains", []):
        for entry in domain.get("Domain", {}).get("AoRs", []):
            info = entry.get("Info", {})
            if info.get("AoR") in users and info.get("Contacts"):
                n += 1
    return n


def shm_used(k: Kamailio) -> int | None:
    try:
        return int(k.rpc("core.shmmem")["used"])
    except Exception:
        return None


async def close_all(phones: list[Phone]) -> float:
    t0 = time.perf_counter()
    await asyncio.gather(*(p.unregister(timeout=10) for p in phones), return_exceptions=True)
    return time.perf_counter() - t0


async def scale(k: Kamailio, creds: list[tuple[str, str]]) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    phones: list[Phone] = []
    gc.collect()
    rss0 = rss_kib()
    shm0 = shm_used(k)
    used = 0
    t_start = time.perf_counter()
    for target in SCALE:
        batch = creds[used:target]
        load_before = load()
        cpu0, kcpu0 = own_cpu(), kamailio_cpu(k)
        new, errors, seconds = await register_many(k, batch, CONCURRENCY)
        cpu, kcpu = own_cpu() - cpu0, kamailio_cpu(k) - kcpu0
        used = target
        phones += new
        await asyncio.sleep(0.2)  # let the loop settle before reading memory
        gc.collect()
        rss = rss_kib()
        bound = await asyncio.to_thread(server_bindings, k, {u for u, _ in creds[:target]})
        still = sum(1 for p in phones if p.registered)
        shm = shm_used(k)
        steps.append(
            {
                "target": target,
                "added": len(batch),
                "added_ok": len(new),
                "errors": len(errors),
                "error_samples": sorted(set(errors))[:5],
                "step_seconds": round(seconds, 2),
                "per_phone_ms": round(seconds / max(1, len(batch)) * 1e3, 2),
                "python_cpu_seconds": round(cpu, 2),
                "kamailio_cpu_seconds": round(kcpu, 2),
                "registered_now": still,
                "kamailio_bindings": bound,
                "rss_delta_kib": rss - rss0,
                "rss_per_phone_kib": round((rss - rss0) / max(1, len(phones)), 1),
                "kamailio_shm_per_phone_kib": None
                if shm is None or shm0 is None
                else round((shm - shm0) / 1024 / max(1, len(phones)), 1),
                "load_before": load_before,
            }
        )
    total = time.perf_counter() - t_start
    unreg = await close_all(phones)
    after = await asyncio.to_thread(server_bindings, k, {u for u, _ in creds})
    return {
        "concurrency": CONCURRENCY,
        "steps": steps,
        "total_seconds": round(total, 2),
        "unregister_all_seconds": round(unreg, 2),
        "bindings_left_after_unregister": after,
        "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }


def _short(filename: str) -> str:
    return filename.replace(str(REPO) + "/", "").split("site-packages/")[-1]


async def traced(k: Kamailio, creds: list[tuple[str, str]]) -> dict[str, Any]:
    """Python heap per registered phone vs per bare websockets connection (tracemalloc)."""
    n = len(creds)
    gc.collect()
    tracemalloc.start(1)
    try:
        # Registered phones (fresh users: the ramp's phones have unregistered).
        base = tracemalloc.get_traced_memory()[0]
        before = tracemalloc.take_snapshot()
        phones, errors, seconds = await register_many(k, creds, CONCURRENCY)
        await asyncio.sleep(0.2)
        gc.collect()
        phone_bytes = tracemalloc.get_traced_memory()[0] - base
        diff = tracemalloc.take_snapshot().compare_to(before, "filename")
        del before
        per = max(1, len(phones))
        sites = [
            {
                "file": _short(d.traceback[0].filename),
                "kib_per_phone": round(d.size_diff / 1024 / per, 2),
            }
            for d in diff[:10]
        ]
        await close_all(phones)
        del phones
        await asyncio.sleep(0.5)
        gc.collect()

        # Bare websockets connections (no SIP), same library, to the same server.
        base = tracemalloc.get_traced_memory()[0]
        conns = await asyncio.gather(
            *(ws_open(k.info.ws_url) for _ in range(n)), return_exceptions=True
        )
        ok = [c for c in conns if isinstance(c, ClientConnection)]
        del conns
        gc.collect()
        ws_bytes = tracemalloc.get_traced_memory()[0] - base
        await asyncio.gather(*(c.close() for c in ok), return_exceptions=True)
    finally:
        tracemalloc.stop()
    registered = n - len(errors)
    return {
        "phones": n,
        "registered": registered,
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "seconds_with_tracemalloc": round(seconds, 2),
        "python_heap_per_phone_kib": round(phone_bytes / 1024 / registered, 1)
        if registered
        else None,
        "bare_ws_connections": len(ok),
        "python_heap_per_bare_ws_kib": round(ws_bytes / 1024 / len(ok), 1) if ok else None,
        "top_files_by_growth": sites,
    }


# -- main ------------------------------------------------------------------------------------
async def run(k: Kamailio, scale_creds: list[tuple[str, str]]) -> dict[str, Any]:
    lat = await latency(k)
    sc = await scale(k, scale_creds)
    # Fresh users for the tracemalloc pass (the ramp's bindings were removed).
    tr = await traced(k, scale_creds[:TRACE_PHONES])
    return {"latency": lat, "scale": sc, "tracemalloc": tr}


def main() -> dict[str, Any]:
    reason = netns_skip_reason()
    missing = missing_binaries("kamailio", "rtpengine")
    if reason or missing:
        raise RuntimeError(reason or f"not installed: {', '.join(missing)}")
    fd = raise_fd_limit()
    run_dir = Path(tempfile.mkdtemp(prefix="bench-registration-"))
    n_scale = max(SCALE) if SCALE else 0
    scale_creds = [(f"scale{i:05d}", secrets.token_hex(8)) for i in range(n_scale)]
    certs = make_certs(run_dir / "certs", ("127.0.0.1", "localhost", DOMAIN))
    engine = Rtpengine(run_dir / "rtpengine")
    k = Kamailio(
        run_dir / "kamailio",
        rtpengine_ng_port=engine.ng_port,
        certs=certs,
        users=dict(scale_creds),  # rendered into the config: there at start
        shm_mb=KAMAILIO_SHM_MB,
    )
    failed = True
    try:
        engine.start()
        k.start()
        result = asyncio.run(run(k, scale_creds))
        failed = False
    finally:
        k.stop()
        engine.stop()
        if failed or os.environ.get("BENCH_KEEP"):
            print(f"registration bench: rig files kept in {run_dir}", file=sys.stderr)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)

    lat = result["latency"]
    table = [
        {"measure": name, **{k2: v for k2, v in s.items()}} for name, s in lat["stats"].items()
    ]
    table += [
        {
            "measure": r["what"],
            "median_ms": f"{r['median_x_floor']}x",
            "p90_ms": f"{r['p90_x_floor']}x",
        }
        for r in lat["ratios"]
    ]
    table += [
        {
            "measure": f"scale to {s['target']}",
            "n": f"{s['added_ok']}/{s['added']} ok",
            "median_ms": f"{s['step_seconds']} s",
            "p90_ms": f"{s['rss_per_phone_kib']} KiB rss/phone",
            "min_ms": f"{s['kamailio_bindings']} bound",
            "cpu_s": f"py {s['python_cpu_seconds']} kam {s['kamailio_cpu_seconds']}",
        }
        for s in result["scale"]["steps"]
    ]
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "fd_limit": fd[0],
            "load_end": load(),
        },
        "kamailio_args": f"-m {KAMAILIO_SHM_MB} -M 8, children=2, tcp_children=2",
        **result,
        "table": table,
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
