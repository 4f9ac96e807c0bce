"""Guide 5.11's microphone and speaker tests, on a real PulseAudio server (tests/rig/pulse.py).

* the asyncio side (:class:`DeviceDiagnostics`): the device names; the speaker test plays
  the ringtone on the selected sink and the level it reports matches what that sink's
  monitor hears (the other sink hears nothing); the mic test's levels follow a WAV played
  into the virtual microphone (silent, then loud);
* the facade: ``initDiagnostics`` reports ``speakerInfo``, ``micInfo`` and
  ``browserVersion`` at once; ``start/stopSpeakerDiagnosticsTest`` and
  ``start/stopMicDiagnosticsTest`` report levels under ``speaker`` / ``mic`` and write the
  user's verdict into the troubleshooting log;
* errors (no ``[audio]`` extra, no device) reach the callbacks as "mic error" / "speaker
  error" with the reason, never as an exception (these need no PulseAudio).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.rig.audio import tone, write_wav
from tests.rig.pulse import PulseServer, pulse_server

from exotel_voice import ExotelWebClient
from exotel_voice.audio import AudioBackendMissing, DeviceKind, find_device
from exotel_voice.diagnostics.devices import DeviceDiagnostics, sdk_version_string
from exotel_voice.media.analysis import goertzel_power, rms


__all__ = ["pulse_server"]

pytestmark = pytest.mark.timeout(60)

RINGTONE_FREQS = (660.0, 880.0)


def windows_rms(samples: np.ndarray[Any, Any], rate: int, seconds: float) -> list[float]:
    n = int(rate * seconds)
    return [rms(samples[i:i + n]) for i in range(0, samples.size - n + 1, n)]


def ringtone_share(samples: np.ndarray[Any, Any], rate: int) -> float:
    """The share of the ringtone's two frequencies in the power of the loud 0.1 s windows
    (the bursts; a window is coherent, the whole cadence would not be)."""
    n = int(0.1 * rate)
    windows = [samples[i:i + n] for i in range(0, samples.size - n + 1, n)]
    peak = max((rms(w) for w in windows), default=0.0)
    loud = [w for w in windows if peak and rms(w) > 0.7 * peak]
    if not loud:
        return 0.0
    shares = [2.0 * sum(goertzel_power(w, rate, f) for f in RINGTONE_FREQS) / rms(w) ** 2
              for w in loud]
    return float(np.median(shares))


# -- asyncio ---------------------------------------------------------------------------------
def test_info_names_the_default_devices_and_the_versions(pulse_server: PulseServer) -> None:
    info = DeviceDiagnostics().info()
    assert (info.speaker, info.mic) == ("Speaker_A", "Microphone_1")
    assert (info.speaker_error, info.mic_error) == ("", "")
    assert info.version == sdk_version_string()
    assert info.version.startswith("exotel-voice/") and " Python/3." in info.version
    chosen = DeviceDiagnostics(input="mic_2", output=find_device("spk_b", "output")).info()
    assert (chosen.speaker, chosen.mic) == ("Speaker_B", "Microphone_2")


async def test_speaker_test_level_matches_what_the_selected_sink_plays(
    pulse_server: PulseServer,
) -> None:
    levels: list[float] = []
    errors: list[str] = []
    diagnostics = DeviceDiagnostics(output=find_device("spk_b", DeviceKind.OUTPUT))
    rate = 16000
    heard_b = asyncio.create_task(pulse_server.record("spk_b.monitor", 3.0, rate))
    heard_a = asyncio.create_task(pulse_server.record("spk_a.monitor", 3.0, rate))
    await asyncio.sleep(0.2)
    assert await diagnostics.start_speaker_test(levels.append, errors.append)
    assert diagnostics.speaker_test_running
    assert not await diagnostics.start_speaker_test(levels.append, errors.append)  # once
    b, a = await heard_b, await heard_a
    await diagnostics.stop_speaker_test()
    assert errors == []
    # About ten reports a second; the loud ones are the ringtone's bursts.
    assert len(levels) >= 15
    assert max(levels) > 0.05 and min(levels) < 0.01  # bursts and the pause between rings
    # The selected sink played the ringtone, at the level reported; the other one nothing.
    assert ringtone_share(b, rate) > 0.8
    monitor_peak = max(windows_rms(b, rate, 0.1))
    assert 20 * np.log10(max(levels) / monitor_peak) == pytest.approx(0, abs=2.0)
    assert rms(a) < 0.001
    # Stopped: the sink is silent again.
    after = await pulse_server.record("spk_b.monitor", 0.5, rate)
    assert rms(after[int(0.2 * rate):]) < 0.001


async def test_mic_test_levels_follow_the_virtual_microphone(
    pulse_server: PulseServer, tmp_path: Path
) -> None:
    reports: list[tuple[float, float]] = []
    errors: list[str] = []
    loop = asyncio.get_running_loop()
    diagnostics = DeviceDiagnostics(input=find_device("mic_2", DeviceKind.INPUT))
    assert await diagnostics.start_mic_test(
        lambda level: reports.append((loop.time(), level)), errors.append)
    async with asyncio.timeout(10):  # opening a device through ALSA's pulse plugin is slow
        while len(reports) < 5:
            await asyncio.sleep(0.05)
    quiet_until = loop.time()
    # A WAV into feed_2, which is what mic_2 records: 1.5 s of a 0.5-amplitude tone.
    wav = write_wav(tmp_path / "speech.wav", tone(500.0, 48000, 1.5, 0.5), 48000)
    pulse_server.play_wav("feed_2", wav)
    await asyncio.sleep(1.5)
    await diagnostics.stop_mic_test()
    assert not diagnostics.mic_test_running
    assert errors == []
    silent = [level for t, level in reports if t <= quiet_until]
    loud = [level for t, level in reports if t > quiet_until + 0.5]
    assert len(silent) >= 5 and len(loud) >= 5
    assert max(silent) < 0.01
    # A 0.5-amplitude sine has an RMS of about 0.35.
    assert min(loud) > 0.2
    count = len(reports)
    await asyncio.sleep(0.3)
    assert len(reports) == count  # stopped


# -- the facade ------------------------------------------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.values: list[tuple[str, Any, str]] = []
        self.report = ""
        self.threads: set[str] = set()
        self.changed = threading.Condition()

    def key_value(self, key: str, status: Any, description: str) -> None:
        with self.changed:
            self.values.append((key, status, description))
            self.threads.add(threading.current_thread().name)
            self.changed.notify_all()

    def on_report(self, status: str, data: str) -> None:
        assert status == "troubleShootReport"
        with self.changed:
            self.report = data
            self.changed.notify_all()

    def wait(self, predicate: Any, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate():
                left = deadline - time.monotonic()
                assert left > 0, f"timed out; got {self.values[-5:]}, report {self.report!r}"
                self.changed.wait(left)

    def of(self, key: str) -> list[tuple[str, Any, str]]:
        with self.changed:
            return [v for v in self.values if v[0] == key]


def test_facade_speaker_and_mic_tests(pulse_server: PulseServer, tmp_path: Path) -> None:
    rec = Recorder()
    with ExotelWebClient() as client:
        assert client.initDiagnostics(rec.on_report, rec.key_value)
        rec.wait(lambda: rec.of("browserVersion"))
        keys = [v[0] for v in rec.values]
        assert keys == ["speakerInfo", "micInfo", "browserVersion"]
        assert rec.of("speakerInfo") == [("speakerInfo", "Speaker_A", "speakerInfo")]
        assert rec.of("micInfo") == [("micInfo", "Microphone_1", "micInfo")]
        assert rec.of("browserVersion") == [("browserVersion", "ready", sdk_version_string())]
        assert rec.threads == {client.thread.name}
        assert "Device: speaker, label: Speaker_A" in rec.report

        client.startSpeakerDiagnosticsTest().result(5)
        rec.wait(lambda: len(rec.of("speaker")) >= 5)
        client.stopSpeakerDiagnosticsTest("yes").result(5)
        speaker = rec.of("speaker")
        assert all(d == "speaker ok" and isinstance(s, float) for _, s, d in speaker)
        assert max(s for _, s, _ in speaker) > 0.05
        assert "Speaker device testing is started" in rec.report
        assert "DEVICE EVENT =  SPEAKER_TEST_PASS" in rec.report

        wav = write_wav(tmp_path / "voice.wav", tone(500.0, 48000, 3.0, 0.5), 48000)
        client.startMicDiagnosticsTest().result(5)
        pulse_server.play_wav("feed_1", wav)  # mic_1: the default input
        rec.wait(lambda: any(s > 0.2 for _, s, _ in rec.of("mic")))
        client.stopMicDiagnosticsTest("no").result(5)
        assert all(d == "mic ok" for _, _, d in rec.of("mic"))
        assert "Microphone device testing is inprogress" in rec.report
        assert "label:Microphone_1" in rec.report
        assert "DEVICE EVENT =  MICROPHONE_TEST_FAIL" in rec.report
        assert "Mic device testing is completed" in rec.report
        count = len(rec.values)
        time.sleep(0.3)
        assert len(rec.values) == count  # both tests stopped


# -- errors, without PulseAudio ----------------------------------------------------------------
def no_backend(*args: object, **kwargs: object) -> Any:
    raise AudioBackendMissing("audio devices need the [audio] extra: "
                              "pip install 'exotel-voice[audio]'")


async def test_without_the_extra_the_tests_report_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("exotel_voice.audio.devices.import_sounddevice", no_backend)
    info = DeviceDiagnostics().info()
    assert (info.mic, info.speaker) == ("", "")
    assert "exotel-voice[audio]" in info.mic_error and "exotel-voice[audio]" in info.speaker_error

    errors: list[str] = []
    levels: list[float] = []
    diagnostics = DeviceDiagnostics(sink_factory=no_backend, source_factory=no_backend)
    await diagnostics.start_speaker_test(levels.append, errors.append)
    await diagnostics.start_mic_test(levels.append, errors.append)
    async with asyncio.timeout(5):
        while len(errors) < 2:
            await asyncio.sleep(0.02)
    await diagnostics.aclose()
    assert levels == []
    assert all("exotel-voice[audio]" in e for e in errors)
    assert any(e.startswith("cannot open the default input") for e in errors)


def test_facade_reports_mic_and_speaker_errors_not_exceptions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("exotel_voice.audio.devices.import_sounddevice", no_backend)
    monkeypatch.setattr("exotel_voice.audio.sounds._device_sink", no_backend)
    monkeypatch.setattr("exotel_voice.diagnostics.devices._device_source", no_backend)
    rec = Recorder()
    with ExotelWebClient() as client:
        assert client.initDiagnostics(rec.on_report, rec.key_value)
        rec.wait(lambda: rec.of("browserVersion"))
        (info,) = rec.of("micInfo")
        assert info[1] == "" and info[2].startswith("mic error: ")
        (info,) = rec.of("speakerInfo")
        assert info[1] == "" and info[2].startswith("speaker error: ")
        client.startSpeakerDiagnosticsTest().result(5)
        client.startMicDiagnosticsTest().result(5)
        rec.wait(lambda: rec.of("speaker") and rec.of("mic"))
        ((_, s_level, s_desc),) = rec.of("speaker")
        ((_, m_level, m_desc),) = rec.of("mic")
        assert (s_level, m_level) == (0.0, 0.0)
        assert s_desc.startswith("speaker error: ") and "exotel-voice[audio]" in s_desc
        assert m_desc.startswith("mic error: ") and "exotel-voice[audio]" in m_desc
        assert "[WARNING]" in rec.report and "MICROPHONE_TEST_FAIL" in rec.report
        client.stopSpeakerDiagnosticsTest().result(5)
        client.stopMicDiagnosticsTest().result(5)
        assert "Mic device testing is stopped" in rec.report
        assert "SPEAKER_TEST" not in rec.report  # no verdict given: none recorded


def test_facade_diagnostics_before_init_fail_clearly() -> None:
    with ExotelWebClient() as client:
        fut = client.startSpeakerDiagnosticsTest()
        with pytest.raises(Exception, match="initDiagnostics"):
            fut.result(5)
        assert not client.initDiagnostics("not a function", None)  # type: ignore[arg-type]


# -- the example -------------------------------------------------------------------------------
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "guide_5_11_diagnostics.py"


def test_the_example_runs_the_device_tests(pulse_server: PulseServer, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXOTEL_")}
    env["EXOTEL_SECRET"] = "unused"  # no registration with --devices-only
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--devices-only", "--answer", "yes",
         "--speaker-seconds", "1.5", "--mic-seconds", "1.5", "--timeout", "15"],
        env=env, cwd=EXAMPLE.parent, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "diagnostics speakerInfo Speaker_A speakerInfo" in out
    assert "diagnostics micInfo Microphone_1 micInfo" in out
    assert f"diagnostics browserVersion ready {sdk_version_string()}" in out
    assert any(line.startswith("diagnostics speaker 0.") and line.endswith("speaker ok")
               for line in out.splitlines())
    assert any(line.endswith("mic ok") for line in out.splitlines())
    assert "SPEAKER_TEST_PASS" in out and "MICROPHONE_TEST_PASS" in out
