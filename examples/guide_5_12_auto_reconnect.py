"""5.12 Auto Reconnect: call DoRegister() again when the registration is lost.

As in the guide: ``shouldAutoRetry`` is set when the user registers and cleared when they
unregister; any state other than "registered" triggers DoRegister() while it is set.
(The Python SDK also reconnects and re-registers by itself; the guide's pattern is
harmless on top of it.) Exits 0 after --registrations "registered" events, 1 if they did
not come within --timeout.

Against the sandbox (see _common.py): ``EXOTEL_SANDBOX_PASSWORD=pw exotel-voice sandbox``, then
``EXOTEL_SECRET=pw python guide_5_12_auto_reconnect.py``; stop the sandbox (Ctrl-C) and
start it again with the same password: the example registers again.
"""

from __future__ import annotations

import logging
import sys
import threading

from _common import fail, parse

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
    return 0 if ok else fail(f"fewer than {wanted} registrations within {args.timeout:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
