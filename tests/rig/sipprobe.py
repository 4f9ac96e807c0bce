"""A minimal raw SIP request over UDP, for readiness probes and rig self-tests.

This is test-rig plumbing, not SIP logic of the SDK: it writes one fixed-format request
and reads the status line of the first response.
"""

from __future__ import annotations

import secrets
import socket

from .ports import HOST


def options_request(target_host: str, target_port: int, local_port: int, call_id: str) -> bytes:
    """An OPTIONS request addressed to the server itself (no user part)."""
    branch = "z9hG4bK" + secrets.token_hex(8)
    return (
        f"OPTIONS sip:{target_host}:{target_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {HOST}:{local_port};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:rig-probe@{HOST}>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:{target_host}:{target_port}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Accept: application/sdp\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def udp_options(port: int, host: str = HOST, timeout: float = 0.5) -> tuple[int, bytes]:
    """Send OPTIONS over UDP to ``host:port``; return ``(status code, raw response)``.

    Raises:
        TimeoutError: no response within ``timeout``.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        s.settimeout(timeout)
        call_id = "rig-" + secrets.token_hex(8)
        s.sendto(options_request(host, port, s.getsockname()[1], call_id), (host, port))
        while True:
            data, _ = s.recvfrom(65535)
            if call_id.encode() in data and data.startswith(b"SIP/2.0 "):
                return int(data.split(b" ", 2)[1]), data
