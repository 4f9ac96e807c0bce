"""How good does the call sound? A MOS estimate, and warnings when quality drops.

Two pieces, both sans-I/O (no clock, no asyncio: the caller passes the time and the
measurements in):

**The E-model** (ITU-T G.107): :func:`r_factor` turns one-way delay, packet loss and the
codec into the transmission rating ``R``, and :func:`r_to_mos` turns ``R`` into an
estimated mean opinion score (MOS, 1-4.5). With every other G.107 parameter at its
default, ``R = 93.2 - Id - Ie,eff + A``:

* ``93.2`` is ``R0 - Is`` with G.107's default values (noise, loudness, sidetone): a
  clear narrow-band call with no delay and no loss.
* ``Id`` is the delay impairment.  Only G.107's ``Idd`` term (§7.4, eqs. 7-27/7-28) is
  used: the impairment of a long absolute one-way delay ``Ta``, zero up to 100 ms, about
  3.0 at 200 ms and 14.8 at 300 ms.  The talker- and listener-echo terms (``Idte``,
  ``Idle``) are taken as their defaults (echo well cancelled, as in every WebRTC end
  point), which the 93.2 already holds.
* ``Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl)`` (G.107 eq. 7-29): the codec's
  own impairment ``Ie`` and its robustness to loss ``Bpl``, with ``Ppl`` the packet loss
  in percent and ``BurstR`` the burst ratio (1 for random loss, above 1 for bursty loss:
  :func:`burst_ratio`).
* ``A``, the advantage factor (0 for a wired phone, up to 10 for mobile: G.107 Table 3),
  is 0 unless given.

``R -> MOS`` is G.107 Annex B (eq. B-4). A G.711 call without loss and with less than
100 ms one way gives ``R = 93.2``, MOS 4.41.

The codec values (:data:`CODEC_IMPAIRMENTS`) are ITU-T G.113 Appendix I's for G.711
(``Ie = 0``; ``Bpl = 4.3`` without concealment, ``25.1`` with G.711 Appendix I
concealment, which the lean receive path does).  G.113 gives no value for Opus, nor a
narrow-band value for G.722; both are treated as G.711 with concealment (``Ie = 0``,
``Bpl = 25.1``): at the bit rates a call uses, Opus (and G.722) are at least as good as
G.711 on the narrow-band scale (Rämö and Toukomaa, "Voice quality characterization of
IETF Opus codec", Interspeech 2011, found Opus at 20 kbit/s and above at or above G.711's
narrow-band scores), and Opus's own concealment and in-band FEC are at least as robust as
G.711 Appendix I, so the estimate errs on the low side.  The wide-band benefit (G.107.1's
extended scale) is not counted: the MOS here is on the narrow-band scale, the one phone
networks report.

**Warnings**: :class:`QualityMonitor` is fed a :class:`QualitySample` every
:attr:`QualityConfig.sample_interval` seconds (the call's stats, :meth:`Call.stats()
<exotel_voice.client.call.Call.stats>`, reduced to what it needs) and reports
:class:`QualityAlarm` when a condition has held for
:attr:`QualityThresholds.fire_after` samples in a row, and :class:`QualityAlarmCleared`
once it has been gone for :attr:`QualityThresholds.clear_after` samples in a row, so a
single bad sample neither raises nor clears a warning (Twilio's SDKs use "3 out of the
last 5 samples", sampled each second).  The kinds (:class:`QualityWarningKind`) follow
Twilio's names: ``high-rtt``, ``high-jitter``, ``high-packet-loss``, ``low-mos``,
``constant-audio-input-level`` (our microphone sends near-silence while the call is not
muted or held), and ``ice-disconnected`` (the media liveness watch reports the ICE state
``disconnected``: nothing from the far end for
:attr:`~exotel_voice.media.config.LivenessConfig.ice_disconnected_after` seconds;
:meth:`QualityMonitor.ice_changed`; no hysteresis, the state is already a verdict).
Nothing arriving for longer is also the liveness watch's :class:`NoMediaWarning
<exotel_voice.client.events.NoMediaWarning>`.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..exceptions import ConfigurationError
from .quality_stats import CallStats


if TYPE_CHECKING:  # liveness imports config, which imports this module
    from .liveness import IceState


__all__ = [
    "CODEC_IMPAIRMENTS",
    "CodecImpairment",
    "QualityAlarm",
    "QualityAlarmCleared",
    "QualityConfig",
    "QualityEvent",
    "QualityMonitor",
    "QualitySample",
    "QualityThresholds",
    "QualityWarningKind",
    "burst_ratio",
    "codec_impairment",
    "delay_impairment",
    "effective_equipment_impairment",
    "estimate_mos",
    "one_way_delay_ms",
    "r_factor",
    "r_to_mos",
]

#: ``R0 - Is`` (and the default echo terms of ``Id``) with G.107's default parameters.
R_DEFAULT = 93.2


# -- the E-model -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodecImpairment:
    """What a codec contributes to the E-model.

    Attributes:
        ie: the equipment impairment factor ``Ie`` (G.113 Appendix I).
        bpl: the packet-loss robustness factor ``Bpl`` (with the receiver's concealment).
        bpl_no_plc: ``Bpl`` when lost packets are not concealed.
        frame_ms: the packet's audio (the packetisation delay: a packet leaves when its
            last sample is in).
        lookahead_ms: the encoder's algorithmic delay beyond the frame.
        source: where the values come from.
    """

    ie: float
    bpl: float
    bpl_no_plc: float
    frame_ms: float = 20.0
    lookahead_ms: float = 0.0
    source: str = ""


_G711 = CodecImpairment(
    ie=0.0, bpl=25.1, bpl_no_plc=4.3, source="ITU-T G.113 Appendix I (G.711, Appendix I PLC)"
)

#: E-model values by lower-case SDP encoding name (see the module docstring for sources).
CODEC_IMPAIRMENTS: dict[str, CodecImpairment] = {
    "pcmu": _G711,
    "pcma": _G711,
    "g722": CodecImpairment(
        ie=0.0, bpl=25.1, bpl_no_plc=4.3, lookahead_ms=1.5,
        source="no narrow-band G.113 value: taken as G.711 with PLC",
    ),
    "opus": CodecImpairment(
        ie=0.0, bpl=25.1, bpl_no_plc=4.3, lookahead_ms=6.5,
        source="no G.113 value: taken as G.711 with PLC (Opus is at least as good on the "
               "narrow-band scale; RFC 6716's 20 ms frame + 6.5 ms look-ahead)",
    ),
}


def codec_impairment(codec: str | None) -> CodecImpairment:
    """The E-model values of ``codec`` (an SDP encoding name, any case); an unknown codec
    or ``None`` gets G.711's."""
    return CODEC_IMPAIRMENTS.get((codec or "pcmu").lower(), _G711)


def one_way_delay_ms(
    *, rtt_ms: float | None, jitter_buffer_ms: float | None, codec: str | None = None
) -> float:
    """G.107's absolute one-way delay ``Ta`` of what we hear: half the round trip (the
    network, as RTCP measures it), our jitter buffer's delay, and the codec's framing
    (packetisation + look-ahead). An unknown RTT or buffer delay counts as 0."""
    impairment = codec_impairment(codec)
    return (
        max(0.0, rtt_ms or 0.0) / 2.0
        + max(0.0, jitter_buffer_ms or 0.0)
        + impairment.frame_ms
        + impairment.lookahead_ms
    )


def delay_impairment(ta_ms: float) -> float:
    """G.107's ``Idd`` (§7.4 eq. 7-28, ``mT = 100`` ms, ``sT = 1``): 0 up to 100 ms one way,
    then growing (about 3.0 at 200 ms, 14.8 at 300 ms, 30.6 at 500 ms)."""
    if ta_ms <= 100.0:
        return 0.0
    x = math.log10(ta_ms / 100.0) / math.log10(2.0)
    root: float = (1.0 + x**6) ** (1 / 6) - 3.0 * (1.0 + (x / 3.0) ** 6) ** (1 / 6) + 2.0
    return 25.0 * root


def effective_equipment_impairment(
    loss_percent: float, impairment: CodecImpairment, *, burst_ratio: float = 1.0,
    plc: bool = True,
) -> float:
    """G.107's ``Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl)`` (eq. 7-29)."""
    ppl = min(100.0, max(0.0, loss_percent))
    bpl = impairment.bpl if plc else impairment.bpl_no_plc
    burst = max(1.0, burst_ratio)
    return impairment.ie + (95.0 - impairment.ie) * ppl / (ppl / burst + bpl)


def burst_ratio(loss_fraction: float, mean_burst_length: float) -> float:
    """G.107's ``BurstR`` for a two-state (Gilbert) loss process: the mean length of a loss
    burst observed, over the mean length expected if the same loss were random:
    ``BurstR = mean_burst_length * (1 - loss_fraction)`` (1 for random loss)."""
    if not 0.0 <= loss_fraction < 1.0 or mean_burst_length < 1.0:
        return 1.0
    return max(1.0, mean_burst_length * (1.0 - loss_fraction))


def r_factor(
    *,
    codec: str | None = None,
    loss_percent: float = 0.0,
    one_way_delay_ms: float = 0.0,
    burst_ratio: float = 1.0,
    advantage: float = 0.0,
    plc: bool = True,
) -> float:
    """The E-model's transmission rating ``R = 93.2 - Idd - Ie,eff + A`` (G.107; see the
    module docstring). Not clipped: below 0 or above 100 :func:`r_to_mos` clips."""
    impairment = codec_impairment(codec)
    ie_eff = effective_equipment_impairment(
        loss_percent, impairment, burst_ratio=burst_ratio, plc=plc
    )
    return R_DEFAULT - delay_impairment(one_way_delay_ms) - ie_eff + advantage


def r_to_mos(r: float) -> float:
    """G.107 Annex B (eq. B-4): the estimated MOS (conversational quality, 1-4.5) of ``R``."""
    if r <= 0.0:
        return 1.0
    if r >= 100.0:
        return 4.5
    return 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6


def estimate_mos(
    *,
    codec: str | None,
    loss_percent: float,
    rtt_ms: float | None,
    jitter_buffer_ms: float | None,
    burst_ratio: float = 1.0,
    advantage: float = 0.0,
) -> float:
    """The MOS of a call's received audio, from what its stats hold (rounded to 0.01)."""
    ta = one_way_delay_ms(rtt_ms=rtt_ms, jitter_buffer_ms=jitter_buffer_ms, codec=codec)
    r = r_factor(codec=codec, loss_percent=loss_percent, one_way_delay_ms=ta,
                 burst_ratio=burst_ratio, advantage=advantage)
    return round(r_to_mos(r), 2)


# -- configuration ------------------------------------------------------------------------------


def _check_limit(name: str, value: float | None, *, low: float = 0.0,
                 high: float = math.inf) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigurationError(name, f"must be a number or None, not {value!r}")
    if not low < value < high:
        span = f"above {low:g}" if high == math.inf else f"between {low:g} and {high:g}"
        raise ConfigurationError(name, f"must be {span}, or None to turn it off")


@dataclass(frozen=True, kw_only=True)
class QualityThresholds:
    """When a quality warning fires. ``None`` turns that warning off.

    The defaults are those of Twilio's Voice SDKs (Voice Insights "network warnings":
    RTT above 400 ms, jitter above 30 ms, packet loss above 1 %, MOS below 3.5, each in 3
    samples out of 5 taken a second apart), which their FAQ says follow ITU-T guidance and
    lean toward sensitivity.

    Attributes:
        rtt_ms: round-trip time (RTCP) above this warns ``high-rtt``. Default 400 ms.
        jitter_ms: interarrival jitter of what we receive (RFC 3550) above this warns
            ``high-jitter``. Default 30 ms.
        loss_percent: packet loss above this, in percent, over the last
            :attr:`loss_window` samples (ours, or the far end's for what we send, from its
            RTCP report, whichever is worse), warns ``high-packet-loss``. Default 1 %.
        mos: the estimated MOS below this warns ``low-mos``. Default 3.5.
        silent_mic_s: what we send (the call's source) below :attr:`silent_level_dbfs`
            for this many seconds while the call is neither muted nor held warns
            ``constant-audio-input-level``. Default 10 s.
        silent_level_dbfs: the RMS level, in dBFS, below which what we send counts as
            silent. Default -70 dBFS (a live microphone's own noise is above; digital
            silence is -100 in :class:`CallStats`).
        ice_disconnected: warn ``ice-disconnected`` while the ICE state is reported as
            ``disconnected`` (nothing received for
            ``LivenessConfig.ice_disconnected_after`` seconds, 5 by default).
        loss_window: samples the loss is measured over. Default 5.
        fire_after: a condition must hold in this many samples in a row to warn. Default 3.
        clear_after: a warning clears once its condition has been gone this many samples
            in a row. Default 3.
    """

    rtt_ms: float | None = 400.0
    jitter_ms: float | None = 30.0
    loss_percent: float | None = 1.0
    mos: float | None = 3.5
    silent_mic_s: float | None = 10.0
    silent_level_dbfs: float = -70.0
    ice_disconnected: bool = True
    loss_window: int = 5
    fire_after: int = 3
    clear_after: int = 3

    def __post_init__(self) -> None:
        _check_limit("rtt_ms", self.rtt_ms)
        _check_limit("jitter_ms", self.jitter_ms)
        _check_limit("loss_percent", self.loss_percent, high=100.0)
        _check_limit("mos", self.mos, low=1.0, high=4.5)
        _check_limit("silent_mic_s", self.silent_mic_s)
        _check_limit("silent_level_dbfs", self.silent_level_dbfs, low=-100.0, high=0.0)
        for name in ("loss_window", "fire_after", "clear_after"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(name, f"must be a whole number of samples >= 1, "
                                               f"not {value!r}")


@dataclass(frozen=True, kw_only=True)
class QualityConfig:
    """A call's stats events and quality warnings (``MediaConfig.quality``).

    Attributes:
        enabled: sample the call's stats and warn at all (``False``: no quality warnings
            and no :class:`CallStatsUpdated <exotel_voice.client.events.CallStatsUpdated>`).
        sample_interval: seconds between the samples the warnings are judged on.
            Default 1 s (as Twilio's SDKs).
        stats_interval: seconds between ``CallStatsUpdated`` events (the guide face's
            quality callback with ``type`` ``"stats"``); ``None``: none. Default 5 s.
        thresholds: when each warning fires (:class:`QualityThresholds`).
    """

    enabled: bool = True
    sample_interval: float = 1.0
    stats_interval: float | None = 5.0
    thresholds: QualityThresholds = field(default_factory=QualityThresholds)

    def __post_init__(self) -> None:
        _check_limit("sample_interval", self.sample_interval)
        _check_limit("stats_interval", self.stats_interval)
        if not isinstance(self.thresholds, QualityThresholds):
            raise ConfigurationError("thresholds", "must be a QualityThresholds")


# -- the monitor --------------------------------------------------------------------------------


class QualityWarningKind(enum.StrEnum):
    """What a quality warning is about (a ``str``: Twilio's warning names where it has one)."""

    HIGH_RTT = "high-rtt"
    HIGH_JITTER = "high-jitter"
    HIGH_PACKET_LOSS = "high-packet-loss"
    LOW_MOS = "low-mos"
    CONSTANT_AUDIO_INPUT_LEVEL = "constant-audio-input-level"
    ICE_DISCONNECTED = "ice-disconnected"


_REMEDIES: dict[QualityWarningKind, str] = {
    QualityWarningKind.HIGH_RTT: (
        "audio takes long to cross the network, so the parties talk over each other; use "
        "a closer or less loaded network (a wired connection, not a VPN or a mobile "
        "data link)"
    ),
    QualityWarningKind.HIGH_JITTER: (
        "packets arrive unevenly, so audio is delayed or breaks up; stop other uploads "
        "and downloads or move closer to the Wi-Fi access point"
    ),
    QualityWarningKind.HIGH_PACKET_LOSS: (
        "the network drops audio; move closer to the Wi-Fi access point or use a wired "
        "connection"
    ),
    QualityWarningKind.LOW_MOS: (
        "the call sounds poor (delay and loss together); use a better network, a wired "
        "connection if possible"
    ),
    QualityWarningKind.CONSTANT_AUDIO_INPUT_LEVEL: (
        "the far end hears silence though the call is not muted; check the microphone "
        "is plugged in, selected and not muted in the system"
    ),
    QualityWarningKind.ICE_DISCONNECTED: (
        "the media path stopped answering connectivity checks; check the network "
        "connection (it may come back by itself)"
    ),
}


def _describe(kind: QualityWarningKind, value: float) -> str:
    match kind:
        case QualityWarningKind.HIGH_RTT:
            return f"high round-trip time ({value:.0f} ms)"
        case QualityWarningKind.HIGH_JITTER:
            return f"high jitter ({value:.0f} ms)"
        case QualityWarningKind.HIGH_PACKET_LOSS:
            return f"high packet loss ({value:.1f}%)"
        case QualityWarningKind.LOW_MOS:
            return f"low estimated MOS ({value:.2f})"
        case QualityWarningKind.CONSTANT_AUDIO_INPUT_LEVEL:
            return f"silent microphone ({value:.0f} dBFS)"
    return "ICE disconnected"


@dataclass(frozen=True)
class QualityAlarm:
    """A quality condition has held long enough to warn about.

    Attributes:
        kind: what about.
        value: the measured value (ms, percent, MOS, dBFS; 1 for ICE disconnected).
        threshold: the threshold it crossed.
        remedy: a one-line description with what to do, e.g. "high packet loss (4.2%):
            the network drops audio; move closer to the Wi-Fi access point or use a wired
            connection".
    """

    kind: QualityWarningKind
    value: float
    threshold: float
    remedy: str


@dataclass(frozen=True)
class QualityAlarmCleared:
    """A warned-about condition is gone: ``value`` is the measured value now."""

    kind: QualityWarningKind
    value: float


@dataclass(frozen=True, kw_only=True)
class QualitySample:
    """What :class:`QualityMonitor` needs of one stats snapshot (``None``: not known).

    Attributes:
        codec: the SDP encoding name.
        packets_received: RTP packets received so far (a counter).
        packets_lost: RTP packets lost so far in what we receive (a counter).
        remote_loss_percent: the far end's loss of what we send, in percent, from its
            last RTCP report.
        jitter_ms: interarrival jitter of what we receive.
        rtt_ms: the round-trip time from RTCP.
        jitter_buffer_ms: how long our jitter buffer holds audio.
        input_level_dbfs: the RMS level of what we send, dBFS (-100: digital silence).
        muted: whether the call is muted.
        held: whether either side holds the call.
    """

    codec: str | None = None
    packets_received: int | None = None
    packets_lost: int | None = None
    remote_loss_percent: float | None = None
    jitter_ms: float | None = None
    rtt_ms: float | None = None
    jitter_buffer_ms: float | None = None
    input_level_dbfs: float | None = None
    muted: bool = False
    held: bool = False

    @classmethod
    def of(cls, stats: CallStats, *, muted: bool, held: bool) -> QualitySample:
        """The sample in a call's :class:`CallStats`."""
        remote = stats.remote_fraction_lost
        return cls(
            codec=stats.codec,
            packets_received=stats.packets_received,
            packets_lost=stats.packets_lost,
            remote_loss_percent=None if remote is None else 100.0 * remote,
            jitter_ms=stats.jitter_ms,
            rtt_ms=stats.rtt_ms,
            jitter_buffer_ms=stats.jitter_buffer_delay_ms,
            input_level_dbfs=stats.audio_level_out_dbfs,
            muted=muted,
            held=held,
        )


QualityEvent = QualityAlarm | QualityAlarmCleared


class _Hysteresis:
    """Raised after ``fire_after`` bad samples in a row, cleared after ``clear_after`` good."""

    def __init__(self, fire_after: int, clear_after: int) -> None:
        self.fire_after = fire_after
        self.clear_after = clear_after
        self.active = False
        self._bad = 0
        self._good = 0

    def feed(self, bad: bool | None) -> bool | None:
        """``True``: raise now; ``False``: clear now; ``None``: nothing changes.
        ``bad`` ``None`` (no measurement) leaves the counts as they are."""
        if bad is None:
            return None
        if bad:
            self._bad, self._good = self._bad + 1, 0
            if not self.active and self._bad >= self.fire_after:
                self.active = True
                return True
        else:
            self._good, self._bad = self._good + 1, 0
            if self.active and self._good >= self.clear_after:
                self.active = False
                return False
        return None


class QualityMonitor:
    """Judges a call's quality from periodic samples (sans-I/O; see the module docstring).

    Args:
        thresholds: when to warn.
        now: the time the monitor starts (any monotonic clock, in seconds).
    """

    def __init__(self, thresholds: QualityThresholds, now: float) -> None:
        self.thresholds = thresholds
        t = thresholds
        self._states = {kind: _Hysteresis(t.fire_after, t.clear_after)
                        for kind in QualityWarningKind}
        self._counters: deque[tuple[int, int]] = deque(maxlen=t.loss_window + 1)
        self._loud_at = now  # the last time the source was heard (or could not be)
        self._ice_down = False
        #: The last sample's estimated MOS (``None`` before one could be made).
        self.mos: float | None = None
        #: The last sample's packet loss in percent over the window (``None``: unknown).
        self.loss_percent: float | None = None

    @property
    def active(self) -> frozenset[QualityWarningKind]:
        """The warnings raised and not cleared."""
        return frozenset(k for k, s in self._states.items() if s.active)

    def update(self, now: float, sample: QualitySample) -> list[QualityEvent]:
        """Judge one sample taken at ``now``; returns what was raised or cleared."""
        t = self.thresholds
        events: list[QualityEvent] = []
        local_loss = self._window_loss(sample)
        losses = [x for x in (local_loss, sample.remote_loss_percent) if x is not None]
        self.loss_percent = max(losses) if losses else None
        # Held either way, what we receive says nothing (hold music, or nothing at all):
        # only the round trip (RTCP goes on) is judged.
        receiving = not sample.held
        if receiving:
            self.mos = estimate_mos(
                codec=sample.codec, loss_percent=local_loss or 0.0, rtt_ms=sample.rtt_ms,
                jitter_buffer_ms=sample.jitter_buffer_ms,
            )
        self._judge(events, QualityWarningKind.HIGH_RTT, sample.rtt_ms, t.rtt_ms, above=True)
        jitter = sample.jitter_ms if receiving else None
        self._judge(events, QualityWarningKind.HIGH_JITTER, jitter, t.jitter_ms, above=True)
        loss = self.loss_percent if receiving else None
        self._judge(events, QualityWarningKind.HIGH_PACKET_LOSS, loss, t.loss_percent,
                    above=True)
        mos = self.mos if receiving and local_loss is not None else None
        self._judge(events, QualityWarningKind.LOW_MOS, mos, t.mos, above=False)
        self._judge_mic(events, now, sample)
        return events

    def ice_changed(self, ice: IceState) -> list[QualityEvent]:
        """The ICE transport's new state: ``disconnected`` warns, ``connected`` or
        ``completed`` clears (``failed`` ends the call: the liveness watch reports it)."""
        if not self.thresholds.ice_disconnected:
            return []
        state = self._states[QualityWarningKind.ICE_DISCONNECTED]
        kind = QualityWarningKind.ICE_DISCONNECTED
        if ice == "disconnected" and not state.active:
            state.active = True
            return [QualityAlarm(kind, 1.0, 1.0, f"{_describe(kind, 1.0)}: {_REMEDIES[kind]}")]
        if ice in ("connected", "completed") and state.active:
            state.active = False
            return [QualityAlarmCleared(kind, 0.0)]
        return []

    def _window_loss(self, sample: QualitySample) -> float | None:
        if sample.packets_received is None or sample.packets_lost is None:
            return None
        counters = (sample.packets_received, sample.packets_lost)
        if self._counters and (counters[0] < self._counters[-1][0]
                               or counters[1] < self._counters[-1][1]):
            self._counters.clear()  # counters went back (a new stream): start again
        self._counters.append(counters)
        if len(self._counters) < 2:
            return None
        received = counters[0] - self._counters[0][0]
        lost = counters[1] - self._counters[0][1]
        if received + lost <= 0:
            return None
        return round(100.0 * lost / (received + lost), 2)

    def _judge(self, events: list[QualityEvent], kind: QualityWarningKind,
               value: float | None, threshold: float | None, *, above: bool) -> None:
        if threshold is None:
            return
        bad = None if value is None else (value > threshold if above else value < threshold)
        self._emit(events, kind, value, threshold, self._states[kind].feed(bad))

    def _judge_mic(self, events: list[QualityEvent], now: float,
                   sample: QualitySample) -> None:
        t = self.thresholds
        kind = QualityWarningKind.CONSTANT_AUDIO_INPUT_LEVEL
        level = sample.input_level_dbfs
        if t.silent_mic_s is None:
            return
        state = self._states[kind]
        if level is None or sample.muted or sample.held:
            # Not judged: the clock restarts; a raised warning clears (the user muted or
            # held the call, which explains the silence).
            self._loud_at = now
            if state.active and (sample.muted or sample.held):
                state.active = False
                events.append(QualityAlarmCleared(kind, -100.0 if level is None else level))
            return
        if level >= t.silent_level_dbfs:
            self._loud_at = now
        silent = now - self._loud_at >= t.silent_mic_s
        # The time condition is the hysteresis for raising; a sound clears at once.
        if silent and not state.active:
            state.active = True
            events.append(QualityAlarm(kind, level, t.silent_level_dbfs,
                                       f"{_describe(kind, level)}: {_REMEDIES[kind]}"))
        elif not silent and state.active:
            state.active = False
            events.append(QualityAlarmCleared(kind, level))

    @staticmethod
    def _emit(events: list[QualityEvent], kind: QualityWarningKind, value: float | None,
              threshold: float, change: bool | None) -> None:
        if change is None or value is None:
            return
        if change:
            events.append(QualityAlarm(kind, value, threshold,
                                       f"{_describe(kind, value)}: {_REMEDIES[kind]}"))
        else:
            events.append(QualityAlarmCleared(kind, value))
