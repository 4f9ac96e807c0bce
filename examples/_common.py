r"""Shared by the guide examples: ``sipAccountInfo`` from the environment or CLI, and checks.

The account's environment variables are read by ``AccountConfig.sip_account_info_from_env``
(the reading :meth:`exotel_voice.AccountConfig.from_env` does; CLI options override them).
The password comes only from the environment, or a prompt when run in a terminal, never
from the command line. Their defaults are the sandbox on this machine (``exotel-voice
sandbox``: user ``agent``, domain ``sandbox.exotel.test``, ``ws`` on 127.0.0.1:8088), where
ICE uses 127.0.0.1:

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
EXOTEL_DISPLAYNAME     --displayname        displayname (default: the user)
EXOTEL_SECRET          (prompt)             secret
EXOTEL_CA_FILE         --ca-file            caFile (Python extra)
EXOTEL_WS_URL          --ws-url             wsUrl (Python extra: the whole URL)
EXOTEL_ICE_HOSTS       --ice-host           host addresses for ICE (initWebrtc media=)
EXOTEL_EXPECT_TONE_HZ  --expect-tone-hz     the tone the far end must be heard sending
=====================  ===================  ==================================

An empty variable counts as unset. The values are not checked here: ``initWebrtc`` checks
them, as the guide shows (5.1).

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
from urllib.parse import urlsplit

import numpy as np

from exotel_voice import AccountConfig, ExotelCall, IceConfig, MediaConfig
from exotel_voice.media.analysis import dominant_frequency, rms_dbfs


#: The account's options, each overriding the ``EXOTEL_*`` variable of the same name.
ACCOUNT_OPTIONS = {
    "USERNAME": "--user", "AUTHUSER": "--auth-user", "SIPDOMAIN": "--sipdomain",
    "DOMAIN": "--domain", "PORT": "--port", "SECURITY": "--security",
    "ENDPOINT": "--endpoint", "DISPLAYNAME": "--displayname", "CA_FILE": "--ca-file",
    "WS_URL": "--ws-url",
}

#: The defaults of the account's variables: the sandbox on this machine.
SANDBOX_DEFAULTS = {
    "EXOTEL_USERNAME": "agent", "EXOTEL_SIPDOMAIN": "sandbox.exotel.test",
    "EXOTEL_DOMAIN": "127.0.0.1:8088", "EXOTEL_PORT": "8088", "EXOTEL_SECURITY": "ws",
}


def parse(description: str | None, argv: list[str] | None = None,
          extra: list[tuple[str, dict[str, Any]]] | None = None,
          ) -> tuple[argparse.Namespace, dict[str, Any], dict[str, Any]]:
    """Returns ``(args, sipAccountInfo, initWebrtc keyword arguments)``."""
    env = os.environ.get
    p = argparse.ArgumentParser(description=(description or "").split("\n")[0])
    for name, option in ACCOUNT_OPTIONS.items():
        p.add_argument(option, metavar=name, help=f"default: $EXOTEL_{name}")
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
    # One reading of the environment: the sandbox's defaults, the variables, the options.
    environ = {**SANDBOX_DEFAULTS, **{k: v for k, v in os.environ.items() if v}}
    for name, option in ACCOUNT_OPTIONS.items():
        value = getattr(args, option.removeprefix("--").replace("-", "_"))
        if value:
            environ[f"EXOTEL_{name}"] = value
    environ.setdefault("EXOTEL_DISPLAYNAME", environ["EXOTEL_USERNAME"])
    if "EXOTEL_SECRET" not in environ and sys.stdin.isatty():
        environ["EXOTEL_SECRET"] = getpass.getpass("SIP password: ")
    info: dict[str, Any] = AccountConfig.sip_account_info_from_env(environ, check=False)
    options: dict[str, Any] = {}
    ice_hosts = args.ice_host
    server = (urlsplit(info["wsUrl"]).hostname if "wsUrl" in info
              else info.get("domain", "").rsplit(":", 1)[0])
    if not ice_hosts and server in ("127.0.0.1", "localhost"):
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
