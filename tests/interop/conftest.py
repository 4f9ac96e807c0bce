"""Fixtures for the interop tests: the real-component rig from ``tests.rig``.

See docs/test-rig.md.  Re-exports every fixture of :mod:`tests.rig.fixtures`.

``tests`` is a regular package and pytest puts the repository first on the path
(``pythonpath = ["."]``), so it wins over the top-level ``tests`` package that sippy (a
bench dependency) installs into site-packages.
"""

from __future__ import annotations

from typing import Any

from tests.rig.fixtures import *  # noqa: F403


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The registration endurance tests against real Kamailio report their counts here."""
    from .test_registration_kamailio import ENDURANCE

    if ENDURANCE:
        terminalreporter.section("registration endurance (Kamailio)")
        for line in ENDURANCE:
            terminalreporter.write_line(line)
