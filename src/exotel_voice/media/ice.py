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

Before any check is sent, :func:`reachability_problem` tells from the two SDPs when ICE
cannot succeed at all: no candidate on one side, or no local and remote candidate of the
same address family and the same scope (loopback or not; aioice pairs only candidates of
the same family). A host that offers only 127.0.0.1 to a far end on a public address gets
a call that connects in SIP and carries no audio; the session warns at once instead.

The aiortc/aioice internals (reaching the aioice ``Connection`` behind a transceiver,
and the early selection itself) live in :mod:`exotel_voice.media._aiortc_compat`,
which checks them at import.  Without them the policy is not applied (aiortc's own
gathering) and early selection is not done (aioice waits for the nomination).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from . import _aiortc_compat as compat, _sdp
from .config import IceConfig


__all__ = ["apply_gathering_policy", "reachability_problem", "rtc_configuration", "select_early"]

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


def reachability_problem(local_sdp: str, remote_sdp: str | None = None) -> str | None:
    """Why ICE cannot succeed between these two SDPs, or ``None`` when it may.

    Only the candidates are compared, nothing is sent. Without ``remote_sdp`` only our own
    candidates are checked (when our offer is made).

    Args:
        local_sdp: our offer or answer.
        remote_sdp: the far end's.

    Returns:
        A sentence naming the problem: no local candidate, no remote candidate, or no pair
        of the same address family and scope (e.g. only 127.0.0.1 here, only public
        addresses there).
    """
    local = [address for address, _ in _sdp.candidates(local_sdp)]
    if not local:
        return (
            "no local ICE candidate was gathered (check IceConfig.host_addresses and the "
            "host's network): no audio can flow"
        )
    if remote_sdp is None:
        return None
    remote = [address for address, _ in _sdp.candidates(remote_sdp)]
    if not remote:
        return "the far end's SDP has no ICE candidate: no audio can flow"
    if any(_can_pair(ours, theirs) for ours in local for theirs in remote):
        return None
    here, there = ", ".join(dict.fromkeys(local)), ", ".join(dict.fromkeys(remote))
    if all(_loopback(address) for address in local):
        return (
            f"only loopback ICE candidates here ({here}) and none at the far end ({there}): "
            "no audio can flow; give IceConfig.host_addresses an address the far end can "
            "reach, or check the host's network"
        )
    if all(_loopback(address) for address in remote):
        return (
            f"the far end offers only loopback ICE candidates ({there}), which cannot be "
            f"reached from here ({here}): no audio can flow"
        )
    return (
        f"no local and remote ICE candidates of the same address family (here {here}, "
        f"far end {there}): no audio can flow"
    )


def _scope(address: str) -> tuple[int, bool] | None:
    """``(IP version, loopback)`` of an address; ``None`` for a name (mDNS ``.local``)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    return ip.version, ip.is_loopback


def _loopback(address: str) -> bool:
    scope = _scope(address)
    return scope is not None and scope[1]


def _can_pair(local: str, remote: str) -> bool:
    ours, theirs = _scope(local), _scope(remote)
    if ours is None or theirs is None:
        # A name (a browser's mDNS candidate) is resolved by aioice: not loopback.
        return not _loopback(local) and not _loopback(remote)
    return ours == theirs
