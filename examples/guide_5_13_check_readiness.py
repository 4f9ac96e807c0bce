"""5.13 Check SDK Readiness: exWebClient.checkClientStatus(callback).

Prints the status before initWebrtc, after it, while registering and once registered.
"""

from __future__ import annotations

import logging
import sys

from _common import parse

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
    return 0 if registered and status == "registered" else 1


if __name__ == "__main__":
    sys.exit(main())
