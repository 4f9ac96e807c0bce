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


#: Private names of aiortc and aioice objects the media path uses.  Only
#: media/_aiortc_compat.py may touch them: it checks them at import and falls back to
#: aiortc's own path when they are gone (see its docstring).
AIORTC_PRIVATE = {
    "_send_rtp", "_handle_rtp_data", "_ssrc", "_codecs", "_headerExtensions", "_tx_srtp",
    "_rx_srtp", "_state", "_connection", "_nominated", "_check_list_done",
    "_check_list_maybe_complete", "_handle_disconnect", "_get_stats",
}
COMPAT = SRC / "media" / "_aiortc_compat.py"


def private_aiortc_accesses(path: Path) -> list[str]:
    """Attribute accesses in ``path`` that reach into aiortc/aioice: a known private name,
    or a name-mangled one of an aiortc/aioice class, on anything but ``self``/``cls``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        mangled = name.startswith(("_RTC", "_Connection__", "_StunProtocol__"))
        if name not in AIORTC_PRIVATE and not mangled:
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls") and not mangled:
            continue
        found.append(f"{path.relative_to(SRC)}:{node.lineno} .{name}")
    return found


def test_only_the_compat_module_touches_aiortc_internals() -> None:
    bad = [
        hit for path in sorted(SRC.rglob("*.py")) if path != COMPAT
        for hit in private_aiortc_accesses(path)
    ]
    assert bad == []


def test_the_private_access_rule_sees_the_compat_module() -> None:
    """The control: the rule does find the accesses where they are allowed."""
    names = {hit.rsplit(".", 1)[1] for hit in private_aiortc_accesses(COMPAT)}
    assert {"_send_rtp", "_nominated", "_codecs", "_RTCRtpSender__packet_count"} <= names
