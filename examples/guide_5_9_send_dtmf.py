"""5.9 Send DTMF: Call.sendDTMF(digit).

Answers the first incoming call, sends the --digits one by one (SIP INFO
application/dtmf-relay, as Exotel's SDK), then hangs up.
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


def sendDigit(digit: str) -> None:  # noqa: N802
    call = exWebClient.getCall()
    if call:
        call.sendDTMF(digit).result(5)
        print(f"sendDTMF: {digit}", flush=True)


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


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args, sipAccountInfo, options = parse(  # noqa: N806
        __doc__, argv, [("--digits", {"default": "1234#"}),
                        ("--linger", {"type": float, "default": 1.0})])
    exWebClient.initWebrtc(sipAccountInfo, RegisterEventCallBack, CallListenerCallback, None,
                           **options)
    exWebClient.DoRegister()
    if not connected.wait(args.timeout):
        exWebClient.close()
        return 1
    for digit in args.digits:
        sendDigit(digit)
    done.wait(args.linger)  # let the far end receive the last digit
    exWebClient.getCall().Hangup()
    ok = done.wait(args.timeout)
    exWebClient.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
