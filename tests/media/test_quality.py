"""The E-model MOS estimate (ITU-T G.107) and the quality warnings' monitor, on made-up
figures: each warning fires once its condition holds for ``fire_after`` samples, and
clears once it has been gone for ``clear_after`` samples."""

from __future__ import annotations

import dataclasses

import pytest

from exotel_voice.exceptions import ConfigurationError
from exotel_voice.media import MediaConfig
from exotel_voice.media.liveness import IceState
from exotel_voice.media.quality import (
    QualityAlarm,
    QualityAlarmCleared,
    QualityConfig,
    QualityMonitor,
    QualitySample,
    QualityThresholds,
    QualityWarningKind,
    burst_ratio,
    codec_impairment,
    delay_impairment,
    effective_equipment_impairment,
    estimate_mos,
    one_way_delay_ms,
    r_factor,
    r_to_mos,
)
from exotel_voice.media.quality_stats import CallStats


K = QualityWarningKind


# -- the E-model --------------------------------------------------------------------------------


def test_a_clean_g711_call_rates_93_2_and_mos_4_41() -> None:
    # G.107's default R with no delay impairment and no loss; Annex B gives MOS 4.41.
    assert r_factor(codec="PCMU", loss_percent=0.0, one_way_delay_ms=60.0) == pytest.approx(93.2)
    assert r_to_mos(93.2) == pytest.approx(4.41, abs=0.005)
    assert estimate_mos(codec="PCMA", loss_percent=0, rtt_ms=20, jitter_buffer_ms=20) == 4.41


def test_annex_b_points() -> None:
    # R -> MOS (G.107 Annex B): the bands of G.109's user satisfaction table.
    assert r_to_mos(-5) == 1.0
    assert r_to_mos(0) == 1.0
    assert r_to_mos(50) == pytest.approx(2.58, abs=0.01)
    assert r_to_mos(60) == pytest.approx(3.10, abs=0.01)
    assert r_to_mos(70) == pytest.approx(3.60, abs=0.01)
    assert r_to_mos(80) == pytest.approx(4.02, abs=0.01)
    assert r_to_mos(90) == pytest.approx(4.34, abs=0.01)
    assert r_to_mos(100) == 4.5
    assert r_to_mos(120) == 4.5


def test_ie_eff_matches_g113_for_g711() -> None:
    g711 = codec_impairment("pcmu")
    assert (g711.ie, g711.bpl, g711.bpl_no_plc) == (0.0, 25.1, 4.3)
    # 1 % random loss without concealment: 95 * 1 / (1 + 4.3) = 17.9 -> R 75.3.
    assert effective_equipment_impairment(1.0, g711, plc=False) == pytest.approx(17.92, abs=0.01)
    assert r_factor(codec="PCMU", loss_percent=1, plc=False) == pytest.approx(75.3, abs=0.05)
    # 2 % with concealment: 95 * 2 / (2 + 25.1) = 7.01 -> R 86.2.
    assert r_factor(codec="PCMU", loss_percent=2) == pytest.approx(86.2, abs=0.05)
    # Bursty loss hurts more than the same random loss.
    assert r_factor(codec="PCMU", loss_percent=5, burst_ratio=2.0) < r_factor(
        codec="PCMU", loss_percent=5)
    assert burst_ratio(0.05, 1.0) == pytest.approx(1.0)
    assert burst_ratio(0.05, 4.0) == pytest.approx(3.8)


def test_delay_impairment_is_g107_idd() -> None:
    assert delay_impairment(100) == 0.0
    assert delay_impairment(200) == pytest.approx(3.04, abs=0.01)
    assert delay_impairment(300) == pytest.approx(14.76, abs=0.01)
    assert delay_impairment(500) == pytest.approx(30.64, abs=0.01)
    # Framing: G.711's 20 ms packet; Opus adds its 6.5 ms look-ahead.
    assert one_way_delay_ms(rtt_ms=100, jitter_buffer_ms=40, codec="PCMU") == 110.0
    assert one_way_delay_ms(rtt_ms=None, jitter_buffer_ms=None, codec="opus") == 26.5


def test_mos_falls_monotonically_with_loss_and_delay() -> None:
    for codec in ("PCMU", "opus", "G722", None):
        by_loss = [estimate_mos(codec=codec, loss_percent=p, rtt_ms=50, jitter_buffer_ms=20)
                   for p in (0, 0.5, 1, 2, 5, 10, 20, 40)]
        assert by_loss == sorted(by_loss, reverse=True) and by_loss[0] > by_loss[-1]
        by_rtt = [estimate_mos(codec=codec, loss_percent=1, rtt_ms=rtt, jitter_buffer_ms=20)
                  for rtt in (0, 100, 200, 300, 400, 600, 800, 1200)]
        assert by_rtt == sorted(by_rtt, reverse=True) and by_rtt[0] > by_rtt[-1]
    # Toll quality survives 1 % loss; 10 % loss falls below Twilio's 3.5.
    assert estimate_mos(codec="PCMU", loss_percent=1, rtt_ms=50, jitter_buffer_ms=20) > 4.0
    assert estimate_mos(codec="PCMU", loss_percent=10, rtt_ms=50, jitter_buffer_ms=20) < 3.5


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("rtt_ms", 0), ("rtt_ms", -1), ("jitter_ms", float("nan")), ("loss_percent", 100),
     ("mos", 4.6), ("mos", 1.0), ("silent_mic_s", "10"), ("silent_level_dbfs", 3),
     ("fire_after", 0), ("clear_after", 1.5), ("loss_window", True)],
)
def test_bad_thresholds_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=field):
        QualityThresholds(**{field: value})  # type: ignore[arg-type]


def test_bad_quality_config_names_the_field() -> None:
    with pytest.raises(ConfigurationError, match="sample_interval"):
        QualityConfig(sample_interval=0)
    with pytest.raises(ConfigurationError, match="stats_interval"):
        QualityConfig(stats_interval=-5)
    with pytest.raises(ConfigurationError, match="thresholds"):
        QualityConfig(thresholds={"rtt_ms": 100})  # type: ignore[arg-type]
    assert QualityConfig(stats_interval=None).stats_interval is None
    with pytest.raises(ConfigurationError, match="quality"):
        MediaConfig(quality=QualityThresholds())  # type: ignore[arg-type]
    assert MediaConfig().quality == QualityConfig()
    assert QualityThresholds(rtt_ms=None, mos=None).rtt_ms is None


# -- the monitor --------------------------------------------------------------------------------


class Feed:
    """Samples one second apart into a monitor; the counters grow as the loss says."""

    def __init__(self, **thresholds: object) -> None:
        self.monitor = QualityMonitor(QualityThresholds(**thresholds), now=0.0)  # type: ignore[arg-type]
        self.now = 0.0
        self.received = 0
        self.lost = 0

    def __call__(self, n: int = 1, *, loss: float = 0.0, **fields: object) -> list[object]:
        events: list[object] = []
        for _ in range(n):
            self.now += 1.0
            lost = round(50 * loss / 100)
            self.received += 50 - lost
            self.lost += lost
            base = dict(codec="PCMU", packets_received=self.received, packets_lost=self.lost,
                        jitter_ms=5.0, rtt_ms=40.0, jitter_buffer_ms=20.0,
                        input_level_dbfs=-30.0)
            base.update(fields)
            events += self.monitor.update(self.now, QualitySample(**base))  # type: ignore[arg-type]
        return events


def kinds(events: list[object]) -> list[tuple[str, QualityWarningKind]]:
    return [("raised" if isinstance(e, QualityAlarm) else "cleared", e.kind)  # type: ignore[attr-defined]
            for e in events]


def test_a_clean_call_warns_of_nothing() -> None:
    feed = Feed()
    assert feed(30) == []
    assert feed.monitor.mos == 4.41
    assert feed.monitor.loss_percent == 0.0


def test_high_rtt_fires_after_three_samples_and_clears_after_three() -> None:
    feed = Feed()
    assert feed(2, rtt_ms=650.0) == []
    (raised,) = feed(1, rtt_ms=650.0)
    assert isinstance(raised, QualityAlarm)
    assert (raised.kind, raised.value, raised.threshold) == (K.HIGH_RTT, 650.0, 400.0)
    assert raised.remedy.startswith("high round-trip time (650 ms): ")
    # A single good sample in a bad spell neither clears it nor lets it fire again.
    assert feed(1, rtt_ms=50.0) + feed(3, rtt_ms=700.0) == []
    assert feed(2, rtt_ms=80.0) == []
    (cleared,) = feed(1, rtt_ms=80.0)
    assert cleared == QualityAlarmCleared(K.HIGH_RTT, 80.0)
    assert feed.monitor.active == frozenset()


def test_high_jitter_fires_and_clears() -> None:
    feed = Feed()
    assert kinds(feed(3, jitter_ms=45.0)) == [("raised", K.HIGH_JITTER)]
    assert kinds(feed(3, jitter_ms=10.0)) == [("cleared", K.HIGH_JITTER)]


def test_high_packet_loss_is_measured_over_the_window_and_names_the_percentage() -> None:
    feed = Feed(mos=None)
    feed(3)
    events = feed(3, loss=4.0)
    assert kinds(events) == [("raised", K.HIGH_PACKET_LOSS)]
    alarm = events[0]
    assert isinstance(alarm, QualityAlarm) and alarm.threshold == 1.0
    assert 1.0 < alarm.value <= 4.0
    assert alarm.remedy == (
        f"high packet loss ({alarm.value:.1f}%): the network drops audio; move closer to "
        "the Wi-Fi access point or use a wired connection")
    # The window (5 samples) still holds lost packets for a while after the loss ends.
    events = feed(10)
    assert kinds(events) == [("cleared", K.HIGH_PACKET_LOSS)]
    assert feed.monitor.loss_percent == 0.0


def test_the_far_ends_reported_loss_warns_too() -> None:
    feed = Feed()
    assert kinds(feed(3, remote_loss_percent=6.0)) == [("raised", K.HIGH_PACKET_LOSS)]
    assert kinds(feed(3, remote_loss_percent=0.0)) == [("cleared", K.HIGH_PACKET_LOSS)]


def test_low_mos_fires_under_heavy_loss_and_delay_and_clears() -> None:
    feed = Feed(loss_percent=None)
    events = feed(4, loss=10.0, rtt_ms=300.0)
    assert kinds(events) == [("raised", K.LOW_MOS)]
    assert isinstance(events[0], QualityAlarm) and events[0].value < 3.5
    assert kinds(feed(10, rtt_ms=40.0)) == [("cleared", K.LOW_MOS)]


def test_silent_microphone_while_unmuted_fires_and_clears_on_sound() -> None:
    feed = Feed(silent_mic_s=4.0)
    assert feed(3, input_level_dbfs=-100.0) == []
    (raised,) = feed(2, input_level_dbfs=-100.0)
    assert isinstance(raised, QualityAlarm)
    assert (raised.kind, raised.value, raised.threshold) == (
        K.CONSTANT_AUDIO_INPUT_LEVEL, -100.0, -70.0)
    assert feed(3, input_level_dbfs=-100.0) == []
    assert feed(1, input_level_dbfs=-25.0) == [
        QualityAlarmCleared(K.CONSTANT_AUDIO_INPUT_LEVEL, -25.0)]


def test_silence_while_muted_or_held_is_no_warning() -> None:
    feed = Feed(silent_mic_s=3.0)
    assert feed(10, input_level_dbfs=-100.0, muted=True) == []
    assert feed(10, input_level_dbfs=-100.0, held=True) == []
    # Muting after the warning clears it: the silence is explained.
    assert kinds(feed(4, input_level_dbfs=-100.0)) == [
        ("raised", K.CONSTANT_AUDIO_INPUT_LEVEL)]
    assert kinds(feed(1, input_level_dbfs=-100.0, muted=True)) == [
        ("cleared", K.CONSTANT_AUDIO_INPUT_LEVEL)]


def test_on_hold_what_we_receive_is_not_judged() -> None:
    feed = Feed()
    # Held, the far end sends hold music or nothing: no loss, jitter or MOS warning.
    assert feed(10, held=True, jitter_ms=90.0, packets_lost=10_000) == []


def test_ice_disconnected_warns_at_once_and_clears_when_connected() -> None:
    monitor = QualityMonitor(QualityThresholds(), now=0.0)
    assert monitor.ice_changed(IceState.CHECKING) == []
    assert monitor.ice_changed(IceState.COMPLETED) == []
    (raised,) = monitor.ice_changed(IceState.DISCONNECTED)
    assert isinstance(raised, QualityAlarm) and raised.kind is K.ICE_DISCONNECTED
    assert monitor.ice_changed(IceState.DISCONNECTED) == []
    assert monitor.ice_changed(IceState.CONNECTED) == [
        QualityAlarmCleared(K.ICE_DISCONNECTED, 0.0)]
    off = QualityMonitor(QualityThresholds(ice_disconnected=False), now=0.0)
    assert off.ice_changed(IceState.DISCONNECTED) == []


def test_a_threshold_of_none_turns_its_warning_off() -> None:
    feed = Feed(rtt_ms=None, jitter_ms=None, loss_percent=None, mos=None, silent_mic_s=None)
    assert feed(20, rtt_ms=900.0, jitter_ms=90.0, loss=20.0, input_level_dbfs=-100.0) == []


def test_a_sample_from_call_stats() -> None:
    stats = CallStats(
        timestamp=0.0, media_path="lean", codec="opus", clock_rate=48000, packets_sent=10,
        bytes_sent=800, packets_received=9, bytes_received=700, packets_lost=1,
        fraction_lost=0.1, jitter_ms=3.0, remote_packets_lost=2, remote_fraction_lost=0.05,
        remote_jitter_ms=4.0, rtt_ms=30.0, remote_report_at=None, jitter_buffer_delay_ms=40.0,
        packets_late=0, concealed_samples=0, concealment_events=0, audio_level_in_dbfs=-20.0,
        audio_level_out_dbfs=-100.0,
    )
    sample = QualitySample.of(stats, muted=True, held=False)
    assert sample == QualitySample(
        codec="opus", packets_received=9, packets_lost=1, remote_loss_percent=5.0,
        jitter_ms=3.0, rtt_ms=30.0, jitter_buffer_ms=40.0, input_level_dbfs=-100.0,
        muted=True, held=False)
    assert dataclasses.replace(sample, muted=False).muted is False
