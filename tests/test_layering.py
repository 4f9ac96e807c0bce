"""Dependencies point one way: client -> media, transport -> sip.

The SIP core is sans-I/O: nothing under ``exotel_voice.sip`` may import asyncio, sockets,
websockets, aiortc or the other layers, or read a clock.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest


SRC = Path(__file__).resolve().parents[1] / "src" / "exotel_voice"

FORBIDDEN = {
    "sip": {"asyncio", "socket", "websockets", "aiortc", "aioice", "av", "time",
            "exotel_voice.client", "exotel_voice.media", "exotel_voice.transport",
            "exotel_voice.sandbox"},
    "transport": {"aiortc", "exotel_voice.client", "exotel_voice.media",
                  "exotel_voice.sandbox"},
    "media": {"websockets", "exotel_voice.client", "exotel_voice.transport",
              "exotel_voice.sandbox"},
}


def imports_of(path: Path) -> set[str]:
    package = "exotel_voice." + ".".join(path.relative_to(SRC).parent.parts)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_nothing_above_it(layer: str) -> None:
    bad = []
    for path in sorted((SRC / layer).rglob("*.py")):
        for module in imports_of(path):
            for forbidden in FORBIDDEN[layer]:
                if module == forbidden or module.startswith(forbidden + "."):
                    bad.append(f"{path.relative_to(SRC)} imports {module}")
    assert bad == []
