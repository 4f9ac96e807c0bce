"""The asyncio API: a :class:`Phone` registers one SIP account and places and takes calls.

::

    async with Phone(AccountConfig.from_sip_account_info(info)) as phone:
        await phone.register()
        async for call in phone.incoming_calls():
            await call.answer(source=ToneSource(440))
            await call.wait_ended()

The phone glues three parts and adds no SIP logic of its own: a
:class:`~exotel_voice.transport.WebSocketTransport` (bytes, reconnects), the sans-I/O
:class:`~exotel_voice.sip.useragent.UserAgent` (all SIP), and a
:class:`~exotel_voice.media.MediaSession` per call (audio). Everything runs on the event loop
that called :meth:`Phone.start`; listeners are called on that loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any

from ..audio.devices import AudioDevice, DeviceKind
from ..audio.selection import AudioDeviceSelection, DeviceSpec
from ..audio.sounds import SoundPlayer, Sounds
from ..audio.watch import DeviceListChange
from ..config import AccountConfig
from ..exceptions import (
    AuthenticationError,
    InvalidState,
    MediaError,
    SipError,
    TransactionTimeout,
    TransportError,
)
from ..media import AudioSource, MediaConfig, MediaSession, SilenceSource
from ..media.netwatch import AddressChange, AddressWatcher
from ..sip import calls as core
from ..sip.registration import (
    Registered,
    RegisterSent,
    RegistrationEvent,
    RegistrationFailed,
    RegistrationState,
    Unregistered,
)
from ..sip.uri import SipURI, parse_uri
from ..sip.useragent import UserAgent
from ..transport import TransportState, WebSocketTransport
from ..transport.pump import Pump
from ._call_media import make_offer
from .call import Call
from .events import (
    AudioDeviceFallback,
    AudioDevicesChanged,
    CallConnected,
    CallEnded,
    CallEvent,
    CallIncoming,
    CallProgress,
    CallRinging,
    PhoneEvent,
    PhoneStatus,
    Reconnected,
    Reconnecting,
    RegistrationStateChanged,
    TransportStateChanged,
)
from .logbridge import protect_library_loggers


__all__ = ["Phone"]

logger = logging.getLogger(__name__)

# aiortc's DEBUG SDP dumps carry a=ice-pwd; websockets' handshake lines may carry
# credentials. Mask them on those libraries' own loggers before any call or connection.
protect_library_loggers()

Listener = Callable[[PhoneEvent], None]


class Phone:
    """One SIP account: registration, and the calls it places and takes.

    Args:
        account: who to register as and where (see
            :meth:`AccountConfig.from_sip_account_info`).
        media: ICE, codec and DTMF settings for calls. For tests on one machine,
            ``MediaConfig(ice=IceConfig(host_addresses=["127.0.0.1"]))``.
        source: what calls send by default: an :class:`AudioSource` factory (called once
            per call), e.g. ``lambda: ToneSource(440)``. Silence by default. It is also what
            :meth:`status` checks for ``media_permission_denied``.
        ring_timeout: seconds an incoming call rings before it is ended with 480.
        network_poll: seconds between two readings of the host's addresses; when they
            change (Wi-Fi to cable ...), each connected call restarts ICE in a re-INVITE
            (:class:`~exotel_voice.client.events.IceRestarting`, then ``IceRestarted``);
            ``None`` turns it off.
        sounds: the ringtone (while an incoming call rings), ringback (while our call
            rings, until the far end's early media) and DTMF beep (each digit we send)
            to play on the output device, see :class:`~exotel_voice.audio.sounds.Sounds`.
            ``None`` (the default): no sounds, as a bot or a server wants.
    """

    def __init__(
        self,
        account: AccountConfig,
        *,
        media: MediaConfig | None = None,
        source: Callable[[], AudioSource] | None = None,
        ring_timeout: float | None = 60.0,
        network_poll: float | None = 1.0,
        sounds: Sounds | None = None,
    ) -> None:
        if sounds is not None and not isinstance(sounds, Sounds):
            raise TypeError(f"sounds must be a Sounds or None, not {type(sounds).__name__}")
        self.account = account
        #: The sounds' player (``None``: no sounds); see the ``sounds`` argument.
        self.sound_player: SoundPlayer | None = (
            None if sounds is None else SoundPlayer(sounds, output=lambda: self.output_device)
        )
        # The call the sound playing now is for.
        self._sound_call: Call | None = None
        self.media_config = media or MediaConfig()
        self._source_factory = source
        # The input/output device calls use (set_input_device, set_output_device).
        self._audio = AudioDeviceSelection(
            lambda: [call.media for call in self.calls if call.media is not None],
            on_change=self._on_audio_devices_changed,
            on_fallback=self._on_audio_device_fallback,
        )
        aor = parse_uri(account.aor)
        if not isinstance(aor, SipURI):
            raise InvalidState("the account's AOR is not a SIP URI")
        self._ua = UserAgent(
            aor=aor,
            registrar=SipURI("sip", None, account.sip_domain),
            auth_user=account.auth_user,
            password=account.secret,
            display_name=account.user_name,
            secure=account.secure,
            instance_id=account.instance_id,
            expires=account.register_expires,
            refresh_fraction=account.register_refresh,
            user_agent=account.user_agent,
            request_timeout=account.register_timeout,
            ring_timeout=ring_timeout,
        )
        self._transport: WebSocketTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._io: Pump | None = None
        self._listeners: list[Listener] = []
        self._subscribers: list[asyncio.Queue[PhoneEvent | None]] = []
        # Incoming calls not yet taken by next_incoming_call(); a call that ends first
        # leaves it (as it leaves _calls), so the phone keeps no ended call.
        self._incoming: deque[Call] = deque()
        self._incoming_ready = asyncio.Event()
        # The calls that have not ended, by CallSession.id.
        self._calls: dict[str, Call] = {}
        # Media of ended calls still closing: held here until done (the loop keeps tasks
        # only weakly) and awaited by close().
        self._media_closing: set[asyncio.Task[None]] = set()
        # Set on each registration outcome (not on a REGISTER going out): register() and
        # unregister() wait on it. The state itself is the core's Registration's.
        self._reg_changed = asyncio.Event()
        self._last_reg_event: RegistrationStateChanged | None = None
        self._ever_connected = False
        self._transport_up = False
        # Since when the connection has been down (loop time), and the attempts made since:
        # for Reconnecting / Reconnected.
        self._lost_at: float | None = None
        self._attempts_since_loss = 0
        self._closed = False
        # One watcher of the host's addresses for all the calls (started by start()).
        self._netwatch = None if network_poll is None else AddressWatcher(
            self._on_network_change,
            interval=network_poll,
            only=self.media_config.ice.host_addresses,
        )

    def __repr__(self) -> str:
        return f"<Phone {self.name} {self.status()}>"

    # -- properties --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The phone's name: the guide's ``userName``."""
        return self.account.user_name

    @property
    def registration_state(self) -> RegistrationState:
        """Where the registration is (``REGISTERED``, ``FAILED`` ...): the core's own state."""
        return self._ua.registration.state

    @property
    def registered(self) -> bool:
        """Whether the account is registered on an open connection now."""
        return (
            self._ua.registration.state is RegistrationState.REGISTERED
            and self._transport is not None
            and self._transport.connected
        )

    @property
    def registration_error(self) -> SipError | None:
        """Why the registration last failed (state ``FAILED``), or ``None``.

        A :class:`TransportError` when the connection could not be opened (a certificate
        that cannot be verified, a refused connection), :class:`AuthenticationError` for
        rejected credentials,
        :class:`TransactionTimeout` for a silent registrar, else a :class:`SipError`.
        Cleared when a registration succeeds.
        """
        return self._ua.registration.error

    @property
    def calls(self) -> list[Call]:
        """Every call that has not ended, oldest first."""
        return [c for c in self._calls.values() if not c.ended]

    @property
    def current_call(self) -> Call | None:
        """The newest call that has not ended (the guide's ``getCall()``), or ``None``."""
        calls = self.calls
        return calls[-1] if calls else None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect to the server (and keep reconnecting). Does not register."""
        if self._closed:
            raise InvalidState("cannot restart a closed Phone; create a new one")
        if self._transport is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._io = Pump(self._ua, self._send, after=self._handle_events, name=f"phone {self.name}")
        self._transport = WebSocketTransport(
            self.account.ws_url,
            self,
            tls=self.account.tls,
            keepalive=self.account.keepalive,
            reconnect=self.account.reconnect,
            open_timeout=self.account.open_timeout,
        )
        self._transport.start()
        if self._netwatch is not None:
            self._netwatch.start()

    async def register(self, *, timeout: float | None = 30.0) -> RegistrationStateChanged:
        """Register, and stay registered (refreshes, reconnects) until :meth:`unregister`.

        Returns once the registrar accepted us. On a failure it raises, and the phone
        keeps trying where that can help (reconnects, retries after a timeout or a 503);
        a ``REGISTERED`` event follows if one succeeds. A connection lost while the
        REGISTER is outstanding is not a failure: it is reported (``UNREGISTERED``, the
        reason naming the close code and reason), the transport reconnects and the
        REGISTER goes again on the new connection, and this waits for that outcome.

        Raises:
            AuthenticationError: the credentials were rejected (state ``FAILED``).
            TransactionTimeout: the server did not answer the REGISTER.
            TransportError: the WebSocket could not be opened (the message gives the
                reason, e.g. ``certificate verify failed: self-signed certificate``).
            TimeoutError: nothing conclusive within ``timeout`` seconds (the message
                names the last registration event, if any).
        """
        await self.start()
        self._reg_changed.clear()
        self._command(self._ua.register)
        try:
            return await self._registration_outcome(timeout)
        except TimeoutError as exc:
            last = self._last_reg_event
            detail = f"; last: {last.state} {last.reason}".rstrip() if last is not None else ""
            raise TimeoutError(f"not registered within {timeout} s{detail}") from exc

    async def _registration_outcome(self, timeout: float | None) -> RegistrationStateChanged:
        async with asyncio.timeout(timeout):
            while True:
                await self._reg_changed.wait()
                self._reg_changed.clear()
                event = self._last_reg_event
                if event is None:
                    continue
                if event.state is RegistrationState.REGISTERED:
                    return event
                if event.state is RegistrationState.FAILED:
                    failure = self.registration_error
                    if isinstance(failure, TransportError):
                        raise TransportError(str(failure)) from failure.__cause__
                    if event.status in (401, 403, 407):
                        raise AuthenticationError(
                            f"registration rejected: {event.status} {event.reason}",
                            status=event.status,
                        )
                    if event.status is None:
                        raise TransactionTimeout(f"registration failed: {event.reason}")
                    raise SipError(f"registration failed: {event.status} {event.reason}")

    async def unregister(self, *, timeout: float = 5.0) -> None:
        """Remove the binding, wait for the 200 (or ``timeout``), then close the connection."""
        if self._transport is None:
            return
        self._reg_changed.clear()
        self._command(self._ua.unregister)
        if self._ua.registration.state is RegistrationState.UNREGISTERING:
            try:
                async with asyncio.timeout(timeout):
                    while self._ua.registration.state is RegistrationState.UNREGISTERING:
                        await self._reg_changed.wait()
                        self._reg_changed.clear()
            except TimeoutError:
                logger.warning("! %s: no answer to the un-REGISTER within %g s", self.name,
                               timeout)
        await self.close()

    async def close(self) -> None:
        """Hang up every call, close the connection and stop reconnecting."""
        if self._closed:
            return
        self._closed = True
        await self._audio.close()
        if self._netwatch is not None:
            await self._netwatch.stop()
        if self._io is not None:
            self._io.stop_timer()
        for call in list(self._calls.values()):
            if not call.ended:
                try:
                    await asyncio.wait_for(call.hangup(), 3.0)
                except (TimeoutError, SipError):
                    pass
        await self._flush_sends()
        if self._transport is not None:
            await self._transport.close()
        if self._io is not None:
            await self._io.aclose()
        for call in list(self._calls.values()):
            if call.media is not None:
                await call.media.close()
        if self.sound_player is not None:
            await self.sound_player.aclose()
        if self._media_closing:
            await asyncio.gather(*self._media_closing, return_exceptions=True)
        for q in self._subscribers:
            q.put_nowait(None)

    async def __aenter__(self) -> Phone:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- calls -------------------------------------------------------------------------------
    async def dial(
        self,
        target: str,
        *,
        headers: dict[str, str] | None = None,
        source: AudioSource | None = None,
    ) -> Call:
        """Place a call. Returns at once; ``await call.wait_connected()`` for the answer.

        Args:
            target: a SIP URI (``sip:bob@example.com``), ``user@domain``, or a number/user
                that is dialled at the account's SIP domain.
            headers: extra SIP headers for the INVITE (e.g. ``{"X-Ticket": "42"}``).
            source: what to send (default: the phone's source factory, else silence).

        Raises:
            InvalidState: not connected to the server.
        """
        if self._transport is None or not self._transport.connected:
            raise InvalidState("cannot dial: not connected to the SIP server")
        # Media first, so that the INVITE carries our offer.
        media_source = source if source is not None else self._new_source()
        media, offer = await make_offer(self.media_config, media_source)
        loop = asyncio.get_running_loop()
        session = self._ua.invite(target, offer, loop.time(), headers=list((headers or {}).items()))
        call = self._new_call(session, media_source, media)
        self._audio.attach(media)
        self._calls[session.id] = call
        self._pump()
        return call

    async def incoming_calls(self) -> AsyncIterator[Call]:
        """Incoming calls as they arrive (each already ringing: 180 sent).

        A call that ended before it was taken (the caller cancelled, it rang out) is
        skipped; its events were still published.
        """
        while not self._closed:
            yield await self.next_incoming_call()

    async def next_incoming_call(
        self, timeout: float | None = None, *, match: Callable[[Call], bool] | None = None
    ) -> Call:
        """Wait for the next incoming call that is still ringing.

        Calls that ended before they were taken are skipped (the phone does not keep them).
        With ``match``, the first call for which ``match(call)`` is true is taken; the
        others stay for the next taker (e.g. ``match=lambda c: c.call_sid == sid``).

        Raises:
            TimeoutError: no call within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while True:
                for call in list(self._incoming):
                    if call.ended or match is None or match(call):
                        self._incoming.remove(call)
                        if not call.ended:
                            return call
                self._incoming_ready.clear()
                await self._incoming_ready.wait()

    # -- events ------------------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` for every event from now on; returns a remover."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    async def events(self) -> AsyncIterator[PhoneEvent]:
        """Every event from now on, until the phone is closed."""
        q: asyncio.Queue[PhoneEvent | None] = asyncio.Queue()
        self._subscribers.append(q)
        try:
            while True:
                event = await q.get()
                if event is None:
                    return
                yield event
        finally:
            self._subscribers.remove(q)

    def status(self) -> PhoneStatus:
        """How ready the phone is, computed from real state.

        In order: ``NOT_STARTED``, ``UNREGISTERED`` or ``FAILED`` once closed,
        ``MEDIA_UNAVAILABLE`` (the configured audio source cannot be opened), ``CONNECTING``,
        ``CONNECTION_FAILED`` (never connected), ``DISCONNECTED`` (connection lost), then by
        registration: ``REGISTERING``, ``REGISTERED``, ``FAILED``, ``UNREGISTERED``.
        """
        reg = self._ua.registration.state
        if self._transport is None:
            return PhoneStatus.NOT_STARTED
        if self._closed:
            # Closed on purpose (unregister/close): no connection, no binding.
            failed = reg is RegistrationState.FAILED
            return PhoneStatus.FAILED if failed else PhoneStatus.UNREGISTERED
        if not self._media_ok():
            return PhoneStatus.MEDIA_UNAVAILABLE
        state = self._transport.state
        if state is not TransportState.CONNECTED:
            if state in (TransportState.CONNECTING, TransportState.IDLE):
                return PhoneStatus.DISCONNECTED if self._ever_connected else PhoneStatus.CONNECTING
            if self._ever_connected:
                return PhoneStatus.DISCONNECTED
            return PhoneStatus.CONNECTION_FAILED
        return _STATUS_OF_REGISTRATION[reg]

    def _media_ok(self) -> bool:
        if self._source_factory is None:
            return True
        try:
            source = self._source_factory()
        except (MediaError, OSError, ValueError) as exc:
            logger.warning("! %s: the audio source cannot be opened: %s", self.name, exc)
            return False
        close = getattr(source, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                pass
        return True

    # -- TransportListener -------------------------------------------------------------------
    def transport_connected(self) -> None:  # noqa: D102 - see TransportListener
        self._ever_connected = True
        self._transport_up = True
        self._publish(TransportStateChanged(self.name, True))
        lost_at, self._lost_at = self._lost_at, None
        if lost_at is not None:
            downtime = self._now() - lost_at
            logger.info("= %s: reconnected after %.2f s (%d attempts)", self.name, downtime,
                        self._attempts_since_loss)
            self._publish(Reconnected(self.name, downtime, self._attempts_since_loss))
        # The new flow: the REGISTER on it, then (once registered) each live call's dialog
        # is refreshed with the new Contact (the core's TargetRefreshNeeded, see Call).
        self._command(self._ua.connection_made)

    def transport_disconnected(self, error: TransportError, retry_in: float | None) -> None:  # noqa: D102
        was_up, self._transport_up = self._transport_up, False
        # The core learns of the loss first, so that a listener of the transport event
        # already sees its outcome for the registration.
        if was_up:
            self._command(lambda now: self._ua.connection_lost(now, str(error)))
        else:
            self._command(lambda now: self._ua.connection_failed(now, error, retry_in))
        self._publish(TransportStateChanged(self.name, False, str(error), retry_in))
        if not self._ever_connected or self._closed:
            return
        if was_up:
            self._lost_at, self._attempts_since_loss = self._now(), 0
        if retry_in is not None:
            self._attempts_since_loss += 1
            live = len(self.calls)
            logger.info("! %s: connection lost (%s); reconnecting in %.2f s with %d live "
                        "call(s)", self.name, error, retry_in, live)
            self._publish(Reconnecting(self.name, str(error), retry_in, live))

    def message_received(self, data: str | bytes) -> None:  # noqa: D102
        self._command(lambda now: self._ua.receive_data(data, now))

    def _now(self) -> float:
        return (self._loop or asyncio.get_running_loop()).time()

    # -- plumbing: the shared asyncio pump (feed, write in order, re-arm the timer) -------
    def _command(self, action: Callable[[float], Any]) -> None:
        """Run one core action at the current time, then pump its output."""
        if self._io is not None:
            self._io.run(action)
            return
        # Not started: nothing can be written and no timer armed; events still count.
        action((self._loop or asyncio.get_running_loop()).time())
        self._pump()

    def _pump(self) -> None:
        if self._io is not None:
            self._io.flush()
            return
        self._ua.data_to_send()
        self._handle_events()

    def _handle_events(self) -> None:
        for event in self._ua.events_received():
            try:
                self._handle(event)
            except Exception:
                logger.exception("! %s: failed to handle %s", self.name, type(event).__name__)

    async def _send(self, data: bytes) -> None:
        transport = self._transport
        try:
            if transport is None:
                raise TransportError("no transport")
            await transport.send(data)
        except TransportError as exc:
            logger.warning("! %s: could not send a message: %s", self.name, exc)

    async def _flush_sends(self) -> None:
        if self._io is not None and self._transport is not None:
            await self._io.drain(2.0)

    def _new_source(self) -> AudioSource:
        device = self._audio.new_source()
        if device is not None:
            return device
        return self._source_factory() if self._source_factory is not None else SilenceSource()

    # -- audio devices -----------------------------------------------------------------------
    @property
    def input_device(self) -> AudioDevice | None:
        """The input device calls send from (:meth:`set_input_device`), or ``None``."""
        return self._audio.input

    @property
    def output_device(self) -> AudioDevice | None:
        """The output device calls play on (:meth:`set_output_device`), or ``None``."""
        return self._audio.output

    async def set_input_device(self, device: DeviceSpec = None) -> AudioDevice:
        """Send every call from ``device`` (guide 5.14), the live call switched in place.

        ``device``: an :class:`~exotel_voice.audio.AudioDevice`, its id or name, a PortAudio
        index, or ``None`` for the system default. From now on calls send from it (it
        replaces the ``source`` factory); a live call switches without renegotiation or a
        break the far end would notice, and a muted call stays muted. Device changes are
        watched from now on (:class:`~exotel_voice.client.events.AudioDevicesChanged`);
        if this device goes away the phone falls back to the default
        (:class:`~exotel_voice.client.events.AudioDeviceFallback`).

        Raises:
            AudioDeviceError: no such input device (the message lists those there are).
            AudioSourceError: the device cannot be opened; calls keep their source.
            AudioBackendMissing: ``pip install 'exotel-voice[audio]'`` is needed.
        """
        return await self._audio.set_input(device)

    async def set_output_device(self, device: DeviceSpec = None) -> AudioDevice:
        """Play every call on ``device`` (guide 5.14), the live call moved in place.

        ``device`` as for :meth:`set_input_device`. Without a call to this, received audio
        goes nowhere but the sinks the application adds.

        Raises:
            AudioDeviceError: no such output device.
            MediaError: the device cannot be opened; calls play where they did.
            AudioBackendMissing: ``pip install 'exotel-voice[audio]'`` is needed.
        """
        return await self._audio.set_output(device)

    async def watch_audio_devices(self) -> None:
        """Publish :class:`~exotel_voice.client.events.AudioDevicesChanged` from now on
        (devices appearing, going away, the default changing) without choosing a device.

        Raises:
            AudioBackendMissing: ``pip install 'exotel-voice[audio]'`` is needed.
        """
        await self._audio.watch()

    def _on_audio_devices_changed(self, change: DeviceListChange) -> None:
        self._publish(AudioDevicesChanged(
            self.name, change.added, change.removed, change.default_input,
            change.default_output, change.default_input_changed, change.default_output_changed,
        ))

    def _on_audio_device_fallback(
        self, kind: DeviceKind, lost: AudioDevice, device: AudioDevice | None
    ) -> None:
        self._publish(AudioDeviceFallback(self.name, kind, lost, device))

    def _publish(self, event: PhoneEvent) -> None:
        if self.sound_player is not None and isinstance(event, CallEvent):
            self._sound_on(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                logger.exception("! %s: a listener failed on %s", self.name, type(event).__name__)
        for q in self._subscribers:
            q.put_nowait(event)

    def _sound_on(self, event: CallEvent) -> None:
        """Ringtone while an incoming call rings, ringback while ours rings."""
        player = self.sound_player
        assert player is not None
        call = event.call
        if isinstance(event, CallIncoming):
            if player.start_ringtone():
                self._sound_call = call
        elif isinstance(event, (CallRinging, CallProgress)) and call.direction == "outgoing":
            if call.early_media:
                # The far end's media (its ringback, an announcement) replaces ours.
                if self._sound_call is call:
                    player.stop("ringback")
                    self._sound_call = None
            elif isinstance(event, CallRinging) and player.start_ringback():
                self._sound_call = call
        elif isinstance(event, (CallConnected, CallEnded)) and self._sound_call is call:
            player.stop("ringtone")
            player.stop("ringback")
            self._sound_call = None

    def _play_dtmf_beep(self, digits: str) -> None:
        """The DTMF beep for digits we send (when sounds are on)."""
        if self.sound_player is not None:
            self.sound_player.beep(digits)

    def _new_call(
        self, session: core.CallSession, source: AudioSource | None, media: MediaSession | None
    ) -> Call:
        def sip(action: Callable[[UserAgent, float], object]) -> None:
            self._command(lambda now: action(self._ua, now))

        return Call(self, session, source, sip=sip, publish=self._publish,
                    new_source=self._new_source, media=media)

    def _on_network_change(self, change: AddressChange) -> None:
        for call in self.calls:
            call._on_network_change(change)

    def _forget(self, call: Call) -> None:
        self._calls.pop(call.id, None)
        try:
            self._incoming.remove(call)
        except ValueError:
            pass

    def _handle(self, event: object) -> None:
        if isinstance(event, RegistrationEvent):
            self._on_registration_event(event)
            return
        if isinstance(event, core.IncomingCall):
            new = self._new_call(event.call, None, None)
            self._calls[event.call.id] = new
            new._publish(CallIncoming(self.name, new))
            # We sent 180 Ringing with the event.
            new._publish(CallRinging(self.name, new, 180, "Ringing"))
            self._incoming.append(new)
            self._incoming_ready.set()
            return
        if not isinstance(event, core.UserAgentEvent):
            return
        call = self._calls.get(event.call.id)
        if call is None:
            return
        if isinstance(event, core.CallEnded):
            # Forget the call before the application hears of the end: an ended call is
            # the application's to keep (or drop), never the phone's.
            self._forget(call)
            closing = call._on_ended(event.by, event.status, event.reason)
            if closing is not None:
                self._media_closing.add(closing)
                closing.add_done_callback(self._media_closing.discard)
        else:
            call._on_event(event)

    def _on_registration_event(self, event: RegistrationEvent) -> None:
        """Publish one of the core's registration events as a typed phone event."""
        if isinstance(event, RegisterSent):
            state = (
                RegistrationState.UNREGISTERING if event.expires == 0
                else RegistrationState.REGISTERING
            )
        else:
            state = _STATE_AFTER[type(event)]
        expires = event.expires if isinstance(event, Registered) else None
        retry_in = event.retry_in if isinstance(event, RegistrationFailed) else None
        ev = RegistrationStateChanged(
            self.name, state, event.status, event.reason, expires, retry_in
        )
        if not isinstance(event, RegisterSent):
            # register()/unregister() wait for an outcome; a REGISTER going out (the retry
            # with credentials, say) is not one, so it does not wake them.
            self._last_reg_event = ev
            self._reg_changed.set()
        if isinstance(event, RegistrationFailed) and isinstance(event.error, TransportError):
            logger.warning("! %s registration: %s: %s", self.name, state, event.reason)
        elif logger.isEnabledFor(logging.INFO):
            logger.info("= %s registration: %s %s %s", self.name, state,
                        event.status or "", event.reason)
        self._publish(ev)


#: The registration state each outcome leaves (a REGISTER sent: see _on_registration_event).
_STATE_AFTER: dict[type[RegistrationEvent], RegistrationState] = {
    Registered: RegistrationState.REGISTERED,
    Unregistered: RegistrationState.UNREGISTERED,
    RegistrationFailed: RegistrationState.FAILED,
}

_STATUS_OF_REGISTRATION = {
    RegistrationState.REGISTERED: PhoneStatus.REGISTERED,
    RegistrationState.REGISTERING: PhoneStatus.REGISTERING,
    RegistrationState.FAILED: PhoneStatus.FAILED,
    RegistrationState.UNREGISTERED: PhoneStatus.UNREGISTERED,
    RegistrationState.UNREGISTERING: PhoneStatus.UNREGISTERED,
}
