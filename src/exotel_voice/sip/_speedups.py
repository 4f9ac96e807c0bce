"""Loads the optional C accelerators of the SIP parser (built by ``setup.py``).

``exotel_voice.sip._cmessage`` (messages, URIs, name-addrs, Vias) and
``exotel_voice.sip._csdp`` (SDP) parse the usual shapes of their input, several times faster
than the pure-Python parser, and build exactly the objects it builds; for anything else they
answer ``None`` and the pure-Python code, which is the reference, decides. Without a C
compiler at install time the package works the same, only slower.

Set ``EXOTEL_VOICE_NO_SPEEDUPS=1`` (before the first import) to use the pure-Python parser
alone.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


__all__ = ["DISABLED", "load", "loaded"]

#: True when ``EXOTEL_VOICE_NO_SPEEDUPS`` is set to anything but "" or "0".
DISABLED = os.environ.get("EXOTEL_VOICE_NO_SPEEDUPS", "") not in ("", "0")

_loaded: dict[str, ModuleType] = {}


def load(name: str) -> ModuleType | None:
    """The accelerator module ``exotel_voice.sip.<name>``, or ``None`` (disabled or not built)."""
    if DISABLED:
        return None
    module = _loaded.get(name)
    if module is None:
        try:
            module = importlib.import_module(f"exotel_voice.sip.{name}")
        except ImportError:
            return None
        _loaded[name] = module
    return module


def loaded() -> list[str]:
    """The names of the accelerators in use."""
    return sorted(_loaded)
