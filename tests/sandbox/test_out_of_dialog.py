"""Requests outside any call the sandbox knows, sent raw over its WebSocket.

BYE, INFO, UPDATE and PRACK exist only inside a dialog: for one the sandbox does not have
they get 481 (RFC 3261 §12.2.2, §15.1.2), with a To tag or without (NOTIFY too: the
sandbox has no subscription); a MESSAGE is taken. 405 (with ``Allow``) is
only for methods the sandbox's ``Allow`` does not list, 501 for methods it does not know
(§8.2.1); no method that ``Allow`` lists is ever answered 405. Signalling only.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from exotel_voice.sandbox import Sandbox
from exotel_voice.sip import Response, parse_message
from exotel_voice.sip.registration import ALLOW


def stray(method: str, *, to_tag: str | None = None) -> tuple[str, bytes]:
    call_id = "stray-" + secrets.token_hex(6)
    to = "<sip:agent@sandbox.invalid>" + (f";tag={to_tag}" if to_tag else "")
    raw = (
        f"{method} sip:agent@sandbox.invalid SIP/2.0\r\n"
        f"Via: SIP/2.0/WS client.invalid;branch=z9hG4bK{secrets.token_hex(6)}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:carol@sandbox.invalid>;tag={secrets.token_hex(4)}\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: 7 {method}\r\n"
        "Contact: <sip:carol@client.invalid;transport=ws>\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    return call_id, raw.encode()


async def ask(ws: ClientConnection, method: str, *, to_tag: str | None = None) -> Response:
    call_id, raw = stray(method, to_tag=to_tag)
    await ws.send(raw.decode())
    async with asyncio.timeout(5):
        while True:
            data = await ws.recv()
            message = parse_message(data.encode() if isinstance(data, str) else data)
            if (isinstance(message, Response) and message.call_id == call_id
                    and message.status >= 200):
                return message


#: NOTIFY too: the sandbox holds no subscription (RFC 6665 §4.1.3).
IN_DIALOG_ONLY = ["BYE", "INFO", "UPDATE", "PRACK", "NOTIFY"]


@pytest.mark.parametrize("to_tag", [None, "gone1"], ids=["no-to-tag", "unknown-to-tag"])
async def test_in_dialog_methods_for_an_unknown_dialog_get_481(
    sandbox: Sandbox, to_tag: str | None
) -> None:
    async with connect(sandbox.ws_url, subprotocols=[Subprotocol("sip")]) as ws:
        for method in IN_DIALOG_ONLY:
            response = await ask(ws, method, to_tag=to_tag)
            assert response.status == 481, f"{method}: {response.status} {response.reason}"


async def test_no_method_in_allow_is_answered_405_or_501(sandbox: Sandbox) -> None:
    allowed = [m for m in ALLOW.split(",") if m not in ("ACK", "INVITE", "CANCEL")]
    async with connect(sandbox.ws_url, subprotocols=[Subprotocol("sip")]) as ws:
        for method in allowed:
            response = await ask(ws, method)
            assert response.status not in (405, 501), (
                f"{method} is in Allow ({ALLOW}) but got {response.status} {response.reason}"
            )


async def test_405_with_allow_only_for_methods_allow_does_not_list(sandbox: Sandbox) -> None:
    async with connect(sandbox.ws_url, subprotocols=[Subprotocol("sip")]) as ws:
        for method in ("SUBSCRIBE", "REFER", "PUBLISH"):
            assert method not in ALLOW.split(",")
            response = await ask(ws, method)
            assert response.status == 405, f"{method}: {response.status}"
            assert response.headers["Allow"] == ALLOW
        unknown = await ask(ws, "FROBNICATE")
        assert unknown.status == 501
        message = await ask(ws, "MESSAGE")
        assert message.status == 200
        options = await ask(ws, "OPTIONS")
        assert options.status == 200 and options.headers["Allow"] == ALLOW
