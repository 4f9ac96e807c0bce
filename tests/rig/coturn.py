"""coturn (STUN/TURN) on 127.0.0.1 with long-term credentials, no TLS/DTLS, relaying to
loopback peers allowed.

Example::

    turn = Coturn(run_dir); turn.start()
    turn.info.stun_url        # "stun:127.0.0.1:<port>"
    turn.info.turn_url        # "turn:127.0.0.1:<port>?transport=udp"
    turn.info.username, turn.info.password, turn.info.realm
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from .ports import HOST, free_port, port_range
from .process import Daemon


BINARY = "/usr/bin/turnserver"
STUN_MAGIC = 0x2112A442


@dataclass(frozen=True)
class CoturnInfo:
    host: str
    port: int  # STUN and TURN, UDP and TCP
    username: str
    password: str
    realm: str
    relay_min: int
    relay_max: int
    log_path: Path

    @property
    def stun_url(self) -> str:
        return f"stun:{self.host}:{self.port}"

    @property
    def turn_url(self) -> str:
        return f"turn:{self.host}:{self.port}?transport=udp"

    @property
    def turn_tcp_url(self) -> str:
        return f"turn:{self.host}:{self.port}?transport=tcp"

    def __repr__(self) -> str:
        return f"CoturnInfo(host={self.host!r}, port={self.port}, username={self.username!r})"


def stun_binding(port: int, host: str = HOST, timeout: float = 1.0) -> tuple[str, int]:
    """Send a STUN Binding request (RFC 5389) and return the XOR-MAPPED-ADDRESS."""
    txid = os.urandom(12)
    request = struct.pack("!HHI", 0x0001, 0, STUN_MAGIC) + txid
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(request, (host, port))
        data, _ = s.recvfrom(2048)
    msg_type, length, magic = struct.unpack("!HHI", data[:8])
    if msg_type != 0x0101 or magic != STUN_MAGIC or data[8:20] != txid:
        raise ValueError(f"not a Binding success response: type={msg_type:#06x}")
    pos = 20
    while pos < 20 + length:
        attr_type, attr_len = struct.unpack("!HH", data[pos : pos + 4])
        value = data[pos + 4 : pos + 4 + attr_len]
        if attr_type == 0x0020:  # XOR-MAPPED-ADDRESS
            xport = struct.unpack("!H", value[2:4])[0] ^ (STUN_MAGIC >> 16)
            xaddr = struct.unpack("!I", value[4:8])[0] ^ STUN_MAGIC
            return socket.inet_ntoa(struct.pack("!I", xaddr)), xport
        pos += 4 + attr_len + (-attr_len % 4)
    raise ValueError("no XOR-MAPPED-ADDRESS in response")


class Coturn:
    """One turnserver process.  :attr:`info` has the URLs and credentials."""

    def __init__(self, run_dir: Path, *, realm: str = "exotel.test") -> None:
        self.run_dir = run_dir.resolve()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        first, last = port_range(100)
        self.info = CoturnInfo(
            host=HOST,
            port=free_port(),
            username="rig",
            password=secrets.token_hex(8),
            realm=realm,
            relay_min=first,
            relay_max=last,
            log_path=self.run_dir / "coturn.log",
        )
        self.start_seconds: float | None = None
        self._daemon = Daemon(
            "coturn",
            [
                shutil.which("turnserver") or BINARY,
                "-n",
                f"--listening-ip={HOST}",
                f"--relay-ip={HOST}",
                f"--listening-port={self.info.port}",
                f"--min-port={first}",
                f"--max-port={last}",
                "--lt-cred-mech",
                f"--user={self.info.username}:{self.info.password}",
                f"--realm={realm}",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--allow-loopback-peers",
                f"--db={self.run_dir / 'turndb.sqlite'}",
                f"--pidfile={self.run_dir / 'turnserver.pid'}",
                "--log-file=stdout",
                "--simple-log",
            ],
            self.info.log_path,
            cwd=self.run_dir,
            hide=[self.info.password],
        )

    @property
    def is_running(self) -> bool:
        return self._daemon.is_running

    def start(self, timeout: float = 10.0) -> None:
        self._daemon.start()
        self.start_seconds = self._daemon.wait_ready(self._probe, timeout)

    def stop(self) -> None:
        self._daemon.stop()

    def _probe(self) -> bool:
        try:
            stun_binding(self.info.port, timeout=0.2)
            return True
        except (TimeoutError, ConnectionRefusedError, ValueError):
            return False

    def log_text(self) -> str:
        return self._daemon.log_text()
