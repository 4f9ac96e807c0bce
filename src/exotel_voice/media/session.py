"""One call's media: a :class:`MediaSession` wraps one aiortc ``RTCPeerConnection``.

Theory of operation
-------------------
The SIP layer moves SDP bodies; this module turns them into media.  The interface
is plain strings: :meth:`MediaSession.create_offer` / :meth:`~MediaSession.set_answer`
for calls we place, :meth:`~MediaSession.accept_offer` for calls we answer,
:meth:`~MediaSession.update` for a re-INVITE from the far end and
:meth:`~MediaSession.create_reoffer` for our own hold and resume.  Every SDP we
return is complete: aiortc gathers all candidates first (no trickle ICE), within
:attr:`IceConfig.gather_timeout`.

Sending: with the default lean media path the shared
:class:`~exotel_voice.media.sender.SendClock` pulls a frame from the current
:class:`~exotel_voice.media.sources.AudioSource` every 20 ms (silence if it has
none, or while muted), encodes it (Opus on the clock's worker thread) and sends it;
with ``media_path="aiortc"`` aiortc's sender pulls the same frames from a track.
Receiving: decrypted audio packets go through a jitter buffer and decoder
(:mod:`exotel_voice.media.jitter`) to every attached
:class:`~exotel_voice.media.sinks.AudioSink`, or, with ``media_path="aiortc"``, one
task reads decoded frames from aiortc.  RFC 4733 DTMF rides on the RTP path through
:mod:`exotel_voice.media.dtmf`, whose :class:`~exotel_voice.media.dtmf.RtpTap` is
where packets are taken off (and put on) aiortc's transport.

States (:class:`MediaState`)::

    NEW --create_offer--> OFFERING --set_answer(provisional=True)--> EARLY
     |                       |                                         |
     |                       +--------------set_answer----------------+--> ACTIVE
     +--accept_offer------------------------------------------------------> ACTIVE
    ACTIVE --create_reoffer--> OFFERING --set_answer--> ACTIVE ;  ACTIVE --update--> ACTIVE
    OFFERING (a re-offer) --rollback--> ACTIVE
    any --close--> CLOSED

Re-offers keep what was negotiated
----------------------------------
aiortc's ``createOffer()`` starts from its own codec and RTP header-extension
tables every time, so a re-offer would renumber payload types and
``a=extmap`` ids.  RFC 8285 §6 forbids changing an extension's id within a
session (Chromium answers 488 "RTP extension ID reassignment not supported") and
RFC 3264 §8.3.2 forbids changing a dynamic payload type's mapping.  Each
completed exchange therefore records a :class:`_Negotiated` snapshot, and every
re-offer offers exactly its codecs and extensions with their ids.

Rollback
--------
aiortc has no JSEP rollback.  When the far end rejects our re-offer (488, 491
glare, timeout), :meth:`MediaSession.rollback` returns aiortc's peer connection
to ``stable`` (two name-mangled attributes, see docs/media.md) and restores the
snapshot: local description, direction, codecs, extensions.  Until then, media
keeps flowing as last negotiated (RFC 3264 §8: the old parameters hold until the
answer arrives), so DTMF may be sent while a re-offer is pending.

Each method checks the state and raises :class:`~exotel_voice.exceptions.InvalidState`
naming it; aiortc failures become :class:`~exotel_voice.exceptions.MediaError`
with the original exception as ``__cause__``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import enum
import logging
import random
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription, sdp as aiortc_sdp
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..exceptions import AudioSourceError, InvalidState, MediaError
from . import _aiortc_compat as compat, _sdp
from .analysis import rms_dbfs
from .config import MediaConfig, check_dtmf_timing
from .dtmf import DtmfReceiver, DtmfSender, RtpTap, negotiated_codec, parse_digits
from .ice import (
    apply_gathering_policy,
    reachability_problem,
    restart as ice_restart,
    restart_available,
    rtc_configuration,
)
from .jitter import LeanReceiver, ReceiveStats
from .liveness import DtlsState, IceState, LivenessMonitor, MediaHealthEvent
from .pcm import FRAME_MS, Samples, frame_to_samples, samples_per_frame, samples_to_frame
from .quality_stats import CallStats
from .rtcp import RemoteView, RtcpSession, report_interval
from .sender import LeanSender, SendClock
from .sinks import AudioSink, FrameSink
from .sources import AudioSource, FrameSource, PcmFrame, SilenceSource


__all__ = ["DIRECTIONS", "MediaSession", "MediaState", "MediaStats"]

logger = logging.getLogger(__name__)

#: The SDP media directions.
DIRECTIONS = _sdp.DIRECTIONS

# Sample rate the outgoing track produces for each codec (G.722's RTP clock is
# 8 kHz but it encodes 16 kHz audio).
_CODEC_RATES = {"opus": 48000, "g722": 16000, "pcmu": 8000, "pcma": 8000}


class MediaState(enum.Enum):
    """Lifecycle of a :class:`MediaSession`."""

    NEW = "new"
    OFFERING = "offering"
    EARLY = "early"
    ACTIVE = "active"
    CLOSED = "closed"


@dataclass(frozen=True)
class MediaStats:
    """A snapshot of a session's RTP counters.

    Byte counts are RTP payload bytes (after the 12-byte fixed header) before SRTP.
    Telephone-event packets are included in the packet and byte counts.
    """

    codec: str | None
    clock_rate: int | None
    packets_sent: int
    bytes_sent: int
    packets_received: int
    bytes_received: int
    dtmf_sent: int
    dtmf_received: int
    connection_state: str


@dataclass(frozen=True)
class _Negotiated:
    """What the last completed offer/answer exchange settled (see "Rollback" above)."""

    direction: str
    codecs: list[Any]
    header_extensions: list[Any]
    local_sdp: str | None
    local_events: list[_sdp.PayloadFormat]


class _OutboundTrack(MediaStreamTrack):
    """The one audio track aiortc sends: paced at 20 ms, pulling from a source."""

    kind = "audio"

    def __init__(self, source: AudioSource) -> None:
        super().__init__()
        self.source = source
        self.muted = False
        #: Our hold (privacy): nothing from ``source`` is sent, only ``hold_source`` or silence.
        self.held = False
        self.hold_source: AudioSource | None = None
        self.sample_rate = 48000
        self._start: float | None = None
        self._elapsed = 0.0
        self._pts = 0
        self._source_failed = False
        #: With the lean send path aiortc's sender never gets a frame from us.
        self.parked = False
        #: Frames handed to aiortc's sender (the packet count when there is no RtpTap).
        self.frames_sent = 0
        #: The last 20 ms sent (for the outgoing audio level; measured only when asked).
        self.last_samples: Samples | None = None

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self.parked:
            await loop.create_future()  # until aiortc's sender cancels its task
        now = loop.time()
        if self._start is None:
            self._start = now
        else:
            self._elapsed += FRAME_MS / 1000
            delay = self._start + self._elapsed - now
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.1:
                # The loop stalled: carry on from now rather than sending a burst.
                self._start = now - self._elapsed
        rate = self.sample_rate
        samples = self.next_samples(rate)
        frame = samples_to_frame(samples, rate, self._pts)
        self._pts += samples.size
        self.frames_sent += 1
        return frame

    def next_samples(self, rate: int) -> Samples:
        """The next 20 ms to send at ``rate``: the source's, or silence (muted, nothing ready).

        While held the source is still read (a microphone's buffer keeps moving, as when
        muted) but what goes out is the hold source's audio, or silence: never the source's.
        """
        n = samples_per_frame(rate)
        samples = self._read(self.source, rate)
        if self.held:
            music = self.hold_source
            samples = self._read(music, rate) if music is not None else None
        elif self.muted:
            samples = None
        if samples is None:
            samples = np.zeros(n, dtype=np.int16)
        elif samples.size != n:
            samples = np.resize(samples, n) if samples.size else np.zeros(n, dtype=np.int16)
        self.last_samples = samples
        return samples

    def _read(self, source: AudioSource, rate: int) -> Samples | None:
        try:
            return source.read(rate)
        except Exception:
            # aiortc stops sending for good if recv() raises, so contain it here.
            if not self._source_failed:
                logger.exception("! audio source %r failed; sending silence", source)
                self._source_failed = True
            return None


class MediaSession:
    """The media of one call: offer/answer, audio in and out, DTMF, hold and mute.

    Construct it inside a running event loop.  All configuration is keyword-only.

    Args:
        config: ICE, codec and DTMF settings; defaults to :class:`MediaConfig()`.
        source: what to send; silence by default.  See :meth:`set_source`.
        logger: logger to use instead of ``exotel_voice.media.session``.
    """

    def __init__(
        self,
        *,
        config: MediaConfig | None = None,
        source: AudioSource | None = None,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self.config = config or MediaConfig()
        self.logger = logger or logging.getLogger(__name__)
        self._state = MediaState.NEW
        self._pc = RTCPeerConnection(rtc_configuration(self.config.ice))
        self._track = _OutboundTrack(source or SilenceSource())
        self._source_started = False
        self._transceiver = self._pc.addTransceiver(self._track, direction="sendrecv")
        self._preferences = self._codec_preferences()
        self._transceiver.setCodecPreferences(self._preferences)
        #: ``config.media_path``, unless aiortc's internals the lean path needs are missing
        #: or turned off (then aiortc's own; see media/_aiortc_compat.py).
        self._media_path = self.config.media_path if compat.FEATURES.lean_path else "aiortc"
        self._dtmf_sender = DtmfSender(volume=self.config.dtmf_volume)
        self._dtmf_receiver = DtmfReceiver(self._on_digit)
        self._dtmf_received_count = 0
        self._frames_received = 0
        self._dtmf_listeners: list[Callable[[str], None]] = []
        self._tap: RtpTap | None = None
        self._sinks: list[AudioSink] = []
        self._receive_task: asyncio.Task[None] | None = None
        self._receive_track: Any = None
        self._lean: LeanReceiver | None = None
        self._lean_sender: LeanSender | None = None
        self._send_clock: SendClock | None = None
        if self._media_path == "lean":
            _skip_aiortc_decoder(self._transceiver.receiver)
            self._track.parked = True
            self._lean_sender = LeanSender(
                self._transceiver.sender.transport,
                self._transceiver.sender,
                self._track.next_samples,
                self._can_send,
            )
            _watch_send_parameters(self._transceiver.sender, self._on_send_parameters)
        self._local_sdp: str | None = None
        self._remote_sdp: str | None = None
        self._local_events: list[_sdp.PayloadFormat] = []
        #: The last completed exchange; re-offers keep it, rollback restores it.
        self._negotiated: _Negotiated | None = None
        #: ``(username, sess-id, version)`` of the last ``o=`` line we sent.
        self._origin: tuple[str, str, int] | None = None
        self._remote_events: list[_sdp.PayloadFormat] = []
        self._lock = asyncio.Lock()
        self._closed = asyncio.Event()
        self._ice_problem: str | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._health_listeners: list[Callable[[MediaHealthEvent], None]] = []
        #: The lean path's RTCP (None on aiortc's path, where aiortc's own RTCP runs).
        self._rtcp: RtcpSession | None = None
        self._rtcp_task: asyncio.Task[None] | None = None
        self._cname: str | None = None
        #: The last 20 ms received (for the incoming audio level).
        self._last_received: Samples | None = None

    #: Minimum interval between our RTCP reports, seconds (RFC 3550 §6.2: 5 s; the first
    #: report comes after half of it, each randomised; see :mod:`exotel_voice.media.rtcp`).
    #: Set it on the instance before the first negotiation to change it.
    rtcp_interval: float = 5.0

    def __repr__(self) -> str:
        return f"<MediaSession state={self._state.name} codec={self.codec}>"

    # -- state ---------------------------------------------------------------------

    @property
    def state(self) -> MediaState:
        """The session's :class:`MediaState`."""
        return self._state

    def _set_state(self, state: MediaState) -> None:
        if state is not self._state:
            self.logger.debug("= media %s -> %s", self._state.name, state.name)
            self._state = state

    def _check_state(self, action: str, *allowed: MediaState) -> None:
        if self._state not in allowed:
            raise InvalidState(f"cannot {action} in media state {self._state.name}")

    @property
    def codec(self) -> str | None:
        """The negotiated audio codec name (``"opus"``, ``"PCMU"``...), once negotiated."""
        codec = negotiated_codec(self._codecs()) if self._remote_sdp else None
        return codec[0] if codec else None

    @property
    def local_direction(self) -> str:
        """The direction we ask for in our SDP: ``sendrecv``, ``sendonly``, ..."""
        return str(self._transceiver.direction)

    @property
    def remote_direction(self) -> str:
        """The direction in the latest remote SDP, as the far end states it.

        ``"sendonly"`` or ``"inactive"`` from the far end means it put us on hold.
        ``"inactive"`` until a remote SDP has been applied.
        """
        if self._remote_sdp is None:
            return "inactive"
        return _sdp.audio_direction(self._remote_sdp)

    @property
    def remote_hold(self) -> bool:
        """Whether the far end has put us on hold (its SDP says sendonly or inactive).

        ``c=0.0.0.0`` is not treated as hold: WebRTC endpoints use it routinely.
        """
        return self._remote_sdp is not None and self.remote_direction in ("sendonly", "inactive")

    @property
    def ice_problem(self) -> str | None:
        """Why ICE cannot succeed, as far as the SDPs tell, or ``None``.

        Set when our offer is made (no local candidate) and when an exchange completes (no
        candidate pair of the same family and scope, e.g. only 127.0.0.1 here and public
        addresses at the far end: :func:`~exotel_voice.media.ice.reachability_problem`);
        each new problem is logged once as a WARNING. No check is sent to find out.
        """
        return self._ice_problem

    def _check_reachability(self) -> None:
        problem = reachability_problem(self._local_sdp or "", self._remote_sdp)
        if problem is not None and problem != self._ice_problem:
            self.logger.warning("! media: %s", problem)
        self._ice_problem = problem

    @property
    def telephone_event(self) -> bool:
        """Whether RFC 4733 DTMF can be sent to the far end."""
        return self._dtmf_sender.payload_type is not None

    # -- offer / answer ------------------------------------------------------------

    async def create_offer(self) -> str:
        """Create the initial SDP offer (complete, candidates included)."""
        async with self._lock:
            self._check_state("create an offer", MediaState.NEW)
            sdp = await self._make_offer()
            self._set_state(MediaState.OFFERING)
            return sdp

    async def create_reoffer(self, direction: str = "sendrecv") -> str:
        """Create a re-INVITE offer: ``"sendonly"`` to hold, ``"sendrecv"`` to resume.

        The offer keeps the payload types and RTP header-extension ids negotiated so
        far (RFC 3264 §8.3.2, RFC 8285 §6) and the ``o=`` session id (version + 1).
        Apply the far end's answer with :meth:`set_answer`; if the far end rejects
        the re-INVITE, call :meth:`rollback`.  A re-offer that is still pending
        (never answered nor rolled back) is discarded first, as :meth:`rollback`
        would.

        Raises:
            ValueError: ``direction`` is not an SDP direction.
            InvalidState: no exchange has completed yet (or the session is closed).
            MediaError: aiortc failed; the session is left as it was.
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}")
        async with self._lock:
            if self._state is MediaState.OFFERING and self._negotiated is not None:
                self._discard_pending_offer()
            self._check_state("create a re-offer", MediaState.ACTIVE)
            self._transceiver.direction = direction
            try:
                sdp = await self._make_offer()
            except BaseException:
                self._discard_pending_offer()
                raise
            self._set_state(MediaState.OFFERING)
            return sdp

    async def restart_ice(self) -> asyncio.Future[str | None]:
        """Arm an ICE restart (RFC 8445 §9) on the host's addresses of now.

        New ICE credentials and candidates are gathered at once; the next offer
        (:meth:`create_reoffer`, in a re-INVITE) carries them with the same DTLS
        fingerprint and SRTP keys, and the connectivity checks start when its answer is
        applied (:meth:`set_answer`).  Media stays on the current pair until a new one is
        selected.  See :mod:`exotel_voice.media.ice`.

        Returns:
            A future resolved with ``None`` once media has moved to the new pair, or with
            the reason the restart failed.

        Raises:
            InvalidState: no exchange has completed yet, or the session is closed.
            MediaError: ICE restart is unavailable (the aiortc internals it needs are
                missing, or ``EXOTEL_VOICE_AIORTC_COMPAT=off``), or the media connection was
                never established.
        """
        async with self._lock:
            if self._negotiated is None or self._state is MediaState.CLOSED:
                raise InvalidState(f"cannot restart ICE in media state {self._state.name}")
            if not restart_available():
                raise MediaError(
                    "ICE restart is unavailable: the aiortc internals it needs are missing or "
                    "turned off (see EXOTEL_VOICE_AIORTC_COMPAT in docs/media.md)"
                )
            outcomes = await ice_restart(self._pc, self.config.ice)
            if not outcomes:
                raise MediaError("cannot restart ICE: the media connection was never established")
            return outcomes[0]

    async def rollback(self) -> bool:
        """Abandon our pending re-offer and return to the last negotiated state.

        Call it when the far end rejects our re-INVITE (488, 491 glare, 408/timeout,
        any non-2xx).  The direction, codecs, header extensions and local
        description in force before :meth:`create_reoffer` are restored, and the
        session is ``ACTIVE`` again: it can re-offer (the RFC 3261 §14.1 glare
        retry), answer the far end's re-INVITE with :meth:`update` and send DTMF.
        Media never stopped: it kept following the last negotiation meanwhile.

        Returns:
            ``True`` if a pending re-offer was discarded, ``False`` if there was
            none (the session is already ``ACTIVE``).

        Raises:
            InvalidState: the pending offer is the initial one (nothing to go back
                to), or the session is ``NEW``, ``EARLY`` or closed.
        """
        async with self._lock:
            if self._state is MediaState.ACTIVE:
                return False
            self._check_state("roll back", MediaState.OFFERING)
            if self._negotiated is None:
                raise InvalidState("cannot roll back the initial offer")
            self._discard_pending_offer()
            self.logger.debug("= media re-offer rolled back (direction %s)", self.local_direction)
            return True

    def _discard_pending_offer(self) -> None:
        """Undo a local re-offer (aiortc has no rollback; see the module docstring)."""
        negotiated = self._negotiated
        if negotiated is None:
            return
        # Without aiortc's internals, aiortc stays in have-local-offer (see
        # media/_aiortc_compat.py, "rollback"); our own state goes back regardless.
        compat.discard_local_offer(self._pc)
        transceiver = self._transceiver
        transceiver.direction = negotiated.direction
        compat.restore_negotiated(
            transceiver, copy.deepcopy(negotiated.codecs), list(negotiated.header_extensions)
        )
        self._local_sdp = negotiated.local_sdp
        self._local_events = list(negotiated.local_events)
        self._use_negotiated_extensions()
        if self._state is MediaState.OFFERING:
            self._set_state(MediaState.ACTIVE)

    async def set_answer(self, sdp: str, *, provisional: bool = False) -> None:
        """Apply the far end's answer to our offer.

        For early media pass the SDP of a 183 with ``provisional=True``: media starts
        flowing at once.  The 200 OK's SDP must then be the same session (same
        ``o=`` line), as RFC 3261 §13.2.1 requires; it is accepted without
        renegotiating.  A different final answer raises :class:`MediaError`, since
        aiortc cannot apply a second answer.
        """
        async with self._lock:
            if self._state is MediaState.EARLY:
                if _sdp.origin(sdp) != _sdp.origin(self._remote_sdp or ""):
                    raise MediaError(
                        "the final answer differs from the early-media answer; "
                        "a new media session is needed"
                    )
                if not provisional:
                    self._set_state(MediaState.ACTIVE)
                return
            self._check_state("apply an answer", MediaState.OFFERING)
            _sdp.check_remote(sdp)
            await self._set_remote(sdp, "answer")
            self._remote_events = _sdp.telephone_events(sdp) if self._local_events else []
            self._after_negotiation()
            self._set_state(MediaState.EARLY if provisional else MediaState.ACTIVE)

    async def accept_offer(self, sdp: str) -> str:
        """Answer the far end's initial offer; returns our SDP answer."""
        async with self._lock:
            self._check_state("accept an offer", MediaState.NEW)
            answer = await self._answer(sdp)
            self._set_state(MediaState.ACTIVE)
            return answer

    async def update(self, sdp: str) -> str:
        """Answer a re-INVITE offer from the far end (hold, resume...); returns our answer.

        After it, :attr:`remote_direction` and :attr:`remote_hold` describe the offer.
        Our own hold (see :meth:`create_reoffer`) is kept in the answer.

        Raises:
            InvalidState: not ``ACTIVE``; in particular while our own re-offer is
                pending (glare: the SIP layer answers 491; after our re-INVITE was
                rejected, :meth:`rollback` first).
        """
        async with self._lock:
            self._check_state("update", MediaState.ACTIVE)
            return await self._answer(sdp)

    async def _make_offer(self) -> str:
        await self._start_source()
        async with self._mapped("create an offer"):
            offer = await self._pc.createOffer()
            if self._negotiated is not None:
                offer = self._keep_negotiated(offer)
            apply_gathering_policy(self._pc, self.config.ice)
            await self._pc.setLocalDescription(offer)
        sdp = self._with_opus_fec(str(self._pc.localDescription.sdp))
        if self.config.telephone_event and compat.FEATURES.rtp_tap:
            if not self._local_events:
                events = []
                if any(c.lower() == "opus" for c in self.config.codecs):
                    pt = _sdp.free_payload_type(sdp, 110)
                    events.append(_sdp.PayloadFormat(pt, "telephone-event", 48000))
                    sdp = _sdp.add_telephone_events(sdp, events)
                pt = _sdp.free_payload_type(sdp, 101)
                events.append(_sdp.PayloadFormat(pt, "telephone-event", 8000))
                self._local_events = events
            sdp = _sdp.add_telephone_events(sdp, self._local_events)
        sdp = self._stamp_origin(sdp)
        self._local_sdp = sdp
        self._log_sdp("local offer", sdp)
        if self._remote_sdp is None:
            self._check_reachability()
        return sdp

    def _keep_negotiated(self, offer: Any) -> Any:
        """aiortc's re-offer with the negotiated codecs and header-extension ids.

        ``createOffer()`` reset the transceiver's codecs and extensions from
        aiortc's tables; put the negotiated ones back (they are also what the
        answer will be matched against) and rewrite the audio section to match.
        """
        negotiated = self._negotiated
        assert negotiated is not None
        transceiver = self._transceiver
        codecs = copy.deepcopy(negotiated.codecs)
        extensions = list(negotiated.header_extensions)
        if not compat.restore_negotiated(transceiver, codecs, extensions):
            return offer  # aiortc's own re-offer (see media/_aiortc_compat.py, "reoffer")
        description = aiortc_sdp.SessionDescription.parse(offer.sdp)
        for media in description.media:
            if media.kind == transceiver.kind and media.rtp.muxId == transceiver.mid:
                media.fmt = [codec.payloadType for codec in codecs]
                media.rtp.codecs = codecs
                media.rtp.headerExtensions = extensions
        return RTCSessionDescription(sdp=str(description), type="offer")

    def _stamp_origin(self, sdp: str) -> str:
        """Keep our first ``o=`` line's username and session id; bump the version.

        RFC 3264 §8: a later SDP in the session has the same origin except the
        version, which grows by one when the description changed.  aiortc makes a
        new session id for every description.
        """
        origin = _sdp.origin(sdp)
        if origin is None:
            return sdp
        if self._origin is None:
            if origin[2].isdigit():
                self._origin = (origin[0], origin[1], int(origin[2]))
            return sdp
        username, session_id, version = self._origin
        if self._local_sdp is None or _sdp.without_origin(sdp) != _sdp.without_origin(
            self._local_sdp
        ):
            version += 1
        self._origin = (username, session_id, version)
        return _sdp.with_origin(sdp, username, session_id, version)

    async def _answer(self, offer: str) -> str:
        _sdp.check_remote(offer)
        await self._start_source()
        await self._set_remote(offer, "offer")
        async with self._mapped("create an answer"):
            answer = await self._pc.createAnswer()
            apply_gathering_policy(self._pc, self.config.ice)
            await self._pc.setLocalDescription(answer)
        sdp = self._with_opus_fec(str(self._pc.localDescription.sdp))
        rfc4733 = self.config.telephone_event and compat.FEATURES.rtp_tap
        offered = _sdp.telephone_events(offer) if rfc4733 else []
        self._local_events = self._remote_events = offered
        sdp = _sdp.add_telephone_events(sdp, offered)
        sdp = self._stamp_origin(sdp)
        self._local_sdp = sdp
        self._after_negotiation()
        self._log_sdp("local answer", sdp)
        return sdp

    async def _set_remote(self, sdp: str, kind: str) -> None:
        self._log_sdp(f"remote {kind}", sdp)
        async with self._mapped(f"apply the remote {kind}"):
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        self._remote_sdp = sdp

    def _after_negotiation(self) -> None:
        codecs = self._codecs()
        codec = negotiated_codec(codecs)
        if codec is not None:
            name, clock, _ = codec
            self._track.sample_rate = _CODEC_RATES.get(name.lower(), clock)
            events = self._remote_events
            chosen = next((e for e in events if e.clock_rate == clock), None)
            chosen = chosen or (events[0] if events else None)
            self._dtmf_sender.configure(
                payload_type=chosen.payload_type if chosen else None,
                event_clock=chosen.clock_rate if chosen else clock,
                audio_clock=clock,
            )
        self._dtmf_receiver.payload_types = {
            e.payload_type for e in self._local_events + self._remote_events
        }
        transport = self._transceiver.sender.transport
        if compat.FEATURES.rtp_tap and (self._tap is None or self._tap.transport is not transport):
            if self._tap is not None:
                self._tap.detach()
            self._tap = RtpTap(
                transport,
                ssrc=compat.sender_ssrc(self._transceiver.sender),
                sender=self._dtmf_sender,
                receiver=self._dtmf_receiver,
            )
        if self._media_path == "lean" and self._tap is not None:
            audio = _audio_codecs(codecs)
            if self._lean is None:
                self._lean = LeanReceiver(self._deliver, audio)
            else:
                self._lean.configure(audio)
            self._tap.media = self._lean.handle
            self._tap.receive_directly()
            self._start_rtcp(self._tap, codec, audio)
            if self._lean_sender is not None:
                self._lean_sender.send_now = self._tap.send_now
            if codec is not None and self._lean_sender is not None:
                self._lean_sender.configure(*codec)
                if self._send_clock is None:
                    self._send_clock = SendClock.for_loop()
                    self._send_clock.add(self._lean_sender)
        else:
            track = self._transceiver.receiver.track
            if track is not None and track is not self._receive_track:
                self._receive_track = track
                self._receive_task = asyncio.create_task(self._receive_loop(track))
        self._negotiated = _Negotiated(
            direction=str(self._transceiver.direction),
            codecs=copy.deepcopy(codecs),
            header_extensions=compat.negotiated_header_extensions(self._pc, self._transceiver),
            local_sdp=self._local_sdp,
            local_events=list(self._local_events),
        )
        self._use_negotiated_extensions()
        self._log_negotiated(codec)
        self._check_reachability()

    def _use_negotiated_extensions(self) -> None:
        """Give the lean sender the negotiated header-extension ids (RFC 8285 §6)."""
        if self._lean_sender is not None:
            self._lean_sender.use_header_extensions(
                self._transceiver.mid,
                compat.negotiated_header_extensions(self._pc, self._transceiver),
            )

    def _codecs(self) -> list[Any]:
        """The negotiated codecs; the first is the one we send with."""
        return compat.negotiated_codecs(self._pc, self._transceiver, self._preferences)

    def _log_negotiated(self, codec: tuple[str, int, int] | None) -> None:
        self.logger.debug(
            "= media codec=%s local=%s remote=%s dtmf_pt=%s",
            codec[0] if codec else None,
            self.local_direction,
            self.remote_direction,
            self._dtmf_sender.payload_type,
        )

    @contextlib.asynccontextmanager
    async def _mapped(self, action: str) -> AsyncIterator[None]:
        try:
            yield
        except (InvalidState, MediaError):
            raise
        except Exception as exc:
            raise MediaError(f"cannot {action}: {type(exc).__name__}: {exc}") from exc

    def _log_sdp(self, what: str, sdp: str) -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug("%s %s\n%s", "<" if "remote" in what else ">", what, _sdp.redact(sdp))

    def _with_opus_fec(self, sdp: str) -> str:
        """Our SDP announcing ``useinbandfec=1`` for Opus on the lean path, which decodes
        the far end's in-band FEC (aiortc's decoder does not: its path says nothing)."""
        return _sdp.with_opus_fec(sdp) if self._media_path == "lean" else sdp

    def _codec_preferences(self) -> list[Any]:
        capabilities = RTCRtpSender.getCapabilities("audio").codecs
        preferences = []
        for name in self.config.codecs:
            for capability in capabilities:
                if capability.name.lower() == name.lower() and capability not in preferences:
                    preferences.append(capability)
        return preferences

    # -- sending -------------------------------------------------------------------

    @property
    def source(self) -> AudioSource:
        """The source currently being sent."""
        return self._track.source

    async def set_source(self, source: AudioSource) -> AudioSource:
        """Send from ``source`` from the next 20 ms frame on; returns the previous source.

        The previous source is stopped (its devices closed).  No renegotiation.

        Raises:
            AudioSourceError: ``source`` cannot be started; the previous one goes on.
        """
        previous = self._track.source
        if source is previous:
            return previous
        if self._source_started:
            await _start(source)
        self._track.source = source
        if self._source_started:
            await previous.stop()
        return previous

    async def play(self, source: AudioSource) -> None:
        """Send ``source`` until it finishes, then go back to the previous source.

        Returns early if the session closes.
        """
        previous = await self.set_source(source)
        try:
            finished = asyncio.ensure_future(source.wait_finished())
            closed = asyncio.ensure_future(self._closed.wait())
            try:
                await asyncio.wait({finished, closed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                finished.cancel()
                closed.cancel()
        finally:
            if not self._closed.is_set() and self._track.source is source:
                await self.set_source(previous)

    async def play_frames(
        self,
        frames: Iterable[PcmFrame] | AsyncIterable[PcmFrame],
        *,
        sample_rate: int = 16000,
    ) -> None:
        """Send PCM frames (int16 arrays or bytes at ``sample_rate``) in real time.

        Returns once they have all been sent; then the previous source resumes.
        """
        await self.play(FrameSource(frames, sample_rate=sample_rate))

    def set_muted(self, muted: bool) -> None:
        """Mute or unmute: when muted the far end hears silence; packets keep flowing."""
        self._track.muted = muted

    @property
    def muted(self) -> bool:
        """Whether :meth:`set_muted` muted the session."""
        return bool(self._track.muted)

    async def set_held(self, held: bool, *, music: AudioSource | None = None) -> None:
        """Hold privacy: while ``held``, nothing from :attr:`source` reaches the far end.

        The far end hears ``music`` (started here, stopped when the hold ends or the
        session closes) or, without it, silence; packets keep flowing either way, as with
        :meth:`set_muted`, which is independent (a muted call stays muted after the hold,
        and hold music plays even while muted).  No renegotiation: the call layer sends the
        ``sendonly`` re-offer (:meth:`create_reoffer`).  Calling it again while held
        switches the music.

        Raises:
            AudioSourceError: ``music`` cannot be started; nothing changed.
        """
        track = self._track
        previous = track.hold_source
        if held:
            if music is not None and music is not previous:
                await _start(music)
            track.hold_source = music
            track.held = True
        else:
            track.held = False
            track.hold_source = None
        if previous is not None and previous is not track.hold_source:
            await previous.stop()

    @property
    def held(self) -> bool:
        """Whether :meth:`set_held` holds our audio back (silence or hold music is sent)."""
        return bool(self._track.held)

    async def _start_source(self) -> None:
        """Start the source before the first offer or answer.

        Raises:
            AudioSourceError: it cannot be started (a missing or refused device ...); the
                session is left as it was, and a later offer or answer tries again.
        """
        if not self._source_started:
            await _start(self._track.source)
            self._source_started = True

    # -- receiving -----------------------------------------------------------------

    def add_sink(self, sink: AudioSink) -> None:
        """Deliver every received frame to ``sink`` from now on."""
        if sink not in self._sinks:
            self._sinks.append(sink)

    def remove_sink(self, sink: AudioSink) -> None:
        """Stop delivering to ``sink`` and close it."""
        if sink in self._sinks:
            self._sinks.remove(sink)
        sink.close()

    def received_frames(
        self, *, sample_rate: int = 16000, max_frames: int = 50
    ) -> AsyncIterator[Samples]:
        """Received audio as 20 ms int16 frames at ``sample_rate``, from this call on.

        ``async for frame in session.received_frames(): ...`` ends when the session
        closes.  A consumer more than ``max_frames`` behind loses the oldest frames.
        """
        sink = FrameSink(sample_rate=sample_rate, max_frames=max_frames)
        self.add_sink(sink)
        return self._iterate_sink(sink)

    async def _iterate_sink(self, sink: FrameSink) -> AsyncIterator[Samples]:
        try:
            async for frame in sink:
                yield frame
        finally:
            self.remove_sink(sink)

    async def _receive_loop(self, track: Any) -> None:
        # media_path="aiortc": frames come out of aiortc's receiver and decoder thread.
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self._frames_received += 1
            self._deliver(*frame_to_samples(frame))

    def _on_send_parameters(self, parameters: Any) -> None:
        rtcp = getattr(parameters, "rtcp", None)
        self._cname = getattr(rtcp, "cname", None) or self._cname
        if self._rtcp is not None and self._rtcp.cname is None:
            self._rtcp.cname = self._cname
        if self._lean_sender is not None:
            self._lean_sender.set_header_extensions(parameters)

    def _start_rtcp(
        self, tap: RtpTap, codec: tuple[str, int, int] | None, audio: dict[int, tuple[str, int]]
    ) -> None:
        """Lean path: our RTCP takes over from aiortc's sender reports (see media/rtcp.py)."""
        if self._rtcp is None:
            self._rtcp = RtcpSession(tap.ssrc, self._cname)
            self._rtcp.on_remote_report = self._far_end_report
        tap.rtcp = self._rtcp
        tap.receive_clocks = {pt: clock for pt, (_, clock) in audio.items()}
        if codec is not None:
            self._rtcp.set_send_clock(codec[1])
        if self._rtcp_task is None:
            self._rtcp_task = asyncio.get_running_loop().create_task(self._rtcp_loop())

    def _far_end_report(self, view: RemoteView) -> None:
        """The far end reported on our stream: our Opus encoder's in-band FEC follows the
        loss it saw (media/opus.py, adaptive FEC; on aiortc's path aiortc encodes)."""
        if self._lean_sender is not None:
            self._lean_sender.far_end_loss(view.fraction_lost)

    async def _rtcp_loop(self) -> None:
        loop = asyncio.get_running_loop()
        rng = random.Random()
        initial = True
        while not self._closed.is_set():
            await asyncio.sleep(report_interval(rng, initial=initial, minimum=self.rtcp_interval))
            tap, rtcp = self._tap, self._rtcp
            if tap is None or rtcp is None or tap.transport.state != "connected":
                continue
            initial = False
            try:
                await tap.send_rtcp(rtcp.build_report(time.time(), loop.time()))
            except ConnectionError:
                pass
            except Exception:
                self.logger.exception("! media: cannot send our RTCP report")

    def _can_send(self) -> bool:
        return self._transceiver.currentDirection in ("sendrecv", "sendonly")

    def _deliver(self, samples: Samples, rate: int) -> None:
        self._last_received = samples
        for sink in list(self._sinks):
            try:
                sink.write(samples, rate)
            except Exception:
                self.logger.exception("! audio sink %r failed; detaching it", sink)
                self.remove_sink(sink)

    def receive_stats(self) -> ReceiveStats | None:
        """Jitter-buffer counters of the lean receive path (``None`` with ``media_path="aiortc"``
        or before negotiation): frames decoded and concealed, late and lost packets, jitter.
        """
        return self._lean.stats() if self._lean is not None else None

    # -- DTMF ----------------------------------------------------------------------

    async def send_dtmf(
        self, digits: str, *, duration_ms: int | None = None, gap_ms: int | None = None
    ) -> None:
        """Send ``digits`` as RFC 4733 telephone-events; returns once all were sent.

        Raises:
            InvalidDTMF: a character outside ``0-9``, ``A-D``, ``*``, ``#`` (nothing is sent).
            InvalidState: the session is not negotiated.
            MediaError: telephone-event was not negotiated, we are not sending
                (held with ``recvonly``/``inactive``), or no audio packets flowed.
        """
        parsed = parse_digits(digits)
        duration = self.config.dtmf_duration_ms if duration_ms is None else duration_ms
        gap = self.config.dtmf_gap_ms if gap_ms is None else gap_ms
        check_dtmf_timing(duration, gap)
        if not (self._state is MediaState.OFFERING and self._negotiated is not None):
            # While our re-offer is pending, media follows the last negotiation.
            self._check_state("send DTMF", MediaState.ACTIVE, MediaState.EARLY)
        if self._transceiver.currentDirection not in ("sendrecv", "sendonly"):
            direction = self._transceiver.currentDirection
            raise MediaError(f"cannot send DTMF while media is {direction}")
        if self._tap is None:
            raise MediaError(
                "RFC 4733 DTMF is not available: the aiortc internals it needs are missing "
                "or turned off (see EXOTEL_VOICE_AIORTC_COMPAT in docs/media.md); use SIP INFO"
            )
        futures = self._dtmf_sender.enqueue(parsed, duration_ms=duration, gap_ms=gap)
        budget = 2.0 + len(parsed) * (duration + gap + 100) / 1000
        try:
            await asyncio.wait_for(asyncio.gather(*futures), budget)
        except TimeoutError:
            self._dtmf_sender.cancel(MediaError("DTMF cancelled"))
            raise MediaError("DTMF was not sent: no audio packets are flowing") from None

    def add_dtmf_listener(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(digit)`` for each RFC 4733 digit received; returns a remover."""
        self._dtmf_listeners.append(callback)

        def remove() -> None:
            if callback in self._dtmf_listeners:
                self._dtmf_listeners.remove(callback)

        return remove

    def dtmf_received(self) -> AsyncIterator[str]:
        """Digits received via RFC 4733 from this call on, e.g. ``async for d in ...``.

        Ends when the session closes.
        """
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        remove = self.add_dtmf_listener(queue.put_nowait)
        if self._closed.is_set():
            queue.put_nowait(None)
        return self._iterate_digits(queue, remove)

    async def _iterate_digits(
        self, queue: asyncio.Queue[str | None], remove: Callable[[], None]
    ) -> AsyncIterator[str]:
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    return
                digit = getter.result()
                if digit is None:
                    return
                yield digit
        finally:
            closed.cancel()
            remove()

    def _on_digit(self, digit: str) -> None:
        self._dtmf_received_count += 1
        self.logger.debug("< DTMF %s", digit)
        for listener in list(self._dtmf_listeners):
            listener(digit)

    # -- stats and lifecycle -------------------------------------------------------

    def stats(self) -> MediaStats:
        """Current RTP counters and codec."""
        codec = negotiated_codec(self._codecs()) if self._remote_sdp else None
        tap = self._tap
        return MediaStats(
            codec=codec[0] if codec else None,
            clock_rate=codec[1] if codec else None,
            # Without the tap (aiortc's own path, see media/_aiortc_compat.py) packets
            # are counted as the 20 ms frames aiortc sent and delivered; bytes as 0.
            packets_sent=tap.packets_sent if tap else self._track.frames_sent,
            bytes_sent=tap.bytes_sent if tap else 0,
            packets_received=tap.packets_received if tap else self._frames_received,
            bytes_received=tap.bytes_received if tap else 0,
            dtmf_sent=self._dtmf_sender.events_sent,
            dtmf_received=self._dtmf_received_count,
            connection_state=str(self._pc.connectionState),
        )

    async def quality_stats(self) -> CallStats:
        """A :class:`~exotel_voice.media.quality_stats.CallStats` snapshot of the call's
        media quality: counters, our loss and jitter, the far end's view of our stream and
        the round-trip time from its RTCP reports, the jitter buffer, audio levels.

        On the lean path everything is ours (our RTCP, :mod:`exotel_voice.media.rtcp`);
        on aiortc's path (``media_path="aiortc"`` or ``EXOTEL_VOICE_AIORTC_COMPAT=off``)
        the counters and reports are read from aiortc's public ``getStats()`` and the
        jitter-buffer fields are ``None``.  Awaitable because ``getStats()`` is.
        """
        base = self.stats()
        sent = self._track.last_samples
        received = self._last_received
        level_out = rms_dbfs(sent) if sent is not None else None
        level_in = rms_dbfs(received) if received is not None else None
        if self._rtcp is not None:
            return self._lean_quality(base, level_in, level_out)
        return await self._aiortc_quality(base, level_in, level_out)

    def _lean_quality(
        self, base: MediaStats, level_in: float | None, level_out: float | None
    ) -> CallStats:
        rtcp = self._rtcp
        assert rtcp is not None
        reception = rtcp.reception
        remote = rtcp.remote
        jb = self.receive_stats()
        return CallStats(
            timestamp=time.time(),
            media_path="lean",
            codec=base.codec,
            clock_rate=base.clock_rate,
            packets_sent=base.packets_sent,
            bytes_sent=base.bytes_sent,
            packets_received=base.packets_received,
            bytes_received=base.bytes_received,
            packets_lost=max(0, reception.lost) if reception is not None else 0,
            fraction_lost=(
                reception.last_fraction / 256.0
                if reception is not None and rtcp.reports_sent else None
            ),
            jitter_ms=(
                reception.jitter * 1000.0 / reception.clock_rate if reception is not None
                else None
            ),
            remote_packets_lost=max(0, remote.packets_lost) if remote is not None else None,
            remote_fraction_lost=remote.fraction_lost if remote is not None else None,
            remote_jitter_ms=remote.jitter_ms if remote is not None else None,
            rtt_ms=rtcp.rtt * 1000.0 if rtcp.rtt is not None else None,
            remote_report_at=remote.at if remote is not None else None,
            jitter_buffer_delay_ms=jb.target_delay_ms if jb is not None else None,
            packets_late=jb.packets_late if jb is not None else None,
            concealed_samples=jb.concealed_samples if jb is not None else None,
            concealment_events=jb.concealment_events if jb is not None else None,
            audio_level_in_dbfs=level_in,
            audio_level_out_dbfs=level_out,
        )

    async def _aiortc_quality(
        self, base: MediaStats, level_in: float | None, level_out: float | None
    ) -> CallStats:
        clock = base.clock_rate or 8000
        found: dict[str, Any] = {}
        values: list[Any] = []
        try:
            values = list((await self._pc.getStats()).values())
        except Exception:
            self.logger.exception("! media: cannot read aiortc's statistics")
        for stats in values:
            kind = getattr(stats, "type", None)
            if isinstance(kind, str):
                found[kind] = stats
        outbound = found.get("outbound-rtp")
        inbound = found.get("inbound-rtp")
        remote = found.get("remote-inbound-rtp")

        def number(stats: Any, name: str) -> float | None:
            value = getattr(stats, name, None) if stats is not None else None
            return float(value) if isinstance(value, int | float) else None

        lost = number(inbound, "packetsLost")
        jitter = number(inbound, "jitter")  # aiortc: RTP timestamp units
        remote_lost = number(remote, "packetsLost")
        remote_fraction = number(remote, "fractionLost")  # aiortc: the 8-bit field
        remote_jitter = number(remote, "jitter")  # aiortc: RTP timestamp units
        rtt = number(remote, "roundTripTime")
        remote_at: Any = getattr(remote, "timestamp", None)
        sent_bytes = number(outbound, "bytesSent")
        return CallStats(
            timestamp=time.time(),
            media_path="aiortc",
            codec=base.codec,
            clock_rate=base.clock_rate,
            packets_sent=int(number(outbound, "packetsSent") or base.packets_sent),
            bytes_sent=int(sent_bytes) if sent_bytes is not None else base.bytes_sent,
            packets_received=int(number(inbound, "packetsReceived") or base.packets_received),
            bytes_received=base.bytes_received,
            packets_lost=max(0, int(lost)) if lost is not None else 0,
            fraction_lost=None,
            jitter_ms=jitter * 1000.0 / clock if jitter is not None else None,
            remote_packets_lost=max(0, int(remote_lost)) if remote_lost is not None else None,
            remote_fraction_lost=remote_fraction / 256.0 if remote_fraction is not None else None,
            remote_jitter_ms=remote_jitter * 1000.0 / clock if remote_jitter is not None else None,
            rtt_ms=rtt * 1000.0 if rtt is not None else None,
            remote_report_at=(
                float(remote_at.timestamp()) if hasattr(remote_at, "timestamp") else None
            ),
            jitter_buffer_delay_ms=None,
            packets_late=None,
            concealed_samples=None,
            concealment_events=None,
            audio_level_in_dbfs=level_in,
            audio_level_out_dbfs=level_out,
        )

    @property
    def connection_state(self) -> str:
        """aiortc's state: ``new``, ``connecting``, ``connected``, ``failed`` or ``closed``."""
        return str(self._pc.connectionState)

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Wait until ICE and DTLS are up.

        Raises:
            MediaError: the connection failed, closed, or took longer than ``timeout``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        changed = asyncio.Event()
        self._pc.on("connectionstatechange", changed.set)
        try:
            while self._pc.connectionState != "connected":
                if self._pc.connectionState in ("failed", "closed"):
                    raise MediaError(f"media connection {self._pc.connectionState}")
                changed.clear()
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise MediaError("media connection timed out")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), remaining)
        finally:
            self._pc.remove_listener("connectionstatechange", changed.set)

    # -- liveness ------------------------------------------------------------------

    @property
    def ice_state(self) -> IceState:
        """The ICE transport's state (``new`` until the first exchange starts it)."""
        return IceState.of(self._transceiver.receiver.transport.transport.state)

    @property
    def dtls_state(self) -> DtlsState:
        """The DTLS transport's state."""
        return DtlsState.of(self._transceiver.receiver.transport.state)

    def watch(self, listener: Callable[[MediaHealthEvent], None]) -> None:
        """Watch the media's health and tell ``listener`` what changes (see
        :mod:`exotel_voice.media.liveness`), with the thresholds of
        :attr:`MediaConfig.liveness <exotel_voice.media.config.MediaConfig.liveness>`.

        Call it once the answer is in force: the connect timeout counts from then. Further
        calls add listeners to the same watch. Nothing is watched when
        ``liveness.enabled`` is false. The watch stops after ``MediaDown`` and when the
        session closes.
        """
        if listener not in self._health_listeners:
            self._health_listeners.append(listener)
        if (
            self._watch_task is not None
            or not self.config.liveness.enabled
            or self._state is MediaState.CLOSED
        ):
            return
        self._watch_task = asyncio.get_running_loop().create_task(self._watch())

    async def _received_packets(self) -> int:
        """Datagrams received through the DTLS transport so far (SRTP, SRTCP, DTLS), from
        aiortc's public transport statistics (both compat paths count them)."""
        report = await self._transceiver.receiver.getStats()
        for stats in report.values():
            if getattr(stats, "type", None) == "transport":
                return int(getattr(stats, "packetsReceived", 0) or 0)
        return 0

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        config = self.config.liveness
        monitor = LivenessMonitor(config, loop.time())
        dtls = self._transceiver.receiver.transport
        changed = asyncio.Event()
        dtls.on("statechange", changed.set)
        dtls.transport.on("statechange", changed.set)
        try:
            while not monitor.down and self._state is not MediaState.CLOSED:
                try:
                    received = await self._received_packets()
                except Exception:
                    self.logger.exception("! media: cannot read the receive counters")
                    return
                events = monitor.update(
                    loop.time(),
                    received=received,
                    ice=self.ice_state,
                    dtls=self.dtls_state,
                    expecting=self._transceiver.currentDirection == "sendrecv",
                )
                if self._closed.is_set():  # closed while the counters were read
                    return
                for event in events:
                    self.logger.debug("= media health %s", event)
                    for listener in list(self._health_listeners):
                        try:
                            listener(event)
                        except Exception:
                            self.logger.exception("! media health listener failed")
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), config.check_interval)
        finally:
            for emitter in (dtls, dtls.transport):
                with contextlib.suppress(Exception):
                    emitter.remove_listener("statechange", changed.set)

    async def close(self) -> None:
        """Stop all media and free every resource (sockets, threads, tasks). Idempotent."""
        if self._state is MediaState.CLOSED:
            return
        self._set_state(MediaState.CLOSED)
        self._closed.set()
        if self._watch_task is not None:
            self._watch_task.cancel()
        if self._rtcp_task is not None:
            self._rtcp_task.cancel()
        self._health_listeners.clear()
        self._dtmf_sender.cancel(MediaError("the media session was closed"))
        if self._send_clock is not None and self._lean_sender is not None:
            self._send_clock.remove(self._lean_sender)
        try:
            await self._pc.close()
        finally:
            if self._tap is not None:
                self._tap.detach()
            if self._lean is not None:
                self._lean.close()
            if self._receive_task is not None:
                self._receive_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._receive_task
            if self._source_started:
                await self._track.source.stop()
            music, self._track.hold_source = self._track.hold_source, None
            if music is not None:
                await music.stop()
            for sink in list(self._sinks):
                self.remove_sink(sink)
            self._dtmf_listeners.clear()

    async def __aenter__(self) -> MediaSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _iter_transports(self) -> Iterator[Any]:
        """aiortc's DTLS and ICE transports of this session (for tests and diagnostics)."""
        dtls = self._transceiver.receiver.transport
        yield dtls
        yield dtls.transport


async def _start(source: AudioSource) -> None:
    """Start ``source``; any failure is an :class:`AudioSourceError` naming it."""
    try:
        await source.start()
    except AudioSourceError:
        raise
    except Exception as exc:
        raise AudioSourceError(repr(source), f"{type(exc).__name__}: {exc}") from exc


def _audio_codecs(negotiated: list[Any]) -> dict[int, tuple[str, int]]:
    """``payload type -> (name, clock)`` of the negotiated audio formats (no events, no RTX)."""
    codecs = {}
    for codec in negotiated:
        name = str(codec.name)
        if name.lower() in ("telephone-event", "rtx", "red", "cn"):
            continue
        codecs[int(codec.payloadType)] = (name, int(codec.clockRate))
    return codecs


def _watch_send_parameters(sender: Any, callback: Callable[[Any], None]) -> None:
    """Hand the parameters of each ``RTCRtpSender.send()`` call to ``callback`` (lean path).

    The lean sender takes its header-extension ids and MID from them; aiortc's
    sender still starts (its RTCP task sends our sender reports).
    """
    original = sender.send

    async def send(parameters: Any) -> None:
        callback(parameters)
        await original(parameters)

    sender.send = send


def _skip_aiortc_decoder(receiver: Any) -> None:
    """Stop aiortc's decoder thread as soon as its receiver starts (lean path only).

    ``RTCRtpReceiver.receive()`` starts one decoder thread per call; with the lean
    path no audio packet ever reaches it, so it is ended right away through
    ``_handle_disconnect()`` (what aiortc itself calls when DTLS goes away).  The
    receiver keeps its RTCP task and its registration with the transport.
    Shadowed per instance, like the RTP hooks in :mod:`exotel_voice.media.dtmf`.
    """
    original = receiver.receive

    async def receive(parameters: Any) -> None:
        await original(parameters)
        compat.stop_decoder(receiver)

    receiver.receive = receive
