"""Every ```python block in README.md, docs/*.md and docs/design/*.md runs as copied.

Each block is written to a file and run as a script (``python snippet.py``) in a subprocess,
against a sandbox this test starts, with a timeout. Snippets get their account the way the
docs tell users to: from ``EXOTEL_*`` environment variables (``EXOTEL_USERNAME``,
``EXOTEL_SECRET``, ``EXOTEL_SIPDOMAIN``, ``EXOTEL_DOMAIN``, ``EXOTEL_PORT``,
``EXOTEL_SECURITY``; for the REST API ``EXOTEL_ACCOUNT_SID``, ``EXOTEL_API_KEY``,
``EXOTEL_API_TOKEN``, ``EXOTEL_API_URL``), which the test sets to the sandbox's values. A
snippet exits 0 when what it shows worked; it checks that itself (a registration seen, a
tone heard ...).

An HTML comment on the line right before a block (invisible on a rendered page) tells the
test how to treat it; several words are separated by commas:

* ``<!-- snippet: fragment -->`` -- deliberately not a whole program (an API outline):
  skipped, visibly, and counted; more than :data:`MAX_FRAGMENTS` fails the suite.
* ``<!-- snippet: media -->`` -- sends or receives audio: its media must stay on 127.0.0.1
  (``IceConfig(host_addresses=["127.0.0.1"])``, as the docs show for the sandbox); then it
  runs as any user, without root or the network namespace, like tests/sandbox
  (``tests.rig.loopback_media_skip_reason``).
* ``<!-- snippet: ring -->`` -- waits for an incoming call: once the snippet's phone has
  registered, the sandbox rings it with a click-to-call to ``echo`` (as ``Calls/connect``).
* ``<!-- snippet: pytest -->`` -- a test file: run with pytest (the ``exotel_sandbox``
  plugin is loaded from the installed package).
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from exotel_voice.sandbox import SandboxConfig
from exotel_voice.sandbox.threaded import SandboxThread
from tests.rig import in_netns, loopback_media_skip_reason


ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "docs" / "design").glob("*.md"))]

#: The escape hatch stays small: a fragment is a page that does not show working code.
MAX_FRAGMENTS = 4
#: Seconds one snippet may run (a call with media takes a few).
TIMEOUT = 60.0

DIRECTIVES = {"fragment", "media", "ring", "pytest"}
_FENCE = re.compile(r"^```python\s*$")
_MARK = re.compile(r"^<!--\s*snippet:\s*(?P<words>[^>]*?)\s*-->\s*$")

#: Why ``media`` snippets can't run here (None: they can): tests/rig/marks.py's LOOPBACK_MEDIA.
MEDIA_SKIP = loopback_media_skip_reason()


@dataclass(frozen=True)
class Snippet:
    """One ```python block: where it is, its code and the directives marking it."""

    path: Path
    line: int
    code: str
    marks: frozenset[str]

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def collect(path: Path) -> list[Snippet]:
    """The ```python blocks of one Markdown file, with the directive before each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Snippet] = []
    i = 0
    while i < len(lines):
        if not _FENCE.match(lines[i]):
            i += 1
            continue
        start = i
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        if j == len(lines):
            raise AssertionError(f"{path.name}:{start + 1}: unclosed ```python block")
        marks: frozenset[str] = frozenset()
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        mark = _MARK.match(lines[k].strip()) if k >= 0 else None
        if mark:
            words = [w.strip() for w in mark["words"].split(",")]
            # A fragment's reason may follow the word: "fragment (the rig's API)".
            marks = frozenset(w.split()[0] for w in words if w)
            unknown = marks - DIRECTIVES
            if unknown:
                raise AssertionError(f"{path.name}:{start + 1}: unknown snippet mark {unknown}")
        found.append(Snippet(path, start + 1, "\n".join(lines[start + 1:j]) + "\n", marks))
        i = j + 1
    return found


SNIPPETS = [s for path in DOCS for s in collect(path)]


def test_the_docs_have_snippets_and_few_fragments() -> None:
    fragments = [s.id for s in SNIPPETS if "fragment" in s.marks]
    print(f"\n{len(SNIPPETS)} python snippets, {len(fragments)} marked fragment: "
          f"{', '.join(fragments) or '-'}")
    readme = [s for s in SNIPPETS if s.path.name == "README.md"]
    assert len(readme) >= 2, "README's examples were not found"
    assert not any("fragment" in s.marks for s in readme), "README's snippets must run"
    assert len(SNIPPETS) >= 10
    assert len(fragments) <= MAX_FRAGMENTS, (
        f"{len(fragments)} fragments (at most {MAX_FRAGMENTS}): make snippets runnable")


def test_the_collector_reads_marks_and_refuses_unknown_ones(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- snippet: media, ring -->\n```python\nprint(1)\n```\n\n"
                    "```python\nprint(2)\n```\n", encoding="utf-8")
    first, second = collect(page)
    assert first.marks == {"media", "ring"} and first.code == "print(1)\n"
    assert second.marks == frozenset() and second.line == 6
    page.write_text("<!-- snippet: fragmnet -->\n```python\npass\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="unknown snippet mark"):
        collect(page)


def _ring_when_registered(sandbox: SandboxThread, stop: threading.Event,
                          errors: list[BaseException]) -> None:
    """Click-to-call the snippet's agent to ``echo`` once it has registered."""
    try:
        while not stop.is_set():
            try:
                asyncio.run(sandbox.wait_registered("agent", timeout=1.0))
            except TimeoutError:
                continue
            asyncio.run(sandbox.connect("agent", "echo"))
            return
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.id for s in SNIPPETS])
def test_snippet_runs_as_copied(snippet: Snippet, tmp_path: Path) -> None:
    if "fragment" in snippet.marks:
        pytest.skip(f"{snippet.id} is marked as a fragment")
    if "media" in snippet.marks and MEDIA_SKIP is not None:
        pytest.skip(MEDIA_SKIP)
    if "media" in snippet.marks and "host_addresses" not in snippet.code and not in_netns():
        pytest.skip("its media is not kept on 127.0.0.1 (no IceConfig.host_addresses): needs "
                    "the loopback-only network namespace (scripts/in-netns.sh)")
    password = secrets.token_urlsafe(12)
    config = SandboxConfig(ws_port=0, wss_port=0, http_port=0, users={"agent": password})
    with SandboxThread(config) as sandbox:
        info = sandbox.sip_account_info("agent")
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXOTEL_")}
        env.update({
            "EXOTEL_USERNAME": "agent",
            "EXOTEL_SECRET": password,
            "EXOTEL_SIPDOMAIN": info["sipdomain"],
            "EXOTEL_DOMAIN": info["domain"],
            "EXOTEL_PORT": info["port"],
            "EXOTEL_SECURITY": "ws",
            "EXOTEL_ACCOUNT_SID": config.account_sid,
            "EXOTEL_API_KEY": sandbox.api_key,
            "EXOTEL_API_TOKEN": sandbox.api_token,
            "EXOTEL_API_URL": f"http://127.0.0.1:{sandbox.sandbox.ports['http']}",
            "EXOTEL_NETNS": os.environ.get("EXOTEL_NETNS", ""),
            "PYTHONUNBUFFERED": "1",
        })
        script = tmp_path / ("test_snippet.py" if "pytest" in snippet.marks else "snippet.py")
        script.write_text(snippet.code, encoding="utf-8")
        command = ([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    str(script)]
                   if "pytest" in snippet.marks else [sys.executable, str(script)])
        stop, errors = threading.Event(), []
        ringer = None
        if "ring" in snippet.marks:
            ringer = threading.Thread(target=_ring_when_registered,
                                      args=(sandbox, stop, errors), daemon=True)
            ringer.start()
        try:
            done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True,
                                  text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"{snippet.id} ran over {TIMEOUT:.0f} s; output:\n{exc.stdout}\n"
                        f"{exc.stderr}")
        finally:
            stop.set()
            if ringer is not None:
                ringer.join(5)
    output = f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert done.returncode == 0, f"{snippet.id} exited {done.returncode}\n{output}"
    assert not errors, f"ringing the snippet's phone failed: {errors[0]!r}\n{output}"
    if "pytest" in snippet.marks:  # a skipped or uncollected test exits 0 too
        assert re.search(r"\b1 passed\b", done.stdout), output
        assert not re.search(r"skipped|xfail|no tests ran", done.stdout), output
    assert password not in done.stdout + done.stderr
    assert config.api_token is not None and config.api_token not in done.stdout + done.stderr
    print(f"{snippet.id}:\n{done.stdout}")
