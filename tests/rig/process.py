"""Running third-party daemons as child processes of the test session.

:class:`Daemon` starts one program with stdout and stderr going to a log file, stops it with
SIGTERM then SIGKILL, and registers itself with :mod:`atexit` so nothing outlives the
pytest process even if a fixture finalizer never runs.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


_live: weakref.WeakSet[Daemon] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for daemon in list(_live):
        daemon.stop(timeout=1.0)


class RigError(RuntimeError):
    """A rig component failed to start or misbehaved; the message points at its log file."""


class Daemon:
    """One child process with its output in ``log_path``.

    Args:
        name: short name used in messages (``"kamailio"``).
        argv: program and arguments.
        log_path: file receiving stdout and stderr (appended to across restarts).
        cwd: working directory.
        env: extra environment variables.
        hide: strings (passwords) masked as ``***`` in the command line written to the log.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        hide: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.hide = [h for h in hide if h]
        self.argv = list(argv)
        self.log_path = log_path
        self.cwd = cwd
        self.env = dict(os.environ, **(env or {}))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.is_running:
            raise RigError(f"{self.name} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            shown = " ".join(self.argv)
            for secret in self.hide:
                shown = shown.replace(secret, "***")
            log.write(f"\n=== starting {self.name}: {shown}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,  # a Ctrl-C on pytest must not hit the daemon first
            )
        _live.add(self)

    def wait_ready(
        self, probe: Callable[[], bool], timeout: float, interval: float = 0.02
    ) -> float:
        """Call ``probe`` until it returns true; return the seconds it took.

        Raises:
            RigError: the process exited, or ``timeout`` passed. The log tail is included.
        """
        start = time.monotonic()
        while True:
            if not self.is_running:
                raise RigError(f"{self.name} exited during start-up\n{self.log_tail()}")
            try:
                if probe():
                    return time.monotonic() - start
            except OSError:
                pass
            if time.monotonic() - start > timeout:
                raise RigError(f"{self.name} not ready after {timeout:.1f}s\n{self.log_tail()}")
            time.sleep(interval)

    def stop(self, timeout: float = 3.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``.  Returns the exit code (None: never started)."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                proc.wait(5)
        _live.discard(self)
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group at once (a crash, as far as peers can tell)."""
        if self.proc is not None and self.proc.poll() is None:
            self._signal_group(signal.SIGKILL)
            self.proc.wait(5)
        _live.discard(self)

    def _signal_group(self, sig: int) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        tail = self.log_text().splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)
