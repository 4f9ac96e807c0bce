"""Audio devices: list them, find one by id or name, and the system defaults.

:func:`list_devices` returns one :class:`AudioDevice` per device PortAudio knows, plus,
when a PulseAudio server answers ``pactl``, one per PulseAudio sink (an output) and
source (an input; a sink's *monitor* is a source too). Ids are strings that stay the same
for as long as the device exists (``pulse:sink:<name>``, ``pulse:source:<name>``,
``portaudio:<host API>:<name>``), so they can be kept, compared and passed back.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..exceptions import MediaError
from ._backend import (
    PulseDevice,
    import_sounddevice,
    portaudio_lock,
    pulse_devices,
    rescan_portaudio,
)


__all__ = [
    "AudioDevice",
    "AudioDeviceError",
    "DeviceKind",
    "default_device",
    "find_device",
    "list_devices",
]

PULSE_HOST_API = "PulseAudio"


class DeviceKind(enum.StrEnum):
    """Which way a device carries audio."""

    INPUT = "input"
    OUTPUT = "output"


class AudioDeviceError(MediaError):
    """No such device, or more than one matches the name given."""


@dataclass(frozen=True)
class AudioDevice:
    """One input and/or output device.

    Attributes:
        id: a stable string id (pass it to :func:`find_device`, ``set_input_device`` ...).
        name: the name to show (PulseAudio's description, PortAudio's device name).
        host_api: ``"PulseAudio"``, or PortAudio's host API (``"ALSA"``, ``"Core Audio"``,
            ``"Windows WASAPI"`` ...).
        input_channels: how many channels it records (0: not an input).
        output_channels: how many channels it plays (0: not an output).
        default_input: whether it is the system's default input.
        default_output: whether it is the system's default output.
        portaudio_index: PortAudio's index of the device (``None`` for PulseAudio's own;
            indexes change when PortAudio re-reads its list).
        pulse_name: PulseAudio's name of the sink or source (``None`` for PortAudio's).
    """

    id: str
    name: str
    host_api: str
    input_channels: int
    output_channels: int
    default_input: bool = False
    default_output: bool = False
    portaudio_index: int | None = None
    pulse_name: str | None = None

    def supports(self, kind: DeviceKind) -> bool:
        """Whether the device can be used as ``kind``."""
        return (self.input_channels if kind is DeviceKind.INPUT else self.output_channels) > 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (for ``exotel-voice devices --json``)."""
        return {
            "id": self.id,
            "name": self.name,
            "host_api": self.host_api,
            "input_channels": self.input_channels,
            "output_channels": self.output_channels,
            "default_input": self.default_input,
            "default_output": self.default_output,
        }


def _from_pulse(dev: PulseDevice) -> AudioDevice:
    sink = dev.kind == "sink"
    return AudioDevice(
        id=f"pulse:{dev.kind}:{dev.name}",
        name=dev.description,
        host_api=PULSE_HOST_API,
        input_channels=0 if sink else dev.channels,
        output_channels=dev.channels if sink else 0,
        default_input=dev.default and not sink,
        default_output=dev.default and sink,
        pulse_name=dev.name,
    )


def _portaudio_devices(sd: Any, *, defaults: bool) -> list[AudioDevice]:
    with portaudio_lock:  # not while another thread re-scans PortAudio
        hostapis = sd.query_hostapis()
        default_in, default_out = sd.default.device
        infos = list(sd.query_devices())
    found = []
    for index, info in enumerate(infos):
        api = str(hostapis[info["hostapi"]]["name"])
        name = str(info["name"])
        found.append(AudioDevice(
            id=f"portaudio:{api}:{name}",
            name=name,
            host_api=api,
            input_channels=int(info["max_input_channels"]),
            output_channels=int(info["max_output_channels"]),
            default_input=defaults and index == default_in,
            default_output=defaults and index == default_out,
            portaudio_index=index,
        ))
    return found


def list_devices(*, rescan: bool = True) -> list[AudioDevice]:
    """Every input and output device: PulseAudio's (when a server answers), then PortAudio's.

    Args:
        rescan: let PortAudio re-read its list first (skipped while one of our streams
            is open: PortAudio cannot re-read then; its previous list is used).

    Raises:
        AudioBackendMissing: ``sounddevice`` or PortAudio is not installed (the message
            says ``pip install 'exotel-voice[audio]'``).
    """
    sd = import_sounddevice()
    if rescan:
        rescan_portaudio(sd)
    pulse = pulse_devices()
    found = [_from_pulse(dev) for dev in pulse or ()]
    # With PulseAudio listed, its defaults are the system's; PortAudio's "default" is then
    # PulseAudio's default anyway (ALSA's pulse plugin).
    found += _portaudio_devices(sd, defaults=not found)
    return found


def default_device(
    kind: DeviceKind, devices: Sequence[AudioDevice] | None = None
) -> AudioDevice | None:
    """The system's default ``kind`` device, or ``None`` when there is none."""
    devices = list_devices() if devices is None else devices
    flag = "default_input" if kind is DeviceKind.INPUT else "default_output"
    for dev in devices:
        if getattr(dev, flag) and dev.supports(kind):
            return dev
    usable = [dev for dev in devices if dev.supports(kind)]
    return usable[0] if usable else None


def find_device(
    id_or_name: str | int | AudioDevice,
    kind: DeviceKind | str,
    devices: Sequence[AudioDevice] | None = None,
) -> AudioDevice:
    """The ``kind`` device ``id_or_name`` names.

    Tried in order: the exact id; PulseAudio's name of a sink or source; the exact name; a
    PortAudio index (an int); a case-insensitive part of one name (only if one device
    matches).

    Raises:
        AudioDeviceError: no device matches, or the part matches several (the message
            lists the devices there are).
        ValueError: ``kind`` is not ``"input"`` or ``"output"``.
        AudioBackendMissing: ``sounddevice`` or PortAudio is not installed.
    """
    kind = DeviceKind(kind)
    devices = list_devices() if devices is None else devices
    usable = [dev for dev in devices if dev.supports(kind)]
    if isinstance(id_or_name, AudioDevice):
        id_or_name = id_or_name.id
    if isinstance(id_or_name, int):
        for dev in usable:
            if dev.portaudio_index == id_or_name:
                return dev
    else:
        wanted = str(id_or_name)
        for field in ("id", "pulse_name", "name"):
            hits = [dev for dev in usable if getattr(dev, field) == wanted]
            if hits:
                return hits[0]
        part = wanted.casefold()
        hits = [dev for dev in usable if part and part in dev.name.casefold()]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            names = ", ".join(repr(dev.name) for dev in hits)
            raise AudioDeviceError(f"{wanted!r} matches several {kind} devices: {names}; "
                                   "give its id")
    known = ", ".join(f"{dev.id!r}" for dev in usable) or "none"
    raise AudioDeviceError(f"no {kind} device {id_or_name!r}; the {kind} devices are: {known}")
