"""5.11 Device and Network Diagnostics: initDiagnostics, the speaker, mic and network tests.

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

``--devices`` first runs the device tests: initDiagnostics has already reported
``browserVersion`` (here the SDK, Python and platform versions), ``micInfo`` and
``speakerInfo``; startSpeakerDiagnosticsTest() plays the ringtone on the selected output
for ``--speaker-seconds`` (its level under ``speaker``), stopSpeakerDiagnosticsTest(answer);
startMicDiagnosticsTest() reports the selected input's live level under ``mic`` for
``--mic-seconds``, stopMicDiagnosticsTest(answer). The answer ("yes"/"no": did you hear
it, did the meter follow your voice) is ``--answer``, or asked in a terminal with
``--ask``; without either the tests are only stopped. They pass when levels were reported
("speaker ok", "mic ok"), and fail on "speaker error"/"mic error" (no device, or no
``pip install 'exotel-voice[audio]'``). ``--devices-only`` skips the registration and the
network test (no account needed): ``python guide_5_11_diagnostics.py --devices-only --ask``.

Against the sandbox (see _common.py): ``EXOTEL_SANDBOX_PASSWORD=pw exotel-voice sandbox``, then
``EXOTEL_SECRET=pw python guide_5_11_diagnostics.py``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
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


def device_part(exWebClient: ExotelWebClient, results: dict[str, tuple[Any, str]],  # noqa: N803
                args: Any) -> str | None:
    """The speaker and mic tests; ``None`` when both reported levels, else why not."""

    def answer(what: str) -> str | None:
        if args.answer:
            return str(args.answer)
        if args.ask and sys.stdin.isatty():
            return input(f"Did the {what} test work? (yes/no) ").strip().lower() or None
        return None

    print("startSpeakerDiagnosticsTest: listen for the ringtone", flush=True)
    exWebClient.startSpeakerDiagnosticsTest().result(args.timeout)
    time.sleep(args.speaker_seconds)
    exWebClient.stopSpeakerDiagnosticsTest(answer("speaker")).result(args.timeout)
    print("startMicDiagnosticsTest: speak into the microphone", flush=True)
    exWebClient.startMicDiagnosticsTest().result(args.timeout)
    time.sleep(args.mic_seconds)
    exWebClient.stopMicDiagnosticsTest(answer("mic")).result(args.timeout)
    for key in ("speaker", "mic"):
        status, description = results.get(key, (None, f"no {key} level was reported"))
        if description != f"{key} ok":
            return f"{key}: {description}"
    return None


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args, sipAccountInfo, options = parse(__doc__, argv, extra=[  # noqa: N806
        ("--ice-server", {"action": "append", "metavar": "URL",
                          "help": "a stun:/turn: URL (repeatable)"}),
        ("--report", {"type": Path, "metavar": "FILE",
                      "help": "save the troubleshooting log here"}),
        ("--devices", {"action": "store_true", "help": "run the speaker and mic tests too"}),
        ("--devices-only", {"action": "store_true",
                            "help": "only the speaker and mic tests (no registration)"}),
        ("--speaker-seconds", {"type": float, "default": 2.0}),
        ("--mic-seconds", {"type": float, "default": 2.0}),
        ("--answer", {"choices": ["yes", "no"], "default": None,
                      "help": "the verdict given to stop...DiagnosticsTest"}),
        ("--ask", {"action": "store_true", "help": "ask for the verdict in the terminal"}),
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
    if args.devices_only:
        exWebClient.initDiagnostics(diagnosticsReportCallback, diagnosticsKeyValueCallback)
        try:
            problem = device_part(exWebClient, results, args)
        finally:
            exWebClient.close()
        with lock:
            print("troubleshooting log:\n" + log["text"], flush=True)
        return fail(problem) if problem else 0
    exWebClient.DoRegister()
    if not exWebClient.wait_for_registration(args.timeout):
        exWebClient.close()
        return fail("not registered")
    exWebClient.initDiagnostics(diagnosticsReportCallback, diagnosticsKeyValueCallback)
    try:
        problem = device_part(exWebClient, results, args) if args.devices else None
        problem = network_part(exWebClient, results, args.timeout) or problem
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
