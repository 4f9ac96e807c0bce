"""5.8 Hold / Resume Calls: Call.Hold(), Call.UnHold(), Call.HoldToggle().

Answers the first incoming call, presses "hold" twice (hold: re-INVITE a=sendonly; resume:
a=sendrecv), then HoldToggle() twice, then hangs up. SessionCallback reports
"holdunhold_success" (or "holdunhold_failed") for each.
"""

from __future__ import annotations

import logging
import sys
import threading

from _common import parse

from exotel_voice import ExotelWebClient


exWebClient = ExotelWebClient()  # noqa: N816
connected = threading.Event()
done = threading.Event()
callOnHold = False  # noqa: N816


def holdHandler() -> None:  # noqa: N802
    global callOnHold
    call = exWebClient.getCall()

    # call.HoldToggle(); // or
    if not callOnHold:
        call.Hold().result(10)
        callOnHold = True
    else:
        call.UnHold().result(10)
        callOnHold = False
    print(f"holdHandler: callOnHold={callOnHold}", flush=True)


def RegisterEventCallBack(state: str, phone: str) -> None:  # noqa: N802
    print(f"RegisterEventCallBack: {state} {phone}", flush=True)


def CallListenerCallback(callObj, eventType: str, phone: str) -> None:  # noqa: N802, N803, ANN001
    print(f"CallListenerCallback: {eventType} {phone}", flush=True)
    if eventType == "incoming":
        exWebClient.getCall().Answer()
    elif eventType == "connected":
        connected.set()
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
    if not connected.wait(args.timeout):
        exWebClient.close()
        return 1
    holdHandler()
    holdHandler()
    exWebClient.getCall().HoldToggle().result(10)
    print(f"HoldToggle: on hold={exWebClient.getCall().call.on_hold}", flush=True)  # type: ignore[union-attr]
    exWebClient.getCall().HoldToggle().result(10)
    print(f"callState: {exWebClient.getCall().callState}", flush=True)
    exWebClient.getCall().Hangup()
    ok = done.wait(args.timeout)
    exWebClient.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
