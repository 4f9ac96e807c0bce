"""5.7 Mute / Unmute Calls: Call.Mute(), Call.UnMute(), Call.MuteToggle().

Answers the first incoming call, presses "mute" twice (mute, unmute), then uses MuteToggle()
twice, then hangs up. The call stays "connected" throughout; mute is local (no SIP).
SessionCallback reports "muted" / "unmuted".
"""

from __future__ import annotations

import logging
import sys
import threading
import time

from _common import parse

from exotel_voice import ExotelWebClient


exWebClient = ExotelWebClient()  # noqa: N816
connected = threading.Event()
done = threading.Event()
callOnMute = False  # noqa: N816


def muteHandler() -> None:  # noqa: N802
    global callOnMute
    call = exWebClient.getCall()

    # call.MuteToggle(); // or
    if not callOnMute:
        call.Mute().result(5)
        callOnMute = True
    else:
        call.UnMute().result(5)
        callOnMute = False
    print(f"muteHandler: callOnMute={callOnMute}", flush=True)


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
    # The user presses the buttons (from the main thread, not from a callback).
    muteHandler()
    time.sleep(0.3)
    muteHandler()
    exWebClient.getCall().MuteToggle().result(5)
    exWebClient.getCall().MuteToggle().result(5)
    print(f"callState: {exWebClient.getCall().callState}", flush=True)
    exWebClient.getCall().Hangup()
    ok = done.wait(args.timeout)
    exWebClient.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
