"""Testing your own voice app against the exotel-voice sandbox, with no Exotel account.

The app under test here is a tiny "agent desk": it registers as a WebRTC agent and answers
every incoming call, playing a greeting tone and collecting what the caller says. The
sandbox places calls to it exactly as Exotel does for a click-to-call (``Calls/connect``):
it rings the agent first, with the call's Sid in ``X-Exotel-Callsid``, then connects the
other party - here the sandbox's ``echo`` and ``ivr`` test numbers.

Run: ``pytest`` in this folder (real media on 127.0.0.1).
"""

from __future__ import annotations

import asyncio

from exotel_voice.client import Call, Phone
from exotel_voice.config import AccountConfig
from exotel_voice.media import IceConfig, MediaConfig, ToneSource
from exotel_voice.media.analysis import dominant_frequency


class AgentDesk:
    """The application under test: answers every call with a 800 Hz greeting tone."""

    def __init__(self, sip_account_info: dict[str, str]) -> None:
        account = AccountConfig.from_sip_account_info(sip_account_info)
        media = MediaConfig(ice=IceConfig(host_addresses=["127.0.0.1"]))
        self.phone = Phone(account, media=media)
        self.answered: list[Call] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.phone.register()
        self._task = asyncio.create_task(self._answer_calls())

    async def _answer_calls(self) -> None:
        async for call in self.phone.incoming_calls():
            await call.answer(ToneSource(800))
            self.answered.append(call)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.phone.close()


async def test_click_to_call_reaches_the_agent_with_its_call_sid(exotel_sandbox):
    desk = AgentDesk(exotel_sandbox.sip_account_info("agent"))
    await desk.start()
    try:
        sid = await exotel_sandbox.connect("agent", "echo")  # as POST Calls/connect

        async with asyncio.timeout(10):
            while not desk.answered:
                await asyncio.sleep(0.05)
        call = desk.answered[0]
        assert call.call_sid == sid  # X-Exotel-Callsid, for CRM correlation

        # echo sends our greeting back: the media path works both ways.
        frames = []
        async for frame in call.received_frames(sample_rate=16000):
            frames.append(frame)
            if len(frames) == 50:
                break
        assert abs(dominant_frequency(frames[-1], 16000) - 800) < 40
        assert exotel_sandbox.call(sid)["Status"] == "in-progress"

        await call.hangup()
        assert await exotel_sandbox.wait_call_ended(sid) == "completed"
    finally:
        await desk.stop()


async def test_dtmf_from_the_app_reaches_the_ivr(exotel_sandbox):
    desk = AgentDesk(exotel_sandbox.sip_account_info("agent"))
    await desk.start()
    try:
        status, body = await exotel_sandbox.rest(  # the real HTTP API, with Basic auth
            "POST", "/Calls/connect.json", {"From": "agent", "To": "ivr", "CallerId": "0800"}
        )
        assert status == 200
        sid = body["Call"]["Sid"]
        async with asyncio.timeout(10):
            while not desk.answered:
                await asyncio.sleep(0.05)
        call = desk.answered[0]
        await call.send_dtmf("42")  # SIP INFO, as Exotel's Web SDK sends it
        confirmed = []
        async with asyncio.timeout(5):
            async for digit in call.dtmf_received():  # the ivr confirms each digit by INFO
                confirmed.append(digit)
                if len(confirmed) == 2:
                    break
        assert confirmed == ["4", "2"]
        assert exotel_sandbox.ivr_digits(sid) == "42"
        await call.hangup()
    finally:
        await desk.stop()
