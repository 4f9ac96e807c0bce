"""5.3 UnRegister the SIP Phones: ExotelWebClient.UnRegister().

Registers, then unregisters. As the guide advises (Note 2), "sent_request" after the
UnRegister() already counts as unregistered, in case the registrar never answers. Exits 0
once the registrar confirmed the unregistration.

Against the sandbox (see _common.py): ``EXOTEL_SANDBOX_PASSWORD=pw exotel-voice sandbox``, then
``EXOTEL_SECRET=pw python guide_5_3_unregister.py``.
"""

from __future__ import annotations

import logging
import sys
import threading

from _common import fail, parse

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
        exWebClient.close()
        return fail("not registered")
    unregisterWait = "true"
    # Ensure that initWebrtc is invoked before calling UnRegister.
    exWebClient.UnRegister()
    unregistered.wait(args.timeout)
    # The registrar's 200 OK, not only our "sent_request", confirms it.
    confirmed = exWebClient.wait_for_unregistration(args.timeout)
    exWebClient.close()
    if not confirmed:
        return fail("the registrar did not confirm the unregistration")
    print("unregistration finished", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
