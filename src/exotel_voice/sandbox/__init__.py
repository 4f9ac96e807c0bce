"""An embedded Exotel-like server, so demos and tests need no account.

::

    async with Sandbox(SandboxConfig(ws_port=0, wss_port=0, http_port=0)) as sandbox:
        info = sandbox.sip_account_info("agent")       # the guide's sipAccountInfo
        ...                                             # register a Phone, call "echo"
        call = sandbox.connect("agent", "ivr", "08000000000")   # as POST Calls/connect

See docs/sandbox.md: SIP over ws/wss with digest auth, the test numbers ``echo``, ``tone``,
``ivr``, ``busy``, ``noanswer``, and the REST emulation of ``Calls/connect``.
"""

from __future__ import annotations

from .digest import DigestServer
from .legs import Leg, LegState
from .numbers import DTMF_FREQUENCIES, TEST_NUMBERS, EchoApp, IvrApp, ToneApp
from .server import Binding, Sandbox, SandboxCall, SandboxConfig, normalise_party


__all__ = [
    "DTMF_FREQUENCIES",
    "TEST_NUMBERS",
    "Binding",
    "DigestServer",
    "EchoApp",
    "IvrApp",
    "Leg",
    "LegState",
    "Sandbox",
    "SandboxCall",
    "SandboxConfig",
    "ToneApp",
    "normalise_party",
]
