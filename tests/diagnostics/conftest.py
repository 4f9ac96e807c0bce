"""Fixtures for the diagnostics tests: the real-component rig (Kamailio, coturn) from
``tests.rig``; see docs/test-rig.md."""

from __future__ import annotations

from tests.rig.fixtures import *  # noqa: F403
