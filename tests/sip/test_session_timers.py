"""Session timers (RFC 4028) when the far end asks for them, on a fake clock.

alice (the caller) and bob (who answers) are two user agents back to back; the timers are
armed through the layer's own get_timer/handle_timer, driven by ``Rig.advance``.
"""

from __future__ import annotations

import pytest

from exotel_voice.sip import Request, Response
from exotel_voice.sip.calls import CallLayer, CallSession
from exotel_voice.sip.useragent import (
    CallEnded,
    IncomingCall,
    ReInviteReceived,
    SessionState,
    TargetRefreshNeeded,
)
from tests.sip.test_target_refresh import ANSWER, OFFER, Rig, make_ua


@pytest.fixture
def rig() -> Rig:
    r = Rig(make_ua("alice"), make_ua("bob"))
    r.a.connection_made(0.0)
    r.b.connection_made(0.0)
    return r


def bob_responses(rig: Rig, method: str) -> list[Response]:
    """bob's final responses to ``method`` (what alice received), from the wire log."""
    return [m for m in rig.from_b if isinstance(m, Response) and m.cseq.method == method
            and m.status >= 200]


def call_with(rig: Rig, *headers: tuple[str, str]) -> tuple[CallSession, CallSession]:
    call_a = rig.a.invite("sip:bob@example.test", OFFER, rig.now, headers=list(headers))
    rig.flush()
    incoming = [e for e in rig.b.events_received() if isinstance(e, IncomingCall)]
    assert len(incoming) == 1, "bob got the call"
    call_b = incoming[0].call
    rig.b.answer(call_b, ANSWER, rig.now)
    rig.flush()
    rig.a.events_received(), rig.b.events_received()
    assert call_a.state is SessionState.ESTABLISHED
    return call_a, call_b


@pytest.fixture(autouse=True)
def _log_bob(rig: Rig) -> None:
    """Keep what bob sends (Rig logs only alice's messages)."""
    rig.from_b = []  # type: ignore[attr-defined]
    send = rig.b.data_to_send

    def logged() -> list[bytes]:
        from exotel_voice.sip import parse_message

        out = send()
        rig.from_b.extend(parse_message(d) for d in out)  # type: ignore[attr-defined]
        return out

    rig.b.data_to_send = logged  # type: ignore[method-assign]


def test_the_far_end_asks_and_refreshes_and_the_call_lasts(rig: Rig) -> None:
    call_a, call_b = call_with(rig, ("Session-Expires", "120"), ("Supported", "timer"))
    (ok,) = bob_responses(rig, "INVITE")  # type: ignore[attr-defined]
    assert ok.status == 200
    assert ok.headers["Session-Expires"] == "120;refresher=uac"
    assert "timer" in ok.headers.get_all("Require")
    assert (call_b.session_expires, call_b.session_refresher) == (120, "remote")
    assert (call_a.session_expires, call_a.session_refresher) == (120, "local")
    # alice refreshes at half the interval, by UPDATE without a body (bob allows UPDATE).
    rig.advance(59.0)
    assert rig.sent("UPDATE") == []
    rig.advance(2.0)
    (update,) = rig.sent("UPDATE")
    assert update.body == b"" and update.headers["Session-Expires"] == "120;refresher=uac"
    rig.advance(400.0)
    assert len(rig.sent("UPDATE")) == 7  # every 60 s
    assert call_a.state is SessionState.ESTABLISHED and call_b.state is SessionState.ESTABLISHED
    assert not [e for e in rig.b.events_received() if isinstance(e, CallEnded)]


def test_no_refresh_from_the_refresher_ends_the_call_with_a_bye(rig: Rig) -> None:
    call_a, call_b = call_with(
        rig, ("Session-Expires", "120;refresher=uac"), ("Supported", "timer")
    )
    rig.hold = {"UPDATE"}  # alice's refreshes are lost
    # RFC 4028 §10: BYE at expiry minus min(32 s, interval / 3) = 120 - 32 = 88 s.
    rig.advance(87.0)
    assert call_b.state is SessionState.ESTABLISHED
    rig.advance(2.0)
    ended = [e for e in rig.b.events_received() if isinstance(e, CallEnded)]
    assert len(ended) == 1 and ended[0].by == "remote"
    assert "did not refresh the session" in ended[0].reason and "120 s" in ended[0].reason
    assert call_b.state is SessionState.TERMINATED
    assert call_a.state is SessionState.TERMINATED, "the BYE reached alice"


def test_without_supported_timer_we_refresh_ourselves(rig: Rig) -> None:
    """A proxy put Session-Expires in the INVITE; the caller does not support timers, so
    bob (the UAS) is the refresher and does not Require timer (RFC 4028 §9)."""
    call_a, call_b = call_with(rig, ("Session-Expires", "100"))
    (ok,) = bob_responses(rig, "INVITE")  # type: ignore[attr-defined]
    assert ok.headers["Session-Expires"] == "100;refresher=uas"
    assert "Require" not in ok.headers
    assert call_b.session_refresher == "local"
    rig.advance(51.0)
    (update,) = [m for m in rig.from_b  # type: ignore[attr-defined]
                 if isinstance(m, Request) and m.method == "UPDATE"]
    assert update.headers["Session-Expires"] == "100;refresher=uac"
    assert call_a.state is SessionState.ESTABLISHED and call_b.state is SessionState.ESTABLISHED


def test_a_refresher_without_update_asks_its_owner_for_a_reinvite(rig: Rig) -> None:
    call_a, call_b = call_with(rig, ("Session-Expires", "100"))
    call_b.remote_allow = frozenset({"INVITE", "ACK", "BYE", "CANCEL"})
    rig.advance(51.0)
    (need,) = [e for e in rig.b.events_received() if isinstance(e, TargetRefreshNeeded)]
    assert need.call is call_b and need.reason == "session-timer"
    rig.b.reinvite(call_b, OFFER, rig.now)
    rig.flush()
    (reinvite,) = [e for e in rig.a.events_received() if isinstance(e, ReInviteReceived)]
    rig.a.answer_reinvite(call_a, ANSWER, rig.now)
    rig.flush()
    # The re-INVITE's 2xx restarted the timer: the next refresh is due 50 s later.
    rig.advance(45.0)
    assert not [e for e in rig.b.events_received() if isinstance(e, TargetRefreshNeeded)]
    rig.advance(10.0)
    assert [e.reason for e in rig.b.events_received()
            if isinstance(e, TargetRefreshNeeded)] == ["session-timer"]
    assert call_b.state is SessionState.ESTABLISHED


def test_a_session_interval_below_min_se_gets_422_and_our_invite_retries(rig: Rig) -> None:
    """bob refuses 60 s with 422 Min-SE: 90 (RFC 4028 §8.1); alice's INVITE goes again with
    Session-Expires: 90 (§7.4) and the call is set up with that interval."""
    call_a, call_b = call_with(rig, ("Session-Expires", "60"), ("Supported", "timer"))
    statuses = [r.status for r in bob_responses(rig, "INVITE")]  # type: ignore[attr-defined]
    assert statuses == [422, 200]
    first, second = rig.sent("INVITE")
    assert second.cseq.seq == first.cseq.seq + 1 and second.call_id == first.call_id
    assert second.headers["Session-Expires"] == "90" and second.headers["Min-SE"] == "90"
    assert call_b.session_expires == 90 and call_a.session_expires == 90


def test_a_far_end_that_does_not_ask_gets_no_timer(rig: Rig) -> None:
    call_a, call_b = call_with(rig)
    (ok,) = bob_responses(rig, "INVITE")  # type: ignore[attr-defined]
    assert "Session-Expires" not in ok.headers
    assert call_b.session_expires is None and call_a.session_expires is None
    assert rig.b.call_layer.get_timer() is None and rig.a.call_layer.get_timer() is None


def test_min_se_below_the_rfc_floor_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="min_se >= 90"):
        CallLayer(min_se=30)
