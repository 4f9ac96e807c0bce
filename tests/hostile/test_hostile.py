"""A real Phone registers to a hostile SIP-over-WebSocket server that attacks it by class.

Each test is one attack class (see :mod:`.harness` for what is checked after every class,
and :mod:`.server` for the server). The counts of the whole run are printed at the end of
``pytest``'s output ("hostile server" section).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
from collections.abc import Callable

import pytest

from exotel_voice.client import Call, RegistrationState
from exotel_voice.exceptions import (
    AuthenticationError,
    SipError,
    TransactionTimeout,
    TransportError,
)

from .conftest import PASSWORD
from .harness import Ctx, run_class
from .server import Flow, Registrar
from .sipmsg import (
    FAKE_SDP,
    GARBAGE_SDP,
    SERVER_HOST,
    Msg,
    request,
    response_to,
    token,
    without_fingerprint,
)


pytestmark = [
    pytest.mark.media,
    pytest.mark.skipif(
        os.environ.get("EXOTEL_NETNS") != "1",
        reason="real media needs a loopback-only namespace: scripts/in-netns.sh .venv/bin/pytest",
    ),
]

SEED = 12


def options(ctx: Ctx, **kw: object) -> Msg:
    return request("OPTIONS", ctx.aor, to=ctx.aor, **kw)  # type: ignore[arg-type]


async def expect_status(ctx: Ctx, what: str, msg: Msg | str | bytes, call_id: str,
                        statuses: set[int | None], *, text: bool | None = None) -> None:
    """Inject ``msg`` and check the phone answers with one of ``statuses`` (``None``: no
    answer is right too, when no valid response can be formed)."""
    if isinstance(msg, Msg):
        await ctx.hostile.inject(msg, text=text)
    else:
        ctx.hostile.injected[call_id] = "sip:x"
        data: str | bytes = msg
        if text is False and isinstance(msg, str):
            data = msg.encode("utf-8", "surrogateescape")
        await ctx.hostile.inject(data, text=text)
    answer = await ctx.hostile.final_response(call_id, 2.0)
    got = answer.status if answer is not None else None
    wanted = "/".join(sorted(str(s) if s else "no answer" for s in statuses))
    ctx.check(got in statuses, f"{what}: expected {wanted}, got {got or 'no answer'}")


async def still_answers(ctx: Ctx, what: str) -> None:
    ping = options(ctx)
    await ctx.hostile.inject(ping)
    answer = await ctx.hostile.final_response(ping.call_id, 3.0)
    ctx.check(answer is not None and answer.status == 200,
              f"{what}: the phone no longer answers OPTIONS")


def raw_request(start: str, ctx: Ctx, call_id: str, *, extra: str = "", body: str = "",
                content_length: int | None = None) -> str:
    length = len(body.encode()) if content_length is None else content_length
    return (
        f"{start}\r\nVia: SIP/2.0/WS {SERVER_HOST};branch=z9hG4bK{token()}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:hostile@{SERVER_HOST}>;tag={token(4)}\r\n"
        f"To: <{ctx.aor}>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\n{extra}"
        f"Content-Length: {length}\r\n\r\n{body}"
    )


# =============================================================================================
# Malformed and oversized messages, encodings
# =============================================================================================


async def malformed(ctx: Ctx) -> None:
    aor = ctx.aor
    # A CSeq that does not parse cannot be copied into a valid response: no answer is right.
    cases: list[tuple[str, str, set[int | None]]] = [
        ("double space in the start line", f"OPTIONS  {aor} SIP/2.0", {400}),
        ("trailing space in the start line", f"OPTIONS {aor} SIP/2.0 ", {400}),
        ("lower-case SIP version (case-insensitive, §7.1)", f"OPTIONS {aor} sip/2.0", {200}),
        ("tab instead of space", f"OPTIONS\t{aor} SIP/2.0", {400}),
        ("SIP/3.0", f"OPTIONS {aor} SIP/3.0", {505}),
        ("Request-URI with a space", "OPTIONS sip:a b@x SIP/2.0", {400}),
        ("unknown method", f"FOO {aor} SIP/2.0", {501}),
    ]
    for what, start, statuses in cases:
        call_id = token(10)
        body = raw_request(start, ctx, call_id)
        if start.startswith("FOO"):
            body = body.replace("CSeq: 1 OPTIONS", "CSeq: 1 FOO")
        await expect_status(ctx, what, body, call_id, statuses)
    call_id = token(10)
    await expect_status(ctx, "CSeq not a number",
                        raw_request(f"OPTIONS {aor} SIP/2.0", ctx, call_id).replace(
                            "CSeq: 1 OPTIONS", "CSeq: one OPTIONS"), call_id, {400, None})
    call_id = token(10)
    await expect_status(ctx, "CSeq method differs from the method",
                        raw_request(f"OPTIONS {aor} SIP/2.0", ctx, call_id).replace(
                            "CSeq: 1 OPTIONS", "CSeq: 1 BYE"), call_id, {400})
    call_id = token(10)
    await expect_status(ctx, "Content-Length past the body",
                        raw_request(f"OPTIONS {aor} SIP/2.0", ctx, call_id, body="abc",
                                    content_length=500), call_id, {400})
    call_id = token(10)
    await expect_status(ctx, "two From headers",
                        raw_request(f"OPTIONS {aor} SIP/2.0", ctx, call_id,
                                    extra="From: <sip:x@y>;tag=2\r\n"), call_id, {400})
    call_id = token(10)
    await expect_status(ctx, "a header line without a colon",
                        raw_request(f"OPTIONS {aor} SIP/2.0", ctx, call_id,
                                    extra="This line has no colon\r\n"), call_id, {400})
    # Nothing to answer: the phone must stay quiet and keep working.
    before = len(ctx.hostile.from_phone)
    for junk in ["hello world", "SIP/2.0 2000 OK\r\n\r\n", "INVITE\r\n\r\n", "\r\n\r\nx",
                 ":::\r\n\r\n", "SIP/2.0 200\r\nVia: x\r\n\r\n", " " * 100]:
        await ctx.hostile.inject(junk)
    await still_answers(ctx, "after junk")
    extra = [m.start for m in ctx.hostile.from_phone[before:] if m.status != 200]
    ctx.check(not extra, f"the phone answered junk: {extra}")


async def oversized(ctx: Ctx) -> None:
    aor = ctx.aor
    call_id = token(10)
    long_uri = "sip:" + "a" * 9000 + "@example.com"
    await expect_status(ctx, "9,000-character Request-URI",
                        raw_request(f"OPTIONS {long_uri} SIP/2.0", ctx, call_id),
                        call_id, {414})
    call_id = token(10)
    await expect_status(ctx, "a 10,000-character header line",
                        raw_request(f"OPTIONS {aor} SIP/2.0", ctx, call_id,
                                    extra=f"X-Long: {'b' * 10000}\r\n"), call_id, {400, 513})
    call_id = token(10)
    await expect_status(ctx, "300 header fields",
                        raw_request(f"OPTIONS {aor} SIP/2.0", ctx, call_id,
                                    extra="".join(f"X-H{i}: {i}\r\n" for i in range(300))),
                        call_id, {400, 513})
    call_id = token(10)
    await expect_status(ctx, "a 70 KB body",
                        raw_request(f"OPTIONS {aor} SIP/2.0", ctx, call_id, body="x" * 70000,
                                    extra="Content-Type: text/plain\r\n"), call_id, {513})
    await still_answers(ctx, "after oversized messages")
    # A frame past the transport's limit: the phone closes with 1009, reconnects, registers.
    flow = ctx.hostile.flow
    assert flow is not None
    await ctx.hostile.inject("x" * (2 << 20))
    await _expect_close_and_recovery(ctx, flow, 1009, "a 2 MiB frame")


async def _expect_close_and_recovery(ctx: Ctx, flow: Flow, code: int, what: str) -> None:
    try:
        await asyncio.wait_for(flow.closed.wait(), 5)
    except TimeoutError:
        ctx.check(False, f"{what}: the phone did not close the connection")
        return
    ctx.check(flow.close_code == code,
              f"{what}: the phone closed with {flow.close_code}, expected {code}")
    try:
        await asyncio.wait_for(_registered_again(ctx, flow), 10)
    except TimeoutError:
        ctx.hang(f"{what}: the phone did not reconnect and re-register within 10 s")


async def _registered_again(ctx: Ctx, old: Flow) -> None:
    while not (ctx.phone.registered and ctx.hostile.flow not in (None, old)):
        await asyncio.sleep(0.05)


async def encodings(ctx: Ctx) -> None:
    rng = random.Random(SEED + ctx.rep)
    # A SIP message in a binary frame is still SIP (RFC 7118 §5.2).
    ping = options(ctx)
    await expect_status(ctx, "OPTIONS in a binary frame", ping.render().encode(), ping.call_id,
                        {200}, text=False)
    # Invalid UTF-8 inside a SIP message in a binary frame.
    bad = options(ctx, from_=f"\"\udcff\udcfe\" <sip:hostile@{SERVER_HOST}>")
    await expect_status(ctx, "invalid UTF-8 in a header of a binary frame",
                        bad.render(), bad.call_id, {200, 400}, text=False)
    # NUL and other controls in a text frame.
    call_id = token(10)
    await expect_status(ctx, "NUL in the Request-URI",
                        raw_request("OPTIONS sip:a\x00b@x SIP/2.0", ctx, call_id),
                        call_id, {400})
    call_id = token(10)
    await expect_status(ctx, "a control character in a header value",
                        raw_request(f"OPTIONS {ctx.aor} SIP/2.0", ctx, call_id,
                                    extra="Subject: a\x01\x7fb\r\n"), call_id, {200, 400})
    # Random binary frames: not SIP, nothing to answer.
    for _ in range(50):
        await ctx.hostile.inject(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))))
    await still_answers(ctx, "after random binary frames")
    # Invalid UTF-8 in a *text* frame: RFC 6455 §8.1 fails the connection (1007).
    flow = ctx.hostile.flow
    assert flow is not None
    await ctx.hostile.inject(options(ctx).render().encode().replace(b"hostile@", b"\xff\xfe@"),
                             text=True)
    await _expect_close_and_recovery(ctx, flow, 1007, "invalid UTF-8 in a text frame")


@pytest.mark.timeout(180)
async def test_malformed_messages(ctx: Ctx) -> None:
    await run_class("malformed", ctx, malformed)


@pytest.mark.timeout(180)
async def test_oversized_messages(ctx: Ctx) -> None:
    await run_class("oversized", ctx, oversized, reps=2)


@pytest.mark.timeout(180)
async def test_encodings_and_binary_frames(ctx: Ctx) -> None:
    await run_class("encodings", ctx, encodings, reps=2)


# =============================================================================================
# Stray and duplicated responses; requests for unknown dialogs
# =============================================================================================


def stray(ctx: Ctx, status: int, method: str, *, sent_by: str | None = None) -> str:
    host = sent_by or ctx.sent_by
    return (
        f"SIP/2.0 {status} Whatever\r\nVia: SIP/2.0/WS {host};branch=z9hG4bK{token()}\r\n"
        f"From: <{ctx.aor}>;tag={token(4)}\r\nTo: <sip:x@{SERVER_HOST}>;tag={token(4)}\r\n"
        f"Call-ID: {token(10)}\r\nCSeq: {random.randrange(1, 999)} {method}\r\n"
        f"Contact: <sip:x@{SERVER_HOST};transport=ws>\r\nContent-Length: 0\r\n\r\n"
    )


async def strays(ctx: Ctx) -> None:
    h = ctx.hostile
    before = len(h.from_phone)
    frames = [stray(ctx, status, method)
              for status in (100, 180, 183, 200, 202, 302, 401, 407, 481, 487, 500, 603)
              for method in ("INVITE", "REGISTER", "BYE", "OPTIONS", "CANCEL", "INFO")]
    frames += [stray(ctx, 200, "INVITE", sent_by="someone.else.invalid") for _ in range(20)]
    await h.inject_many(frames)
    await still_answers(ctx, "after stray responses")
    said = [m.start for m in h.from_phone[before:] if m.is_request or m.status != 200]
    ctx.check(not said, f"the phone reacted to stray responses: {said[:5]}")

    # Every response of the registrar twice: one REGISTER for the challenge, one answer.
    async def twice(flow: Flow, msg: Msg) -> bool:
        if not msg.is_request:
            h.inputs += 1
            await flow.ws.send(msg.render())
        return False

    h.upstream_hook = twice
    before = len(h.from_phone)
    try:
        await ctx.phone.register(timeout=5)
    except Exception as exc:  # noqa: BLE001
        ctx.check(False, f"duplicated registrar responses: register() failed: {exc!r}")
    await asyncio.sleep(0.5)
    registers = h.sent(lambda m: m.method == "REGISTER" and m.is_request, before)
    ctx.check(len(registers) <= 2,
              f"duplicated registrar responses: {len(registers)} REGISTERs sent (at most 2)")
    # A call whose every response (407, 100, 200) arrives twice: one call, ACK per 2xx.
    before = len(h.from_phone)
    call = await ctx.phone.dial("echo")
    try:
        await call.wait_connected(10)
        await asyncio.sleep(0.5)
        ctx.check(not call.ended, f"duplicated 200 OK: the call ended: {call.end_reason}")
    except Exception as exc:  # noqa: BLE001
        ctx.check(False, f"duplicated INVITE responses: the call did not connect: {exc!r}")
    acks = h.sent(lambda m: m.method == "ACK" and m.is_request, before)
    invites = h.sent(lambda m: m.method == "INVITE" and m.is_request, before)
    ctx.check(len(invites) <= 2, f"duplicated INVITE responses: {len(invites)} INVITEs sent")
    ctx.check(len([a for a in acks if a.tag("To")]) >= 2,
              f"duplicated 200 OK: {len(acks)} ACKs, expected one per 2xx (RFC 3261 §13.2.2.4)")
    await _hangup(ctx, call, "duplicated INVITE responses")


async def _hangup(ctx: Ctx, call: Call, what: str) -> None:
    try:
        async with asyncio.timeout(6):
            await call.hangup()
            await call.wait_ended()
    except TimeoutError:
        ctx.hang(f"{what}: hangup() did not end the call (state {call.state})")


async def unknown_dialogs(ctx: Ctx) -> None:
    aor = ctx.aor
    for method in ("BYE", "INFO", "UPDATE", "NOTIFY", "OPTIONS", "MESSAGE", "REFER", "PRACK",
                   "INVITE"):
        msg = request(method, aor, to=aor, to_tag=token(4),
                      body=FAKE_SDP if method == "INVITE" else "")
        await expect_status(ctx, f"in-dialog {method} for an unknown dialog", msg, msg.call_id,
                            {481})
    msg = request("CANCEL", aor, to=aor)
    await expect_status(ctx, "CANCEL for an unknown INVITE", msg, msg.call_id, {481})
    before = len(ctx.hostile.from_phone)
    await ctx.hostile.inject(request("ACK", aor, to=aor, to_tag=token(4)))
    await still_answers(ctx, "after a stray ACK")
    ctx.check(len(ctx.hostile.from_phone) - before == 1, "the phone answered a stray ACK")


@pytest.mark.timeout(180)
async def test_stray_and_duplicated_responses(ctx: Ctx) -> None:
    await run_class("stray/duplicated", ctx, strays)


@pytest.mark.timeout(180)
async def test_requests_for_unknown_dialogs(ctx: Ctx) -> None:
    await run_class("unknown dialogs", ctx, unknown_dialogs)


# =============================================================================================
# Bad answers to our INVITE
# =============================================================================================


def rewrite_2xx(ctx: Ctx, change: object, *, second_tag: str | None = None,
                early: Msg | None = None) -> None:
    """Rewrite the sandbox's 2xx to our INVITE with ``change(msg)``; or, with
    ``second_tag``, pass it and send a copy with another To tag; ``early``: a 1xx to send
    first."""
    h = ctx.hostile

    async def hook(flow: Flow, msg: Msg) -> bool:
        if msg.is_request or msg.cseq_method != "INVITE" or not 200 <= msg.status < 300:
            return False
        if early is not None:
            h.inputs += 1
            one = early.copy()
            for name in ("Via", "From", "Call-ID", "CSeq"):
                one.set(name, msg.header(name))
            one.set("To", re.sub(r";tag=[^;]+", f";tag={token(4)}", msg.header("To") or ""))
            await flow.ws.send(one.render())
        if second_tag is not None:
            await flow.ws.send(msg.render())
            other = msg.copy()
            other.set("To", re.sub(r";tag=[^;]+", f";tag={second_tag}", msg.header("To") or ""))
            h.inputs += 1
            await flow.ws.send(other.render())
            return True
        if early is not None:
            await flow.ws.send(msg.render())
            return True
        h.inputs += 1
        await flow.ws.send(change(msg.copy()).render())  # type: ignore[operator]
        return True

    h.upstream_hook = hook


async def bad_2xx_case(ctx: Ctx, what: str, change: object, *, bye: bool = True) -> None:
    h = ctx.hostile
    rewrite_2xx(ctx, change)
    before = len(h.from_phone)
    call = await ctx.phone.dial("echo")
    try:
        await call.wait_ended(6)
    except TimeoutError:
        ctx.check(False, f"{what}: the call did not end (state {call.state})")
    events = ctx.call_events(call)
    ctx.check("connected" not in events, f"{what}: the call was reported connected")
    ctx.check(any(e in ("ended_remote", "ended_local", "failed") for e in events),
              f"{what}: no end event reached the application (events {events})")
    # The call ends in the same step that sends the ACK and the BYE: they may still be on
    # their way to the server when the application hears of the end.
    def request(method: str) -> Callable[[Msg], bool]:
        return lambda m: m.is_request and m.method == method and m.call_id == call.call_id

    ack = await h.wait_for(request("ACK"), 2.0, since=before)
    ctx.check(ack is not None, f"{what}: the 200 OK was not ACKed")
    if bye:
        bye_sent = await h.wait_for(request("BYE"), 2.0, since=before)
        ctx.check(bye_sent is not None, f"{what}: no BYE was sent")
    await _hangup(ctx, call, what)
    h.upstream_hook = None


def _no_contact(m: Msg) -> Msg:
    return m.set("Contact", None)


def _no_to_tag(m: Msg) -> Msg:
    return m.set("To", re.sub(r";\s*tag=[^;]+", "", m.header("To") or ""))


def _no_fingerprint(m: Msg) -> Msg:
    m.body = without_fingerprint(m.body)
    return m


def _garbage_sdp(m: Msg) -> Msg:
    m.body = GARBAGE_SDP
    return m


def _no_body(m: Msg) -> Msg:
    m.body = ""
    return m.set("Content-Type", None)


async def bad_answers(ctx: Ctx) -> None:
    await bad_2xx_case(ctx, "200 without Contact", _no_contact)
    await bad_2xx_case(ctx, "200 without a To tag", _no_to_tag, bye=False)
    await bad_2xx_case(ctx, "200 without a=fingerprint", _no_fingerprint)
    await bad_2xx_case(ctx, "200 with garbage SDP", _garbage_sdp)
    await bad_2xx_case(ctx, "200 without an SDP answer", _no_body)
    # A 183 with garbage SDP (another fork), then the real 200.
    early = Msg("SIP/2.0 183 Session Progress", [("Content-Type", "application/sdp")],
                GARBAGE_SDP)
    rewrite_2xx(ctx, None, early=early)
    call = await ctx.phone.dial("echo")
    try:
        await call.wait_connected(8)
    except TimeoutError:
        ctx.hang("183 with garbage SDP: the call neither connected nor ended")
    except SipError:
        pass  # ended with an error: acceptable
    await _hangup(ctx, call, "183 with garbage SDP")


async def second_2xx(ctx: Ctx) -> None:
    h = ctx.hostile
    tag = "second" + token(3)
    answered: list[Msg] = []

    async def intercept(flow: Flow, msg: Msg) -> bool:
        # The second dialog is ours: its ACK and BYE stay here (the BYE is answered 200).
        if msg.is_request and msg.tag("To") == tag:
            answered.append(msg)
            if msg.method != "ACK":
                await flow.ws.send(response_to(msg, 200, "OK", to_tag=None).render())
            return True
        return False

    h.phone_hook = intercept
    rewrite_2xx(ctx, None, second_tag=tag)
    call = await ctx.phone.dial("echo")
    try:
        await call.wait_connected(8)
    except Exception as exc:  # noqa: BLE001
        ctx.check(False, f"second 2xx: the first dialog did not connect: {exc!r}")
    await asyncio.sleep(1.0)
    methods = [m.method for m in answered]
    ctx.check("ACK" in methods, "second 2xx with another To tag: not ACKed")
    ctx.check("BYE" in methods,
              "second 2xx with another To tag: no BYE for the second dialog (§13.2.2.4)")
    ctx.check(not call.ended, f"second 2xx: the first dialog ended: {call.end_reason}")
    await _hangup(ctx, call, "second 2xx")


async def connection_drops(ctx: Ctx) -> None:
    h = ctx.hostile

    async def close_on_invite(flow: Flow, msg: Msg) -> bool:
        if msg.is_request and msg.method == "INVITE" and msg.header("Proxy-Authorization"):
            h.inputs += 1
            await flow.ws.close(1011, "closed mid-INVITE")
            return True
        return False

    h.phone_hook = close_on_invite
    call = await ctx.phone.dial("echo")
    try:
        await call.wait_ended(6)
    except TimeoutError:
        ctx.check(False, f"socket closed mid-INVITE: the call did not end ({call.state})")
    await _hangup(ctx, call, "socket closed mid-INVITE")
    h.phone_hook = None
    try:
        await ctx.phone.register(timeout=10)
    except Exception as exc:  # noqa: BLE001
        ctx.check(False, f"after a close mid-INVITE: register() failed: {exc!r}")
    # The flow drops during an established call: flow recovery, then a hang-up that ends.
    call = await ctx.phone.dial("echo")
    try:
        await call.wait_connected(8)
    except Exception as exc:  # noqa: BLE001
        ctx.check(False, f"drop mid-call: the call did not connect: {exc!r}")
    await h.close_phone()
    try:
        await ctx.phone.register(timeout=10)
    except Exception as exc:  # noqa: BLE001
        ctx.check(False, f"drop mid-call: register() failed: {exc!r}")
    await _hangup(ctx, call, "drop mid-call")


@pytest.mark.timeout(180)
async def test_bad_answers_to_invite(ctx: Ctx) -> None:
    await run_class("bad 2xx/SDP", ctx, bad_answers, reps=2)


@pytest.mark.timeout(180)
async def test_second_2xx_from_another_fork(ctx: Ctx) -> None:
    await run_class("second 2xx", ctx, second_2xx, reps=2)


@pytest.mark.timeout(180)
async def test_connection_drops(ctx: Ctx) -> None:
    await run_class("connection drops", ctx, connection_drops, reps=2)


# =============================================================================================
# Floods
# =============================================================================================


async def floods(ctx: Ctx) -> None:
    h = ctx.hostile
    aor = ctx.aor
    n = 1000
    pings = [options(ctx) for _ in range(n)]
    for p in pings:
        h.injected[p.call_id] = aor
    before = len(h.from_phone)
    await h.inject_many([p.render() for p in pings])
    ids = {p.call_id for p in pings}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while loop.time() < deadline:
        answered = {m.call_id for m in h.from_phone[before:] if m.status == 200} & ids
        if len(answered) == n:
            break
        await asyncio.sleep(0.1)
    answered = {m.call_id for m in h.from_phone[before:] if m.status == 200} & ids
    ctx.check(len(answered) == n, f"OPTIONS flood: {len(answered)} of {n} answered 200")
    del pings, ids, answered
    await h.inject_many([stray(ctx, 200, "INVITE") for _ in range(500)])
    await h.inject_many(["\r\n\r\n"] * 200)
    # Incoming INVITEs: half cancelled by us (487), half rejected by the application (486).
    ctx.auto_reject = False
    invites = [request("INVITE", aor, to=aor, body=FAKE_SDP) for _ in range(40)]
    for inv in invites:
        await h.inject(inv)
    await asyncio.sleep(0.3)
    for inv in invites:
        cancel = inv.copy()
        cancel.start = cancel.start.replace("INVITE", "CANCEL", 1)
        cancel.set("CSeq", "1 CANCEL").set("Content-Type", None)
        cancel.body = ""
        await h.inject(cancel)
    for inv in invites:
        answer = await h.final_response(inv.call_id, 3.0, method="INVITE")
        ctx.check(answer is not None and answer.status == 487,
                  f"INVITE flood: a cancelled INVITE got {answer.status if answer else None}")
    ctx.auto_reject = True
    invites = [request("INVITE", aor, to=aor, body=FAKE_SDP) for _ in range(40)]
    for inv in invites:
        await h.inject(inv)
    for inv in invites:
        answer = await h.final_response(inv.call_id, 5.0, method="INVITE")
        ctx.check(answer is not None and answer.status == 486,
                  f"INVITE flood: a rejected INVITE got {answer.status if answer else None}")
    await still_answers(ctx, "after the floods")


@pytest.mark.timeout(180)
async def test_floods(ctx: Ctx) -> None:
    await run_class("floods", ctx, floods)


# =============================================================================================
# Registrar misbehaviour
# =============================================================================================


def registrar(ctx: Ctx, mode: str, **kw: bool) -> Registrar:
    reg = Registrar(mode, user=ctx.phone.account.auth_user, password=PASSWORD,
                    realm=ctx.phone.account.sip_domain, **kw)
    ctx.hostile.registrar = reg
    return reg


async def register_outcome(ctx: Ctx, timeout: float) -> BaseException | None:
    try:
        await ctx.phone.register(timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - the caller judges it
        return exc
    return None


async def registrar_misbehaviour(ctx: Ctx) -> None:
    h = ctx.hostile
    # Nonces that change without qop and without stale=true (Kamailio's stock settings).
    for qop in (False, True):
        reg = registrar(ctx, "digest", qop=qop, rotate=True)
        for attempt in range(3):
            exc = await register_outcome(ctx, 5)
            ctx.check(exc is None, f"new nonce (qop={qop}) on REGISTER #{attempt + 1}: "
                      f"register() failed: {exc!r}")
        ctx.check(reg.registered >= 3, f"new nonce (qop={qop}): {reg.registered} of 3 accepted")
    # A registrar that challenges for ever: a new nonce every time, then always the same.
    for same in (False, True):
        reg = registrar(ctx, "challenge_loop")
        reg.same_nonce = same
        exc = await register_outcome(ctx, 6)
        what = "challenge loop (same nonce)" if same else "challenge loop (new nonces)"
        ctx.check(isinstance(exc, AuthenticationError),
                  f"{what}: expected AuthenticationError, got {exc!r}")
        await asyncio.sleep(0.5)
        ctx.check(len(reg.seen) <= (3 if same else 6), f"{what}: {len(reg.seen)} REGISTERs")
    # 423 with a Min-Expires that keeps growing: bounded, and reported.
    reg = registrar(ctx, "423_growing")
    exc = await register_outcome(ctx, 6)
    ctx.check(isinstance(exc, SipError) and not isinstance(exc, TransactionTimeout),
              f"423 with a growing Min-Expires: expected a SipError, got {exc!r}")
    await asyncio.sleep(0.5)
    ctx.check(len(reg.seen) <= 10, f"423 with a growing Min-Expires: {len(reg.seen)} REGISTERs")
    # A sane 423: retry once with Min-Expires.
    reg = registrar(ctx, "423_once")
    exc = await register_outcome(ctx, 5)
    ctx.check(exc is None, f"423 then 200: register() failed: {exc!r}")
    ctx.check(any(int(m.header("Expires") or 0) >= 600 for m in reg.seen),
              "423 then 200: no REGISTER with Expires >= Min-Expires")
    # 3xx: not followed, reported, not hammered.
    reg = registrar(ctx, "302")
    exc = await register_outcome(ctx, 5)
    ctx.check(isinstance(exc, SipError), f"302 to REGISTER: expected a SipError, got {exc!r}")
    await asyncio.sleep(1.0)
    ctx.check(len(reg.seen) <= 2, f"302 to REGISTER: {len(reg.seen)} REGISTERs in 1 s")
    # 503 with Retry-After: 30: the retry waits at least that long.
    ctx.events.clear()
    reg = registrar(ctx, "503")
    exc = await register_outcome(ctx, 5)
    ctx.check(isinstance(exc, SipError), f"503 to REGISTER: expected a SipError, got {exc!r}")
    terminated = [e for e in ctx.reg_events() if e.state is RegistrationState.FAILED]
    retry = terminated[-1].retry_in if terminated else None
    ctx.check(retry is not None and retry >= 30,
              f"503 with Retry-After 30: retry announced in {retry} s")
    await asyncio.sleep(2.5)
    ctx.check(len(reg.seen) == 1, f"503 with Retry-After 30: {len(reg.seen)} REGISTERs in 2.5 s")
    # Silence: a timeout, reported as one, within the configured register timeout.
    reg = registrar(ctx, "silent")
    started = asyncio.get_running_loop().time()
    exc = await register_outcome(ctx, 8)
    took = asyncio.get_running_loop().time() - started
    ctx.check(isinstance(exc, TransactionTimeout),
              f"silent registrar: expected TransactionTimeout, got {exc!r}")
    ctx.check(took < 4, f"silent registrar: reported after {took:.1f} s (timeout is 2 s)")
    # The socket closed mid-REGISTER: a connection loss, then recovery by itself.
    ctx.events.clear()
    registrar(ctx, "close")
    exc = await register_outcome(ctx, 10)
    # register() may report the loss (as a TransportError) or ride it out; either way the
    # phone registers again by itself once it has reconnected.
    ctx.check(exc is None or (isinstance(exc, TransportError) and "connection" in str(exc)),
              f"socket closed mid-REGISTER: register() raised {exc!r}")
    try:
        async with asyncio.timeout(10):
            while not ctx.phone.registered:
                await asyncio.sleep(0.05)
    except TimeoutError:
        ctx.hang("socket closed mid-REGISTER: not registered again within 10 s")
    lost = (RegistrationState.FAILED, RegistrationState.UNREGISTERED)
    reasons = [e.reason for e in ctx.reg_events() if e.state in lost]
    ctx.check(reasons and all("no response" not in r for r in reasons),
              f"socket closed mid-REGISTER reported as {reasons}")
    # Proxy-Authorization earned by an INVITE's 407 must not ride on a REGISTER.
    h.registrar = None
    call = await ctx.phone.dial("echo")
    try:
        await call.wait_connected(8)
    except Exception as exc2:  # noqa: BLE001
        ctx.check(False, f"call before the REGISTER: {exc2!r}")
    await _hangup(ctx, call, "call before the REGISTER")
    before = len(h.from_phone)
    exc = await register_outcome(ctx, 5)
    ctx.check(exc is None, f"REGISTER after a call: {exc!r}")
    leaked = h.sent(lambda m: m.method == "REGISTER" and m.is_request
                    and m.header("Proxy-Authorization") is not None, before)
    ctx.check(not leaked, "a REGISTER carried the Proxy-Authorization of an INVITE's 407")


@pytest.mark.timeout(240)
async def test_registrar_misbehaviour(ctx: Ctx) -> None:
    await run_class("registrar", ctx, registrar_misbehaviour, reps=2, time_limit=100)


# =============================================================================================
# Seeded random mutations of valid traffic
# =============================================================================================

JUNK = ["\x00", "\r", "\n", "\r\n", ":", ";", ",", "<", ">", "\"", " ", "\t", "é", "\u2028",
        "%", "=", "@", "tag=", "\\", "z9hG4bK", "sip:", "SIP/2.0", "-1", "4294967296", "9" * 30]


def mutate(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 3)):
        lines = text.split("\r\n")
        op = rng.randrange(9)
        if op == 0 and text:  # replace one character
            i = rng.randrange(len(text))
            text = text[:i] + rng.choice(JUNK) + text[i + 1:]
        elif op == 1 and text:  # delete a span
            i = rng.randrange(len(text))
            text = text[:i] + text[i + rng.randint(1, 20):]
        elif op == 2:  # duplicate a line
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            text = "\r\n".join(lines)
        elif op == 3 and len(lines) > 1:  # delete a line
            del lines[rng.randrange(len(lines))]
            text = "\r\n".join(lines)
        elif op == 4:  # insert junk
            i = rng.randrange(len(text) + 1)
            text = text[:i] + rng.choice(JUNK) * rng.randint(1, 3) + text[i:]
        elif op == 5 and len(lines) > 2:  # swap two lines
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\r\n".join(lines)
        elif op == 6:  # a number becomes another
            numbers = list(re.finditer(r"\d+", text))
            if numbers:
                m = rng.choice(numbers)
                text = text[:m.start()] + rng.choice(["0", "-1", "99999999999", "4294967296",
                                                      "1e3", ""]) + text[m.end():]
        elif op == 7:  # truncate
            text = text[:rng.randrange(len(text) + 1)]
        else:  # a header's name in another case or compact form
            text = rng.choice([text.replace("Call-ID", "i"), text.replace("Via", "VIA"),
                               text.replace("From", "f"), text.replace("To:", "t:"),
                               text.replace("CSeq", "cseq")])
    return text


def templates(ctx: Ctx) -> list[str]:
    aor = ctx.aor
    return [
        options(ctx).render(),
        request("MESSAGE", aor, to=aor, headers=[("Content-Type", "text/plain")]).render(),
        request("NOTIFY", aor, to=aor, headers=[("Event", "check-sync")]).render(),
        request("INVITE", aor, to=aor, body=FAKE_SDP).render(),
        request("BYE", aor, to=aor, to_tag=token(4)).render(),
        request("INFO", aor, to=aor, to_tag=token(4),
                headers=[("Content-Type", "application/dtmf-relay")]).render(),
        stray(ctx, 200, "REGISTER"),
        stray(ctx, 180, "INVITE"),
        stray(ctx, 200, "INVITE"),
    ]


async def mutations(ctx: Ctx) -> None:
    rng = random.Random(SEED * 1000 + ctx.rep)
    h = ctx.hostile
    before = len(h.from_phone)
    count = 1000
    for i in range(count):
        base = rng.choice(templates(ctx))
        text = mutate(base, rng)
        # Track the Call-ID (if it survived) so answers stay here and INVITEs get ACKed.
        m = re.search(r"(?:Call-ID|i):\s*(\S+)", text)
        if m:
            h.injected[m.group(1)] = ctx.aor
        if rng.random() < 0.2:
            await h.inject(text.encode("utf-8"), text=False)
        else:
            await h.inject(text)
        if i % 100 == 99:
            await asyncio.sleep(0.05)
    await still_answers(ctx, "after mutated messages")
    bad = [m.start for m in h.from_phone[before:]
           if not re.fullmatch(r"(SIP/2\.0 [1-6]\d\d .*)|([A-Z]+ \S+ SIP/2\.0)", m.start)]
    ctx.check(not bad, f"the phone sent malformed start lines: {bad[:3]}")


@pytest.mark.timeout(180)
async def test_seeded_mutations(ctx: Ctx) -> None:
    await run_class("mutations", ctx, mutations)
