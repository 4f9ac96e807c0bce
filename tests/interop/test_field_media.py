"""Media faults mid-call against real components: private hold and media blackouts.

Our Python phone (over ws, sending a 700 Hz tone) is in a call through Kamailio + rtpengine
(WebRTC with ICE and DTLS-SRTP on our leg) with a real far end:

* Private hold, with SIP.js in Chromium as the far end (its tone monitor samples what it
  receives every 10 ms, with the time): while we hold the call it hears none of our tone
  (silence, or the hold music we set), and our tone again after each resume.
* Media blackouts, with baresip (UDP, PCMU, a 440 Hz tone) as the far end; baresip records
  what it decodes (``sndfile``), which is what its user would hear.  The blackouts are
  ``iptables`` DROP rules on our media port inside the loopback-only namespace (this kernel
  has no ``netem``): a blackout shorter than the warning threshold passes unreported; a 3 s
  one is a ``NoMediaWarning`` then a ``MediaWarningCleared``, the call goes on and each end
  hears the other's tone again; a blackout that does not end ends the call on both sides
  with the reason (our ``CallEnded``; baresip gets our BYE).

baresip's recording holds only the audio it decoded, in order (nothing is written while no
packet arrives), and is read while the call goes on (see :func:`recorded`): "after the
blackout" is what was written after it.  baresip 1.0 stops writing that recording at the
first re-INVITE (rtpengine keeps forwarding our packets to it), which is why the hold test
uses SIP.js.

``scripts/in-netns.sh .venv/bin/python -m pytest -q tests/interop/test_field_media.py``
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest

from exotel_voice.client import (
    Call,
    CallEnded,
    MediaWarningCleared,
    NoMediaWarning,
    Phone,
)
from exotel_voice.media import IceConfig, LivenessConfig, MediaConfig, ToneSource
from tests.rig import netns_skip_reason
from tests.rig.audio import dominant_frequency, rms, write_tone_wav
from tests.rig.baresip import BaresipPhone
from tests.rig.browser import BrowserHost, tone_share
from tests.rig.faults import blackout
from tests.rig.fixtures import BaresipFactory
from tests.rig.kamailio import Kamailio

from .test_calls import bs
from .test_calls_peers import (
    BARESIP_HZ,
    PY_HZ,
    TOLERANCE_HZ,
    Recorder,
    account,
    assert_browser_hears,
    assert_python_hears,
    browser_phone,
    close_browser_phones,
)


pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(netns_skip_reason() is not None, reason=str(netns_skip_reason())),
    pytest.mark.timeout(90),
]

#: What our hold music plays (neither side's tone).
MUSIC_HZ = 1000.0
#: Analysis windows of baresip's recording (8 kHz PCMU).
WINDOW_S = 0.1
#: Runs of one kind shorter than this many windows are transitions, not what was heard.
MIN_RUN = 3
#: How long our tone may still be heard after hold() (the far end's jitter buffer and the
#: tone monitor's window).
LATENCY_S = 0.4
#: Warning threshold for the blackout tests: low, so a 3 s blackout exceeds it.
WARN_S = 1.5


LOOPBACK = IceConfig(host_addresses=["127.0.0.1"], gather_timeout=1.0)


@asynccontextmanager
async def call_to_baresip(
    kamailio: Kamailio, baresip_factory: BaresipFactory, liveness: LivenessConfig,
    tmp_path: Path,
) -> AsyncIterator[tuple[Call, BaresipPhone, Recorder]]:
    """Our phone (700 Hz) in a connected call to baresip (440 Hz), audio both ways.

    baresip hangs up when its audio file ends: it plays a minute of tone (the rig's
    default is 10 s)."""
    user, password = kamailio.new_user("py")
    media = MediaConfig(ice=LOOPBACK, liveness=liveness)
    phone = Phone(account(kamailio, user, password, "ws"), media=media,
                  source=lambda: ToneSource(PY_HZ))
    recorder = Recorder()
    phone.add_listener(recorder)
    async with phone:
        await phone.register(timeout=10)
        wav = write_tone_wav(tmp_path / "tone-440-60s.wav", BARESIP_HZ, 8000, 60.0)
        far = await asyncio.to_thread(baresip_factory, audio_file=wav)
        call = await phone.dial(far.aor)
        await bs(far, "wait_event", "CALL_INCOMING")
        await bs(far, "accept")
        await call.wait_connected(10)
        await assert_python_hears(call, BARESIP_HZ)
        try:
            yield call, far, recorder
        finally:
            if not call.ended:
                await call.hangup()


def media_port(call: Call) -> int:
    """Our media's UDP port: the port of our one host candidate (127.0.0.1)."""
    assert call.media is not None
    sdp = call.media._local_sdp or ""
    ports = {int(m.group(1)) for m in re.finditer(r"a=candidate:\S+ 1 udp \d+ \S+ (\d+) ", sdp)}
    assert len(ports) == 1, sdp
    return ports.pop()


def recorded(path: Path, start: int = 0) -> np.ndarray:
    """The samples of a baresip recording from sample ``start`` on, as floats in [-1, 1].

    The recording may still be written (its header's lengths are then not final): the
    samples are everything after the ``data`` chunk's header.
    """
    raw = path.read_bytes()
    at = raw.find(b"data", 12)
    assert at > 0, f"{path}: no data chunk"
    data = raw[at + 8 :]
    pcm = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.float64) / 32768.0
    return pcm[start:]


def heard_runs(samples: np.ndarray, rate: int = 8000) -> list[tuple[str, float]]:
    """What the recording holds, as runs: ``(label, seconds)``; labels are a frequency in
    Hz (one of the tones in this test), ``"silence"`` or ``"other"``."""
    n = int(rate * WINDOW_S)
    labels: list[str] = []
    for i in range(len(samples) // n):
        window = samples[i * n : (i + 1) * n]
        if rms(window) < 0.003:  # about -50 dBFS
            labels.append("silence")
            continue
        frequency = dominant_frequency(window, rate)
        for hz in (PY_HZ, BARESIP_HZ, MUSIC_HZ):
            if abs(frequency - hz) <= TOLERANCE_HZ and rms(window) > 0.01:
                labels.append(str(int(hz)))
                break
        else:
            labels.append("other")
    # Runs of equal labels; runs shorter than MIN_RUN windows are transitions and dropped
    # (their neighbours then merge).
    merged: list[tuple[str, float]] = []
    for label, group in itertools.groupby(labels):
        count = len(list(group))
        if count < MIN_RUN:
            continue
        if merged and merged[-1][0] == label:
            merged[-1] = (label, merged[-1][1] + count * WINDOW_S)
        else:
            merged.append((label, count * WINDOW_S))
    return merged


def events_of(recorder: Recorder, call: Call, kind: type) -> list[object]:
    return [e for e in recorder.events if isinstance(e, kind) and getattr(e, "call", None) is call]


async def wait_for(recorder: Recorder, call: Call, kind: type, timeout: float) -> object:
    async with asyncio.timeout(timeout):
        while True:
            found = events_of(recorder, call, kind)
            if found:
                return found[0]
            await asyncio.sleep(0.05)


# -- private hold (SIP.js far end) -------------------------------------------------------------


async def test_the_held_party_hears_silence_then_hold_music_and_us_again_after_resume(
    kamailio: Kamailio, tmp_path: Path
) -> None:
    user, password = kamailio.new_user("py")
    phone = Phone(account(kamailio, user, password, "ws"), media=MediaConfig(ice=LOOPBACK),
                  source=lambda: ToneSource(PY_HZ))
    async with phone, BrowserHost(tmp_path / "browser") as host:
        await phone.register(timeout=10)
        page, aor = await browser_phone(host, kamailio, "ws", "held")
        try:
            call = await phone.dial(aor)
            await page.wait_for("incoming")
            await page.answer()
            await call.wait_connected(10)
            await assert_browser_hears(page, PY_HZ)
            await page.start_tone_monitor(PY_HZ, 10)
            await asyncio.sleep(0.5)
            before = time.time()

            # Hold without music: silence, from the moment hold() is called.
            held_at = time.time()
            await asyncio.wait_for(call.hold(), 10)
            await asyncio.sleep(1.0)
            quiet = await page.received_tone(0.5)
            resumed_at = time.time()
            await asyncio.wait_for(call.unhold(), 10)
            await asyncio.sleep(1.2)

            # Hold with music: the music, and still none of our source.
            held_music_at = time.time()
            await asyncio.wait_for(call.hold(music=ToneSource(MUSIC_HZ)), 10)
            await asyncio.sleep(0.8)
            music = await page.received_tone(0.5)
            resumed_music_at = time.time()
            await asyncio.wait_for(call.unhold(), 10)
            await asyncio.sleep(1.2)
            end = time.time()
            log = await page.take_tone_log()
            assert call.state == "connected" and not page.seen("terminated")
            await call.hangup()
            await page.wait_for("terminated")
        finally:
            await close_browser_phones(page)

    # Our tone before the hold ...
    count, heard = tone_share(log, before - 0.5, before)
    assert count > 20 and heard > 0.8, (count, heard)
    # ... none of it while held (after the ~0.4 s the far end's jitter buffer still plays) ...
    for start, stop in ((held_at, resumed_at), (held_music_at, resumed_music_at)):
        count, heard = tone_share(log, start + LATENCY_S, stop)
        assert count > 50 and heard == 0.0, (start - before, count, heard)
    # ... silence, or the music, instead ...
    assert quiet.level_db < -50, quiet
    assert abs(music.frequency - MUSIC_HZ) <= TOLERANCE_HZ and music.level_db > -40, music
    # ... and our tone again after each resume.
    for resumed in (held_music_at - 0.6, end - 0.6):
        count, heard = tone_share(log, resumed, resumed + 0.5)
        assert count > 20 and heard > 0.8, (resumed - before, count, heard)


# -- media blackouts (baresip far end) ---------------------------------------------------------


def recorded_length(far: BaresipPhone) -> int:
    """How many samples baresip has recorded of what it received so far."""
    return len(recorded(far.received_audio()))


async def assert_far_end_hears_us_after(far: BaresipPhone, offset: int) -> None:
    """baresip decoded our tone in what it recorded after sample ``offset``."""
    async with asyncio.timeout(5):
        while recorded_length(far) < offset + 8000:  # a second of audio after the offset
            await asyncio.sleep(0.1)
    after = recorded(far.received_audio(), offset)
    runs = heard_runs(after)
    assert any(label == str(int(PY_HZ)) and seconds >= 0.5 for label, seconds in runs), runs


async def test_short_blackouts_warn_only_past_the_threshold_and_audio_comes_back(
    kamailio: Kamailio, baresip_factory: BaresipFactory, tmp_path: Path
) -> None:
    liveness = LivenessConfig(no_media_warning=WARN_S, no_media_grace=10.0)
    async with call_to_baresip(kamailio, baresip_factory, liveness, tmp_path) as (
        call, far, recorder
    ):
        port = media_port(call)
        await asyncio.sleep(0.5)

        # Shorter than the threshold: nothing to report.
        with blackout([port]):
            await asyncio.sleep(WARN_S / 3)
        await asyncio.sleep(WARN_S + 0.5)
        assert not events_of(recorder, call, NoMediaWarning), recorder.events
        await assert_python_hears(call, BARESIP_HZ)

        # 3 s: a warning during it, cleared once packets come back; the call goes on.
        with blackout([port]):
            started = time.monotonic()
            warning = await wait_for(recorder, call, NoMediaWarning, 3.0)
            assert not events_of(recorder, call, MediaWarningCleared)
            await asyncio.sleep(3.0 - (time.monotonic() - started))
        offset = recorded_length(far)  # what baresip recorded until the end of the blackout
        cleared = await wait_for(recorder, call, MediaWarningCleared, 5.0)
        assert isinstance(warning, NoMediaWarning) and warning.silent_for >= WARN_S, warning
        assert isinstance(cleared, MediaWarningCleared) and cleared.silent_for >= 2.5, cleared
        assert recorder.events.index(warning) < recorder.events.index(cleared)
        assert call.state == "connected" and not events_of(recorder, call, CallEnded)
        # Each end hears the other again.
        await assert_python_hears(call, BARESIP_HZ)
        await assert_far_end_hears_us_after(far, offset)
        assert not [e for e in far.events if e.type == "CALL_CLOSED"], far.events


async def call_ends_in_blackout(
    call: Call, far: BaresipPhone, recorder: Recorder, kamailio: Kamailio, within: float
) -> tuple[NoMediaWarning, CallEnded, float]:
    """Drop our media until the call ends (at most ``within`` s); check both sides saw it end."""
    with blackout([media_port(call)]):
        started = time.monotonic()
        await call.wait_ended(within)
        took = time.monotonic() - started
        # baresip got our BYE (signalling is not blacked out) and closed the call.
        closed = await bs(far, "wait_event", "CALL_CLOSED", 5.0)
    assert closed is not None
    byes = kamailio.events("REQ", method="BYE", callid=call.call_id)
    assert [bye.get("proto") for bye in byes] == ["ws"], f"not one BYE, ours: {byes}"
    warnings = events_of(recorder, call, NoMediaWarning)
    ends = events_of(recorder, call, CallEnded)
    assert len(warnings) == 1 and len(ends) == 1, recorder.events
    warning, ended = warnings[0], ends[0]
    assert isinstance(warning, NoMediaWarning) and isinstance(ended, CallEnded)
    assert recorder.events.index(warning) < recorder.events.index(ended)
    assert not events_of(recorder, call, MediaWarningCleared)
    # The reason says why; the BYE above is ours (who is blamed, ``by``, is not the point).
    assert "no audio received" in ended.reason and "media path is down" in ended.reason, ended
    assert call.end_reason == ended.reason and call.ended_by == ended.by, ended
    return warning, ended, took


async def test_a_blackout_that_lasts_ends_the_call_on_both_sides_with_the_reason(
    kamailio: Kamailio, baresip_factory: BaresipFactory, tmp_path: Path
) -> None:
    # The 30 s blackout, in less time: with the warning at 1.5 s and the grace at
    # 2 s the behaviour (warning, then the call ended with the reason, BYE to the far end)
    # is the same as with the defaults; the next test keeps one default-threshold run.
    liveness = LivenessConfig(no_media_warning=WARN_S, no_media_grace=2.0)
    async with call_to_baresip(kamailio, baresip_factory, liveness, tmp_path) as (
        call, far, recorder
    ):
        warning, ended, took = await call_ends_in_blackout(call, far, recorder, kamailio, 10.0)
        assert took >= WARN_S + 2.0 - 0.5, took  # not before the warning and its grace


async def test_a_30s_blackout_with_the_default_thresholds_ends_the_call(
    kamailio: Kamailio, baresip_factory: BaresipFactory, tmp_path: Path
) -> None:
    # The defaults (warning after 10 s, the call ended 10 s later) in a 30 s blackout: the
    # call ends after about 20 s, inside the 30 s.  About 25 s of test time.
    async with call_to_baresip(kamailio, baresip_factory, LivenessConfig(), tmp_path) as (
        call, far, recorder
    ):
        warning, ended, took = await call_ends_in_blackout(call, far, recorder, kamailio, 30.0)
        assert warning.silent_for >= 10.0 - 0.5, warning
        assert 19.0 <= took <= 30.0, took
