"""5.9 Send DTMF: Call.sendDTMF(digit).

Answers the first incoming call, sends the --digits one by one (SIP INFO
application/dtmf-relay, as Exotel's SDK), then hangs up. Exits 0 if the far end accepted
every digit (200 OK to each INFO); with --confirmed, also if it sent every digit back (as
the sandbox's IVR does), received through registerDTMFCallback.

Against the sandbox (see _common.py): ``EXOTEL_SANDBOX_PASSWORD=pw exotel-voice sandbox``, then
``EXOTEL_SECRET=pw python guide_5_9_send_dtmf.py --confirmed`` and ring it with the
sandbox's click-to-call to ``ivr`` (``curl ... -d From=agent -d To=ivr ...``).
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
received: list[str] = []
_printing = threading.Lock()


def say(line: str) -> None:
    """Print one whole line: the callbacks run on the SDK's thread while the main thread
    prints too, and two bare print()s can splice their lines together."""
    with _printing:
        print(line, flush=True)


def sendDigit(digit: str) -> None:  # noqa: N802
    call = exWebClient.getCall()
    if call:
        call.sendDTMF(digit).result(5)
        say(f"sendDTMF: {digit}")


def DTMFCallback(callObj, digit: str, phone: str) -> None:  # noqa: N802, N803, ANN001
    say(f"DTMFCallback: {digit} {phone}")
    received.append(digit)


def RegisterEventCallBack(state: str, phone: str) -> None:  # noqa: N802
    say(f"RegisterEventCallBack: {state} {phone}")


def CallListenerCallback(callObj, eventType: str, phone: str) -> None:  # noqa: N802, N803, ANN001
    say(f"CallListenerCallback: {eventType} {phone}")
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
                        ("--linger", {"type": float, "default": 1.0}),
                        ("--confirmed", {"action": "store_true",
                                         "help": "check that the far end sends the digits back"})])
    exWebClient.registerDTMFCallback(DTMFCallback)
    exWebClient.initWebrtc(sipAccountInfo, RegisterEventCallBack, CallListenerCallback, None,
                           **options)
    exWebClient.DoRegister()
    if not connected.wait(args.timeout):
        exWebClient.close()
        return fail(f"no call was answered within {args.timeout:.0f} s")
    try:
        for digit in args.digits:
            sendDigit(digit)
    except Exception as exc:  # noqa: BLE001 - the example reports it
        exWebClient.close()
        return fail(f"a digit was not accepted: {exc}")
    done.wait(args.linger)  # let the far end receive (and confirm) the last digit
    exWebClient.getCall().Hangup()
    ok = done.wait(args.timeout)
    exWebClient.close()
    if args.confirmed and "".join(received) != args.digits:
        return fail(f"sent {args.digits!r}, the far end confirmed {''.join(received)!r}")
    return 0 if ok else fail("the call did not end")


if __name__ == "__main__":
    sys.exit(main())
