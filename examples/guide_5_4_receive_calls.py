"""5.4 Receive Calls: CallListenerCallback(callObj, eventType, phone).

Registers and waits for a call; prints each call event with the callObj details. Does not
answer: exits when the caller gives up (or after --timeout seconds). Exits 0 once a call
came in and ended.

Against the sandbox (see _common.py): ``EXOTEL_SANDBOX_PASSWORD=pw exotel-voice sandbox``, then
``EXOTEL_SECRET=pw python guide_5_4_receive_calls.py`` and ring it with the sandbox's
click-to-call (``curl ... -d From=agent -d To=echo -d TimeOut=5 ...``): it rings 5 s.
"""

from __future__ import annotations

import logging
import sys
import threading

from _common import fail, parse

from exotel_voice import ExotelWebClient


exWebClient = ExotelWebClient()  # noqa: N816
callComing = threading.Event()  # noqa: N816
callEnded = threading.Event()  # noqa: N816


def RegisterEventCallBack(state: str, phone: str) -> None:  # noqa: N802
    print(f"RegisterEventCallBack: {state} {phone}", flush=True)


def CallListenerCallback(callObj, eventType: str, phone: str) -> None:  # noqa: N802, N803, ANN001
    print(f"CallListenerCallback: {eventType} {phone}", flush=True)
    if eventType == "incoming":
        # Incoming Call
        callComing.set()
        print(f"  callId={callObj['callId']} callState={callObj['callState']} "
              f"callDirection={callObj['callDirection']} callStartTime={callObj['callStartTime']} "
              f"remoteDisplayName={callObj['remoteDisplayName']} remoteId={callObj.remoteId} "
              f"callSid={callObj.callSid!r}", flush=True)
    elif eventType == "connected":
        # Call in connected state
        callComing.clear()
    elif eventType in ("callEnded", "terminated"):
        # Call ended (locally) / terminated (remotely)
        callComing.clear()
        callEnded.set()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args, sipAccountInfo, options = parse(__doc__, argv)  # noqa: N806
    exWebClient.initWebrtc(sipAccountInfo, RegisterEventCallBack, CallListenerCallback, None,
                           **options)
    exWebClient.DoRegister()
    ok = callEnded.wait(args.timeout)
    exWebClient.close()
    return 0 if ok else fail(f"no call came in and ended within {args.timeout:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
