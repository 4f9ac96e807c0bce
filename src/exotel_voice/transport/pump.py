"""The asyncio pump around a sans-I/O SIP object: feed bytes in, write bytes out, re-arm timers.

The SIP core (:class:`~exotel_voice.sip.useragent.UserAgent`, or a server's per-flow core
built on :class:`~exotel_voice.sip.connection.SipConnection`) never does I/O and never reads
a clock. Whoever runs it on asyncio must do three things, and only these (style guide §3.2,
as aioquic's ``QuicConnectionProtocol`` does for QUIC):

1. feed each received message to ``core.receive_data(data, now)``;
2. after *every* call into the core, write ``core.data_to_send()`` out, in order;
3. re-arm ``loop.call_at(core.get_timer(), ...)`` to call ``core.handle_timer(now)`` (the
   pump keeps an armed timer whose deadline is earlier than the core's: ``handle_timer``
   must do nothing when nothing is due, which every core here does).

:class:`Pump` does exactly that, for the phone (:class:`~exotel_voice.client.Phone`) and for
each client flow of the sandbox alike. Its owner runs commands through :meth:`Pump.run` (or
calls :meth:`Pump.flush` after touching the core), and drains the core's events in the
``after`` callback, which runs after each flush, before the timer is re-armed.

Messages leave in the order the core produced them even though ``send`` may suspend: while
one write is unfinished, later ones wait in a queue that one writer task works through.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar


__all__ = ["Pump", "SansIOCore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class SansIOCore(Protocol):
    """What the pump needs of a sans-I/O object (time is always passed in)."""

    def receive_data(self, data: str | bytes, now: float) -> None:
        """Process one received message."""

    def data_to_send(self) -> list[bytes]:
        """Return and forget the messages to write, one transport message each."""

    def get_timer(self) -> float | None:
        """The earliest deadline, on the loop's clock, or ``None``."""

    def handle_timer(self, now: float) -> None:
        """Fire what is due at ``now`` (the pump may call it early, when nothing is due)."""


class Pump:
    """Drives one sans-I/O core on the running event loop.

    Args:
        core: the sans-I/O object.
        send: writes one message; called one message at a time, in order, by the pump's
            writer task. It should handle its own transport errors (an exception is logged
            and the message dropped; writing carries on).
        after: called after each flush (the owner drains and handles the core's events
            there; it may run more commands, which flush again).
        name: for the writer task's name and logs.
    """

    def __init__(
        self,
        core: SansIOCore,
        send: Callable[[bytes], Coroutine[Any, Any, None]],
        *,
        after: Callable[[], None] | None = None,
        name: str = "sip",
    ) -> None:
        self.core = core
        self.name = name
        self._send = send
        self._after = after
        self._loop = asyncio.get_running_loop()
        # Messages not written yet, in order.
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._timer: asyncio.TimerHandle | None = None
        self._timers = True
        self._writer = self._loop.create_task(self._write_loop(), name=f"{name} writer")

    def __repr__(self) -> str:
        return f"<Pump {self.name} queued={self._queue.qsize()}>"

    def now(self) -> float:
        """The clock the core runs on: the event loop's."""
        return self._loop.time()

    def receive_data(self, data: str | bytes) -> None:
        """Feed one received message to the core, then flush."""
        self.run(lambda now: self.core.receive_data(data, now))

    def run(self, action: Callable[[float], T]) -> T:
        """Run ``action(now)`` on the core, then flush; returns what ``action`` returned.

        If ``action`` raises, nothing is flushed (the next flush writes what it queued).
        """
        result = action(self.now())
        self.flush()
        return result

    def flush(self) -> None:
        """Queue the core's output for writing, call ``after``, and re-arm the timer.

        What the core produces while ``after`` handles its events (a reply sent by an event
        handler) is written in this same flush, not left for the next one.
        """
        self._write_out()
        if self._after is not None:
            self._after()
            self._write_out()
        self._arm_timer()

    def _write_out(self) -> None:
        for data in self.core.data_to_send():
            self._queue.put_nowait(data)

    def stop_timer(self) -> None:
        """Cancel the timer and never re-arm it (the owner is closing); writes go on."""
        self._timers = False
        self._cancel_timer()

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything queued has been written (or ``timeout``); ``True`` if so."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            return False
        return True

    async def aclose(self, *, drain: float | None = 0.0) -> None:
        """Stop the timer and the writer.

        Args:
            drain: first wait this long for queued messages to be written (``None``: until
                they are); ``0`` drops them.
        """
        self.stop_timer()
        if drain is None or drain > 0:
            await self.drain(drain)
        self._writer.cancel()
        try:
            await self._writer
        except asyncio.CancelledError:
            pass

    # -- internals ---------------------------------------------------------------------------
    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm_timer(self) -> None:
        # Re-armed only when the core's deadline comes *earlier* than the armed one. A
        # deadline that moved later (the usual case: each new transaction or refresh pushes
        # it out) keeps the armed timer, which then fires early: the core finds nothing due
        # and the flush after it arms the real deadline. That costs one spare wake-up now and
        # then instead of a cancel and a heap push on nearly every flush.
        if not self._timers:
            return
        deadline = self.core.get_timer()
        if deadline is None:
            return  # an armed timer may still fire: harmless, as above
        timer = self._timer
        if timer is not None:
            if timer.when() <= deadline:
                return
            timer.cancel()
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.run(self.core.handle_timer)

    async def _write_loop(self) -> None:
        while True:
            data = await self._queue.get()
            try:
                await self._send(data)
            except Exception:
                logger.exception("! %s: could not write a message", self.name)
            finally:
                self._queue.task_done()

