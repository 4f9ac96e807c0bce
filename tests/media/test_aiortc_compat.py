"""media/_aiortc_compat.py: the check at import is real, and its fallback keeps calls working.

The unit tests feed :func:`check` what it would find; the subprocess test gives a method
aiortc really has another signature before exotel_voice is imported, then places a call
over 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from aiortc.rtcdtlstransport import RTCDtlsTransport

from exotel_voice.media import _aiortc_compat as compat

from .conftest import LOOPBACK_MEDIA


CHECKED = {"aiortc": "1.16.0", "aioice": "0.13.0"}


def test_this_run_uses_the_path_the_environment_asks_for() -> None:
    forced_off = os.environ.get(compat.ENV, "").strip().lower() == "off"
    assert compat.MISSING == ()  # the pinned aiortc/aioice have everything
    assert compat.AVAILABLE is not forced_off
    assert compat.FEATURES.rtp_tap is not forced_off
    assert compat.FEATURES.early_selection is not forced_off
    assert compat.FEATURES.gathering  # never forced off: see the module docstring


def test_everything_present_gives_every_feature_and_no_warning() -> None:
    features, missing, warning = compat.check("", CHECKED)
    assert features == compat.Features() and missing == () and warning is None


def test_a_missing_method_turns_off_its_feature_and_those_built_on_it() -> None:
    needs = dict(compat.NEEDS)
    needs["rtp_tap"] = (
        *needs["rtp_tap"],
        compat._Method(RTCDtlsTransport, "_send_rtp_renamed", ("data",)),
    )
    features, missing, warning = compat.check("auto", CHECKED, needs)
    assert missing == ("RTCDtlsTransport._send_rtp_renamed()",)
    assert not features.rtp_tap
    assert not features.lean_path and not features.direct_send  # they need the tap
    assert features.early_selection and features.reoffer and features.gathering
    assert warning is not None and "\n" not in warning
    assert "aiortc 1.16.0, aioice 0.13.0" in warning
    assert "missing RTCDtlsTransport._send_rtp_renamed()" in warning
    assert "aiortc's own path for rtp_tap, lean_path, direct_receive, direct_send" in warning


def test_a_changed_signature_or_missing_instance_attribute_is_found() -> None:
    class Transceiver:
        def __init__(self) -> None:
            self.codecs: list[object] = []  # renamed: no _codecs any more

        def _send_rtp(self, packet: bytes) -> None:  # parameter renamed
            pass

    needs = {
        "reoffer": (compat._Attribute(Transceiver, "_codecs"),),
        "rtp_tap": (compat._Method(Transceiver, "_send_rtp", ("data",)),),
        "gathering": (compat._Attribute(RTCDtlsTransport, "_rx_srtp"),),
    }
    features, missing, warning = compat.check("", CHECKED, needs)
    assert set(missing) == {"Transceiver._codecs", "Transceiver._send_rtp()"}
    assert not features.reoffer and not features.rtp_tap and features.gathering
    assert warning is not None


def test_unchecked_versions_fall_back_unless_forced_on() -> None:
    newer = {"aiortc": "1.17.0", "aioice": "0.13.0"}
    features, _, warning = compat.check("", newer)
    assert not any(vars(features).values())
    assert warning is not None and "aiortc 1.17.0" in warning and "=on" in warning
    features, _, warning = compat.check("on", newer)
    assert features == compat.Features() and warning is not None


def test_off_forces_every_fallback_but_the_gathering_policy() -> None:
    features, _, warning = compat.check("OFF", CHECKED)
    assert features == compat.Features(
        rtp_tap=False, lean_path=False, direct_receive=False, direct_send=False,
        early_selection=False, reoffer=False, rollback=False, ice_restart=False,
    )
    assert warning is not None and f"forced by {compat.ENV}=off" in warning


def test_a_bad_value_is_named_and_ignored() -> None:
    features, _, warning = compat.check("maybe", CHECKED)
    assert features == compat.Features()
    assert warning is not None and "'maybe' is not auto, on or off" in warning


_CALL = textwrap.dedent(
    """
    import asyncio, json, logging, sys
    logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    from aiortc.rtcdtlstransport import RTCDtlsTransport
    original = RTCDtlsTransport._handle_rtp_data

    async def _handle_rtp_data(self, packet, arrival_time_ms):  # as if aiortc renamed "data"
        await original(self, packet, arrival_time_ms)

    RTCDtlsTransport._handle_rtp_data = _handle_rtp_data
    from exotel_voice.exceptions import MediaError
    from exotel_voice.media import (
        IceConfig, MediaConfig, MediaSession, ToneSource, _aiortc_compat, dominant_frequency
    )
    import numpy as np

    async def main():
        config = MediaConfig(ice=IceConfig(host_addresses=["127.0.0.1"], gather_timeout=1.0),
                             codecs=["PCMU"])
        a = MediaSession(config=config, source=ToneSource(1000))
        b = MediaSession(config=config)
        try:
            await a.set_answer(await b.accept_offer(await a.create_offer()))
            await asyncio.gather(a.wait_connected(), b.wait_connected())
            frames = []
            async with asyncio.timeout(5):
                async for frame in b.received_frames(sample_rate=16000):
                    frames.append(frame)
                    if len(frames) == 30:
                        break
            try:
                await a.send_dtmf("1")
                dtmf = "sent"
            except MediaError as exc:
                dtmf = str(exc)
            return {
                "features": vars(_aiortc_compat.FEATURES),
                "heard": dominant_frequency(np.concatenate(frames[10:]), 16000),
                "telephone_event": a.telephone_event,
                "dtmf": dtmf,
                "receive_stats": b.receive_stats() is not None,
            }
        finally:
            await a.close()
            await b.close()

    print(json.dumps(asyncio.run(main())))
    """
)


@pytest.mark.media
@LOOPBACK_MEDIA
def test_a_changed_aiortc_method_gives_one_warning_and_a_working_call() -> None:
    env = {k: v for k, v in os.environ.items() if k != compat.ENV}
    done = subprocess.run(
        [sys.executable, "-c", _CALL], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    ours = [
        line for line in done.stderr.splitlines()
        if line.startswith("WARNING exotel_voice")
    ]
    assert len(ours) == 1, done.stderr
    assert "missing RTCDtlsTransport._handle_rtp_data()" in ours[0]
    assert f"aiortc {compat.VERSIONS['aiortc']}" in ours[0]
    result = json.loads(done.stdout)
    assert not result["features"]["rtp_tap"] and not result["features"]["lean_path"]
    assert result["features"]["early_selection"] and result["features"]["gathering"]
    # The call still connects and carries audio, through aiortc's own path ...
    assert result["heard"] == pytest.approx(1000, abs=20)
    assert result["receive_stats"] is False
    # ... and RFC 4733 is not offered; sending it is refused by name.
    assert result["telephone_event"] is False
    assert "RFC 4733 DTMF is not available" in result["dtmf"]
