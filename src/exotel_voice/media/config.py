"""Value objects that configure a :class:`~exotel_voice.media.session.MediaSession`.

Everything is keyword-only and validated when constructed, so a bad value fails
where it is written, not deep inside ICE gathering. Validation errors are
:class:`~exotel_voice.exceptions.ConfigurationError` naming the field.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal

from ..exceptions import ConfigurationError
from .quality import QualityConfig


__all__ = ["IceConfig", "IceServer", "LivenessConfig", "MediaConfig", "SUPPORTED_CODECS"]

#: Audio codecs the media layer can negotiate, by SDP encoding name.
SUPPORTED_CODECS: tuple[str, ...] = ("opus", "G722", "PCMU", "PCMA")

_ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


@dataclass(frozen=True, kw_only=True)
class IceServer:
    """One STUN or TURN server.

    Attributes:
        urls: one or more ``stun:``/``turn:``/``turns:`` URLs.
        username: TURN username, if any.
        credential: TURN password. Never shown by ``repr()``.
    """

    urls: list[str] | str
    username: str | None = None
    credential: str | None = None

    def __post_init__(self) -> None:
        for url in self.url_list:
            if not url.startswith(_ICE_SCHEMES):
                raise ConfigurationError("urls", f"not a STUN/TURN URL: {url!r}")

    @property
    def url_list(self) -> list[str]:
        """The URLs as a list."""
        return [self.urls] if isinstance(self.urls, str) else list(self.urls)

    def __repr__(self) -> str:
        secret = "None" if self.credential is None else "'***'"
        return f"IceServer(urls={self.urls!r}, username={self.username!r}, credential={secret})"


@dataclass(frozen=True, kw_only=True)
class IceConfig:
    """How ICE candidates are gathered.

    aiortc gathers every candidate before it produces an SDP (no trickle), so
    ``gather_timeout`` bounds how long a STUN or TURN server may delay call setup.

    Attributes:
        servers: STUN/TURN servers. Empty by default: no public STUN server is ever
            contacted unless configured here. aiortc uses the first STUN and the
            first TURN server only.
        host_addresses: restrict host candidates to these local addresses, e.g.
            ``["127.0.0.1"]``. Unlike aioice's own discovery this may name
            loopback addresses. ``None`` means every non-loopback interface.
        gather_timeout: seconds to wait for server-reflexive and relay candidates.
            Host candidates are always gathered.
        ice_transport_policy: ``"all"``, or ``"relay"`` to offer TURN candidates only.
        early_selection: in the controlled role (we answered), start DTLS and media on
            the first pair whose check succeeded instead of waiting for the controlling
            agent's nomination, as browsers do; a later nomination of another pair
            moves media there.  rtpengine nominates ~100 ms after its checks succeed,
            which aioice alone would add to every answered call's setup.
    """

    servers: list[IceServer] = field(default_factory=list)
    host_addresses: list[str] | None = None
    gather_timeout: float = 5.0
    ice_transport_policy: Literal["all", "relay"] = "all"
    early_selection: bool = True

    def __post_init__(self) -> None:
        if self.host_addresses is not None:
            for address in self.host_addresses:
                try:
                    ipaddress.ip_address(address)
                except ValueError:
                    raise ConfigurationError(
                        "host_addresses", f"not an IP address: {address!r}"
                    ) from None
        if not self.gather_timeout > 0:
            raise ConfigurationError("gather_timeout", "must be a positive number of seconds")
        if self.ice_transport_policy not in ("all", "relay"):
            raise ConfigurationError("ice_transport_policy", "must be 'all' or 'relay'")


@dataclass(frozen=True, kw_only=True)
class LivenessConfig:
    """When a call's media counts as dead (see :mod:`exotel_voice.media.liveness`).

    A connected call whose media stops is warned about at once and then ended with a
    reason, rather than left "connected" in silence.

    Attributes:
        enabled: watch the media at all (``False``: no media events, no media timeouts).
        no_media_warning: seconds without any packet (RTP or RTCP) from the far end, while
            neither side holds the call, before a warning (``MediaSilent``; a
            ``NoMediaWarning`` event on a call). Default 10 s.
        no_media_grace: seconds after that warning, still silent, before the call is ended
            (BYE, ``CallEnded`` naming the silence); ``None`` never ends it. Default 10 s, so
            a dead call ends 20 s after its last packet.
        connect_timeout: seconds after the answer for ICE and DTLS to connect before the
            call is ended; ``None`` waits for ever (ICE failing still ends it). Default 15 s.
        ice_disconnected_after: seconds without any packet from the far end, while neither
            side holds the call, before the ICE state is reported as ``disconnected``
            (``MediaStateChanged``, the ``ice-disconnected`` quality warning); the first
            packet after it reports the transport's state again. aiortc's ICE transport
            has no ``disconnected`` state of its own; browsers report it after about 5 s
            without an answer to their checks. At most ``no_media_warning`` (the smaller
            one counts); ``None``: never reported. Default 5 s.
    """

    enabled: bool = True
    no_media_warning: float = 10.0
    no_media_grace: float | None = 10.0
    connect_timeout: float | None = 15.0
    ice_disconnected_after: float | None = 5.0

    def __post_init__(self) -> None:
        if not self.no_media_warning > 0:
            raise ConfigurationError("no_media_warning", "must be a positive number of seconds")
        if self.no_media_grace is not None and not self.no_media_grace >= 0:
            raise ConfigurationError("no_media_grace", "must be 0 or more seconds, or None")
        for name in ("connect_timeout", "ice_disconnected_after"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigurationError(name, "must be a positive number of seconds, or None")

    @property
    def check_interval(self) -> float:
        """How often the media is looked at: a quarter of the warning time, at most 1 s."""
        return min(1.0, self.no_media_warning / 4)


@dataclass(frozen=True, kw_only=True)
class MediaConfig:
    """Everything a media session needs besides the SDP.

    Attributes:
        ice: ICE gathering settings.
        codecs: audio codecs in order of preference, by SDP name (``"opus"``,
            ``"G722"``, ``"PCMU"``, ``"PCMA"``); matched case-insensitively.
        telephone_event: offer and accept RFC 4733 ``telephone-event``.
        dtmf_duration_ms: default duration of each RFC 4733 digit (40-1000 ms).
        dtmf_gap_ms: default pause between RFC 4733 digits (at least 40 ms).
        dtmf_volume: RFC 4733 volume field, the tone power in -dBm0 (0-63).
        media_path: ``"lean"`` (default) receives audio through our own jitter buffer
            and inline decoders (:mod:`exotel_voice.media.jitter`); ``"aiortc"`` uses
            aiortc's receiver (fixed 80 ms buffer, a decoder thread per call).
        liveness: when a call's media counts as dead (:class:`LivenessConfig`).
        quality: a call's periodic stats event and quality warnings, with their thresholds
            (:class:`~exotel_voice.media.quality.QualityConfig`).
    """

    ice: IceConfig = field(default_factory=IceConfig)
    codecs: list[str] = field(default_factory=lambda: ["opus", "PCMU", "PCMA"])
    telephone_event: bool = True
    dtmf_duration_ms: int = 100
    dtmf_gap_ms: int = 70
    dtmf_volume: int = 10
    media_path: Literal["lean", "aiortc"] = "lean"
    liveness: LivenessConfig = field(default_factory=LivenessConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)

    def __post_init__(self) -> None:
        if not self.codecs:
            raise ConfigurationError("codecs", "at least one codec is needed")
        known = {c.lower() for c in SUPPORTED_CODECS}
        for codec in self.codecs:
            if codec.lower() not in known:
                raise ConfigurationError(
                    "codecs", f"unsupported codec {codec!r}; choose from {SUPPORTED_CODECS}"
                )
        check_dtmf_timing(self.dtmf_duration_ms, self.dtmf_gap_ms)
        if not 0 <= self.dtmf_volume <= 63:
            raise ConfigurationError("dtmf_volume", "must be within 0-63")
        if self.media_path not in ("lean", "aiortc"):
            raise ConfigurationError("media_path", "must be 'lean' or 'aiortc'")
        if not isinstance(self.liveness, LivenessConfig):
            raise ConfigurationError("liveness", "must be a LivenessConfig")
        if not isinstance(self.quality, QualityConfig):
            raise ConfigurationError("quality", "must be a QualityConfig")


def check_dtmf_timing(duration_ms: int, gap_ms: int) -> None:
    """Raise :class:`ConfigurationError` unless the DTMF timing is usable."""
    # 1000 ms keeps the 16-bit RFC 4733 duration field from overflowing at 48 kHz.
    if not 40 <= duration_ms <= 1000:
        raise ConfigurationError("dtmf_duration_ms", "must be within 40-1000 ms")
    if not 40 <= gap_ms <= 5000:
        raise ConfigurationError("dtmf_gap_ms", "must be within 40-5000 ms")
