"""media/ice.py with two real aioice Connections on 127.0.0.1: loopback gathering and
early selection in the controlled role (the rtpengine case: nomination comes late).
MediaSession-level ICE (candidates in the SDP, STUN timeout) is in test_session.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aioice import Connection

from exotel_voice.media import IceConfig
from exotel_voice.media.ice import _hook

from .conftest import FEATURES, LOOPBACK_MEDIA


pytestmark = [pytest.mark.media, LOOPBACK_MEDIA]


@contextlib.asynccontextmanager
async def connections(*, early: bool) -> AsyncIterator[tuple[Connection, Connection]]:
    """A controlling agent that never sends USE-CANDIDATE, and a controlled one."""
    controlling = Connection(ice_controlling=True)
    controlled = Connection(ice_controlling=False)
    _hook(controlling, IceConfig(host_addresses=["127.0.0.1"]))
    _hook(controlled, IceConfig(host_addresses=["127.0.0.1"], early_selection=early))
    build = controlling.build_request

    def no_nomination(pair: Any, nominate: bool) -> Any:
        return build(pair, nominate=False)

    controlling.build_request = no_nomination  # type: ignore[method-assign]
    try:
        await asyncio.gather(controlling.gather_candidates(), controlled.gather_candidates())
        for a, b in ((controlling, controlled), (controlled, controlling)):
            for candidate in b.local_candidates:
                await a.add_remote_candidate(candidate)
            await a.add_remote_candidate(None)
            a.remote_username = b.local_username
            a.remote_password = b.local_password
        assert {c.host for c in controlled.local_candidates} == {"127.0.0.1"}
        yield controlling, controlled
    finally:
        await controlling.close()
        await controlled.close()


async def nominate(controlling: Connection) -> None:
    """The controlling agent's nominating check (RFC 8445 §8.1.1), sent late."""
    del controlling.build_request
    (pair,) = controlling._nominated.values()
    request = controlling.build_request(pair, nominate=True)
    assert controlling.remote_password is not None
    async with asyncio.timeout(3):
        await pair.protocol.request(
            request, pair.remote_addr, integrity_key=controlling.remote_password.encode()
        )


async def connects_only_once_nominated(controlling: Connection, controlled: Connection) -> None:
    """The fallback without aioice's internals: no early selection; the controlled agent
    connects once the late nomination arrives, and data flows."""
    connecting = asyncio.ensure_future(controlled.connect())
    async with asyncio.timeout(3):
        await controlling.connect()
    await asyncio.sleep(0.3)
    assert not connecting.done()
    await nominate(controlling)
    async with asyncio.timeout(3):
        await connecting
    await controlled.send(b"first audio")
    async with asyncio.timeout(2):
        assert await controlling.recv() == b"first audio"


async def test_controlled_agent_selects_a_valid_pair_before_nomination() -> None:
    async with connections(early=True) as (controlling, controlled):
        if not FEATURES.early_selection:
            await connects_only_once_nominated(controlling, controlled)
            return
        async with asyncio.timeout(3):
            await asyncio.gather(controlling.connect(), controlled.connect())
        await controlled.send(b"first audio")
        async with asyncio.timeout(2):
            assert await controlling.recv() == b"first audio"
        await controlling.send(b"back")
        async with asyncio.timeout(2):
            assert await controlled.recv() == b"back"


async def test_without_early_selection_the_controlled_agent_waits_for_nomination() -> None:
    """The control: aioice alone does not complete without USE-CANDIDATE."""
    async with connections(early=False) as (controlling, controlled):
        connecting = asyncio.ensure_future(controlled.connect())
        async with asyncio.timeout(3):
            await controlling.connect()
        await asyncio.sleep(0.5)
        assert not connecting.done()
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await connecting


async def test_a_later_nomination_is_still_honoured() -> None:
    async with connections(early=True) as (controlling, controlled):
        if not FEATURES.early_selection:
            await connects_only_once_nominated(controlling, controlled)
            (selected,) = controlled._nominated.values()
            assert selected.nominated
            return
        async with asyncio.timeout(3):
            await asyncio.gather(controlling.connect(), controlled.connect())
        (selected,) = controlled._nominated.values()
        assert not selected.nominated  # selected early, not nominated
        # The controlling agent's nominating check (RFC 8445 §8.1.1) arrives later.
        await nominate(controlling)
        assert selected.nominated and controlled._nominated[selected.component] is selected
