"""exotel-voice's real-component test rig: Kamailio, rtpengine, baresip and coturn on
127.0.0.1, started by the test suite inside the loopback-only network namespace.

The pytest fixtures live in :mod:`tests.rig.fixtures`; ``tests/interop/conftest.py``
re-exports them.  See docs/test-rig.md for the API and conventions.
"""

from __future__ import annotations

import os
import shutil

from .process import RigError


__all__ = ["RigError", "missing_binaries", "netns_skip_reason"]


def netns_skip_reason() -> str | None:
    """Why rig tests can't run here, or None if they can."""
    if os.environ.get("EXOTEL_NETNS") != "1":
        return (
            "needs the loopback-only network namespace: run via scripts/in-netns.sh "
            "(EXOTEL_NETNS != '1')"
        )
    return None


def missing_binaries(*names: str) -> list[str]:
    """The programs among ``names`` that are not on PATH (or in /usr/sbin)."""
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    return [n for n in names if shutil.which(n, path=path) is None]
