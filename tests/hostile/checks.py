"""What the hostile suite checks after every attack class, and the run's tallies.

* **crashes**: an exception that reached the event loop's exception handler (including
  "Task exception was never retrieved", reported when a failed task is collected), or an
  exception the SDK caught and logged with a traceback (``logger.exception``: a media step
  that failed, an internal error handling a message). Both mean a bug met the input.
* **hangs**: an operation that must finish did not (a REGISTER round, a sane call, a
  hang-up, the settling of the phone's state).
* **stuck**: after a settle period, a call that has not ended, a dialog still registered
  on the connection, a call-layer transaction binding whose transaction is gone, or a live
  transaction with no timer that would end it (one with a timer ends by itself: RFC 3261
  keeps some for 64*T1).
* **leaks**: growth, from the first repetition of a class to the last, of the objects of
  the SDK's call machinery (``Call``, ``CallSession``, ``Dialog``, transactions,
  ``MediaSession``) that are still alive but no longer part of a live call or of the
  connection's tables, or of traced memory beyond a bound.

The phone's tables are read through private attributes (``Phone._ua``, ``Phone._calls``,
``CallLayer._tx_calls``): the SDK has no public accessor for them.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import tracemalloc
from dataclasses import dataclass, field
from typing import Any

from exotel_voice.client import Call, Phone
from exotel_voice.media import MediaSession
from exotel_voice.sip.calls import CallSession
from exotel_voice.sip.dialog import Dialog
from exotel_voice.sip.transaction import Transaction


@dataclass
class Tally:
    """Counts over the whole run (printed by conftest's ``pytest_terminal_summary``)."""

    inputs: int = 0
    crashes: int = 0
    hangs: int = 0
    stuck: int = 0
    leaks: int = 0
    classes: dict[str, str] = field(default_factory=dict)


TALLY = Tally()

WATCHED: tuple[type, ...] = (Call, CallSession, Dialog, Transaction, MediaSession)


class Observer(logging.Handler):
    """Loop exception handler plus a log handler for tracebacks logged by the SDK."""

    WATCH_LOGGERS = ("exotel_voice", "aiortc", "aioice")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.loop_errors: list[str] = []
        self.logged: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._old_handler: Any = None

    def install(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._old_handler = self._loop.get_exception_handler()
        self._loop.set_exception_handler(self._on_loop_error)
        for name in self.WATCH_LOGGERS:
            logging.getLogger(name).addHandler(self)

    def uninstall(self) -> None:
        if self._loop is not None:
            self._loop.set_exception_handler(self._old_handler)
        for name in self.WATCH_LOGGERS:
            logging.getLogger(name).removeHandler(self)

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        self.loop_errors.append(f"{context.get('message')}: {exc!r}")

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[0] is not None:
            self.logged.append(f"{record.name}: {record.getMessage()} "
                               f"({record.exc_info[0].__name__}: {record.exc_info[1]})")

    def take(self) -> list[str]:
        out = [f"loop: {e}" for e in self.loop_errors] + [f"logged: {e}" for e in self.logged]
        self.loop_errors.clear()
        self.logged.clear()
        return out


def retained_objects(phone: Phone) -> dict[str, int]:
    """Objects of the call machinery that are alive but no longer in use: not a live call,
    a live call's session, dialog or media, nor a transaction of the connection."""
    ua = phone._ua
    conn = ua.connection
    live: set[int] = set()

    def keep(session: CallSession) -> None:
        """A session in use keeps its dialog and the transactions it last ran."""
        live.add(id(session))
        for held in (session.dialog, session._invite_tx, session._reinvite_tx,
                     session._info_tx):
            if held is not None:
                live.add(id(held))

    for call in phone.calls:
        live.update((id(call), id(call._session)))
        if call.media is not None:
            live.add(id(call.media))
    for session in ua.calls.values():
        keep(session)
    if conn is not None:
        live.update(id(d) for d in conn.dialogs)
        live.update(id(tx) for tx in conn.transactions)
    # A live transaction of an ended call keeps its session (for up to 64*T1).
    for key, (_kind, session) in ua.call_layer._tx_calls.items():
        if key in live:
            keep(session)
    # INVITEs of ours that got a 2xx are remembered for 64*T1 to ACK late 2xx (RFC 6026).
    for record in getattr(ua.call_layer, "_answered", {}).values():
        keep(record.call)
    counts = {t.__name__: 0 for t in WATCHED}
    for obj in gc.get_objects():
        if isinstance(obj, WATCHED) and id(obj) not in live:
            for t in WATCHED:
                if isinstance(obj, t):
                    counts[t.__name__] += 1
    return counts


def stuck_state(phone: Phone, now: float) -> list[str]:
    """What is left in the phone's tables that should not be (see the module docstring)."""
    problems: list[str] = []
    live = phone.calls
    if live:
        problems.append(f"Phone.calls not empty: {live}")
    ua = phone._ua
    if ua.calls:
        problems.append(f"UserAgent.calls not empty: {list(ua.calls.values())}")
    conn = ua.connection
    transactions = conn.transactions if conn is not None else []
    if conn is not None and conn.dialogs:
        problems.append(f"SipConnection.dialogs not empty: {conn.dialogs}")
    horizon = 64 * ua.t1 + 2.0
    for tx in transactions:
        deadline = tx.get_timer()
        if deadline is None:
            problems.append(f"transaction with no timer: {tx!r} in {tx.state.name}")
        elif deadline > now + horizon:
            problems.append(f"transaction timer too far: {tx!r} in {deadline - now:.0f} s")
    alive = {id(tx) for tx in transactions}
    orphans = [owner for key, owner in ua.call_layer._tx_calls.items() if key not in alive]
    if orphans:
        problems.append(f"CallLayer keeps {len(orphans)} bindings of finished transactions")
    return problems


class Memory:
    """Object counts and traced memory, from a reference point (after the first repetition)."""

    #: Traced growth tolerated between the first and the last repetition of a class. Live
    #: transactions that wait out RFC 3261 timers (up to 64*T1 = 32 s) hold their messages,
    #: and the repetitions are seconds apart, so this is a bound for gross leaks; the object
    #: counts are the precise check.
    LIMIT = 1024 * 1024

    def __init__(self) -> None:
        self.base_counts: dict[str, int] = {}
        self.base: tracemalloc.Snapshot | None = None

    @staticmethod
    def _snapshot() -> tracemalloc.Snapshot:
        snap = tracemalloc.take_snapshot()
        return snap.filter_traces([
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, logging.__file__),
            tracemalloc.Filter(False, "*/_pytest/*"),
            tracemalloc.Filter(False, "*/pluggy/*"),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
            tracemalloc.Filter(False, "<unknown>"),
        ])

    def start(self, phone: Phone) -> None:
        gc.collect()
        self.base_counts = retained_objects(phone)
        self.base = self._snapshot() if tracemalloc.is_tracing() else None

    def growth(self, phone: Phone) -> tuple[list[str], int]:
        gc.collect()
        counts = retained_objects(phone)
        problems = [
            f"{name}: {self.base_counts.get(name, 0)} -> {n} objects kept after use"
            for name, n in counts.items()
            if n > self.base_counts.get(name, 0) + (2 if name == "Transaction" else 0)
        ]
        grown = 0
        if self.base is not None and tracemalloc.is_tracing():
            stats = self._snapshot().compare_to(self.base, "lineno")
            grown = sum(s.size_diff for s in stats)
            if grown > self.LIMIT:
                top = sorted(stats, key=lambda s: -s.size_diff)[:3]
                where = ", ".join(f"{s.traceback[0].filename.rsplit('/', 1)[-1]}:"
                                  f"{s.traceback[0].lineno} +{s.size_diff // 1024} KiB"
                                  for s in top)
                problems.append(f"traced memory grew {grown // 1024} KiB ({where})")
        return problems, grown
