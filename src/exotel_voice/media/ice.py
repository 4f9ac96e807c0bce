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
(Loopback and non-loopback candidates of one family do pair, and reach each other when
both ends are on one host; the warning says so.)

ICE restart (RFC 8445 §9, RFC 8839 §4.4.1.1.1): aiortc has no ``restartIce()``.
:func:`restart` gathers a new aioice connection with a new ufrag and pwd on the host's
addresses of now (or :attr:`IceConfig.host_addresses`) and puts it behind the peer
connection's ICE transport (:func:`~exotel_voice.media._aiortc_compat.arm_ice_restart`):
the next offer aiortc writes carries the new ``a=ice-ufrag``, ``a=ice-pwd`` and
candidates, while the DTLS association (certificate, fingerprint, ``a=setup`` role) and
the SRTP keys stay, as RFC 8842 §5 allows for an ICE restart.  The connectivity checks
start when the far end's answer is applied, with its (new) credentials; media stays on the
old pair until a new one is selected, then moves.  The far end may restart too: an offer
whose ``a=ice-ufrag``/``a=ice-pwd`` differ from its previous ones is an ICE restart, and we
restart as well, so our answer carries new credentials (RFC 8839 §4.4.1.1.1 requires
it).  Both are done by shadowing the peer connection's ``setRemoteDescription`` (an
instance attribute, installed with the gathering policy), which knows the remote
credentials before and after.  The ICE roles do not change.

The aiortc/aioice internals (reaching the aioice ``Connection`` behind a transceiver,
and the early selection itself) live in :mod:`exotel_voice.media._aiortc_compat`,
which checks them at import.  Without them the policy is not applied (aiortc's own
gathering) and early selection is not done (aioice waits for the nomination).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, sdp as aiortc_sdp
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from . import _aiortc_compat as compat, _sdp
from .config import IceConfig


__all__ = [
    "apply_gathering_policy",
    "reachability_problem",
    "restart",
    "restart_available",
    "rtc_configuration",
    "select_early",
]

logger = logging.getLogger(__name__)

_MARK = "_exotel_voice_gathering_policy"
_RESTARTS = "_exotel_voice_ice_restarts"

#: Seconds the checks of an ICE restart may take before the restart is reported failed.
RESTART_TIMEOUT = 10.0


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
    _follow_remote_restarts(pc, config)
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


def restart_available() -> bool:
    """Whether ICE restart can be done here (the ``ice_restart`` feature of
    :mod:`~exotel_voice.media._aiortc_compat`)."""
    return compat.FEATURES.ice_restart


async def restart(pc: Any, config: IceConfig) -> list[asyncio.Future[str | None]]:
    """Arm an ICE restart on every ICE transport of ``pc`` (module docstring).

    Gathers new candidates at once (within :attr:`IceConfig.gather_timeout`); the next
    offer ``pc`` makes carries them with new credentials, and the checks start when the
    answer is applied.  Calling it again before the answer gathers again.

    Returns:
        One future per transport, resolved with ``None`` once the new pair is selected or
        with why the restart failed; empty if nothing could be restarted (the feature is
        off, or the transport never connected).
    """
    _follow_remote_restarts(pc, config)
    outcomes = []
    for transceiver in pc.getTransceivers():
        armed = await compat.arm_ice_restart(transceiver, lambda c: _hook(c, config))
        if armed is not None:
            outcomes.append(armed.outcome)
    return outcomes


def _ice_parameters(sdp: str, mid: str | None) -> Any | None:
    """aiortc's ``RTCIceParameters`` of the media section ``mid`` of ``sdp``."""
    try:
        description = aiortc_sdp.SessionDescription.parse(sdp)
    except Exception:  # a broken SDP is aiortc's to refuse
        return None
    for media in description.media:
        if media.rtp.muxId == mid or mid is None:
            return media.ice
    return None


def _credentials(parameters: Any | None) -> tuple[str, str] | None:
    if parameters is None or not parameters.usernameFragment or not parameters.password:
        return None
    return str(parameters.usernameFragment), str(parameters.password)


def _follow_remote_restarts(pc: Any, config: IceConfig) -> None:
    """Shadow ``pc.setRemoteDescription`` to restart with the far end and to start the checks
    of our own restart when its answer arrives (module docstring).  Once per ``pc``."""
    if _RESTARTS in vars(pc):
        return
    setattr(pc, _RESTARTS, True)
    original_set_remote = pc.setRemoteDescription
    original_close = pc.close
    warned: list[bool] = []

    async def set_remote_description(description: Any) -> None:
        before = pc.remoteDescription
        if description.type == "offer" and before is not None:
            for transceiver in pc.getTransceivers():
                was = _credentials(_ice_parameters(before.sdp, transceiver.mid))
                now = _credentials(_ice_parameters(description.sdp, transceiver.mid))
                if was is None or now is None or was == now:
                    continue
                if compat.ice_restart_of(transceiver) is not None:
                    continue
                armed = await compat.arm_ice_restart(transceiver, lambda c: _hook(c, config))
                if armed is None and not warned:
                    warned.append(True)
                    logger.warning(
                        "! the far end restarted ICE (new ice-ufrag/ice-pwd) but ICE restart "
                        "is unavailable here (see EXOTEL_VOICE_AIORTC_COMPAT in "
                        "docs/media.md): media stays on the current pair"
                    )
        await original_set_remote(description)
        local = pc.localDescription
        for transceiver in pc.getTransceivers():
            armed = compat.ice_restart_of(transceiver)
            if armed is None or armed.started:
                continue
            if description.type == "answer":
                ours = _credentials(_ice_parameters(local.sdp, transceiver.mid)) if local else None
                if ours is None or ours[0] != armed.local_username:
                    continue  # the answer to an offer made before the restart was armed
            parameters = _ice_parameters(description.sdp, transceiver.mid)
            theirs = _credentials(parameters)
            if theirs is None:
                continue
            compat.start_ice_restart_checks(
                armed,
                username=theirs[0],
                password=theirs[1],
                lite=bool(getattr(parameters, "iceLite", False)),
                timeout=RESTART_TIMEOUT,
            )

    async def close() -> None:
        for transceiver in pc.getTransceivers():
            await compat.abandon_ice_restart(transceiver)
        await original_close()

    pc.setRemoteDescription = set_remote_description
    pc.close = close


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
    # Loopback against a non-loopback address of the same family: aioice pairs them, and
    # the kernel carries them only within this host (a far end on this machine, e.g. a
    # test's veth address against a peer on 127.0.0.1, is reached).
    if all(_loopback(address) for address in local):
        return (
            f"only loopback ICE candidates here ({here}) and none at the far end ({there}): "
            "no audio can flow unless the far end runs on this host; give "
            "IceConfig.host_addresses an address the far end can reach, or check the "
            "host's network"
        )
    if all(_loopback(address) for address in remote):
        return (
            f"the far end offers only loopback ICE candidates ({there}), which only this "
            f"host reaches (here: {here}): no audio can flow unless the far end runs on "
            "this host"
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
