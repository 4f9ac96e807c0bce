"""The sandbox the hostile server relays sane traffic to, in a process of its own.

A child process keeps the sandbox's own calls, media and log records out of what the hostile
suite measures in the phone's process (object counts, traced memory, loop exceptions).

Run as ``python -m tests.hostile.sandbox_proc PASSWORD``: prints one JSON line (the
``sipAccountInfo`` of user ``agent``) once listening, then serves until stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys

from exotel_voice.sandbox import Sandbox, SandboxConfig


async def _main(password: str) -> None:
    config = SandboxConfig(ws_port=0, wss_port=None, http_port=None, users={"agent": password})
    async with Sandbox(config) as sandbox:
        print(json.dumps(sandbox.sip_account_info("agent")), flush=True)
        loop = asyncio.get_running_loop()
        # Until the parent closes our stdin (or dies).
        await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1]))
