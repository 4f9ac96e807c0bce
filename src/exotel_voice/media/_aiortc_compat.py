"""The one module that touches private attributes of aiortc and aioice.

aiortc has no public hook for RTP packets, ICE gathering or JSEP rollback, so the
media path reaches into it.  Every such access is here, behind a small function,
and is checked once, at import: each attribute is looked up **on the class** (a
method must exist with the parameter names we call it with; an instance attribute
must be assigned in the class's ``__init__``, read from its code object), and the
installed aiortc and aioice must be the versions this was checked against
(:data:`CHECKED`).  A feature whose attributes are all there is on
(:data:`FEATURES`); otherwise it is off and its function takes the fallback below.
Whatever is off is reported in **one** WARNING line at import, naming the missing
attributes and the versions found.

Feature by feature (private access / fallback / what the user loses):

``rtp_tap``
    *Access*: ``RTCDtlsTransport._send_rtp`` and ``._handle_rtp_data`` shadowed per
    instance; ``RTCRtpSender._ssrc``.
    *Fallback*: no tap; aiortc's own media path (tracks in and out, as with
    ``media_path="aiortc"``).
    *Lost*: RFC 4733 DTMF (telephone-event is neither offered nor answered,
    ``send_dtmf`` raises :class:`MediaError`, so ``Call.send_dtmf(method="auto")``
    uses SIP INFO); :meth:`MediaSession.stats` counts 20 ms frames instead of RTP
    packets and its byte counts stay 0.
``lean_path`` (needs ``rtp_tap``)
    *Access*: ``RTCRtpSender.__ntp_timestamp``, ``__rtp_timestamp``,
    ``__packet_count``, ``__octet_count`` (what aiortc's ``getStats()`` reports of our
    stream); ``RTCRtpReceiver._handle_disconnect()`` (stops aiortc's idle decoder
    thread); ``RTCDtlsTransport._handle_rtcp_data`` shadowed per instance (the far end's
    decrypted RTCP reaches our :mod:`~exotel_voice.media.rtcp`, then aiortc's router).
    *Fallback*: aiortc's sender, receiver, decoder thread and RTCP (``media_path="aiortc"``;
    stats from aiortc's public ``getStats()``).
    *Lost*: CPU per leg, the lean path's reason; ``receive_stats()`` is ``None``.
``direct_receive`` (needs ``lean_path``)
    *Access*: ``RTCIceTransport._connection``; ``Connection.data_received`` shadowed;
    ``RTCDtlsTransport._rx_srtp``, ``._state`` and its rx counters.
    *Fallback*: aioice's queue and the DTLS transport's receive task, then the tap.
    *Lost*: CPU per received packet.
``direct_send`` (needs ``lean_path``)
    *Access*: ``RTCDtlsTransport._tx_srtp``, ``._state`` and its tx counters;
    ``RTCIceTransport._connection``; ``Connection._nominated``.
    *Fallback*: the awaited ``_send_rtp`` (what aiortc's sender calls).
    *Lost*: CPU per sent packet.
``early_selection``
    *Access*: ``RTCIceGatherer._connection``; ``Connection.check_complete`` shadowed;
    ``Connection._nominated``, ``._check_list_done``, ``._check_list_maybe_complete()``.
    *Fallback*: none: the controlled agent waits for ``USE-CANDIDATE`` (aioice).
    *Lost*: about 100 ms of silence at the start of calls we answer behind rtpengine.
``gathering``
    *Access*: ``RTCIceGatherer._connection`` (its public ``get_component_candidates``
    is shadowed per instance).
    *Fallback*: aiortc's own gathering.
    *Lost*: ``IceConfig.host_addresses`` (no loopback candidates) and
    ``gather_timeout`` (aioice waits up to 5 s per STUN/TURN server).
``reoffer``
    *Access*: ``RTCRtpTransceiver._codecs`` and ``._headerExtensions`` read and written.
    *Fallback*: aiortc's own re-offer from its tables; the negotiated codecs and
    extensions are computed from the remote description, as aiortc computes them.
    *Lost*: a re-offer may renumber payload types and ``a=extmap`` ids (RFC 3264
    §8.3.2, RFC 8285 §6 forbid it; Chromium answers 488).
``rollback`` (needs ``reoffer``)
    *Access*: ``RTCPeerConnection.__pendingLocalDescription``, ``.__setSignalingState()``.
    *Fallback*: our own state is rolled back; aiortc keeps its pending offer.
    *Lost*: after a rejected re-offer, answering the far end's re-INVITE raises
    :class:`MediaError` (media keeps flowing; a new re-offer still works).
``ice_restart`` (needs ``gathering``)
    *Access*: ``RTCIceTransport._connection``, ``._recv``, ``._send``, ``._monitor()`` and
    its ``__monitor_task``; ``RTCIceGatherer._connection``, ``._remote_candidates_end``;
    ``Connection._queue``, ``._nominated``, ``._event_waiter``, ``._components``,
    ``._use_ipv4``, ``._use_ipv6``, ``._transport_policy``.
    *How*: aiortc has no ``restartIce()``, and its ICE transport starts checks only once.
    :func:`arm_ice_restart` gathers a new aioice ``Connection`` (new ufrag and pwd, the
    host's current addresses) and puts it in place of the old one behind the gatherer and
    the transport, so the next SDP aiortc writes carries the new credentials and
    candidates; the DTLS transport, its certificate and the SRTP keys stay.  The two
    connections share one receive queue and the transport's ``_recv``/``_send`` follow
    whichever has a selected pair, so media keeps flowing on the old pair until the new
    one is up (RFC 8445 §9).  :func:`start_ice_restart_checks` runs the new connection's
    checks with the far end's (new) credentials; on success the old connection is closed
    without waking the DTLS receive task, on failure the old one is put back.
    *Fallback*: none: no ICE restart (``MediaSession.restart_ice`` raises
    :class:`MediaError`); after a network change the call stays on the pair it has, and
    if that pair is gone no audio flows until the call ends.
    *Lost*: calls that survive an address change.

The environment variable :data:`ENV` (``EXOTEL_VOICE_AIORTC_COMPAT``), read once at
import, overrides the check:

* ``off``: every feature takes its fallback, **except** ``gathering``: its fallback
  ignores ``IceConfig.host_addresses``, so on a loopback-only host nothing would
  connect at all.  Its fallback is exercised with the attribute removed instead
  (tests/media/test_aiortc_compat.py).
* ``on``: use every feature whose attributes are present even if aiortc/aioice are
  outside :data:`CHECKED` (at your own risk; the WARNING is still logged).
* unset, empty or ``auto``: the check decides.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import pylibsrtp
from aioice.ice import CandidatePair, Connection, StunProtocol
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.clock import current_ms
from aiortc.rtcdtlstransport import RTCDtlsTransport, State as DtlsState
from aiortc.rtcicetransport import RTCIceGatherer, RTCIceTransport


__all__ = [
    "AVAILABLE",
    "CHECKED",
    "ENV",
    "FEATURES",
    "MISSING",
    "VERSIONS",
    "Features",
    "check",
    "discard_local_offer",
    "IceRestart",
    "abandon_ice_restart",
    "arm_ice_restart",
    "ice_connection",
    "ice_restart_of",
    "install_early_selection",
    "negotiated_codecs",
    "negotiated_header_extensions",
    "restore_negotiated",
    "selected_pair",
    "send_directly",
    "send_rtp",
    "sender_ssrc",
    "set_sender_report",
    "shadow_rtcp",
    "shadow_rtp",
    "start_ice_restart_checks",
    "stop_decoder",
    "take_datagrams",
    "unshadow_rtp",
]

logger = logging.getLogger(__name__)

#: The environment variable that forces the fallback (``off``) or the private path (``on``).
ENV = "EXOTEL_VOICE_AIORTC_COMPAT"

#: ``package -> (lowest, first excluded) (major, minor)`` checked; pyproject.toml pins the same.
CHECKED: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "aiortc": ((1, 16), (1, 17)),
    "aioice": ((0, 13), (0, 14)),
}


@dataclass(frozen=True)
class Features:
    """Which private-path features are on (see the module docstring's table)."""

    rtp_tap: bool = True
    lean_path: bool = True
    direct_receive: bool = True
    direct_send: bool = True
    early_selection: bool = True
    gathering: bool = True
    reoffer: bool = True
    rollback: bool = True
    ice_restart: bool = True


@dataclass(frozen=True)
class _Method:
    cls: type
    name: str
    params: tuple[str, ...]

    def missing(self) -> bool:
        function = inspect.getattr_static(self.cls, self.name, None)
        if not callable(function):
            return True
        try:
            names = tuple(inspect.signature(function).parameters)[1:]
        except (TypeError, ValueError):
            return True
        return names[: len(self.params)] != self.params

    def __str__(self) -> str:
        return f"{self.cls.__name__}.{_unmangle(self.name)}()"


@dataclass(frozen=True)
class _Attribute:
    """An instance attribute: assigned by ``cls.__init__`` (found in its code's names)."""

    cls: type
    name: str

    def missing(self) -> bool:
        init = inspect.getattr_static(self.cls, "__init__", None)
        code = getattr(init, "__code__", None)
        return code is None or self.name not in code.co_names

    def __str__(self) -> str:
        return f"{self.cls.__name__}.{_unmangle(self.name)}"


def _unmangle(name: str) -> str:
    return re.sub(r"^_[A-Za-z]\w*?(__\w+)$", r"\1", name)


_Need = _Method | _Attribute

_SEND_RTP = _Method(RTCDtlsTransport, "_send_rtp", ("data",))
_GATHERER_CONNECTION = _Attribute(RTCIceGatherer, "_connection")
_NOMINATED = _Attribute(Connection, "_nominated")

#: What each feature needs.
NEEDS: dict[str, tuple[_Need, ...]] = {
    "rtp_tap": (
        _SEND_RTP,
        _Method(RTCDtlsTransport, "_handle_rtp_data", ("data", "arrival_time_ms")),
        _Attribute(RTCRtpSender, "_ssrc"),
    ),
    "lean_path": (
        *(
            _Attribute(RTCRtpSender, f"_RTCRtpSender__{name}")
            for name in ("ntp_timestamp", "rtp_timestamp", "packet_count", "octet_count")
        ),
        _Method(RTCRtpReceiver, "_handle_disconnect", ()),
        _Method(RTCDtlsTransport, "_handle_rtcp_data", ("data",)),
    ),
    "direct_receive": (
        _Attribute(RTCIceTransport, "_connection"),
        _Method(Connection, "data_received", ("data", "component")),
        _Attribute(RTCDtlsTransport, "_rx_srtp"),
        _Attribute(RTCDtlsTransport, "_state"),
        _Attribute(RTCDtlsTransport, "_RTCDtlsTransport__rx_bytes"),
        _Attribute(RTCDtlsTransport, "_RTCDtlsTransport__rx_packets"),
    ),
    "direct_send": (
        _Attribute(RTCIceTransport, "_connection"),
        _NOMINATED,
        _Attribute(RTCDtlsTransport, "_tx_srtp"),
        _Attribute(RTCDtlsTransport, "_state"),
        _Attribute(RTCDtlsTransport, "_RTCDtlsTransport__tx_bytes"),
        _Attribute(RTCDtlsTransport, "_RTCDtlsTransport__tx_packets"),
    ),
    "early_selection": (
        _GATHERER_CONNECTION,
        _Method(Connection, "check_complete", ("pair",)),
        _NOMINATED,
        _Attribute(Connection, "_check_list_done"),
        _Method(Connection, "_check_list_maybe_complete", ()),
    ),
    "gathering": (
        _GATHERER_CONNECTION,
        _Method(Connection, "get_component_candidates", ("component", "addresses", "timeout")),
    ),
    "reoffer": (
        _Attribute(RTCRtpTransceiver, "_codecs"),
        _Attribute(RTCRtpTransceiver, "_headerExtensions"),
    ),
    "rollback": (
        _Attribute(RTCPeerConnection, "_RTCPeerConnection__pendingLocalDescription"),
        _Method(RTCPeerConnection, "_RTCPeerConnection__setSignalingState", ("state",)),
    ),
    "ice_restart": (
        _Attribute(RTCIceTransport, "_connection"),
        _Attribute(RTCIceTransport, "_recv"),
        _Attribute(RTCIceTransport, "_send"),
        _Attribute(RTCIceTransport, "_RTCIceTransport__monitor_task"),
        _Method(RTCIceTransport, "_monitor", ()),
        _GATHERER_CONNECTION,
        _Attribute(RTCIceGatherer, "_remote_candidates_end"),
        _Attribute(Connection, "_queue"),
        _NOMINATED,
        _Attribute(Connection, "_event_waiter"),
        _Attribute(Connection, "_components"),
        _Attribute(Connection, "_use_ipv4"),
        _Attribute(Connection, "_use_ipv6"),
        _Attribute(Connection, "_transport_policy"),
    ),
}

#: Features that cannot work without another one.
_DEPENDS = {
    "lean_path": "rtp_tap",
    "direct_receive": "lean_path",
    "direct_send": "lean_path",
    "rollback": "reoffer",
    "ice_restart": "gathering",
}


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _in_range(package: str, version: str) -> bool:
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:
        return False
    low, high = CHECKED[package]
    return low <= (int(match.group(1)), int(match.group(2))) < high


def check(
    mode: str, versions: dict[str, str], needs: dict[str, tuple[_Need, ...]] | None = None
) -> tuple[Features, tuple[str, ...], str | None]:
    """Decide the features for ``mode`` (the :data:`ENV` value) and ``versions``.

    Returns the features, the missing attributes, and the WARNING line to log
    (``None`` if everything is on).
    """
    needs = NEEDS if needs is None else needs
    missing_by_feature = {
        name: [str(need) for need in wanted if need.missing()] for name, wanted in needs.items()
    }
    missing = tuple(sorted({m for ms in missing_by_feature.values() for m in ms}))
    unchecked = [
        f"{package} {version}" for package, version in versions.items()
        if not _in_range(package, version)
    ]
    value = mode.strip().lower()
    notes = []
    if value not in ("", "auto", "on", "off"):
        notes.append(f"{ENV}={mode!r} is not auto, on or off; using auto")
        value = "auto"
    on = {name: not missing_by_feature.get(name) for name in needs}
    if value == "off":
        on = {name: name == "gathering" and ok for name, ok in on.items()}
        notes.append(f"forced by {ENV}=off")
    elif unchecked and value != "on":
        on = dict.fromkeys(on, False)
        notes.append(
            "not the checked versions ("
            + ", ".join(f"{p}~={lo[0]}.{lo[1]}.0" for p, (lo, _) in CHECKED.items())
            + f"; {ENV}=on to use them anyway)"
        )
    elif unchecked:
        notes.append(f"unchecked versions used as {ENV}=on asks")
    for name, base in _DEPENDS.items():
        on[name] = on.get(name, False) and on.get(base, False)
    features = Features(**{f.name: on.get(f.name, False) for f in fields(Features)})
    off = [f.name for f in fields(Features) if not getattr(features, f.name)]
    if not off and not notes:
        return features, missing, None
    found = ", ".join(f"{package} {version}" for package, version in versions.items())
    line = f"aiortc compatibility: {found}"
    if off:
        line += f"; aiortc's own path for {', '.join(off)}"
    if missing:
        line += f"; missing {', '.join(missing)}"
    if notes:
        line += f" ({'; '.join(notes)})"
    return features, missing, line + "; see docs/media.md"


#: ``package -> version`` of aiortc and aioice as installed.
VERSIONS = {package: _version(package) for package in CHECKED}
FEATURES, MISSING, _WARNING = check(os.environ.get(ENV, ""), VERSIONS)
#: Whether every feature is on (no fallback anywhere).
AVAILABLE = all(getattr(FEATURES, f.name) for f in fields(Features))
if _WARNING is not None:
    logger.warning("! %s", _WARNING)


# -- rtp_tap -----------------------------------------------------------------------

SendRtp = Callable[[bytes], Awaitable[None]]
HandleRtp = Callable[[bytes, int], Awaitable[None]]


def sender_ssrc(rtp_sender: Any) -> int:
    """The SSRC aiortc's ``RTCRtpSender`` puts on our RTP (``rtp_tap``)."""
    return int(rtp_sender._ssrc)


def shadow_rtp(transport: Any, send: SendRtp, handle: HandleRtp) -> tuple[SendRtp, HandleRtp]:
    """Route one ``RTCDtlsTransport``'s plain RTP/RTCP through ``send`` (outgoing, before
    SRTP) and its decrypted RTP through ``handle(data, arrival_time_ms)``; returns
    aiortc's originals, which the shadows must call.  Instance attributes only:
    other transports are not affected.  :func:`unshadow_rtp` undoes it.
    """
    originals = transport._send_rtp, transport._handle_rtp_data
    transport._send_rtp = send
    transport._handle_rtp_data = handle
    return originals


def unshadow_rtp(transport: Any) -> None:
    """Remove what :func:`shadow_rtp` and :func:`shadow_rtcp` installed, restoring aiortc's
    methods."""
    for name in ("_send_rtp", "_handle_rtp_data", "_handle_rtcp_data"):
        if name in vars(transport):
            delattr(transport, name)


def send_rtp(transport: Any, data: bytes) -> Awaitable[None]:
    """Send a plain RTP packet the way aiortc's sender does (SRTP, then ICE); awaitable."""
    return transport._send_rtp(data)  # type: ignore[no-any-return]


# -- lean_path ---------------------------------------------------------------------


def set_sender_report(
    rtp_sender: Any, *, ntp_timestamp: int, rtp_timestamp: int, packets: int, octets: int
) -> None:
    """Set the counters aiortc's RTCP task builds our sender reports from (``lean_path``)."""
    rtp_sender._RTCRtpSender__ntp_timestamp = ntp_timestamp
    rtp_sender._RTCRtpSender__rtp_timestamp = rtp_timestamp
    rtp_sender._RTCRtpSender__packet_count = packets
    rtp_sender._RTCRtpSender__octet_count = octets


HandleRtcp = Callable[[bytes], Awaitable[None]]


def shadow_rtcp(transport: Any, handle: HandleRtcp) -> HandleRtcp | None:
    """Route one ``RTCDtlsTransport``'s decrypted incoming RTCP (compound packets, SRTCP
    already removed) through ``handle(data)`` (``lean_path``); returns aiortc's original,
    which the shadow must call (aiortc's senders and receivers keep their own view), or
    ``None`` (nothing shadowed: aiortc alone handles RTCP) if the feature is off.
    :func:`unshadow_rtp` undoes it."""
    if not FEATURES.lean_path:
        return None
    original: HandleRtcp = transport._handle_rtcp_data
    transport._handle_rtcp_data = handle
    return original


def stop_decoder(receiver: Any) -> None:
    """End aiortc's decoder thread of ``receiver``, keeping its RTCP task (``lean_path``):
    ``_handle_disconnect()`` is what aiortc itself calls when DTLS goes away."""
    receiver._handle_disconnect()


# -- direct_send / direct_receive --------------------------------------------------


def send_directly(dtls: Any, data: bytes, prepare: Callable[[bytes], bytes]) -> bool:
    """Protect ``prepare(data)`` with ``dtls``'s SRTP session and write it to the nominated
    pair's socket at once, keeping aiortc's counters; ``False`` (``prepare`` not
    called) if that cannot be done now: ``direct_send`` off, DTLS not connected, or a
    pair that is not plain UDP (a TURN relay's send is a coroutine)."""
    if not FEATURES.direct_send:
        return False
    srtp = dtls._tx_srtp
    connection = getattr(dtls.transport, "_connection", None)
    pair = connection._nominated.get(1) if connection is not None else None
    if (
        srtp is None
        or dtls._state is not DtlsState.CONNECTED
        or pair is None
        or type(pair.protocol) is not StunProtocol
    ):
        return False
    data = srtp.protect(prepare(data))
    pair.protocol.transport.sendto(data, pair.remote_addr)
    dtls._RTCDtlsTransport__tx_bytes += len(data)
    dtls._RTCDtlsTransport__tx_packets += 1
    return True


def take_datagrams(
    dtls: Any, take: Callable[[bytes], bool], route: HandleRtp
) -> Callable[[], None] | None:
    """Decrypt SRTP where aioice hands over the datagram (``direct_receive``).

    Shadows ``Connection.data_received`` of ``dtls``'s ICE connection: once DTLS-SRTP is
    up, each SRTP (not SRTCP) datagram is decrypted and given to ``take(plain)``; a
    packet ``take`` declines goes to ``route(plain, arrival_ms)`` (aiortc's router).
    Everything else (DTLS records, SRTCP, packets before the keys exist) takes
    aioice's queue as before.  Returns the undo function, or ``None`` if the feature is
    off or the connection is already shadowed.
    """
    if not FEATURES.direct_receive:
        return None
    connection = getattr(getattr(dtls, "transport", None), "_connection", None)
    if connection is None or "data_received" in vars(connection):
        return None
    pending: set[asyncio.Future[None]] = set()
    shadowed: list[Any] = []

    def install(connection: Any) -> None:
        original: Callable[[bytes, int], None] = connection.data_received

        def data_received(data: bytes, component: int) -> None:
            srtp = dtls._rx_srtp
            if (
                srtp is None
                or not data
                or not 127 < data[0] < 192
                or (len(data) >= 2 and 192 <= data[1] <= 223)  # RTCP (RFC 5761 §4)
                or dtls._state is not DtlsState.CONNECTED
            ):
                original(data, component)
                return
            try:
                plain = srtp.unprotect(data)
            except pylibsrtp.Error:
                return  # aiortc drops these too (replays, bad authentication tags)
            dtls._RTCDtlsTransport__rx_bytes += len(data)
            dtls._RTCDtlsTransport__rx_packets += 1
            if not take(plain):
                future = asyncio.ensure_future(route(plain, current_ms()))
                pending.add(future)
                future.add_done_callback(pending.discard)

        connection.data_received = data_received
        shadowed.append(connection)

    def undo() -> None:
        for connection in shadowed:
            if "data_received" in vars(connection):
                del connection.data_received
        shadowed.clear()
        if vars(dtls).get(_RESHADOW) is install:
            delattr(dtls, _RESHADOW)

    install(connection)
    # An ICE restart (below) gives the transport a new connection: it is shadowed too.
    setattr(dtls, _RESHADOW, install)
    return undo


_RESHADOW = "_exotel_voice_take_datagrams"


# -- gathering / early_selection ----------------------------------------------------


def ice_connection(transceiver: Any) -> Any | None:
    """The aioice ``Connection`` behind ``transceiver`` (``gathering``), or ``None``."""
    if not FEATURES.gathering:
        return None
    return transceiver.receiver.transport.transport.iceGatherer._connection


def install_early_selection(connection: Any) -> bool:
    """Controlled role: make the first pair whose check succeeded the selected one, before
    any nomination (RFC 8445 §12.1; see :mod:`exotel_voice.media.ice`).  ``False`` (and
    aioice's own behaviour: wait for ``USE-CANDIDATE``) if ``early_selection`` is off.
    """
    if not FEATURES.early_selection:
        return False
    original = connection.check_complete

    def check_complete(pair: Any) -> None:
        original(pair)
        if (
            not connection.ice_controlling
            and pair.state == CandidatePair.State.SUCCEEDED
            and not connection._check_list_done
            and pair.component not in connection._nominated
        ):
            connection._nominated[pair.component] = pair
            connection._check_list_maybe_complete()

    connection.check_complete = check_complete
    return True


def selected_pair(connection: Any, component: int = 1) -> Any | None:
    """The pair aioice sends ``component`` on (nominated or selected early), if any."""
    return getattr(connection, "_nominated", {}).get(component)


# -- reoffer / rollback --------------------------------------------------------------


def _remote_audio(pc: Any, transceiver: Any) -> Any | None:
    from aiortc import sdp as aiortc_sdp

    remote = pc.remoteDescription
    if remote is None:
        return None
    for media in aiortc_sdp.SessionDescription.parse(remote.sdp).media:
        if media.kind == transceiver.kind and media.rtp.muxId == transceiver.mid:
            return media
    return None


def negotiated_codecs(pc: Any, transceiver: Any, preferences: Iterable[Any]) -> list[Any]:
    """The negotiated codecs of ``transceiver``, the first being the one sent with.

    aiortc keeps them in ``RTCRtpTransceiver._codecs``; without ``reoffer`` they are
    computed as aiortc computes them, from the remote description (public).
    """
    if FEATURES.reoffer:
        return list(transceiver._codecs)
    from aiortc.codecs import CODECS
    from aiortc.rtcpeerconnection import filter_preferred_codecs, find_common_codecs

    media = _remote_audio(pc, transceiver)
    if media is None:
        return []
    common = find_common_codecs(CODECS[transceiver.kind], media.rtp.codecs)
    return list(filter_preferred_codecs(common, list(preferences)))


def negotiated_header_extensions(pc: Any, transceiver: Any) -> list[Any]:
    """The negotiated RTP header extensions (ids) of ``transceiver``."""
    if FEATURES.reoffer:
        return list(transceiver._headerExtensions)
    from aiortc.codecs import HEADER_EXTENSIONS
    from aiortc.rtcpeerconnection import find_common_header_extensions

    media = _remote_audio(pc, transceiver)
    if media is None:
        return []
    return list(
        find_common_header_extensions(HEADER_EXTENSIONS[transceiver.kind],
                                      media.rtp.headerExtensions)
    )


def restore_negotiated(transceiver: Any, codecs: list[Any], extensions: list[Any]) -> bool:
    """Put negotiated codecs and extension ids back on ``transceiver`` (after aiortc's
    ``createOffer()`` reset them); ``False`` if ``reoffer`` is off (aiortc's own)."""
    if not FEATURES.reoffer:
        return False
    transceiver._codecs = codecs
    transceiver._headerExtensions = extensions
    return True


def discard_local_offer(pc: Any) -> bool:
    """Return ``pc`` from ``have-local-offer`` to ``stable`` (aiortc has no rollback);
    ``False`` if ``rollback`` is off or there is no local offer pending."""
    if not FEATURES.rollback or pc.signalingState != "have-local-offer":
        return False
    # The pending local description is the only thing setLocalDescription(offer)
    # stored; the current one is intact.
    pc._RTCPeerConnection__pendingLocalDescription = None
    pc._RTCPeerConnection__setSignalingState("stable")
    return True


# -- ice_restart ---------------------------------------------------------------------

_RESTART = "_exotel_voice_ice_restart"


class _KeepOpen:
    """The old connection's receive queue during a restart: its datagrams go to the shared
    queue, its end-of-connection marker (``None``, put by ``close()``) does not, so the
    DTLS transport's receive task never sees the old connection end."""

    def __init__(self, shared: asyncio.Queue[Any]) -> None:
        self.shared = shared

    def put_nowait(self, item: Any) -> None:
        if item is not None:
            self.shared.put_nowait(item)


@dataclass(eq=False)
class IceRestart:
    """One ICE restart of one ICE transport (see :func:`arm_ice_restart`).

    Attributes:
        old: the aioice connection in use before the restart (media stays on it until
            the new one has a pair).
        new: the connection gathered for the restart (new ufrag/pwd and candidates).
        outcome: ``None`` once the new connection has a pair, or why the restart failed
            (the checks failed or timed out, a newer restart replaced it).
        task: the new connection's checks, once started.
    """

    transport: Any
    old: Any
    new: Any
    outcome: asyncio.Future[str | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    task: asyncio.Task[bool] | None = None

    def _finish(self, reason: str | None) -> None:
        if not self.outcome.done():
            self.outcome.set_result(reason)

    @property
    def started(self) -> bool:
        """Whether the checks of the new connection were started."""
        return self.task is not None

    @property
    def local_username(self) -> str:
        """The new ufrag (what our next SDP carries)."""
        return str(self.new.local_username)


def _ice_transport(transceiver: Any) -> Any:
    return transceiver.receiver.transport.transport


def ice_restart_of(transceiver: Any) -> IceRestart | None:
    """The restart armed on ``transceiver``'s ICE transport and not finished, if any."""
    restart = vars(_ice_transport(transceiver)).get(_RESTART)
    return restart if isinstance(restart, IceRestart) else None


def _install_proxies(transport: Any, shared: asyncio.Queue[Any]) -> None:
    """The transport's ``_recv``/``_send`` (what DTLS calls) read the queue every connection
    of the transport feeds, and send on the connection that has a pair."""
    if "_exotel_voice_proxied" in vars(transport):
        return

    async def recv() -> bytes:
        item = await shared.get()
        if item is None:
            raise ConnectionError("Connection lost while receiving data")
        return bytes(item[0])

    async def send(data: bytes) -> None:
        connection = transport._connection
        restart = vars(transport).get(_RESTART)
        if not connection._nominated and restart is not None and restart.old._nominated:
            connection = restart.old  # the new pair is not up yet: keep the old one
        await connection.send(data)

    transport._recv = recv
    transport._send = send
    transport._exotel_voice_proxied = True


def _unwatch(transport: Any) -> None:
    task = transport._RTCIceTransport__monitor_task
    if task is not None and not task.done():
        task.cancel()


def _watch(transport: Any, connection: Any) -> None:
    """Point aiortc's monitor of ``transport`` (ICE failed when the connection closes) at
    ``connection``."""
    _unwatch(transport)
    if connection._event_waiter is not None and not connection._event_waiter.done():
        connection._event_waiter = None  # left by a cancelled monitor: one waiter at a time
    transport._RTCIceTransport__monitor_task = asyncio.ensure_future(transport._monitor())


def _swap(transport: Any, connection: Any) -> None:
    transport._connection = connection
    transport.iceGatherer._connection = connection


async def arm_ice_restart(
    transceiver: Any, prepare: Callable[[Any], None]
) -> IceRestart | None:
    """Gather a new ICE connection for ``transceiver`` and put it in place (``ice_restart``).

    The new aioice ``Connection`` has the old one's role and servers, new credentials, and
    ``prepare(connection)`` is called before it gathers (the gathering policy).  From now on
    aiortc's SDP carries its ufrag, pwd and candidates, and remote candidates go to it;
    media stays on the old pair.  A restart already armed whose checks have not started is
    replaced (its connection closed); one whose checks are running is returned as it is.

    Returns:
        The restart, or ``None`` if ``ice_restart`` is off or the transport never connected.
    """
    if not FEATURES.ice_restart:
        return None
    transport = _ice_transport(transceiver)
    current = ice_restart_of(transceiver)
    if current is not None and current.started:
        return current
    if current is not None:
        _unwatch(transport)
        await _drop(current.new)
        current._finish("replaced by a newer ICE restart")
        old = current.old
    else:
        old = transport._connection
    if transport.state == "closed" or not old._nominated:
        if current is not None:  # the dropped restart's connection is gone: back to old
            _swap(transport, old)
            _watch(transport, old)
            delattr(transport, _RESTART)
        return None
    new = Connection(
        ice_controlling=old.ice_controlling,
        components=len(old._components) or 1,
        stun_server=old.stun_server,
        turn_server=old.turn_server,
        turn_username=old.turn_username,
        turn_password=old.turn_password,
        turn_ssl=old.turn_ssl,
        turn_transport=old.turn_transport,
        use_ipv4=old._use_ipv4,
        use_ipv6=old._use_ipv6,
        transport_policy=old._transport_policy,
    )
    prepare(new)
    await new.gather_candidates()
    if current is None:
        shared = old._queue
        old._queue = _KeepOpen(shared)
    else:
        shared = old._queue.shared
    new._queue = shared
    restart = IceRestart(transport=transport, old=old, new=new)
    _install_proxies(transport, shared)
    _swap(transport, new)
    transport.iceGatherer._remote_candidates_end = False
    reshadow = vars(transceiver.receiver.transport).get(_RESHADOW)
    if reshadow is not None:
        reshadow(new)
    setattr(transport, _RESTART, restart)
    _watch(transport, new)
    return restart


def start_ice_restart_checks(
    restart: IceRestart,
    *,
    username: str,
    password: str,
    lite: bool = False,
    timeout: float = 10.0,
) -> bool:
    """Run the armed restart's checks with the far end's credentials (from its answer, or
    from its offer when the far end restarts).

    On success the old connection is closed (quietly: the DTLS transport goes on) and the
    restart is finished; on failure (or no pair within ``timeout`` seconds) the new
    connection is closed and the old one put back (if its pair still works, media goes on
    there).  :attr:`IceRestart.outcome` tells which.

    Returns:
        ``False`` if the checks had already been started.
    """
    if restart.started:
        return False
    new, transport = restart.new, restart.transport
    new.remote_username = username
    new.remote_password = password
    new.remote_is_lite = lite

    async def run() -> bool:
        reason: str | None = None
        try:
            await asyncio.wait_for(new.connect(), timeout)
        except TimeoutError:
            reason = f"no candidate pair succeeded within {timeout:g} s"
        except ConnectionError as exc:
            reason = str(exc) or type(exc).__name__
        except Exception as exc:  # aioice's own failures: report, keep the old pair
            reason = f"{type(exc).__name__}: {exc}"
        if vars(transport).get(_RESTART) is restart:
            delattr(transport, _RESTART)
        if reason is None:
            restart._finish(None)
            old = restart.old
            old._queue = asyncio.Queue()  # detached: its close() wakes nobody
            await old.close()
        else:
            new._queue = asyncio.Queue()
            if transport.state != "closed":
                _swap(transport, restart.old)
                _watch(transport, restart.old)
            await new.close()
        restart._finish(reason)
        return reason is None

    restart.task = asyncio.ensure_future(run())
    return True


async def _drop(connection: Any) -> None:
    """Close a connection that shares the transport's queue without ending it."""
    connection._queue = asyncio.Queue()
    await connection.close()



async def abandon_ice_restart(transceiver: Any) -> None:
    """The session is closing: stop an armed restart's checks and close the connection
    aiortc does not know about (the old one; aiortc closes the one in place)."""
    restart = ice_restart_of(transceiver)
    if restart is None:
        return
    delattr(restart.transport, _RESTART)
    if restart.task is not None:
        restart.task.cancel()
    restart._finish("the media session was closed")
    await _drop(restart.old)
