"""``exotel-voice call``, ``answer``, ``connect``, ``sandbox`` and ``--version``, end to end.

Each command runs as a subprocess against a sandbox (the in-process one the CLI starts when
no account is given, or an ``exotel-voice sandbox`` reached through the ``EXOTEL_*``
variables), and what it did is checked where a user would see it: the recorded WAV file,
the ``--json`` summary, the sandbox's activity lines, the exit status and the one-line
error. The sandbox's own tests are in tests/sandbox/; ``demo`` is tested in
tests/sandbox/test_cli.py.
"""

from __future__ import annotations

import io
import json
import re
import signal
from pathlib import Path

import pytest

import exotel_voice
from exotel_voice import cli

from .conftest import (
    LOOPBACK_MEDIA,
    Background,
    assert_one_error_line,
    cli_env,
    json_lines,
    run,
    wav_tone,
)


# -- without media ---------------------------------------------------------------------------
def test_version_prints_the_package_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"exotel-voice {exotel_voice.__version__}"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, ["cannot read the account file", "No such file"]),
        ('{"userName": "agent",', ["is not JSON"]),
        ('["agent"]', ["must hold a JSON object"]),
        ('{"userName": "agent", "secret": "s3cret-value"}', ["bad account", "sipdomain", "port"]),
        ('{"userName": "agent", "sipdomain": "x.test", "port": "443", "security": "tcp", '
         '"secret": "s3cret-value"}', ["bad account", "security"]),
    ],
    ids=["missing", "not-json", "not-an-object", "missing-keys", "bad-security"],
)
def test_a_bad_account_file_is_one_line_and_status_2(
    tmp_path: Path, content: str | None, words: list[str]
) -> None:
    account = tmp_path / "account.json"
    if content is not None:
        account.write_text(content)
    result = run("call", "echo", "--account", str(account))
    line = assert_one_error_line(result, 2, *words)
    assert "s3cret-value" not in line and "Traceback" not in result.stderr


def test_a_traceback_only_with_verbose(tmp_path: Path) -> None:
    account = tmp_path / "account.json"
    account.write_text("[]")
    quiet = run("call", "echo", "--account", str(account))
    loud = run("call", "echo", "--account", str(account), "-v")
    assert quiet.returncode == loud.returncode == 2
    assert "Traceback" not in quiet.stderr
    assert "Traceback" in loud.stderr and "must hold a JSON object" in loud.stderr


def test_an_env_account_without_its_secret_is_refused() -> None:
    result = run("call", "echo", env=cli_env(EXOTEL_USERNAME="agent"))
    assert_one_error_line(result, 2, "EXOTEL_SECRET is not set")


@pytest.mark.parametrize(
    ("variable", "value", "shown"),
    [("EXOTEL_PORT", "80x8", "'80x8'"), ("EXOTEL_SECURITY", "tls", "'tls'"),
     ("EXOTEL_DOMAIN", "h.test:http", "'http'")],
)
def test_a_bad_env_account_value_names_the_variable_and_the_value(
    variable: str, value: str, shown: str
) -> None:
    result = run("call", "echo", env=cli_env(EXOTEL_SECRET="s3cret-value", **{variable: value}))
    assert_one_error_line(result, 2, "bad account", f"{variable}: ", shown)
    assert "s3cret-value" not in result.stderr + result.stdout
    assert "registering" not in result.stdout


def test_the_env_account_is_read_as_account_config_from_env_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [k for k in cli.os.environ if k.startswith("EXOTEL_")]:
        monkeypatch.delenv(name)
    args = cli._parser().parse_args(["call", "echo"])
    assert cli._account_info(args) is None  # no EXOTEL_* account: the in-process sandbox
    monkeypatch.setenv("EXOTEL_SECRET", "pw")
    monkeypatch.setenv("EXOTEL_USERNAME", "agent7")
    monkeypatch.setenv("EXOTEL_ENDPOINT", "")  # empty: unset
    monkeypatch.setenv("EXOTEL_WS_URL", "ws://127.0.0.1:5066/ws")
    # The other variables default to the sandbox on this machine.
    assert cli._account_info(args) == {
        "userName": "agent7", "sipdomain": "sandbox.exotel.test", "domain": "127.0.0.1:8088",
        "port": "8088", "security": "ws", "secret": "pw", "wsUrl": "ws://127.0.0.1:5066/ws",
    }
    assert cli._account(cli._account_info(args) or {}).ws_url == "ws://127.0.0.1:5066/ws"


def test_connect_without_rest_credentials_names_the_missing_variables() -> None:
    result = run("connect", "agent", "echo", env=cli_env(EXOTEL_ACCOUNT_SID="sid"))
    assert_one_error_line(result, 2, "EXOTEL_API_KEY", "EXOTEL_API_TOKEN")


def test_an_unreadable_play_file_fails_before_calling(tmp_path: Path) -> None:
    (tmp_path / "bad.wav").write_bytes(b"not a wav file")
    result = run("call", "echo", "--play", "bad.wav", cwd=tmp_path)
    assert_one_error_line(result, 2, "bad.wav", "cannot read the WAV file")
    assert "registering" not in result.stdout


def test_connect_without_a_caller_id_is_a_usage_error() -> None:
    rest = cli_env(EXOTEL_ACCOUNT_SID="sid", EXOTEL_API_KEY="key", EXOTEL_API_TOKEN="tok",
                   EXOTEL_API_URL="http://127.0.0.1:9")
    result = run("connect", "agent", "echo", env=rest)
    assert_one_error_line(result, 2, "caller_id")


def test_the_status_line_is_redrawn_in_place_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    monkeypatch.setattr("sys.stdout", screen)
    out = cli._Output(json_mode=False)
    out.status("connected 00:01.0")
    out.status("connected 00:01.2")
    out.event("ended")
    assert screen.getvalue() == (
        "\r\x1b[Kconnected 00:01.0\r\x1b[Kconnected 00:01.2\r\x1b[Kended\n"
    )


# -- calls against the in-process sandbox ----------------------------------------------------
@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(30)
def test_call_echo_with_a_tone_records_the_tone(tmp_path: Path) -> None:
    result = run("call", "echo", "--tone", "1000", "--record", "out.wav", "--duration", "3",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "in-process sandbox" in result.stdout and "connected (" in result.stdout
    # Not a terminal: the status line is a plain line once a second, with both levels.
    status = re.findall(r"^connected\s+00:0\d\.\d\s+in\s+-\d+ dBFS\s+out\s+-\d+ dBFS$",
                        result.stdout, re.MULTILINE)
    assert len(status) >= 2, result.stdout
    assert "hanging up: its time was up" in result.stdout
    seconds, hz, level = wav_tone(tmp_path / "out.wav")
    assert 2.5 < seconds < 3.5
    assert abs(hz - 1000) < 5 and level > -20


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(30)
def test_dtmf_reaches_the_ivr_which_confirms_every_digit() -> None:
    result = run("call", "ivr", "--dtmf", "123#", "--duration", "1.5", "--json")
    assert result.returncode == 0, result.stderr
    (summary,) = json_lines(result.stdout)  # --json: stdout holds the summary alone
    assert summary["digits_sent"] == "123#"
    assert summary["digits_received"] == "123#"  # the ivr's INFO for each digit
    assert summary["connected"] and summary["state"] == "ended"
    assert summary["ended_by"] == "local" and 1.3 < summary["duration"] < 2.5
    assert summary["level_in_dbfs"] > -40  # the ivr's DTMF tones
    assert "received DTMF #" in result.stderr  # progress went to stderr


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(30)
def test_a_failed_call_is_one_line_and_status_1() -> None:
    unknown = run("call", "nosuch")
    assert_one_error_line(unknown, 1, "call to nosuch failed", "404")
    busy = run("call", "busy", "--json")
    assert_one_error_line(busy, 1, "call to busy failed", "486")
    (summary,) = json_lines(busy.stdout)
    assert summary["end_status"] == 486 and not summary["connected"]


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(30)
def test_answer_records_the_tone_of_the_call_the_sandbox_rings_in(tmp_path: Path) -> None:
    result = run("answer", "--ring-from-sandbox", "tone", "--count", "1", "--duration", "2",
                 "--record", "in-{n}.wav", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (summary,) = json_lines(result.stdout)
    assert summary["direction"] == "incoming" and summary["connected"]
    assert summary["call_sid"]  # rung by click-to-call: X-Exotel-Callsid
    assert summary["recording"] == "in-1.wav"
    seconds, hz, level = wav_tone(tmp_path / "in-1.wav")
    assert 1.5 < seconds < 2.5
    assert abs(hz - 440) < 5 and level > -20


# -- a separate sandbox, the EXOTEL_* account, REST click-to-call ----------------------------
@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(60)
def test_sandbox_shows_the_answer_phone_and_the_connect_call(tmp_path: Path) -> None:
    sandbox = Background(
        "sandbox", "--ws-port", "0", "--wss-port", "-1", "--http-port", "0", "--api-key", "key",
        env=cli_env(EXOTEL_SANDBOX_PASSWORD="pw", EXOTEL_SANDBOX_API_TOKEN="tok-3f9a61"),
    )
    answer: Background | None = None
    try:
        ws_port = sandbox.wait_for(r"SIP over WebSocket : ws://127\.0\.0\.1:(\d+)/").group(1)
        api = sandbox.wait_for(r"REST\s+: (http://127\.0\.0\.1:\d+)/v1/Accounts/").group(1)
        sandbox.wait_for("Press Ctrl-C")
        answer = Background(
            "answer", "--count", "1", "--duration", "1.5", "--record", "in.wav", "--json",
            "--wait", "20", cwd=tmp_path,
            env=cli_env(EXOTEL_USERNAME="agent", EXOTEL_SECRET="pw", EXOTEL_SECURITY="ws",
                        EXOTEL_DOMAIN=f"127.0.0.1:{ws_port}", EXOTEL_PORT=ws_port),
        )
        sandbox.wait_for(r"^\d\d:\d\d:\d\d  agent registered from ")
        rest = cli_env(EXOTEL_ACCOUNT_SID="sandbox", EXOTEL_API_KEY="key",
                       EXOTEL_API_TOKEN="tok-3f9a61", EXOTEL_API_URL=api)
        made = run("connect", "agent", "tone", "--caller-id", "0800", "--json", env=rest)
        assert made.returncode == 0, made.stderr
        sid = json.loads(made.stdout)["sid"]
        status, out, err = answer.finish()
        assert status == 0, err
        (summary,) = json_lines(out)
        assert summary["call_sid"] == sid and summary["connected"]
        _, hz, level = wav_tone(tmp_path / "in.wav")
        assert abs(hz - 440) < 5 and level > -20
        sandbox.wait_for(rf"call {sid} agent -> tone: in-progress")
        sandbox.wait_for(rf"call {sid} agent -> tone: completed")

        refused = run("connect", "agent", "tone", "--caller-id", "0800",
                      env={**rest, "EXOTEL_API_TOKEN": "wrong-77c0d2"})
        assert_one_error_line(refused, 1, "click-to-call failed", "401")
        assert "wrong-77c0d2" not in refused.stderr and "tok-3f9a61" not in refused.stderr
    finally:
        if answer is not None:
            answer.stop()
        sandbox.proc.send_signal(signal.SIGINT)
        try:
            stopped = sandbox.proc.wait(10)
        finally:
            sandbox.stop()
    assert stopped == 0  # Ctrl-C is the way to stop it


@pytest.mark.media
@LOOPBACK_MEDIA
@pytest.mark.timeout(30)
def test_ctrl_c_hangs_up_and_exits_130() -> None:
    call = Background("call", "echo", "--tone", "500", env=cli_env())
    try:
        call.wait_for(r"^connected \(")
        call.proc.send_signal(signal.SIGINT)
        status, out, err = call.finish(10)
    finally:
        call.stop()
    assert status == 130, err
    assert "hanging up: interrupted" in out and "Traceback" not in err
