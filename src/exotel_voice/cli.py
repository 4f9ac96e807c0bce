"""The ``exotel-voice`` command line.

::

    exotel-voice sandbox [--host H] [--ws-port N] [--wss-port N] [--http-port N]
                         [--user NAME ...] [--api-key KEY] [--tone-hz HZ] [-v]
    exotel-voice demo [--keep-running] [same listener options] [-v]

``sandbox`` runs the embedded Exotel-like server until Ctrl-C and prints how to reach it.
``demo`` runs the SDK against an in-process sandbox and prints a timeline; it exits 0 when
every check passed. Passwords never come from the command line: ``EXOTEL_SANDBOX_PASSWORD``
sets one fixed password for every user (random otherwise, and printed), and
``EXOTEL_SANDBOX_API_TOKEN`` the REST token.

This module is the only one that prints or configures logging.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys
from collections.abc import Sequence

from .sandbox import TEST_NUMBERS, Sandbox, SandboxConfig
from .sandbox.demo import DemoFailed, run_demo


__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exotel-voice", description="exotel-voice: SIP over WebSocket + WebRTC tools"
    )
    sub = parser.add_subparsers(dest="command", required=True)

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
        p.add_argument("-v", "--verbose", action="count", default=0,
                       help="more logging (-v: INFO, -vv: DEBUG)")

    sandbox = sub.add_parser("sandbox", help="run the Exotel-like sandbox server")
    listener_options(sandbox, default_ports=True)
    demo = sub.add_parser("demo", help="run the SDK against an in-process sandbox")
    listener_options(demo, default_ports=False)
    demo.add_argument("--keep-running", action="store_true",
                      help="after the demo, keep the sandbox running until Ctrl-C")
    return parser


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    _setup_logging(args.verbose)
    config = _config(args)
    try:
        if args.command == "sandbox":
            asyncio.run(_run_sandbox(config))
            return 0
        total = asyncio.run(
            run_demo(
                lambda line: print(line, flush=True),
                config=config,
                keep_running=_wait_forever if args.keep_running else None,
            )
        )
        print(f"demo finished in {total:.1f} s", flush=True)
        return 0
    except DemoFailed as exc:
        print(f"demo failed: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    except TimeoutError:
        print("demo failed: a step timed out", file=sys.stderr, flush=True)
        return 1
    except OSError as exc:
        print(f"exotel-voice: {exc}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
