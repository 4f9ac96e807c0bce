"""PortAudio is re-initialised by a device re-scan; nothing may query it or be halfway
through opening a stream meanwhile (that crashes the process inside PortAudio)."""

from __future__ import annotations

import threading
from typing import Any

from exotel_voice.audio import _backend
from exotel_voice.audio.devices import _portaudio_devices


class FakePortAudio:
    """Records PortAudio calls; a query or stream opening can be paused halfway."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.inside = threading.Event()
        self.go_on = threading.Event()
        self.default = type("Default", (), {"device": (0, 0)})()

    def query_hostapis(self) -> list[dict[str, Any]]:
        self.calls.append("query")
        self.inside.set()
        assert self.go_on.wait(5)
        return [{"name": "ALSA"}]

    def query_devices(self) -> list[dict[str, Any]]:
        return []

    def _terminate(self) -> None:
        self.calls.append("terminate")

    def _initialize(self) -> None:
        self.calls.append("initialize")


def test_a_rescan_waits_for_a_query_in_progress() -> None:
    sd = FakePortAudio()
    query = threading.Thread(target=_portaudio_devices, args=(sd,), kwargs={"defaults": True})
    query.start()
    assert sd.inside.wait(5)
    rescan = threading.Thread(target=_backend.rescan_portaudio, args=(sd,))
    rescan.start()
    rescan.join(0.2)
    assert sd.calls == ["query"], "PortAudio was re-initialised under a running query"
    sd.go_on.set()
    query.join(5)
    rescan.join(5)
    assert sd.calls == ["query", "terminate", "initialize"]


def test_a_rescan_waits_for_a_stream_being_opened() -> None:
    sd = FakePortAudio()
    opened = threading.Event()
    release = threading.Event()

    def open_stream() -> None:  # what DeviceSink/DeviceSource do around opening a stream
        with _backend.portaudio_lock:
            opened.set()
            assert release.wait(5)
            _backend.stream_opened()

    opener = threading.Thread(target=open_stream)
    opener.start()
    assert opened.wait(5)
    result: list[bool] = []
    rescan = threading.Thread(target=lambda: result.append(_backend.rescan_portaudio(sd)))
    rescan.start()
    rescan.join(0.2)
    assert sd.calls == []
    release.set()
    opener.join(5)
    rescan.join(5)
    try:
        # The stream was counted before the re-scan could run: it is skipped, not run.
        assert result == [False] and sd.calls == []
    finally:
        _backend.stream_closed()
