"""Free port allocation on 127.0.0.1.

Every daemon in the rig binds to 127.0.0.1 on ports handed out here.  A port is taken
only after both a TCP and a UDP socket could bind it (SIP listens on both), and a port is
never handed out twice in one process, so two fixtures can't race for the same number
between "allocate" and "daemon binds".

Ranges (rtpengine media ports, coturn relay ports, baresip RTP ports) come from
:func:`port_range`, which carves consecutive blocks from a region that the kernel does not
use for ephemeral ports (``/proc/sys/net/ipv4/ip_local_port_range`` starts at 32768 by
default), so they can't collide with :func:`free_port`'s results.
"""

from __future__ import annotations

import socket
import threading


HOST = "127.0.0.1"

_lock = threading.Lock()
_handed_out: set[int] = set()
# Ranges are carved from [_RANGE_START, _RANGE_END), below the ephemeral range.
_RANGE_START = 20000
_RANGE_END = 32000
_next_range = _RANGE_START


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """Return a port on 127.0.0.1 that is free for both TCP and UDP right now."""
    with _lock:
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((HOST, 0))
                port = int(s.getsockname()[1])
            if port in _handed_out or not _bindable(port):
                continue
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port on 127.0.0.1")


def free_port_block(n: int) -> int:
    """Return the first of ``n`` consecutive ports that are all free right now, and reserve
    them all.

    For daemons that bind several transports on neighbouring ports: baresip (libre) binds
    SIP/TLS on its ``sip_listen`` port + 1, which a plain :func:`free_port` does not reserve.
    """
    with _lock:
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((HOST, 0))
                first = int(s.getsockname()[1])
            block = range(first, first + n)
            if block[-1] > 65535 or any(p in _handed_out for p in block):
                continue
            if all(_bindable(p) for p in block):
                _handed_out.update(block)
                return first
    raise RuntimeError(f"no {n} consecutive free ports on 127.0.0.1")


def free_ports(n: int) -> list[int]:
    """Return ``n`` distinct free ports (see :func:`free_port`)."""
    return [free_port() for _ in range(n)]


def port_range(size: int) -> tuple[int, int]:
    """Return an inclusive ``(first, last)`` block of ``size`` ports, all free right now.

    Blocks are even-aligned (RTP likes even ports) and never overlap within one process.
    """
    global _next_range
    if size < 2:
        raise ValueError("size must be at least 2")
    with _lock:
        while _next_range + size <= _RANGE_END:
            first = _next_range + (_next_range % 2)
            _next_range = first + size
            block = range(first, first + size)
            if all(_bindable(p) for p in (block[0], block[-1], block[len(block) // 2])):
                return first, first + size - 1
    raise RuntimeError("port ranges exhausted")
