"""A real browser SIP phone for interop tests: SIP.js 0.21.2 in headless Chromium.

The page (``tests/browser/index.html`` + the esbuild bundle ``tests/browser/dist/peer.js``
built from ``tests/browser/entry.js``) exposes ``window.peer``; this module serves it from
``http://127.0.0.1:<port>/`` (a secure context, so ``getUserMedia``/WebRTC work) and drives it
with Playwright's async API.

Typical use (see ``tests/interop/test_browser_rig.py``)::

    async with BrowserHost(tmp_path) as host:          # one Chromium + one static server
        alice = await host.new_phone("alice", tone_hz=1000)
        bob = await host.new_phone("bob", tone_hz=600)
        await alice.register(ws_url, "sip:alice@localhost", "alice", password)
        await bob.register(ws_url, "sip:bob@localhost", "bob", password)
        await alice.call("sip:bob@localhost", extra_headers={"X-Exotel-Callsid": "abc"})
        incoming = await bob.wait_for("incoming")
        await bob.answer()
        await alice.wait_for("established")
        tone = await bob.received_tone()                 # ~1000 Hz
        await alice.hangup()
        await bob.wait_for("terminated", by="remote")

Each phone is its own browser context (separate storage, separate audio graph); the browser is
launched once by :class:`BrowserHost` and shared.  Everything must run inside the loopback-only
network namespace (``scripts/in-netns.sh``): Chromium's WebRTC would otherwise gather and probe
every interface.

Events: every event the page records (``ready``, ``registered``, ``unregistered``,
``register_failed``, ``incoming``, ``trying``, ``ringing``, ``progress``, ``answered``,
``rejected``, ``cancelled``, ``busy``, ``established``, ``terminated``, ``info``, ``info_sent``,
``reinvite``, ``hold``, ``local_hold``, ``dtmf_rtp_tone``, ``dtmf_rtp_sent``, ``disconnected``,
``log``) is pushed to Python through a Playwright binding as soon as it happens; see
``docs/browser-peer.md`` for their fields.  Page errors and console errors are recorded as
``pageerror`` / ``console`` events.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    async_playwright,
)


BROWSER_DIR = Path(__file__).resolve().parents[1] / "browser"
BUNDLE = BROWSER_DIR / "dist" / "peer.js"
CHROMIUM = "/usr/bin/chromium"

#: The Chromium flags, exactly (plus a fresh ``--user-data-dir`` and Playwright's
#: ``--remote-debugging-pipe``; ``--ignore-certificate-errors`` is added for WSS with the test CA).
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
)

#: Longest $TMPDIR that leaves room for Chromium's ``org.chromium.Chromium.XXXXXX/SingletonSocket``
#: within the 108-byte Unix socket path limit.
_MAX_TMPDIR_LEN = 60

#: How long one page.evaluate may take before the driver gives up (the page is then hung).
EVALUATE_TIMEOUT = 15.0


class BrowserPeerError(RuntimeError):
    """The browser peer could not be started or a page call failed."""


def check_bundle() -> None:
    """Raise :class:`BrowserPeerError` unless ``dist/peer.js`` exists and is up to date.

    ``make npm`` (or ``cd tests/browser && npm install && npm run build``) builds it.
    """
    if not BUNDLE.exists():
        raise BrowserPeerError(
            f"{BUNDLE} is missing: run `make npm` "
            "(cd tests/browser && npm install && npm run build)"
        )
    built = BUNDLE.stat().st_mtime
    for source in (BROWSER_DIR / "entry.js", BROWSER_DIR / "package.json"):
        if source.stat().st_mtime > built:
            raise BrowserPeerError(f"{BUNDLE} is older than {source.name}: run `make npm`")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class StaticServer:
    """Serves ``tests/browser/`` on ``http://127.0.0.1:<free port>/`` from a daemon thread."""

    def __init__(self, root: Path = BROWSER_DIR) -> None:
        handler = functools.partial(_QuietHandler, directory=str(root))
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="browser-peer-http", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def _environ(overrides: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class BrowserHost:
    """One headless Chromium (driven by Playwright) and the static server for the peer page.

    Args:
        work_dir: A test temp folder.  Chromium's profile, HOME, XDG_* and TMPDIR go under it.
        ignore_certificate_errors: Add ``--ignore-certificate-errors`` so ``wss://`` to a server
            with the test CA works (browser only; the SDK must trust the CA instead).
        fake_audio_wav: Optional WAV for ``--use-file-for-fake-audio-capture`` (browser-wide:
            every phone without ``tone_hz`` then sends this file).
        allow_loopback: Keep ``--allow-loopback-in-peer-connection`` (default).  Without it
            WebRTC gathers only the namespace's other interfaces (e.g. a veth address a
            test owns), so a test can take the media address away.
        extra_flags: More Chromium flags, appended as given.
    """

    def __init__(
        self,
        work_dir: Path,
        *,
        ignore_certificate_errors: bool = True,
        fake_audio_wav: Path | None = None,
        allow_loopback: bool = True,
        extra_flags: tuple[str, ...] = (),
    ) -> None:
        self.work_dir = Path(work_dir)
        self.allow_loopback = allow_loopback
        self.extra_flags = tuple(extra_flags)
        self.ignore_certificate_errors = ignore_certificate_errors
        self.fake_audio_wav = fake_audio_wav
        self.server: StaticServer | None = None
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._phones: list[BrowserPhone] = []
        self._own_tmpdir: Path | None = None
        #: Seconds taken by :meth:`start` (Chromium launch through Playwright + server).
        self.launch_seconds: float | None = None

    @property
    def browser(self) -> Browser:
        if self._browser is None:
            raise BrowserPeerError("BrowserHost is not started")
        return self._browser

    @property
    def page_url(self) -> str:
        if self.server is None:
            raise BrowserPeerError("BrowserHost is not started")
        return self.server.url + "index.html"

    def flags(self) -> list[str]:
        """The exact Chromium command-line flags this host launches with."""
        profile = self.work_dir / "chromium-profile"
        base = [
            f
            for f in CHROMIUM_FLAGS
            if self.allow_loopback or f != "--allow-loopback-in-peer-connection"
        ]
        args = [*base, *self.extra_flags, f"--user-data-dir={profile}"]
        if self.ignore_certificate_errors:
            args.append("--ignore-certificate-errors")
        if self.fake_audio_wav is not None:
            args.append(f"--use-file-for-fake-audio-capture={self.fake_audio_wav}")
        # Playwright talks CDP over a pipe; with ignore_default_args=True we must ask for it.
        args += ["--remote-debugging-pipe", "--no-startup-window"]
        return args

    def environment(self) -> dict[str, str]:
        """HOME, XDG_* and TMPDIR inside the work folder (Chromium writes to $HOME regardless)."""
        dirs = {
            "HOME": "home",
            "XDG_CONFIG_HOME": "home/.config",
            "XDG_CACHE_HOME": "home/.cache",
            "XDG_DATA_HOME": "home/.local/share",
            "XDG_STATE_HOME": "home/.local/state",
            "XDG_RUNTIME_DIR": "run",
        }
        env: dict[str, str] = {}
        for key, rel in dirs.items():
            path = self.work_dir / rel
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            env[key] = str(path)
        env["TMPDIR"] = str(self._short_tmpdir())
        return env

    def _short_tmpdir(self) -> Path:
        # Chromium puts its SingletonSocket under $TMPDIR/org.chromium.Chromium.XXXXXX/ and
        # aborts ("Socket path too long") past the 108-byte sun_path limit, which a pytest
        # tmp_path easily reaches.  Then use a short private folder, removed by close(), and
        # leave a symlink to it in the work folder.
        wanted = self.work_dir / "tmp"
        if len(str(wanted)) <= _MAX_TMPDIR_LEN:
            wanted.mkdir(parents=True, exist_ok=True, mode=0o700)
            return wanted
        if self._own_tmpdir is None:
            self._own_tmpdir = Path(tempfile.mkdtemp(prefix="exv-chromium-"))
            link = self.work_dir / "tmp-short"
            with contextlib.suppress(OSError):
                link.unlink(missing_ok=True)
                link.symlink_to(self._own_tmpdir, target_is_directory=True)
        return self._own_tmpdir

    async def start(self) -> None:
        check_bundle()
        if not Path(CHROMIUM).exists():
            raise BrowserPeerError(f"{CHROMIUM} is not installed")
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        env = self.environment()
        self.server = StaticServer()
        self.server.start()
        # The Playwright driver (node) inherits os.environ when it starts: keep its temp files
        # in the work folder too.
        with _environ({"TMPDIR": env["TMPDIR"]}):
            self._playwright = await async_playwright().start()
        browser_env: dict[str, str | float | bool] = {
            k: v for k, v in os.environ.items() if not k.startswith("PLAYWRIGHT_")
        }
        browser_env.update(env)
        self._browser = await self._playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            ignore_default_args=True,
            args=self.flags(),
            env=browser_env,
            timeout=30_000,
        )
        self.launch_seconds = loop.time() - started

    async def close(self) -> None:
        for phone in list(self._phones):
            with contextlib.suppress(Exception):
                await phone.close()
        if self._browser is not None:
            with contextlib.suppress(Exception):
                await self._browser.close()
            self._browser = None
        if self._playwright is not None:
            with contextlib.suppress(Exception):
                await self._playwright.stop()
            self._playwright = None
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self._own_tmpdir is not None:
            shutil.rmtree(self._own_tmpdir, ignore_errors=True)
            self._own_tmpdir = None

    async def __aenter__(self) -> BrowserHost:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def new_phone(self, name: str, *, tone_hz: float | None = None) -> BrowserPhone:
        """Create and start a phone in a fresh browser context."""
        phone = BrowserPhone(self, name, tone_hz=tone_hz)
        await phone.start()
        return phone


@dataclass(frozen=True)
class Tone:
    """What the page heard on the remote audio track (WebAudio AnalyserNode, 48 kHz, FFT 8192)."""

    frequency: float  # dominant frequency in Hz (interpolated between FFT bins)
    level_db: float  # RMS level of the time signal in dBFS
    rms: float
    peak: float
    purity: float  # share of spectral power within +-2 bins of the peak (~1 for a pure sine)
    frames: int


class BrowserPhone:
    """One SIP.js phone in its own browser context, driven through ``window.peer``.

    Args:
        host: The started :class:`BrowserHost` that owns the browser.
        name: A label for logs and error messages.
        tone_hz: Send a pure sine of this frequency (OscillatorNode) as the microphone.
            ``None`` uses Chromium's fake capture device (its beep, or the host's WAV).
    """

    def __init__(self, host: BrowserHost, name: str, *, tone_hz: float | None = None) -> None:
        self.host = host
        self.name = name
        self.tone_hz = tone_hz
        self.events: list[dict[str, Any]] = []
        self._consumed: set[int] = set()
        self._changed = asyncio.Event()
        self._context: BrowserContext | None = None
        self._page: Page | None = None

    def __repr__(self) -> str:
        return f"<BrowserPhone {self.name}>"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._context = await self.host.browser.new_context(
            ignore_https_errors=self.host.ignore_certificate_errors
        )
        page = await self._context.new_page()
        self._page = page
        await page.expose_binding("__peerEvent", self._on_event)
        page.on("pageerror", lambda err: self._record({"type": "pageerror", "message": str(err)}))
        page.on("console", self._on_console)
        await page.goto(self.host.page_url)
        await self.wait_for("ready", timeout=10)
        await self._call("configure", {"toneHz": self.tone_hz})
        self.host._phones.append(self)

    async def close(self) -> None:
        if self in self.host._phones:
            self.host._phones.remove(self)
        if self._page is not None and not self._page.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._page.evaluate("() => window.peer.stop()"), 5)
        if self._context is not None:
            with contextlib.suppress(Exception):
                await self._context.close()
        self._context = None
        self._page = None

    async def __aenter__(self) -> BrowserPhone:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- events ------------------------------------------------------------------------------

    def _record(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self._changed.set()

    def _on_event(self, source: object, event: dict[str, Any]) -> None:
        self._record(event)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self._record({"type": "console", "level": message.type, "text": message.text})

    def _find(self, name: str, match: Mapping[str, Any]) -> dict[str, Any] | None:
        for index, event in enumerate(self.events):
            if index in self._consumed or event.get("type") != name:
                continue
            if all(event.get(key) == value for key, value in match.items()):
                self._consumed.add(index)
                return event
        return None

    async def wait_for(self, name: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """Return the first not-yet-returned event ``name`` whose fields equal ``match``.

        Each event is handed out once, so ``wait_for("info")`` twice returns two INFOs.

        Raises:
            TimeoutError: with the phone's recent events, if none arrives within ``timeout``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = self._find(name, match)
            if found is not None:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                recent = [e.get("type") for e in self.events[-15:]]
                raise TimeoutError(
                    f"{self.name}: no {name!r} event matching {match!r} within {timeout}s; "
                    f"recent events: {recent}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def seen(self, name: str, **match: Any) -> list[dict[str, Any]]:
        """All events ``name`` recorded so far that match (consumed or not)."""
        return [
            e
            for e in self.events
            if e.get("type") == name and all(e.get(k) == v for k, v in match.items())
        ]

    # -- page calls --------------------------------------------------------------------------

    async def _call(self, method: str, *args: Any, timeout: float = EVALUATE_TIMEOUT) -> Any:
        if self._page is None:
            raise BrowserPeerError(f"{self.name}: phone is not started")
        script = f"(args) => window.peer.{method}(...args)"
        try:
            return await asyncio.wait_for(self._page.evaluate(script, list(args)), timeout)
        except TimeoutError:
            raise BrowserPeerError(f"{self.name}: peer.{method}() took over {timeout}s") from None
        except Exception as exc:  # playwright.Error: the page threw
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise BrowserPeerError(f"{self.name}: peer.{method}() failed: {message}") from None

    async def register(
        self,
        ws_url: str,
        aor: str,
        auth_user: str,
        password: str,
        display_name: str | None = None,
        *,
        wait: bool = True,
        timeout: float = 10.0,
    ) -> dict[str, Any] | None:
        """Start the UserAgent over ``ws_url`` and REGISTER ``aor``.

        With ``wait`` (default), return the ``registered`` event, or raise
        :class:`BrowserPeerError` on ``register_failed``.  The password is handed to the page
        only; it is never logged or kept here.
        """
        await self._call("register", ws_url, aor, auth_user, password, display_name or "")
        if not wait:
            return None
        return await self._wait_either("registered", "register_failed", timeout)

    async def _wait_either(self, good: str, bad: str, timeout: float) -> dict[str, Any]:
        done, pending = await asyncio.wait(
            [
                asyncio.ensure_future(self.wait_for(good, timeout)),
                asyncio.ensure_future(self.wait_for(bad, timeout)),
            ],
            return_when=asyncio.FIRST_COMPLETED,
        )
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        results = [t for t in done if not t.cancelled() and t.exception() is None]
        if not results:
            error = next(iter(done)).exception()
            raise error if error is not None else TimeoutError(good)
        event: dict[str, Any] = results[0].result()
        if event["type"] == bad:
            raise BrowserPeerError(f"{self.name}: {bad}: {event}")
        return event

    async def unregister(self, *, wait: bool = True, timeout: float = 10.0) -> None:
        await self._call("unregister")
        if wait:
            await self.wait_for("unregistered", timeout)

    async def call(
        self, target_uri: str, *, extra_headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Send an INVITE to ``target_uri``; returns ``{"call_id": ...}`` once it is sent."""
        result: dict[str, Any] = await self._call(
            "call", target_uri, {"extraHeaders": dict(extra_headers or {})}
        )
        return result

    async def answer(self) -> None:
        await self._call("answer")

    async def reject(self, code: int = 486) -> None:
        await self._call("reject", code)

    async def hangup(self) -> None:
        await self._call("hangup")

    async def hold(self) -> dict[str, Any]:
        """Send a hold re-INVITE (a=sendonly); returns ``{"status", "direction"}`` of the answer."""
        result: dict[str, Any] = await self._call("hold")
        return result

    async def unhold(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("unhold")
        return result

    async def send_dtmf_info(self, digit: str, duration_ms: int = 160) -> int:
        """Send one digit as SIP INFO ``application/dtmf-relay``; returns the response status."""
        status: int = await self._call("sendDtmfInfo", digit, duration_ms)
        return status

    async def send_dtmf_rtp(self, digits: str, duration_ms: int = 100, gap_ms: int = 70) -> None:
        """Send RFC 4733 telephone-events with RTCDTMFSender.insertDTMF; waits until played."""
        await self._call("sendDtmfRtp", digits, duration_ms, gap_ms, timeout=30.0)

    async def received_tone(self, duration: float = 0.6) -> Tone:
        """Analyse ``duration`` seconds of received audio; return its dominant frequency/level."""
        raw = await self._call("receivedTone", int(duration * 1000), timeout=duration + 10)
        return Tone(
            frequency=float(raw["frequency"]),
            level_db=float(raw["level_db"]) if raw["level_db"] is not None else float("-inf"),
            rms=float(raw["rms"]),
            peak=float(raw["peak"]),
            purity=float(raw["purity"]),
            frames=int(raw["frames"]),
        )

    async def media_stats(self) -> dict[str, Any] | None:
        """getStats(): ``inbound`` (packetsReceived, audioLevel, totalAudioEnergy, ...),
        ``outbound`` (packetsSent, bytesSent), ``codec`` and ``ice_state``; None without a call."""
        stats: dict[str, Any] | None = await self._call("mediaStats")
        return stats

    async def wait_for_media(self, min_packets: int = 25, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until getStats shows at least ``min_packets`` inbound RTP packets."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            stats = await self.media_stats()
            inbound = (stats or {}).get("inbound") or {}
            if (inbound.get("packetsReceived") or 0) >= min_packets:
                assert stats is not None
                return stats
            if loop.time() > deadline:
                raise TimeoutError(f"{self.name}: no inbound media within {timeout}s: {stats}")
            # getStats has no change event; sample it a few times a second.
            await asyncio.sleep(0.1)

    async def state(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("state")
        return result

    # -- field recovery (bench/field_recovery.py) ---------------------------------------------

    async def set_recovery(
        self,
        *,
        reconnect: bool | None = None,
        refresh_target: bool | None = None,
        ice_restart: bool | None = None,
    ) -> dict[str, Any]:
        """Turn on the page's application-level recovery (SIP.js does none by itself):
        ``reconnect`` (``ua.reconnect()`` then REGISTER after a lost WebSocket),
        ``refresh_target`` (then a re-INVITE in the call), ``ice_restart`` (a re-INVITE with
        ``iceRestart`` when ICE goes disconnected/failed).  Their steps are emitted as
        ``reconnected``, ``reregistered``, ``target_refresh``, ``ice_candidate`` (each local
        candidate the call's peer connection gathers), ``ice_state`` and ``ice_restart``
        events (with ``wall``, epoch ms)."""
        options = {
            key: value
            for key, value in (
                ("reconnect", reconnect),
                ("refreshTarget", refresh_target),
                ("iceRestart", ice_restart),
            )
            if value is not None
        }
        result: dict[str, Any] = await self._call("setRecovery", options)
        return result

    async def start_tone_monitor(self, hz: float, every_ms: int = 10) -> None:
        """Sample the remote audio every ``every_ms`` (the last 1024 samples, ~21 ms): the
        share of its power at ``hz`` (Goertzel) and its RMS, kept until taken."""
        await self._call("startToneMonitor", hz, every_ms)

    async def take_tone_log(self) -> list[tuple[float, float, float]]:
        """The tone monitor's samples since the last call: ``(epoch seconds, tone share, rms)``."""
        raw = await self._call("takeToneLog")
        return [(float(t) / 1000.0, float(r), float(v)) for t, r, v in raw]


def tone_share(
    log: list[tuple[float, float, float]],
    start: float,
    end: float,
    *,
    min_share: float = 0.5,
    min_db: float = -50.0,
) -> tuple[int, float]:
    """Of the tone monitor's samples (:meth:`BrowserPhone.take_tone_log`) taken between
    ``start`` and ``end`` (epoch seconds): how many there are, and in what share of them the
    monitored tone was heard (at least ``min_share`` of the power, above ``min_db`` dBFS)."""
    floor = 10 ** (min_db / 20)
    window = [(share, rms) for t, share, rms in log if start <= t <= end]
    if not window:
        return 0, 0.0
    heard = sum(1 for share, rms in window if share >= min_share and rms >= floor)
    return len(window), heard / len(window)
