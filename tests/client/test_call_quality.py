"""Quality warnings and the periodic stats event on real calls: two SDK phones through the
sandbox, real aiortc media on 127.0.0.1, each condition really made (low thresholds and
short intervals: these tests are about the behaviour; the thresholds' defaults and the
hysteresis are checked in tests/media/test_quality.py):

* packet loss: a share of the UDP reaching our media port dropped (``iptables`` with the
  ``statistic`` match, inside the loopback-only namespace): ``high-packet-loss`` with the
  measured percentage, cleared once the drop rule is gone;
* a silent microphone: a call whose source sends silence while it is not muted warns
  ``constant-audio-input-level``, which clears once a tone is sent; a muted call does not
  warn;
* ``CallStatsUpdated`` arrives every ``stats_interval`` seconds with the call's stats and a
  MOS estimate, and never with ``stats_interval=None``.

``scripts/in-netns.sh .venv/bin/python -m pytest tests/client/test_call_quality.py``
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio

from exotel_voice import (
    Call,
    CallStatsUpdated,
    ConfigurationError,
    ExotelWebClient,
    Phone,
    QualityWarning,
    QualityWarningCleared,
    QualityWarningKind,
    SilenceSource,
    ToneSource,
)
from exotel_voice.config import AccountConfig
from exotel_voice.media import IceConfig, MediaConfig, QualityConfig, QualityThresholds
from exotel_voice.sandbox import Sandbox
from exotel_voice.sandbox.threaded import SandboxThread
from tests.media.conftest import LOOPBACK_MEDIA, NEEDS_NETNS_ROOT
from tests.sandbox import conftest as sandbox_fixtures


sandbox = sandbox_fixtures.sandbox

LOOPBACK = IceConfig(host_addresses=["127.0.0.1"], gather_timeout=1.0)
# Fast samples and only the warning under test (the others off, so that a slow CI machine's
# jitter cannot add events).
QUICK = dict(rtt_ms=None, jitter_ms=None, loss_percent=None, mos=None, silent_mic_s=None,
             ice_disconnected=False, fire_after=2, clear_after=2)

Pair = Callable[..., Any]


@pytest_asyncio.fixture
async def pair(sandbox: Sandbox) -> AsyncIterator[Pair]:
    """``await pair(quality, source=...)``: agent (with ``quality``) calls bob (a tone)."""
    made: list[Phone] = []

    async def make(quality: QualityConfig, *, source: Callable[[], Any] | None = None
                   ) -> tuple[Call, Call, list[object]]:
        def phone(user: str, config: MediaConfig, src: Callable[[], Any] | None) -> Phone:
            info = sandbox.sip_account_info(user)
            made.append(Phone(AccountConfig.from_sip_account_info(info), media=config,
                              source=src))
            return made[-1]

        agent = phone("agent", MediaConfig(ice=LOOPBACK, quality=quality), source)
        bob = phone("bob", MediaConfig(ice=LOOPBACK), lambda: ToneSource(1000.0, 0.5))
        await agent.register(timeout=10)
        await bob.register(timeout=10)
        events: list[object] = []
        agent.add_listener(events.append)
        call = await agent.dial("bob")
        incoming = await bob.next_incoming_call(timeout=10)
        await incoming.answer()
        await call.wait_connected(10)
        return call, incoming, events

    yield make
    for made_phone in made:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(made_phone.close(), 5)


async def wait_for(events: list[object], match: Callable[[object], bool],
                   timeout: float) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            for event in events:
                if match(event):
                    return event
            await asyncio.sleep(0.05)


def warned(kind: QualityWarningKind) -> Callable[[object], bool]:
    return lambda e: isinstance(e, QualityWarning) and e.kind is kind


def cleared(kind: QualityWarningKind) -> Callable[[object], bool]:
    return lambda e: isinstance(e, QualityWarningCleared) and e.kind is kind


def media_port(call: Call) -> int:
    """The UDP port our media receives on (the one host candidate on 127.0.0.1)."""
    assert call.media is not None
    _, ice = call.media._iter_transports()
    return int(ice.iceGatherer.getLocalCandidates()[0].port)


@contextlib.contextmanager
def dropping(port: int, share: float) -> Iterator[None]:
    """Drop ``share`` of the UDP datagrams to ``port`` at random until the block exits."""
    rule = ["INPUT", "-p", "udp", "--dport", str(port), "-m", "statistic", "--mode",
            "random", "--probability", str(share), "-j", "DROP"]
    subprocess.run(["iptables", "-A", *rule], check=True)
    try:
        yield
    finally:
        subprocess.run(["iptables", "-D", *rule], check=True)


@pytest.mark.media
@NEEDS_NETNS_ROOT
@pytest.mark.timeout(60)
async def test_packet_loss_warns_with_the_percentage_and_clears_when_it_stops(
    pair: Pair,
) -> None:
    quality = QualityConfig(sample_interval=0.25, stats_interval=None, thresholds=QualityThresholds(
        **{**QUICK, "loss_percent": 3.0, "loss_window": 4}))  # type: ignore[arg-type]
    call, _, events = await pair(quality)
    await asyncio.sleep(1.5)
    assert not [e for e in events if isinstance(e, QualityWarning)], "a clean call warned"

    with dropping(media_port(call), 0.25):
        warning = await wait_for(events, warned(QualityWarningKind.HIGH_PACKET_LOSS), 10)
    assert warning.threshold == 3.0 and warning.value > 3.0
    assert warning.remedy.startswith(f"high packet loss ({warning.value:.1f}%): ")
    done = await wait_for(events, cleared(QualityWarningKind.HIGH_PACKET_LOSS), 10)
    assert done.value <= 3.0
    assert events.index(warning) < events.index(done)
    stats = await call.media.quality_stats()  # type: ignore[union-attr]
    assert stats.packets_lost > 0


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(60)
async def test_a_silent_microphone_warns_until_sound_is_sent(pair: Pair) -> None:
    quality = QualityConfig(sample_interval=0.25, stats_interval=None, thresholds=QualityThresholds(
        **{**QUICK, "silent_mic_s": 1.0}))  # type: ignore[arg-type]
    call, _, events = await pair(quality, source=SilenceSource)
    warning = await wait_for(events, warned(QualityWarningKind.CONSTANT_AUDIO_INPUT_LEVEL), 10)
    assert warning.value < -70.0 and warning.threshold == -70.0
    assert "microphone" in warning.remedy
    await call.set_source(ToneSource(440.0, 0.5))
    done = await wait_for(events, cleared(QualityWarningKind.CONSTANT_AUDIO_INPUT_LEVEL), 10)
    assert done.value > -70.0
    assert events.index(warning) < events.index(done)


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(60)
async def test_a_muted_silent_call_does_not_warn(pair: Pair) -> None:
    quality = QualityConfig(sample_interval=0.25, stats_interval=None, thresholds=QualityThresholds(
        **{**QUICK, "silent_mic_s": 0.5}))  # type: ignore[arg-type]
    call, _, events = await pair(quality, source=SilenceSource)
    call.mute()
    # The warning may have fired in the moment before mute; from mute on, none stands.
    await asyncio.sleep(2.0)
    kind = QualityWarningKind.CONSTANT_AUDIO_INPUT_LEVEL
    raised = [e for e in events if warned(kind)(e)]
    dropped = [e for e in events if cleared(kind)(e)]
    assert len(raised) == len(dropped)


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(60)
async def test_stats_arrive_every_interval_with_a_mos_estimate(pair: Pair) -> None:
    call, _, events = await pair(QualityConfig(sample_interval=0.25, stats_interval=0.5))
    await asyncio.sleep(2.2)
    updates = [e for e in events if isinstance(e, CallStatsUpdated)]
    assert 2 <= len(updates) <= 6
    last = updates[-1]
    assert last.call is call and last.stats.codec is not None
    assert last.stats.packets_received > updates[0].stats.packets_received > 0
    assert last.mos is not None and 4.0 <= last.mos <= 4.5
    await call.hangup()
    count = len([e for e in events if isinstance(e, CallStatsUpdated)])
    await asyncio.sleep(1.0)
    assert len([e for e in events if isinstance(e, CallStatsUpdated)]) == count


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(60)
async def test_no_stats_events_when_the_interval_is_none(pair: Pair) -> None:
    _, _, events = await pair(QualityConfig(sample_interval=0.25, stats_interval=None))
    await asyncio.sleep(1.5)
    assert not [e for e in events if isinstance(e, CallStatsUpdated)]


# -- the guide face -------------------------------------------------------------------------------


@pytest.fixture
def sandbox_thread() -> Iterator[SandboxThread]:
    with SandboxThread(sandbox_fixtures.sandbox_config()) as sb:
        yield sb


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(60)
def test_the_facade_reports_stats_and_a_silent_microphone_to_its_quality_callback(
    sandbox_thread: SandboxThread,
) -> None:
    quality = QualityConfig(sample_interval=0.25, stats_interval=0.5, thresholds=QualityThresholds(
        **{**QUICK, "silent_mic_s": 1.0}))  # type: ignore[arg-type]
    reports: queue.Queue[tuple[Any, dict[str, Any], str]] = queue.Queue()
    agent, bob = ExotelWebClient(), ExotelWebClient()
    try:
        agent.registerCallQualityCallback(lambda c, r, p: reports.put((c, r, p)))
        assert agent.initWebrtc(sandbox_thread.sip_account_info("agent"), lambda s, p: None,
                                media=MediaConfig(ice=LOOPBACK, quality=quality),
                                source=SilenceSource)
        assert bob.initWebrtc(sandbox_thread.sip_account_info("bob"), lambda s, p: None,
                              media=MediaConfig(ice=LOOPBACK))
        for client in (agent, bob):
            assert client.DoRegister() and client.wait_for_registration(10)
        agent.MakeCall("bob").result(10)
        bob.wait_for_call(10).Answer().result(10)
        seen: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + 15
        while not {"stats", "warning"} <= set(seen) and time.monotonic() < deadline:
            call_obj, report, phone = reports.get(timeout=max(0.1, deadline - time.monotonic()))
            assert phone == "agent" and call_obj["callDirection"] == "outgoing"
            seen.setdefault(report["type"], report)
        stats = seen["stats"]
        assert stats["stats"]["codec"] and stats["stats"]["packetsSent"] > 0
        assert 1.0 <= stats["mos"] <= 4.5
        assert seen["warning"]["name"] == "constant-audio-input-level"
        assert seen["warning"]["threshold"] == -70.0
        assert "microphone" in seen["warning"]["message"]
        with pytest.raises(ConfigurationError, match="CallQualityCallback"):
            agent.registerCallQualityCallback("not a function")  # type: ignore[arg-type]
    finally:
        agent.close()
        bob.close()
