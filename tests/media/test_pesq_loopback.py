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
    return make_speech(Path(tmp_path_factory.mktemp("speech")), 8000)


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
    assert clean.latency_ms is not None and 0 < clean.latency_ms < 1000, clean

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
