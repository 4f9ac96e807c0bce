"""Microphone and speaker diagnostics (integration guide 5.11), on real devices.

:class:`DeviceDiagnostics` is the asyncio API:

* :meth:`~DeviceDiagnostics.info`: the SDK, Python and platform versions (what the JS
  SDK reports as ``browserVersion``) and the names of the input and output devices in
  use (``micInfo``, ``speakerInfo``);
* :meth:`~DeviceDiagnostics.start_speaker_test`: plays the ringtone on the selected
  output device (through the same :class:`~exotel_voice.audio.sounds.SoundPlayer` that
  rings for calls) and reports the level of what it plays every ``interval`` seconds;
* :meth:`~DeviceDiagnostics.start_mic_test`: captures the selected input device and
  reports its live level every ``interval`` seconds.

Levels are the RMS of the last ``interval`` of audio relative to full scale (0.0 for
silence, about 0.707 for a full-scale sine), a float a UI can draw as a meter. (The JS SDK
reports the mean of a 0-255 FFT magnitude spectrum instead; the guide only says "a
floating point value".) Whether the user heard the ringtone or saw the meter move is
the user's verdict, given to ``stop...Test(response)``: the facade writes it into the
troubleshooting log, as the JS SDK does.

Errors (no ``[audio]`` extra, no such device, a device that cannot be opened) never
raise out of a running test: they go to ``on_error`` with a description (the facade
reports them as ``"mic error"`` / ``"speaker error"``).
"""

from __future__ import annotations

import asyncio
import logging
import platform
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..audio.devices import AudioDevice, DeviceKind, default_device, find_device
from ..audio.sounds import (
    DEVICE_LOCK,
    RINGTONE,
    SOUND_RATE,
    SinkFactory,
    SoundPlayer,
    Sounds,
    Tone,
    WavSound,
)
from ..exceptions import MediaError
from ..media.analysis import rms
from ..media.pcm import FRAME_MS, Samples
from ..media.sources import AudioSource, DeviceSource


__all__ = ["DeviceDiagnostics", "DeviceInfo", "sdk_version_string"]

logger = logging.getLogger(__name__)

#: A device as the phone holds it: an AudioDevice, an id or name, an index, or None.
Device = Any
LevelCallback = Callable[[float], None]
ErrorCallback = Callable[[str], None]


def sdk_version_string() -> str:
    """``exotel-voice/<version> Python/<version> <platform>``: our ``browserVersion``."""
    from .. import __version__  # noqa: PLC0415 - the package imports this module's users

    return f"exotel-voice/{__version__} Python/{platform.python_version()} {platform.platform()}"


@dataclass(frozen=True)
class DeviceInfo:
    """What :meth:`DeviceDiagnostics.info` found.

    Attributes:
        version: :func:`sdk_version_string`.
        mic: the input device's name ("" when none could be found).
        speaker: the output device's name ("" when none could be found).
        mic_error: why the input device could not be found ("" when it was).
        speaker_error: why the output device could not be found ("" when it was).
    """

    version: str
    mic: str
    speaker: str
    mic_error: str = ""
    speaker_error: str = ""


def _device_name(kind: DeviceKind, device: Any) -> tuple[str, str]:
    """The name of ``device`` (``None``: the default ``kind`` device), or ("", why)."""
    if isinstance(device, AudioDevice):
        return device.name, ""
    try:
        if device is None:
            found = default_device(kind)
            if found is None:
                return "", f"there is no {kind} device"
        else:
            found = find_device(device, kind)
    except MediaError as exc:  # AudioBackendMissing, AudioDeviceError
        return "", str(exc)
    except Exception as exc:  # PortAudio's own errors
        return "", f"cannot list the {kind} devices: {exc}"
    return found.name, ""


class DeviceDiagnostics:
    """Speaker and microphone tests on the selected devices.

    Args:
        input: the input device (id or name), or a function returning it when a test
            starts (the phone's selected input); ``None``: the system default.
        output: the same for the output device.
        ringtone: what the speaker test plays (default: the built-in ringtone).
        interval: seconds between two level reports (0.02-1.0).
        sink_factory: makes the speaker test's sink (default: a
            :class:`~exotel_voice.media.sinks.DeviceSink`).
        source_factory: makes the mic test's source from a device (default: a
            :class:`~exotel_voice.media.sources.DeviceSource` at 48 kHz).

    Call the methods on one event loop; the callbacks run on it.
    """

    def __init__(
        self,
        *,
        input: Device | Callable[[], Device] = None,  # noqa: A002 - the device's role
        output: Device | Callable[[], Device] = None,
        ringtone: Tone | WavSound | None = RINGTONE,
        interval: float = 0.1,
        sink_factory: SinkFactory | None = None,
        source_factory: Callable[[Device], AudioSource] | None = None,
    ) -> None:
        if not 0.02 <= interval <= 1.0:
            raise ValueError(f"interval must be between 0.02 and 1 s, not {interval!r}")
        self._input = input
        self._output = output
        self.ringtone = ringtone if ringtone is not None else RINGTONE
        self.interval = interval
        self._sink_factory = sink_factory
        self._source_factory = source_factory or _device_source
        self._player: SoundPlayer | None = None
        self._mic_task: asyncio.Task[None] | None = None

    @property
    def input_device(self) -> Device:
        """The input device a mic test uses now."""
        return self._input() if callable(self._input) else self._input

    @property
    def output_device(self) -> Device:
        """The output device a speaker test uses now."""
        return self._output() if callable(self._output) else self._output

    @property
    def speaker_test_running(self) -> bool:
        """Whether a speaker test is running."""
        return self._player is not None

    @property
    def mic_test_running(self) -> bool:
        """Whether a mic test is running."""
        return self._mic_task is not None and not self._mic_task.done()

    def info(self) -> DeviceInfo:
        """The versions and the names of the devices in use (queried now)."""
        with DEVICE_LOCK:
            mic, mic_error = _device_name(DeviceKind.INPUT, self.input_device)
            speaker, speaker_error = _device_name(DeviceKind.OUTPUT, self.output_device)
        return DeviceInfo(sdk_version_string(), mic, speaker, mic_error, speaker_error)

    # -- speaker -----------------------------------------------------------------------------
    async def start_speaker_test(self, on_level: LevelCallback, on_error: ErrorCallback) -> bool:
        """Play the ringtone on the output device (repeated) and report its level.

        ``on_level(level)`` is called every :attr:`interval` seconds while it plays;
        ``on_error(description)`` once if it cannot play. Returns ``False`` (and does
        nothing) if a speaker test is already running.
        """
        if self._player is not None:
            return False
        player = SoundPlayer(
            Sounds(ringtone=self.ringtone, ringback=None, dtmf_beep=None),
            output=lambda: self.output_device,
            sink_factory=self._sink_factory,
            on_level=on_level,
            on_error=on_error,
            level_interval=self.interval,
        )
        self._player = player
        player.start_ringtone()
        return True

    async def stop_speaker_test(self) -> None:
        """Stop the speaker test (and close the output device)."""
        player, self._player = self._player, None
        if player is not None:
            await player.aclose()

    # -- mic ---------------------------------------------------------------------------------
    async def start_mic_test(self, on_level: LevelCallback, on_error: ErrorCallback) -> bool:
        """Capture the input device and report its level every :attr:`interval` seconds.

        ``on_error(description)`` is called once if the device cannot be opened.
        Returns ``False`` (and does nothing) if a mic test is already running.
        """
        if self.mic_test_running:
            return False
        self._mic_task = asyncio.get_running_loop().create_task(
            self._run_mic(on_level, on_error), name="exotel-voice-mic-test"
        )
        return True

    async def stop_mic_test(self) -> None:
        """Stop the mic test (and close the input device)."""
        task, self._mic_task = self._mic_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def aclose(self) -> None:
        """Stop both tests."""
        await self.stop_speaker_test()
        await self.stop_mic_test()

    async def _open_source(self, device: Device) -> AudioSource:
        await asyncio.to_thread(DEVICE_LOCK.acquire)
        try:
            source = self._source_factory(device)
            await source.start()
            return source
        finally:
            DEVICE_LOCK.release()

    async def _run_mic(self, on_level: LevelCallback, on_error: ErrorCallback) -> None:
        device = self.input_device
        what = "the default input" if device is None else repr(device)
        # Shielded: a stop meanwhile must not drop a stream being opened (PortAudio would
        # go on calling its freed callback); it is stopped once open instead.
        opening = asyncio.ensure_future(self._open_source(device))
        try:
            source = await asyncio.shield(opening)
        except asyncio.CancelledError:
            opening.add_done_callback(_stop_when_open)
            raise
        except Exception as exc:  # AudioSourceError, MediaError, PortAudio's errors
            _call(on_error, f"cannot open {what}: {exc}")
            return
        window: list[Samples] = []
        needed = int(self.interval * SOUND_RATE)
        have = 0
        try:
            while True:
                await asyncio.sleep(FRAME_MS / 1000)
                while (frame := source.read(SOUND_RATE)) is not None:
                    window.append(frame)
                    have += frame.size
                if have >= needed:
                    data = np.concatenate(window)[-needed:]
                    window, have = [], 0
                    _call(on_level, rms(data))
                if source.finished:
                    _call(on_error, f"{what} stopped delivering audio")
                    return
        finally:
            try:
                await source.stop()
            except Exception:
                logger.debug("closing the mic test's source failed", exc_info=True)


def _stop_when_open(opening: asyncio.Future[AudioSource]) -> None:
    """Stop a source whose opening finished after its test was stopped."""
    if opening.cancelled() or opening.exception() is not None:
        return
    source = opening.result()
    task = asyncio.get_running_loop().create_task(source.stop())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


#: Sources being stopped after a cancelled open (the loop keeps tasks only weakly).
_closing: set[asyncio.Task[None]] = set()


def _device_source(device: Device) -> AudioSource:
    if device is None:
        # The system default as the device list has it now (see audio.sounds).
        device = default_device(DeviceKind.INPUT)
    return DeviceSource(device, sample_rate=SOUND_RATE)


def _call(cb: Callable[..., object], *args: object) -> None:
    try:
        cb(*args)
    except Exception:
        logger.exception("! a diagnostics callback raised")
