"""The REST client against respx mocks: error shapes, retries, timeouts, XML, secrets.

No request leaves the process: every test runs inside ``respx.mock(assert_all_mocked=True)``.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
import respx

from exotel_voice.exceptions import ConfigurationError, SipError
from exotel_voice.rest import (
    AsyncExotelClient,
    AuthenticationFailed,
    CallStatus,
    ExotelClient,
    InvalidRequest,
    NotFound,
    RateLimited,
    RestConnectionError,
    RestError,
    RestTimeout,
    ServerError,
)


TOKEN = "tok-9f8e7d6c5b4a39281706"
KEY = "key-0123"
HOST = "https://api.in.exotel.com"
CONNECT = "/v1/Accounts/acme/Calls/connect.json"
CALL = {"Call": {"Sid": "c0ffee", "Status": "queued", "From": "agent", "To": "0987",
                 "Direction": "outbound-api", "DateCreated": "2024-05-01 10:00:00",
                 "Price": "1.50", "Duration": None, "RecordingUrl": None}}


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=HOST, assert_all_mocked=True, assert_all_called=False) as mock:
        yield mock


def client(**kw: object) -> ExotelClient:
    options: dict[str, object] = {"subdomain": "mumbai", "backoff": 0.01, **kw}
    return ExotelClient("acme", KEY, TOKEN, **options)  # type: ignore[arg-type]


def connect(c: ExotelClient) -> object:
    return c.connect(from_="agent", to="0987", caller_id="0804")


def test_connect_sends_exotel_form_with_basic_auth_and_parses_the_call(
    api: respx.MockRouter,
) -> None:
    route = api.post(CONNECT).respond(200, json=CALL)
    with client() as c:
        call = c.connect(from_="agent", to="0987", caller_id="0804", time_out=20,
                         custom_field="order-7", record=True,
                         status_callback="https://example.test/cb",
                         status_callback_events=["terminal"], WaitUrl="https://w.test/a.wav")
    assert call.sid == "c0ffee" and call.status is CallStatus.QUEUED
    assert call.price == Decimal("1.50") and call.duration is None
    assert call.date_created is not None and call.date_created.hour == 10
    sent = route.calls.last.request
    assert sent.headers["Authorization"] == httpx.BasicAuth(KEY, TOKEN)._auth_header
    form = dict(httpx.QueryParams(sent.content.decode()))
    assert form == {"From": "agent", "To": "0987", "CallerId": "0804", "TimeOut": "20",
                    "CustomField": "order-7", "Record": "true",
                    "StatusCallback": "https://example.test/cb",
                    "StatusCallbackEvents[0]": "terminal", "WaitUrl": "https://w.test/a.wav"}


def test_regions_and_base_url() -> None:
    assert ExotelClient("a", "k", "t").base_url == "https://api.exotel.com"
    assert ExotelClient("a", "k", "t", subdomain="mumbai").base_url == HOST
    assert ExotelClient("a", "k", "t", subdomain="api.in.exotel.com").base_url == HOST
    sandbox = ExotelClient("a", "k", "t", base_url="http://127.0.0.1:8090/v1/Accounts/a/")
    assert sandbox.base_url == "http://127.0.0.1:8090"
    with pytest.raises(ConfigurationError, match="base_url"):
        ExotelClient("a", "k", "t", base_url=f"https://k:{TOKEN}@api.exotel.com")
    with pytest.raises(ConfigurationError, match="api_token"):
        ExotelClient("a", "k", "")


def test_xml_when_asked(api: respx.MockRouter) -> None:
    xml = ("<?xml version='1.0'?><TwilioResponse><Call><Sid>x1</Sid><Status>completed"
           "</Status><Duration>12</Duration><RecordingUrl/></Call></TwilioResponse>")
    api.get("/v1/Accounts/acme/Calls/x1").respond(200, text=xml)
    with client(format="xml") as c:
        call = c.get_call("x1")
    assert (call.sid, call.status, call.duration, call.recording_url) == (
        "x1", "completed", 12, None)
    assert call.status.final  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, InvalidRequest), (401, AuthenticationFailed), (403, AuthenticationFailed),
     (404, NotFound), (409, InvalidRequest)],
)
def test_error_bodies_become_typed_errors(api: respx.MockRouter, status: int,
                                          cls: type[RestError]) -> None:
    route = api.post(CONNECT).respond(
        status, json={"RestException": {"Status": status, "Message": "Nope here",
                                        "Code": "1010"}})
    with client() as c, pytest.raises(cls) as info:
        connect(c)
    err = info.value
    assert isinstance(err, SipError)
    assert (err.status, err.code, err.message) == (status, "1010", "Nope here")
    assert str(err).startswith(f"POST {CONNECT}: {status} Nope here")
    assert route.call_count == 1  # 4xx is never retried


def test_xml_error_body_and_html_body(api: respx.MockRouter) -> None:
    api.get("/v1/Accounts/acme/Calls/nope").respond(
        404, text="<TwilioResponse><RestException><Status>404</Status><Message>Call not "
                  "found</Message></RestException></TwilioResponse>")
    api.get("/v1/Accounts/acme/Calls/gw.json").respond(400, text="<html>bad</html>")
    with client(format="xml") as c, pytest.raises(NotFound, match="Call not found"):
        c.get_call("nope")
    with client() as c, pytest.raises(InvalidRequest) as info:
        c.get_call("gw")
    assert info.value.message == "Bad Request" and info.value.code is None


def test_get_retries_5xx_then_succeeds(api: respx.MockRouter, caplog: pytest.LogCaptureFixture
                                       ) -> None:
    route = api.get("/v1/Accounts/acme/Calls/c0ffee.json").mock(side_effect=[
        httpx.Response(500), httpx.Response(502), httpx.Response(200, json=CALL)])
    with caplog.at_level(logging.INFO, "exotel_voice.rest"), client() as c:
        assert c.get_call("c0ffee").sid == "c0ffee"
    assert route.call_count == 3
    assert "retrying" in caplog.text


def test_get_gives_up_after_retries_with_a_server_error(api: respx.MockRouter) -> None:
    route = api.get("/v1/Accounts/acme/Calls/c0ffee.json").respond(503)
    with client(retries=2) as c, pytest.raises(ServerError) as info:
        c.get_call("c0ffee")
    assert route.call_count == 3 and info.value.status == 503


def test_connect_is_not_retried_on_500_and_says_why(api: respx.MockRouter) -> None:
    route = api.post(CONNECT).respond(500)
    with client() as c, pytest.raises(ServerError, match="may have been created"):
        connect(c)
    assert route.call_count == 1


@pytest.mark.parametrize("status", [429, 503])
def test_connect_is_retried_when_refused_before_any_work(api: respx.MockRouter,
                                                         status: int) -> None:
    route = api.post(CONNECT).mock(side_effect=[httpx.Response(status),
                                                httpx.Response(200, json=CALL)])
    with client() as c:
        assert connect(c).sid == "c0ffee"  # type: ignore[attr-defined]
    assert route.call_count == 2


def test_retry_after_is_honoured_and_capped(api: respx.MockRouter) -> None:
    route = api.post(CONNECT).mock(side_effect=[
        httpx.Response(429, headers={"Retry-After": "0.4"}),
        httpx.Response(429, headers={"Retry-After": "3600"}),
        httpx.Response(200, json=CALL)])
    start = time.monotonic()
    with client(max_retry_after=0.3, backoff=0.0) as c:
        connect(c)
    elapsed = time.monotonic() - start
    assert route.call_count == 3
    assert 0.55 <= elapsed < 3.0  # 0.3 (capped) + 0.3 (capped), not 3600


def test_rate_limited_after_retries_carries_retry_after(api: respx.MockRouter) -> None:
    api.post(CONNECT).respond(429, headers={"Retry-After": "0"},
                              json={"RestException": {"Status": 429, "Message": "Slow down"}})
    with client(retries=1) as c, pytest.raises(RateLimited) as info:
        connect(c)
    assert info.value.retry_after == 0.0 and info.value.message == "Slow down"


def test_timeouts_are_a_clear_error(api: respx.MockRouter) -> None:
    get = api.get("/v1/Accounts/acme/Calls/c0ffee.json").mock(
        side_effect=httpx.ReadTimeout("read timed out"))
    post = api.post(CONNECT).mock(side_effect=httpx.ReadTimeout("read timed out"))
    with client(retries=1, timeout=2.5) as c:
        with pytest.raises(RestTimeout, match=r"no answer within 2.5 s") as info:
            c.get_call("c0ffee")
        assert isinstance(info.value, TimeoutError) and info.value.status is None
        with pytest.raises(RestTimeout, match="may have been created"):
            connect(c)
    assert get.call_count == 2  # GET retried once
    assert post.call_count == 1  # the POST went out: never sent twice


def test_connection_refused_is_retried_even_for_connect(api: respx.MockRouter) -> None:
    route = api.post(CONNECT).mock(side_effect=[httpx.ConnectError("refused"),
                                                httpx.Response(200, json=CALL)])
    with client() as c:
        connect(c)
    assert route.call_count == 2
    api.get("/v1/Accounts/acme/Calls/x.json").mock(side_effect=httpx.ConnectError("refused"))
    with client(retries=0) as c, pytest.raises(RestConnectionError, match="could not reach"):
        c.get_call("x")


async def test_async_client_shares_the_rules(api: respx.MockRouter) -> None:
    route = api.post(CONNECT).mock(side_effect=[httpx.Response(503),
                                                httpx.Response(200, json=CALL)])
    async with AsyncExotelClient("acme", KEY, TOKEN, subdomain="mumbai", backoff=0.01) as c:
        call = await c.connect(from_="agent", to="0987", caller_id="0804")
        assert call.sid == "c0ffee" and route.call_count == 2
        api.get("/v1/Accounts/acme/Calls/gone.json").respond(404)
        with pytest.raises(NotFound):
            await c.get_call("gone")


def test_the_token_is_in_no_log_repr_or_error(api: respx.MockRouter,
                                              caplog: pytest.LogCaptureFixture) -> None:
    api.post(CONNECT).mock(side_effect=[httpx.Response(429), httpx.Response(200, json=CALL)])
    api.get("/v1/Accounts/acme/Calls/x.json").respond(
        401, json={"RestException": {"Status": 401, "Message": "Invalid API key or token"}})
    api.get("/v1/Accounts/acme/Calls/t.json").mock(side_effect=httpx.ReadTimeout("slow"))
    texts: list[str] = []
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.DEBUG)
    for name in ("httpx", "httpcore", "respx", "exotel_voice"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG), client(retries=1) as c:
            texts.append(repr(c))
            texts.append(repr(connect(c)))
            for sid in ("x", "t"):
                try:
                    c.get_call(sid)
                except RestError as exc:
                    texts.append(str(exc))
                    texts.append(repr(exc))
                    texts.append("".join(traceback.format_exception(exc)))
    finally:
        root.setLevel(old)
    texts.append(caplog.text)
    assert len(caplog.records) >= 3  # httpx's request lines and our retry line were seen
    import base64
    encoded = base64.b64encode(f"{KEY}:{TOKEN}".encode()).decode()
    for text in texts:
        assert TOKEN not in text and encoded not in text
