"""Media liveness: when a call's media counts as dead (exotel_voice.media.liveness).

The :class:`LivenessMonitor` is sans-I/O: these tests feed it times, packet counters and
ICE/DTLS states and check what it reports. ``MediaSession.watch`` on a real pair of
sessions runs in the loopback namespace (the ICE-failure and connect-timeout cases need no
packet to be dropped: a far end that never answers is enough).
"""

from __future__ import annotations

import asyncio

import pytest

from exotel_voice import ConfigurationError
from exotel_voice.media import IceConfig, LivenessConfig, MediaConfig, MediaSession
from exotel_voice.media.liveness import (
    DtlsState,
    IceState,
    LivenessMonitor,
    MediaDown,
    MediaFlowing,
    MediaHealthEvent,
    MediaSilent,
    MediaTransportChanged,
)
from tests.media.conftest import LOOPBACK_MEDIA, connected_pair


# The derived "disconnected" ICE state has tests of its own below.
FAST = LivenessConfig(no_media_warning=2.0, no_media_grace=3.0, connect_timeout=4.0,
                      ice_disconnected_after=None)
UP = {"ice": IceState.COMPLETED, "dtls": DtlsState.CONNECTED}


def connected(config: LivenessConfig = FAST) -> LivenessMonitor:
    monitor = LivenessMonitor(config, 0.0)
    monitor.update(0.0, received=0, ice=IceState.CHECKING, dtls=DtlsState.NEW, expecting=True)
    monitor.update(0.5, received=3, expecting=True, **UP)
    return monitor


def test_a_silence_warns_then_clears_when_packets_come_back() -> None:
    monitor = connected()
    assert monitor.update(1.0, received=50, expecting=True, **UP) == []
    assert monitor.update(2.9, received=50, expecting=True, **UP) == []
    assert monitor.update(3.0, received=50, expecting=True, **UP) == [MediaSilent(2.0)]
    assert monitor.silent
    assert monitor.update(3.5, received=50, expecting=True, **UP) == []  # warned once
    assert monitor.update(4.0, received=51, expecting=True, **UP) == [MediaFlowing(3.0)]
    assert not monitor.silent and not monitor.down


def test_a_silence_past_the_grace_period_is_media_down_naming_it() -> None:
    monitor = connected()
    monitor.update(1.0, received=50, expecting=True, **UP)
    assert monitor.update(3.0, received=50, expecting=True, **UP) == [MediaSilent(2.0)]
    assert monitor.update(5.9, received=50, expecting=True, **UP) == []
    events = monitor.update(6.0, received=50, expecting=True, **UP)
    assert events == [MediaDown("no audio received for 5 s: the media path is down")]
    assert monitor.down
    assert monitor.update(9.0, received=99, expecting=True, **UP) == []  # reported once


def test_hold_stops_the_silence_clock_and_resume_restarts_it_from_zero() -> None:
    monitor = connected()
    monitor.update(1.0, received=50, expecting=True, **UP)
    # On hold (either way) for 30 s with nothing received: no warning.
    for t in range(2, 32):
        assert monitor.update(float(t), received=50, expecting=False, **UP) == []
    assert monitor.update(32.9, received=50, expecting=True, **UP) == []
    assert monitor.update(33.0, received=50, expecting=True, **UP) == [MediaSilent(2.0)]


def test_no_grace_never_ends_the_call() -> None:
    monitor = connected(LivenessConfig(no_media_warning=2.0, no_media_grace=None,
                                       ice_disconnected_after=None))
    monitor.update(1.0, received=50, expecting=True, **UP)
    assert monitor.update(3.0, received=50, expecting=True, **UP) == [MediaSilent(2.0)]
    assert monitor.update(500.0, received=50, expecting=True, **UP) == []


def test_transport_changes_are_reported_and_ice_failure_is_media_down() -> None:
    monitor = LivenessMonitor(FAST, 0.0)
    assert monitor.update(0.0, received=0, ice=IceState.CHECKING, dtls=DtlsState.NEW,
                          expecting=True) == [
        MediaTransportChanged(IceState.CHECKING, DtlsState.NEW)
    ]
    events = monitor.update(1.0, received=0, ice=IceState.FAILED, dtls=DtlsState.NEW,
                            expecting=True)
    assert events[0] == MediaTransportChanged(IceState.FAILED, DtlsState.NEW)
    assert isinstance(events[1], MediaDown) and "no candidate pair" in events[1].reason


def test_ice_failing_after_it_connected_is_a_consent_failure() -> None:
    monitor = connected()
    events = monitor.update(40.0, received=90, ice=IceState.FAILED, dtls=DtlsState.CONNECTED,
                            expecting=True)
    assert isinstance(events[-1], MediaDown)
    assert "consent expired, RFC 7675" in events[-1].reason


def test_media_that_never_connects_is_down_after_the_connect_timeout() -> None:
    monitor = LivenessMonitor(FAST, 10.0)
    state = {"ice": IceState.NEW, "dtls": DtlsState.NEW}
    monitor.update(10.0, received=0, expecting=True, **state)
    assert monitor.update(13.9, received=0, expecting=True, **state) == []
    events = monitor.update(14.0, received=0, expecting=True, **state)
    assert events == [MediaDown("media did not connect within 4 s after the answer "
                                "(ICE new, DTLS new)")]


def test_dtls_failure_is_media_down() -> None:
    monitor = LivenessMonitor(FAST, 0.0)
    events = monitor.update(1.0, received=4, ice=IceState.COMPLETED, dtls=DtlsState.FAILED,
                            expecting=True)
    assert isinstance(events[-1], MediaDown) and "DTLS handshake failed" in events[-1].reason


def test_nothing_received_shows_ice_disconnected_before_the_silence_warning() -> None:
    monitor = connected(LivenessConfig(no_media_warning=4.0, no_media_grace=3.0,
                                       ice_disconnected_after=2.0))
    assert monitor.update(1.0, received=50, expecting=True, **UP) == []
    assert monitor.update(2.9, received=50, expecting=True, **UP) == []
    assert monitor.update(3.0, received=50, expecting=True, **UP) == [
        MediaTransportChanged(IceState.DISCONNECTED, DtlsState.CONNECTED)
    ]
    assert monitor.update(4.0, received=50, expecting=True, **UP) == []  # reported once
    assert monitor.update(5.0, received=50, expecting=True, **UP) == [MediaSilent(4.0)]
    # The first packet back: the transport's own state again, then the silence's end.
    assert monitor.update(5.5, received=51, expecting=True, **UP) == [
        MediaTransportChanged(IceState.COMPLETED, DtlsState.CONNECTED),
        MediaFlowing(4.5),
    ]
    assert monitor.update(6.5, received=80, expecting=True, **UP) == []


def test_a_short_gap_goes_back_to_the_transport_state_without_a_silence_warning() -> None:
    monitor = connected(LivenessConfig(no_media_warning=10.0, ice_disconnected_after=2.0))
    monitor.update(1.0, received=50, expecting=True, **UP)
    assert monitor.update(3.5, received=50, expecting=True, **UP) == [
        MediaTransportChanged(IceState.DISCONNECTED, DtlsState.CONNECTED)
    ]
    assert monitor.update(4.0, received=60, expecting=True, **UP) == [
        MediaTransportChanged(IceState.COMPLETED, DtlsState.CONNECTED)
    ]


def test_hold_never_shows_ice_disconnected_and_ends_one() -> None:
    monitor = connected(LivenessConfig(no_media_warning=10.0, ice_disconnected_after=2.0))
    monitor.update(1.0, received=50, expecting=True, **UP)
    for t in range(2, 30):
        assert monitor.update(float(t), received=50, expecting=False, **UP) == []
    # Resumed at 29 s: the clock starts from there.
    assert monitor.update(30.5, received=50, expecting=True, **UP) == []
    assert monitor.update(31.0, received=50, expecting=True, **UP) == [
        MediaTransportChanged(IceState.DISCONNECTED, DtlsState.CONNECTED)
    ]
    # A hold taken while nothing arrives explains the silence: the transport's state again.
    assert monitor.update(31.5, received=50, expecting=False, **UP) == [
        MediaTransportChanged(IceState.COMPLETED, DtlsState.CONNECTED)
    ]


def test_ice_disconnected_comes_no_later_than_the_silence_warning_or_never() -> None:
    capped = connected(LivenessConfig(no_media_warning=2.0, ice_disconnected_after=5.0))
    capped.update(1.0, received=50, expecting=True, **UP)
    assert capped.update(3.0, received=50, expecting=True, **UP) == [
        MediaTransportChanged(IceState.DISCONNECTED, DtlsState.CONNECTED), MediaSilent(2.0)
    ]
    never = connected(LivenessConfig(no_media_warning=2.0, ice_disconnected_after=None))
    never.update(1.0, received=50, expecting=True, **UP)
    assert never.update(3.0, received=50, expecting=True, **UP) == [MediaSilent(2.0)]


@pytest.mark.parametrize(
    ("field", "value"),
    [("no_media_warning", 0), ("no_media_grace", -1), ("connect_timeout", 0),
     ("ice_disconnected_after", 0)],
)
def test_bad_liveness_settings_are_refused_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ConfigurationError, match=field):
        LivenessConfig(**{field: value})  # type: ignore[arg-type]


def test_the_defaults_warn_at_10_s_and_end_at_20_s() -> None:
    config = MediaConfig().liveness
    assert (config.enabled, config.no_media_warning, config.no_media_grace) == (True, 10.0, 10.0)
    assert config.connect_timeout == 15.0 and config.check_interval == 1.0
    assert config.ice_disconnected_after == 5.0


# -- real sessions -----------------------------------------------------------------------------
LOOPBACK = IceConfig(host_addresses=["127.0.0.1"], gather_timeout=1.0)


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(30)
async def test_a_far_end_that_never_answers_ice_is_media_down_within_the_connect_timeout(
) -> None:
    # Our answer goes nowhere: the offerer never applies it, so nothing answers our checks.
    fast = LivenessConfig(no_media_warning=1.0, no_media_grace=1.0, connect_timeout=2.0)
    offerer = MediaSession(config=MediaConfig(ice=LOOPBACK))
    answerer = MediaSession(config=MediaConfig(ice=LOOPBACK, liveness=fast))
    try:
        offer = await offerer.create_offer()
        await offerer.close()  # its port is gone: ICE checks to it get no answer
        await answerer.accept_offer(offer)
        seen: list[MediaHealthEvent] = []
        down = asyncio.Event()

        def listen(event: MediaHealthEvent) -> None:
            seen.append(event)
            if isinstance(event, MediaDown):
                down.set()

        answerer.watch(listen)
        await asyncio.wait_for(down.wait(), 15)
        assert isinstance(seen[-1], MediaDown)
        assert "did not connect within 2 s" in seen[-1].reason or "ICE failed" in seen[-1].reason
        assert any(isinstance(e, MediaTransportChanged) for e in seen)
    finally:
        await offerer.close()
        await answerer.close()


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(30)
async def test_a_connected_pair_reports_its_transport_states_and_stays_quiet() -> None:
    async with connected_pair("PCMU") as (a, b):
        seen: list[MediaHealthEvent] = []
        a.watch(seen.append)
        await asyncio.sleep(1.5)
        assert seen and seen[0] == MediaTransportChanged(IceState.COMPLETED, DtlsState.CONNECTED)
        assert not any(isinstance(e, MediaSilent | MediaDown) for e in seen)
        assert (a.ice_state, a.dtls_state) == (IceState.COMPLETED, DtlsState.CONNECTED)
