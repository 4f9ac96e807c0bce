"""Audio devices (guide 5.14) on a real PulseAudio server (tests/rig/pulse.py): listing,
finding, and the change events when a speaker is plugged in, unplugged, or made the default.
No call here; tests/audio/test_device_calls.py switches devices during calls."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from tests.rig.pulse import PulseServer, pulse_server

from exotel_voice.audio import (
    AudioBackendMissing,
    AudioDeviceError,
    DeviceKind,
    DeviceListChange,
    DeviceWatcher,
    find_device,
    list_devices,
)


__all__ = ["pulse_server"]

pytestmark = pytest.mark.timeout(60)


def test_list_devices_sees_the_null_sinks_and_virtual_microphones(
    pulse_server: PulseServer,
) -> None:
    devices = {dev.id: dev for dev in list_devices()}
    spk_a = devices["pulse:sink:spk_a"]
    assert (spk_a.name, spk_a.host_api, spk_a.output_channels, spk_a.input_channels) == (
        "Speaker_A", "PulseAudio", 2, 0)
    assert spk_a.default_output and not devices["pulse:sink:spk_b"].default_output
    mic = devices["pulse:source:mic_1"]
    assert mic.name == "Microphone_1" and mic.input_channels > 0 and mic.default_input
    assert "pulse:source:mic_2" in devices and "pulse:source:spk_b.monitor" in devices
    # PortAudio's own list is there too: ALSA's pulse device.
    assert any(dev.host_api == "ALSA" and dev.name == "pulse" for dev in devices.values())


def test_find_device_by_id_name_or_part_and_a_clear_error(pulse_server: PulseServer) -> None:
    assert find_device("pulse:sink:spk_b", "output").pulse_name == "spk_b"
    assert find_device("spk_b", DeviceKind.OUTPUT).id == "pulse:sink:spk_b"
    assert find_device("Microphone_2", "input").id == "pulse:source:mic_2"
    assert find_device("speaker_a", "output").id == "pulse:sink:spk_a"  # a unique part
    with pytest.raises(AudioDeviceError, match="no output device 'Headset 9'.*pulse:sink:spk_a"):
        find_device("Headset 9", "output")
    with pytest.raises(AudioDeviceError, match="matches several output devices"):
        find_device("Speaker_", "output")
    with pytest.raises(AudioDeviceError, match="no input device 'spk_a'"):
        find_device("spk_a", "input")  # a speaker is not a microphone
    with pytest.raises(ValueError):
        find_device("spk_a", "sideways")


async def test_plugging_unplugging_and_the_default_fire_change_events(
    pulse_server: PulseServer,
) -> None:
    changes: asyncio.Queue[DeviceListChange] = asyncio.Queue()
    watcher = DeviceWatcher(changes.put_nowait, settle=0.05)
    await watcher.start()
    try:
        assert watcher.mode == "pulseaudio"
        module = await asyncio.to_thread(pulse_server.load_null_sink, "usb_headset",
                                         "USB_Headset")
        change = await asyncio.wait_for(changes.get(), 10)
        # The sink and its monitor (a source).
        assert {dev.id for dev in change.added} == {"pulse:sink:usb_headset",
                                                    "pulse:source:usb_headset.monitor"}
        assert change.added[0].name == "USB_Headset" and not change.removed

        await asyncio.to_thread(pulse_server.set_default_sink, "usb_headset")
        change = await asyncio.wait_for(changes.get(), 10)
        assert change.default_output_changed and not change.default_input_changed
        assert change.default_output is not None
        assert change.default_output.id == "pulse:sink:usb_headset"

        await asyncio.to_thread(pulse_server.unload_module, module)
        change = await asyncio.wait_for(changes.get(), 10)
        removed = {dev.id for dev in change.removed}
        assert "pulse:sink:usb_headset" in removed and not change.added
        # PulseAudio picked another default: reported as a default change.
        assert change.default_output_changed
        assert change.default_output is not None and change.default_output.id != (
            "pulse:sink:usb_headset")
    finally:
        await watcher.stop()


async def test_polling_sees_the_same_changes_without_pactl_events(
    pulse_server: PulseServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import exotel_voice.audio.watch as watch

    monkeypatch.setattr(watch, "pactl_path", lambda: None)  # no `pactl subscribe`
    changes: asyncio.Queue[DeviceListChange] = asyncio.Queue()
    watcher = DeviceWatcher(changes.put_nowait, poll_interval=0.2)
    await watcher.start()
    try:
        assert watcher.mode == "polling"
        await asyncio.to_thread(pulse_server.load_null_sink, "dock", "Dock")
        change = await asyncio.wait_for(changes.get(), 10)
        assert "pulse:sink:dock" in {dev.id for dev in change.added}
    finally:
        await watcher.stop()


def test_without_sounddevice_every_device_call_names_the_extra() -> None:
    # A fresh interpreter where `import sounddevice` fails, as on an install without the
    # [audio] extra: the rest of the package imports and works.
    code = (
        "import sys; sys.modules['sounddevice'] = None\n"
        "import exotel_voice, exotel_voice.audio as audio\n"
        "from exotel_voice import ToneSource, Phone, ExotelWebClient\n"
        "from exotel_voice.media import DeviceSource, DeviceSink\n"
        "errors = []\n"
        "for call in (audio.list_devices, lambda: audio.find_device('x', 'input'),\n"
        "             DeviceSource, DeviceSink):\n"
        "    try:\n"
        "        call()\n"
        "    except exotel_voice.MediaError as exc:\n"
        "        errors.append(str(exc))\n"
        "print('\\n'.join(errors))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.splitlines()
    assert len(out) == 4
    for line in out:
        assert "pip install 'exotel-voice[audio]'" in line, line
    assert issubclass(AudioBackendMissing, Exception)
