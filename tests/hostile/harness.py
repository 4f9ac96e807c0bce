"""Runs one attack class against a phone, then checks what every class must leave behind.

:func:`run_class` repeats the attack (a fresh random seed per repetition where it uses one),
lets the phone settle after each, and then checks: no crash (loop exception or logged
traceback), nothing stuck in the phone's tables, no growth of call objects or traced memory
from the first repetition to the last, and a sane REGISTER round plus a real call to
``echo`` that connects, carries audio and ends. Expected responses are checked by the attack
itself through :meth:`Ctx.check`, which records a failure and lets the class go on, so one
run reports every problem of a class.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from exotel_voice.client import Call, Phone
from exotel_voice.client.events import PhoneEvent, RegistrationStateChanged
from tests.labels import call_label, is_flow

from .checks import TALLY, Memory, Observer, stuck_state
from .server import HostileServer


@dataclass
class Ctx:
    """What an attack gets: the phone, the hostile server, and soft assertions."""

    phone: Phone
    hostile: HostileServer
    observer: Observer
    failures: list[str] = field(default_factory=list)
    hangs: int = 0
    rep: int = 0
    #: Reject incoming calls as they ring (else they are only taken off the queue).
    auto_reject: bool = True
    events: list[PhoneEvent] = field(default_factory=list)

    def check(self, ok: object, message: str) -> bool:
        if not ok:
            self.failures.append(message)
        return bool(ok)

    def hang(self, message: str) -> None:
        self.hangs += 1
        self.failures.append(f"hang: {message}")

    @property
    def aor(self) -> str:
        return self.phone.account.aor

    @property
    def sent_by(self) -> str:
        """The host of the phone's Via (so a response to it passes the sent-by check)."""
        return self.phone._ua.contact.sip_uri.host

    def call_events(self, call: Call) -> list[str]:
        return [call_label(e) for e in self.events if is_flow(e) and e.call is call]

    def reg_events(self) -> list[RegistrationStateChanged]:
        return [e for e in self.events if isinstance(e, RegistrationStateChanged)]


Attack = Callable[[Ctx], Awaitable[None]]


async def _take_incoming(ctx: Ctx) -> None:
    while True:
        call = await ctx.phone.next_incoming_call()
        if ctx.auto_reject and not call.ended:
            with contextlib.suppress(Exception):
                await call.reject(486)
        del call


async def settle(ctx: Ctx, timeout: float = 6.0) -> None:
    """Wait until no call is live (or ``timeout``), then let late callbacks run."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline and (ctx.phone.calls or ctx.phone._ua.calls):
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    gc.collect()
    for _ in range(3):
        await asyncio.sleep(0)


async def sane_round(ctx: Ctx) -> list[str]:
    """A REGISTER round and a real call to ``echo`` through the relay. Returns problems."""
    problems: list[str] = []
    ctx.hostile.reset()
    try:
        await ctx.phone.register(timeout=12)
    except TimeoutError:
        ctx.hangs += 1
        return ["sane round: REGISTER did not complete in 12 s (hang)"]
    except Exception as exc:  # noqa: BLE001 - report whatever it was
        return [f"sane round: REGISTER failed: {exc!r}"]
    call: Call | None = None
    try:
        call = await ctx.phone.dial("echo")
        await call.wait_connected(10)
        async with asyncio.timeout(5):
            async for _frame in call.received_frames():
                break
    except TimeoutError:
        ctx.hangs += 1
        problems.append("sane round: the call to echo did not connect or carry audio (hang)")
    except Exception as exc:  # noqa: BLE001
        problems.append(f"sane round: the call to echo failed: {exc!r}")
    if call is not None:
        try:
            async with asyncio.timeout(6):
                await call.hangup()
                await call.wait_ended()
        except TimeoutError:
            ctx.hangs += 1
            problems.append("sane round: hangup() of the echo call did not end it (hang)")
        del call
    return problems


async def run_class(name: str, ctx: Ctx, attack: Attack, *, reps: int = 3,
                    time_limit: float = 60.0) -> None:
    """Run ``attack`` ``reps`` times, check everything, record the tallies, raise on failure."""
    observer = ctx.observer
    ctx.phone.add_listener(ctx.events.append)
    taker = asyncio.create_task(_take_incoming(ctx))
    memory = Memory()
    crashes: list[str] = []
    stuck: list[str] = []
    leaks: list[str] = []
    inputs_before = ctx.hostile.inputs
    # pytest keeps every log record of a test, and the SDK's warnings about rejected input
    # carry the exception (with its traceback: frames, raw data, parsed message) as an
    # argument, so kept records would look like a leak of the phone. The SDK's records go
    # to the observer only while the attack runs.
    sdk_logger = logging.getLogger("exotel_voice")
    sdk_logger.propagate = False
    tracemalloc.start()
    try:
        for rep in range(reps):
            ctx.rep = rep
            ctx.hostile.reset()
            try:
                async with asyncio.timeout(time_limit):
                    await attack(ctx)
            except TimeoutError:
                ctx.hang(f"rep {rep}: the attack did not finish in {time_limit:.0f} s")
            except AssertionError as exc:
                ctx.failures.append(f"rep {rep}: {exc}")
            except Exception as exc:  # noqa: BLE001 - an unexpected error is a finding
                ctx.failures.append(f"rep {rep}: the attack raised {exc!r}")
            ctx.hostile.reset()
            await settle(ctx)
            ctx.events.clear()  # (the events hold their calls)
            if rep == 0:
                memory.start(ctx.phone)
        crashes += observer.take()
        stuck += stuck_state(ctx.phone, asyncio.get_running_loop().time())
        grown, _size = memory.growth(ctx.phone)
        leaks += grown
    finally:
        tracemalloc.stop()
        sdk_logger.propagate = True
    problems = await sane_round(ctx)
    await settle(ctx)
    crashes += observer.take()
    stuck += [f"after the sane round: {p}" for p in stuck_state(
        ctx.phone, asyncio.get_running_loop().time())]
    taker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await taker
    # Tally (real counts of this run).
    TALLY.inputs += ctx.hostile.inputs - inputs_before
    TALLY.crashes += len(crashes)
    TALLY.hangs += ctx.hangs
    TALLY.stuck += len(stuck)
    TALLY.leaks += len(leaks)
    everything = (
        _dedupe(ctx.failures)
        + [f"crash: {c}" for c in _dedupe(crashes)]
        + [f"stuck: {s}" for s in stuck]
        + [f"leak: {x}" for x in leaks]
        + problems
    )
    TALLY.classes[name] = "passes" if not everything else f"FAILS ({len(everything)}): " + \
        " | ".join(everything)[:400]
    assert not everything, f"{name}:\n  " + "\n  ".join(everything)


def _dedupe(items: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    for item in items:
        key = item.split(": ", 1)[1] if item.startswith("rep ") else item
        seen[key] = seen.get(key, 0) + 1
    return [k if n == 1 else f"{k} (x{n})" for k, n in seen.items()]


def first(items: list[Any]) -> Any:
    return items[0] if items else None
