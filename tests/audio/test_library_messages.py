"""ALSA's and JACK's own messages never reach the process's stderr: they go to the
``exotel_voice.audio`` logger at DEBUG (``audio/_backend.py``, ``quiet_audio_libraries``).

Each test runs a child process the way a user would: listing the devices on a machine
without sound cards (PortAudio probes every ALSA device: ``Unknown PCM cards.pcm.rear``,
libjack's ``Cannot connect to server socket``), ``exotel-voice devices``, and opening a
PulseAudio microphone that was unplugged after it was listed (``PulseAudio: Unable to
create stream``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.rig.pulse import PulseServer, pulse_server


__all__ = ["pulse_server"]

pytestmark = pytest.mark.timeout(60)

#: What ALSA and libjack write on stderr when nobody takes their messages.
NOISE = ("ALSA lib", "jack", "Cannot connect to server")

LOGGING = (
    "import logging, sys\n"
    "logging.basicConfig(level=logging.DEBUG, stream=sys.stdout,\n"
    "                    format='LOG %(name)s %(levelname)s %(message)s')\n"
)


def _needs_the_audio_libraries() -> None:
    try:
        import sounddevice  # noqa: F401, PLC0415
    except (ImportError, OSError) as exc:
        pytest.skip(f"sounddevice/PortAudio is not available ({exc})")
    for library in ("libasound.so.2", "libjack.so.0"):
        try:
            __import__("ctypes").CDLL(library)
        except OSError:
            pytest.skip(f"{library} is not installed: nothing would be printed")


def _noise(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines()
            if any(word.lower() in line.lower() for word in NOISE)]


def _no_sound_server(tmp_path: Path) -> dict[str, str]:
    """A machine without sound cards or a sound server: an empty HOME, no PulseAudio."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PULSE_", "JACK_", "ALSA_"))}
    env.update({"HOME": str(home), "PULSE_SERVER": f"unix:{tmp_path / 'no-pulse'}"})
    return env


def test_listing_devices_without_sound_cards_logs_alsa_and_jack_and_prints_nothing(
    tmp_path: Path,
) -> None:
    _needs_the_audio_libraries()
    env = _no_sound_server(tmp_path)
    code = LOGGING + ("from exotel_voice.audio import list_devices\n"
                      "print('devices:', len(list_devices()))\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "devices: " in done.stdout
    assert _noise(done.stderr) == []
    log = [line for line in done.stdout.splitlines() if line.startswith("LOG ")]
    # The messages PortAudio's probing caused are in the log, at DEBUG, on the audio logger.
    assert any(line.startswith("LOG exotel_voice.audio DEBUG ALSA lib ") and "Unknown PCM" in line
               for line in log), done.stdout
    assert any(line.startswith("LOG exotel_voice.audio DEBUG JACK: ")
               and "jack server is not running" in line for line in log), done.stdout


def test_the_devices_command_without_sound_cards_prints_no_library_noise(
    tmp_path: Path,
) -> None:
    _needs_the_audio_libraries()
    env = _no_sound_server(tmp_path)
    program = shutil.which("exotel-voice", path=str(Path(sys.executable).parent))
    command = [program] if program else [sys.executable, "-m", "exotel_voice.cli"]
    done = subprocess.run([*command, "devices"], env=env, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    assert "Input devices" in done.stdout
    assert _noise(done.stderr) == []


def _module_of_source(pulse: PulseServer, source: str) -> str:
    for line in pulse.run_pactl("list", "short", "modules").stdout.splitlines():
        index, _, rest = line.partition("\t")
        if f"source_name={source} " in rest + " ":
            return index
    raise AssertionError(f"no module makes {source}")


def test_a_microphone_unplugged_after_listing_fails_with_an_error_and_no_alsa_noise(
    pulse_server: PulseServer,
) -> None:
    module = _module_of_source(pulse_server, "mic_2")
    code = LOGGING + (
        "import asyncio, subprocess\n"
        "from exotel_voice.audio import find_device\n"
        "from exotel_voice.exceptions import AudioSourceError\n"
        "from exotel_voice.media import DeviceSource\n"
        "mic = find_device('mic_2', kind='input')\n"
        f"subprocess.run(['pactl', 'unload-module', '{module}'], check=True)\n"
        "async def main():\n"
        "    source = DeviceSource(mic)\n"
        "    try:\n"
        "        await source.start()\n"
        "    except AudioSourceError as exc:\n"
        "        print('error:', exc)\n"
        "    finally:\n"
        "        await source.stop()\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    assert "error: " in done.stdout and "cannot open the input device" in done.stdout
    assert _noise(done.stderr) == []
    assert any(line.startswith("LOG exotel_voice.audio DEBUG ALSA lib pcm_pulse.c")
               and "Unable to create stream" in line
               for line in done.stdout.splitlines()), done.stdout
