"""Unit tests for exotel_voice.sip.redact."""

from __future__ import annotations

import pytest

from exotel_voice.sip.redact import MAX_LOG_SIZE, SECURE, redact, redact_url


PW = "S3ntinel-Pa55"
DIGEST = "0123456789abcdef0123456789abcdef"
ICE_PWD = "IcePwdSentinel0123456789"
SRTP_KEY = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
TOKEN = "tok3n-Sentinel-xyz"

REGISTER = (
    "REGISTER sip:127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/WSS abc.invalid;branch=z9hG4bK1\r\n"
    "From: <sip:alice@127.0.0.1>;tag=1\r\n"
    "To: <sip:alice@127.0.0.1>\r\n"
    "Call-ID: c1\r\n"
    "CSeq: 2 REGISTER\r\n"
    f'Authorization: Digest username="alice", realm="127.0.0.1", nonce="n", '
    f'uri="sip:127.0.0.1", response="{DIGEST}", qop=auth, nc=00000001, cnonce="c"\r\n'
    f'proxy-authorization  :Digest username="alice", realm="p",\r\n'
    f'   nonce="n2", response="{DIGEST}"\r\n'
    "Contact: <sip:alice@abc.invalid;transport=ws>;expires=600\r\n"
    "Content-Length: 0\r\n\r\n"
)

SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    "a=ice-ufrag:AfWL\r\n"
    f"a=ice-pwd:{ICE_PWD}\r\n"
    f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{SRTP_KEY}|2^20|1:32;inline:{SRTP_KEY[::-1]}\r\n"
    f"a=key-mgmt:mikey {SRTP_KEY}\r\n"
    f"k=clear:{PW}\r\n"
    "a=setup:actpass\r\n"
)


def test_authorization_headers_masked_names_kept() -> None:
    out = redact(REGISTER)
    assert DIGEST not in out
    assert "Authorization: [secure]\r\n" in out
    assert "proxy-authorization  : [secure]\r\n" in out
    # The folded continuation line went with its header; the rest is intact.
    assert 'nonce="n2"' not in out
    assert "Contact: <sip:alice@abc.invalid;transport=ws>;expires=600\r\n" in out
    assert out.startswith("REGISTER sip:127.0.0.1 SIP/2.0\r\nVia:")
    assert out.endswith("Content-Length: 0\r\n\r\n")


def test_bytes_and_lf_only() -> None:
    out = redact(REGISTER.replace("\r\n", "\n").encode() + b"\xff")
    assert DIGEST not in out
    assert "Authorization: [secure]\n" in out
    assert out.endswith("\\xff")


def test_digest_response_anywhere() -> None:
    for text in (
        f'Digest response="{DIGEST}", nc=1',
        f"Digest response={DIGEST}, nc=1",
        f"RESPONSE = {DIGEST};x",
    ):
        out = redact(text)
        assert DIGEST not in out
        assert SECURE in out
    assert redact('response="unterminated') == f'response="{SECURE}"'


def test_sdp_secrets() -> None:
    out = redact(SDP)
    for secret in (ICE_PWD, SRTP_KEY, SRTP_KEY[::-1], PW):
        assert secret not in out
    assert "a=ice-pwd:[secure]\r\n" in out
    # The whole key-params (key|lifetime|MKI) go: RFC 4568 §6.1.
    assert "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:[secure];inline:[secure]\r\n" in out
    assert "a=key-mgmt:[secure]\r\n" in out
    assert "k=[secure]\r\n" in out
    assert "a=ice-ufrag:AfWL\r\n" in out and "a=setup:actpass\r\n" in out


def test_sdp_inside_sip_message() -> None:
    head = REGISTER.replace("Content-Length: 0\r\n", f"Content-Length: {len(SDP)}\r\n")
    text = head + SDP
    out = redact(text)
    for secret in (ICE_PWD, SRTP_KEY, DIGEST, PW):
        assert secret not in out


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            f"wss://pbx.example.com/ws?token={TOKEN}&v=1",
            "wss://pbx.example.com/ws?token=[secure]&v=1",
        ),
        (
            f"ws://alice:{PW}@127.0.0.1:8080/ws?access_token={TOKEN}",
            "ws://alice:[secure]@127.0.0.1:8080/ws?access_token=[secure]",
        ),
        (
            f"https://x.example/a?a=1&Password={PW}&api_key={TOKEN}#secret={TOKEN}",
            "https://x.example/a?a=1&Password=[secure]&api_key=[secure]#secret=[secure]",
        ),
        (f"sip:alice:{PW}@127.0.0.1;transport=ws", "sip:alice:[secure]@127.0.0.1;transport=ws"),
        ("sip:alice@127.0.0.1:5060;transport=ws", "sip:alice@127.0.0.1:5060;transport=ws"),
        ("wss://127.0.0.1:8443/ws", "wss://127.0.0.1:8443/ws"),
        ("ws://pbx.example.com/ws?user=alice&v=2", "ws://pbx.example.com/ws?user=alice&v=2"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert redact(url) == expected


def test_url_inside_log_text() -> None:
    out = redact(f"connecting to wss://h.example/ws?token={TOKEN} (attempt 2)")
    assert out == "connecting to wss://h.example/ws?token=[secure] (attempt 2)"


def test_truncation() -> None:
    assert MAX_LOG_SIZE == 4096
    text = "x" * 5000
    out = redact(text)
    assert out == "x" * 4096 + "... [904 more characters]"
    assert redact("abc", limit=3) == "abc"
    assert redact("abcd", limit=3) == "abc... [1 more characters]"


def test_redaction_happens_before_truncation() -> None:
    # The cut falls in the middle of the digest; no prefix of it may survive.
    prefix = "A" * 100 + "\r\n"
    text = prefix + f'Authorization: Digest response="{DIGEST}"\r\n'
    out = redact(text, limit=len(prefix) + 40)
    assert DIGEST[:8] not in out
    assert out.startswith(prefix + "Authorization: [secure]")


def test_clean_text_unchanged() -> None:
    text = "SIP/2.0 200 OK\r\nVia: SIP/2.0/WSS h;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n"
    assert redact(text) == text


def test_library_log_shapes() -> None:
    """The shapes other libraries' DEBUG lines take: websockets' handshake headers prefixed
    ``> ``, and frames shown as a Python repr (CR LF escaped), where a secret sits mid-line."""
    basic = "YWxpY2U6UzNudGluZWwtUGE1NQ=="  # base64 of alice:<PW>
    for line in (f"> Authorization: Basic {basic}", f"< Proxy-Authorization: Digest {basic}"):
        out = redact(line)
        assert basic not in out and out.endswith(": [secure]"), out
    frame = (
        "> TEXT 'INVITE sip:echo@x SIP/2.0\\r\\n...a=ice-ufrag:AfWL\\r\\n"
        f"a=ice-pwd:{ICE_PWD}\\r\\na=setup:actpass\\r\\n' [1200 bytes]"
    )
    out = redact(frame)
    assert ICE_PWD not in out
    assert f"a=ice-pwd:{SECURE}\\r\\na=setup:actpass" in out
    # In a repr'd dict or a JSON dump.
    for text in (f"{{'ice-pwd': '{ICE_PWD}'}}", f'"ice-pwd":"{ICE_PWD}"',
                 f"ice-pwd: {ICE_PWD} (x)"):
        assert ICE_PWD not in redact(text), text
