"""A :class:`~.server.Sandbox` on its own event loop in a background thread.

This is what the pytest plugin hands to tests: it works the same whether the test is
synchronous or asynchronous, and whatever event loop (or loop scope) the test uses, since
the application under test only talks to the sandbox over sockets. Blocking helpers are
plain methods; helpers that wait for something are ``async`` so that the caller's own loop
(and the application running on it) keeps going while they wait.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from ..exceptions import InvalidState
from .numbers import IvrApp
from .rest import call_resource, http_request
from .server import Sandbox, SandboxCall, SandboxConfig


__all__ = ["SandboxThread"]

T = TypeVar("T")


class SandboxThread:
    """Runs a sandbox in a daemon thread; use as a context manager or start()/stop().

    Args:
        config: the sandbox's settings (ports 0 pick free ports).
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig(ws_port=0, wss_port=0, http_port=0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._sandbox: Sandbox | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        return f"<SandboxThread {self._sandbox!r}>"

    # -- life cycle ----------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> None:
        """Start the thread and wait until the sandbox listens."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="exotel-voice sandbox",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the sandbox did not start in time")
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            self._sandbox = Sandbox(self.config)
            await self._sandbox.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self._sandbox.close()

    def stop(self, timeout: float = 15.0) -> None:
        """Close the sandbox and end the thread."""
        if self._thread is None or self._loop is None or self._stop is None:
            return
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        self._thread = None
        self._sandbox = None

    def __enter__(self) -> SandboxThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- running things on the sandbox's loop --------------------------------------------
    @property
    def sandbox(self) -> Sandbox:
        """The sandbox itself. Read its state only; act through this class's methods."""
        if self._sandbox is None:
            raise InvalidState("the sandbox is not running")
        return self._sandbox

    def _submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if self._loop is None or self._sandbox is None:
            coro.close()
            raise InvalidState("the sandbox is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run(self, fn: Callable[[Sandbox], Awaitable[T]], timeout: float = 30.0) -> T:
        """Run ``await fn(sandbox)`` on the sandbox's loop and block for the result."""

        async def call() -> T:
            return await fn(self.sandbox)

        return self._submit(call()).result(timeout)

    async def arun(self, fn: Callable[[Sandbox], Awaitable[T]]) -> T:
        """Like :meth:`run`, awaited from another event loop without blocking it."""

        async def call() -> T:
            return await fn(self.sandbox)

        return await asyncio.wrap_future(self._submit(call()))

    # -- addresses and credentials -------------------------------------------------------
    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:<port>/ws``."""
        return self.sandbox.ws_url

    @property
    def wss_url(self) -> str:
        """``wss://127.0.0.1:<port>/wss`` (trust :attr:`ca_file`)."""
        return self.sandbox.wss_url

    @property
    def rest_url(self) -> str:
        """``http://127.0.0.1:<port>/v1/Accounts/<sid>``."""
        return self.sandbox.rest_url

    @property
    def ca_file(self) -> str | None:
        """The self-signed certificate to trust for ``wss``."""
        return self.sandbox.ca_file

    @property
    def users(self) -> dict[str, str]:
        """SIP user -> password."""
        return dict(self.sandbox.users)

    @property
    def api_key(self) -> str:
        """The REST API key."""
        return self.config.api_key or ""

    @property
    def api_token(self) -> str:
        """The REST API token."""
        return self.config.api_token or ""

    def sip_account_info(self, user: str = "agent", *, secure: bool = False) -> dict[str, Any]:
        """The guide's ``sipAccountInfo`` for ``user`` (feed it to ``AccountConfig``)."""
        return self.sandbox.sip_account_info(user, secure=secure)

    # -- calls ---------------------------------------------------------------------------
    async def connect(
        self, from_: str, to: str, caller_id: str = "08000000000", **options: float | None
    ) -> str:
        """Click-to-call, as ``POST Calls/connect`` (without HTTP): ring ``from_``, then
        connect ``to``. Returns the call Sid (the ``X-Exotel-Callsid`` ``from_`` sees).

        Raises:
            ValueError: unknown user or number.
        """

        async def start(sb: Sandbox) -> str:
            return sb.connect(from_, to, caller_id, **options).sid

        return await self.arun(start)

    async def rest(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """Call the REST emulation over HTTP with the right credentials.

        Args:
            method: ``"GET"`` or ``"POST"``.
            path: below the account, e.g. ``"/Calls/connect.json"``.
            form: form fields for a POST.

        Returns:
            The status and the parsed JSON (for ``.json`` paths) or the XML text.
        """
        status, text = await http_request(
            method, self.rest_url + path, username=self.api_key, password=self.api_token,
            form=form,
        )
        return status, json.loads(text) if path.split("?")[0].endswith(".json") else text

    async def wait_registered(self, user: str = "agent", timeout: float = 10.0) -> None:
        """Wait until ``user`` has registered."""

        async def wait(sb: Sandbox) -> None:
            await sb.wait_registered(user, timeout)

        await self.arun(wait)

    def _call(self, sid: str) -> SandboxCall:
        call = self.sandbox.find_call(sid)
        if call is None:
            raise KeyError(f"no call {sid}")
        return call

    async def wait_call_ended(self, sid: str, timeout: float = 30.0) -> str:
        """Wait until the call has a final status; returns it."""

        async def wait(_: Sandbox) -> str:
            call = self._call(sid)
            await call.wait_ended(timeout)
            return call.status

        return await self.arun(wait)

    def call(self, sid: str) -> dict[str, Any]:
        """The call's details, as ``GET Calls/<Sid>.json`` returns them."""
        return call_resource(self._call(sid), self.config.account_sid, json_suffix=True)

    def last_call(self) -> dict[str, Any] | None:
        """The newest call's details (any direction), or ``None``."""
        calls = self.sandbox.calls
        if not calls:
            return None
        return call_resource(calls[-1], self.config.account_sid, json_suffix=True)

    def ivr_digits(self, sid: str) -> str:
        """The digits the ``ivr`` number received on this call."""
        app = self._call(sid).app
        return app.digits if isinstance(app, IvrApp) else ""

    def hangup(self, sid: str) -> None:
        """The sandbox hangs the call up (BYE / CANCEL)."""
        call = self._call(sid)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(call.hangup)
