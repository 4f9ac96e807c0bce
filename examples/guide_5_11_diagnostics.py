"""5.11 Device and Network Diagnostics: initDiagnostics, startNetworkDiagnostics.

Registers (the network test reads the background registration, as the guide says), starts
a diagnostics session with its two callbacks, runs the network test and prints every
``diagnosticsKeyValueCallback(key, status, description)`` as it comes: ``wss``,
``userReg``, ``udp``, ``tcp``, ``host``, ``srflx`` and, beyond the guide, ``relay`` and
``rtt``. ``--report FILE`` saves the troubleshooting log (``diagnosticsReportCallback``).
Exits 0 when the WebSocket connected, the user is registered and no check failed.

STUN/TURN servers (none by default, so udp/tcp/srflx/relay say ``disconnected``):
``--ice-server URL`` (repeatable, or ``EXOTEL_ICE_SERVERS``, comma-separated), with
``EXOTEL_TURN_USERNAME`` and ``EXOTEL_TURN_PASSWORD`` for the ``turn:`` ones (the password
only from the environment).

Against the sandbox (see _common.py): ``EXOTEL_SANDBOX_PASSWORD=pw exotel-voice sandbox``, then
``EXOTEL_SECRET=pw python guide_5_11_diagnostics.py``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

from _common import fail, parse

from exotel_voice import ExotelWebClient, IceConfig, IceServer, MediaConfig


def ice_options(args: Any, options: dict[str, Any]) -> None:
    """Add the --ice-server URLs to initWebrtc's media= option."""
    urls = args.ice_server or [u for u in os.environ.get("EXOTEL_ICE_SERVERS", "").split(",") if u]
    if not urls:
        return
    user, password = os.environ.get("EXOTEL_TURN_USERNAME"), os.environ.get("EXOTEL_TURN_PASSWORD")
    servers = [IceServer(urls=url, username=user, credential=password) if url.startswith("turn")
               else IceServer(urls=url) for url in urls]
    base = options.get("media") or MediaConfig()
    options["media"] = MediaConfig(ice=IceConfig(host_addresses=base.ice.host_addresses,
                                                 servers=servers))


def network_part(exWebClient: ExotelWebClient, results: dict[str, tuple[Any, str]],  # noqa: N803
                 timeout: float) -> str | None:
    """startNetworkDiagnostics; ``None`` when it passed, else why not."""
    report = exWebClient.startNetworkDiagnostics().result(timeout)
    exWebClient.stopNetworkDiagnostics()
    if results.get("wss", ("",))[0] != "connected":
        return f"wss: {results.get('wss')}"
    if results.get("userReg", ("",))[0] != "registered":
        return f"userReg: {results.get('userReg')}"
    if not report.ok:
        return "failed: " + "; ".join(f"{c.name}: {c.detail} -> {c.remedy}" for c in report.failed)
    return None


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args, sipAccountInfo, options = parse(__doc__, argv, extra=[  # noqa: N806
        ("--ice-server", {"action": "append", "metavar": "URL",
                          "help": "a stun:/turn: URL (repeatable)"}),
        ("--report", {"type": Path, "metavar": "FILE",
                      "help": "save the troubleshooting log here"}),
    ])
    ice_options(args, options)
    exWebClient = ExotelWebClient()  # noqa: N806
    results: dict[str, tuple[Any, str]] = {}
    log = {"text": ""}
    lock = threading.Lock()

    def diagnosticsReportCallback(logStatus: str, logData: str) -> None:  # noqa: N802, N803
        with lock:
            log["text"] = logData  # the whole troubleshooting log so far

    def diagnosticsKeyValueCallback(key: str, status: Any, description: str) -> None:  # noqa: N802
        print(f"diagnostics {key} {status} {description}", flush=True)
        with lock:
            results[key] = (status, description)

    exWebClient.initWebrtc(sipAccountInfo, None, None, None, **options)
    exWebClient.DoRegister()
    if not exWebClient.wait_for_registration(args.timeout):
        exWebClient.close()
        return fail("not registered")
    exWebClient.initDiagnostics(diagnosticsReportCallback, diagnosticsKeyValueCallback)
    try:
        problem = network_part(exWebClient, results, args.timeout)
    finally:
        exWebClient.UnRegister()
        exWebClient.wait_for_unregistration(10)
        exWebClient.close()
    if args.report is not None:
        with lock:
            args.report.write_text(log["text"], encoding="utf-8")
        print(f"troubleshooting log saved to {args.report}", flush=True)
    return fail(problem) if problem else 0


if __name__ == "__main__":
    sys.exit(main())
