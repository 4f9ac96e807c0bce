"""Shared peers and helpers for the call tests (test_calls.py, test_call_events.py).

No tests here: a Python :class:`Phone` registered on the rig's Kamailio over ws or wss
(the wss one trusts the rig's generated CA through ``caFile``, never insecure mode), a
SIP.js browser phone on the same transport, tone analysis of what a Python call receives,
and an event recorder for :meth:`Phone.add_listener`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from exotel_voice.client import Call, CallEvent, DtmfReceived, Phone, PhoneEvent, RegistrationState
from exotel_voice.config import AccountConfig
from exotel_voice.media import IceConfig, MediaConfig, ToneSource, dominant_frequency, rms_dbfs
from tests.labels import call_label, is_flow
from tests.rig.browser import BrowserHost, BrowserPhone
from tests.rig.kamailio import Kamailio


MEDIA = MediaConfig(ice=IceConfig(host_addresses=["127.0.0.1"]))
SCHEMES = ("ws", "wss")
#: What each kind of peer sends, all different, so a side can't pass by hearing itself.
PY_HZ = 700.0
BROWSER_HZ = 1100.0
BARESIP_HZ = 440.0  # the rig's default baresip source
TOLERANCE_HZ = 30.0
#: The guide's call events (CallListenerCallback), in the order a call can produce them.
GUIDE_EVENTS = ("incoming", "ringing", "connected", "ended_local", "ended_remote")


def account(
    kamailio: Kamailio, user: str, password: str, scheme: str, **extra: Any
) -> AccountConfig:
    info = kamailio.info
    sip_account_info: dict[str, Any] = {
        "userName": user,
        "sipdomain": info.domain,
        "secret": password,
        "wsUrl": info.ws_url if scheme == "ws" else info.wss_url,
        **extra,
    }
    if scheme == "wss":
        sip_account_info["caFile"] = str(info.ca_file)
    return AccountConfig.from_sip_account_info(sip_account_info)


@dataclass
class Recorder:
    """Every event a phone publishes, as its listener sees them."""

    events: list[PhoneEvent] = field(default_factory=list)

    def __call__(self, event: PhoneEvent) -> None:
        self.events.append(event)

    def call_events(self, call: Call, *, guide_only: bool = True) -> list[str]:
        return [
            call_label(e)
            for e in self.events
            if is_flow(e)
            and e.call is call
            and (not guide_only or call_label(e) in GUIDE_EVENTS)
        ]

    def all_call_events(self, call: Call) -> list[str]:
        return self.call_events(call, guide_only=False)


@dataclass
class PyPeer:
    phone: Phone
    user: str
    aor: str
    recorder: Recorder


@contextlib.asynccontextmanager
async def python_phone(
    kamailio: Kamailio, scheme: str, *, hz: float = PY_HZ, display_name: str | None = None
) -> AsyncIterator[PyPeer]:
    """A registered Python phone that sends a ``hz`` tone in every call."""
    user, password = kamailio.new_user("py")
    extra = {"displayname": display_name} if display_name else {}
    phone = Phone(account(kamailio, user, password, scheme, **extra), media=MEDIA,
                  source=lambda: ToneSource(hz))
    recorder = Recorder()
    phone.add_listener(recorder)
    async with phone:
        event = await phone.register(timeout=10)
        assert event.state is RegistrationState.REGISTERED
        assert phone.status() == "registered"
        # The registrar holds the binding over the transport we asked for.
        contacts = kamailio.wait_registered(user, timeout=5)
        assert contacts, f"no binding for {user}"
        yield PyPeer(phone, user, kamailio.info.aor(user), recorder)


async def browser_phone(
    host: BrowserHost, kamailio: Kamailio, scheme: str, name: str, *, hz: float = BROWSER_HZ
) -> tuple[BrowserPhone, str]:
    """A SIP.js phone registered over ``scheme``; returns it and its AOR."""
    user, password = kamailio.new_user(name)
    info = kamailio.info
    phone = await host.new_phone(name, tone_hz=hz)
    url = info.ws_url if scheme == "ws" else info.wss_url
    event = await phone.register(url, info.aor(user), user, password, name.title())
    assert event is not None and event["type"] == "registered"
    assert kamailio.wait_registered(user, timeout=5)
    return phone, info.aor(user)


async def heard(call: Call, seconds: float = 0.6, *, settle: float = 0.2) -> tuple[float, float]:
    """Dominant frequency (Hz) and level (dBFS) of ``seconds`` of what ``call`` receives."""
    rate = 16000
    skip = int(settle / 0.02)
    want = int(seconds / 0.02)
    frames: list[Any] = []

    async def grab() -> None:
        n = 0
        async for frame in call.received_frames(sample_rate=rate):
            n += 1
            if n > skip:
                frames.append(frame)
            if len(frames) >= want:
                return

    await asyncio.wait_for(grab(), seconds + settle + 8)
    samples = np.concatenate(frames)
    return dominant_frequency(samples, rate), rms_dbfs(samples)


async def assert_python_hears(call: Call, hz: float) -> None:
    frequency, level = await heard(call)
    assert abs(frequency - hz) <= TOLERANCE_HZ, (frequency, level)
    assert level > -40, (frequency, level)


async def assert_browser_hears(phone: BrowserPhone, hz: float) -> None:
    await phone.wait_for_media(min_packets=25)
    tone = await phone.received_tone(0.5)
    assert abs(tone.frequency - hz) <= TOLERANCE_HZ, (phone.name, tone)
    assert tone.level_db > -40, (phone.name, tone)


def digits(recorder: Recorder, call: Call) -> list[tuple[str, str]]:
    """Every DTMF digit ``call`` has received so far, with its method (``info``/``rfc4733``)."""
    return [
        (e.digit, e.method)
        for e in recorder.events
        if isinstance(e, DtmfReceived) and e.call is call
    ]


async def wait_digits(
    recorder: Recorder, call: Call, count: int, timeout: float = 8.0
) -> list[tuple[str, str]]:
    """Wait until ``call`` has received ``count`` digits (or ``timeout``); return them all."""
    async def poll() -> None:
        while len(digits(recorder, call)) < count:
            await asyncio.sleep(0.05)

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(poll(), timeout)
    return digits(recorder, call)


async def close_browser_phones(*phones: BrowserPhone) -> None:
    for phone in phones:
        errors = phone.seen("pageerror")
        await phone.close()
        assert not errors, f"{phone.name}: page errors {errors}"


def events_of(recorder: Recorder, call: Call) -> list[CallEvent]:
    return [e for e in recorder.events if is_flow(e) and e.call is call]


async def wait_call_event(
    recorder: Recorder, call: Call, name: str, timeout: float = 8.0, *, count: int = 1
) -> CallEvent:
    """Wait until ``call`` has published ``name`` ``count`` times; return the newest one."""
    async def poll() -> CallEvent:
        while True:
            found = [e for e in events_of(recorder, call) if call_label(e) == name]
            if len(found) >= count:
                return found[count - 1]
            await asyncio.sleep(0.02)

    try:
        return await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        seen = recorder.all_call_events(call)
        raise AssertionError(f"no {name!r} event #{count} within {timeout}s; saw {seen}") from None


def uri_user(value: str) -> str | None:
    """The user part of the first SIP URI in a header value."""
    import re

    match = re.search(r"sips?:([^@;>:]+)@", value)
    return match.group(1) if match else None


async def kamailio_events(
    kamailio: Kamailio, kind: str, *, count: int = 1, timeout: float = 5.0, **match: str
) -> list[Any]:
    """Kamailio's RIG events, waiting (without blocking the loop) until ``count`` are logged:
    its log lags a little behind the SIP traffic."""
    deadline = time.monotonic() + timeout
    while True:
        found = kamailio.events(kind, **match)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def assert_ack_delivered(kamailio: Kamailio, call_id: str) -> None:
    """Our ACK for the 2xx crossed Kamailio (record-route) and reached the callee.

    Proof: Kamailio relayed our ACK, and the callee never retransmitted its 200 (a UAS
    repeats the 2xx until the ACK arrives, every 500 ms at first: RFC 3261 §13.3.1.4).
    """
    assert await kamailio_events(kamailio, "REQ", method="ACK", callid=call_id), (
        f"no ACK for {call_id} reached Kamailio"
    )
    oks = kamailio.events("RPL", status="200", method="INVITE", callid=call_id)
    assert len(oks) == 1, f"the callee sent its 200 {len(oks)} times: the ACK did not reach it"
