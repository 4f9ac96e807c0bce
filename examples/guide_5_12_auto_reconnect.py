"""5.12 Auto Reconnect: call DoRegister() again when the registration is lost.

As in the guide: ``shouldAutoRetry`` is set when the user registers and cleared when they
unregister; any state other than "registered" triggers DoRegister() while it is set.
(The Python SDK also reconnects and re-registers by itself; the guide's pattern is
harmless on top of it.) Exits after --registrations "registered" events.
"""

from __future__ import annotations

import logging
import sys
import threading

from _common import parse

from exotel_voice import ExotelWebClient


exWebClient = ExotelWebClient()  # noqa: N816
shouldAutoRetry = False  # noqa: N816
registrations = 0
wanted = 2
enough = threading.Event()
status = "REGISTER"  # the guide's button label


def registerToggle() -> None:  # noqa: N802
    global shouldAutoRetry
    if status == "REGISTER":
        shouldAutoRetry = True
        exWebClient.DoRegister()
    else:
        shouldAutoRetry = False
        exWebClient.unregister()


def RegisterEventCallBack(state: str, sipInfo: str) -> None:  # noqa: N802, N803
    global status, registrations
    print(f"RegisterEventCallBack: {state} {sipInfo}", flush=True)
    if state == "registered":
        status = "UNREGISTER"
        registrations += 1
        if registrations >= wanted:
            enough.set()
    elif state != "sent_request":
        status = "REGISTER"
        if shouldAutoRetry:
            print("auto retry: DoRegister", flush=True)
            exWebClient.DoRegister()


def main(argv: list[str] | None = None) -> int:
    global wanted
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args, sipAccountInfo, options = parse(  # noqa: N806
        __doc__, argv, [("--registrations", {"type": int, "default": 2})])
    wanted = args.registrations
    exWebClient.initWebrtc(sipAccountInfo, RegisterEventCallBack, None, None, **options)
    registerToggle()  # the user presses REGISTER
    ok = enough.wait(args.timeout)
    registerToggle()  # the user presses UNREGISTER
    exWebClient.wait_for_unregistration(10)
    exWebClient.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
