"""Kamailio as registrar + proxy for the interop tests (ws, wss, udp, tcp on 127.0.0.1).

The config is ``tests/rig/kamailio/kamailio.cfg``, a template rendered into the run folder
at every start.  Summary (details in docs/test-rig.md):

* SIP domain and digest realm: :data:`DOMAIN` (``"exotel.test"``).  Request-URIs may use
  the domain, ``localhost:<port>`` or ``127.0.0.1:<listening port>``.  There is
  deliberately no port-less alias for 127.0.0.1.
* Users: an in-memory ``htable`` (user -> password) checked with ``pv_auth_check``;
  ``qop=auth`` challenges by default; ``qop=False`` gives Kamailio's stock challenges
  (no ``qop``, never ``stale=true``), and ``nonce_expire`` sets the nonce lifetime (300 s,
  the stock value, by default).  The secret that signs nonces is new at every start, so
  a restart invalidates every nonce.  AORs in usrloc are bare user names.
* REGISTER is saved with flag 0x04 (one contact per AOR: the newest replaces older ones).
* rtpengine is in the media path of every call.  Requests arriving over ws/wss are WebRTC
  legs (ICE + DTLS-SRTP, UDP/TLS/RTP/SAVPF); next hops whose URI says ``transport=ws|wss``
  get WebRTC offers; everything else gets plain RTP/AVP.
* Every request and reply is logged as one ``RIG-...`` line; :meth:`Kamailio.events`
  parses them, so tests can assert what the server saw.

Example::

    k = Kamailio(run_dir, rtpengine_ng_port=engine.ng_port, certs=certs)
    k.start()
    k.info.ws_url                       # "ws://127.0.0.1:<port>"
    user, password = k.new_user()
    k.registered_contacts("alice")      # server-side bindings via the ul.dump RPC
    k.kill(); k.start()                 # crash + restart on the same ports
    k.reset_ws_connections()            # drop the clients' WebSockets, Kamailio stays up
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import rtpengine as rtp
from .certs import Certs
from .ports import HOST, free_ports
from .process import Daemon, RigError
from .sipprobe import udp_options


BINARY = "/usr/sbin/kamailio"
TEMPLATE = Path(__file__).with_name("kamailio") / "kamailio.cfg"
DOMAIN = "exotel.test"
DEFAULT_USERS = ("alice", "bob", "carol", "dave")
_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass
class KamailioInfo:
    """Where and how to reach one Kamailio instance.  Ports stay fixed across restarts."""

    host: str
    udp_port: int
    tcp_port: int
    ws_port: int
    wss_port: int
    domain: str
    ca_file: Path
    users: dict[str, str]  # user -> password (live view; add_user() updates it)
    run_dir: Path
    log_path: Path

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.ws_port}"

    @property
    def wss_url(self) -> str:
        return f"wss://{self.host}:{self.wss_port}"

    @property
    def udp_uri(self) -> str:
        """Outbound-proxy URI for plain SIP phones over UDP."""
        return f"sip:{self.host}:{self.udp_port};transport=udp"

    @property
    def tcp_uri(self) -> str:
        return f"sip:{self.host}:{self.tcp_port};transport=tcp"

    def aor(self, user: str) -> str:
        """``sip:<user>@<domain>``."""
        return f"sip:{user}@{self.domain}"

    def __repr__(self) -> str:  # never show passwords
        return (
            f"KamailioInfo(host={self.host!r}, udp={self.udp_port}, tcp={self.tcp_port}, "
            f"ws={self.ws_port}, wss={self.wss_port}, domain={self.domain!r}, "
            f"users={sorted(self.users)})"
        )


@dataclass(frozen=True)
class RigEvent:
    """One ``RIG-<KIND> key=value ...`` line from Kamailio's log."""

    kind: str  # "REQ", "RPL", "SAVED", "CHALLENGE", "AUTHED", "RTP", "WS-CLOSED", "ERR" ...
    fields: dict[str, str] = field(default_factory=dict)
    line: str = ""

    def __getitem__(self, key: str) -> str:
        return self.fields[key]

    def get(self, key: str, default: str = "") -> str:
        return self.fields.get(key, default)


_EVENT_RE = re.compile(r"RIG-([A-Z-]+) (.*)$")
# key=value where value runs until the next " key=" (values may contain spaces).
_FIELD_RE = re.compile(r"(\w+)=(.*?)(?= \w+=|$)")


def parse_events(text: str) -> list[RigEvent]:
    """Parse every ``RIG-`` line of a Kamailio log."""
    events = []
    for line in text.splitlines():
        m = _EVENT_RE.search(line)
        if m:
            fields = {k: v.strip() for k, v in _FIELD_RE.findall(m.group(2))}
            events.append(RigEvent(m.group(1), fields, line))
    return events


class Kamailio:
    """One Kamailio process with its own ports, config, run folder and log.

    Args:
        run_dir: folder for the rendered config, pid file, control sockets and log.
        rtpengine_ng_port: ng port of a running :class:`~tests.rig.rtpengine.Rtpengine`.
        certs: certificate files for the wss listener.
        users: initial users (user -> password).  Default: :data:`DEFAULT_USERS` with
            random passwords.
        domain: SIP domain and digest realm.
        save_flags: flags for ``save("location", ...)``; ``"0x04"`` keeps one contact per AOR.
        min_expires: registrar ``min_expires`` (lower it to test quick refreshes).
        qop: challenge with ``qop=auth`` (True) or without qop (False, Kamailio's stock
            setting).
        nonce_expire: nonce lifetime in seconds (auth ``nonce_expire``; stock 300).
        debug: Kamailio ``debug`` level (2 = info; 3 = debug, very chatty).
        shm_mb: shared memory in MB (``-m``). Each WebSocket client costs about 59 KiB, so
            the default 64 holds roughly 450-650 clients; load tests need more.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        rtpengine_ng_port: int,
        certs: Certs,
        users: dict[str, str] | None = None,
        domain: str = DOMAIN,
        save_flags: str = "0x04",
        min_expires: int = 10,
        qop: bool = True,
        nonce_expire: int = 300,
        debug: int = 2,
        shm_mb: int = 64,
    ) -> None:
        run_dir = run_dir.resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        if users is None:
            users = {u: f"{u}-{secrets.token_hex(6)}" for u in DEFAULT_USERS}
        for user, password in users.items():
            _check_safe(user, password)
        udp, tcp, ws, wss = free_ports(4)
        self.info = KamailioInfo(
            host=HOST,
            udp_port=udp,
            tcp_port=tcp,
            ws_port=ws,
            wss_port=wss,
            domain=domain,
            ca_file=certs.ca_file,
            users=dict(users),
            run_dir=run_dir,
            log_path=run_dir / "kamailio.log",
        )
        self.certs = certs
        self.rtpengine_ng_port = rtpengine_ng_port
        self.save_flags = save_flags
        self.min_expires = min_expires
        self.qop = qop
        if not 1 <= nonce_expire <= 86400:
            raise ValueError("nonce_expire must be 1..86400 seconds")
        self.nonce_expire = nonce_expire
        self.debug = debug
        self.cfg_path = run_dir / "kamailio.cfg"
        self.pid_path = run_dir / "kamailio.pid"
        self.start_seconds: float | None = None
        self._counter = 0
        self._daemon = Daemon(
            "kamailio",
            [
                shutil.which("kamailio") or BINARY,
                "-f", str(self.cfg_path),
                "-DD", "-E",
                "-m", str(shm_mb), "-M", "8",
                "-Y", str(run_dir),
                "-P", str(self.pid_path),
            ],
            self.info.log_path,
            cwd=run_dir,
        )

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self._daemon.is_running

    @property
    def pid(self) -> int | None:
        return self._daemon.pid

    def start(self, timeout: float = 10.0) -> None:
        """Render the config, start Kamailio and wait until UDP OPTIONS gets a 200."""
        self._render()
        self.pid_path.unlink(missing_ok=True)
        self._daemon.start()
        self.start_seconds = self._daemon.wait_ready(self.ping, timeout)

    def stop(self) -> None:
        """SIGTERM (then SIGKILL). Registrations are lost: usrloc lives in memory."""
        self._daemon.stop()

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-whatever, TCP/WS connections are reset."""
        self._daemon.kill()

    def restart(self, timeout: float = 10.0) -> None:
        """stop() then start() on the same ports with the same users."""
        self.stop()
        self.start(timeout)

    def reset_ws_connections(self, *, secure: bool | None = None) -> int:
        """Reset every client's WebSocket TCP connection to this Kamailio (``ss -K``, root,
        inside the test namespace), leaving Kamailio itself running: the kernel aborts the
        sockets, so both ends see the connection gone without a close frame, as after a
        network blip. ``secure`` picks wss (``True``) or ws (``False``) only.

        Returns how many sockets were closed.
        """
        ports = [p for p, s in ((self.info.ws_port, False), (self.info.wss_port, True))
                 if secure is None or s is secure]
        closed = 0
        for port in ports:
            # The clients' ends (destination port = ours), then Kamailio's (source port).
            for side in ("dport", "sport"):
                out = subprocess.run(
                    ["ss", "-K", "-Htn", "state", "established", f"( {side} = :{port} )"],
                    capture_output=True, text=True, timeout=10, check=False,
                )
                if out.returncode != 0:
                    raise RigError(f"ss -K failed: {out.stderr.strip()}")
                closed += len([line for line in out.stdout.splitlines() if line.strip()])
        return closed

    def ping(self) -> bool:
        """True if an OPTIONS over UDP to the proxy is answered with 200."""
        try:
            return udp_options(self.info.udp_port, timeout=0.3)[0] == 200
        except TimeoutError:
            return False

    # --- users ---------------------------------------------------------------------------

    def add_user(self, user: str, password: str) -> None:
        """Add (or change) a digest user; effective at once and kept across restarts."""
        _check_safe(user, password)
        self.info.users[user] = password
        if self.is_running:
            self.rpc("htable.sets", "users", user, password)

    def new_user(self, prefix: str = "user") -> tuple[str, str]:
        """Create a user nobody else uses in this session; returns ``(user, password)``."""
        self._counter += 1
        user = f"{prefix}{self._counter}x{secrets.token_hex(2)}"
        password = secrets.token_hex(8)
        self.add_user(user, password)
        return user, password

    # --- introspection -------------------------------------------------------------------

    def rpc(self, method: str, *params: Any, timeout: float = 3.0) -> Any:
        """Call a Kamailio RPC through JSON-RPC over HTTP (``POST /RPC`` on the ws port).

        Returns the ``result`` member.  Raises RigError for an RPC error reply.
        """
        body = json.dumps(
            {"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1}
        ).encode()
        request = urllib.request.Request(
            f"http://{HOST}:{self.info.ws_port}/RPC",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=timeout) as response:
            reply = json.loads(response.read())
        if "error" in reply:
            raise RigError(f"kamailio rpc {method}: {reply['error']}")
        return reply.get("result")

    def registered_contacts(self, aor: str) -> list[dict[str, Any]]:
        """The bindings usrloc holds for ``aor`` (a bare user name, e.g. ``"alice"``).

        Each item is usrloc's contact dict (``Address``, ``Expires``, ``Received``,
        ``Socket``, ``User-Agent``, ``Instance``, ``Reg-Id``, ...).  Empty list if none.
        """
        result = self.rpc("ul.dump")
        contacts: list[dict[str, Any]] = []
        for domain in result.get("Domains", []):
            for entry in domain.get("Domain", {}).get("AoRs", []):
                info = entry.get("Info", {})
                if info.get("AoR") != aor:
                    continue
                for c in info.get("Contacts", []):
                    contacts.append(c.get("Contact", c))
        return contacts

    def wait_registered(self, aor: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until ``aor`` has at least one binding; return the bindings."""
        deadline = time.monotonic() + timeout
        while True:
            contacts = self.registered_contacts(aor)
            if contacts:
                return contacts
            if time.monotonic() > deadline:
                raise RigError(f"{aor} not registered after {timeout}s")
            time.sleep(0.05)

    def log_text(self) -> str:
        """Everything Kamailio wrote so far (all starts of this instance)."""
        return self._daemon.log_text()

    def events(self, kind: str | None = None, **match: str) -> list[RigEvent]:
        """``RIG-`` log events, optionally filtered by kind and exact field values.

        ``k.events("REQ", method="REGISTER")`` lists every REGISTER the proxy received;
        ``k.events("RPL", status="200")`` every 200 relayed back.
        """
        return [
            e
            for e in parse_events(self.log_text())
            if (kind is None or e.kind == kind)
            and all(e.get(k) == v for k, v in match.items())
        ]

    def wait_event(
        self, kind: str, timeout: float = 10.0, count: int = 1, **match: str
    ) -> list[RigEvent]:
        """Wait until at least ``count`` matching events were logged; return them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.events(kind, **match)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise RigError(f"no {count}x RIG-{kind} {match} within {timeout}s")
            time.sleep(0.05)

    # --- internals -----------------------------------------------------------------------

    def _render(self) -> None:
        tls_cfg = self.info.run_dir / "tls.cfg"
        tls_cfg.write_text(
            "[server:default]\n"
            "method = TLSv1.2+\n"
            "verify_certificate = no\n"
            "require_certificate = no\n"
            f"private_key = {self.certs.key_file}\n"
            f"certificate = {self.certs.cert_file}\n"
            "\n[client:default]\n"
            "verify_certificate = no\n"
            "require_certificate = no\n"
        )
        users = "\n".join(
            f'\t$sht(users=>{u}) = "{p}";' for u, p in sorted(self.info.users.items())
        )
        values = {
            "DEBUG_LEVEL": str(self.debug),
            "DOMAIN": self.info.domain,
            "UDP_PORT": str(self.info.udp_port),
            "TCP_PORT": str(self.info.tcp_port),
            "WS_PORT": str(self.info.ws_port),
            "WSS_PORT": str(self.info.wss_port),
            "TLS_CFG": str(tls_cfg),
            "RUN_DIR": str(self.info.run_dir),
            "MIN_EXPIRES": str(self.min_expires),
            "AUTH_SECRET": secrets.token_hex(16),
            "RTPENGINE_NG_PORT": str(self.rtpengine_ng_port),
            "SAVE_FLAGS": self.save_flags,
            "CHALLENGE_FLAGS": "1" if self.qop else "0",
            "NONCE_EXPIRE": str(self.nonce_expire),
            "USERS": users,
            "RTP_OFFER_TO_WEBRTC": rtp.OFFER_TO_WEBRTC,
            "RTP_ANSWER_TO_WEBRTC": rtp.ANSWER_TO_WEBRTC,
            "RTP_TO_PLAIN": rtp.TO_PLAIN,
        }
        text = TEMPLATE.read_text()
        text = re.sub(r"@@([A-Z0-9_]+)@@", lambda m: values[m.group(1)], text)
        self.cfg_path.write_text(text)
        self.cfg_path.chmod(0o600)


def _check_safe(user: str, password: str) -> None:
    if not _SAFE.match(user) or not _SAFE.match(password):
        raise ValueError("user names and passwords must match [A-Za-z0-9._-]{1,64}")
