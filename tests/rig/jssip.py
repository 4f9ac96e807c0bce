"""A JsSIP browser phone for interop tests: JsSIP 3.13.8 in headless Chromium.

The second browser far end beside SIP.js (:mod:`tests.rig.browser`): JsSIP puts a hold in an
UPDATE when asked (``session.hold({useUpdate: true})``, RFC 3311), and runs session timers
(RFC 4028) when enabled. The page is the esbuild bundle ``tests/browser/dist/jssip-peer.js``
built from ``tests/browser/jssip-entry.js`` (``make npm``); its HTML is written into a
document of the static server that serves the SIP.js page (``http://127.0.0.1:<port>/``, a
secure context), so the same :class:`~tests.rig.browser.BrowserHost` runs both kinds of phone.

Typical use (see ``tests/interop/test_jssip_update.py``)::

    async with BrowserHost(tmp_path) as host:
        phone = await new_jssip_phone(host, "carol", tone_hz=1100)
        await phone.register(ws_url, "sip:carol@localhost", "carol", password)
        await phone.call("sip:py@localhost")
        await phone.wait_for("established")
        assert (await phone.hold_update())["ok"]

Events (``ready``, ``registered``, ``unregistered``, ``register_failed``, ``disconnected``,
``incoming``, ``progress``, ``answered``, ``established``, ``hold``, ``unhold``, ``update``,
``reinvite``, ``sdp``, ``terminated`` with ``kind``/``by``/``cause``) come through the same
binding as the SIP.js page's. Run inside the loopback-only network namespace.
"""

from __future__ import annotations

from typing import Any

from tests.rig.browser import BROWSER_DIR, BrowserHost, BrowserPeerError, BrowserPhone


BUNDLE = BROWSER_DIR / "dist" / "jssip-peer.js"
PAGE = "jssip.html"
_HTML = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<title>exotel-voice JsSIP peer</title><link rel="icon" href="data:,"></head>'
    '<body><script src="dist/jssip-peer.js"></script></body></html>'
)


def check_bundle() -> None:
    """Raise :class:`BrowserPeerError` unless ``dist/jssip-peer.js`` exists and is up to date."""
    if not BUNDLE.exists():
        raise BrowserPeerError(
            f"{BUNDLE} is missing: run `make npm` "
            "(cd tests/browser && npm install && npm run build:jssip)"
        )
    built = BUNDLE.stat().st_mtime
    for source in (BROWSER_DIR / "jssip-entry.js", BROWSER_DIR / "package.json"):
        if source.stat().st_mtime > built:
            raise BrowserPeerError(f"{BUNDLE} is older than {source.name}: run `make npm`")


class JsSipPhone(BrowserPhone):
    """One JsSIP phone in its own browser context, driven through ``window.peer``.

    Args:
        host: the started :class:`BrowserHost`.
        name: a label for logs and errors.
        tone_hz: send a pure sine of this frequency as the microphone.
        session_timers: let JsSIP ask for session timers (RFC 4028; off by default, so a
            test sees only what it is about).
        session_timers_expires: JsSIP's session interval in seconds (its
            ``sessionTimersExpires``, 60 at least; ``None``: JsSIP's default, 90).
        fake_clock: install Playwright's clock in the page before JsSIP loads: time flows
            as usual, and :meth:`advance_clock` jumps it forward, firing JsSIP's due timers
            (a session refresh, a session expiry) without waiting for them.
    """

    def __init__(
        self,
        host: BrowserHost,
        name: str,
        *,
        tone_hz: float | None = None,
        session_timers: bool = False,
        session_timers_expires: int | None = None,
        fake_clock: bool = False,
    ) -> None:
        super().__init__(host, name, tone_hz=tone_hz)
        self.session_timers = session_timers
        self.session_timers_expires = session_timers_expires
        self.fake_clock = fake_clock

    def __repr__(self) -> str:
        return f"<JsSipPhone {self.name}>"

    async def start(self) -> None:
        check_bundle()
        self._context = await self.host.browser.new_context(
            ignore_https_errors=self.host.ignore_certificate_errors
        )
        if self.fake_clock:
            await self._context.clock.install()
        page = await self._context.new_page()
        self._page = page
        if self.host.server is None:
            raise BrowserPeerError("BrowserHost is not started")
        await page.expose_binding("__peerEvent", self._on_event)
        page.on("pageerror", lambda err: self._record({"type": "pageerror", "message": str(err)}))
        page.on("console", self._on_console)
        # A document really served from 127.0.0.1 (here the static server's 404 for PAGE),
        # then the peer's HTML written into it: Chromium's local-network-access checks let a
        # page open a WebSocket to 127.0.0.1 only from a loopback origin, and a response made
        # up by Playwright's routing has no address.
        await page.goto(self.host.server.url + PAGE)
        await page.set_content(_HTML)
        await self.wait_for("ready", timeout=10)
        await self._call(
            "configure",
            {"toneHz": self.tone_hz, "sessionTimers": self.session_timers,
             "sessionTimersExpires": self.session_timers_expires},
        )
        self.host._phones.append(self)

    async def hold_update(self) -> dict[str, Any]:
        """Put the call on hold with the offer in an UPDATE (``hold({useUpdate: true})``).

        Returns:
            ``{"ok": True}`` once the UPDATE got its 2xx, or ``{"ok": False, "cause": ...}``
            if JsSIP ended the call instead (what it does when the UPDATE fails).
        """
        result: dict[str, Any] = await self._call("holdUpdate")
        return result

    async def unhold_update(self) -> dict[str, Any]:
        """Resume with the offer in an UPDATE (``unhold({useUpdate: true})``)."""
        result: dict[str, Any] = await self._call("unholdUpdate")
        return result


    async def advance_clock(self, seconds: float) -> None:
        """Jump the page's clock ``seconds`` forward (needs ``fake_clock=True``): JsSIP's
        timers that fall due meanwhile fire once, as after a laptop's lid was closed."""
        if not self.fake_clock or self._page is None:
            raise BrowserPeerError(f"{self.name}: advance_clock() needs fake_clock=True")
        await self._page.clock.fast_forward(int(seconds * 1000))

    async def take_sip_trace(self) -> list[tuple[str, str]]:
        """The SIP messages JsSIP sent (``"out"``) and received (``"in"``) since the last
        call, in order, as ``(direction, text)``."""
        trace: list[dict[str, Any]] = await self._call("takeSipTrace")
        return [(str(m["dir"]), str(m["text"])) for m in trace]


async def new_jssip_phone(
    host: BrowserHost,
    name: str,
    *,
    tone_hz: float | None = None,
    session_timers: bool = False,
    session_timers_expires: int | None = None,
    fake_clock: bool = False,
) -> JsSipPhone:
    """Create and start a JsSIP phone in a fresh browser context of ``host``."""
    phone = JsSipPhone(
        host, name, tone_hz=tone_hz, session_timers=session_timers,
        session_timers_expires=session_timers_expires, fake_clock=fake_clock,
    )
    await phone.start()
    return phone
