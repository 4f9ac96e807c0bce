"""ICE configuration for aiortc, and the gathering policy aiortc cannot express.

aiortc's ``RTCConfiguration`` has no way to choose host addresses or to bound
STUN/TURN gathering, and aioice's ``get_host_addresses()`` always leaves out
127.0.0.1 and ::1.  Both are needed: loopback for tests and single-host setups,
a bound because aiortc gathers every candidate before producing an SDP.

The hook: aioice's ``Connection.gather_candidates()`` calls the public method
``Connection.get_component_candidates(component, addresses, timeout)``.  We shadow
that method with an *instance* attribute on each ``Connection`` of our own peer
connection, replacing ``addresses`` with :attr:`IceConfig.host_addresses` and
``timeout`` with :attr:`IceConfig.gather_timeout`.  Nothing module- or
process-wide is patched, so sessions with different settings coexist.

aiortc/aioice internals relied on (aiortc 1.16, aioice 0.13):
``RTCRtpTransceiver.receiver.transport.transport.iceGatherer._connection``
reaches the aioice ``Connection``; ``get_component_candidates`` keeps its
signature; gathering happens in ``setLocalDescription``, after
:func:`apply_gathering_policy` runs.
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from .config import IceConfig


__all__ = ["apply_gathering_policy", "rtc_configuration"]

_MARK = "_exotel_voice_gathering_policy"


def rtc_configuration(config: IceConfig) -> Any:
    """Build aiortc's ``RTCConfiguration``; an empty server list, never a public default."""
    servers = [
        RTCIceServer(urls=server.url_list, username=server.username, credential=server.credential)
        for server in config.servers
    ]
    policy = (
        RTCIceTransportPolicy.RELAY
        if config.ice_transport_policy == "relay"
        else RTCIceTransportPolicy.ALL
    )
    return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)


def apply_gathering_policy(pc: Any, config: IceConfig) -> int:
    """Install the gathering policy on every ICE connection of ``pc`` not yet hooked.

    Call it before each ``setLocalDescription``.  Returns how many connections were
    hooked by this call.
    """
    hooked = 0
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport.iceGatherer._connection
        if getattr(connection, _MARK, False):
            continue
        _hook(connection, config)
        hooked += 1
    return hooked


def _hook(connection: Any, config: IceConfig) -> None:
    original = connection.get_component_candidates
    relay_only = config.ice_transport_policy == "relay"
    host_addresses = None if config.host_addresses is None else list(config.host_addresses)

    async def get_component_candidates(
        component: int, addresses: list[str], timeout: float = 5
    ) -> list[Any]:
        if host_addresses is not None and not relay_only:
            addresses = host_addresses
        return list(
            await original(component=component, addresses=addresses, timeout=config.gather_timeout)
        )

    connection.get_component_candidates = get_component_candidates
    setattr(connection, _MARK, True)
