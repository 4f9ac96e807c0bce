"""Speech through a real call, scored with PESQ: the measurement itself works.

A speech sample made with ``espeak-ng`` goes from one ``MediaSession`` to another (the
lean receive path) through the impairment relay (tests/rig/impair.py), is recorded at
the far end, aligned to the original and scored with PESQ (narrow-band, PCMU).  These
are behaviour checks of the measurement, not quality targets (those are in
``bench/call_quality.py``): a clean call scores well above a generous floor and is found
at a plausible offset, and 5% bursty loss brings the score clearly down.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.rig.impair import GilbertElliott, Impairment, ImpairmentRelay
from tests.rig.marks import LOOPBACK_MEDIA
from tests.rig.speech import (
    PlayoutRecorder,
    call_ours,
    make_speech,
    measure,
    missing_tools,
    score,
)


pytestmark = [
    pytest.mark.media,
    LOOPBACK_MEDIA,
    pytest.mark.skipif(bool(missing_tools()), reason=f"missing programs: {missing_tools()}"),
]

pesq = pytest.importorskip("pesq")

#: A roomy model playout buffer, so that a busy test machine's scheduling hiccups are
#: not heard as gaps; lost packets still are.
DEVICE_MS = 120.0


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> object:
    # Two sentences (6.1 s): enough for PESQ, and each call is shorter.
    return make_speech(Path(tmp_path_factory.mktemp("speech")), 8000, sentences=2)


def test_the_reference_scores_itself_at_the_top(speech: object) -> None:
    import numpy as np

    assert isinstance(speech, np.ndarray)
    assert score(speech, speech, 8000) > 4.4


async def test_clean_call_scores_high_and_bursty_loss_scores_clearly_lower(
    speech: object,
) -> None:
    import numpy as np

    assert isinstance(speech, np.ndarray)
    async with ImpairmentRelay(Impairment()) as relay:
        recorder, source = await call_ours(speech, 8000, "PCMU", relay, lead=0.5)
    clean = measure(speech, 8000, recorder, source.sent_at, device_ms=DEVICE_MS)
    assert clean.pesq is not None, clean.error
    assert clean.pesq > 3.0, clean
    # PCMU on loopback is handed over within about a millisecond of being sent, either
    # way (the send clock's read and the receive hand-over are timed a frame apart).
    assert clean.latency_ms is not None and -5.0 < clean.latency_ms < 1000, clean

    bursty = Impairment(burst=GilbertElliott.for_loss(0.05, mean_burst=4.0), seed=2)
    async with ImpairmentRelay(bursty) as relay:
        recorder, source = await call_ours(speech, 8000, "PCMU", relay, lead=0.5)
        figures = relay.figures()["a->b"]
    assert figures["lost"] > 0 and figures["burst_max"] > 1, figures
    lossy = measure(speech, 8000, recorder, source.sent_at, device_ms=DEVICE_MS)
    assert lossy.pesq is not None, lossy.error
    assert lossy.pesq < clean.pesq - 0.3, (clean, lossy, figures)


def test_silence_is_refused_or_scores_at_the_bottom(speech: object) -> None:
    import numpy as np

    assert isinstance(speech, np.ndarray)
    recorder = PlayoutRecorder()
    recorder.chunks = [(i * 0.02, np.zeros(160, np.int16), 8000) for i in range(500)]
    result = measure(speech, 8000, recorder, 0.0)
    assert result.pesq is None or result.pesq < 1.5, result


def _frames(signal: object, rate: int, start: float, delay: float) -> PlayoutRecorder:
    """``signal`` cut in 20 ms chunks, each arriving ``delay`` after it was sent."""
    import numpy as np

    assert isinstance(signal, np.ndarray)
    n = rate // 50
    recorder = PlayoutRecorder()
    for i in range(0, signal.size - n + 1, n):
        recorder.chunks.append((start + i / rate + delay, signal[i : i + n].copy(), rate))
    return recorder


def test_latency_is_found_from_the_speech_itself(speech: object) -> None:
    import numpy as np

    assert isinstance(speech, np.ndarray)
    lead = np.zeros(4000, np.int16)
    sent = np.concatenate([lead, speech, lead])
    # The speech's first sample is sent 0.5 s in; every chunk arrives 73 ms after it left.
    recorder = _frames(sent, 8000, 100.0, 0.073)
    result = measure(speech, 8000, recorder, 100.5, device_ms=20.0)
    assert result.latency_ms is not None and abs(result.latency_ms - 73.0) < 1.0, result
    assert result.underflow_ms == 0.0 and result.pesq is not None and result.pesq > 4.4


def test_a_late_chunk_plays_as_a_gap_on_the_model_device(speech: object) -> None:
    import numpy as np

    assert isinstance(speech, np.ndarray)
    recorder = _frames(speech, 8000, 0.0, 0.0)
    on_time = measure(speech, 8000, recorder, 0.0, device_ms=20.0)
    # Ten frames in the middle of the speech handed over 150 ms late, then the rest on time.
    late = _frames(speech, 8000, 0.0, 0.0)
    mid = len(late.chunks) // 2
    released = late.chunks[mid][0] + 0.15  # all ten at once, 150 ms after the first was due
    for k in range(mid, mid + 10):
        _, samples, rate = late.chunks[k]
        late.chunks[k] = (released, samples, rate)
    delayed = measure(speech, 8000, late, 0.0, device_ms=20.0)
    assert delayed.underflow_ms >= 100.0, delayed
    assert on_time.pesq is not None and delayed.pesq is not None
    assert delayed.pesq < on_time.pesq, (on_time, delayed)


def test_through_playout_plays_what_arrives_on_a_clean_network(speech: object) -> None:
    import numpy as np

    from tests.rig.speech import through_playout

    assert isinstance(speech, np.ndarray)
    played = through_playout(_frames(speech, 8000, 0.0, 0.0))
    if played is None:
        pytest.skip("this SDK has no PlayoutBuffer")
    result = measure(speech, 8000, played, 0.0, device_ms=0.0)
    assert result.pesq is not None and result.pesq > 4.0, result
    assert result.latency_ms is not None and 0.0 <= result.latency_ms < 100.0, result
