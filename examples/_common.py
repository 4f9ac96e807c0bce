"""Shared by the guide examples: the guide's ``sipAccountInfo`` from the environment or CLI.

Environment variables (CLI options override them; the password comes only from the
environment, or a prompt when run in a terminal, never from the command line):

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
=====================  ===================  ==================================
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from exotel_voice.media import IceConfig, MediaConfig


def parse(description: str | None, argv: list[str] | None = None,
          extra: list[tuple[str, dict[str, Any]]] | None = None,
          ) -> tuple[argparse.Namespace, dict[str, Any], dict[str, Any]]:
    """Returns ``(args, sipAccountInfo, initWebrtc keyword arguments)``."""
    env = os.environ.get
    p = argparse.ArgumentParser(description=(description or "").split("\n")[0])
    p.add_argument("--user", default=env("EXOTEL_USERNAME"))
    p.add_argument("--auth-user", default=env("EXOTEL_AUTHUSER"))
    p.add_argument("--sipdomain", default=env("EXOTEL_SIPDOMAIN"))
    p.add_argument("--domain", default=env("EXOTEL_DOMAIN"))
    p.add_argument("--port", default=env("EXOTEL_PORT", "443"))
    p.add_argument("--security", default=env("EXOTEL_SECURITY", "wss"))
    p.add_argument("--endpoint", default=env("EXOTEL_ENDPOINT"))
    p.add_argument("--displayname", default=env("EXOTEL_DISPLAYNAME"))
    p.add_argument("--ca-file", default=env("EXOTEL_CA_FILE"))
    p.add_argument("--ice-host", action="append",
                   default=[h for h in env("EXOTEL_ICE_HOSTS", "").split(",") if h])
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
    if args.ice_host:
        options["media"] = MediaConfig(ice=IceConfig(host_addresses=args.ice_host))
    return args, info, options
