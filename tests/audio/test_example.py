"""examples/guide_5_14_audio_devices.py against the sandbox with PulseAudio devices
(tests/rig/pulse.py): the sandbox's echo sends back what the virtual microphone hears, the
example hears it, mutes, switches microphone and speaker mid-call, and the far end's audio is
then read back from the new speaker's monitor; a device that does not exist fails the example.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.rig.marks import LOOPBACK_MEDIA
from tests.rig.pulse import PulseServer, pulse_server

from exotel_voice.media.analysis import dominant_frequency, rms_dbfs
from exotel_voice.sandbox import SandboxConfig
from exotel_voice.sandbox.threaded import SandboxThread


__all__ = ["pulse_server"]

pytestmark = [pytest.mark.media, LOOPBACK_MEDIA, pytest.mark.timeout(90)]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "guide_5_14_audio_devices.py"
RATE = 48000


def tone(freq: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * freq * t) * 0.4 * 32767).astype(np.int16)


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    config = SandboxConfig(ws_port=0, wss_port=0, http_port=0,
                           users={"agent": secrets.token_urlsafe(12)})
    with SandboxThread(config) as sb:
        yield sb


class Example:
    def __init__(self, sandbox: SandboxThread, *args: str) -> None:
        info = sandbox.sip_account_info("agent")
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXOTEL_")}
        env.update({"EXOTEL_DOMAIN": info["domain"], "EXOTEL_PORT": info["port"],
                    "EXOTEL_SECRET": info["secret"]})
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE), "--timeout", "30", *args], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, cwd=EXAMPLE.parent)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_line(self, text: str, timeout: float = 20.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: any(text in x for x in self.lines), timeout):
                raise AssertionError(f"no {text!r} in:\n" + "\n".join(self.lines))

    def finish(self) -> tuple[int, str]:
        try:
            status = self.proc.wait(40)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._reader.join(5)
            assert self.proc.stdout is not None
            self.proc.stdout.close()
        with self._cond:
            return status, "\n".join(self.lines)


def test_the_example_hears_the_microphone_and_switches_devices_mid_call(
    sandbox: SandboxThread, pulse_server: PulseServer,
) -> None:
    pulse_server.play("feed_1", tone(1000, 40))
    pulse_server.play("feed_2", tone(1000, 40))
    ex = Example(sandbox, "--input", "mic_1", "--output", "Speaker_A",
                 "--switch-input", "pulse:source:mic_2", "--switch-output", "spk_b",
                 "--expect-tone-hz", "1000", "--after-switch", "2.5")
    ex.wait_line("RegisterEventCallBack: registered")
    sid = asyncio.run(sandbox.connect("agent", "echo"))
    ex.wait_line("switched")
    # The echo of our microphone now plays on spk_b, and no more on spk_a.
    moved = asyncio.run(pulse_server.record("spk_b.monitor", 1.0))[4000:]
    old = asyncio.run(pulse_server.record("spk_a.monitor", 0.5))
    status, out = ex.finish()
    assert status == 0, out
    assert "device: pulse:source:mic_1 (Microphone_1, input)" in out
    for line in ("input device changed successfully to mic_1",
                 "output device changed successfully to Speaker_A",
                 "input device changed successfully to pulse:source:mic_2",
                 "output device changed successfully to spk_b",
                 "muted after the input change: True", "callState: connected"):
        assert line in out, out
    assert rms_dbfs(moved) > -40 and abs(dominant_frequency(moved, 16000) - 1000) < 20
    assert rms_dbfs(old) < -60
    assert asyncio.run(sandbox.wait_call_ended(sid)) == "completed"


def test_the_example_fails_on_a_device_that_does_not_exist(
    sandbox: SandboxThread, pulse_server: PulseServer,
) -> None:
    ex = Example(sandbox, "--output", "Headset 9")
    status, out = ex.finish()
    assert status == 1
    assert "Failed to change output device: no output device 'Headset 9'" in out
    assert "check failed: the devices could not be chosen" in out
