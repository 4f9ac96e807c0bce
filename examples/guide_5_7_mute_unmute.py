"""5.7 Mute / Unmute Calls: Call.Mute(), Call.UnMute(), Call.MuteToggle().

Answers the first incoming call, presses "mute" twice (mute, unmute), then uses MuteToggle()
twice, then hangs up. The call stays "connected" throughout; mute is local (no SIP).
SessionCallback reports "muted" / "unmuted". Exits 0 if each press was reported, the call
stayed connected, and (with --expect-tone-hz: the given tone) audio was heard before.

Against the sandbox (see _common.py): ``EXOTEL_SANDBOX_PASSWORD=pw exotel-voice sandbox``, then
``EXOTEL_SECRET=pw python guide_5_7_mute_unmute.py --expect-tone-hz 440`` and ring it with
the sandbox's click-to-call to ``tone`` (``curl ... -d From=agent -d To=tone ...``).
"""

from __future__ import annotations

import logging
import sys
import threading
import time

from _common import fail, heard, parse

from exotel_voice import ExotelWebClient


exWebClient = ExotelWebClient()  # noqa: N816
connected = threading.Event()
done = threading.Event()
callOnMute = False  # noqa: N816
sessionStates: list[str] = []  # noqa: N816


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
    problem = heard(exWebClient.getCall(), args.expect_tone_hz)
    # The user presses the buttons (from the main thread, not from a callback).
    muteHandler()
    time.sleep(0.3)
    muteHandler()
    exWebClient.getCall().MuteToggle().result(5)
    exWebClient.getCall().MuteToggle().result(5)
    state = exWebClient.getCall().callState
    print(f"callState: {state}", flush=True)
    exWebClient.getCall().Hangup()
    ok = done.wait(args.timeout)
    exWebClient.close()
    presses = [s for s in sessionStates if s in ("muted", "unmuted")]
    if presses != ["muted", "unmuted"] * 2:
        return fail(f"SessionCallback reported {presses} for mute, unmute, toggle, toggle")
    if state != "connected":
        return fail(f"the call was {state} after muting, not connected")
    if problem:
        return fail(problem)
    return 0 if ok else fail("the call did not end")


if __name__ == "__main__":
    sys.exit(main())
