"""5.1 Initialize Library: ExotelWebClient.initWebrtc(sipAccountInfo, callbacks).

Prints whether initialisation succeeded. No network activity. Exit status 0 on success,
1 on bad sipAccountInfo (the error names the field).

Against the sandbox (see _common.py): ``EXOTEL_SECRET=pw python guide_5_1_initialize.py``.
"""

from __future__ import annotations

import logging
import sys

from _common import parse

# Step 1: import the Exotel client library.
from exotel_voice import ExotelWebClient


def RegisterEventCallBack(state: str, phone: str) -> None:  # noqa: N802
    print(f"RegisterEventCallBack: {state} {phone}", flush=True)


def CallListenerCallback(callObj: object, eventType: str, phone: str) -> None:  # noqa: N802, N803
    print(f"CallListenerCallback: {eventType} {phone}", flush=True)


def SessionCallback(state: str, phone: str) -> None:  # noqa: N802
    print(f"SessionCallback: {state} {phone}", flush=True)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    _args, sipAccountInfo, options = parse(__doc__, argv)  # noqa: N806
    exWebClient = ExotelWebClient()  # noqa: N806
    # Step 2: initialise with sipAccountInfo and the three callbacks.
    ok = exWebClient.initWebrtc(sipAccountInfo, RegisterEventCallBack, CallListenerCallback,
                                SessionCallback, **options)
    print(f"initWebrtc: {ok}", flush=True)
    if not ok:
        print(f"error: {exWebClient.last_error}", flush=True)
    else:
        print(f"account: {exWebClient.account}", flush=True)  # the secret is never shown
    exWebClient.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
