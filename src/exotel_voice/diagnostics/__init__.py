"""Diagnostics (integration guide 5.11): device tests and network checks.

Two faces, as everywhere in the package:

* asyncio: :func:`~exotel_voice.diagnostics.network.diagnose` runs the network checks
  (WebSocket, registration, TCP/UDP reachability of the ICE servers, host / server-reflexive
  / relay candidates, the round-trip time to the SIP server) concurrently, each with its own
  deadline, and returns one typed :class:`~exotel_voice.diagnostics.network.DiagnosticsReport`;
* the guide's ``ExotelWebClient.initDiagnostics(diagnosticsReportCallback,
  diagnosticsKeyValueCallback)`` and its ``start...Diagnostics...`` methods, which keep their
  state in one :class:`DiagnosticsSession`: the two callbacks and the troubleshooting log.
  The facade (``client/facade.py``) maps typed results to the guide's keys and strings;
  this module only carries them.

:class:`DiagnosticsSession` calls the application's callbacks on whatever thread calls
:meth:`DiagnosticsSession.log` / :meth:`DiagnosticsSession.key_value` (the facade's loop
thread); an exception raised by a callback is logged and does not stop the diagnostics.
Nothing written here may carry a secret: callers pass descriptions built from hosts,
ports, states and candidate lines only (never a password, a digest or an ``ice-pwd``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Literal

from .devices import DeviceDiagnostics, DeviceInfo, sdk_version_string
from .network import CHECK_NAMES, Check, DiagnosticsReport, Verdict, diagnose


__all__ = [
    "CHECK_NAMES",
    "Check",
    "DeviceDiagnostics",
    "DeviceInfo",
    "DiagnosticsKeyValueCallback",
    "DiagnosticsReport",
    "DiagnosticsReportCallback",
    "DiagnosticsSession",
    "LogLevel",
    "Verdict",
    "diagnose",
    "sdk_version_string",
]

logger = logging.getLogger(__name__)

#: The guide's ``diagnosticsReportCallback(logStatus, logData)``.
DiagnosticsReportCallback = Callable[[str, str], object]
#: The guide's ``diagnosticsKeyValueCallback(key, status, description)``; ``status`` is a
#: string, or a number for the level meters (``mic``, ``speaker``).
DiagnosticsKeyValueCallback = Callable[[str, "str | float", str], object]

#: Levels of a troubleshooting log line.
LogLevel = Literal["INFO", "WARNING"]


class DiagnosticsSession:
    """The state of one ``initDiagnostics``: the two callbacks and the troubleshooting log.

    Every line added with :meth:`log` is formatted as the JS SDK formats its report,
    ``[YYYY-MM-DD HH:MM:SS] [INFO] <prefix>: <message>`` (local time), appended to the log,
    and then the report callback receives ``(log_status, <the whole log so far>)``.

    Args:
        report_callback: ``(logStatus, logData)``, or ``None``.
        key_value_callback: ``(key, status, description)``, or ``None``.
        log_status: the ``logStatus`` passed with each report.
        prefix: the tag put before every message of the log.
        clock: seconds since the epoch (injectable for tests).
    """

    def __init__(
        self,
        report_callback: DiagnosticsReportCallback | None,
        key_value_callback: DiagnosticsKeyValueCallback | None,
        *,
        log_status: str = "troubleShootReport",
        prefix: str = "TROUBLESHOOTER_FSM_REPORT",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.report_callback = report_callback
        self.key_value_callback = key_value_callback
        self.log_status = log_status
        self.prefix = prefix
        self._clock = clock
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<DiagnosticsSession {state}, {len(self._lines)} log lines>"

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (nothing is reported any more)."""
        return self._closed

    @property
    def lines(self) -> list[str]:
        """The troubleshooting log so far, one line per entry (newline included)."""
        with self._lock:
            return list(self._lines)

    @property
    def report_text(self) -> str:
        """The whole troubleshooting log, as the report callback last received it."""
        with self._lock:
            return "".join(self._lines)

    def log(self, message: str, level: LogLevel = "INFO") -> None:
        """Add one line to the troubleshooting log and hand the whole log to the report
        callback."""
        if self._closed:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self._clock()))
        line = f"[{stamp}] [{level}] {self.prefix}: {message}\n"
        with self._lock:
            self._lines.append(line)
            text = "".join(self._lines)
        cb = self.report_callback
        if cb is not None:
            self._call(cb, "diagnosticsReportCallback", self.log_status, text)

    def key_value(self, key: str, status: str | float, description: str = "") -> None:
        """Report one result through the key/value callback."""
        if self._closed:
            return
        cb = self.key_value_callback
        if cb is not None:
            self._call(cb, "diagnosticsKeyValueCallback", key, status, description)

    def clear(self) -> None:
        """Forget the troubleshooting log (a new ``initDiagnostics``)."""
        with self._lock:
            self._lines.clear()

    def close(self) -> None:
        """Stop reporting: later :meth:`log` and :meth:`key_value` calls do nothing."""
        self._closed = True

    @staticmethod
    def _call(cb: Callable[..., object], what: str, *args: object) -> None:
        try:
            cb(*args)
        except Exception:
            logger.exception("! %s raised", what)
