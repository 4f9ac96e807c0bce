"""5.2 Register the SIP Phones: ExotelWebClient.DoRegister().

DoRegister() returns at once; RegisterEventCallBack reports "sent_request", then
"registered" (or "terminated" on failure). Stays registered for --stay seconds, then
unregisters and exits (status 0 if registered).

Against the sandbox (see _common.py): ``EXOTEL_SANDBOX_PASSWORD=pw exotel-voice sandbox``, then
``EXOTEL_SECRET=pw python guide_5_2_register.py``.
"""

from __future__ import annotations

import logging
import sys
import threading

from _common import fail, parse

from exotel_voice import ExotelWebClient


exWebClient = ExotelWebClient()  # noqa: N816
regState = threading.Event()  # noqa: N816 - setRegState(true) in the guide
finished = threading.Event()


def RegisterEventCallBack(state: str, phone: str) -> None:  # noqa: N802
    print(f"RegisterEventCallBack: {state} {phone}", flush=True)
    if state == "registered":
        # Successful registration
        regState.set()
        finished.set()
    elif state == "unregistered":
        # Successful unregistration
        regState.clear()
    elif state == "terminated":
        # Registration/Unregistration failed
        regState.clear()
        finished.set()
    elif state == "sent_request":
        # Registration/Unregistration Request Sent
        pass


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args, sipAccountInfo, options = parse(  # noqa: N806
        __doc__, argv, [("--stay", {"type": float, "default": 0.0})])
    if not exWebClient.initWebrtc(sipAccountInfo, RegisterEventCallBack, None, None, **options):
        print(f"initWebrtc failed: {exWebClient.last_error}", flush=True)
        return 1
    # Ensure that initWebrtc is invoked before calling DoRegister.
    print(f"DoRegister: {exWebClient.DoRegister()}", flush=True)
    finished.wait(args.timeout)
    ok = regState.is_set()
    if ok and args.stay:
        finished.clear()
        finished.wait(args.stay)
    exWebClient.close()  # unregisters
    return 0 if ok else fail("not registered (see the RegisterEventCallBack lines)")


if __name__ == "__main__":
    sys.exit(main())
