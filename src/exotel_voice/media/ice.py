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

Early selection (:attr:`IceConfig.early_selection`): aioice's ``connect()``, in the
controlled role, returns only once the controlling agent has nominated a pair
(``USE-CANDIDATE``), and aiortc starts DTLS only then.  rtpengine uses regular
nomination about 100 ms after its first check succeeded, so every call we answer
would wait that long for its first audio.  RFC 8445 §12.1 lets an agent send on a
valid pair before nomination, and browsers do, so the same hook shadows
``Connection.check_complete``: when a check of ours succeeds while we are
controlled and no pair is selected yet, that pair becomes the selected one
(``_nominated[component]``) and the check list completes.  Nothing else changes:
our other checks stop as they would after a nomination, incoming checks still
trigger checks, and a later ``USE-CANDIDATE`` on any pair makes that pair the
selected one (aioice's own handling), which is where data goes from then on.

The aiortc/aioice internals (reaching the aioice ``Connection`` behind a transceiver,
and the early selection itself) live in :mod:`exotel_voice.media._aiortc_compat`,
which checks them at import.  Without them the policy is not applied (aiortc's own
gathering) and early selection is not done (aioice waits for the nomination).
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from . import _aiortc_compat as compat
from .config import IceConfig


__all__ = ["apply_gathering_policy", "rtc_configuration", "select_early"]

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
        connection = compat.ice_connection(transceiver)
        if connection is None or getattr(connection, _MARK, False):
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
    if config.early_selection:
        select_early(connection)
    setattr(connection, _MARK, True)


def select_early(connection: Any) -> bool:
    """Controlled role: select the first pair whose check succeeded (module docstring).

    Returns ``False`` when aioice's internals are not usable (then aioice waits for the
    nomination, as it does on its own).
    """
    return compat.install_early_selection(connection)
