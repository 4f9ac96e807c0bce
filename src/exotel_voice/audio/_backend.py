"""The two back-ends behind :mod:`exotel_voice.audio`: PortAudio (``sounddevice``) and PulseAudio.

PortAudio (through the optional ``sounddevice`` package, the ``[audio]`` extra) opens
every stream. On Linux its ALSA host API sees PulseAudio only as two ALSA devices,
``pulse`` and ``default``, never PulseAudio's own sinks and sources; so when a PulseAudio
server answers ``pactl`` (Debian ``pulseaudio-utils``), its sinks and sources are listed
as devices of their own (host API ``PulseAudio``), and a stream on one of them is opened
on PortAudio's ``pulse`` device with ``PULSE_SINK``/``PULSE_SOURCE`` naming it: ALSA's
``pulse`` plugin makes a new PulseAudio client per stream, and libpulse reads those two
variables when it does (:func:`pulse_target`).

PortAudio reads its device list once, when it initialises, and has no hot-plug events.
:func:`rescan_portaudio` is the one place that re-initialises it (through two private
``sounddevice`` functions) and it does so only while none of our streams is open
(:func:`stream_opened` / :func:`stream_closed` count them).

ALSA and JACK write their error messages straight to the process's standard error: while
PortAudio probes ALSA's devices on a machine without sound cards (``Unknown PCM
cards.pcm.rear``, libjack's ``Cannot connect to server socket``), and when a stream cannot be
opened (``PulseAudio: Unable to create stream``). :func:`quiet_audio_libraries`, run before
``sounddevice`` is imported (PortAudio initialises then), sends them to the
``exotel_voice.audio`` logger at DEBUG instead, and keeps libjack from starting a server.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..exceptions import MediaError


__all__ = [
    "AUDIO_EXTRA_HINT",
    "AudioBackendMissing",
    "PulseDevice",
    "import_sounddevice",
    "pactl_path",
    "pulse_devices",
    "pulse_target",
    "portaudio_lock",
    "quiet_audio_libraries",
    "rescan_portaudio",
    "stream_closed",
    "stream_opened",
]

logger = logging.getLogger(__name__)

#: What the error says to do when ``sounddevice`` or PortAudio is missing.
AUDIO_EXTRA_HINT = (
    "audio devices need the optional 'sounddevice' package and the PortAudio library: "
    "pip install 'exotel-voice[audio]' (Debian/Ubuntu: apt-get install libportaudio2)"
)


class AudioBackendMissing(MediaError):
    """``sounddevice`` (the ``[audio]`` extra) or the PortAudio library is not installed."""


#: Where ALSA's and JACK's own messages go (DEBUG), instead of the process's stderr.
library_logger = logging.getLogger("exotel_voice.audio")

# ALSA's snd_lib_error_handler_t is variadic:
#   void (*)(const char *file, int line, const char *function, int err, const char *fmt, ...)
# ctypes cannot take the variable arguments, so the handler gets the fixed ones and logs the
# format as it is (its %s etc. unexpanded), with the error code when there is one.
_ALSA_HANDLER_TYPE = ctypes.CFUNCTYPE(
    None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p
)
# JACK's jack_set_error_function / jack_set_info_function: void (*)(const char *msg).
_JACK_HANDLER_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_char_p)

# The installed callbacks and the libraries they were installed in: referenced for the life
# of the process (a callback that is garbage-collected while the library still calls it
# crashes the process; a library kept open keeps its handler).
_quiet: dict[str, Any] = {}
_quiet_lock = threading.Lock()


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", "replace").rstrip("\n") if value else ""


def _alsa_message(file: bytes | None, line: int, function: bytes | None, err: int,
                  fmt: bytes | None) -> None:
    try:
        message = f"ALSA lib {_text(file)}:{line}:({_text(function)}) {_text(fmt)}"
        if err:
            message += f" ({os.strerror(abs(err))})"
        library_logger.debug("%s", message)
    except Exception:  # an exception must never unwind into C
        pass


def _jack_message(message: bytes | None) -> None:
    try:
        library_logger.debug("JACK: %s", _text(message))
    except Exception:  # an exception must never unwind into C
        pass


def quiet_audio_libraries() -> None:
    """Send ALSA's and JACK's messages to the ``exotel_voice.audio`` logger (DEBUG), not stderr.

    Installs an ALSA error handler (``snd_lib_error_set_handler`` in ``libasound.so.2``) and
    JACK error and info functions (``libjack.so.0``), and sets ``JACK_NO_START_SERVER=1``
    unless the environment sets it, so that probing ALSA's ``jack`` device does not try to
    start a JACK server. Process-wide, once (later calls do nothing); a library that is not
    installed is skipped. Called by :func:`import_sounddevice` before PortAudio initialises.
    """
    with _quiet_lock:
        if _quiet:
            return
        _quiet["done"] = True
        os.environ.setdefault("JACK_NO_START_SERVER", "1")
        try:
            alsa = ctypes.CDLL("libasound.so.2")
            alsa_handler = _ALSA_HANDLER_TYPE(_alsa_message)
            alsa.snd_lib_error_set_handler.argtypes = [_ALSA_HANDLER_TYPE]
            alsa.snd_lib_error_set_handler.restype = ctypes.c_int
            alsa.snd_lib_error_set_handler(alsa_handler)
            _quiet["alsa"] = (alsa, alsa_handler)
        except (OSError, AttributeError) as exc:
            logger.debug("ALSA's messages left alone: %s", exc)
        try:
            jack = ctypes.CDLL("libjack.so.0")
            jack_handler = _JACK_HANDLER_TYPE(_jack_message)
            for name in ("jack_set_error_function", "jack_set_info_function"):
                setter = getattr(jack, name)
                setter.argtypes = [_JACK_HANDLER_TYPE]
                setter.restype = None
                setter(jack_handler)
            _quiet["jack"] = (jack, jack_handler)
        except (OSError, AttributeError) as exc:
            logger.debug("JACK's messages left alone: %s", exc)


def import_sounddevice() -> Any:
    """Import the optional ``sounddevice`` package.

    ALSA's and JACK's messages are sent to the log first (:func:`quiet_audio_libraries`).

    Raises:
        AudioBackendMissing: it (or PortAudio) is not installed; the message names the extra.
    """
    quiet_audio_libraries()
    try:
        import sounddevice  # noqa: PLC0415
    except (ImportError, OSError) as exc:  # OSError: PortAudio library missing
        raise AudioBackendMissing(AUDIO_EXTRA_HINT) from exc
    return sounddevice


# -- PortAudio streams and re-scans ------------------------------------------------------------

#: Held around everything that touches PortAudio's device list: queries, opening a stream
#: and counting it, and :func:`rescan_portaudio`, which re-initialises PortAudio and must
#: never run while another thread queries it or is halfway through opening a stream.
#: Re-entrant, because a stream's opening counts itself (:func:`stream_opened`) under it.
portaudio_lock = threading.RLock()
_lock = portaudio_lock
_open_streams = 0


def stream_opened() -> None:
    """Count one more open PortAudio stream (a re-scan waits until none is open)."""
    global _open_streams
    with _lock:
        _open_streams += 1


def stream_closed() -> None:
    """Count one PortAudio stream fewer."""
    global _open_streams
    with _lock:
        _open_streams = max(0, _open_streams - 1)


def rescan_portaudio(sd: Any) -> bool:
    """Make PortAudio read its device list again; ``False`` when a stream is open (skipped).

    PortAudio caches the devices it found when it initialised; ``sounddevice`` offers no
    public way to re-read them. Its private ``_terminate()``/``_initialize()`` do it, and
    terminating PortAudio while a stream is open would pull the stream from under its
    callback, so this runs only when :func:`stream_opened` counts none. This function is
    the only user of those private names.
    """
    with _lock:
        if _open_streams:
            return False
        try:
            sd._terminate()
            sd._initialize()
        except Exception as exc:  # a sounddevice without them: keep the cached list
            logger.debug("PortAudio re-scan failed: %s", exc)
            return False
    return True


# -- PulseAudio ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PulseDevice:
    """One PulseAudio sink or source, as ``pactl`` reports it."""

    kind: str  # "sink" or "source"
    name: str
    description: str
    channels: int
    default: bool
    monitor_of: str | None = None


def pactl_path() -> str | None:
    """The ``pactl`` program, if installed."""
    return shutil.which("pactl")


def _pactl_json(pactl: str, *args: str, timeout: float) -> Any:
    out = subprocess.run(
        [pactl, "--format=json", *args],
        capture_output=True, text=True, timeout=timeout, check=True,
    ).stdout
    return json.loads(out) if out.strip() else None


def pulse_devices(timeout: float = 2.0) -> list[PulseDevice] | None:
    """PulseAudio's sinks and sources, or ``None`` when no server answers ``pactl``."""
    pactl = pactl_path()
    if pactl is None:
        return None
    try:
        info = _pactl_json(pactl, "info", timeout=timeout)
        sinks = _pactl_json(pactl, "list", "sinks", timeout=timeout) or []
        sources = _pactl_json(pactl, "list", "sources", timeout=timeout) or []
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        logger.debug("no PulseAudio server through pactl: %s", exc)
        return None
    default_sink = str(info.get("default_sink_name") or "") if isinstance(info, dict) else ""
    default_source = str(info.get("default_source_name") or "") if isinstance(info, dict) else ""
    found: list[PulseDevice] = []
    for kind, items, default in (("sink", sinks, default_sink),
                                 ("source", sources, default_source)):
        for item in items:
            if not isinstance(item, dict) or not item.get("name"):
                continue
            name = str(item["name"])
            spec = str(item.get("sample_specification", ""))
            channels = 2
            for word in spec.split():
                if word.endswith("ch") and word[:-2].isdigit():
                    channels = int(word[:-2])
            monitor_of = name.removesuffix(".monitor") if name.endswith(".monitor") else None
            found.append(PulseDevice(
                kind=kind,
                name=name,
                description=str(item.get("description") or name),
                channels=channels,
                default=name == default,
                monitor_of=monitor_of,
            ))
    return found


_env_lock = threading.Lock()


@contextlib.contextmanager
def pulse_target(kind: str, name: str | None) -> Iterator[None]:
    """While opening a stream on PortAudio's ``pulse`` device, route it to sink/source ``name``.

    libpulse reads ``PULSE_SINK`` (playback) or ``PULSE_SOURCE`` (recording) when ALSA's
    ``pulse`` plugin connects, which it does when the stream is opened; the variable is
    restored right after. One stream is opened at a time (a lock).
    """
    if name is None:
        yield
        return
    var = "PULSE_SINK" if kind == "sink" else "PULSE_SOURCE"
    with _env_lock:
        before = os.environ.get(var)
        os.environ[var] = name
        try:
            yield
        finally:
            if before is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = before
