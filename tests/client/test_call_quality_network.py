"""Quality warnings made by a real network, not by made-up stats: an SDK phone calls the
sandbox's ``tone`` number and the call's media goes through the impairment relay of
``tests/rig/impair.py`` (the sandbox's answer points the phone at one face of the relay, the
phone's offer points the sandbox at the other; STUN and DTLS pass untouched, RTP and RTCP are
delayed and dropped as set). Each test starts clean, checks nothing warns, makes its
condition mid-call, waits for the warning with the measured value, then takes the condition
away and waits for the warning to clear:

* ``high-rtt``: 150 ms each way, so RTCP's round trip (A - LSR - DLSR) is about 300 ms;
* ``high-jitter``: 60 +- 40 ms of normal random delay, so packets reorder and the RFC 3550
  interarrival jitter of what we receive is about 45 ms;
* ``low-mos``: 20 % of the packets dropped, an E-model MOS near 2.7;
* ``ice-disconnected``: every RTP and RTCP packet dropped (connectivity checks still pass,
  so ICE itself never fails): the liveness watch reports the ICE state ``disconnected``, as
  a browser would, and the warning follows it both ways.

Thresholds are lowered and the samples quickened (each test turns on only the warning under
test, so a busy machine's own jitter cannot add events); the defaults and the hysteresis are
checked in tests/media/test_quality.py. Loss is made with ``iptables`` in
tests/client/test_call_quality.py.

``.venv/bin/python -m pytest tests/client/test_call_quality_network.py`` (loopback only).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from exotel_voice import (
    Call,
    Phone,
    QualityWarning,
    QualityWarningCleared,
    QualityWarningKind,
)
from exotel_voice.client import MediaStateChanged
from exotel_voice.config import AccountConfig
from exotel_voice.media import (
    LivenessConfig,
    MediaConfig,
    MediaSession,
    QualityConfig,
    QualityThresholds,
)
from exotel_voice.media.liveness import IceState
from exotel_voice.sandbox import Sandbox, legs as sandbox_legs
from tests.client.test_call_quality import LOOPBACK, QUICK, cleared, wait_for, warned
from tests.media.conftest import LOOPBACK_MEDIA
from tests.rig.impair import Impairment, ImpairmentRelay, point_sdp_at, sdp_address
from tests.sandbox import conftest as sandbox_fixtures


sandbox = sandbox_fixtures.sandbox


Relayed = Callable[..., Any]


@pytest_asyncio.fixture
async def relayed(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
                  ) -> AsyncIterator[Relayed]:
    """``await relayed(thresholds, liveness=...)``: a connected call from ``agent`` to the
    sandbox's ``tone``, its media through a clean relay; returns (call, events, relay)."""
    relay = ImpairmentRelay(Impairment())
    await relay.start()

    class ThroughTheRelay(MediaSession):
        """The sandbox's media session, seen by the phone at the relay's face A and seeing
        the phone at face B (the phone is side A)."""

        async def accept_offer(self, sdp: str) -> str:
            phone_addr = sdp_address(sdp)
            assert phone_addr is not None, sdp
            relay.set_peer("a", phone_addr)
            answer = await super().accept_offer(point_sdp_at(sdp, relay.face_b))
            ours = sdp_address(answer)
            assert ours is not None, answer
            relay.set_peer("b", ours)
            return point_sdp_at(answer, relay.face_a)

    monkeypatch.setattr(sandbox_legs, "MediaSession", ThroughTheRelay)
    made: list[Phone] = []

    async def make(thresholds: QualityThresholds, *,
                   liveness: LivenessConfig | None = None) -> tuple[Call, list[object],
                                                                    ImpairmentRelay]:
        quality = QualityConfig(sample_interval=0.25, stats_interval=None,
                                thresholds=thresholds)
        media = MediaConfig(ice=LOOPBACK, quality=quality,
                            liveness=liveness or LivenessConfig())
        info = sandbox.sip_account_info("agent")
        phone = Phone(AccountConfig.from_sip_account_info(info), media=media)
        made.append(phone)
        await phone.register(timeout=10)
        events: list[object] = []
        phone.add_listener(events.append)
        call = await phone.dial("tone")
        await call.wait_connected(10)
        return call, events, relay

    yield make
    for phone in made:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(phone.close(), 5)
    await relay.close()


def warnings(events: list[object]) -> list[object]:
    return [e for e in events if isinstance(e, QualityWarning | QualityWarningCleared)]


async def clean_for(events: list[object], seconds: float) -> None:
    await asyncio.sleep(seconds)
    assert not warnings(events), f"a clean call warned: {warnings(events)}"


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(90)
async def test_a_long_round_trip_warns_high_rtt_with_the_rtcp_value_and_clears(
    relayed: Relayed,
) -> None:
    call, events, relay = await relayed(QualityThresholds(**{**QUICK, "rtt_ms": 200.0}))
    # RTCP's first reports come 2-6 s in: a round trip is known, and it is short.
    async with asyncio.timeout(15):
        while (await call.stats()).rtt_ms is None:
            await asyncio.sleep(0.25)
    assert (await call.stats()).rtt_ms < 100  # type: ignore[operator]
    assert not warnings(events)

    relay.set_impairment(Impairment(delay_ms=150.0))
    warning = await wait_for(events, warned(QualityWarningKind.HIGH_RTT), 30)
    assert warning.threshold == 200.0 and 250 <= warning.value <= 450, warning
    assert warning.remedy.startswith(f"high round-trip time ({warning.value:.0f} ms): ")

    relay.set_impairment(Impairment())
    done = await wait_for(events, cleared(QualityWarningKind.HIGH_RTT), 30)
    # Below the threshold (a report straddling the change may still carry one delayed
    # leg, about 150 ms).
    assert done.value <= 200.0
    assert events.index(warning) < events.index(done)
    assert call.state == "connected"


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(60)
async def test_jitter_warns_high_jitter_with_the_rfc_3550_value_and_clears(
    relayed: Relayed,
) -> None:
    call, events, relay = await relayed(QualityThresholds(**{**QUICK, "jitter_ms": 25.0}))
    await clean_for(events, 2.0)
    assert (await call.stats()).jitter_ms < 15  # type: ignore[operator]

    relay.set_impairment(Impairment(delay_ms=60.0, jitter_ms=40.0, seed=3))
    warning = await wait_for(events, warned(QualityWarningKind.HIGH_JITTER), 15)
    assert warning.threshold == 25.0 and warning.value > 25.0
    assert warning.remedy.startswith(f"high jitter ({warning.value:.0f} ms): ")
    stats = await call.stats()
    assert stats.packets_late > 0 or stats.jitter_buffer_delay_ms > 20, stats  # it reordered

    relay.set_impairment(Impairment())
    done = await wait_for(events, cleared(QualityWarningKind.HIGH_JITTER), 20)
    assert done.value <= 25.0
    assert events.index(warning) < events.index(done)


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(60)
async def test_heavy_loss_warns_low_mos_and_clears(relayed: Relayed) -> None:
    thresholds = QualityThresholds(**{**QUICK, "mos": 3.5, "loss_window": 4})
    call, events, relay = await relayed(thresholds)
    await clean_for(events, 2.0)

    relay.set_impairment(Impairment(loss=0.2, seed=5))
    warning = await wait_for(events, warned(QualityWarningKind.LOW_MOS), 15)
    assert warning.threshold == 3.5 and 1.0 <= warning.value < 3.5
    assert warning.remedy.startswith(f"low estimated MOS ({warning.value:.2f}): ")

    relay.set_impairment(Impairment())
    done = await wait_for(events, cleared(QualityWarningKind.LOW_MOS), 15)
    assert done.value >= 3.5
    assert events.index(warning) < events.index(done)
    assert call.state == "connected"


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(60)
async def test_media_that_stops_arriving_warns_ice_disconnected_and_clears(
    relayed: Relayed,
) -> None:
    liveness = LivenessConfig(ice_disconnected_after=1.5, no_media_warning=30.0)
    call, events, relay = await relayed(
        QualityThresholds(**{**QUICK, "ice_disconnected": True}), liveness=liveness
    )
    await clean_for(events, 2.0)

    relay.set_impairment(Impairment(loss=1.0))  # RTP and RTCP; STUN and DTLS still pass
    warning = await wait_for(events, warned(QualityWarningKind.ICE_DISCONNECTED), 10)
    assert warning.remedy.startswith("ICE disconnected: ")
    await asyncio.sleep(1.0)
    relay.set_impairment(Impairment())
    done = await wait_for(events, cleared(QualityWarningKind.ICE_DISCONNECTED), 10)
    assert events.index(warning) < events.index(done)

    ice = [e.ice for e in events if isinstance(e, MediaStateChanged) and e.ice_changed]
    assert ice[-2:] == [IceState.DISCONNECTED, IceState.COMPLETED], ice
    # The state change comes first and the warning with it, both ways.
    first_down = next(e for e in events if isinstance(e, MediaStateChanged)
                      and e.ice is IceState.DISCONNECTED)
    assert events.index(first_down) < events.index(warning)
    assert call.state == "connected"
