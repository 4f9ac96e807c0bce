"""One client WebSocket connection to the sandbox: the asyncio pump around a SipConnection.

The flow does what :mod:`exotel_voice.sip.connection` asks of its I/O layer and nothing
more: feed each WebSocket message in, write each outgoing message out (as a text frame,
which SIP.js and our client both read), re-arm the transaction timer, and hand every event
to the sandbox. Requests the sandbox sends get their responses routed back to the
callback registered for their transaction.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ..sip.connection import SipConnection
from ..sip.dialog import Dialog, DialogId
from ..sip.events import Event
from ..sip.message import Request, Response
from ..sip.transaction import ClientTransaction


if TYPE_CHECKING:
    from .legs import Leg
    from .server import Sandbox

__all__ = ["Flow"]

logger = logging.getLogger(__name__)

_ids = itertools.count(1)

#: ``callback(event)`` for the events of one client transaction we started.
TransactionCallback = Callable[[Event], None]


class Flow:
    """One WebSocket client of the sandbox.

    Attributes:
        id: a small number, for logs.
        secure: whether the client came in over ``wss``.
        remote: the client's ``host:port``.
        conn: the sans-I/O SIP connection.
        legs: the call legs on this flow, by dialog id.
    """

    def __init__(self, sandbox: Sandbox, ws: ServerConnection, *, secure: bool) -> None:
        self.id = next(_ids)
        self.sandbox = sandbox
        self.ws = ws
        self.secure = secure
        address = ws.remote_address
        self.remote = f"{address[0]}:{address[1]}" if address else "?"
        self.conn = SipConnection(
            reliable=True,
            via_transport="WSS" if secure else "WS",
            via_host=sandbox.config.host,
        )
        self.legs: dict[DialogId, Leg] = {}
        self.closed = False
        self._tx_callbacks: dict[int, TransactionCallback] = {}
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._timer: asyncio.TimerHandle | None = None
        self._pumping = False

    def __repr__(self) -> str:
        return f"<Flow {self.id} {'wss' if self.secure else 'ws'} {self.remote}>"

    # -- the asyncio side ------------------------------------------------------------------
    async def serve(self) -> None:
        """Run until the WebSocket closes."""
        writer = asyncio.create_task(self._write_loop(), name=f"sandbox flow {self.id} writer")
        try:
            async for message in self.ws:
                self.conn.receive_data(message, self._loop.time())
                self.pump()
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            if self._timer is not None:
                self._timer.cancel()
            self.conn.connection_lost()
            self.pump()
            self._queue.put_nowait(None)
            await writer
            self.sandbox.flow_closed(self)

    async def _write_loop(self) -> None:
        while True:
            data = await self._queue.get()
            if data is None:
                return
            try:
                await self.ws.send(data)
            except ConnectionClosed:
                return

    def now(self) -> float:
        """The clock the SIP connection runs on."""
        return self._loop.time()

    def pump(self) -> None:
        """Write out what the connection produced, dispatch its events, re-arm the timer."""
        if self._pumping:
            return  # the outer call's loop picks it up
        self._pumping = True
        try:
            while True:
                out = self.conn.data_to_send()
                events = self.conn.events_received()
                if not out and not events:
                    break
                if not self.closed:
                    for data in out:
                        self._queue.put_nowait(data.decode("utf-8", "replace"))
                for event in events:
                    self._dispatch(event)
        finally:
            self._pumping = False
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.conn.get_timer()
        if deadline is not None and not self.closed:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.conn.handle_timer(self._loop.time())
        self.pump()

    def _dispatch(self, event: Event) -> None:
        tx = getattr(event, "transaction", None)
        if isinstance(tx, ClientTransaction):
            callback = self._tx_callbacks.get(id(tx))
            if callback is not None:
                if tx.terminated:
                    self._tx_callbacks.pop(id(tx), None)
                try:
                    callback(event)
                except Exception:
                    logger.exception("! flow %d: error handling %s", self.id, type(event).__name__)
                return
        try:
            self.sandbox.handle_event(self, event)
        except Exception:
            logger.exception("! flow %d: error handling %s", self.id, type(event).__name__)

    # -- sending -----------------------------------------------------------------------------
    def send_request(
        self, request: Request, callback: TransactionCallback | None = None
    ) -> ClientTransaction:
        """Send a request in a new client transaction; ``callback`` gets its events."""
        tx = self.conn.send_request(request, self.now())
        if callback is not None:
            self._tx_callbacks[id(tx)] = callback
        self.pump()
        return tx

    def forget(self, tx: ClientTransaction) -> None:
        """Stop routing a transaction's events to its callback."""
        self._tx_callbacks.pop(id(tx), None)

    def send_response(self, response: Response) -> None:
        """Send a response through its server transaction."""
        self.conn.send_response(response, self.now())
        self.pump()

    def send_ack(self, ack: Request) -> None:
        """Send the ACK for a 2xx."""
        self.conn.send_ack(ack)
        self.pump()

    def add_leg(self, dialog: Dialog, leg: Leg) -> None:
        """Track a dialog: in-dialog requests for it reach ``leg``."""
        self.conn.add_dialog(dialog)
        self.legs[dialog.id] = leg

    def remove_leg(self, dialog: Dialog) -> None:
        """Stop tracking a dialog."""
        self.conn.remove_dialog(dialog)
        self.legs.pop(dialog.id, None)

    async def close(self) -> None:
        """Close the WebSocket."""
        await self.ws.close()
