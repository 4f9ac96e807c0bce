"""Network faults for rig tests and benches, inside the loopback-only namespace (root).

* :func:`kill_tcp`: close one TCP connection with ``ss -K`` (the kernel aborts the chosen
  socket and sends a RST to the other end): a phone's WebSocket to Kamailio drops while
  Kamailio stays up -- the cleanest "network blip".
* :class:`VethAddress`: a veth pair this module creates, with one IPv4 address at a time
  on its first end; :meth:`VethAddress.move` adds a new address and removes the old one
  (a laptop moving from Wi-Fi to cable, seen by the host).  Every address is a /32 of its
  own, so removing one never takes a secondary address with it.  All traffic to these
  addresses stays on the host (they are local addresses), so 127.0.0.1 daemons reach them.
* :func:`blackout`: ``iptables`` DROP rules for UDP to/from some ports, for a while (this
  kernel has no ``netem``).

Example::

    kill_tcp(local_port=51234, remote_port=k.info.ws_port)   # the phone's side of its WS
    with VethAddress("exvr", "10.99.1.2") as veth:
        ...                                                  # media bound to 10.99.1.2
        veth.move("10.99.2.2")                               # the address changes
    with blackout(udp_ports=[40000, 40001]):
        await asyncio.sleep(3)
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import subprocess
from collections.abc import Iterable, Iterator

from .process import RigError


_NAME = re.compile(r"^[a-z][a-z0-9]{0,10}$")


def _run(*args: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
    if result.returncode != 0:
        raise RigError(f"{' '.join(args)}: exit {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def tcp_connections(remote_port: int) -> list[tuple[int, int]]:
    """Established TCP connections to 127.0.0.1:``remote_port``: ``(local port, remote port)``."""
    out = _run("ss", "-Htn", "state", "established", f"( dport = :{remote_port} )")
    found = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            local, remote = parts[-2], parts[-1]
            found.append((int(local.rsplit(":", 1)[1]), int(remote.rsplit(":", 1)[1])))
    return found


def kill_tcp(*, local_port: int, remote_port: int) -> int:
    """Abort the TCP connection from ``local_port`` to ``remote_port`` (``ss -K``).

    Returns how many sockets were closed (0 if none matched: nothing to kill).
    """
    out = _run(
        "ss",
        "-HKtn",
        "state",
        "established",
        f"( sport = :{local_port} and dport = :{remote_port} )",
    )
    return len([line for line in out.splitlines() if line.strip()])


class VethAddress:
    """A veth pair ``<name>0``/``<name>1``, both up, with one /32 address on ``<name>0``.

    Args:
        name: short interface prefix (lowercase letters and digits, at most 11).
        address: the first IPv4 address.
    """

    def __init__(self, name: str, address: str) -> None:
        if not _NAME.match(name):
            raise ValueError(f"bad veth name {name!r}: lowercase letters/digits, at most 11")
        self.name = name
        self.device = f"{name}0"
        self.address = str(ipaddress.IPv4Address(address))
        self._up = False

    def create(self) -> None:
        _run("ip", "link", "add", self.device, "type", "veth", "peer", "name", f"{self.name}1")
        self._up = True
        _run("ip", "link", "set", self.device, "up")
        _run("ip", "link", "set", f"{self.name}1", "up")
        _run("ip", "addr", "add", f"{self.address}/32", "dev", self.device)

    def move(self, new_address: str) -> None:
        """Add ``new_address``, then remove the current one."""
        new = str(ipaddress.IPv4Address(new_address))
        _run("ip", "addr", "add", f"{new}/32", "dev", self.device)
        _run("ip", "addr", "del", f"{self.address}/32", "dev", self.device)
        self.address = new

    def delete(self) -> None:
        if self._up:
            self._up = False
            with contextlib.suppress(RigError):
                _run("ip", "link", "del", self.device)

    def __enter__(self) -> VethAddress:
        self.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.delete()


@contextlib.contextmanager
def blackout(udp_ports: Iterable[int]) -> Iterator[None]:
    """Drop every UDP datagram to or from ``udp_ports`` while the block runs."""
    rules = []
    for port in udp_ports:
        for direction in ("--dport", "--sport"):
            rules.append(["-p", "udp", direction, str(int(port)), "-j", "DROP"])
    added = []
    try:
        for rule in rules:
            _run("iptables", "-I", "INPUT", *rule)
            added.append(rule)
        yield
    finally:
        for rule in added:
            with contextlib.suppress(RigError):
                _run("iptables", "-D", "INPUT", *rule)
