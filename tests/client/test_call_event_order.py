"""The order of a call's events as an application sees them (docs/calls.md, "Event order"):
what the media watch reports (MediaStateChanged, NoMediaWarning, MediaWarningCleared) comes
between CallConnected and CallEnded, never after the end."""

from __future__ import annotations

from exotel_voice.client import CallEnded
from exotel_voice.media.liveness import (
    DtlsState,
    IceState,
    MediaFlowing,
    MediaSilent,
    MediaTransportChanged,
)
from tests.client.test_call_unit import StubPhone, outgoing_call


async def test_a_media_report_that_comes_in_after_the_end_is_not_published() -> None:
    call = outgoing_call()
    phone = call.phone
    assert isinstance(phone, StubPhone)
    call._on_ended("local", None, "hung up")
    # The watch read its counters while the call ended: its last reports arrive late.
    call._on_media_health(MediaTransportChanged(IceState.CLOSED, DtlsState.CLOSED))
    call._on_media_health(MediaSilent(10.0))
    call._on_media_health(MediaFlowing(3.0))
    assert [type(e) for e in phone.published] == [CallEnded]
