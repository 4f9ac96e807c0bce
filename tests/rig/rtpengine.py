"""rtpengine (userspace only) as a media relay for the rig, plus a tiny ng-protocol client.

Start it **before** Kamailio: Kamailio's rtpengine module marks a relay that doesn't answer
at start-up as disabled for a while.

Example::

    engine = Rtpengine(run_dir)
    engine.start()                  # returns once an ng ``ping`` got ``pong``
    engine.ng("list")               # {'result': 'ok', 'calls': [...]}
    engine.query(call_id)           # per-call stats, including packet counters
    engine.packet_counts(call_id)   # {from-tag: packets received on that leg}
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .ports import HOST, free_port, port_range
from .process import Daemon, RigError


BINARY = "/usr/bin/rtpengine"

# Flags for the Kamailio rtpengine module (see docs/test-rig.md for why each one is there).
OFFER_TO_WEBRTC = (
    "replace-origin replace-session-connection ICE=force DTLS=passive SDES-off "
    "UDP/TLS/RTP/SAVPF rtcp-mux-offer rtcp-mux-require generate-mid"
)
ANSWER_TO_WEBRTC = (
    "replace-origin replace-session-connection ICE=force SDES-off "
    "UDP/TLS/RTP/SAVPF rtcp-mux-offer rtcp-mux-require generate-mid"
)
TO_PLAIN = "replace-origin replace-session-connection ICE=remove RTP/AVP rtcp-mux-demux"


# --- bencode (the ng protocol's encoding) -------------------------------------------------

def bencode(value: Any) -> bytes:
    """Encode ``value`` (dict/list/str/bytes/int) as bencode."""
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, (list, tuple)):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"can't bencode {type(value).__name__}")


def bdecode(data: bytes) -> Any:
    """Decode bencode; byte strings become ``str`` when they are valid UTF-8."""
    value, end = _bdecode(data, 0)
    if end != len(data):
        raise ValueError("trailing data after bencoded value")
    return value


def _bdecode(data: bytes, i: int) -> tuple[Any, int]:
    c = data[i : i + 1]
    if c == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1 : end]), end + 1
    if c == b"l":
        i += 1
        items: list[Any] = []
        while data[i : i + 1] != b"e":
            item, i = _bdecode(data, i)
            items.append(item)
        return items, i + 1
    if c == b"d":
        i += 1
        result: dict[Any, Any] = {}
        while data[i : i + 1] != b"e":
            key, i = _bdecode(data, i)
            result[key] = None
            result[key], i = _bdecode(data, i)
        return result, i + 1
    if c.isdigit():
        colon = data.index(b":", i)
        length = int(data[i:colon])
        raw = data[colon + 1 : colon + 1 + length]
        try:
            return raw.decode(), colon + 1 + length
        except UnicodeDecodeError:
            return raw, colon + 1 + length
    raise ValueError(f"bad bencode at offset {i}")


def ng_request(port: int, command: dict[str, Any], timeout: float = 2.0) -> dict[str, Any]:
    """Send one ng command to rtpengine on 127.0.0.1:``port`` and return the reply dict."""
    cookie = os.urandom(6).hex().encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(cookie + b" " + bencode(command), (HOST, port))
        while True:
            data, _ = s.recvfrom(65535)
            got_cookie, _, body = data.partition(b" ")
            if got_cookie == cookie:
                reply = bdecode(body)
                if not isinstance(reply, dict):
                    raise RigError(f"rtpengine: unexpected ng reply {reply!r}")
                return reply


@dataclass(frozen=True)
class RtpengineInfo:
    host: str
    ng_port: int
    port_min: int
    port_max: int
    log_path: Path


class Rtpengine:
    """A userspace rtpengine bound to 127.0.0.1.

    Args:
        run_dir: folder for its log (``rtpengine.log``).
        media_ports: size of the media port range.
    """

    def __init__(self, run_dir: Path, *, media_ports: int = 200) -> None:
        self.run_dir = run_dir.resolve()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        first, last = port_range(media_ports)
        self.info = RtpengineInfo(
            host=HOST,
            ng_port=free_port(),
            port_min=first,
            port_max=last,
            log_path=self.run_dir / "rtpengine.log",
        )
        self.start_seconds: float | None = None
        self._daemon = Daemon(
            "rtpengine",
            [
                shutil.which("rtpengine") or BINARY,
                "--config-file=none",
                "--table=-1",
                f"--interface={HOST}",
                f"--listen-ng={HOST}:{self.info.ng_port}",
                f"--port-min={first}",
                f"--port-max={last}",
                "--foreground",
                "--log-stderr",
                "--log-level=6",
                f"--pidfile={self.run_dir / 'rtpengine.pid'}",
            ],
            self.info.log_path,
            cwd=self.run_dir,
        )

    @property
    def ng_port(self) -> int:
        return self.info.ng_port

    @property
    def is_running(self) -> bool:
        return self._daemon.is_running

    def start(self, timeout: float = 10.0) -> None:
        self._daemon.start()
        self.start_seconds = self._daemon.wait_ready(self.ping, timeout)

    def stop(self) -> None:
        self._daemon.stop()

    def ping(self) -> bool:
        """True when rtpengine answers an ng ``ping`` with ``pong``."""
        try:
            reply = ng_request(self.ng_port, {"command": "ping"}, timeout=0.3)
            return reply.get("result") == "pong"
        except (TimeoutError, ConnectionRefusedError):
            return False

    def ng(self, command: str, **params: Any) -> dict[str, Any]:
        """Send an ng command (``list``, ``query``, ``statistics`` ...) and return the reply."""
        params = {k.replace("_", "-"): v for k, v in params.items()}
        return ng_request(self.ng_port, {"command": command, **params})

    def calls(self) -> list[str]:
        """Call-IDs rtpengine currently knows."""
        reply = self.ng("list", limit=100)
        return [str(c) for c in reply.get("calls", [])]

    def query(self, call_id: str) -> dict[str, Any]:
        """The ng ``query`` reply for ``call_id`` (raises RigError if the call is unknown)."""
        reply = self.ng("query", call_id=call_id)
        if reply.get("result") != "ok":
            raise RigError(f"rtpengine query {call_id!r}: {reply}")
        return reply

    def packet_counts(self, call_id: str) -> dict[str, int]:
        """Packets rtpengine received per call leg (keyed by the leg's SIP tag)."""
        counts: dict[str, int] = {}
        for tag, leg in self.query(call_id).get("tags", {}).items():
            total = 0
            for media in leg.get("medias", []):
                for stream in media.get("streams", []):
                    total += int(stream.get("stats", {}).get("packets", 0))
            counts[str(tag)] = total
        return counts

    def wait_packets(self, call_id: str, minimum: int, timeout: float = 10.0) -> dict[str, int]:
        """Wait until every leg of ``call_id`` has received at least ``minimum`` packets."""
        deadline = time.monotonic() + timeout
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            counts = self.packet_counts(call_id)
            if len(counts) >= 2 and all(n >= minimum for n in counts.values()):
                return counts
            time.sleep(0.1)
        raise RigError(f"rtpengine: call {call_id} packets {counts}, wanted >= {minimum} per leg")

    def log_text(self) -> str:
        return self._daemon.log_text()
