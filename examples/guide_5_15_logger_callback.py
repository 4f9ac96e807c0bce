"""5.15 Logger Callback: ExotelWebClient.registerLoggerCallback(callback(type, message, args)).

Registers a logger callback (static, process-wide), then registers and unregisters the
phone, printing every SDK log line as "demo: ...". ``type`` is log/info/warn/error
(DEBUG/INFO/WARNING/ERROR records); messages are redacted (no password, no digest response).
Exits 0 if it registered and the callback received the SDK's log lines.

Against the sandbox (see _common.py): ``EXOTEL_SANDBOX_PASSWORD=pw exotel-voice sandbox``, then
``EXOTEL_SECRET=pw python guide_5_15_logger_callback.py``.
"""

from __future__ import annotations

import sys
from typing import Any

from _common import fail, parse

from exotel_voice import ExotelWebClient


lines = 0


def logger(type: str, message: str, args: list[Any]) -> None:  # noqa: A002 - the guide's name
    global lines
    lines += 1
    match type:
        case "log":
            print(f"[log] demo: {message}", args, flush=True)
        case "info":
            print(f"[info] demo: {message}", args, flush=True)
        case "error":
            print(f"[error] demo: {message}", args, flush=True)
        case "warn":
            print(f"[warn] demo: {message}", args, flush=True)
        case _:
            print(f"[?] demo: {message}", args, flush=True)


def main(argv: list[str] | None = None) -> int:
    args, sipAccountInfo, options = parse(__doc__, argv)  # noqa: N806
    ExotelWebClient.registerLoggerCallback(logger)
    exWebClient = ExotelWebClient()  # noqa: N806
    exWebClient.initWebrtc(sipAccountInfo, None, None, None, **options)
    exWebClient.DoRegister()
    ok = exWebClient.wait_for_registration(args.timeout)
    exWebClient.UnRegister()
    exWebClient.wait_for_unregistration(10)
    exWebClient.close()
    ExotelWebClient.registerLoggerCallback(None)
    if not ok:
        return fail("not registered")
    return 0 if lines else fail("the logger callback received nothing")


if __name__ == "__main__":
    sys.exit(main())
