"""The ``exotel-voice`` command line.

::

    exotel-voice call TARGET [--account FILE] [--play FILE.wav | --tone HZ]
                             [--record FILE.wav] [--dtmf DIGITS] [--duration S] [--json]
    exotel-voice answer [--account FILE] [--play FILE.wav | --tone HZ] [--record FILE.wav]
                        [--count N] [--duration S] [--ring-from-sandbox NUMBER] [--json]
    exotel-voice connect FROM TO [--caller-id NUMBER] [--json]
    exotel-voice sandbox [--host H] [--ws-port N] [--wss-port N] [--http-port N]
                         [--user NAME ...] [--api-key KEY] [--tone-hz HZ] [-v]
    exotel-voice demo [--keep-running] [same listener options] [-v]
    exotel-voice diagnose [--account FILE | --sandbox] [--ice-host ADDRESS] [--timeout S]
                          [--no-register] [--json] [-v]
    exotel-voice devices [--json] [-v]
    exotel-voice --version

``call`` places a call and ``answer`` takes calls (a scriptable softphone). Their account is
the guide's ``sipAccountInfo``: from ``--account FILE`` (a JSON object), else from the
``EXOTEL_*`` variables the docs use (``EXOTEL_USERNAME``, ``EXOTEL_SECRET``,
``EXOTEL_SIPDOMAIN``, ``EXOTEL_DOMAIN``, ``EXOTEL_PORT``, ``EXOTEL_SECURITY`` ..., read by
:meth:`AccountConfig.from_env <exotel_voice.config.AccountConfig.from_env>`; those not set
default to the sandbox on this machine, as ``exotel-voice sandbox`` starts it), else an
in-process sandbox, whose test numbers (``echo``, ``tone``, ``ivr``, ``busy``, ``noanswer``)
are then the targets. ``connect`` starts a click-to-call through Exotel's REST API
(``EXOTEL_ACCOUNT_SID``, ``EXOTEL_API_KEY``, ``EXOTEL_API_TOKEN``, ``EXOTEL_API_URL``).
``sandbox`` runs the embedded Exotel-like server until Ctrl-C, prints how to reach it, then
one line per registration and call as they happen. ``demo`` runs the SDK against an
in-process sandbox and exits 0 when every check passed. ``diagnose`` runs the network
checks (:mod:`exotel_voice.diagnostics.network`) and prints them as a table (with ``rich``,
the ``[cli]`` extra, when installed; plain text otherwise), or as JSON with ``--json``; exit
status 1 when a check failed. ``devices`` lists the audio input and output devices
(:mod:`exotel_voice.audio`; the ``[audio]`` extra) with their ids, as a table (``rich`` when
installed) or JSON with ``--json``; exit status 2 without the ``[audio]`` extra.

Secrets never come from the command line: the SIP password from the account file or
``EXOTEL_SECRET``, the REST token from ``EXOTEL_API_TOKEN``, the sandbox's from
``EXOTEL_SANDBOX_PASSWORD`` and ``EXOTEL_SANDBOX_API_TOKEN`` (random otherwise, and printed).

Output: events (ringing, connected, DTMF, ended) are one line each. During a call a status
line (state, connected time, levels in and out) is redrawn in place on a terminal and
printed once a second otherwise. With ``--json`` that progress goes to stderr and stdout
gets one JSON object per call (state, duration, digits, levels, end reason), for scripts.
An error is one line on stderr, ``exotel-voice: ...`` (a traceback only with ``-v``); exit
status 0 on success, 1 when the call or the request failed, 2 for bad usage or
configuration, 130 after Ctrl-C.

The status line is written with ``\\r`` and the ``ESC [K`` erase, not with ``rich``: one
line redrawn a few times a second needs nothing more, and the CLI keeps the package's
dependencies as they are (argparse only, as the style guide asks).

This module is the only one that prints or configures logging.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import math
import os
import secrets
import sys
import time
import traceback
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from . import __version__
from .exceptions import ConfigurationError, SipError
from .sandbox import TEST_NUMBERS, Sandbox, SandboxConfig
from .sandbox.demo import DemoFailed, run_demo


if TYPE_CHECKING:
    from .client import Call, Phone, PhoneEvent
    from .config import AccountConfig
    from .media import AudioSource, MediaConfig
    from .media.pcm import Samples


__all__ = ["main"]

#: The defaults of the ``EXOTEL_*`` account variables (read by
#: :meth:`~exotel_voice.config.AccountConfig.from_env`): the sandbox on this machine, as
#: ``exotel-voice sandbox`` starts it. ``EXOTEL_SECRET`` has none.
_ENV_DEFAULTS: dict[str, str] = {
    "EXOTEL_USERNAME": "agent",
    "EXOTEL_SIPDOMAIN": "sandbox.exotel.test",
    "EXOTEL_DOMAIN": "127.0.0.1:8088",
    "EXOTEL_PORT": "8088",
    "EXOTEL_SECURITY": "ws",
}

#: Exit statuses.
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class CliError(Exception):
    """A failure the CLI reports as one line, with its exit status."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


# ============================================================================================
# Arguments
# ============================================================================================
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exotel-voice", description="exotel-voice: SIP over WebSocket + WebRTC tools"
    )
    parser.add_argument("--version", action="version", version=f"exotel-voice {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def verbose_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("-v", "--verbose", action="count", default=0,
                       help="more logging, and tracebacks (-v: INFO, -vv: DEBUG)")

    def listener_options(p: argparse.ArgumentParser, *, default_ports: bool) -> None:
        p.add_argument("--host", default="127.0.0.1", help="address to listen on")
        p.add_argument("--ws-port", type=int, default=8088 if default_ports else 0,
                       help="SIP over ws:// port (0: any free port; -1: off)")
        p.add_argument("--wss-port", type=int, default=8089 if default_ports else 0,
                       help="SIP over wss:// port (0: any free port; -1: off)")
        p.add_argument("--http-port", type=int, default=8090 if default_ports else 0,
                       help="REST emulation port (0: any free port; -1: off)")
        p.add_argument("--domain", default="sandbox.exotel.test", help="SIP domain and realm")
        p.add_argument("--user", action="append", default=[], metavar="NAME",
                       help="a SIP user (repeatable; default: agent). Password: "
                            "$EXOTEL_SANDBOX_PASSWORD, else random")
        p.add_argument("--account-sid", default="sandbox", help="REST account SID")
        p.add_argument("--api-key", default=None,
                       help="REST API key (default: random); token from "
                            "$EXOTEL_SANDBOX_API_TOKEN, else random")
        p.add_argument("--tone-hz", type=float, default=440.0, help="the tone number's pitch")
        verbose_option(p)

    def phone_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--account", metavar="FILE", type=Path,
                       help="a JSON file with the guide's sipAccountInfo (default: the "
                            "EXOTEL_* variables, else an in-process sandbox)")
        audio = p.add_mutually_exclusive_group()
        audio.add_argument("--play", metavar="FILE.wav", type=Path,
                           help="send this 16-bit WAV file (without --duration the call "
                                "ends when it has played)")
        audio.add_argument("--tone", metavar="HZ", type=float, help="send a sine tone")
        p.add_argument("--record", metavar="FILE.wav", type=Path,
                       help="record what the far end sends ({n} in the name: the call's number)")
        p.add_argument("--duration", metavar="SECONDS", type=float,
                       help="hang up this long after the call connected")
        p.add_argument("--dtmf", metavar="DIGITS", help="send these digits once connected")
        p.add_argument("--dtmf-method", choices=("info", "rfc4733"), default="info",
                       help="how to send --dtmf (default: SIP INFO)")
        p.add_argument("--ice-host", action="append", metavar="ADDRESS",
                       help="local address for media (repeatable; default: $EXOTEL_ICE_HOSTS, "
                            "127.0.0.1 for a server on this machine, else every interface)")
        p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                       help="give up registering or connecting after this long (default 30)")
        p.add_argument("--json", action="store_true",
                       help="one JSON summary per call on stdout (progress on stderr)")
        verbose_option(p)

    sandbox = sub.add_parser("sandbox", help="run the Exotel-like sandbox server")
    listener_options(sandbox, default_ports=True)
    demo = sub.add_parser("demo", help="run the SDK against an in-process sandbox")
    listener_options(demo, default_ports=False)
    demo.add_argument("--keep-running", action="store_true",
                      help="after the demo, keep the sandbox running until Ctrl-C")

    call = sub.add_parser("call", help="place a call (play, record, send DTMF)")
    call.add_argument("target", help="a number, user or SIP URI (sandbox: echo, tone, ivr ...)")
    phone_options(call)

    answer = sub.add_parser("answer", help="wait for calls and answer them")
    phone_options(answer)
    answer.add_argument("--count", type=int, metavar="N",
                        help="exit after N calls (default: run until Ctrl-C)")
    answer.add_argument("--wait", type=float, metavar="SECONDS",
                        help="fail when no call comes within this long (default: wait forever)")
    answer.add_argument("--ring-from-sandbox", metavar="NUMBER",
                        help="in-process sandbox only: have it ring this phone with a "
                             "click-to-call to NUMBER (echo, tone, ivr) for each call")

    connect = sub.add_parser(
        "connect", help="start a click-to-call through Exotel's REST API (Calls/connect)",
        description="Credentials come from EXOTEL_ACCOUNT_SID, EXOTEL_API_KEY and "
                    "EXOTEL_API_TOKEN; EXOTEL_API_URL (or EXOTEL_API_SUBDOMAIN) picks the host.",
    )
    connect.add_argument("from_", metavar="FROM", help="the number (or agent) called first")
    connect.add_argument("to", metavar="TO", help="the number connected once FROM answers")
    connect.add_argument("--caller-id", default=os.environ.get("EXOTEL_CALLER_ID", ""),
                         help="your ExoPhone, shown to both parties (default: "
                              "$EXOTEL_CALLER_ID)")
    connect.add_argument("--json", action="store_true", help="print the result as JSON")
    verbose_option(connect)

    diag = sub.add_parser(
        "diagnose", help="check the network: WebSocket, registration, STUN/TURN, candidates",
        description="Runs the network checks of guide 5.11 against an account (its "
                    "sipAccountInfo file may list iceServers, as a browser's "
                    "RTCConfiguration does) or an in-process sandbox, and prints one line per "
                    "check with its verdict and what to do. Exit status 1 when a check failed.",
    )
    where = diag.add_mutually_exclusive_group()
    where.add_argument("--account", metavar="FILE", type=Path,
                       help="a JSON file with the guide's sipAccountInfo, plus optional "
                            "iceServers [{urls, username, credential}] (default: the EXOTEL_* "
                            "variables, else an in-process sandbox)")
    where.add_argument("--sandbox", action="store_true",
                       help="check an in-process sandbox (it has no STUN or TURN server)")
    diag.add_argument("--ice-host", action="append", metavar="ADDRESS",
                      help="local address for the host candidate (repeatable; default as for "
                           "call)")
    diag.add_argument("--timeout", type=float, default=3.0, metavar="SECONDS",
                      help="each check's deadline (default 3)")
    diag.add_argument("--no-register", action="store_true",
                      help="send no REGISTER (userReg is skipped): a registrar that keeps one "
                           "contact per user would drop the account's other registration")
    diag.add_argument("--json", action="store_true",
                      help="print the report as JSON (for a support ticket); no secrets in it")
    verbose_option(diag)

    devices = sub.add_parser(
        "devices", help="list the audio input and output devices (the [audio] extra)",
        description="Lists the input and output devices (PulseAudio's sinks and sources when "
                    "a server answers pactl, and PortAudio's) with the ids that "
                    "changeAudioInputDevice / changeAudioOutputDevice and "
                    "Phone.set_input_device / set_output_device take.",
    )
    devices.add_argument("--json", action="store_true", help="print the devices as JSON")
    verbose_option(devices)
    return parser


# ============================================================================================
# sandbox and demo
# ============================================================================================
def _config(args: argparse.Namespace) -> SandboxConfig:
    def port(value: int) -> int | None:
        return None if value < 0 else value

    password = os.environ.get("EXOTEL_SANDBOX_PASSWORD")
    users = {
        name: password or secrets.token_urlsafe(12) for name in (args.user or ["agent"])
    }
    config = SandboxConfig(
        host=args.host,
        ws_port=port(args.ws_port),
        wss_port=port(args.wss_port),
        http_port=port(args.http_port),
        domain=args.domain,
        account_sid=args.account_sid,
        api_key=args.api_key,
        api_token=os.environ.get("EXOTEL_SANDBOX_API_TOKEN"),
        tone_hz=args.tone_hz,
    )
    config.users = users
    return config


def _describe(sandbox: Sandbox) -> str:
    config = sandbox.config
    lines = ["", "exotel-voice sandbox is running", ""]
    ports = sandbox.ports
    if "ws" in ports:
        lines.append(f"  SIP over WebSocket : {sandbox.ws_url}")
    if "wss" in ports:
        lines.append(f"  SIP over TLS       : {sandbox.wss_url}")
        lines.append(f"    self-signed CA   : {sandbox.ca_file}")
    lines.append(f"  SIP domain / realm : {config.domain}")
    lines.append("  users (digest auth):")
    for name, password in sorted(sandbox.users.items()):
        lines.append(f"    {name:<16} password {password}")
    lines.append(f"  test numbers       : {', '.join(TEST_NUMBERS)} "
                 f"(tone = {config.tone_hz:g} Hz)")
    if "http" in ports:
        lines.append(f"  REST               : {sandbox.rest_url}/Calls/connect[.json]")
        lines.append(f"    API key / token  : {config.api_key} / {config.api_token}")
        first = sorted(sandbox.users)[0]
        lines.append(
            f"    try: curl -u {config.api_key}:{config.api_token} "
            f"-d From={first} -d To=echo -d CallerId=0800 {sandbox.rest_url}/Calls/connect.json"
        )
    lines.append("")
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)


#: The sandbox loggers whose INFO lines are its activity: registrations and their
#: refusals, connections, call status changes, the IVR's digits, REST errors.
_ACTIVITY_LOGGERS = ("exotel_voice.sandbox.server", "exotel_voice.sandbox.numbers",
                     "exotel_voice.sandbox.rest")


def _show_activity(verbose: int) -> None:
    """Print the sandbox's activity on stdout, one timed line each.

    With ``-v`` the log on stderr already carries these lines, so nothing is added.
    """
    if verbose > 0:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s  %(message)s", "%H:%M:%S"))
    handler.addFilter(lambda record: not record.getMessage().startswith("sandbox listening"))
    for name in _ACTIVITY_LOGGERS:
        log = logging.getLogger(name)
        log.setLevel(logging.INFO)
        log.addHandler(handler)
        log.propagate = False  # not twice: the root handler would print them on stderr


async def _wait_forever(sandbox: Sandbox) -> None:
    print(_describe(sandbox), flush=True)
    await asyncio.Event().wait()


async def _run_sandbox(config: SandboxConfig) -> None:
    async with Sandbox(config) as sandbox:
        await _wait_forever(sandbox)


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr
    )
    if verbose < 3:
        # aioice's per-candidate-pair chatter drowns everything else below -vvv.
        logging.getLogger("aioice").setLevel(max(level, logging.INFO))


def _run_demo(args: argparse.Namespace) -> int:
    try:
        total = asyncio.run(
            run_demo(
                lambda line: print(line, flush=True),
                config=_config(args),
                keep_running=_wait_forever if args.keep_running else None,
            )
        )
    except DemoFailed as exc:
        raise CliError(f"demo failed: {exc}") from exc
    except TimeoutError as exc:
        raise CliError("demo failed: a step timed out") from exc
    print(f"demo finished in {total:.1f} s", flush=True)
    return 0


# ============================================================================================
# Output
# ============================================================================================
class _Output:
    """Event lines and the status line, on stdout (stderr with ``--json``)."""

    def __init__(self, json_mode: bool) -> None:
        self.json = json_mode
        self.stream: TextIO = sys.stderr if json_mode else sys.stdout
        self.tty = self.stream.isatty()
        self._status_shown = False

    def event(self, text: str) -> None:
        """One line about something that happened."""
        self._clear()
        print(text, file=self.stream, flush=True)

    def status(self, text: str) -> None:
        """The live status: redrawn in place on a terminal, a plain line otherwise."""
        if self.tty:
            self.stream.write(f"\r\x1b[K{text}")
            self.stream.flush()
            self._status_shown = True
        else:
            print(text, file=self.stream, flush=True)

    def summary(self, data: dict[str, Any]) -> None:
        """The result of one call or request: JSON on stdout with ``--json``."""
        if self.json:
            self._clear()
            print(json.dumps(data), flush=True)

    def _clear(self) -> None:
        if self._status_shown:
            self.stream.write("\r\x1b[K")
            self._status_shown = False


# ============================================================================================
# Accounts
# ============================================================================================
def _account_info(args: argparse.Namespace) -> dict[str, Any] | None:
    """The ``sipAccountInfo`` to use; ``None`` for the in-process sandbox."""
    if args.account is not None:
        try:
            text = args.account.read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot read the account file {args.account}: {exc.strerror}",
                           EXIT_USAGE) from exc
        try:
            info = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CliError(f"the account file {args.account} is not JSON: {exc}",
                           EXIT_USAGE) from exc
        if not isinstance(info, dict):
            raise CliError(f"the account file {args.account} must hold a JSON object "
                           "(the guide's sipAccountInfo)", EXIT_USAGE)
        if "secret" not in info and os.environ.get("EXOTEL_SECRET"):
            info["secret"] = os.environ["EXOTEL_SECRET"]
        return info
    from .config import AccountConfig

    if not any(os.environ.get(f"EXOTEL_{name}") for name in AccountConfig.ENV_VARIABLES):
        return None
    environ = {**_ENV_DEFAULTS, **{k: v for k, v in os.environ.items() if v}}
    if "EXOTEL_SECRET" not in environ:
        if not sys.stdin.isatty():
            raise CliError("EXOTEL_SECRET is not set (the SIP password of the EXOTEL_* "
                           "account; it is never taken from the command line)", EXIT_USAGE)
        environ["EXOTEL_SECRET"] = getpass.getpass("SIP password: ")
    try:
        return AccountConfig.sip_account_info_from_env(environ)
    except ConfigurationError as exc:
        raise CliError(f"bad account: {exc}", EXIT_USAGE) from exc


def _account(info: dict[str, Any]) -> AccountConfig:
    from .config import AccountConfig

    try:
        return AccountConfig.from_sip_account_info(info)
    except ConfigurationError as exc:
        raise CliError(f"bad account: {exc}", EXIT_USAGE) from exc


def _media_config(args: argparse.Namespace, account: AccountConfig) -> MediaConfig:
    from urllib.parse import urlsplit

    from .media import IceConfig, MediaConfig

    hosts = args.ice_host or [
        h for h in os.environ.get("EXOTEL_ICE_HOSTS", "").split(",") if h.strip()
    ]
    if not hosts and urlsplit(account.ws_url).hostname in ("127.0.0.1", "localhost", "::1"):
        hosts = ["127.0.0.1"]  # a server on this machine: media on loopback too
    if not hosts:
        return MediaConfig()
    return MediaConfig(ice=IceConfig(host_addresses=hosts, gather_timeout=1.0))


@dataclass
class _Setup:
    """A registered phone, and the in-process sandbox behind it if there is one."""

    phone: Phone
    sandbox: Sandbox | None


@contextlib.asynccontextmanager
async def _registered_phone(args: argparse.Namespace, out: _Output,
                            *, rest: bool = False) -> AsyncIterator[_Setup]:
    """Start the sandbox (when no account is given), then a registered phone."""
    from .client import Phone

    info = _account_info(args)
    async with contextlib.AsyncExitStack() as stack:
        sandbox: Sandbox | None = None
        if info is None:
            config = SandboxConfig(ws_port=0, wss_port=None, http_port=0 if rest else None,
                                   users={"agent": secrets.token_urlsafe(12)})
            sandbox = await stack.enter_async_context(Sandbox(config))
            info = sandbox.sip_account_info("agent")
            out.event(f"no account given (--account FILE or EXOTEL_* variables): using an "
                      f"in-process sandbox, test numbers {', '.join(TEST_NUMBERS)}")
        account = _account(info)
        phone = await stack.enter_async_context(
            Phone(account, media=_media_config(args, account))
        )
        out.event(f"registering {account.aor} at {account.ws_url}")
        try:
            await phone.register(timeout=args.timeout)
        except (SipError, TimeoutError, OSError) as exc:
            raise CliError(f"registration failed: {_describe_error(exc)}") from exc
        out.event("registered")
        yield _Setup(phone, sandbox)


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


# ============================================================================================
# Calls
# ============================================================================================
class _Meter:
    """Levels of a stream of frames: the last 300 ms (live) and the whole call (summary)."""

    def __init__(self) -> None:
        from .media import LevelMeter

        self.recent = LevelMeter(window_ms=300)
        self._energy = 0.0
        self._samples = 0

    def feed(self, samples: Samples, sample_rate: int) -> None:
        from .media.analysis import as_samples

        self.recent.write(samples, sample_rate)
        values = as_samples(samples)
        self._energy += float((values * values).sum())
        self._samples += values.size

    @property
    def dbfs(self) -> float:
        """The level of the last 300 ms, in dBFS."""
        return self.recent.dbfs

    @property
    def total_dbfs(self) -> float | None:
        """The level over everything fed, in dBFS (``None``: nothing was)."""
        from .media.analysis import SILENCE_DBFS

        if not self._samples:
            return None
        mean = self._energy / self._samples
        return round(max(SILENCE_DBFS, 10 * math.log10(mean)) if mean > 0 else SILENCE_DBFS, 1)


def _metered_source(inner: AudioSource, meter: _Meter) -> AudioSource:
    """``inner``, with every frame it gives also fed to ``meter`` (the level we send)."""
    from .media import AudioSource

    class MeteredSource(AudioSource):
        def __repr__(self) -> str:
            return repr(inner)

        def read(self, sample_rate: int) -> Samples | None:
            samples = inner.read(sample_rate)
            if samples is not None:
                meter.feed(samples, sample_rate)
            if inner.finished:
                self._finish()
            return samples

        async def start(self) -> None:
            await inner.start()

        async def stop(self) -> None:
            await inner.stop()

    return MeteredSource()


def _meter_sink(meter: _Meter) -> Any:
    from .media import AudioSink

    class MeterSink(AudioSink):
        def write(self, samples: Samples, sample_rate: int) -> None:
            meter.feed(samples, sample_rate)

    return MeterSink()


def _new_source(args: argparse.Namespace) -> AudioSource:
    from .exceptions import AudioSourceError
    from .media import SilenceSource, ToneSource, WavFileSource

    if args.play is not None:
        try:
            return WavFileSource(args.play)
        except AudioSourceError as exc:
            raise CliError(str(exc), EXIT_USAGE) from exc
    if args.tone is not None:
        try:
            return ToneSource(args.tone, 0.5)
        except ValueError as exc:
            raise CliError(f"--tone: {exc}", EXIT_USAGE) from exc
    return SilenceSource()


def _record_path(args: argparse.Namespace, number: int) -> Path | None:
    if args.record is None:
        return None
    return Path(str(args.record).replace("{n}", str(number)))


def _fmt_db(value: float | None) -> str:
    return "  -- " if value is None or value <= -99 else f"{value:4.0f}"


class _CallRun:
    """One call from dial or answer to its end: audio, DTMF, status and summary."""

    def __init__(self, call: Call, phone: Phone, args: argparse.Namespace, out: _Output,
                 sent: _Meter, source: AudioSource) -> None:
        self.call, self.args, self.out = call, args, out
        self.sent, self.source = sent, source
        self.heard = _Meter()
        self.digits_received: list[str] = []
        self.digits_sent = ""
        self.recording: Path | None = None
        self._remove_listener = phone.add_listener(self._on_event)

    def _on_event(self, event: PhoneEvent) -> None:
        from .client import CallRinging, DtmfReceived

        if getattr(event, "call", None) is not self.call:
            return
        if isinstance(event, CallRinging):
            self.out.event(f"ringing ({event.status} {event.reason})")
        elif isinstance(event, DtmfReceived):
            self.digits_received.append(event.digit)
            self.out.event(f"received DTMF {event.digit} ({event.method})")

    async def connected(self, record: Path | None) -> dict[str, Any]:
        """Run the connected call until it ends (or ``--duration``); returns the summary."""
        call, args, out = self.call, self.args, self.out
        media = call.media
        assert media is not None
        codec = f" ({call.codec.name}/{call.codec.clock_rate})" if call.codec else ""
        out.event(f"connected{codec}")
        media.add_sink(_meter_sink(self.heard))
        recorder = None
        if record is not None:
            from .media import WavFileSink

            recorder = WavFileSink(record)
            media.add_sink(recorder)
            self.recording = record
        status = asyncio.get_running_loop().create_task(self._status_loop())
        why = "interrupted"
        try:
            if args.dtmf:
                await call.send_dtmf(args.dtmf, method=args.dtmf_method)
                self.digits_sent = args.dtmf
                out.event(f"sent DTMF {args.dtmf} ({args.dtmf_method})")
            why = await self._until_done()
        finally:
            status.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await status
            if not call.ended:
                out.event(f"hanging up: {why}")
                await call.hangup()
            if recorder is not None:
                media.remove_sink(recorder)  # closes the file: complete once we return
        return self.summary()

    async def _until_done(self) -> str:
        """Wait for the end of the call, its ``--duration`` or its file; returns why."""
        call, args = self.call, self.args
        waits = [asyncio.ensure_future(call.wait_ended())]
        if args.play is not None and args.duration is None:
            waits.append(asyncio.ensure_future(self.source.wait_finished()))
        try:
            done, _ = await asyncio.wait(waits, timeout=args.duration,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        return "its time was up" if not done else "the file has played"

    async def _status_loop(self) -> None:
        period = 0.2 if self.out.tty else 1.0
        while True:
            await asyncio.sleep(period)
            self.out.status(self._status_text())

    def _status_text(self) -> str:
        answered = self.call.answer_time
        tenths = int((time.time() - answered) * 10) if answered else 0
        minutes, tenths = divmod(tenths, 600)
        return (f"{self.call.state:<9} {minutes:02d}:{tenths // 10:02d}.{tenths % 10}  "
                f"in {_fmt_db(self.heard.dbfs)} dBFS  out {_fmt_db(self.sent.dbfs)} dBFS")

    def summary(self) -> dict[str, Any]:
        """What a script needs to know about the call."""
        call = self.call
        self._remove_listener()
        duration = 0.0
        if call.answer_time is not None:
            duration = (call.end_time or time.time()) - call.answer_time
        codec = call.codec
        return {
            "direction": call.direction,
            "remote": call.remote_number,
            "state": str(call.state),
            "connected": call.answer_time is not None,
            "duration": round(duration, 2),
            "digits_sent": self.digits_sent,
            "digits_received": "".join(self.digits_received),
            "level_in_dbfs": self.heard.total_dbfs,
            "level_out_dbfs": self.sent.total_dbfs,
            "ended_by": call.ended_by,
            "end_status": call.end_status,
            "end_reason": call.end_reason,
            "codec": f"{codec.name}/{codec.clock_rate}" if codec else None,
            "call_id": call.call_id,
            "call_sid": call.call_sid,
            "recording": str(self.recording) if self.recording else None,
        }

    def report_end(self, summary: dict[str, Any]) -> None:
        status = f"{summary['end_status']} " if summary["end_status"] else ""
        self.out.event(f"ended by {summary['ended_by'] or 'nobody'}: {status}"
                       f"{summary['end_reason']} after {summary['duration']:.1f} s"
                       + (f", recorded to {summary['recording']}" if summary["recording"] else ""))
        self.out.summary(summary)


def _check_phone_args(args: argparse.Namespace) -> None:
    if args.duration is not None and args.duration <= 0:
        raise CliError("--duration must be positive", EXIT_USAGE)
    if args.record is not None and not args.record.parent.is_dir():
        raise CliError(f"--record: no such directory: {args.record.parent}", EXIT_USAGE)


async def _call(args: argparse.Namespace, out: _Output) -> int:
    _check_phone_args(args)
    sent = _Meter()
    source = _new_source(args)
    async with _registered_phone(args, out) as setup:
        out.event(f"calling {args.target}")
        try:
            call = await setup.phone.dial(args.target, source=_metered_source(source, sent))
        except (SipError, OSError) as exc:
            raise CliError(f"cannot call {args.target}: {_describe_error(exc)}") from exc
        run = _CallRun(call, setup.phone, args, out, sent, source)
        try:
            await call.wait_connected(args.timeout)
        except (SipError, TimeoutError) as exc:
            if not call.ended:
                await call.hangup()
            summary = run.summary()
            out.summary(summary)
            why = _describe_error(exc) if isinstance(exc, TimeoutError) else (
                f"{summary['end_status'] or ''} {summary['end_reason']}".strip())
            raise CliError(f"call to {args.target} failed: {why}") from exc
        summary = await run.connected(_record_path(args, 1))
        run.report_end(summary)
    return 0


async def _answer(args: argparse.Namespace, out: _Output) -> int:
    _check_phone_args(args)
    if args.count is not None and args.count < 1:
        raise CliError("--count must be at least 1", EXIT_USAGE)
    _new_source(args)  # a bad --play file fails now, not at the first call
    async with _registered_phone(args, out, rest=True) as setup:
        phone, sandbox = setup.phone, setup.sandbox
        if args.ring_from_sandbox and sandbox is None:
            raise CliError("--ring-from-sandbox needs the in-process sandbox (no --account, "
                           "no EXOTEL_* account variables)", EXIT_USAGE)
        if sandbox is not None and not args.ring_from_sandbox:
            config = sandbox.config
            out.event(f"ring this phone: curl -u {config.api_key}:{config.api_token} -d "
                      f"From=agent -d To=tone -d CallerId=0800 "
                      f"{sandbox.rest_url}/Calls/connect.json")
        number = 0
        while args.count is None or number < args.count:
            if sandbox is not None and args.ring_from_sandbox:
                try:
                    sandbox.connect("agent", args.ring_from_sandbox, "0800")
                except ValueError as exc:
                    raise CliError(f"--ring-from-sandbox: {exc}", EXIT_USAGE) from exc
            out.event("waiting for a call")
            try:
                call = await phone.next_incoming_call(timeout=args.wait)
            except TimeoutError as exc:
                raise CliError(f"no call came within {args.wait:g} s") from exc
            number += 1
            sid = f" (Exotel call {call.call_sid})" if call.call_sid else ""
            out.event(f"call {number} from {call.remote_number}{sid}: answering")
            sent = _Meter()
            source = _new_source(args)
            run = _CallRun(call, phone, args, out, sent, source)
            try:
                await call.answer(_metered_source(source, sent))
            except SipError as exc:
                out.event(f"could not answer: {_describe_error(exc)}")
                out.summary(run.summary())
                continue
            summary = await run.connected(_record_path(args, number))
            run.report_end(summary)
    return 0


# ============================================================================================
# connect
# ============================================================================================
async def _connect(args: argparse.Namespace, out: _Output) -> int:
    try:
        from . import rest
    except ImportError as exc:
        raise CliError(f"the REST client is not available: {exc}") from exc
    env = os.environ
    missing = [name for name in ("EXOTEL_ACCOUNT_SID", "EXOTEL_API_KEY", "EXOTEL_API_TOKEN")
               if not env.get(name)]
    if missing:
        raise CliError(f"{', '.join(missing)} not set (REST credentials come only from the "
                       "environment)", EXIT_USAGE)
    options: dict[str, Any] = {}
    if env.get("EXOTEL_API_URL"):
        options["base_url"] = env["EXOTEL_API_URL"]
    elif env.get("EXOTEL_API_SUBDOMAIN"):
        options["subdomain"] = env["EXOTEL_API_SUBDOMAIN"]
    try:
        client = rest.AsyncExotelClient(env["EXOTEL_ACCOUNT_SID"], env["EXOTEL_API_KEY"],
                                        env["EXOTEL_API_TOKEN"], **options)
    except ConfigurationError as exc:
        raise CliError(f"bad REST settings: {exc}", EXIT_USAGE) from exc
    async with client:
        try:
            result = await client.connect(from_=args.from_, to=args.to,
                                          caller_id=args.caller_id)
        except rest.RestError as exc:  # its text: method, path, HTTP status, Exotel's message
            raise CliError(f"click-to-call failed: {exc}") from exc
        except ConfigurationError as exc:
            hint = " (--caller-id or EXOTEL_CALLER_ID)" if "caller_id" in exc.field else ""
            raise CliError(f"{exc}{hint}", EXIT_USAGE) from exc
    out.event(f"call {result.sid}: {result.status}")
    out.summary({"sid": result.sid, "status": str(result.status)})
    return 0


# ============================================================================================
# main
# ============================================================================================
# Diagnostics
# ============================================================================================
def _ice_servers(info: dict[str, Any]) -> list[Any]:
    """The account file's ``iceServers`` (a browser's RTCIceServer list) as IceServers."""
    from .media import IceServer

    raw = info.get("iceServers", [])
    if not isinstance(raw, list):
        raise CliError("iceServers must be a list of {urls, username, credential}", EXIT_USAGE)
    servers = []
    for n, item in enumerate(raw):
        if not isinstance(item, dict) or "urls" not in item:
            raise CliError(f"iceServers[{n}] must be an object with urls", EXIT_USAGE)
        try:
            servers.append(IceServer(urls=item["urls"], username=item.get("username"),
                                     credential=item.get("credential")))
        except ConfigurationError as exc:
            raise CliError(f"iceServers[{n}]: {exc}", EXIT_USAGE) from exc
    return servers


async def _diagnose(args: argparse.Namespace, out: _Output) -> int:
    from dataclasses import replace

    from .diagnostics.network import diagnose

    if not args.timeout > 0:
        raise CliError("--timeout must be a positive number of seconds", EXIT_USAGE)
    info = None if args.sandbox else _account_info(args)
    async with contextlib.AsyncExitStack() as stack:
        if info is None:
            config = SandboxConfig(ws_port=0, wss_port=None, http_port=None,
                                   users={"agent": secrets.token_urlsafe(12)})
            sandbox = await stack.enter_async_context(Sandbox(config))
            info = sandbox.sip_account_info("agent")
            out.event("checking an in-process sandbox (it has no STUN or TURN server)")
        servers = _ice_servers(info)
        account = _account({k: v for k, v in info.items() if k != "iceServers"})
        media = _media_config(args, account)
        media = replace(media, ice=replace(media.ice, servers=servers))
        report = await diagnose(account, media=media, timeout=args.timeout,
                                register=not args.no_register)
    if args.json:
        print(report.to_json(), flush=True)
    else:
        _print_report(report, sys.stdout)
    return 0 if report.ok else EXIT_FAILED


_VERDICT_STYLES = {"ok": "green", "warning": "yellow", "failed": "bold red", "skipped": "dim"}


def _print_report(report: Any, stream: TextIO) -> None:
    """The report as a table, with ``rich`` when it is installed, else as plain text."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        stream.write(_plain_report(report))
        stream.flush()
        return
    console = Console(file=stream, highlight=False)
    console.print(f"{report.account} at {report.server}", markup=False)
    table = Table(show_lines=False)
    for column in ("check", "verdict", "value", "detail"):
        table.add_column(column, overflow="fold")
    for check in report.checks:
        verdict = check.verdict.value
        table.add_row(check.name, f"[{_VERDICT_STYLES[verdict]}]{verdict}[/]",
                      _escape(check.value), _escape(check.detail))
    console.print(table)
    for line in _report_notes(report):
        console.print(line, markup=False, soft_wrap=True)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _plain_report(report: Any) -> str:
    rows = [("check", "verdict", "value", "detail")] + [
        (c.name, c.verdict.value.upper() if c.verdict.value in ("failed", "warning")
         else c.verdict.value, c.value, c.detail) for c in report.checks]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{report.account} at {report.server}"]
    for row in rows:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3]))
                     + "  " + row[3])
    lines.extend(_report_notes(report))
    return "\n".join(lines) + "\n"


def _report_notes(report: Any) -> list[str]:
    """What to do, the candidate lines, and the verdict of the whole report."""
    lines: list[str] = []
    todo = [c for c in report.checks if c.remedy and c.verdict.value != "ok"]
    if todo:
        lines.append("What to do:")
        lines.extend(f"  {c.name}: {c.remedy}" for c in todo)
    proofs = [c for c in report.checks if c.candidate]
    if proofs:
        lines.append("Candidates:")
        lines.extend(f"  {c.name}: {c.candidate}" for c in proofs)
    failed = [c.name for c in report.failed]
    lines.append(f"{'FAILED: ' + ', '.join(failed) if failed else 'no check failed'} "
                 f"({report.duration:.2f} s)")
    return lines


# ============================================================================================
# devices
# ============================================================================================
async def _devices(args: argparse.Namespace, out: _Output) -> int:
    from .audio import AudioBackendMissing, list_devices

    try:
        found = await asyncio.to_thread(list_devices)
    except AudioBackendMissing as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    if args.json:
        print(json.dumps({
            "input": [d.to_dict() for d in found if d.input_channels],
            "output": [d.to_dict() for d in found if d.output_channels],
        }, indent=2), flush=True)
        return 0
    for kind in ("input", "output"):
        rows = [(("*" if getattr(d, f"default_{kind}") else ""), d.id, d.name, d.host_api,
                 str(d.input_channels if kind == "input" else d.output_channels))
                for d in found if getattr(d, f"{kind}_channels")]
        _print_devices(f"{kind.capitalize()} devices", rows, sys.stdout)
    return 0


def _print_devices(title: str, rows: Sequence[tuple[str, ...]], stream: TextIO) -> None:
    """One table of devices (``*``: the default), with ``rich`` when installed."""
    header = ("default", "id", "name", "host API", "channels")
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = [title] + ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip()
                           for r in [header, *rows]]
        if not rows:
            lines.append("  (none)")
        stream.write("\n".join(lines) + "\n")
        stream.flush()
        return
    table = Table(title=title, title_justify="left",
                  caption=None if rows else "(none)", caption_justify="left")
    for column in header:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console(file=stream, highlight=False).print(table)


# ============================================================================================
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    _setup_logging(args.verbose)
    commands: dict[str, Callable[[argparse.Namespace, _Output], Any]] = {
        "call": _call, "answer": _answer, "connect": _connect, "diagnose": _diagnose,
        "devices": _devices,
    }
    try:
        if args.command == "sandbox":
            _show_activity(args.verbose)
            asyncio.run(_run_sandbox(_config(args)))
            return 0
        if args.command == "demo":
            return _run_demo(args)
        return int(asyncio.run(commands[args.command](args, _Output(args.json))))
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED if args.command not in ("sandbox", "demo") else 0
    except CliError as exc:
        if args.verbose:
            traceback.print_exception(exc, file=sys.stderr)
        print(f"exotel-voice: {exc}", file=sys.stderr, flush=True)
        return exc.status
    except (SipError, OSError) as exc:
        if args.verbose:
            raise
        print(f"exotel-voice: {_describe_error(exc)}", file=sys.stderr, flush=True)
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
