"""5.13 Check SDK Readiness: exWebClient.checkClientStatus(callback).

Prints the status before initWebrtc, after it, once registered and after UnRegister().
Exits 0 if the status said "registered" once registered.

Against the sandbox (see _common.py): ``EXOTEL_SANDBOX_PASSWORD=pw exotel-voice sandbox``, then
``EXOTEL_SECRET=pw python guide_5_13_check_readiness.py``.
"""

from __future__ import annotations

import logging
import sys

from _common import fail, parse

from exotel_voice import ExotelWebClient


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args, sipAccountInfo, options = parse(__doc__, argv)  # noqa: N806
    exWebClient = ExotelWebClient()  # noqa: N806

    def report(when: str) -> str:
        # The callback runs on the client's thread; .result() waits for it here.
        return exWebClient.checkClientStatus(
            lambda status: print(f"SDK Status {status} ({when})", flush=True)).result(5)

    report("before initWebrtc")
    exWebClient.initWebrtc(sipAccountInfo, None, None, None, **options)
    report("after initWebrtc")
    exWebClient.DoRegister()
    registered = exWebClient.wait_for_registration(args.timeout)
    status = report("after DoRegister")
    exWebClient.UnRegister()
    exWebClient.wait_for_unregistration(10)
    report("after UnRegister")
    exWebClient.close()
    if not registered:
        return fail("not registered")
    return 0 if status == "registered" else fail(f"status {status!r} once registered")


if __name__ == "__main__":
    sys.exit(main())
