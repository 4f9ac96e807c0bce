"""Device-change notification: devices appearing, disappearing, the system default changing.

PortAudio has no hot-plug events. :class:`DeviceWatcher` follows PulseAudio's own events
when a server answers (``pactl subscribe``: a sink, source, card or the server changed),
and otherwise reads the device list every ``poll_interval`` seconds; either way it compares
the list with the one before and reports a :class:`DeviceListChange` when a device came,
went, or a default moved. (PortAudio's own list can only be re-read while none of our
streams is open; see :func:`exotel_voice.audio._backend.rescan_portaudio`.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ._backend import pactl_path
from .devices import AudioDevice, DeviceKind, default_device, list_devices


__all__ = ["DeviceListChange", "DeviceWatcher", "compare_devices"]

logger = logging.getLogger(__name__)

#: PulseAudio object kinds whose events may change the device list or a default.
_PULSE_WATCHED = ("on sink #", "on source #", "on card #", "on server")


@dataclass(frozen=True)
class DeviceListChange:
    """What changed between two readings of the device list.

    Attributes:
        added: devices that appeared.
        removed: devices that went away.
        default_input: the default input now (``None``: there is none).
        default_output: the default output now.
        default_input_changed: whether the default input is another device than before.
        default_output_changed: whether the default output is another device than before.
        devices: the whole list now.
    """

    added: tuple[AudioDevice, ...]
    removed: tuple[AudioDevice, ...]
    default_input: AudioDevice | None
    default_output: AudioDevice | None
    default_input_changed: bool
    default_output_changed: bool
    devices: tuple[AudioDevice, ...]

    @property
    def empty(self) -> bool:
        """Nothing changed that a user would see."""
        return not (self.added or self.removed or self.default_input_changed
                    or self.default_output_changed)


def _id(device: AudioDevice | None) -> str | None:
    return device.id if device is not None else None


def compare_devices(
    before: Sequence[AudioDevice], after: Sequence[AudioDevice]
) -> DeviceListChange:
    """The change from ``before`` to ``after`` (devices compared by id)."""
    old = {dev.id for dev in before}
    new = {dev.id for dev in after}
    din, dout = default_device(DeviceKind.INPUT, after), default_device(DeviceKind.OUTPUT, after)
    return DeviceListChange(
        added=tuple(dev for dev in after if dev.id not in old),
        removed=tuple(dev for dev in before if dev.id not in new),
        default_input=din,
        default_output=dout,
        default_input_changed=_id(din) != _id(default_device(DeviceKind.INPUT, before)),
        default_output_changed=_id(dout) != _id(default_device(DeviceKind.OUTPUT, before)),
        devices=tuple(after),
    )


class DeviceWatcher:
    """Calls ``on_change`` (on the event loop) each time the device list or a default changes.

    Args:
        on_change: called with each non-empty :class:`DeviceListChange`.
        poll_interval: seconds between two readings when PulseAudio's events are not
            available.
        settle: seconds to wait after a PulseAudio event before reading the list (one
            module load sends several events).
    """

    def __init__(
        self,
        on_change: Callable[[DeviceListChange], None],
        *,
        poll_interval: float = 2.0,
        settle: float = 0.1,
    ) -> None:
        self._on_change = on_change
        self.poll_interval = poll_interval
        self.settle = settle
        self._devices: list[AudioDevice] = []
        self._task: asyncio.Task[None] | None = None
        self._process: asyncio.subprocess.Process | None = None
        #: ``"pulseaudio"`` (events) or ``"polling"``, once started.
        self.mode: str | None = None

    @property
    def devices(self) -> list[AudioDevice]:
        """The device list as last read."""
        return list(self._devices)

    @property
    def running(self) -> bool:
        """Whether the watcher is watching."""
        return self._task is not None

    async def start(self) -> None:
        """Read the list and start watching (no-op when running).

        Raises:
            AudioBackendMissing: ``sounddevice`` or PortAudio is not installed.
        """
        if self._task is not None:
            return
        self._devices = await asyncio.to_thread(list_devices)
        pactl = pactl_path()
        if pactl is not None and any(dev.pulse_name for dev in self._devices):
            self._process = await asyncio.create_subprocess_exec(
                pactl, "subscribe",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            )
            self.mode = "pulseaudio"
            await self._subscribed(self._process)
            self._task = asyncio.create_task(self._follow_pulse(self._process))
        else:
            self.mode = "polling"
            self._task = asyncio.create_task(self._poll())

    async def _subscribed(self, process: asyncio.subprocess.Process) -> None:
        """Wait until ``pactl subscribe`` hears events, then read the list again.

        A change between the first reading and the subscription would be missed: reading
        the list connects ``pactl`` clients, whose own events show the subscription works.
        """
        assert process.stdout is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3.0
        while loop.time() < deadline:
            self._devices = await asyncio.to_thread(list_devices)
            try:
                line = await asyncio.wait_for(process.stdout.readline(), 0.2)
            except TimeoutError:
                continue
            if line:
                break
            return  # pactl ended; _follow_pulse falls back to polling

    async def stop(self) -> None:
        """Stop watching."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()

    async def check(self) -> DeviceListChange:
        """Read the list now, report a change if there is one, and return it."""
        after = await asyncio.to_thread(list_devices)
        change = compare_devices(self._devices, after)
        self._devices = after
        if not change.empty:
            try:
                self._on_change(change)
            except Exception:
                logger.exception("! the audio device change listener failed")
        return change

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.check()
            except Exception as exc:  # a backend hiccup: try again at the next tick
                logger.debug("audio device poll failed: %s", exc)

    async def _follow_pulse(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while True:
            line = await process.stdout.readline()
            if not line:
                logger.warning("! PulseAudio's event stream ended; polling audio devices instead")
                self.mode = "polling"
                await self._poll()
                return
            if not any(word in line.decode(errors="replace") for word in _PULSE_WATCHED):
                continue
            # One change sends several events: let them settle, drop the rest, read once.
            await asyncio.sleep(self.settle)
            while True:
                try:
                    more = await asyncio.wait_for(process.stdout.readline(), 0.001)
                except TimeoutError:
                    break
                if not more:
                    break
            try:
                await self.check()
            except Exception as exc:
                logger.debug("audio device re-read failed: %s", exc)
