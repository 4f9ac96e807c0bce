"""The media layer's check of a remote SDP (media._sdp.check_remote): RFC 8866 syntax, an
audio m-line, and a usable a=fingerprint; captured SDPs from Chromium and rtpengine.

The other line helpers of media._sdp are tested in test_analysis.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from exotel_voice.exceptions import InvalidSDP
from exotel_voice.media._sdp import audio_direction, audio_formats, check_remote, origin


# Captured from Chromium 156 (createOffer + setLocalDescription, one audio transceiver) in a
# loopback-only namespace, so no candidates were gathered.
CHROME_OFFER = (
    "v=0\r\n"
    "o=- 7567879320438927790 2 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=group:BUNDLE 0\r\n"
    "a=extmap-allow-mixed\r\n"
    "a=msid-semantic: WMS\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=rtcp:9 IN IP4 0.0.0.0\r\n"
    "a=ice-ufrag:AfWL\r\n"
    "a=ice-pwd:ImGw39BKvKgJ6FYWu9Efg6Rk\r\n"
    "a=ice-options:trickle\r\n"
    "a=fingerprint:sha-256 56:FF:74:1A:6E:86:12:E2:5D:11:F8:74:5D:01:67:21:C5:EF:1D:64:B7:96:7F:54:79:D4:00:BD:A3:EE:C7:FA\r\n"  # noqa: E501
    "a=setup:actpass\r\n"
    "a=mid:0\r\n"
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
    "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n"
    "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n"
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
    "a=sendrecv\r\n"
    "a=msid:- 8f2b18bf-2213-4430-be5f-c6be10517de7\r\n"
    "a=rtcp-mux\r\n"
    "a=rtcp-rsize\r\n"
    "a=rtcp-xr:rcvr-rtt=all\r\n"
    "a=rtpmap:111 opus/48000/2\r\n"
    "a=rtcp-fb:111 transport-cc\r\n"
    "a=fmtp:111 minptime=10;useinbandfec=1\r\n"
    "a=rtpmap:63 red/48000/2\r\n"
    "a=fmtp:63 111/111\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:13 CN/8000\r\n"
    "a=rtpmap:110 telephone-event/48000\r\n"
    "a=rtpmap:126 telephone-event/8000\r\n"
    "a=ssrc:371570845 cname:N5EFikOspAgF3tmn\r\n"
    "a=ssrc:371570845 msid:- 8f2b18bf-2213-4430-be5f-c6be10517de7\r\n"
)

# rtpengine 10.5 (the test rig's daemon) answering that offer's call towards a WebRTC
# client after a plain SIP phone answered "m=audio 30000 RTP/AVP 0 101" (flags: ICE=force,
# UDP/TLS/RTP/SAVPF, rtcp-mux offer/require, SDES off, generate-mid). Captured verbatim.
RTPENGINE_WEBRTC_ANSWER = (
    "v=0\r\n"
    "o=baresip 123 456 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\n"
    "m=audio 20019 UDP/TLS/RTP/SAVPF 0\r\n"
    "a=mid:0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=sendrecv\r\n"
    "a=rtcp:20019\r\n"
    "a=rtcp-mux\r\n"
    "a=setup:active\r\n"
    "a=fingerprint:sha-256 58:92:C1:23:B3:45:14:4E:28:99:78:1A:A7:AA:BF:7C:B0:23:D5:F0:C7:58:04:86:45:0A:CE:A0:2E:4A:B3:3E\r\n"  # noqa: E501
    "a=ice-ufrag:15DrEYVk\r\n"
    "a=ice-pwd:DpFsJ3353ztFlrLday2B2DqwGk\r\n"
    "a=ice-options:trickle\r\n"
    "a=candidate:1B7wzOHBWS8IIs0Z 1 UDP 2130706431 127.0.0.1 20019 typ host\r\n"
    "a=end-of-candidates\r\n"
)

# rtpengine 10.5 rewriting the Chrome offer for a plain SIP peer (ICE=remove, RTP/AVP,
# rtcp-mux demux). Captured verbatim.
RTPENGINE_AVP_OFFER = (
    "v=0\r\n"
    "o=- 7567879320438927790 2 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=extmap-allow-mixed\r\n"
    "a=msid-semantic: WMS\r\n"
    "m=audio 20000 RTP/AVP 111 63 9 0 8 13 110 126\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
    "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n"
    "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n"
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
    "a=msid:- 8f2b18bf-2213-4430-be5f-c6be10517de7\r\n"
    "a=rtcp-rsize\r\n"
    "a=rtcp-xr:rcvr-rtt=all\r\n"
    "a=ssrc:371570845 cname:N5EFikOspAgF3tmn\r\n"
    "a=ssrc:371570845 msid:- 8f2b18bf-2213-4430-be5f-c6be10517de7\r\n"
    "a=mid:0\r\n"
    "a=rtpmap:111 opus/48000/2\r\n"
    "a=fmtp:111 minptime=10;useinbandfec=1\r\n"
    "a=rtcp-fb:111 transport-cc\r\n"
    "a=rtpmap:63 red/48000/2\r\n"
    "a=fmtp:63 111/111\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:13 CN/8000\r\n"
    "a=rtpmap:110 telephone-event/48000\r\n"
    "a=rtpmap:126 telephone-event/8000\r\n"
    "a=sendrecv\r\n"
    "a=rtcp:20001\r\n"
)

# A hold re-INVITE from a plain phone, session-level direction, two m-lines, LF endings.
HOLD_OFFER = (
    "v=0\n"
    "o=user1 53655765 2353687638 IN IP4 192.0.2.5\n"
    "s=Talk\n"
    "i=A call\n"
    "c=IN IP4 192.0.2.5\n"
    "b=AS:80\n"
    "t=0 0\n"
    "a=sendonly\n"
    "m=audio 7078 RTP/AVP 0 8 101\n"
    "b=TIAS:64000\n"
    "a=rtpmap:101 telephone-event/8000\n"
    "a=fmtp:101 0-16\n"
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:32\n"
    "m=video 0 RTP/AVP 96\n"
    "a=rtpmap:96 VP8/90000\n"
    "a=inactive\n"
)



def test_captured_webrtc_sdps_are_usable() -> None:
    for sdp in (CHROME_OFFER, RTPENGINE_WEBRTC_ANSWER):
        check_remote(sdp)
    assert [f.name for f in audio_formats(CHROME_OFFER)][:2] == ["opus", "red"]
    assert origin(RTPENGINE_WEBRTC_ANSWER) == ("baresip", "123", "456")


def test_valid_sdp_without_dtls_is_refused_by_name() -> None:
    # Plain RTP (rtpengine's offer to a SIP phone; a phone's hold offer with SDES keys,
    # LF line ends and a declined video stream) is valid SDP, but not DTLS-SRTP.
    with pytest.raises(InvalidSDP, match="audio section has no a=fingerprint"):
        check_remote(RTPENGINE_AVP_OFFER)
    with pytest.raises(InvalidSDP, match="audio section has no a=fingerprint"):
        check_remote(HOLD_OFFER)
    assert audio_direction(HOLD_OFFER) == "sendonly"
    # A session-level fingerprint serves every section; the declined video needs none.
    fingerprint = "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\n"
    check_remote(HOLD_OFFER.replace("a=sendonly\n", "a=sendonly\n" + fingerprint))
    with pytest.raises(InvalidSDP, match="not usable"):
        check_remote(HOLD_OFFER.replace("a=sendonly\n", "a=sendonly\na=fingerprint:md5 00\n"))


def test_an_sdp_without_audio_is_refused() -> None:
    video_only = CHROME_OFFER.replace("m=audio", "m=video")
    with pytest.raises(InvalidSDP, match="no usable audio m-line"):
        check_remote(video_only)


BASE = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\n"
    "m=audio 9 RTP/AVP 0\r\n"
)


def test_the_base_sdp_is_usable() -> None:
    check_remote(BASE)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "v="),
        (BASE.replace("v=0\r\n", ""), "v="),
        ("o=- 1 1 IN IP4 127.0.0.1\r\nv=0\r\n", "v="),
        (BASE.replace("v=0", "v=1"), "version"),
        (BASE + "v=0\r\n", "v="),
        (BASE.replace("m=audio 9 RTP/AVP 0", "m=audio"), "m="),
        (BASE.replace("m=audio 9 RTP/AVP 0", "m=audio 9"), "m="),
        (BASE.replace("m=audio 9 RTP/AVP 0", "m=audio nine RTP/AVP 0"), "port"),
        (BASE.replace("m=audio 9 RTP/AVP 0", "m=audio 9/x RTP/AVP 0"), "port"),
        (BASE.replace("m=audio 9 RTP/AVP 0", "m=audio 70000 RTP/AVP 0"), "range"),
        (BASE.replace("m=audio 9 RTP/AVP 0", "m=audio 9" + "0" * 5000 + " RTP/AVP 0"), "range"),
        (BASE.replace("m=audio 9 RTP/AVP 0", "m=audio \u0661 RTP/AVP 0"), "port"),
        (BASE.replace("o=- 1 1 IN IP4 127.0.0.1\r\n", ""), "o="),
        (BASE.replace("s=-\r\n", ""), "s="),
        (BASE.replace("o=- 1 1 IN IP4 127.0.0.1", "o=- 1 IN IP4 127.0.0.1"), "o="),
        (BASE.replace("o=- 1 1 IN", "o=- 1 x IN"), "version"),
        (BASE.replace("t=0 0", "t=0"), "t="),
        (BASE + "c=IN IP4\r\n", "c="),
        (BASE + "c=IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.5\r\n", "c="),
        (BASE.replace("t=0 0\r\n", "t=0 0\r\nc=IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.5\r\n"), "c="),
        (BASE + "b=AS\r\n", "b="),
        (BASE + "b=AS:x\r\n", "b="),
        (BASE + "b=AS:64\x1c\r\n", "b="),
        (BASE + "a=\r\n", "attribute"),
        (BASE + "a:foo\r\n", "<type>=<value>"),
        (BASE + "x\r\n", "<type>=<value>"),
        (BASE + "y=1\r\n", "unknown"),
        (BASE + "s=again\r\n", "media section"),
        (BASE.replace("t=0 0\r\n", "r=1 2 3\r\nt=0 0\r\n"), "r="),
    ],
)
def test_invalid(text: str, message: str) -> None:
    with pytest.raises(InvalidSDP, match="the SDP cannot be parsed") as info:
        check_remote(text)
    assert message in str(info.value)


def test_errors_never_quote_an_ice_password() -> None:
    """A malformed line is quoted in the error, masked as the logs are (RFC 8839 ice-pwd)."""
    sdp = BASE + "ice-pwd:s3cretPwd0123456789\r\n"
    with pytest.raises(InvalidSDP) as caught:
        check_remote(sdp)
    assert "line 7" in str(caught.value) and "s3cretPwd" not in str(caught.value)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_the_check_raises_only_invalid_sdp(text: str) -> None:
    try:
        check_remote("v=0\r\n" + text)
    except InvalidSDP:
        pass
