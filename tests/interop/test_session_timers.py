"""Session timers (RFC 4028) against a real far end: JsSIP 3.13.8 in Chromium, through
Kamailio + rtpengine.

JsSIP with ``session_timers: true`` asks for a 90 s session interval (its default; it goes
down to 60, which our ``Min-SE`` of 90, the RFC's floor, refuses with 422 and JsSIP does not
retry). In both directions JsSIP ends up the refresher:

* JsSIP calls us: its INVITE says ``Session-Expires: 90`` and ``Supported: timer``; our 200
  names the caller the refresher (``Session-Expires: 90;refresher=uac``, ``Require: timer``).
* We call JsSIP: our INVITE asks for nothing; JsSIP's 200 sets ``90;refresher=uas`` itself.

JsSIP refreshes by UPDATE without a body at half the interval (45 s) and we answer 200 with
the timer. 45 s is longer than this suite can wait, so JsSIP's page runs on Playwright's
clock and the test jumps it forward: JsSIP's refresh timer fires at once, its UPDATE really
crosses Kamailio and our 200 really comes back. What is covered: the negotiation as JsSIP
and Kamailio see it on the wire, both directions; JsSIP's refreshes (two in a row, the page's
clock passing the 90 s interval) answered 200 with the timer; the call stays connected on
both sides with our tone heard at JsSIP's end and JsSIP's heard at ours after the refreshes.

A refresher that stops refreshing: our BYE comes 60 s after the last refresh at the earliest
(90 s, the RFC's floor for Min-SE, minus a third), beyond this suite's budget too, so the last
test moves OUR SIP core's clock instead (the phone's pump, see :class:`SipClock`; media,
JsSIP and Kamailio keep real time): just short of the expiry counted from JsSIP's refresh
(and past the one counted from the answer) the call goes on; past it our BYE crosses Kamailio,
JsSIP sees the call ended by us and our Call ends with the documented reason.

What is not covered here: we are never the refresher with JsSIP (it always names itself), so
our own refreshes (UPDATE, or a re-INVITE when the far end does not allow UPDATE) are tested
on a fake clock only, in tests/sip/test_session_timers.py; and JsSIP's refreshes and
silence are made by moving clocks, not by waiting 45-60 real seconds.

    scripts/in-netns.sh .venv/bin/pytest tests/interop/test_session_timers.py -v
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from exotel_voice.client import CallState, Phone
from exotel_voice.sip import Request, Response, parse_message
from tests.interop.test_calls_peers import (
    PY_HZ,
    assert_browser_hears,
    assert_python_hears,
    close_browser_phones,
    kamailio_events,
    python_phone,
    uri_user,
)
from tests.rig import netns_skip_reason
from tests.rig.browser import BrowserHost
from tests.rig.jssip import JsSipPhone, new_jssip_phone
from tests.rig.kamailio import Kamailio


pytestmark = [
    pytest.mark.interop,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(netns_skip_reason() is not None, reason=str(netns_skip_reason())),
    pytest.mark.timeout(60),
]

JSSIP_HZ = 1100.0
#: JsSIP's default session interval (``sessionTimersExpires``), and its refresh time (half).
INTERVAL = 90
REFRESH_AT = INTERVAL / 2


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def host(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BrowserHost]:
    async with BrowserHost(tmp_path_factory.mktemp("browser")) as browser_host:
        yield browser_host


class Wire:
    """What JsSIP sent and received, parsed, accumulated across reads of its trace."""

    def __init__(self, phone: JsSipPhone) -> None:
        self.phone = phone
        self.messages: list[tuple[str, Request | Response]] = []

    async def read(self) -> None:
        for direction, text in await self.phone.take_sip_trace():
            self.messages.append((direction, parse_message(text.encode())))

    def requests(self, direction: str, method: str) -> list[Request]:
        return [m for d, m in self.messages
                if d == direction and isinstance(m, Request) and m.method == method]

    def finals(self, direction: str, method: str) -> list[Response]:
        return [m for d, m in self.messages if d == direction and isinstance(m, Response)
                and m.cseq.method == method and m.status >= 200]

    async def wait_final(self, direction: str, method: str, count: int) -> list[Response]:
        """Wait (a few seconds at most) until ``count`` 2xx responses to ``method``."""
        for _ in range(100):
            await self.read()
            found = [r for r in self.finals(direction, method) if r.status < 300]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)
        raise AssertionError(f"{self.phone.name}: {count} x 2xx to {method} ({direction}) not "
                             f"seen: {[(d, m) for d, m in self.messages]}")


def require_has_timer(message: Request | Response) -> bool:
    values = ",".join(message.headers.get_all("Require"))
    return "timer" in [v.strip() for v in values.split(",")]


async def force_refresh(jssip: JsSipPhone, wire: Wire, kamailio: Kamailio, call_id: str,
                        number: int) -> Response:
    """Jump JsSIP's clock past its refresh time: its UPDATE goes through Kamailio to us and
    our 200 comes back with the session timer (the ``number``-th refresh of this call)."""
    await jssip.advance_clock(REFRESH_AT + 1)
    ok = (await wire.wait_final("in", "UPDATE", number))[-1]
    update = wire.requests("out", "UPDATE")[number - 1]
    assert update.body == b"", "a session refresh by UPDATE has no offer"
    assert update.headers["Session-Expires"] == f"{INTERVAL};refresher=uac"
    assert ok.status == 200, f"our answer to JsSIP's refresh: {ok.status} {ok.reason}"
    assert ok.headers["Session-Expires"] == f"{INTERVAL};refresher=uac"
    # Kamailio relayed both.
    relayed = await kamailio_events(kamailio, "RPL", count=number, status="200",
                                    method="UPDATE", callid=call_id)
    assert len(relayed) >= number, relayed
    assert relayed[-1]["se"] == f"{INTERVAL};refresher=uac"
    return ok


async def test_jssip_calls_us_asks_for_timers_and_refreshes(
    kamailio: Kamailio, host: BrowserHost
) -> None:
    async with python_phone(kamailio, "ws") as py:
        user, password = kamailio.new_user("jstimer")
        info = kamailio.info
        jssip = await new_jssip_phone(host, "jssip-timers", tone_hz=JSSIP_HZ,
                                      session_timers=True, fake_clock=True)
        wire = Wire(jssip)
        try:
            await jssip.register(info.ws_url, info.aor(user), user, password, "JsSIP")
            await jssip.call(py.aor)
            call = await py.phone.next_incoming_call(10)
            await call.answer()
            await jssip.wait_for("established")
            call_id = call.call_id

            # The negotiation, as JsSIP saw it: it asked, our 200 made it the refresher.
            # (JsSIP's first INVITE got Kamailio's 407; the second, with credentials, our 200)
            ok = (await wire.wait_final("in", "INVITE", 1))[-1]
            invite = wire.requests("out", "INVITE")[-1]
            assert invite.headers["Session-Expires"] == str(INTERVAL)
            assert "timer" in invite.headers.get("Supported", "")
            assert ok.status == 200
            assert ok.headers["Session-Expires"] == f"{INTERVAL};refresher=uac"
            assert require_has_timer(ok), ok.headers.get_all("Require")
            # ... and as Kamailio relayed it.
            requests = await kamailio_events(kamailio, "REQ", method="INVITE", callid=call_id)
            assert requests and all(r["se"] == str(INTERVAL) for r in requests), requests
            (rpl,) = await kamailio_events(kamailio, "RPL", status="200", method="INVITE",
                                           callid=call_id)
            assert rpl["se"] == f"{INTERVAL};refresher=uac" and "timer" in rpl["require"]

            await assert_browser_hears(jssip, PY_HZ)
            await assert_python_hears(call, JSSIP_HZ)

            # Two refreshes: JsSIP's clock passes the 90 s interval with the call up.
            await force_refresh(jssip, wire, kamailio, call_id, 1)
            await force_refresh(jssip, wire, kamailio, call_id, 2)
            assert not jssip.seen("terminated"), jssip.seen("terminated")
            assert call.state is CallState.CONNECTED
            await assert_browser_hears(jssip, PY_HZ)
            await assert_python_hears(call, JSSIP_HZ)

            await jssip.hangup()
            await call.wait_ended(10)
            assert call.ended_by == "remote"
        finally:
            await close_browser_phones(jssip)


async def test_we_call_jssip_which_sets_the_timer_and_refreshes(
    kamailio: Kamailio, host: BrowserHost
) -> None:
    async with python_phone(kamailio, "ws") as py:
        user, password = kamailio.new_user("jstimer")
        info = kamailio.info
        jssip = await new_jssip_phone(host, "jssip-timers-callee", tone_hz=JSSIP_HZ,
                                      session_timers=True, fake_clock=True)
        wire = Wire(jssip)
        try:
            await jssip.register(info.ws_url, info.aor(user), user, password, "JsSIP")
            call = await py.phone.dial(info.aor(user))
            await jssip.wait_for("incoming")
            await jssip.answer()
            await call.wait_connected(10)
            await jssip.wait_for("established")
            call_id = call.call_id

            # Our INVITE asked for no timer; JsSIP, as the UAS, set one with itself refreshing.
            await wire.read()
            invite = wire.requests("in", "INVITE")[0]
            assert "Session-Expires" not in invite.headers
            (ok,) = [r for r in wire.finals("out", "INVITE") if r.status == 200]
            assert ok.headers["Session-Expires"] == f"{INTERVAL};refresher=uas"
            (rpl,) = await kamailio_events(kamailio, "RPL", status="200", method="INVITE",
                                           callid=call_id)
            assert rpl["se"] == f"{INTERVAL};refresher=uas"

            await assert_browser_hears(jssip, PY_HZ)

            # JsSIP refreshes (now the UAC of its UPDATE: refresher=uac) and we take it.
            await force_refresh(jssip, wire, kamailio, call_id, 1)
            await force_refresh(jssip, wire, kamailio, call_id, 2)
            assert not jssip.seen("terminated"), jssip.seen("terminated")
            assert call.state is CallState.CONNECTED
            await assert_browser_hears(jssip, PY_HZ)
            await assert_python_hears(call, JSSIP_HZ)

            await call.hangup()
            await jssip.wait_for("terminated", by="remote")
        finally:
            await close_browser_phones(jssip)


class SipClock:
    """Moves the Python phone's SIP clock ahead of the event loop's (the core's ``now``,
    given by its pump): the session timer's deadlines fall due at once. Media, JsSIP and
    Kamailio keep real time. Test plumbing: the public API has no clock to move."""

    def __init__(self, phone: Phone) -> None:
        pump = phone._io
        assert pump is not None, "the phone is not started"
        self.pump = pump
        self.loop = asyncio.get_running_loop()
        self.skew = 0.0
        pump.now = lambda: self.loop.time() + self.skew  # type: ignore[method-assign]

    def jump_to(self, when: float) -> None:
        """Set the SIP clock to loop time ``when`` and run the core's due deadlines."""
        self.skew = max(self.skew, when - self.loop.time())
        self.pump.run(self.pump.core.handle_timer)


async def test_a_refresher_that_stops_refreshing_gets_our_bye(
    kamailio: Kamailio, host: BrowserHost
) -> None:
    """JsSIP is the refresher (90 s). Its first refresh moves our expiry; after that JsSIP
    stays silent (its page's clock is not moved again, so its next refresh is 45 real
    seconds away) while our SIP clock is moved past the expiry: we send BYE at the interval
    minus min(32 s, a third) = 60 s after the last refresh (RFC 4028 §10), JsSIP sees the
    call ended by us, and our Call ends with the documented reason."""
    async with python_phone(kamailio, "ws") as py:
        user, password = kamailio.new_user("jstimer")
        info = kamailio.info
        jssip = await new_jssip_phone(host, "jssip-timers-silent", tone_hz=JSSIP_HZ,
                                      session_timers=True, fake_clock=True)
        wire = Wire(jssip)
        try:
            await jssip.register(info.ws_url, info.aor(user), user, password, "JsSIP")
            await jssip.call(py.aor)
            call = await py.phone.next_incoming_call(10)
            await call.answer()
            await jssip.wait_for("established")
            loop = asyncio.get_running_loop()
            established = loop.time()  # our expiry was armed by then, at our 200
            await wire.wait_final("in", "INVITE", 1)
            clock = SipClock(py.phone)
            await assert_browser_hears(jssip, PY_HZ)
            await asyncio.sleep(max(0.0, established + 1.5 - loop.time()))

            before = loop.time()
            await force_refresh(jssip, wire, kamailio, call.call_id, 1)
            after = loop.time()
            expiry_bye = INTERVAL - min(32, INTERVAL / 3)  # 60 s
            # Just short of the expiry counted from the refresh (but past the one counted
            # from the answer, which the refresh replaced): the call goes on.
            clock.jump_to(before + expiry_bye - 1)
            await asyncio.sleep(0.5)
            assert call.state is CallState.CONNECTED and not jssip.seen("terminated")

            # No refresh came: past the expiry, our BYE ends the call on both sides.
            clock.jump_to(after + expiry_bye + 1)
            await call.wait_ended(10)
            ended = await jssip.wait_for("terminated", timeout=10)
            assert ended["by"] == "remote", ended
            assert call.ended_by == "remote"
            assert call.end_reason == (
                f"the far end did not refresh the session within its {INTERVAL} s session "
                "timer (RFC 4028)"
            ), call.end_reason
            byes = await kamailio_events(kamailio, "REQ", method="BYE", callid=call.call_id)
            assert byes and uri_user(byes[0]["from"]) == py.user, byes
        finally:
            await close_browser_phones(jssip)
