"""A phone's choice of input and output device, applied to its live calls in place.

:class:`AudioDeviceSelection` is what :meth:`Phone.set_input_device
<exotel_voice.client.Phone.set_input_device>` and ``set_output_device`` drive:

* **input**: once chosen, every call sends from a
  :class:`~exotel_voice.media.DeviceSource` on that device; choosing another while a call
  is up switches that source in place (:meth:`DeviceSource.switch
  <exotel_voice.media.DeviceSource.switch>`: the new device opens before the old one
  closes; no renegotiation, the far end keeps hearing us). Mute is the media session's
  own flag, untouched by a device change: a muted call stays muted.
* **output**: once chosen, every call's received audio plays on that device through a
  :class:`~exotel_voice.media.DeviceSink`; choosing another moves it in place.
* **the device in use goes away** (unplugged, a PulseAudio sink unloaded): the
  selection falls back to the system default, applies it to the live calls, logs a
  WARNING and tells its owner (``on_fallback``).

It knows nothing of phones or calls: its owner hands it the live media sessions
(``sessions``) and turns its reports into events.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .devices import AudioDevice, DeviceKind, default_device, find_device, list_devices
from .watch import DeviceListChange, DeviceWatcher


if TYPE_CHECKING:
    from ..media.session import MediaSession
    from ..media.sinks import DeviceSink
    from ..media.sources import DeviceSource

__all__ = ["AudioDeviceSelection", "DeviceSpec"]

logger = logging.getLogger(__name__)

#: How a device may be named: an :class:`AudioDevice`, its id or name, a PortAudio index,
#: or ``None`` for the system default.
DeviceSpec = AudioDevice | str | int | None


class AudioDeviceSelection:
    """The input and output device a phone's calls use (see the module docstring).

    Args:
        sessions: returns the media sessions of the live calls.
        on_change: called with each :class:`DeviceListChange` the watcher sees.
        on_fallback: called as ``on_fallback(kind, lost, now)`` when the device in use went
            away and ``now`` (the default, or ``None`` when there is none) replaced it.
        poll_interval: the watcher's polling interval when PulseAudio events are not
            available.
    """

    def __init__(
        self,
        sessions: Callable[[], Iterable[MediaSession]],
        *,
        on_change: Callable[[DeviceListChange], None] | None = None,
        on_fallback: Callable[[DeviceKind, AudioDevice, AudioDevice | None], None] | None = None,
        poll_interval: float = 2.0,
    ) -> None:
        self._sessions = sessions
        self._on_change = on_change
        self._on_fallback = on_fallback
        self.input: AudioDevice | None = None
        self.output: AudioDevice | None = None
        self._sinks: weakref.WeakKeyDictionary[MediaSession, DeviceSink] = (
            weakref.WeakKeyDictionary()
        )
        self.watcher = DeviceWatcher(self._changed, poll_interval=poll_interval)
        self._pending: set[Any] = set()

    # -- choosing ---------------------------------------------------------------------------

    @staticmethod
    def resolve(spec: DeviceSpec, kind: DeviceKind) -> AudioDevice:
        """The device ``spec`` names (``None``: the system default).

        Raises:
            AudioDeviceError: no such device (or no default).
            AudioBackendMissing: the ``[audio]`` extra is not installed.
        """
        devices = list_devices()
        if spec is None:
            found = default_device(kind, devices)
            if found is None:
                from .devices import AudioDeviceError  # noqa: PLC0415

                raise AudioDeviceError(f"there is no {kind} device")
            return found
        return find_device(spec, kind, devices)

    async def set_input(self, spec: DeviceSpec) -> AudioDevice:
        """Send from ``spec`` on every call from now on, the live ones switched in place.

        Raises:
            AudioDeviceError: no such device.
            AudioSourceError: the device cannot be opened (the calls keep their source).
            AudioBackendMissing: the ``[audio]`` extra is not installed.
        """
        device = self.resolve(spec, DeviceKind.INPUT)
        for session in list(self._sessions()):
            await self._apply_input(session, device)
        self.input = device
        await self.watcher.start()
        return device

    async def set_output(self, spec: DeviceSpec) -> AudioDevice:
        """Play every call on ``spec`` from now on, the live ones moved in place.

        Raises:
            AudioDeviceError: no such device.
            MediaError: the device cannot be opened (the calls keep playing where they did).
            AudioBackendMissing: the ``[audio]`` extra is not installed.
        """
        device = self.resolve(spec, DeviceKind.OUTPUT)
        for session in list(self._sessions()):
            await self._apply_output(session, device)
        self.output = device
        await self.watcher.start()
        return device

    # -- calls ----------------------------------------------------------------------------------

    def new_source(self) -> DeviceSource | None:
        """A source on the chosen input for a new call, or ``None`` when none is chosen."""
        if self.input is None:
            return None
        from ..media.sources import DeviceSource  # noqa: PLC0415

        return DeviceSource(self.input)

    def attach(self, session: MediaSession) -> None:
        """Play ``session``'s received audio on the chosen output (if one is chosen)."""
        if self.output is None or session in self._sinks:
            return
        from ..media.sinks import DeviceSink  # noqa: PLC0415

        sink = DeviceSink(self.output)
        self._sinks[session] = sink
        session.add_sink(sink)

    def sink_of(self, session: MediaSession) -> DeviceSink | None:
        """The device sink playing ``session``, if any."""
        return self._sinks.get(session)

    async def _apply_input(self, session: MediaSession, device: AudioDevice) -> None:
        from ..media.sources import DeviceSource  # noqa: PLC0415

        source = session.source
        if isinstance(source, DeviceSource):
            await source.switch(device)
        else:
            await session.set_source(DeviceSource(device))

    async def _apply_output(self, session: MediaSession, device: AudioDevice) -> None:
        sink = self._sinks.get(session)
        if sink is None:
            from ..media.sinks import DeviceSink  # noqa: PLC0415

            sink = DeviceSink(device)
            self._sinks[session] = sink
            session.add_sink(sink)
        else:
            await sink.switch(device)

    # -- changes ----------------------------------------------------------------------------------

    async def watch(self) -> None:
        """Start watching the device list without choosing a device."""
        await self.watcher.start()

    async def close(self) -> None:
        """Stop watching."""
        await self.watcher.stop()

    def _changed(self, change: DeviceListChange) -> None:
        if self._on_change is not None:
            self._on_change(change)
        gone = {dev.id for dev in change.removed}
        import asyncio  # noqa: PLC0415

        for kind, current, now in (
            (DeviceKind.INPUT, self.input, change.default_input),
            (DeviceKind.OUTPUT, self.output, change.default_output),
        ):
            if current is None or current.id not in gone:
                continue
            logger.warning(
                "! the %s device in use went away: %s (%s); using the default now: %s",
                kind, current.name, current.id, now.name if now is not None else "none",
            )
            if kind is DeviceKind.INPUT:
                self.input = now
            else:
                self.output = now
            task = asyncio.ensure_future(self._fall_back(kind, current, now))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _fall_back(
        self, kind: DeviceKind, lost: AudioDevice, now: AudioDevice | None
    ) -> None:
        if now is not None:
            for session in list(self._sessions()):
                try:
                    if kind is DeviceKind.INPUT:
                        await self._apply_input(session, now)
                    else:
                        await self._apply_output(session, now)
                except Exception as exc:
                    logger.warning("! cannot switch a call to the default %s device %s: %s",
                                   kind, now.id, exc)
        if self._on_fallback is not None:
            self._on_fallback(kind, lost, now)
