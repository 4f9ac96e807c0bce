"""A private PulseAudio server for the audio device tests: null sinks and virtual microphones.

:func:`pulse_server` (a pytest fixture) starts ``pulseaudio`` for one test with a minimal
script: the native protocol on a socket in the test's own directory (anonymous, so any
user of this machine may connect), one null sink per speaker (``spk_a``, ``spk_b``:
what they play is read back from their ``.monitor`` source), and per microphone a null
sink to feed (``feed_1``, ``feed_2``) with a ``module-virtual-source`` on its monitor
(``mic_1``, ``mic_2``): whatever is played into ``feed_N`` is what ``mic_N`` records.

The test process is pointed at it with ``PULSE_SERVER``, and ALSA's ``default`` device is
routed to PulseAudio (an ``.asoundrc`` in a private ``HOME``), so PortAudio reaches it
through ALSA's ``pulse`` plugin (Debian ``libasound2-plugins``).

PulseAudio refuses to run as root outside ``--system`` mode; as root the server runs as
``nobody`` (``setpriv``) with its own runtime directory. The fixture skips, saying why,
when ``pulseaudio``, ``pactl``/``pacat`` or the ``sounddevice`` package is missing.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest


__all__ = ["PulseServer", "pulse_server", "pulse_skip_reason"]

SPEAKERS = ("spk_a", "spk_b")
MICS = ("mic_1", "mic_2")


def pulse_skip_reason() -> str | None:
    """Why the PulseAudio tests cannot run here, or ``None``."""
    for program, package in (("pulseaudio", "pulseaudio"), ("pactl", "pulseaudio-utils"),
                             ("pacat", "pulseaudio-utils")):
        if shutil.which(program) is None:
            return f"{program} is not installed (Debian: apt-get install {package})"
    try:
        import sounddevice  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"sounddevice/PortAudio is not available ({exc}): pip install '.[audio]'"
    if not Path("/usr/share/alsa/alsa.conf.d/pulse.conf").exists() and not Path(
        "/etc/alsa/conf.d/50-pulseaudio.conf"
    ).exists():
        return "ALSA's pulse plugin is not installed (Debian: apt-get install libasound2-plugins)"
    return None


class PulseServer:
    """One running ``pulseaudio`` and helpers to feed its microphones and read its speakers."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = directory / "native"
        self.server = f"unix:{self.socket}"
        self.log = directory / "pulseaudio.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._players: list[subprocess.Popen[bytes]] = []
        self._played = 0

    # -- life --------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        runtime = self.directory / "runtime"
        home = self.directory / "home"
        for path in (runtime, home):
            path.mkdir(mode=0o700)
        lines = [f"load-module module-native-protocol-unix socket={self.socket} "
                 "auth-anonymous=1"]
        for name in SPEAKERS:
            lines.append(f"load-module module-null-sink sink_name={name} "
                         f"sink_properties=device.description=Speaker_{name[-1].upper()}")
        for n, name in enumerate(MICS, 1):
            lines.append(f"load-module module-null-sink sink_name=feed_{n} "
                         f"sink_properties=device.description=Feed_{n}")
            lines.append(f"load-module module-virtual-source source_name={name} "
                         f"master=feed_{n}.monitor "
                         f"source_properties=device.description=Microphone_{n}")
        lines.append(f"set-default-sink {SPEAKERS[0]}")
        lines.append(f"set-default-source {MICS[0]}")
        script = self.directory / "pulse.pa"
        script.write_text("\n".join(lines) + "\n")
        command = ["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "-n", "-F",
                   str(script), "--use-pid-file=no", "--disable-shm=yes",
                   "--log-target=stderr", "--log-level=warning"]
        env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime),
               "PULSE_RUNTIME_PATH": str(runtime)}
        env.pop("PULSE_SERVER", None)
        # The server dies with the test process, even one killed without its clean-up.
        setpriv = ["setpriv", "--pdeathsig=TERM"]
        if os.geteuid() == 0:
            # PulseAudio will not run as root outside --system mode: run it as nobody.
            for path in (self.directory, runtime, home):
                os.chown(path, 65534, 65534)
            setpriv += ["--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        command = [*setpriv, *command]
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(command, env=env, stdout=log, stderr=log,
                                             stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"pulseaudio exited: {self.log.read_text()[-2000:]}")
            if self.socket.exists() and self.run_pactl("info", check=False).returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError(f"pulseaudio did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        for player in self._players:
            if player.poll() is None:
                player.kill()
            player.wait()
        self._players.clear()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    # -- pactl -------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return {**os.environ, "PULSE_SERVER": self.server}

    def run_pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["pactl", *args], env=self.env(), capture_output=True,
                              text=True, timeout=10, check=check)

    def load_null_sink(self, name: str, description: str | None = None) -> int:
        """Load a new null sink (a speaker plugged in); returns its module index."""
        args = [f"sink_name={name}"]
        if description:
            args.append(f"sink_properties=device.description={description}")
        return int(self.run_pactl("load-module", "module-null-sink", *args).stdout.strip())

    def unload_module(self, index: int) -> None:
        """Unload a module (the speaker unplugged)."""
        self.run_pactl("unload-module", str(index))

    def set_default_sink(self, name: str) -> None:
        self.run_pactl("set-default-sink", name)

    # -- audio -------------------------------------------------------------------------------

    def play(self, sink: str, samples: np.ndarray, rate: int = 48000) -> subprocess.Popen[bytes]:
        """Play int16 mono ``samples`` into ``sink`` (``feed_1`` feeds ``mic_1``); returns at
        once (the player is stopped with the server)."""
        self._played += 1
        path = self.directory / f"play-{self._played}.wav"
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(rate)
            wav.writeframes(np.asarray(samples, dtype="<i2").tobytes())
        return self.play_wav(sink, path)

    def play_wav(self, sink: str, path: Path) -> subprocess.Popen[bytes]:
        """Play a WAV file into ``sink``."""
        player = subprocess.Popen(["pacat", "--playback", "-d", sink, "--file-format=wav",
                                   str(path)], env=self.env(), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self._players.append(player)
        return player

    async def record(self, source: str, seconds: float, rate: int = 16000) -> np.ndarray:
        """``seconds`` of int16 mono audio from ``source`` (a speaker's ``spk_a.monitor``)."""
        process = await asyncio.create_subprocess_exec(
            "pacat", "--record", "-d", source, "--raw", "--format=s16le", f"--rate={rate}",
            "--channels=1", "--latency-msec=20", env=self.env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        assert process.stdout is not None
        want = int(seconds * rate) * 2
        data = b""
        try:
            async with asyncio.timeout(seconds + 5):
                while len(data) < want:
                    chunk = await process.stdout.read(want - len(data))
                    if not chunk:
                        break
                    data += chunk
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()
        return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").copy()


@pytest.fixture
def pulse_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[PulseServer]:
    """A PulseAudio server for this test, the process pointed at it (see the module)."""
    reason = pulse_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    # Not under pytest's own temporary directory: that one is private to the test user,
    # and the server may run as nobody.
    directory = Path(tempfile.mkdtemp(prefix="exotel-pulse-"))
    directory.chmod(0o755)
    server = PulseServer(directory)
    server.start()
    home = directory / "client-home"
    home.mkdir()
    (home / ".asoundrc").write_text("pcm.!default { type pulse }\nctl.!default { type pulse }\n")
    monkeypatch.setenv("PULSE_SERVER", server.server)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("PULSE_SINK", raising=False)
    monkeypatch.delenv("PULSE_SOURCE", raising=False)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
