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
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from typing import Any

from ..sip.redact import SECURE, redact


__all__ = [
    "LoggerCallback",
    "LoggerCallbackHandler",
    "forget_secret",
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


def scrub(text: str) -> str:
    """``redact(text)``, then every remembered password replaced by ``[secure]``."""
    text = redact(text, MAX_MESSAGE)
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
