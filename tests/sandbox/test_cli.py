"""The command line (exotel_voice.cli): ``demo`` end to end, and the sandbox's banner."""

from __future__ import annotations

import time

import pytest

from exotel_voice import cli
from exotel_voice.sandbox import Sandbox

from .conftest import LOOPBACK_MEDIA, sandbox_config


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(60)
def test_demo_passes_in_well_under_30_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    start = time.monotonic()
    assert cli.main(["demo"]) == 0
    elapsed = time.monotonic() - start
    out = capsys.readouterr().out
    assert "all checks passed" in out
    assert "X-Exotel-Callsid" in out and "FAILED" not in out
    assert elapsed < 20, out


def test_bad_arguments_exit_2() -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["nonsense"])
    assert info.value.code == 2


async def test_banner_lists_urls_users_and_rest_credentials() -> None:
    async with Sandbox(sandbox_config()) as sandbox:
        text = cli._describe(sandbox)
    assert sandbox.ws_url in text and sandbox.wss_url in text and sandbox.rest_url in text
    assert "agent-secret-1" in text and "bob-secret-2" in text
    assert "key1 / token1" in text
    for number in ("echo", "tone", "ivr", "busy", "noanswer"):
        assert number in text


def test_password_and_token_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXOTEL_SANDBOX_PASSWORD", "fixed-pw")
    monkeypatch.setenv("EXOTEL_SANDBOX_API_TOKEN", "fixed-token")
    args = cli._parser().parse_args(["sandbox", "--user", "a", "--user", "b"])
    config = cli._config(args)
    assert config.users == {"a": "fixed-pw", "b": "fixed-pw"}
    assert config.api_token == "fixed-token"
    monkeypatch.delenv("EXOTEL_SANDBOX_PASSWORD")
    config = cli._config(cli._parser().parse_args(["demo"]))
    assert list(config.users) == ["agent"] and len(config.users["agent"]) >= 12
    assert config.ws_port == 0  # demo: free ports
