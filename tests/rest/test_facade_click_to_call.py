"""ExotelWebClient.clickToCall: the sync face's click-to-call with correlation (sandbox)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from exotel_voice import ExotelWebClient
from exotel_voice.exceptions import InvalidState
from exotel_voice.rest import ExotelClient
from exotel_voice.sandbox.threaded import SandboxThread

from .conftest import KEY, LOOPBACK_MEDIA, MEDIA, TOKEN, config


@LOOPBACK_MEDIA
def test_click_to_call_returns_the_exotel_call_with_the_rest_sid() -> None:
    events: list[tuple[str, str]] = []
    registered = threading.Event()

    def on_register(state: str, phone: str) -> None:
        if state == "registered":
            registered.set()

    def on_call(call: object, event: str, phone: str) -> None:
        events.append((event, getattr(call, "callSid", "")))

    with SandboxThread(config()) as sb, ExotelWebClient() as client, \
            ExotelClient("acme", KEY, TOKEN, base_url=sb.rest_url) as api:
        client.initWebrtc(sb.sip_account_info("agent"), on_register, on_call, None,
                          media=MEDIA)
        client.DoRegister()
        assert registered.wait(10)
        decoy = asyncio.run(sb.connect("agent", "echo"))
        call = client.clickToCall("echo", api, caller_id="08047112233", timeout=10)
        assert call.callSid and call.callSid != decoy
        assert api.get_call(call.callSid).status == "ringing"
        # The decoy is still there for the application; ours is not handed out twice.
        other = client.wait_for_call(timeout=5)
        assert other.callSid == decoy
        other.Hangup().result(5)
        call.Answer().result(10)
        call.wait_connected(10)
        for _ in range(50):  # the sandbox's side follows the phone's answer within moments
            if api.get_call(call.callSid).status == "in-progress":
                break
            time.sleep(0.1)
        assert api.get_call(call.callSid).status == "in-progress"
        assert ("incoming", call.callSid) in events  # the guide's callback still ran
        call.Hangup().result(5)
        assert asyncio.run(sb.wait_call_ended(call.callSid, 10)) == "completed"


def test_click_to_call_before_init_is_refused() -> None:
    with ExotelWebClient() as client, ExotelClient("acme", KEY, TOKEN,
                                                   base_url="http://127.0.0.1:9") as api:
        with pytest.raises(InvalidState, match="initWebrtc"):
            client.clickToCall("echo", api, caller_id="0804")
