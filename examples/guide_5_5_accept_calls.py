"""5.5 Accept Calls: exWebClient.getCall().Answer().

Registers, answers the first incoming call, checks that the caller's audio arrives (with
--expect-tone-hz: that it is that tone), then hangs up ("callEnded"; "terminated" if the
far end hangs up first). Exits 0 if the call connected and the audio was heard.

Against the sandbox (see _common.py): ``EXOTEL_SANDBOX_PASSWORD=pw exotel-voice sandbox``,
then ``EXOTEL_SECRET=pw python guide_5_5_accept_calls.py --expect-tone-hz 440`` and ring it
with the sandbox's click-to-call to its ``tone`` number (``curl ... -d From=agent -d To=tone
...``), which plays 440 Hz.
"""

from __future__ import annotations

import logging
import sys
import threading

from _common import fail, heard, parse

from exotel_voice import ExotelWebClient


exWebClient = ExotelWebClient()  # noqa: N816
connected = threading.Event()
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
        return fail(f"no call was answered within {args.timeout:.0f} s")
    problem = heard(exWebClient.getCall(), args.expect_tone_hz)
    if not done.is_set():
        exWebClient.getCall().Hangup()
    ended = done.wait(10)
    exWebClient.close()
    if problem:
        return fail(problem)
    return 0 if ended else fail("the call did not end")


if __name__ == "__main__":
    sys.exit(main())
