"""Fixtures for real-media tests: two MediaSessions talking over 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import numpy as np

from exotel_voice.media import IceConfig, MediaConfig, MediaSession, _aiortc_compat as compat
from exotel_voice.media.sources import AudioSource

# The skip marks, one per reason (tests/rig/marks.py, docs/test-rig.md): real media on
# 127.0.0.1 needs neither root nor the namespace (LOOPBACK_MEDIA).
from tests.rig.marks import (
    LOOPBACK_MEDIA as LOOPBACK_MEDIA,
    NEEDS_NETNS as NEEDS_NETNS,
    NEEDS_NETNS_ROOT as NEEDS_NETNS_ROOT,
)


#: Which aiortc-internals features this run uses (EXOTEL_VOICE_AIORTC_COMPAT=off: none but the
#: gathering policy).  Tests of such a feature check the path taken, and on the fallback
#: what the user still gets.
FEATURES = compat.FEATURES

LOOPBACK = IceConfig(host_addresses=["127.0.0.1"], gather_timeout=1.0)


def config(codec: str, **kwargs: object) -> MediaConfig:
    return MediaConfig(ice=LOOPBACK, codecs=[codec], **kwargs)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def connected_pair(
    codec: str,
    source_a: AudioSource | None = None,
    source_b: AudioSource | None = None,
    **options: object,
) -> AsyncIterator[tuple[MediaSession, MediaSession]]:
    """A calls B: A offers, B answers, both wait until ICE and DTLS are up."""
    a = MediaSession(config=config(codec, **options), source=source_a)
    b = MediaSession(config=config(codec, **options), source=source_b)
    try:
        answer = await b.accept_offer(await a.create_offer())
        await a.set_answer(answer)
        await asyncio.gather(a.wait_connected(), b.wait_connected())
        yield a, b
    finally:
        await a.close()
        await b.close()


async def collect(
    session: MediaSession, seconds: float, *, sample_rate: int = 16000, skip_ms: int = 200
) -> np.ndarray:
    """Received audio for ``seconds`` after skipping ``skip_ms`` (codec warm-up)."""
    frames = []
    wanted = int(seconds * 50)
    skip = skip_ms // 20
    async with asyncio.timeout(seconds + skip_ms / 1000 + 5):
        async for frame in session.received_frames(sample_rate=sample_rate):
            if skip:
                skip -= 1
                continue
            frames.append(frame)
            if len(frames) >= wanted:
                break
    return np.concatenate(frames)
