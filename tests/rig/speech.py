"""Speech through a call, scored with PESQ (ITU-T P.862): generation, playout, alignment.

* :func:`make_speech`: a speech sample made with Debian's ``espeak-ng`` (about 8 s of
  English, three Harvard sentences, a male voice) resampled with ``sox`` to the rate
  asked (8 kHz for narrow-band, 16 kHz for wide-band, 48 kHz to send as Opus), with 0.3 s of silence
  before and after (PESQ wants speech framed by silence).  Made once per directory.
* :class:`SpeechSource`: an :class:`~exotel_voice.media.AudioSource` that sends
  ``lead`` seconds of silence, the speech, then ``tail`` seconds of silence, and notes
  the wall-clock time the speech's first sample is handed to the send path
  (``sent_at``).
* :class:`PlayoutRecorder`: an :class:`~exotel_voice.media.AudioSink` (or fed by hand)
  that keeps each delivered chunk with its wall-clock hand-over time, and turns them
  into what a playout device with ``device_ms`` of buffer would play
  (:meth:`PlayoutRecorder.timeline`): a chunk plays when it arrives plus the buffer, or
  right after the previous chunk if that is later; a gap when nothing arrived in time
  plays silence, as a sound card's underflow does.  The same model is applied to every
  receiver measured, so a receive path that hands frames over late, in bursts or not at
  all is heard as such.
* :func:`measure`: aligns the played signal to the original by cross-correlation
  (the lag of the peak gives the start) and scores the aligned part with ``pesq``
  (``nb`` at 8 kHz, ``wb`` at 16 kHz); the one-way latency (:func:`handover_latency`)
  comes from the same alignment, refined per 0.5 s segment of speech on the stream as
  handed over (no model device): receive hand-over minus send hand-over, as in
  bench/media_latency.py, the median over the segments (so a receive path whose delay
  changes during the call is given its typical delay, not its delay at the start).
"""

from __future__ import annotations

import shutil
import subprocess
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exotel_voice.media.pcm import Samples, resample_all, samples_per_frame
from exotel_voice.media.sinks import AudioSink
from exotel_voice.media.sources import AudioSource


#: Three Harvard sentences (IEEE 1969), one per string.
SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "These days a chicken leg is a rare dish.",
)
#: espeak-ng's settings: voice, words per minute, pitch.
VOICE = ("en-us", 150, 45)
PAD_S = 0.3


class SpeechError(RuntimeError):
    """The speech sample cannot be made (a tool is missing or failed)."""


def missing_tools() -> list[str]:
    """The programs :func:`make_speech` needs that are not installed."""
    return [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]


def read_wav(path: Path) -> tuple[Samples, int]:
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise SpeechError(f"{path.name}: not 16-bit mono PCM")
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)
        return data, wav.getframerate()


def write_wav(path: Path, samples: Samples, rate: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.asarray(samples, dtype="<i2").tobytes())


def make_speech(directory: Path, rate: int, sentences: int = len(SENTENCES)) -> Samples:
    """The speech sample at ``rate`` Hz, the first ``sentences`` of :data:`SENTENCES`
    (all three: 8.7 s; two: 6.1 s), made in ``directory`` the first time."""
    if not 1 <= sentences <= len(SENTENCES):
        raise ValueError(f"sentences must be 1-{len(SENTENCES)}, got {sentences!r}")
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"speech_{sentences}_{rate}.wav"
    if not out.exists():
        missing = missing_tools()
        if missing:
            raise SpeechError(f"missing programs: {', '.join(missing)} (apt-get install them)")
        raw = directory / f"speech_{sentences}_espeak.wav"
        if not raw.exists():
            voice, wpm, pitch = VOICE
            cmd = [
                "espeak-ng",
                "-v",
                voice,
                "-s",
                str(wpm),
                "-p",
                str(pitch),
                "-w",
                str(raw),
                " ".join(SENTENCES[:sentences]),
            ]
            _run(cmd)
        tmp = directory / f"speech_{sentences}_{rate}.tmp.wav"
        # Resample (sox's default very-high-quality filter), normalise to -3 dBFS peak and
        # frame with silence.
        _run(
            ["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(tmp),
             "gain", "-n", "-3", "pad", str(PAD_S), str(PAD_S)]
        )  # fmt: skip
        tmp.replace(out)
    data, got = read_wav(out)
    if got != rate:
        raise SpeechError(f"{out.name}: {got} Hz, expected {rate}")
    return data


def _run(cmd: list[str]) -> None:
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SpeechError(f"{cmd[0]} failed: {exc}") from exc


class SpeechSource(AudioSource):
    """Silence for ``lead`` s, the speech, silence for ``tail`` s, then finished.

    ``speech`` is the sample at ``rate``; other send rates get it resampled once.
    ``sent_at``: ``time.time()`` when the frame holding the speech's first sample was
    read by the send path (None until then).
    """

    def __init__(self, speech: Samples, rate: int, *, lead: float = 1.0, tail: float = 1.0):
        super().__init__()
        self.speech = speech
        self.rate = rate
        self.lead = lead
        self.tail = tail
        self._frame = 0
        self._signals: dict[int, tuple[Samples, int]] = {}
        self.sent_at: float | None = None

    def _signal(self, rate: int) -> tuple[Samples, int]:
        cached = self._signals.get(rate)
        if cached is None:
            speech = resample_all(self.speech, self.rate, rate)
            lead = int(round(self.lead * rate))
            signal = np.concatenate(
                [np.zeros(lead, np.int16), speech, np.zeros(int(self.tail * rate), np.int16)]
            )
            cached = self._signals[rate] = (signal, lead)
        return cached

    def read(self, sample_rate: int) -> Samples | None:
        if self.finished:
            return None
        signal, lead = self._signal(sample_rate)
        n = samples_per_frame(sample_rate)
        start = self._frame * n
        self._frame += 1
        if start >= signal.size:
            self._finish()
            return None
        if self.sent_at is None and start + n > lead:
            self.sent_at = time.time() + (lead - start) / sample_rate
        chunk = signal[start : start + n]
        if chunk.size < n:
            chunk = np.concatenate([chunk, np.zeros(n - chunk.size, np.int16)])
        return chunk


class PlayoutRecorder(AudioSink):
    """Keeps ``(time.time(), samples, rate)`` of every chunk delivered (see the module)."""

    def __init__(self) -> None:
        self.chunks: list[tuple[float, Samples, int]] = []

    def write(self, samples: Samples, sample_rate: int) -> None:
        self.chunks.append((time.time(), np.array(samples, dtype=np.int16), sample_rate))

    def timeline(self, device_ms: float = 20.0) -> tuple[Samples, int, float, int]:
        """What a playout device with ``device_ms`` of buffer plays.

        Returns ``(signal, rate, t0, underflow_samples)``: sample ``i`` plays at
        ``t0 + i / rate``.
        """
        if not self.chunks:
            return np.zeros(0, np.int16), 8000, 0.0, 0
        rate = self.chunks[0][2]
        device = device_ms / 1000.0
        parts: list[Samples] = []
        t0 = self.chunks[0][0] + device
        end = t0
        gaps = 0
        for arrived, samples, chunk_rate in self.chunks:
            if chunk_rate != rate:
                samples = resample_all(samples, chunk_rate, rate)
            start = max(arrived + device, end)
            gap = int(round((start - end) * rate))
            if gap > 0:
                parts.append(np.zeros(gap, np.int16))
                gaps += gap
            parts.append(samples)
            end = start + samples.size / rate
        return np.concatenate(parts), rate, t0, gaps


def through_playout(recorder: PlayoutRecorder, *, tail: float = 0.5) -> PlayoutRecorder | None:
    """What the SDK's own playout buffer (``exotel_voice.media.playout.PlayoutBuffer``,
    the policy ``DeviceSink`` plays with) would play of ``recorder``'s chunks, pulled
    every 20 ms by a device clock that starts with the first chunk: the recorded arrivals
    replayed on a simulated clock (the buffer's clock is injected), so it is exact and
    costs no second call.  The result's chunks are the frames pulled, each at its pull
    time (``None`` pulls play silence).  None when the SDK has no playout buffer."""
    try:
        from exotel_voice.media.playout import PlayoutBuffer
    except ImportError:
        return None
    if not recorder.chunks:
        return PlayoutRecorder()
    now = [recorder.chunks[0][0]]
    buffer = PlayoutBuffer(clock=lambda: now[0])
    rate = recorder.chunks[0][2]
    n = samples_per_frame(rate)
    out = PlayoutRecorder()
    pull_at = recorder.chunks[0][0]
    end = recorder.chunks[-1][0] + tail
    pending = list(recorder.chunks)
    i = 0
    while pull_at <= end:
        while i < len(pending) and pending[i][0] <= pull_at:
            now[0] = pending[i][0]
            buffer.push(pending[i][1], pending[i][2])
            i += 1
        now[0] = pull_at
        frame = buffer.pull(rate)
        out.chunks.append((pull_at, np.zeros(n, np.int16) if frame is None else frame, rate))
        pull_at += n / rate
    return out


@dataclass
class Quality:
    """One scored transfer of the speech."""

    pesq: float | None
    latency_ms: float | None
    underflow_ms: float
    correlation: float
    error: str | None = None


def align(reference: np.ndarray, recorded: np.ndarray) -> tuple[int, float]:
    """The lag of ``reference`` in ``recorded`` (samples) and the normalised peak."""
    ref = reference.astype(np.float64)
    rec = recorded.astype(np.float64)
    if rec.size < ref.size:
        rec = np.concatenate([rec, np.zeros(ref.size - rec.size)])
    size = 1 << int(np.ceil(np.log2(rec.size + ref.size)))
    corr = np.fft.irfft(np.fft.rfft(rec, size) * np.conj(np.fft.rfft(ref, size)), size)
    corr = corr[: rec.size - ref.size + 1]
    lag = int(np.argmax(corr))
    window = rec[lag : lag + ref.size]
    norm = float(np.sqrt(np.dot(ref, ref) * np.dot(window, window))) or 1.0
    return lag, float(corr[lag] / norm)


def score(reference: Samples, degraded: Samples, rate: int) -> float:
    """PESQ of ``degraded`` against ``reference`` (same rate): nb at 8 kHz, wb at 16 kHz."""
    from pesq import pesq

    mode = {8000: "nb", 16000: "wb"}.get(rate)
    if mode is None:
        raise ValueError(f"PESQ needs 8000 or 16000 Hz, got {rate}")
    return float(pesq(rate, reference.astype(np.float64), degraded.astype(np.float64), mode))


def handover_latency(
    reference: Samples, rate: int, recorder: PlayoutRecorder, sent_at: float
) -> tuple[float | None, int]:
    """The one-way latency of the speech as handed over (median over its 0.5 s segments)
    and how many segments were found.

    As in bench/media_latency.py, each received sample has the time ``chunk's hand-over
    time + index / rate`` (made non-decreasing), and each segment of the original sent at
    ``sent_at + offset / rate`` is found near the global alignment by cross-correlation.
    """
    chunks = recorder.chunks
    played_rate = chunks[0][2]
    signal = np.concatenate([c[1] for c in chunks])
    times = np.concatenate([c[0] + np.arange(c[1].size) / played_rate for c in chunks])
    times = np.maximum.accumulate(times)
    if played_rate != rate:
        signal = resample_all(signal, played_rate, rate)
        times = np.interp(np.arange(signal.size) * played_rate / rate, np.arange(times.size), times)
    lag, _ = align(reference, signal)
    ref = reference.astype(np.float64)
    level = float(np.sqrt(np.mean(ref * ref)))
    seg, slack = rate // 2, rate // 4
    found: list[float] = []
    for offset in range(0, reference.size - seg, seg):
        part = reference[offset : offset + seg]
        if float(np.sqrt(np.mean(part.astype(np.float64) ** 2))) < 0.25 * level:
            continue  # a pause: nothing to find
        lo = max(0, lag + offset - slack)
        hi = min(signal.size, lag + offset + seg + slack)
        if hi - lo < seg:
            continue
        local, peak = align(part, signal[lo:hi])
        if peak < 0.5:
            continue  # lost or concealed beyond recognition
        found.append(float(times[lo + local]) - (sent_at + offset / rate))
    if not found:
        return None, 0
    return float(np.median(found)) * 1000.0, len(found)


def measure(
    reference: Samples,
    rate: int,
    recorder: PlayoutRecorder,
    sent_at: float | None,
    *,
    device_ms: float = 20.0,
) -> Quality:
    """Score what ``recorder`` received against ``reference`` (at ``rate``; what the
    model device plays is resampled to it) with PESQ, and give the one-way hand-over
    latency (:func:`handover_latency`)."""
    played, played_rate, _, gaps = recorder.timeline(device_ms)
    underflow_ms = round(1000.0 * gaps / played_rate, 1) if played_rate else 0.0
    if played.size == 0 or sent_at is None:
        return Quality(None, None, underflow_ms, 0.0, "nothing received or nothing sent")
    signal = resample_all(played, played_rate, rate) if played_rate != rate else played
    lag, peak = align(reference, signal)
    degraded = signal[lag : lag + reference.size]
    if degraded.size < reference.size:
        degraded = np.concatenate([degraded, np.zeros(reference.size - degraded.size, np.int16)])
    latency, _ = handover_latency(reference, rate, recorder, sent_at)
    try:
        value: float | None = round(score(reference, degraded, rate), 3)
        error = None
    except Exception as exc:  # pesq raises its own errors on unusable input
        value, error = None, f"{type(exc).__name__}: {exc}"
    return Quality(
        value, None if latency is None else round(latency, 1), underflow_ms, round(peak, 3), error
    )


async def call_ours(
    speech: Samples,
    rate: int,
    codec: str,
    relay: object,
    *,
    media_path: str = "lean",
    lead: float = 1.0,
    timeout: float = 30.0,
) -> tuple[PlayoutRecorder, SpeechSource]:
    """Send ``speech`` from one :class:`~exotel_voice.media.MediaSession` to another
    (``media_path`` on the receiving end) through ``relay`` (an
    :class:`~tests.rig.impair.ImpairmentRelay`, started), recording the far end."""
    import asyncio

    from exotel_voice.media import IceConfig, MediaConfig, MediaSession

    from .impair import ImpairmentRelay, point_sdp_at, sdp_address

    assert isinstance(relay, ImpairmentRelay)
    ice = IceConfig(host_addresses=["127.0.0.1"], gather_timeout=1.0)
    source = SpeechSource(speech, rate, lead=lead)
    sender = MediaSession(config=MediaConfig(ice=ice, codecs=[codec]), source=source)
    receiver = MediaSession(
        config=MediaConfig(ice=ice, codecs=[codec], media_path=media_path)  # type: ignore[arg-type]
    )
    recorder = PlayoutRecorder()
    try:
        offer = await sender.create_offer()
        address = sdp_address(offer)
        assert address is not None, "no candidate in the offer"
        relay.set_peer("a", address)
        answer = await receiver.accept_offer(point_sdp_at(offer, relay.face_b))
        address = sdp_address(answer)
        assert address is not None, "no candidate in the answer"
        relay.set_peer("b", address)
        receiver.add_sink(recorder)
        await sender.set_answer(point_sdp_at(answer, relay.face_a))
        await asyncio.wait_for(
            asyncio.gather(sender.wait_connected(), receiver.wait_connected()), 10
        )
        await asyncio.wait_for(source.wait_finished(), timeout)
        await asyncio.sleep(0.5)  # the last packets in flight through the relay
    finally:
        await sender.close()
        await receiver.close()
    return recorder, source
