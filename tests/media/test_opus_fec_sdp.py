"""Our SDP announces Opus in-band FEC (``a=fmtp:<pt> ... useinbandfec=1``, RFC 7587 §6.1),
so a far end such as Chromium adds FEC to what it sends us when our reports show loss;
the lean path decodes it.  aiortc's Opus codec has no format parameters of its own."""

from __future__ import annotations

import asyncio

import pytest

from exotel_voice.media import MediaConfig, MediaSession, _sdp

from .conftest import FEATURES, LOOPBACK, LOOPBACK_MEDIA


def _fmtp(sdp: str, pt: int) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith(f"a=fmtp:{pt} ")]


def _opus_pt(sdp: str) -> int:
    return next(f.payload_type for f in _sdp.audio_formats(sdp) if f.name.lower() == "opus")


AUDIO = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 0 101\r\nc=IN IP4 127.0.0.1\r\n"
    "a=rtpmap:111 opus/48000/2\r\n{fmtp}a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
)


def test_an_opus_format_without_fmtp_gets_one() -> None:
    sdp = _sdp.with_opus_fec(AUDIO.format(fmtp=""))
    lines = sdp.splitlines()
    assert lines[lines.index("a=rtpmap:111 opus/48000/2") + 1] == "a=fmtp:111 useinbandfec=1"
    assert _fmtp(sdp, 101) == ["a=fmtp:101 0-16"]  # other formats untouched
    assert _sdp.with_opus_fec(sdp) == sdp  # once only


def test_existing_parameters_are_kept() -> None:
    sdp = _sdp.with_opus_fec(AUDIO.format(fmtp="a=fmtp:111 minptime=10;stereo=0\r\n"))
    assert _fmtp(sdp, 111) == ["a=fmtp:111 minptime=10;stereo=0;useinbandfec=1"]
    sdp = _sdp.with_opus_fec(AUDIO.format(fmtp="a=fmtp:111 minptime=10; useinbandfec=0\r\n"))
    assert _fmtp(sdp, 111) == ["a=fmtp:111 minptime=10;useinbandfec=1"]
    same = AUDIO.format(fmtp="a=fmtp:111 minptime=10;useinbandfec=1\r\n")
    assert _sdp.with_opus_fec(same) == same


def test_without_opus_nothing_changes() -> None:
    pcmu = "v=0\r\ns=-\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    assert _sdp.with_opus_fec(pcmu) == pcmu
    assert _sdp.with_opus_fec("v=0\r\ns=-\r\n") == "v=0\r\ns=-\r\n"


@pytest.mark.parametrize("codecs", [["opus"], ["PCMU", "opus"]])
@LOOPBACK_MEDIA
async def test_our_offer_and_answer_announce_fec(codecs: list[str]) -> None:
    a = MediaSession(config=MediaConfig(ice=LOOPBACK, codecs=codecs))
    b = MediaSession(config=MediaConfig(ice=LOOPBACK, codecs=codecs))
    try:
        offer = await a.create_offer()
        answer = await b.accept_offer(offer)
        for sdp in (offer, answer):
            pt = _opus_pt(sdp)
            if FEATURES.lean_path:
                assert _fmtp(sdp, pt) == [f"a=fmtp:{pt} useinbandfec=1"], sdp
            else:  # aiortc's own decoder (the fallback) does not use FEC: not announced
                assert _fmtp(sdp, pt) == [], sdp
        await a.set_answer(answer)
        await asyncio.gather(a.wait_connected(), b.wait_connected())
        assert a.codec is not None and a.codec.lower() == codecs[0].lower()
    finally:
        await a.close()
        await b.close()


@LOOPBACK_MEDIA
async def test_an_answer_to_a_browser_like_offer_announces_fec() -> None:
    """Chromium offers ``a=fmtp:111 minptime=10;useinbandfec=1``; aiortc's answer has no
    fmtp for Opus, ours says it takes FEC too."""
    a = MediaSession(config=MediaConfig(ice=LOOPBACK, codecs=["opus"]))
    b = MediaSession(config=MediaConfig(ice=LOOPBACK, codecs=["opus"]))
    try:
        offer = await a.create_offer()
        pt = _opus_pt(offer)
        browser_like = "\r\n".join(
            f"a=fmtp:{pt} minptime=10;useinbandfec=1" if line.startswith(f"a=fmtp:{pt} ")
            else line
            for line in offer.split("\r\n")
        )
        assert f"a=fmtp:{pt} minptime=10;useinbandfec=1" in browser_like or not FEATURES.lean_path
        answer = await b.accept_offer(browser_like)
        fmtp = _fmtp(answer, _opus_pt(answer))
        assert fmtp == ([f"a=fmtp:{_opus_pt(answer)} useinbandfec=1"] if FEATURES.lean_path else [])
    finally:
        await a.close()
        await b.close()
