"""exotel-voice's real-component test rig: Kamailio, rtpengine, baresip and coturn on
127.0.0.1, started by the test suite inside the loopback-only network namespace.

The pytest fixtures live in :mod:`tests.rig.fixtures`; ``tests/interop/conftest.py``
re-exports them.  See docs/test-rig.md for the API and conventions.

This module also holds the suite's skip conditions for real networking, one per reason
(docs/test-rig.md, "Which tests need the namespace"); :mod:`tests.rig.marks` turns each
into a pytest mark:

* :func:`loopback_media_skip_reason` (``LOOPBACK_MEDIA``): our own media on 127.0.0.1.
  Runs anywhere, as any user: no root, no namespace.
* :func:`netns_skip_reason` (``NEEDS_NETNS``): a third-party daemon or a browser
  (Kamailio, rtpengine, baresip, coturn, Chromium), whose sockets we cannot restrict.
* :func:`netns_root_skip_reason` (``NEEDS_NETNS_ROOT``): the test changes the network
  (``iptables`` rules, ``ss -K``, veth pairs): root, and only inside the namespace.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .process import RigError


__all__ = [
    "RigError",
    "in_netns",
    "loopback_media_skip_reason",
    "missing_binaries",
    "netns_root_skip_reason",
    "netns_skip_reason",
]


def in_netns() -> bool:
    """Whether this process runs in the loopback-only namespace (``scripts/in-netns.sh``)."""
    return os.environ.get("EXOTEL_NETNS") == "1"


def netns_skip_reason() -> str | None:
    """Why rig tests can't run here, or None if they can."""
    if not in_netns():
        return (
            "starts third-party daemons or a browser, whose sockets we cannot keep on "
            "127.0.0.1: needs the loopback-only network namespace (scripts/in-netns.sh, "
            "run as root; EXOTEL_NETNS != '1')"
        )
    return None


def netns_root_skip_reason() -> str | None:
    """Why a test that changes the network (firewall rules, sockets killed, interfaces)
    can't run here, or None if it can: it needs root inside the namespace, so that what it
    changes is the namespace's network, never the machine's."""
    if not in_netns():
        return (
            "changes the network (iptables, ss -K, veth): needs root inside the loopback-only "
            "network namespace (scripts/in-netns.sh; EXOTEL_NETNS != '1')"
        )
    if os.geteuid() != 0:
        return "changes the network (iptables, ss -K, veth): needs root inside the namespace"
    return None


def _route_localnet() -> list[str]:
    """The interfaces that route packets from 127.0.0.0/8 off the host (Linux sysctl)."""
    conf = Path("/proc/sys/net/ipv4/conf")
    try:
        return sorted(p.parent.name for p in conf.glob("*/route_localnet")
                      if p.read_text().strip() != "0")
    except OSError:
        return []


def loopback_media_skip_reason() -> str | None:
    """Why tests of our own media on 127.0.0.1 can't run here, or None if they can.

    They need no root and no namespace: each of their sessions restricts its ICE host
    candidates to 127.0.0.1 (``IceConfig(host_addresses=["127.0.0.1"])``, applied by the
    gathering policy of ``exotel_voice.media.ice``), and a socket bound to 127.0.0.1 sends
    only to loopback.  Outside the namespace that fails in two cases, checked here: the
    gathering policy is off (aiortc/aioice changed, so ``FEATURES.gathering`` is false and
    aioice binds every interface of the machine; ``EXOTEL_VOICE_AIORTC_COMPAT=off`` keeps
    it on), or the kernel routes 127.0.0.0/8 off the host (``route_localnet``).
    """
    if in_netns():
        return None
    from exotel_voice.media import _aiortc_compat as compat

    if not compat.FEATURES.gathering:
        return (
            "the ICE gathering policy is off with this aiortc/aioice (see docs/media.md), so "
            "media would bind every interface: needs the loopback-only network namespace "
            "(scripts/in-netns.sh)"
        )
    if leaky := _route_localnet():
        return (
            f"route_localnet is on ({', '.join(leaky)}), so 127.0.0.1 is not confined to this "
            "host: needs the loopback-only network namespace (scripts/in-netns.sh)"
        )
    return None


def missing_binaries(*names: str) -> list[str]:
    """The programs among ``names`` that are not on PATH (or in /usr/sbin)."""
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    return [n for n in names if shutil.which(n, path=path) is None]
