"""The guide's ``registerLoggerCallback`` (section 5.15), fed from stdlib :mod:`logging`.

One :class:`LoggerCallbackHandler` is attached to the ``exotel_voice`` logger, so every
record of the package (``exotel_voice.sip.*``, ``exotel_voice.transport.*``,
``exotel_voice.client.*`` ...) reaches the application's ``callback(type, message, args)``:

* ``type`` is the record's real level: ``"log"`` (DEBUG), ``"info"``, ``"warn"``,
  ``"error"`` (ERROR and CRITICAL). Exotel's JS SDK always sends ``"log"``.
* ``message`` is the formatted message, passed through
  :func:`exotel_voice.sip.redact.redact` (digest responses, Authorization headers,
  ``a=ice-pwd`` ... masked) and with the password of every live client replaced by
  ``[secure]``.
* ``args`` is a list: ``[logger name]``, plus the (redacted) traceback when the record has one.

The callback is process-wide, like the JS SDK 3.x's static ``registerLoggerCallback``.
It runs on the thread that logged (usually a client's event-loop thread); a record logged
from inside the callback is not fed back to it.

The libraries the SDK drives log on their own loggers, which our reprs cannot protect:
aiortc dumps whole SDPs (``a=ice-pwd`` included) at DEBUG, websockets logs handshake
headers (``Authorization`` for a URL with userinfo) and frames. :func:`protect_library_loggers`
puts a :class:`RedactingFilter` on every ``aiortc``, ``aioice`` and ``websockets`` logger;
the client package calls it when it is imported, so it is in place before any media or
connection exists. The filter rewrites a record in place (message and arguments, and its
traceback text), so every handler sees only the masked text, whatever the application
configured.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from typing import Any

from ..sip.redact import SECURE, redact


__all__ = [
    "LIBRARY_LOGGERS",
    "LoggerCallback",
    "LoggerCallbackHandler",
    "RedactingFilter",
    "forget_secret",
    "protect_library_loggers",
    "remember_secret",
    "set_logger_callback",
]

#: ``callback(type, message, args)``.
LoggerCallback = Callable[[str, str, list[Any]], None]

#: The package's root logger.
PACKAGE_LOGGER = "exotel_voice"

#: Longest message handed to the callback (after redaction).
MAX_MESSAGE = 16384

#: Passwords shorter than this are not searched for in log text (replacing every "a" of a
#: one-letter password would garble the log and protect nothing).
MIN_SCRUBBED_SECRET = 4

_secrets: dict[str, int] = {}
_secrets_lock = threading.Lock()


def remember_secret(secret: str) -> None:
    """Mask ``secret`` in every message given to the logger callback (reference-counted)."""
    if len(secret) < MIN_SCRUBBED_SECRET:
        return
    with _secrets_lock:
        _secrets[secret] = _secrets.get(secret, 0) + 1


def forget_secret(secret: str) -> None:
    """Undo one :func:`remember_secret`."""
    with _secrets_lock:
        count = _secrets.get(secret, 0) - 1
        if count > 0:
            _secrets[secret] = count
        else:
            _secrets.pop(secret, None)


def scrub(text: str, limit: int = MAX_MESSAGE) -> str:
    """``redact(text, limit)``, then every remembered password replaced by ``[secure]``.

    A negative ``limit`` keeps the whole text.
    """
    text = redact(text, limit)
    with _secrets_lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, SECURE)
    return text


def level_type(levelno: int) -> str:
    """The guide's logger ``type`` for a :mod:`logging` level number."""
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    if levelno >= logging.INFO:
        return "info"
    return "log"


class LoggerCallbackHandler(logging.Handler):
    """A :class:`logging.Handler` that calls ``callback(type, message, args)``.

    Args:
        callback: the application's function.
        level: the lowest level passed on.
    """

    def __init__(self, callback: LoggerCallback, level: int = logging.DEBUG) -> None:
        super().__init__(level)
        self.callback = callback
        self._busy = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        """Hand one record to the callback (never re-entrantly)."""
        if getattr(self._busy, "active", False):
            return
        self._busy.active = True
        try:
            try:
                message = scrub(record.getMessage())
            except Exception:  # a bad format string in someone's log call
                message = scrub(str(record.msg))
            args: list[Any] = [record.name]
            if record.exc_info and record.exc_info[1] is not None:
                text = "".join(traceback.format_exception(*record.exc_info))
                args.append(scrub(text))
            self.callback(level_type(record.levelno), message, args)
        except Exception:
            self.handleError(record)
        finally:
            self._busy.active = False


_handler: LoggerCallbackHandler | None = None
_saved_level: int | None = None
_handler_lock = threading.Lock()


def set_logger_callback(callback: LoggerCallback | None, level: int = logging.DEBUG) -> None:
    """Install ``callback`` as the process-wide logger callback (``None`` removes it).

    If the ``exotel_voice`` logger would drop records below ``level``, its level is lowered
    to ``level`` (and restored when the callback is removed). Records then also propagate
    to the root logger's handlers; set ``logging.getLogger("exotel_voice").propagate =
    False`` if the application does not want them there.
    """
    global _handler, _saved_level
    pkg = logging.getLogger(PACKAGE_LOGGER)
    with _handler_lock:
        if _handler is not None:
            pkg.removeHandler(_handler)
            _handler = None
        if _saved_level is not None:
            pkg.setLevel(_saved_level)
            _saved_level = None
        if callback is None:
            return
        if not callable(callback):
            raise TypeError("the logger callback must be callable")
        _handler = LoggerCallbackHandler(callback, level)
        if pkg.getEffectiveLevel() > level:
            _saved_level = pkg.level
            pkg.setLevel(level)
        pkg.addHandler(_handler)


#: The packages whose loggers get a :class:`RedactingFilter`: the media stack (aiortc and
#: its ICE library aioice) and the WebSocket library.
LIBRARY_PACKAGES = ("aiortc", "aioice", "websockets")

#: Their loggers as of aiortc 1.x, aioice 0.9+ and websockets 13+. A filter on a logger
#: applies only to records logged on that very logger (not to its children's), so each one
#: is named; loggers of modules that exist already are found by name as well.
LIBRARY_LOGGERS = (
    "aiortc",
    "aiortc.contrib.media",
    "aiortc.contrib.signaling",
    "aiortc.rtcdatachannel",
    "aiortc.rtcdtlstransport",
    "aiortc.rtcicetransport",
    "aiortc.rtcpeerconnection",
    "aiortc.rtcrtpreceiver",
    "aiortc.rtcrtpsender",
    "aiortc.rtcrtptransceiver",
    "aiortc.rtcsctptransport",
    "aioice",
    "aioice.ice",
    "aioice.mdns",
    "aioice.stun",
    "aioice.turn",
    "websockets",
    "websockets.client",
    "websockets.protocol",
    "websockets.server",
)


class RedactingFilter(logging.Filter):
    """Masks secrets in the records of loggers we do not own, in place.

    The message is formatted once and, if :func:`scrub` changes it, replaces the record's
    ``msg`` (its ``args`` emptied); a traceback is formatted and scrubbed into
    ``exc_text``, which :class:`logging.Formatter` uses as is. Records are never dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102
        try:
            message = record.getMessage()
        except Exception:
            return True  # a bad format string: logging reports it as usual
        clean = scrub(message, -1)
        if clean != message:
            record.msg = clean
            record.args = ()
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = scrub(text, -1)
        return True


_library_filter = RedactingFilter()
_library_lock = threading.Lock()


def protect_library_loggers() -> None:
    """Put the :class:`RedactingFilter` on the aiortc, aioice and websockets loggers.

    Idempotent and cheap; called when :mod:`exotel_voice.client` is imported. A filter
    costs nothing while its logger's level drops the record (DEBUG is off by default).
    """
    with _library_lock:
        names = set(LIBRARY_LOGGERS)
        for name in list(logging.Logger.manager.loggerDict):
            if name.split(".", 1)[0] in LIBRARY_PACKAGES:
                names.add(name)
        for name in sorted(names):
            library_logger = logging.getLogger(name)
            if _library_filter not in library_logger.filters:
                library_logger.addFilter(_library_filter)
