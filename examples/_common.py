r"""Shared by the guide examples: ``sipAccountInfo`` from the environment or CLI, and checks.

Environment variables (CLI options override them; the password comes only from the
environment, or a prompt when run in a terminal, never from the command line). Their
defaults are the sandbox on this machine (``exotel-voice sandbox``: user ``agent``, domain
``sandbox.exotel.test``, ``ws`` on 127.0.0.1:8088), where ICE uses 127.0.0.1:

=====================  ===================  ==================================
variable               option               sipAccountInfo key
=====================  ===================  ==================================
EXOTEL_USERNAME        --user               userName (and authUser by default)
EXOTEL_AUTHUSER        --auth-user          authUser
EXOTEL_SIPDOMAIN       --sipdomain          sipdomain
EXOTEL_DOMAIN          --domain             domain ("host:port")
EXOTEL_PORT            --port               port
EXOTEL_SECURITY        --security           security ("wss" / "ws")
EXOTEL_ENDPOINT        --endpoint           endpoint (URL path)
EXOTEL_DISPLAYNAME     --displayname        displayname
EXOTEL_SECRET          (prompt)             secret
EXOTEL_CA_FILE         --ca-file            caFile (Python extra)
EXOTEL_ICE_HOSTS       --ice-host           host addresses for ICE (initWebrtc media=)
EXOTEL_EXPECT_TONE_HZ  --expect-tone-hz     the tone the far end must be heard sending
=====================  ===================  ==================================

Against the sandbox, in one terminal::

    EXOTEL_SANDBOX_PASSWORD=pw exotel-voice sandbox

and in another ``EXOTEL_SECRET=pw python guide_5_X_....py``. The examples that wait for a
call are rung with the sandbox's click-to-call (its key and token are printed at start)::

    curl -u KEY:TOKEN -d From=agent -d To=tone -d CallerId=0800 \
        http://127.0.0.1:8090/v1/Accounts/sandbox/Calls/connect.json

``To=tone`` sends 440 Hz (``--expect-tone-hz 440``), ``To=echo`` sends back what it hears,
``To=ivr`` confirms every DTMF digit. An example exits 0 only when what it shows worked,
and 1 with a ``check failed:`` line otherwise.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

import numpy as np

from exotel_voice import ExotelCall, IceConfig, MediaConfig
from exotel_voice.media.analysis import dominant_frequency, rms_dbfs


def parse(description: str | None, argv: list[str] | None = None,
          extra: list[tuple[str, dict[str, Any]]] | None = None,
          ) -> tuple[argparse.Namespace, dict[str, Any], dict[str, Any]]:
    """Returns ``(args, sipAccountInfo, initWebrtc keyword arguments)``."""
    env = os.environ.get
    p = argparse.ArgumentParser(description=(description or "").split("\n")[0])
    p.add_argument("--user", default=env("EXOTEL_USERNAME", "agent"))
    p.add_argument("--auth-user", default=env("EXOTEL_AUTHUSER"))
    p.add_argument("--sipdomain", default=env("EXOTEL_SIPDOMAIN", "sandbox.exotel.test"))
    p.add_argument("--domain", default=env("EXOTEL_DOMAIN", "127.0.0.1:8088"))
    p.add_argument("--port", default=env("EXOTEL_PORT", "8088"))
    p.add_argument("--security", default=env("EXOTEL_SECURITY", "ws"))
    p.add_argument("--endpoint", default=env("EXOTEL_ENDPOINT"))
    p.add_argument("--displayname", default=env("EXOTEL_DISPLAYNAME"))
    p.add_argument("--ca-file", default=env("EXOTEL_CA_FILE"))
    p.add_argument("--ice-host", action="append",
                   default=[h for h in env("EXOTEL_ICE_HOSTS", "").split(",") if h])
    p.add_argument("--expect-tone-hz", type=float,
                   default=float(env("EXOTEL_EXPECT_TONE_HZ", "0")) or None,
                   help="check that the far end's audio is this tone (else: any audio)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="give up after this many seconds (default 60)")
    for name, kwargs in extra or []:
        p.add_argument(name, **kwargs)
    args = p.parse_args(argv)
    secret = env("EXOTEL_SECRET")
    if secret is None and sys.stdin.isatty():
        secret = getpass.getpass("SIP password: ")
    info: dict[str, Any] = {
        "userName": args.user,
        "authUser": args.auth_user or args.user,
        "sipdomain": args.sipdomain,
        "domain": args.domain,
        "displayname": args.displayname or args.user,
        "secret": secret or "",
        "port": args.port,
        "security": args.security,
    }
    if args.endpoint:
        info["endpoint"] = args.endpoint
    if args.ca_file:
        info["caFile"] = args.ca_file
    options: dict[str, Any] = {}
    ice_hosts = args.ice_host
    if not ice_hosts and args.domain.rsplit(":", 1)[0] in ("127.0.0.1", "localhost"):
        ice_hosts = ["127.0.0.1"]  # a server on this machine: media on loopback too
    if ice_hosts:
        options["media"] = MediaConfig(ice=IceConfig(host_addresses=ice_hosts))
    return args, info, options


def fail(message: str) -> int:
    """Print why the example's check failed; returns the exit status 1."""
    print(f"check failed: {message}", flush=True)
    return 1


def heard(call: ExotelCall, expect_hz: float | None, seconds: float = 1.0) -> str | None:
    """Listen to the call; ``None`` if audio (the expected tone, if given) arrived, else why not.

    Reads ``seconds`` of received audio (after 0.2 s to let the far end start) and prints
    its level and dominant frequency.
    """
    try:
        frames = call.receivedFrames(int((seconds + 0.2) * 50), timeout=seconds + 5)[10:]
    except TimeoutError:
        return "no audio arrived"
    if not frames:
        return "the call ended before any audio arrived"
    pcm = np.concatenate(frames)
    level, hz = rms_dbfs(pcm), dominant_frequency(pcm, 16000)
    print(f"heard: {hz:.0f} Hz at {level:.0f} dBFS", flush=True)
    if level < -60:
        return f"only silence arrived ({level:.0f} dBFS)"
    if expect_hz and abs(hz - expect_hz) > max(10.0, expect_hz * 0.03):
        return f"expected a {expect_hz:.0f} Hz tone, heard {hz:.0f} Hz"
    return None
