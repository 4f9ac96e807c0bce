"""``exotel-voice devices`` on a real PulseAudio server (tests/rig/pulse.py): the table and
``--json`` list the null sinks and virtual microphones with their ids and the defaults; without
the [audio] extra it says which extra to install and exits 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tests.rig.pulse import PulseServer, pulse_server

from exotel_voice.cli import main


__all__ = ["pulse_server"]

pytestmark = pytest.mark.timeout(60)


def test_devices_table_and_json(pulse_server: PulseServer,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices"]) == 0
    table = capsys.readouterr().out
    assert "Input devices" in table and "Output devices" in table
    assert "pulse:source:mic_1" in table and "Microphone_1" in table
    assert "pulse:sink:spk_b" in table and "Speaker_B" in table
    assert main(["devices", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    inputs = {d["id"]: d for d in listed["input"]}
    outputs = {d["id"]: d for d in listed["output"]}
    assert inputs["pulse:source:mic_1"]["default_input"] is True
    assert outputs["pulse:sink:spk_a"] == {
        "id": "pulse:sink:spk_a", "name": "Speaker_A", "host_api": "PulseAudio",
        "input_channels": 0, "output_channels": 2, "default_input": False,
        "default_output": True,
    }
    assert "pulse:sink:spk_a" not in inputs  # a speaker is not an input


def test_devices_without_the_audio_extra_names_it() -> None:
    code = ("import sys; sys.modules['sounddevice'] = None\n"
            "from exotel_voice.cli import main\n"
            "sys.exit(main(['devices']))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "pip install 'exotel-voice[audio]'" in done.stderr
    assert done.stderr.startswith("exotel-voice: ")
