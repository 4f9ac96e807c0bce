"""A typed snapshot of one call's media quality: :class:`CallStats`.

:meth:`MediaSession.quality_stats() <exotel_voice.media.session.MediaSession.quality_stats>`
and :meth:`Call.stats() <exotel_voice.client.call.Call.stats>` return one.  The
figures come from two places:

* **our own measurements** of what we send and receive (packet and byte counters, the
  loss, jitter and jitter-buffer delay of the far end's stream as it reaches us, the
  audio levels of the last 20 ms each way);
* **the far end's RTCP reports** (RFC 3550 §6.4): its view of our stream (loss,
  jitter) and the round-trip time computed from the LSR/DLSR of its report blocks
  (RFC 3550 §6.4.1).  These stay ``None`` until a report has arrived.

On the lean media path (the default) RTCP is ours (:mod:`exotel_voice.media.rtcp`); with
``media_path="aiortc"`` or ``EXOTEL_VOICE_AIORTC_COMPAT=off`` the same fields are read
from aiortc's public ``getStats()``, and the jitter-buffer fields are ``None`` (aiortc's
receiver does not report them).

The dataclass is plain data: no method reads the network or a clock, so a warning or
MOS estimator can be tested on hand-made values.
"""

from __future__ import annotations

from dataclasses import dataclass


__all__ = ["CallStats"]


@dataclass(frozen=True, slots=True)
class CallStats:
    """One snapshot of a call's media quality.

    Counters are totals since the media started.  Byte counts are RTP payload bytes
    (after the fixed 12-byte header) before SRTP; telephone-event packets count too.
    ``None`` means "not known (yet)" (no report from the far end, no media, or a
    figure the current media path cannot give), never zero.

    Attributes:
        timestamp: wall-clock time of the snapshot (``time.time()``).
        media_path: ``"lean"`` (our RTP/RTCP path) or ``"aiortc"`` (aiortc's own).
        codec: the negotiated codec (``"opus"``, ``"PCMU"``...), ``None`` before negotiation.
        clock_rate: its RTP clock rate.
        packets_sent: RTP packets we sent.
        bytes_sent: their payload bytes.
        packets_received: RTP packets we received.
        bytes_received: their payload bytes.
        packets_lost: packets of the far end's stream that never reached us (RFC 3550
            cumulative number lost: expected minus received; duplicates can make it
            smaller, never negative here).
        fraction_lost: our loss of the far end's stream over the last report interval,
            0.0 to 1.0 (what our last receiver report said); ``None`` before one.
        jitter_ms: interarrival jitter of the far end's stream as we measure it (RFC 3550
            §6.4.1), milliseconds.
        remote_packets_lost: packets of **our** stream the far end reports lost.
        remote_fraction_lost: the far end's fraction lost of our stream, 0.0 to 1.0.
        remote_jitter_ms: the interarrival jitter of our stream at the far end, ms.
        rtt_ms: round-trip time from the far end's last report (A - LSR - DLSR), ms;
            ``None`` until a report referring to one of our sender reports arrived.
        remote_report_at: wall-clock time the far end's last report arrived.
        jitter_buffer_delay_ms: the delay our jitter buffer currently adds (its target),
            ms; ``None`` on aiortc's path.
        packets_late: packets that arrived after their slot was played (dropped).
        concealed_samples: samples we made up for lost packets (concealment).
        concealment_events: how many times concealment started.
        audio_level_in_dbfs: RMS level of the last 20 ms received, dBFS (-100 is digital
            silence); ``None`` before any audio.
        audio_level_out_dbfs: RMS level of the last 20 ms sent (after mute and hold), dBFS.
    """

    timestamp: float
    media_path: str
    codec: str | None
    clock_rate: int | None
    packets_sent: int
    bytes_sent: int
    packets_received: int
    bytes_received: int
    packets_lost: int
    fraction_lost: float | None
    jitter_ms: float | None
    remote_packets_lost: int | None
    remote_fraction_lost: float | None
    remote_jitter_ms: float | None
    rtt_ms: float | None
    remote_report_at: float | None
    jitter_buffer_delay_ms: float | None
    packets_late: int | None
    concealed_samples: int | None
    concealment_events: int | None
    audio_level_in_dbfs: float | None
    audio_level_out_dbfs: float | None
