"""JsSIP holds and resumes with the offer in an UPDATE (RFC 3311), through Kamailio.

JsSIP's ``session.hold({useUpdate: true})`` sends its hold offer in an UPDATE, and ends the
call when the UPDATE fails (a 405, as this SDK once answered). Here JsSIP in Chromium calls
our Phone through Kamailio + rtpengine, holds and resumes by UPDATE; the call stays up on
both sides, our Call reports the far end's hold and resume, and the tone we send is heard at
JsSIP's end after the resume.

    scripts/in-netns.sh .venv/bin/pytest tests/interop/test_jssip_update.py -v
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from exotel_voice.client import CallState
from tests.interop.test_calls_peers import (
    PY_HZ,
    assert_browser_hears,
    close_browser_phones,
    python_phone,
    wait_call_event,
)
from tests.rig import netns_skip_reason
from tests.rig.browser import BrowserHost
from tests.rig.jssip import new_jssip_phone
from tests.rig.kamailio import Kamailio


pytestmark = [
    pytest.mark.interop,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(netns_skip_reason() is not None, reason=str(netns_skip_reason())),
    pytest.mark.timeout(60),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def host(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BrowserHost]:
    async with BrowserHost(tmp_path_factory.mktemp("browser")) as browser_host:
        yield browser_host


async def test_jssip_hold_and_resume_by_update(kamailio: Kamailio, host: BrowserHost) -> None:
    async with python_phone(kamailio, "ws") as py:
        user, password = kamailio.new_user("jssip")
        info = kamailio.info
        jssip = await new_jssip_phone(host, "jssip", tone_hz=1100.0)
        try:
            await jssip.register(info.ws_url, info.aor(user), user, password, "JsSIP")
            await jssip.call(py.aor)
            call = await py.phone.next_incoming_call(10)
            await call.answer()
            await jssip.wait_for("established")
            await assert_browser_hears(jssip, PY_HZ)

            held = await jssip.hold_update()
            assert held == {"ok": True}, f"JsSIP's hold UPDATE failed: {held}"
            await jssip.wait_for("hold", originator="local")
            event = await wait_call_event(py.recorder, call, "remote_held")
            assert getattr(event, "by", None) == "remote"
            assert call.remote_hold and call.state is CallState.CONNECTED

            resumed = await jssip.unhold_update()
            assert resumed == {"ok": True}, f"JsSIP's resume UPDATE failed: {resumed}"
            await jssip.wait_for("unhold", originator="local")
            await wait_call_event(py.recorder, call, "remote_resumed")
            assert not call.remote_hold and call.state is CallState.CONNECTED

            # Our tone reaches JsSIP again after the resume.
            tone = await jssip.received_tone(0.6)
            assert abs(tone.frequency - PY_HZ) <= 30, tone
            assert tone.level_db > -40, tone
            assert not jssip.seen("terminated"), jssip.seen("terminated")

            await jssip.hangup()
            await call.wait_ended(10)
            assert call.ended_by == "remote"
        finally:
            await close_browser_phones(jssip)
