"""One client WebSocket connection to the sandbox: a SipConnection driven by the shared pump.

The flow does what :mod:`exotel_voice.sip.connection` asks of its I/O layer and nothing
more, through :class:`~exotel_voice.transport.pump.Pump` (the same pump as the phone's):
feed each WebSocket message in, write each outgoing message out (as a text frame, which
SIP.js and our client both read), and re-arm one timer for the connection's transactions
and for the deadlines of the calls living on it (the sandbox's
:class:`~exotel_voice.sip.calls.CallLayer`).

Each event of the connection goes first to the call layer (responses to the sandbox's
INVITEs, requests inside its calls, CANCELs ...), then, if the layer did not take it, to
the sandbox itself (REGISTER, new INVITEs, out-of-dialog requests).
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ..sip.connection import SipConnection
from ..sip.message import Response
from ..transport.pump import Pump


if TYPE_CHECKING:
    from .server import Sandbox

__all__ = ["Flow"]

logger = logging.getLogger(__name__)

_ids = itertools.count(1)


class Flow:
    """One WebSocket client of the sandbox.

    It is also the sans-I/O core its :attr:`pump` drives (``receive_data``,
    ``data_to_send``, ``get_timer``, ``handle_timer``), made of its connection and of the
    call layer restricted to the calls on that connection.

    Attributes:
        id: a small number, for logs.
        secure: whether the client came in over ``wss``.
        remote: the client's ``host:port``.
        conn: the sans-I/O SIP connection.
        pump: the asyncio pump (writes, timer).
        closed: whether the WebSocket has closed.
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
        self.closed = False
        self._write_failed = False
        self._dispatching = False
        self.pump = Pump(self, self._write, after=self._dispatch, name=f"sandbox flow {self.id}")

    def __repr__(self) -> str:
        return f"<Flow {self.id} {'wss' if self.secure else 'ws'} {self.remote}>"

    # -- the asyncio side ------------------------------------------------------------------
    async def serve(self) -> None:
        """Run until the WebSocket closes."""
        try:
            async for message in self.ws:
                self.pump.receive_data(message)
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            self.pump.stop_timer()
            self.pump.run(lambda now: self.conn.connection_lost())
            await self.pump.aclose(drain=None)
            self.sandbox.flow_closed(self)

    async def _write(self, data: bytes) -> None:
        if self.closed or self._write_failed:
            return
        try:
            await self.ws.send(data.decode("utf-8", "replace"))
        except ConnectionClosed:
            self._write_failed = True

    def now(self) -> float:
        """The clock the SIP connection runs on."""
        return self.pump.now()

    # -- the sans-I/O core the pump drives ---------------------------------------------------
    def receive_data(self, data: str | bytes, now: float) -> None:
        """Feed one WebSocket message to the connection and dispatch its events.

        Dispatching here, inside the core call, queues whatever the call layer sends in
        reply (the next queued INFO, a 200 to a BYE) before the pump writes; dispatching
        only in the pump's ``after`` left it unwritten until the next flush. An in-dialog
        request of a call kept from the client's lost connection first moves that call
        onto this flow (:meth:`~.server.Sandbox.resume_dialog`).
        """
        self.sandbox.resume_dialog(self, data)
        self.conn.receive_data(data, now)
        self._dispatch()

    def data_to_send(self) -> list[bytes]:
        """The connection's messages to write."""
        return self.conn.data_to_send()

    def get_timer(self) -> float | None:
        """The earliest deadline of the connection and of the calls on it."""
        deadlines = [self.conn.get_timer(), self.sandbox.call_layer.get_timer(self.conn)]
        present = [d for d in deadlines if d is not None]
        return min(present) if present else None

    def handle_timer(self, now: float) -> None:
        """Fire the connection's timers, then the deadlines of the calls on it."""
        self.conn.handle_timer(now)
        self._dispatch()
        self.sandbox.call_layer.handle_timer(now, self.conn)

    def _dispatch(self) -> None:
        """Hand every pending connection event to the call layer or the sandbox, and every
        call-layer event to its leg, until none is left."""
        if self._dispatching:
            return  # the outer call's loop picks them up
        self._dispatching = True
        try:
            while True:
                events = self.conn.events_received()
                for event in events:
                    try:
                        if not self.sandbox.call_layer.handle_event(self.conn, event, self.now()):
                            self.sandbox.handle_event(self, event)
                    except Exception:
                        logger.exception(
                            "! flow %d: error handling %s", self.id, type(event).__name__
                        )
                calls = self.sandbox.dispatch_call_events()
                if not events and not calls:
                    break
        finally:
            self._dispatching = False

    # -- sending -----------------------------------------------------------------------------
    def send_response(self, response: Response) -> None:
        """Send a response through its server transaction (registrar, router)."""
        self.pump.run(lambda now: self.conn.send_response(response, now))

    async def close(self) -> None:
        """Close the WebSocket."""
        await self.ws.close()
