"""5.5 Accept Calls: exWebClient.getCall().Answer().

Registers, answers the first incoming call, and exits when it ends ("terminated" when the
far end hangs up, "callEnded" when we do).
"""

from __future__ import annotations

import logging
import sys
import threading

from _common import parse

from exotel_voice import ExotelWebClient


exWebClient = ExotelWebClient()  # noqa: N816
done = threading.Event()


def RegisterEventCallBack(state: str, phone: str) -> None:  # noqa: N802
    print(f"RegisterEventCallBack: {state} {phone}", flush=True)


def acceptCallHandler() -> None:  # noqa: N802
    call = exWebClient.getCall()
    call.Answer()


def CallListenerCallback(callObj, eventType: str, phone: str) -> None:  # noqa: N802, N803, ANN001
    print(f"CallListenerCallback: {eventType} {phone} {callObj.remoteId}", flush=True)
    if eventType == "incoming":
        acceptCallHandler()  # the user pressed "accept"
    elif eventType == "connected":
        print(f"  callState={callObj.callState}", flush=True)
    elif eventType in ("callEnded", "terminated"):
        done.set()


def SessionCallback(state: str, phone: str) -> None:  # noqa: N802
    print(f"SessionCallback: {state} {phone}", flush=True)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args, sipAccountInfo, options = parse(__doc__, argv)  # noqa: N806
    exWebClient.initWebrtc(sipAccountInfo, RegisterEventCallBack, CallListenerCallback,
                           SessionCallback, **options)
    exWebClient.DoRegister()
    ok = done.wait(args.timeout)
    exWebClient.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
