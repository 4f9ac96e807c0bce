"""5.15 Logger Callback: ExotelWebClient.registerLoggerCallback(callback(type, message, args)).

Registers a logger callback (static, process-wide), then registers and unregisters the
phone, printing every SDK log line as "demo: ...". ``type`` is log/info/warn/error
(DEBUG/INFO/WARNING/ERROR records); messages are redacted (no password, no digest response).
"""

from __future__ import annotations

import sys
from typing import Any

from _common import parse

from exotel_voice import ExotelWebClient


def logger(type: str, message: str, args: list[Any]) -> None:  # noqa: A002 - the guide's name
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
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
