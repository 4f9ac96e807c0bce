"""Running ``exotel-voice`` as a user does: a subprocess, with a clean environment.

The commands that place or take calls run real media and are marked ``media`` and
``LOOPBACK_MEDIA``: against a server on 127.0.0.1 the CLI keeps its media there too, so they
run as any user, without root or the network namespace.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

from exotel_voice.media.analysis import dominant_frequency, rms_dbfs

# The skip marks, one per reason (tests/rig/marks.py, docs/test-rig.md): real media on
# 127.0.0.1 needs neither root nor the namespace (LOOPBACK_MEDIA).
from tests.rig.marks import (
    LOOPBACK_MEDIA as LOOPBACK_MEDIA,
    NEEDS_NETNS as NEEDS_NETNS,
    NEEDS_NETNS_ROOT as NEEDS_NETNS_ROOT,
)


def cli_env(**extra: str) -> dict[str, str]:
    """This environment without any EXOTEL_* account or REST variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("EXOTEL_") or k in ("EXOTEL_NETNS", "EXOTEL_VOICE_AIORTC_COMPAT")}
    env.update(extra)
    return env


def command() -> list[str]:
    """The installed ``exotel-voice`` script next to this Python, else ``python -m``."""
    script = Path(sys.executable).parent / "exotel-voice"
    return [str(script)] if script.exists() else [sys.executable, "-m", "exotel_voice.cli"]


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run ``exotel-voice ARGS`` to its end; stdin is not a terminal."""
    return subprocess.run(
        [*command(), *args], env=env if env is not None else cli_env(), cwd=cwd,
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def json_lines(stdout: str) -> list[dict[str, Any]]:
    """The JSON objects a ``--json`` run printed, one per line."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def wav_tone(path: Path) -> tuple[float, float, float]:
    """``(seconds, dominant Hz, dBFS)`` of a mono 16-bit WAV file (its first 0.3 s skipped)."""
    with wave.open(str(path), "rb") as wav:
        rate = wav.getframerate()
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    body = samples[int(0.3 * rate):]
    return samples.size / rate, dominant_frequency(body, rate), rms_dbfs(body)


def assert_one_error_line(result: subprocess.CompletedProcess[str], status: int,
                          *words: str) -> str:
    """The run failed with ``status`` and said why in one ``exotel-voice:`` line, the last
    on stderr (where ``--json`` runs also write their progress), with no traceback."""
    assert result.returncode == status, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("exotel-voice: ")]
    assert errors == lines[-1:], result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


class Background:
    """A long-running ``exotel-voice`` (``sandbox``, ``answer``) whose stdout is read as it
    comes."""

    def __init__(self, *args: str, env: dict[str, str], cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            [*command(), *args], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        self._new: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._new.put(line.rstrip("\n"))
        self._new.put(None)

    def wait_for(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        """The first line so far or to come that matches ``pattern``."""
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if found := re.search(pattern, line):
                return found
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._new.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if found := re.search(pattern, line):
                return found
        raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(self.lines))

    def finish(self, timeout: float = 20.0) -> tuple[int, str, str]:
        """Wait for the end; returns ``(status, all of stdout, stderr)``."""
        status = self.proc.wait(timeout)
        while (line := self._new.get(timeout=5)) is not None:
            self.lines.append(line)
        assert self.proc.stderr is not None
        return status, "\n".join(self.lines), self.proc.stderr.read()

    def stop(self) -> None:
        """Kill it if it still runs, and close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        self._reader.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
