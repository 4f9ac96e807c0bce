"""5.3 UnRegister the SIP Phones: ExotelWebClient.UnRegister().

Registers, then unregisters. As the guide advises (Note 2), "sent_request" after the
UnRegister() already counts as unregistered, in case the registrar never answers.
"""

from __future__ import annotations

import logging
import sys
import threading

from _common import parse

from exotel_voice import ExotelWebClient


exWebClient = ExotelWebClient()  # noqa: N816
unregisterWait = "false"  # noqa: N816
registered = threading.Event()
unregistered = threading.Event()


def setRegState(value: bool) -> None:  # noqa: N802
    if value:
        registered.set()
    else:
        unregistered.set()


def RegisterEventCallBack(state: str, phone: str) -> None:  # noqa: N802
    global unregisterWait
    print(f"RegisterEventCallBack: {state} {phone}", flush=True)
    if state == "registered":
        setRegState(True)
    elif state == "unregistered":
        setRegState(False)
    elif state == "terminated":
        setRegState(False)
    elif state == "sent_request":
        if unregisterWait == "true":
            unregisterWait = "false"
            setRegState(False)


def main(argv: list[str] | None = None) -> int:
    global unregisterWait
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args, sipAccountInfo, options = parse(__doc__, argv)  # noqa: N806
    exWebClient.initWebrtc(sipAccountInfo, RegisterEventCallBack, None, None, **options)
    exWebClient.DoRegister()
    if not registered.wait(args.timeout):
        print("not registered", flush=True)
        exWebClient.close()
        return 1
    unregisterWait = "true"
    # Ensure that initWebrtc is invoked before calling UnRegister.
    exWebClient.UnRegister()
    unregistered.wait(args.timeout)
    exWebClient.wait_for_unregistration(args.timeout)  # let the 200 OK arrive before exit
    print("unregistration finished", flush=True)
    exWebClient.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
