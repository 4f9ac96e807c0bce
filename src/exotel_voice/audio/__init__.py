"""Audio devices (guide 5.14): list them, choose them, follow their changes.

Needs the optional ``sounddevice`` package (PortAudio): ``pip install
'exotel-voice[audio]'``; without it everything else works and every device call raises
:class:`AudioBackendMissing`, whose message names the extra.

* :func:`list_devices`, :func:`find_device`, :func:`default_device`: the devices
  (:class:`AudioDevice`), PulseAudio's sinks and sources included when a server answers.
* :class:`AudioDeviceSelection`: the input and output a phone's calls use, switched in
  place during a call (``Phone.set_input_device`` / ``set_output_device``).
* :class:`DeviceWatcher`: devices appearing, disappearing, the default changing
  (:class:`DeviceListChange`).

See ``docs/audio.md``.
"""

from ._backend import AUDIO_EXTRA_HINT, AudioBackendMissing, import_sounddevice
from .devices import (
    AudioDevice,
    AudioDeviceError,
    DeviceKind,
    default_device,
    find_device,
    list_devices,
)
from .selection import AudioDeviceSelection, DeviceSpec
from .watch import DeviceListChange, DeviceWatcher, compare_devices


__all__ = [
    "AUDIO_EXTRA_HINT",
    "AudioBackendMissing",
    "AudioDevice",
    "AudioDeviceError",
    "AudioDeviceSelection",
    "DeviceKind",
    "DeviceListChange",
    "DeviceSpec",
    "DeviceWatcher",
    "compare_devices",
    "default_device",
    "find_device",
    "import_sounddevice",
    "list_devices",
]
