"""Helpers for the SIP core tests: an in-memory UAC/UAS pair and message builders.

Used by tests/sip/test_transaction.py, test_dialog.py and test_connection.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from exotel_voice.sip.connection import SipConnection
from exotel_voice.sip.events import Event
from exotel_voice.sip.message import Request, Response, parse_message
from exotel_voice.sip.utils import make_request, new_call_id, new_tag


ALICE = "sip:alice@example.com"
BOB = "sip:bob@example.com"


def counter_token(prefix: str) -> Callable[[int], str]:
    """A deterministic ``token(n)``: ``prefix0001``, ``prefix0002`` ..."""
    count = itertools.count(1)

    def token(nbytes: int) -> str:
        return f"{prefix}{next(count):04d}"

    return token


class ConnectionPair:
    """Two connections wired back to back (h11 ``ConnectionPair``), with an explicit clock.

    ``uac`` and ``uas`` are just names: either side can send requests. Nothing moves until
    :meth:`deliver` (or :meth:`run`) shuttles ``data_to_send()`` of one into
    ``receive_data()`` of the other, so tests can drop, duplicate or inspect messages.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.now = 1000.0
        self.uac = SipConnection(via_host="uac.invalid", token=counter_token("c"), **kwargs)
        self.uas = SipConnection(via_host="uas.invalid", token=counter_token("s"), **kwargs)
        self.wire: dict[str, list[bytes]] = {"uac": [], "uas": []}

    def other(self, side: SipConnection) -> SipConnection:
        return self.uas if side is self.uac else self.uac

    def pending(self, side: SipConnection) -> list[bytes]:
        """Drain ``side``'s output without delivering it."""
        return side.data_to_send()

    def deliver(self, side: SipConnection) -> list[Request | Response]:
        """Move everything ``side`` wants to send into the other side; return it parsed."""
        data = side.data_to_send()
        peer = self.other(side)
        for item in data:
            peer.receive_data(item, self.now)
        return [parse_message(d) for d in data if d.strip(b"\r\n")]

    def run(self) -> None:
        """Shuttle in both directions until both sides are quiet."""
        for _ in range(50):
            moved = self.deliver(self.uac) + self.deliver(self.uas)
            if not moved:
                return
        raise AssertionError("connections keep talking")

    def advance(self, seconds: float) -> None:
        """Move the clock and fire both sides' due timers."""
        self.now += seconds
        for conn in (self.uac, self.uas):
            conn.handle_timer(self.now)


@pytest.fixture
def pair() -> ConnectionPair:
    """A reliable (WebSocket-like) pair."""
    return ConnectionPair()


@pytest.fixture
def lossy_pair() -> ConnectionPair:
    """An unreliable (UDP-like) pair, for retransmission tests."""
    return ConnectionPair(reliable=False)


def new_request(
    method: str,
    *,
    uri: str = BOB,
    call_id: str | None = None,
    cseq: int = 1,
    from_tag: str | None = None,
    to_tag: str | None = None,
    contact: str | None = "<sip:alice@uac.invalid;transport=ws>",
    headers: list[tuple[str, str]] | None = None,
) -> Request:
    """An out-of-dialog request from Alice to Bob (no Via: the connection adds it)."""
    to = f"<{BOB}>" + (f";tag={to_tag}" if to_tag else "")
    return make_request(
        method,
        uri,
        from_=f"<{ALICE}>;tag={from_tag or new_tag()}",
        to=to,
        call_id=call_id or new_call_id(),
        cseq=cseq,
        contact=contact,
        headers=headers,
    )


def of_type(events: list[Event], kind: type[Any]) -> list[Any]:
    """The events of one class."""
    return [e for e in events if isinstance(e, kind)]


def assert_sent(
    data: list[bytes], *, method: str | None = None, status: int | None = None
) -> Request | Response:
    """Assert that ``data`` holds exactly one message and it is the expected one."""
    assert len(data) == 1, data
    message = parse_message(data[0])
    if method is not None:
        assert isinstance(message, Request) and message.method == method, message
    if status is not None:
        assert isinstance(message, Response) and message.status == status, message
    return message


# -------------------------------------------------------------------------------------------
# Parser fuzzing (tests/sip/test_fuzz.py): counters, printed at the end of the run
# -------------------------------------------------------------------------------------------

#: Inputs tried per target, and contract violations, counted by tests/sip/test_fuzz.py.
FUZZ_STATS: dict[str, Any] = {"inputs": {}, "crashes": 0, "hangs": 0, "seed": None}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the fuzz counts (only when tests/sip/test_fuzz.py ran)."""
    inputs: dict[str, int] = FUZZ_STATS["inputs"]
    if not inputs:
        return
    total = sum(inputs.values())
    terminalreporter.write_sep("-", "SIP parser fuzz")
    terminalreporter.write_line(
        f"SIP parser fuzz: {total} inputs tried, crashes {FUZZ_STATS['crashes']}, "
        f"hangs {FUZZ_STATS['hangs']} (seed {FUZZ_STATS['seed']}: "
        f"EXOTEL_VOICE_FUZZ_SEED={FUZZ_STATS['seed']} reproduces)"
    )
    terminalreporter.write_line(
        "  " + ", ".join(f"{name} {count}" for name, count in sorted(inputs.items()))
    )
