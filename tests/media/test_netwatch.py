"""media/netwatch.py: the address watcher, with a fake address source (no network)."""

from __future__ import annotations

import asyncio

import pytest

from exotel_voice.exceptions import ConfigurationError
from exotel_voice.media.netwatch import AddressChange, AddressWatcher, host_addresses


class FakeHost:
    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.reads = 0

    def __call__(self) -> list[str]:
        self.reads += 1
        return list(self.addresses)


def test_a_change_is_reported_with_what_was_added_and_removed() -> None:
    host = FakeHost("192.0.2.10")
    watcher = AddressWatcher(lambda change: None, source=host)
    watcher._current = watcher.read()
    assert watcher.poll() is None
    host.addresses = ["198.51.100.7"]  # Wi-Fi -> cable
    change = watcher.poll()
    assert change == AddressChange(
        added=frozenset({"198.51.100.7"}),
        removed=frozenset({"192.0.2.10"}),
        current=frozenset({"198.51.100.7"}),
    )
    assert str(change) == "added 198.51.100.7; removed 192.0.2.10"
    assert watcher.poll() is None  # reported once
    assert watcher.addresses == {"198.51.100.7"}


def test_with_host_addresses_only_those_count() -> None:
    host = FakeHost("127.0.0.1", "192.0.2.10")
    watcher = AddressWatcher(lambda change: None, source=host, only=["192.0.2.10", "192.0.2.11"])
    watcher._current = watcher.read()
    assert watcher.addresses == {"192.0.2.10"}
    host.addresses.append("203.0.113.5")  # not ours to use: no change
    host.addresses.remove("127.0.0.1")
    assert watcher.poll() is None
    host.addresses.append("192.0.2.11")
    change = watcher.poll()
    assert change is not None and change.added == {"192.0.2.11"} and not change.removed


def test_a_failing_source_is_logged_and_polling_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    host = FakeHost("192.0.2.10")
    watcher = AddressWatcher(lambda change: None, source=host)
    watcher._current = watcher.read()
    broken = True

    def source() -> list[str]:
        if broken:
            raise OSError("getifaddrs failed")
        return host()

    watcher._source = source
    assert watcher.poll() is None
    assert "cannot read the host's addresses" in caplog.text
    broken = False
    host.addresses = []
    change = watcher.poll()
    assert change is not None and change.removed == {"192.0.2.10"}


async def test_the_running_watcher_calls_back_in_the_loop_and_stops() -> None:
    host = FakeHost("192.0.2.10")
    changes: list[AddressChange] = []
    seen = asyncio.Event()

    def on_change(change: AddressChange) -> None:
        changes.append(change)
        seen.set()

    watcher = AddressWatcher(on_change, interval=0.01, source=host)
    watcher.start()
    assert watcher.running and "running" in repr(watcher)
    await asyncio.sleep(0.05)
    assert changes == []
    host.addresses = ["192.0.2.10", "2001:db8::1"]
    async with asyncio.timeout(5):
        await seen.wait()
    assert changes[0].added == {"2001:db8::1"}
    await watcher.stop()
    await watcher.stop()
    reads = host.reads
    await asyncio.sleep(0.05)
    assert host.reads == reads and not watcher.running


async def test_a_failing_callback_does_not_stop_the_watcher(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = FakeHost("192.0.2.10")
    calls: list[AddressChange] = []

    def on_change(change: AddressChange) -> None:
        calls.append(change)
        raise RuntimeError("handler bug")

    watcher = AddressWatcher(on_change, interval=0.01, source=host)
    watcher.start()
    try:
        host.addresses = ["192.0.2.11"]
        async with asyncio.timeout(5):
            while not calls:
                await asyncio.sleep(0.01)
        host.addresses = ["192.0.2.12"]
        async with asyncio.timeout(5):
            while len(calls) < 2:
                await asyncio.sleep(0.01)
    finally:
        await watcher.stop()
    assert "the network-change handler failed" in caplog.text


def test_a_bad_interval_is_named() -> None:
    with pytest.raises(ConfigurationError, match="interval"):
        AddressWatcher(lambda change: None, interval=0)


def test_host_addresses_leave_out_loopback_as_aioice_does() -> None:
    found = host_addresses()
    assert "127.0.0.1" not in found and "::1" not in found
