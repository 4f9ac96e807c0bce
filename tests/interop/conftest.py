"""Fixtures for the interop tests: the real-component rig from ``tests.rig``.

See docs/test-rig.md.  Re-exports every fixture of :mod:`tests.rig.fixtures`.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path


# `sippy` (a bench dependency) installs a top-level package named `tests` into
# site-packages, which shadows this repository's `tests/` (a namespace package without
# __init__.py).  Make `tests` resolve to the repository's folder before importing the rig.
_TESTS = Path(__file__).resolve().parents[1]
if str(_TESTS.parent) not in sys.path:
    sys.path.insert(0, str(_TESTS.parent))
_mod = sys.modules.get("tests")
if _mod is None or str(_TESTS) not in list(getattr(_mod, "__path__", [])):
    _shim = types.ModuleType("tests")
    _shim.__path__ = [str(_TESTS)]
    sys.modules["tests"] = _shim

from tests.rig.fixtures import *  # noqa: E402, F403
