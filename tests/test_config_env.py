"""AccountConfig.from_env(): the account from EXOTEL_* environment variables."""

from __future__ import annotations

import logging

import pytest

from exotel_voice import ExotelWebClient
from exotel_voice.config import AccountConfig
from exotel_voice.exceptions import ConfigurationError


ENV_VARIABLES = AccountConfig.ENV_VARIABLES
SENTINEL = "s3cr3t-ENV-SENTINEL"

ENV = {
    "EXOTEL_USERNAME": "agent1",
    "EXOTEL_AUTHUSER": "auth1",
    "EXOTEL_SIPDOMAIN": "tenant.exotel.test",
    "EXOTEL_DOMAIN": "voip.exotel.test:443",
    "EXOTEL_PORT": "443",
    "EXOTEL_SECURITY": "wss",
    "EXOTEL_ENDPOINT": "sip",
    "EXOTEL_DISPLAYNAME": "Agent One",
    "EXOTEL_SECRET": SENTINEL,
    "EXOTEL_CA_FILE": "ca.pem",
}

MINIMAL = {
    "EXOTEL_USERNAME": "agent1",
    "EXOTEL_SIPDOMAIN": "tenant.exotel.test",
    "EXOTEL_PORT": "443",
    "EXOTEL_SECRET": SENTINEL,
}


def test_every_variable_gives_its_field() -> None:
    cfg = AccountConfig.from_env(ENV)
    assert cfg.user_name == "agent1"
    assert cfg.auth_user == "auth1"
    assert cfg.aor == "sip:auth1@tenant.exotel.test"
    assert cfg.ws_url == "wss://voip.exotel.test:443/sip"
    assert cfg.display_name == "Agent One"
    assert cfg.secret == SENTINEL
    assert cfg.tls.ca_file == "ca.pem"


def test_it_reads_as_the_guides_dict_is_read() -> None:
    info = {key: ENV["EXOTEL_" + name] for name, (key, _) in ENV_VARIABLES.items()
            if "EXOTEL_" + name in ENV}
    from_env = AccountConfig.from_env(ENV, instance_id="x")
    assert from_env == AccountConfig.from_sip_account_info(info, instance_id="x")


def test_the_defaults_are_the_guides() -> None:
    cfg = AccountConfig.from_env(MINIMAL)
    assert cfg.auth_user == "agent1"  # authUser: userName
    assert cfg.ws_url == "wss://tenant.exotel.test:8089/wss"  # domain: sipdomain; wss; /wss
    assert cfg.display_name is None
    assert cfg.tls.ca_file is None


def test_an_empty_variable_counts_as_unset() -> None:
    cfg = AccountConfig.from_env({**MINIMAL, "EXOTEL_AUTHUSER": "", "EXOTEL_SECURITY": ""})
    assert cfg.auth_user == "agent1"
    assert cfg.secure


def test_ws_url_replaces_domain_and_port() -> None:
    env = {k: v for k, v in MINIMAL.items() if k != "EXOTEL_PORT"}
    cfg = AccountConfig.from_env({**env, "EXOTEL_WS_URL": "ws://127.0.0.1:5066/ws"})
    assert cfg.ws_url == "ws://127.0.0.1:5066/ws"


def test_a_prefix_reads_another_account() -> None:
    env = {**ENV, **{"AGENT2_" + k.removeprefix("EXOTEL_"): v for k, v in MINIMAL.items()},
           "AGENT2_USERNAME": "agent2"}
    cfg = AccountConfig.from_env(env, prefix="AGENT2_")
    assert cfg.user_name == "agent2"
    assert cfg.ws_url == "wss://tenant.exotel.test:8089/wss"  # EXOTEL_DOMAIN not read
    with pytest.raises(ConfigurationError) as err:
        AccountConfig.from_env(ENV, prefix="AGENT2_")
    assert err.value.field == "AGENT2_USERNAME, AGENT2_SIPDOMAIN, AGENT2_SECRET, AGENT2_PORT"


def test_the_default_environ_is_the_process_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARIABLES:
        monkeypatch.delenv("EXOTEL_" + name, raising=False)
    for name, value in MINIMAL.items():
        monkeypatch.setenv(name, value)
    assert AccountConfig.from_env().user_name == "agent1"
    monkeypatch.setenv("EXOTEL_USERNAME", "agent9")
    assert AccountConfig.from_env().user_name == "agent9"


def test_overrides_set_python_fields() -> None:
    cfg = AccountConfig.from_env(MINIMAL, register_expires=60)
    assert cfg.register_expires == 60
    with pytest.raises(ConfigurationError) as err:
        AccountConfig.from_env(MINIMAL, register_expires=0)
    assert err.value.field == "register_expires"
    with pytest.raises(ConfigurationError) as err:
        AccountConfig.from_env(MINIMAL, no_such_field=1)
    assert err.value.field == "no_such_field"


@pytest.mark.parametrize(
    ("unset", "field"),
    [
        (["EXOTEL_SECRET"], "EXOTEL_SECRET"),
        (["EXOTEL_PORT"], "EXOTEL_PORT"),
        (["EXOTEL_USERNAME", "EXOTEL_SECRET"], "EXOTEL_USERNAME, EXOTEL_SECRET"),
        (list(MINIMAL), "EXOTEL_USERNAME, EXOTEL_SIPDOMAIN, EXOTEL_SECRET, EXOTEL_PORT"),
    ],
)
def test_missing_variables_are_named_with_what_they_are_for(
        unset: list[str], field: str) -> None:
    env = {k: v for k, v in ENV.items() if k not in unset}
    with pytest.raises(ConfigurationError) as err:
        AccountConfig.from_env(env)
    assert err.value.field == field
    message = str(err.value)
    assert "required" in message
    for name in unset:
        assert f"{name}: {ENV_VARIABLES[name.removeprefix('EXOTEL_')][1]}" in message
    assert SENTINEL not in message


@pytest.mark.parametrize(
    ("changes", "field", "shown"),
    [
        ({"EXOTEL_PORT": "44x3"}, "EXOTEL_PORT", "'44x3'"),
        ({"EXOTEL_PORT": "70000"}, "EXOTEL_PORT", "70000"),
        ({"EXOTEL_SECURITY": "tls"}, "EXOTEL_SECURITY", "'tls'"),
        ({"EXOTEL_DOMAIN": "voip.exotel.test:http"}, "EXOTEL_DOMAIN", "'http'"),
        ({"EXOTEL_DOMAIN": "https://voip.exotel.test"}, "EXOTEL_DOMAIN",
         "'https://voip.exotel.test'"),
        ({"EXOTEL_WS_URL": "http://voip.exotel.test/ws"}, "EXOTEL_WS_URL", "'http'"),
        ({"EXOTEL_USERNAME": "   "}, "EXOTEL_USERNAME", "required"),
        ({"EXOTEL_SECRET": 1234}, "EXOTEL_SECRET", "must be a string"),
    ],
)
def test_a_bad_value_names_the_variable_and_the_value(
        changes: dict[str, object], field: str, shown: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConfigurationError) as err:
        AccountConfig.from_env({**ENV, **changes})  # type: ignore[dict-item]
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")
    assert shown in str(err.value)
    assert SENTINEL not in str(err.value) and SENTINEL not in repr(err.value)
    assert SENTINEL not in caplog.text


def test_the_secret_is_in_no_repr_str_or_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = AccountConfig.from_env(ENV)
    assert cfg.secret == SENTINEL
    assert SENTINEL not in repr(cfg) and SENTINEL not in str(cfg)
    assert SENTINEL not in caplog.text


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ConfigurationError) as err:
        AccountConfig.from_env(["EXOTEL_USERNAME=agent1"])  # type: ignore[arg-type]
    assert err.value.field == "environ"
    with pytest.raises(ConfigurationError) as err:
        AccountConfig.from_env(ENV, prefix=None)  # type: ignore[arg-type]
    assert err.value.field == "prefix"


def test_the_guides_dict_from_the_environment_initialises_the_facade() -> None:
    info = AccountConfig.sip_account_info_from_env(ENV)
    assert info["userName"] == "agent1" and info["caFile"] == "ca.pem"
    assert "wsUrl" not in info  # only the variables that are set
    client = ExotelWebClient()
    try:
        assert client.initWebrtc(info, sounds=None) is True
        assert client.account is not None
        assert client.account.ws_url == "wss://voip.exotel.test:443/sip"
        assert client.account.aor == "sip:auth1@tenant.exotel.test"
    finally:
        client.close()


def test_the_guides_dict_is_checked_as_from_env_checks() -> None:
    with pytest.raises(ConfigurationError) as err:
        AccountConfig.sip_account_info_from_env({**ENV, "EXOTEL_PORT": "x"})
    assert err.value.field == "EXOTEL_PORT"
    with pytest.raises(ConfigurationError) as err:
        AccountConfig.sip_account_info_from_env({}, prefix="BOT_")
    assert err.value.field == "BOT_USERNAME, BOT_SIPDOMAIN, BOT_SECRET, BOT_PORT"


def test_the_guides_dict_unchecked_leaves_the_checks_to_init_webrtc() -> None:
    env = {"EXOTEL_USERNAME": "agent1", "EXOTEL_SECURITY": "https", "EXOTEL_SECRET": SENTINEL}
    info = AccountConfig.sip_account_info_from_env(env, check=False)
    assert info == {"userName": "agent1", "security": "https", "secret": SENTINEL}
    client = ExotelWebClient()
    try:
        assert client.initWebrtc(info, sounds=None) is False
        assert client.last_error is not None
        assert "sipdomain" in str(client.last_error) and SENTINEL not in str(client.last_error)
    finally:
        client.close()
