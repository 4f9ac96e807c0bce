"""Watching the host's IP addresses, to notice a network change during a call.

When a laptop moves from Wi-Fi to cable, the address its calls' ICE pairs use goes away
and another appears; the calls need an ICE restart (:meth:`MediaSession.restart_ice
<exotel_voice.media.MediaSession.restart_ice>`) to go on.  :class:`AddressWatcher` tells
when the set of addresses changed.

How: polling.  Every :attr:`AddressWatcher.interval` seconds (1 s by default) it reads the
host's addresses with ``ifaddr``, the library aioice itself gathers host candidates with,
and compares them with the last reading.  Polling is portable (Linux, macOS, Windows: all
``ifaddr`` supports) and needs no privilege; a netlink socket (``RTM_NEWADDR``) would
react faster but is Linux-only, and macOS and Windows each need their own API.  One
reading costs a ``getifaddrs()`` call (tens of microseconds), done in the event loop, and
the worst-case delay it adds to a restart is one interval.

Which addresses count: the ones ICE would gather on.  With
:attr:`IceConfig.host_addresses <exotel_voice.media.IceConfig.host_addresses>` set, only
those (a change elsewhere cannot affect the calls); otherwise every address aioice would
use (IPv4 but 127.0.0.1, IPv6 but ``::1`` and link-local).  A change is reported at the
first reading that shows it, with what was added and removed; an interface being
reconfigured may give two changes in a row, and the caller restarts again (a restart whose
re-INVITE is not out yet just gathers again).

One watcher per :class:`~exotel_voice.client.Phone`, not per call: the phone restarts ICE
on each of its calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import ifaddr

from ..exceptions import ConfigurationError


__all__ = ["AddressChange", "AddressWatcher", "host_addresses"]

logger = logging.getLogger(__name__)


def host_addresses() -> frozenset[str]:
    """The addresses aioice gathers host candidates on (module docstring), read now."""
    found = set()
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                if ip.ip != "127.0.0.1":
                    found.add(ip.ip)
            else:
                address, _flowinfo, scope_id = ip.ip
                if address != "::1" and scope_id == 0:
                    found.add(address)
    return frozenset(found)


def _all_addresses() -> frozenset[str]:
    """Every address of the host, loopback included (for ``IceConfig.host_addresses``)."""
    found = set()
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            found.add(ip.ip if isinstance(ip.ip, str) else ip.ip[0])
    return frozenset(found)


@dataclass(frozen=True)
class AddressChange:
    """The host's addresses changed.

    Attributes:
        added: addresses that appeared.
        removed: addresses that went away.
        current: every address that counts now.
    """

    added: frozenset[str]
    removed: frozenset[str]
    current: frozenset[str]

    def __str__(self) -> str:
        parts = []
        if self.added:
            parts.append("added " + ", ".join(sorted(self.added)))
        if self.removed:
            parts.append("removed " + ", ".join(sorted(self.removed)))
        return "; ".join(parts) or "no change"


class AddressWatcher:
    """Polls the host's addresses and calls ``on_change`` when they change.

    Args:
        on_change: called in the event loop with each :class:`AddressChange`.
        interval: seconds between two readings (default 1.0).
        only: the addresses that count (``IceConfig.host_addresses``); ``None`` for every
            address ICE gathers on.
        source: reads the addresses (tests inject their own); defaults to the host's.

    Raises:
        ConfigurationError: ``interval`` is not a positive number of seconds.
    """

    def __init__(
        self,
        on_change: Callable[[AddressChange], None],
        *,
        interval: float = 1.0,
        only: Iterable[str] | None = None,
        source: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        if not interval > 0:
            raise ConfigurationError("interval", "must be a positive number of seconds")
        self.interval = interval
        self._on_change = on_change
        self._only = None if only is None else frozenset(only)
        if source is None:
            source = host_addresses if self._only is None else _all_addresses
        self._source = source
        self._task: asyncio.Task[None] | None = None
        self._current: frozenset[str] | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<AddressWatcher {state} every {self.interval:g} s>"

    @property
    def running(self) -> bool:
        """Whether the watcher polls."""
        return self._task is not None and not self._task.done()

    @property
    def addresses(self) -> frozenset[str] | None:
        """The addresses of the last reading that was reported or taken as the baseline."""
        return self._current

    def read(self) -> frozenset[str]:
        """Read the addresses that count, now."""
        found = frozenset(str(address) for address in self._source())
        return found if self._only is None else found & self._only

    def start(self) -> None:
        """Take the current addresses as the baseline and poll from now on (in a task)."""
        if self.running:
            return
        self._current = self._safe_read()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop polling.  Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def poll(self) -> AddressChange | None:
        """Take one reading; the change since the last one, or ``None``."""
        reading = self._safe_read()
        if reading is None or self._current is None:
            self._current = self._current if reading is None else reading
            return None
        if reading == self._current:
            return None
        change = AddressChange(
            added=reading - self._current, removed=self._current - reading, current=reading
        )
        self._current = reading
        return change

    def _safe_read(self) -> frozenset[str] | None:
        try:
            return self.read()
        except Exception:
            logger.exception("! cannot read the host's addresses; trying again")
            return None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            change = self.poll()
            if change is None:
                continue
            logger.info("= network change: %s", change)
            try:
                self._on_change(change)
            except Exception:
                logger.exception("! the network-change handler failed")
