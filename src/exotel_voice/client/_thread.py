"""An asyncio event loop in a background thread, for the synchronous ``ExotelWebClient``.

Each :class:`~exotel_voice.client.facade.ExotelWebClient` owns one :class:`LoopThread` (one
daemon thread per client). Synchronous code hands work to the loop with :meth:`LoopThread.submit`
(a coroutine factory) or :meth:`LoopThread.call` (a plain function) and gets an
:class:`OpFuture` back at once; the facade's callbacks run on the loop thread.

Waiting on an :class:`OpFuture` from the loop thread itself (from inside a callback) would
deadlock, so :meth:`OpFuture.result` refuses to, raising
:class:`~exotel_voice.exceptions.InvalidState`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from ..exceptions import InvalidState


__all__ = ["LoopThread", "OpFuture"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class OpFuture(concurrent.futures.Future[T], Generic[T]):
    """A :class:`concurrent.futures.Future` for work done on a client's loop thread.

    Use it from synchronous code: ``call.Hold().result(timeout=5)``. Calling :meth:`result`
    or :meth:`exception` on an unfinished future from the loop thread (that is, inside a
    callback) raises :class:`InvalidState` instead of deadlocking.
    """

    def __init__(self, owner: LoopThread | None) -> None:
        super().__init__()
        self._owner = owner

    def _check_wait(self) -> None:
        owner = self._owner
        if owner is not None and owner.in_loop_thread and not self.done():
            raise InvalidState(
                "cannot wait for an operation from inside a callback (it runs on the "
                "client's event-loop thread and would deadlock); use add_done_callback()"
            )

    def result(self, timeout: float | None = None) -> T:
        """The result, waiting up to ``timeout`` seconds (see the class docstring)."""
        self._check_wait()
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The exception, waiting up to ``timeout`` seconds (see the class docstring)."""
        self._check_wait()
        return super().exception(timeout)

    @classmethod
    def failed(cls, exc: BaseException) -> OpFuture[Any]:
        """A future that has already failed with ``exc``."""
        fut: OpFuture[Any] = cls(None)
        fut.set_exception(exc)
        return fut

    @classmethod
    def completed(cls, value: Any) -> OpFuture[Any]:
        """A future that already holds ``value``."""
        fut: OpFuture[Any] = cls(None)
        fut.set_result(value)
        return fut


class LoopThread:
    """A new asyncio event loop running forever in a daemon thread.

    Args:
        name: the thread's name (shown in tracebacks and ``threading.enumerate()``).
    """

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._closed = False
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running"
        return f"<LoopThread {self._thread.name} {state}>"

    @property
    def in_loop_thread(self) -> bool:
        """Whether the caller runs on this loop's thread."""
        return threading.get_ident() == self._thread.ident

    @property
    def closed(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._closed

    @property
    def thread(self) -> threading.Thread:
        """The thread the loop runs on (where callbacks run)."""
        return self._thread

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    self.loop.run_until_complete(
                        asyncio.gather(*pending, return_exceptions=True)
                    )
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            finally:
                self.loop.close()

    def submit(self, factory: Callable[[], Awaitable[T]]) -> OpFuture[T]:
        """Run ``factory()`` (a coroutine function) as a task on the loop.

        Returns at once. The future is cancelled-through: cancelling it cancels the task.
        After :meth:`stop`, returns a future failed with :class:`InvalidState`.
        """
        fut: OpFuture[T] = OpFuture(self)

        def start() -> None:
            if fut.cancelled():
                return
            try:
                task = asyncio.ensure_future(factory())
            except BaseException as exc:  # the factory itself failed
                fut.set_exception(exc)
                return

            def done(t: asyncio.Future[T]) -> None:
                if fut.done():
                    return
                if t.cancelled():
                    fut.cancel()
                elif (exc := t.exception()) is not None:
                    fut.set_exception(exc)
                else:
                    fut.set_result(t.result())

            task.add_done_callback(done)

            def cancel_task(f: concurrent.futures.Future[T]) -> None:
                if f.cancelled() and not task.done():
                    self.loop.call_soon_threadsafe(task.cancel)

            fut.add_done_callback(cancel_task)

        if not self._schedule(start):
            fut.set_exception(InvalidState("the client is closed"))
        return fut

    def call(self, fn: Callable[[], T]) -> OpFuture[T]:
        """Run the plain function ``fn()`` on the loop thread; returns at once."""
        fut: OpFuture[T] = OpFuture(self)

        def run() -> None:
            if fut.cancelled():
                return
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

        if not self._schedule(run):
            fut.set_exception(InvalidState("the client is closed"))
        return fut

    def run(self, factory: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        """Run ``factory()`` on the loop and wait for its result (not from the loop thread).

        Raises:
            InvalidState: called from the loop thread, or the loop is stopped.
            TimeoutError: no result within ``timeout`` seconds (the task is cancelled).
        """
        if self.in_loop_thread:
            raise InvalidState("a blocking call cannot be made from a callback")
        fut = self.submit(factory)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise TimeoutError(f"no result within {timeout} s") from None

    def _schedule(self, fn: Callable[[], None]) -> bool:
        with self._lock:
            if self._closed:
                return False
            try:
                self.loop.call_soon_threadsafe(fn)
            except RuntimeError:  # loop closed underneath us
                return False
            return True

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel every task, stop the loop and join the thread (unless called from it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self.loop.call_soon_threadsafe(self.loop.stop)
            except RuntimeError:
                return
        if not self.in_loop_thread:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("! %s did not stop within %g s", self._thread.name, timeout)
