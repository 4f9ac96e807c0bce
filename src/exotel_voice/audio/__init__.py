"""Audio devices (guide 5.14): list them, choose them, follow their changes.

Needs the optional ``sounddevice`` package (PortAudio): ``pip install
'exotel-voice[audio]'``; without it everything else works and every device call raises
:class:`AudioBackendMissing`, whose message names the extra.

* :func:`list_devices`, :func:`find_device`, :func:`default_device`: the devices
  (:class:`AudioDevice`), PulseAudio's sinks and sources included when a server answers.
* :class:`AudioDeviceSelection`: the input and output a phone's calls use, switched in
  place during a call (``Phone.set_input_device`` / ``set_output_device``).
* :class:`Sounds`, :class:`SoundPlayer`: the ringtone, ringback and DTMF beep a phone
  plays on its output device (:mod:`exotel_voice.audio.sounds`).
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
from .sounds import (
    DTMF_TONES,
    RINGBACK_NORTH_AMERICA,
    RINGBACK_UK,
    RINGTONE,
    DtmfTones,
    SoundPlayer,
    Sounds,
    Tone,
    WavSound,
)
from .watch import DeviceListChange, DeviceWatcher, compare_devices


__all__ = [
    "AUDIO_EXTRA_HINT",
    "AudioBackendMissing",
    "AudioDevice",
    "AudioDeviceError",
    "AudioDeviceSelection",
    "DTMF_TONES",
    "DeviceKind",
    "DeviceListChange",
    "DeviceSpec",
    "DeviceWatcher",
    "DtmfTones",
    "RINGBACK_NORTH_AMERICA",
    "RINGBACK_UK",
    "RINGTONE",
    "SoundPlayer",
    "Sounds",
    "Tone",
    "WavSound",
    "compare_devices",
    "default_device",
    "find_device",
    "import_sounddevice",
    "list_devices",
]
