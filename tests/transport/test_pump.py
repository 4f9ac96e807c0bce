"""The shared asyncio pump: feeds a sans-I/O core, writes in order, re-arms the timer.

Its two users are exercised end to end in tests/client/test_phone_resilience.py (Phone) and
tests/sandbox/ (the sandbox's flows).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from exotel_voice.transport.pump import Pump


class Core:
    """A sans-I/O double: echoes input as output and fires deadlines it is given."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.deadlines: list[float] = []
        self.fired: list[float] = []

    def receive_data(self, data: str | bytes, now: float) -> None:
        raw = data.encode() if isinstance(data, str) else data
        self.out.extend([raw + b"-1", raw + b"-2"])

    def data_to_send(self) -> list[bytes]:
        out, self.out = self.out, []
        return out

    def get_timer(self) -> float | None:
        return min(self.deadlines) if self.deadlines else None

    def handle_timer(self, now: float) -> None:
        due = [d for d in self.deadlines if d <= now]
        self.deadlines = [d for d in self.deadlines if d > now]
        self.fired.extend(due)
        self.out.append(b"timer")


async def test_writes_in_order_even_when_send_suspends() -> None:
    core = Core()
    written: list[bytes] = []

    async def send(data: bytes) -> None:
        await asyncio.sleep(0.01 if data.endswith(b"-1") else 0)
        written.append(data)

    pump = Pump(core, send, name="test")
    pump.receive_data("a")
    pump.receive_data(b"b")
    assert await pump.drain(2.0)
    assert written == [b"a-1", b"a-2", b"b-1", b"b-2"]
    await pump.aclose()


async def test_timer_is_rearmed_after_every_flush_and_after_runs_each_time() -> None:
    core = Core()
    written: list[bytes] = []
    flushes = 0

    async def send(data: bytes) -> None:
        written.append(data)

    def after() -> None:
        nonlocal flushes
        flushes += 1

    pump = Pump(core, send, after=after)
    started: list[float] = []

    def command(t: float) -> str:
        started.append(t)
        core.deadlines.extend([t + 0.05, t + 0.02])
        return "done"

    assert pump.run(command) == "done"
    now = started[0]
    await asyncio.sleep(0.15)
    assert core.fired == [now + 0.02, now + 0.05]  # one at a time, the earliest first
    assert written == [b"timer", b"timer"]
    assert flushes == 3  # the command, then one per timer
    await pump.aclose()


def _send_failing_on(bad: bytes, written: list[bytes]) -> Callable[[bytes], Awaitable[None]]:
    """A send that raises OSError for ``bad`` and records every other message."""

    async def send(data: bytes) -> None:
        if data == bad:
            raise OSError("boom")
        written.append(data)

    return send


async def test_stop_timer_and_a_failing_send_do_not_stop_writes() -> None:
    core = Core()
    written: list[bytes] = []
    pump = Pump(core, _send_failing_on(b"x-1", written))
    pump.run(lambda t: core.deadlines.append(t + 0.01))
    pump.stop_timer()
    pump.receive_data("x")
    await asyncio.sleep(0.05)
    assert core.fired == [], "no timer after stop_timer()"
    assert written == [b"x-2"], "a failed write is dropped, the next one still goes"
    await pump.aclose(drain=1.0)


async def test_output_produced_while_after_runs_is_written_in_the_same_flush() -> None:
    core = Core()
    written: list[bytes] = []

    async def send(data: bytes) -> None:
        written.append(data)

    def after() -> None:
        # An event handler replying through the core (the sandbox's call layer does this).
        if b"reply" not in core.out and not any(w == b"reply" for w in written):
            core.out.append(b"reply")

    pump = Pump(core, send, after=after)
    pump.receive_data(b"in")
    await pump.drain(1.0)
    assert written == [b"in-1", b"in-2", b"reply"]
    await pump.aclose()


async def test_a_later_deadline_keeps_the_armed_timer_and_still_fires_on_time() -> None:
    core = Core()

    async def send(data: bytes) -> None:
        pass

    pump = Pump(core, send)
    calls: list[float] = []
    real = core.handle_timer

    def handle_timer(now: float) -> None:
        calls.append(now)
        real(now)

    core.handle_timer = handle_timer  # type: ignore[method-assign]
    start = pump.now()
    pump.run(lambda t: core.deadlines.append(start + 0.02))
    armed = pump._timer
    # The deadline moves later (as when a new transaction replaces a finished one): the
    # armed timer stays, fires early with nothing due, and the real deadline follows.
    pump.run(lambda t: setattr(core, "deadlines", [start + 0.06]))
    assert pump._timer is armed
    await asyncio.sleep(0.1)
    assert core.fired == [start + 0.06]
    assert len(calls) == 2 and start + 0.02 <= calls[0] < start + 0.06 <= calls[1]
    # An earlier deadline replaces the armed timer.
    base = pump.now()
    pump.run(lambda t: core.deadlines.append(base + 0.08))
    armed = pump._timer
    pump.run(lambda t: core.deadlines.append(base + 0.03))
    assert pump._timer is not armed and armed is not None and armed.cancelled()
    await asyncio.sleep(0.15)
    assert core.fired == [start + 0.06, base + 0.03, base + 0.08]
    await pump.aclose()
