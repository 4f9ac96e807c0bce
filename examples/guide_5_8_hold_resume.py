"""5.8 Hold / Resume Calls: Call.Hold(), Call.UnHold(), Call.HoldToggle().

Answers the first incoming call, presses "hold" twice (hold: re-INVITE a=sendonly; resume:
a=sendrecv), then HoldToggle() twice, then hangs up. SessionCallback reports
"holdunhold_success" (or "holdunhold_failed") for each. Exits 0 if all four succeeded and
the call was on hold after the first HoldToggle().

Against the sandbox (see _common.py): ``EXOTEL_SANDBOX_PASSWORD=pw exotel-voice sandbox``, then
``EXOTEL_SECRET=pw python guide_5_8_hold_resume.py`` and ring it with the sandbox's
click-to-call (``curl ... -d From=agent -d To=echo ...``).
"""

from __future__ import annotations

import logging
import sys
import threading

from _common import fail, parse

from exotel_voice import ExotelWebClient


exWebClient = ExotelWebClient()  # noqa: N816
connected = threading.Event()
done = threading.Event()
callOnHold = False  # noqa: N816
sessionStates: list[str] = []  # noqa: N816


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
    sessionStates.append(state)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args, sipAccountInfo, options = parse(__doc__, argv)  # noqa: N806
    exWebClient.initWebrtc(sipAccountInfo, RegisterEventCallBack, CallListenerCallback,
                           SessionCallback, **options)
    exWebClient.DoRegister()
    if not connected.wait(args.timeout):
        exWebClient.close()
        return fail(f"no call was answered within {args.timeout:.0f} s")
    holdHandler()
    holdHandler()
    exWebClient.getCall().HoldToggle().result(10)
    on_hold = exWebClient.getCall().call.on_hold  # type: ignore[union-attr]
    print(f"HoldToggle: on hold={on_hold}", flush=True)
    exWebClient.getCall().HoldToggle().result(10)
    print(f"callState: {exWebClient.getCall().callState}", flush=True)
    exWebClient.getCall().Hangup()
    ok = done.wait(args.timeout)
    exWebClient.close()
    results = [s for s in sessionStates if s.startswith("holdunhold_")]
    if results != ["holdunhold_success"] * 4:
        return fail(f"SessionCallback reported {results} for hold, resume, toggle, toggle")
    if not on_hold:
        return fail("the call was not on hold after HoldToggle()")
    return 0 if ok else fail("the call did not end")


if __name__ == "__main__":
    sys.exit(main())
