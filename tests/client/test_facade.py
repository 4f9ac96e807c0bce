"""``ExotelWebClient`` without a network: input validation, out-of-order calls, logger callback.

The same client against the real Kamailio is in tests/interop/test_facade_sync.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from exotel_voice import ConfigurationError, ExotelWebClient, InvalidState
from exotel_voice.client.facade import ExotelCall


pytestmark = pytest.mark.timeout(30)

SENTINEL = "S3ntinel-Pa55word-xyzzy"


def good_info(**changes: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "userName": "agent1",
        "authUser": "agent1",
        "sipdomain": "example.exotel.in",
        "domain": "voip.example.exotel.in:443",
        "displayname": "Agent One",
        "secret": SENTINEL,
        "port": "443",
        "security": "wss",
    }
    info.update(changes)
    return {k: v for k, v in info.items() if v is not DROP}


DROP = object()


@pytest.fixture
def client() -> Iterator[ExotelWebClient]:
    c = ExotelWebClient()
    try:
        yield c
    finally:
        c.close()


@pytest.mark.parametrize(
    ("changes", "field", "text"),
    [
        ({"userName": DROP}, "userName", "required"),
        ({"userName": ""}, "userName", "required"),
        ({"userName": 42}, "userName", "must be a string"),
        ({"sipdomain": DROP}, "sipdomain", "required"),
        ({"sipdomain": "  "}, "sipdomain", "required"),
        ({"authUser": 7}, "authUser", "must be a string"),
        ({"security": "https"}, "security", "'wss' or 'ws'"),
        ({"port": "abc"}, "port", "not a port number"),
        ({"port": "70000"}, "port", "between 1 and 65535"),
        ({"domain": "wss://voip.example.com/x"}, "domain", "not a URL"),
        ({"domain": "host:notaport"}, "domain", "not a port number"),
        ({"domain": ":443"}, "domain", "no host"),
        ({"secret": 1234}, "secret", "must be a string"),
        ({"wsUrl": "http://x"}, "ws_url", "ws:// or wss://"),
        ({"insecureSkipVerify": "false"}, "insecureSkipVerify", "True or False"),
        ({"caFile": 3}, "caFile", "must be a string"),
    ],
)
def test_bad_sip_account_info_names_the_field(
    client: ExotelWebClient, caplog: pytest.LogCaptureFixture,
    changes: dict[str, Any], field: str, text: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="exotel_voice")
    assert client.initWebrtc(good_info(**changes), None, None, None) is False
    err = client.last_error
    assert isinstance(err, ConfigurationError)
    assert err.field == field
    assert text in str(err)
    assert field in caplog.text and "initWebrtc" in caplog.text
    assert SENTINEL not in caplog.text and SENTINEL not in str(err)
    # The strict variant raises the same error.
    with pytest.raises(ConfigurationError) as info:
        client.initWebrtc(good_info(**changes), strict=True)
    assert info.value.field == field


def test_not_a_dict_and_bad_callbacks(client: ExotelWebClient) -> None:
    assert client.initWebrtc("nope", None, None, None) is False  # type: ignore[arg-type]
    assert isinstance(client.last_error, ConfigurationError)
    assert client.last_error.field == "sipAccountInfo"
    assert client.initWebrtc(good_info(), "not callable", None, None) is False  # type: ignore[arg-type]
    assert isinstance(client.last_error, ConfigurationError)
    assert client.last_error.field == "RegisterEventCallBack"
    assert client.initWebrtc(good_info(), None, None, None, media="x") is False  # type: ignore[arg-type]
    assert client.last_error.field == "media"  # type: ignore[union-attr]


def test_good_info_and_secret_never_shown(
    client: ExotelWebClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="exotel_voice")
    assert client.initWebrtc(good_info(endpoint="ws"), print, print, print) is True
    assert client.last_error is None
    assert client.userName == "agent1"
    assert client.account is not None
    assert client.account.ws_url == "wss://voip.example.exotel.in:443/ws"
    assert client.account.tls.insecure_skip_verify is False  # wss verifies by default
    for text in (repr(client), repr(client.account), caplog.text):
        assert SENTINEL not in text


def test_insecure_skip_verify_warns(
    client: ExotelWebClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="exotel_voice")
    assert client.initWebrtc(good_info(insecureSkipVerify=True)) is True
    assert client.account is not None and client.account.tls.insecure_skip_verify
    assert "NOT be verified" in caplog.text


def test_out_of_order_calls_before_init(
    client: ExotelWebClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="exotel_voice")
    assert client.DoRegister() is False
    assert isinstance(client.last_error, InvalidState)
    assert "initWebrtc" in caplog.text
    assert client.UnRegister() is False
    call = client.getCall()
    assert isinstance(call, ExotelCall)
    assert not call and len(call) == 0 and dict(call) == {}
    assert call.callId == "" and call.sipHeaders == {}
    for fut in (call.Answer(), call.Hangup(), call.Mute(), call.UnMute(), call.MuteToggle(),
                call.Hold(), call.UnHold(), call.HoldToggle(), call.sendDTMF("1")):
        with pytest.raises(InvalidState, match="no call"):
            fut.result(1)
    with pytest.raises(InvalidState):
        call.wait_connected(1)
    with pytest.raises(InvalidState):
        client.MakeCall("bob").result(1)
    with pytest.raises(InvalidState, match="DoRegister"):
        client.wait_for_registration(1)
    with pytest.raises(TimeoutError):
        client.wait_for_call(0.1)
    seen: list[str] = []
    assert client.checkClientStatus(seen.append).result(5) == "not_initialized"
    assert seen == ["not_initialized"]


def test_after_init_before_register(client: ExotelWebClient) -> None:
    assert client.initWebrtc(good_info()) is True
    assert client.checkClientStatus().result(5) == "not_initialized"
    with pytest.raises(InvalidState, match="not registered"):
        client.MakeCall("bob").result(5)
    assert client.UnRegister() is True  # a documented no-op
    assert client.wait_for_unregistration(5)


def test_closed_client_refuses_everything(caplog: pytest.LogCaptureFixture) -> None:
    client = ExotelWebClient()
    assert client.initWebrtc(good_info()) is True
    client.close()
    client.close()  # idempotent
    assert not client.thread.is_alive()
    assert client.DoRegister() is False
    assert client.initWebrtc(good_info()) is False
    assert isinstance(client.last_error, InvalidState)
    with pytest.raises(InvalidState, match="closed"):
        client.checkClientStatus().result(1)
    # The name was released by close().
    other = ExotelWebClient()
    try:
        assert other.initWebrtc(good_info()) is True
    finally:
        other.close()


def test_dup_reg_guard(caplog: pytest.LogCaptureFixture) -> None:
    a, b = ExotelWebClient(), ExotelWebClient()
    try:
        assert a.initWebrtc(good_info()) is True
        assert b.initWebrtc(good_info()) is False
        assert "[Dup-Reg] agent1" in str(b.last_error)
        with pytest.raises(InvalidState, match="Dup-Reg"):
            b.initWebrtc(good_info(), strict=True)
        assert b.initWebrtc(good_info(userName="agent2")) is True  # another name is fine
        # Re-initialising under a new name releases the old one.
        assert a.initWebrtc(good_info(userName="agent3")) is True
        assert b.initWebrtc(good_info()) is True
        # UnRegister releases the name (the JS SDK never does).
        assert b.UnRegister() is True
        c = ExotelWebClient()
        try:
            assert c.initWebrtc(good_info()) is True
        finally:
            c.close()
    finally:
        a.close()
        b.close()


def test_one_thread_per_client_and_callbacks_on_it() -> None:
    a, b = ExotelWebClient(), ExotelWebClient()
    try:
        assert a.thread is not b.thread and a.thread.daemon
        names: list[str] = []
        a.checkClientStatus(lambda s: names.append(threading.current_thread().name)).result(5)
        assert names == [a.thread.name]
    finally:
        a.close()
        b.close()


def test_waiting_inside_a_callback_is_refused(client: ExotelWebClient) -> None:
    assert client.initWebrtc(good_info()) is True
    errors: list[BaseException] = []

    def cb(status: str) -> None:
        fut = client.getCall().Answer()  # not done... but already failed: fine to read
        try:
            fut.result()
        except InvalidState:
            pass
        pending = client.checkClientStatus()
        try:
            pending.result()
        except InvalidState as exc:
            errors.append(exc)

    client.checkClientStatus(cb).result(5)
    assert errors and "deadlock" in str(errors[0])


def test_callback_exceptions_are_logged_not_raised(
    client: ExotelWebClient, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(status: str) -> None:
        raise RuntimeError("app bug")

    assert client.checkClientStatus(boom).result(5) == "not_initialized"
    assert "app bug" in caplog.text


# -- logger callback ------------------------------------------------------------------------


@pytest.fixture
def logged() -> Iterator[list[tuple[str, str, list[Any]]]]:
    records: list[tuple[str, str, list[Any]]] = []
    ExotelWebClient.registerLoggerCallback(lambda t, m, a: records.append((t, m, a)))
    try:
        yield records
    finally:
        ExotelWebClient.registerLoggerCallback(None)


def test_logger_callback_types_follow_levels(logged: list[tuple[str, str, list[Any]]]) -> None:
    log = logging.getLogger("exotel_voice.test")
    log.debug("d %s", 1)
    log.info("i")
    log.warning("w")
    log.error("e")
    log.critical("c")
    logging.getLogger("elsewhere").error("not ours")
    assert [(t, m) for t, m, _ in logged] == [
        ("log", "d 1"), ("info", "i"), ("warn", "w"), ("error", "e"), ("error", "c"),
    ]
    assert logged[0][2] == ["exotel_voice.test"]


def test_logger_callback_redacts(logged: list[tuple[str, str, list[Any]]]) -> None:
    client = ExotelWebClient()
    try:
        assert client.initWebrtc(good_info()) is True
        log = logging.getLogger("exotel_voice.sip.test")
        log.debug("> REGISTER\r\nAuthorization: Digest username=\"agent1\", "
                  "response=\"0123456789abcdef\"\r\n\r\n")
        log.debug("a=ice-pwd:verysecretpwd1234567890")
        log.info("oops, the password is %s", SENTINEL)
        try:
            raise ValueError(f"secret={SENTINEL}")
        except ValueError:
            log.exception("failed")
        text = repr(logged)
        assert SENTINEL not in text
        assert "0123456789abcdef" not in text
        assert "verysecretpwd1234567890" not in text
        assert "[secure]" in text
        assert any(len(a) == 2 and "ValueError" in a[1] for _, _, a in logged)
    finally:
        client.close()
    # After close the password is no longer known; redaction of wire formats still applies.


def test_logger_callback_is_static_and_replaceable() -> None:
    first: list[str] = []
    second: list[str] = []
    ExotelWebClient.registerLoggerCallback(lambda t, m, a: first.append(m))
    ExotelWebClient.registerLoggerCallback(lambda t, m, a: second.append(m))
    try:
        logging.getLogger("exotel_voice").warning("x")
    finally:
        ExotelWebClient.registerLoggerCallback(None)
    logging.getLogger("exotel_voice").warning("after removal")
    assert first == [] and second == ["x"]


def test_logger_callback_that_logs_does_not_recurse(
    logged: list[tuple[str, str, list[Any]]]
) -> None:
    calls: list[str] = []

    def cb(t: str, m: str, a: list[Any]) -> None:
        calls.append(m)
        logging.getLogger("exotel_voice.inner").warning("from inside %s", m)

    ExotelWebClient.registerLoggerCallback(cb)
    logging.getLogger("exotel_voice").warning("outer")
    assert calls == ["outer"]


def test_close_returns_quickly_without_registration() -> None:
    client = ExotelWebClient()
    assert client.initWebrtc(good_info()) is True
    started = time.monotonic()
    client.close()
    assert time.monotonic() - started < 2.0
