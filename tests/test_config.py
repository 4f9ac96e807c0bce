"""AccountConfig and the guide's sipAccountInfo."""

from __future__ import annotations

import logging

import pytest

from exotel_voice.config import AccountConfig
from exotel_voice.exceptions import ConfigurationError


SENTINEL = "s3cr3t-SENTINEL-pw"

GUIDE_INFO = {
    "userName": "agent1",
    "authUser": "agent1",
    "sipdomain": "tenant.exotel.test",
    "domain": "voip.exotel.test:443",
    "displayname": "Agent One",
    "secret": SENTINEL,
    "port": "443",
    "security": "wss",
    "endpoint": "wss",
}


def test_url_is_built_like_exotels_sdk() -> None:
    cfg = AccountConfig.from_sip_account_info(GUIDE_INFO)
    assert cfg.ws_url == "wss://voip.exotel.test:443/wss"
    assert cfg.aor == "sip:agent1@tenant.exotel.test"
    assert cfg.display_name == "Agent One"
    assert cfg.secure


def test_defaults_follow_exotels_sdk() -> None:
    info = {"userName": "u", "sipdomain": "d.test", "domain": "h.test", "security": "ws",
            "secret": "pw", "port": "443"}
    cfg = AccountConfig.from_sip_account_info(info)
    assert cfg.ws_url == "ws://h.test:8088/wss"
    assert cfg.auth_user == "u"
    assert cfg.register_expires == 300


def test_full_url_and_ipv6() -> None:
    cfg = AccountConfig.from_sip_account_info(
        {"userName": "u", "sipdomain": "d", "domain": "[::1]:5066", "endpoint": "/ws",
         "secret": "pw", "port": "5066"}
    )
    assert cfg.ws_url == "wss://[::1]:5066/ws"
    cfg = AccountConfig.from_sip_account_info(
        {"userName": "u", "sipdomain": "d", "wsUrl": "ws://127.0.0.1:1/x", "secret": "pw"}
    )
    assert cfg.ws_url == "ws://127.0.0.1:1/x"


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        ({"sipdomain": None}, "sipdomain", "required"),
        ({"userName": ""}, "userName", "required"),
        ({"port": "44a3"}, "port", "not a port number"),
        ({"port": 70000}, "port", "between 1 and 65535"),
        ({"security": "tls"}, "security", "'wss' or 'ws'"),
        ({"domain": "host:notaport"}, "domain", "not a port number"),
        ({"domain": "wss://host/x"}, "domain", "not a URL"),
        ({"secret": 1234}, "secret", "must be a string"),
        ({"wsUrl": "http://x/y"}, "ws_url", "ws:// or wss://"),
        ({"insecureSkipVerify": "false"}, "insecureSkipVerify", "True or False"),
    ],
)
def test_bad_values_name_the_field(change: dict[str, object], field: str, text: str) -> None:
    info = dict(GUIDE_INFO)
    for k, v in change.items():
        if v is None:
            info.pop(k)
        else:
            info[k] = v  # type: ignore[assignment]
    with pytest.raises(ConfigurationError) as err:
        AccountConfig.from_sip_account_info(info)
    assert err.value.field == field
    assert text in str(err.value)
    assert SENTINEL not in str(err.value)


@pytest.mark.parametrize(
    ("drop", "field"),
    [
        (["port"], "port"),
        (["secret"], "secret"),
        (["secret", "port"], "secret, port"),
        (["userName", "sipdomain", "secret", "port"], "userName, sipdomain, secret, port"),
    ],
)
def test_missing_required_fields_are_all_named(drop: list[str], field: str) -> None:
    """The guide's required keys (userName, sipdomain, port) and the password: a missing one
    is an error naming every missing key at once, never showing a value."""
    info = {k: v for k, v in GUIDE_INFO.items() if k not in drop}
    with pytest.raises(ConfigurationError) as err:
        AccountConfig.from_sip_account_info(info)
    assert err.value.field == field
    assert "required" in str(err.value) and "sipAccountInfo" in str(err.value)
    assert SENTINEL not in str(err.value)
    # An empty value is as missing as an absent key.
    with pytest.raises(ConfigurationError) as err:
        AccountConfig.from_sip_account_info({**GUIDE_INFO, "secret": "", "port": " "})
    assert err.value.field == "secret, port"


def test_port_not_required_with_a_full_url() -> None:
    info = {k: v for k, v in GUIDE_INFO.items() if k != "port"}
    cfg = AccountConfig.from_sip_account_info({**info, "wsUrl": "wss://h.test:8443/ws"})
    assert cfg.ws_url == "wss://h.test:8443/ws"


def test_not_a_dict() -> None:
    with pytest.raises(ConfigurationError, match="sipAccountInfo"):
        AccountConfig.from_sip_account_info("agent1")  # type: ignore[arg-type]


def test_secret_never_in_repr_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    cfg = AccountConfig.from_sip_account_info(GUIDE_INFO)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("exotel_voice.test").debug("config: %r %s", cfg, cfg)
    assert SENTINEL not in repr(cfg)
    assert SENTINEL not in str(cfg)
    assert SENTINEL not in caplog.text
    assert cfg.secret == SENTINEL
