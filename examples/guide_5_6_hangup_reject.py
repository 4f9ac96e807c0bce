"""5.6 Hangup / Reject Calls: exWebClient.getCall().Hangup().

Registers and rejects the first incoming call while it rings (486 Busy Here); with
--answer-first it answers, waits --talk seconds, then hangs up (BYE). Either way the
callback gets "callEnded" (a local hang-up), and the example exits 0 once it came.

Against the sandbox (see _common.py): ``EXOTEL_SANDBOX_PASSWORD=pw exotel-voice sandbox``, then
``EXOTEL_SECRET=pw python guide_5_6_hangup_reject.py`` and ring it with the sandbox's
click-to-call (``curl ... -d From=agent -d To=echo ...``).
"""

from __future__ import annotations

import logging
import sys
import threading

from _common import fail, parse

from exotel_voice import ExotelWebClient


exWebClient = ExotelWebClient()  # noqa: N816
done = threading.Event()
answer_first = False
talk = 1.0


def RegisterEventCallBack(state: str, phone: str) -> None:  # noqa: N802
    print(f"RegisterEventCallBack: {state} {phone}", flush=True)


def rejectCallHandler() -> None:  # noqa: N802
    call = exWebClient.getCall()
    call.Hangup()


def CallListenerCallback(callObj, eventType: str, phone: str) -> None:  # noqa: N802, N803, ANN001
    print(f"CallListenerCallback: {eventType} {phone}", flush=True)
    if eventType == "incoming":
        if answer_first:
            exWebClient.getCall().Answer()
        else:
            rejectCallHandler()
    elif eventType == "connected":
        threading.Timer(talk, rejectCallHandler).start()
    elif eventType == "callEnded":
        # Call ended by us
        done.set()
    elif eventType == "terminated":
        # Call terminated by the far end
        done.set()


def main(argv: list[str] | None = None) -> int:
    global answer_first, talk
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args, sipAccountInfo, options = parse(__doc__, argv, [  # noqa: N806
        ("--answer-first", {"action": "store_true"}),
        ("--talk", {"type": float, "default": 1.0}),
    ])
    answer_first, talk = args.answer_first, args.talk
    exWebClient.initWebrtc(sipAccountInfo, RegisterEventCallBack, CallListenerCallback, None,
                           **options)
    exWebClient.DoRegister()
    ok = done.wait(args.timeout)
    exWebClient.close()
    return 0 if ok else fail(f"no call was ended by us within {args.timeout:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
