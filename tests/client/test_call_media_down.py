"""A call the SDK ends because its media died is not reported as hung up by the far end.

The media watch (tests/client/test_call_liveness.py) ends a call whose packets stop, or whose
ICE never connects, with a BYE. The far end did not hang up: ``Call.ended_by`` and
``CallEnded.by`` are ``"local"`` (the guide face's CallListenerCallback says ``callEnded``,
not ``terminated``), the reason says why, and the far end sees our BYE (``"remote"`` there).
Against the sandbox, iptables inside the loopback-only namespace:
``scripts/in-netns.sh .venv/bin/python -m pytest tests/client/test_call_media_down.py``.
"""

from __future__ import annotations

import pytest

from exotel_voice import CallEnded, Phone
from exotel_voice.client.facade import guide_call_event
from exotel_voice.media.analysis import detect_tone
from exotel_voice.sandbox import Sandbox
from tests.client.test_call_liveness import (
    ENDING,
    dropped,
    media_port,
    phone,
    recorder,
    sandbox,
)
from tests.media.conftest import NEEDS_NETNS_ROOT
from tests.sandbox.conftest import listen


__all__ = ["phone", "sandbox"]  # fixtures

pytestmark = [pytest.mark.media, NEEDS_NETNS_ROOT, pytest.mark.timeout(60)]


def assert_ended_here(events: list[object], reason_start: str) -> CallEnded:
    ended = [e for e in events if isinstance(e, CallEnded)]
    assert len(ended) == 1
    assert ended[0].by == "local" and ended[0].call.ended_by == "local"
    assert ended[0].reason.startswith(reason_start), ended[0].reason
    assert guide_call_event(ended[0]) == ("callEnded", "callEnded")
    return ended[0]


@pytest.mark.parametrize("phone", [ENDING], indirect=True)
async def test_a_call_whose_media_path_died_was_ended_by_us(
    sandbox: Sandbox, phone: Phone
) -> None:
    events = recorder(phone)
    call = await phone.dial("tone")
    await call.wait_connected(10)
    leg = next(leg for leg in sandbox.legs.values() if leg.call_id == call.call_id)
    assert detect_tone(await listen(call, 0.6), 16000, 440.0)  # the media is up
    with dropped("--dport", str(media_port(call))):
        await call.wait_ended(15)
        await leg.wait_ended(5)
    assert_ended_here(events, "no audio received for")
    assert leg.ended_by == "remote"  # our BYE reached the far end


@pytest.mark.parametrize("phone", [ENDING], indirect=True)
async def test_a_call_whose_media_never_connected_was_ended_by_us(
    sandbox: Sandbox, phone: Phone
) -> None:
    events = recorder(phone)
    with dropped():  # every UDP datagram: no ICE check gets through (SIP is on TCP)
        call = await phone.dial("tone")
        await call.wait_connected(10)
        await call.wait_ended(15)
    assert_ended_here(events, "media did not connect within 2 s")
