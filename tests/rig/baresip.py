"""baresip as a plain SIP phone (UDP or TCP, PCMU/PCMA, plain RTP), driven over ``ctrl_tcp``.

Each phone gets its own folder with ``config`` and ``accounts``; it registers to the rig's
Kamailio through an outbound proxy (``127.0.0.1:<udp|tcp port>``) as ``sip:<user>@<domain>``.

* Audio source: a WAV file via ``aufile`` (8 kHz mono for PCMU/PCMA; aufile does not
  resample).  Default: none given -> a 10 s 440 Hz tone is generated.
* Received audio: the ``sndfile`` filter writes what the phone decodes to
  ``<dir>/snd/dump-...-dec.wav`` (and what it sends to ``...-enc.wav``);
  :meth:`BaresipPhone.received_audio` returns the newest decoded recording.
* Speaker: ALSA ``null``.  No ICE module (it would gather non-loopback candidates).
* Registration: start() polls ``reginfo`` until the account shows ``OK`` (the
  ``REGISTER_OK`` event usually fires before the control connection is up).
* Control: netstring-framed JSON over TCP (``ctrl_tcp``); the ``menu`` module supplies the
  commands (``dial``, ``accept``, ``hangup``, ``listcalls``, ``reginfo``, ...).  Events
  (``REGISTER_OK``, ``CALL_INCOMING``, ``CALL_RINGING``, ``CALL_ESTABLISHED``,
  ``CALL_CLOSED`` ...) are collected in :attr:`BaresipPhone.events`.
* Not available in baresip-core 1.0 over ctrl_tcp: sending DTMF, hold/resume.

Example::

    phone = BaresipPhone(tmp / "bob", user="bob", password=pw, server=kamailio.info)
    phone.start()                                   # waits for REGISTER_OK
    ev = phone.wait_event("CALL_INCOMING")
    phone.accept()
    phone.wait_event("CALL_ESTABLISHED")
    ...
    phone.hangup(); phone.stop()
"""

from __future__ import annotations

import json
import queue
import re
import secrets
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .audio import write_tone_wav
from .kamailio import KamailioInfo
from .ports import HOST, free_port, free_port_block, port_range
from .process import Daemon, RigError


BINARY = "/usr/bin/baresip"
MODULE_PATH = "/usr/lib/baresip/modules"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class BaresipEvent:
    """One ctrl_tcp event, e.g. ``type="CALL_INCOMING"``, ``peeruri="sip:alice@..."``."""

    type: str
    klass: str
    param: str
    peeruri: str
    call_id: str  # baresip's call id (the SIP Call-ID in 1.0), "" if none
    raw: dict[str, Any]


class BaresipPhone:
    """One baresip process registered (optionally) to Kamailio as ``user``.

    Args:
        run_dir: folder for config, accounts, log and recordings.
        user, password: digest credentials (must exist in Kamailio).
        server: the Kamailio to register with / call through.
        transport: ``"udp"`` or ``"tcp"``.
        audio_file: WAV to send (mono 16-bit, codec rate). None: a 440 Hz tone.
        codecs: audio codecs to offer, in order (``"PCMU"``, ``"PCMA"``).
        answer_mode: ``"manual"`` (call :meth:`accept`) or ``"auto"``.
        register: send REGISTER (regint 600 s) and wait for ``REGISTER_OK`` in start().
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        user: str,
        password: str,
        server: KamailioInfo,
        transport: str = "udp",
        audio_file: Path | None = None,
        codecs: tuple[str, ...] = ("PCMU",),
        answer_mode: str = "manual",
        register: bool = True,
    ) -> None:
        if transport not in ("udp", "tcp"):
            raise ValueError("transport must be 'udp' or 'tcp'")
        self.run_dir = run_dir.resolve()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.snd_dir = self.run_dir / "snd"
        self.snd_dir.mkdir(exist_ok=True)
        self.user = user
        self.server = server
        self.transport = transport
        self.register = register
        # libre binds SIP/TLS on sip_listen + 1 (and may use + 2, + 3 for ws/wss): reserve them.
        self.sip_port = free_port_block(4)
        self.ctrl_port = free_port()
        if audio_file is None:
            audio_file = write_tone_wav(self.run_dir / "tone-440.wav", 440.0, 8000, 10.0)
        self.audio_file = audio_file.resolve()
        self.events: list[BaresipEvent] = []
        self.start_seconds: float | None = None
        self._event_q: queue.Queue[BaresipEvent] = queue.Queue()
        self._responses: dict[str, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        rtp_first, rtp_last = port_range(20)
        proxy_port = server.udp_port if transport == "udp" else server.tcp_port
        (self.run_dir / "config").write_text(
            "\n".join(
                [
                    "poll_method epoll",
                    f"sip_listen {HOST}:{self.sip_port}",
                    f"net_interface {HOST}",
                    "audio_player alsa,null",
                    f"audio_source aufile,{self.audio_file}",
                    "audio_alert alsa,null",
                    f"rtp_ports {rtp_first}-{rtp_last}",
                    "rtp_timeout 0",
                    f"module_path {MODULE_PATH}",
                    "module g711.so",
                    "module aufile.so",
                    "module alsa.so",
                    "module sndfile.so",
                    "module_app account.so",
                    "module_app menu.so",
                    "module_app ctrl_tcp.so",
                    f"ctrl_tcp_listen {HOST}:{self.ctrl_port}",
                    f"snd_path {self.snd_dir}",
                    "",
                ]
            )
        )
        params = [
            f"auth_user={user}",
            f"auth_pass={password}",
            f'outbound="sip:{HOST}:{proxy_port};transport={transport};lr"',
            f"regint={600 if register else 0}",
            f"audio_codecs={','.join(codecs)}",
            f"answermode={answer_mode}",
        ]
        account = f"<sip:{user}@{server.domain};transport={transport}>;" + ";".join(params)
        accounts = self.run_dir / "accounts"
        accounts.write_text(account + "\n")
        accounts.chmod(0o600)
        self._daemon = Daemon(
            f"baresip-{user}",
            [shutil.which("baresip") or BINARY, "-f", str(self.run_dir)],
            self.run_dir / "baresip.log",
            cwd=self.run_dir,
            env={"HOME": str(self.run_dir)},
        )

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.server.domain}"

    @property
    def is_running(self) -> bool:
        return self._daemon.is_running

    # --- lifecycle -----------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Start baresip, connect to ctrl_tcp and (if ``register``) wait for REGISTER_OK."""
        t0 = time.monotonic()
        self._daemon.start()
        self._daemon.wait_ready(self._connect, timeout)
        if self.register:
            # REGISTER_OK usually fires before ctrl_tcp accepts us, so poll ``reginfo``.
            deadline = t0 + timeout
            while not self.is_registered():
                if time.monotonic() > deadline:
                    raise RigError(f"{self.user}: not registered after {timeout}s\n"
                                   f"{self.log_tail()}")
                time.sleep(0.05)
        self.start_seconds = time.monotonic() - t0

    def is_registered(self) -> bool:
        """True if baresip's ``reginfo`` shows the account registered (``OK``)."""
        text = _ANSI.sub("", self.command("reginfo"))
        return any(
            self.aor in line and re.search(r"\bOK\b", line) for line in text.splitlines()
        )

    def stop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
        self._daemon.stop()

    # --- control -------------------------------------------------------------------------

    def command(self, name: str, params: str = "", timeout: float = 5.0) -> str:
        """Run a baresip long command (``dial``, ``accept``, ``hangup``, ``reginfo`` ...).

        Returns the response text.  Raises RigError if baresip says it failed.
        """
        if self._sock is None:
            raise RigError(f"{self.user}: not connected")
        token = secrets.token_hex(4)
        box: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._lock:
            self._responses[token] = box
        body = json.dumps({"command": name, "params": params, "token": token}).encode()
        self._sock.sendall(b"%d:%s," % (len(body), body))
        try:
            reply = box.get(timeout=timeout)
        except queue.Empty:
            raise RigError(f"{self.user}: no reply to {name!r} within {timeout}s") from None
        finally:
            with self._lock:
                self._responses.pop(token, None)
        if not reply.get("ok"):
            raise RigError(f"{self.user}: {name} {params!r} failed: {reply.get('data')!r}")
        return str(reply.get("data", ""))

    def dial(self, uri: str) -> str:
        """Place a call (``uri`` like ``sip:bob@exotel.test``)."""
        return self.command("dial", uri)

    def accept(self) -> str:
        """Answer the ringing incoming call."""
        return self.command("accept")

    def hangup(self) -> str:
        """Hang up the current call."""
        return self.command("hangup")

    def wait_event(
        self, types: str | tuple[str, ...], timeout: float = 10.0
    ) -> BaresipEvent:
        """Return the next not-yet-consumed event whose type is in ``types``.

        Events of other types seen meanwhile stay in :attr:`events` but are consumed from
        the wait queue.
        """
        wanted = (types,) if isinstance(types, str) else types
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [e.type for e in self.events]
                raise RigError(f"{self.user}: no {wanted} within {timeout}s; events: {seen}")
            try:
                ev = self._event_q.get(timeout=remaining)
            except queue.Empty:
                continue
            if ev.type in wanted:
                return ev

    # --- media ---------------------------------------------------------------------------

    def recordings(self, kind: str = "dec") -> list[Path]:
        """sndfile dumps: ``"dec"`` = audio received (decoded), ``"enc"`` = audio sent."""
        return sorted(self.snd_dir.glob(f"*-{kind}.wav"), key=lambda p: p.stat().st_mtime)

    def received_audio(self) -> Path:
        """The newest recording of received audio (complete once the call has ended)."""
        files = self.recordings("dec")
        if not files:
            raise RigError(f"{self.user}: no received-audio recording in {self.snd_dir}")
        return files[-1]

    def log_text(self) -> str:
        return self._daemon.log_text()

    def log_tail(self, lines: int = 40) -> str:
        return self._daemon.log_tail(lines)

    # --- internals -----------------------------------------------------------------------

    def _connect(self) -> bool:
        try:
            sock = socket.create_connection((HOST, self.ctrl_port), timeout=0.5)
        except OSError:
            return False
        sock.settimeout(None)
        self._sock = sock
        self._reader = threading.Thread(
            target=self._read_loop, args=(sock,), name=f"baresip-{self.user}", daemon=True
        )
        self._reader.start()
        return True

    def _read_loop(self, sock: socket.socket) -> None:
        buf = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while True:
                colon = buf.find(b":")
                if colon < 0:
                    break
                length = int(buf[:colon])
                if len(buf) < colon + 1 + length + 1:
                    break
                payload = buf[colon + 1 : colon + 1 + length]
                buf = buf[colon + 1 + length + 1 :]
                self._dispatch(json.loads(payload))

    def _dispatch(self, msg: dict[str, Any]) -> None:
        if msg.get("response"):
            with self._lock:
                box = self._responses.get(str(msg.get("token")))
            if box is not None:
                box.put(msg)
        elif msg.get("event"):
            ev = BaresipEvent(
                type=str(msg.get("type", "")),
                klass=str(msg.get("class", "")),
                param=str(msg.get("param", "")),
                peeruri=str(msg.get("peeruri", "")),
                call_id=str(msg.get("id", "")),
                raw=msg,
            )
            self.events.append(ev)
            self._event_q.put(ev)
