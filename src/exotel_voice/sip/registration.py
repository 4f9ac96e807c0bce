"""Registration of one SIP account (RFC 3261 §10), sans-I/O.

Theory of operation
-------------------
:class:`Registration` builds REGISTER requests and reads their responses; it never sends
anything itself. Its owner sends each request it returns (through a
:class:`~exotel_voice.sip.connection.SipConnection`), feeds back the response or the timeout,
and re-arms :meth:`get_timer` / :meth:`handle_timer` for refreshes and retries.

States::

    UNREGISTERED --register()--> REGISTERING --2xx--> REGISTERED --(refresh due)--> REGISTERING
         ^                          |   ^ 401/407: answer the challenge once
         |                          |   | 423: retry with Min-Expires
         |                       failure (403, re-challenge, timeout, 5xx)
         |                          v
         |                        FAILED --(retry due, if retryable)--> REGISTERING
         +---- 2xx/failure <-- UNREGISTERING <--unregister()-- REGISTERED

Bounds (a registrar that misbehaves gets a failure event, never a loop):

* ``401``/``407``: :class:`~exotel_voice.sip.auth.DigestAuth` answers a first challenge
  and one fresh (new nonce, or ``stale=true``) challenge of that answer; a second ``401``
  for the nonce we answered is a wrong password. At most
  :attr:`Registration.MAX_CHALLENGES` challenges are answered per attempt in any case.
* ``423 Interval Too Brief`` (RFC 3261 §10.2.8): retried with the ``Min-Expires`` asked for,
  at most :attr:`Registration.MAX_INTERVAL_RETRIES` times in a row, and only up to
  :attr:`Registration.MAX_EXPIRES` seconds (or the configured expiry, if larger). Beyond
  that: :class:`RegistrationFailed` with status 423, no automatic retry, and a reason that
  names the ``Min-Expires``. A ``Min-Expires`` that was followed is kept for later
  REGISTERs, so refreshes do not meet the same 423.
* Retryable failures (no response, 408, 480, 500, 502, 503, 504) are retried after the
  next of ``retry_delays``, or after the response's ``Retry-After`` when that is later
  (RFC 3261 §20.33, §21.5.4), capped at :attr:`Registration.MAX_RETRY_AFTER` seconds.

The registration is the one owner of its state: whether the user wants a binding
(:attr:`Registration.wanted`), the refresh and retry deadlines, the outstanding REGISTER's
own timeout (``request_timeout``, shorter than Timer F so a silent registrar is noticed) and
the error behind the newest failure (:attr:`Registration.error`). Its owner only tells it
about flows: :meth:`Registration.transport_lost` (the binding went with the flow) and
:meth:`Registration.connection_failed` (no flow could be opened; before the first success
this fails the registration).

The Contact follows RFC 7118 §5.1 (a random ``.invalid`` host, ``transport=ws``/``wss``)
and RFC 5626 (``+sip.instance``, ``reg-id``, ``;ob``) so that the registrar routes
in-dialog requests back over the newest flow after a reconnect.
"""

from __future__ import annotations

import enum
import logging
import re
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..exceptions import (
    AuthenticationError,
    InvalidMessage,
    SipError,
    TransactionTimeout,
    TransportError,
)
from .headers import Headers, NameAddr, parse_params
from .message import Request, Response
from .uri import SipURI


if TYPE_CHECKING:
    from .auth import DigestAuth

__all__ = [
    "RegisterSent",
    "Registered",
    "Registration",
    "RegistrationEvent",
    "RegistrationFailed",
    "RegistrationState",
    "Unregistered",
    "make_contact",
]

logger = logging.getLogger(__name__)

#: The methods we answer (RFC 3261 §20.5): every one gets a real answer, never 405/501.
ALLOW = "INVITE,ACK,CANCEL,BYE,INFO,OPTIONS,UPDATE,NOTIFY,MESSAGE"


class RegistrationState(enum.StrEnum):
    """Where a :class:`Registration` is (a ``str``: logs and reprs show the word)."""

    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    UNREGISTERING = "unregistering"
    FAILED = "failed"


@dataclass(frozen=True)
class RegistrationEvent:
    """Base class of registration events.

    Attributes:
        status: the SIP status that caused the event (``None`` when there was no response).
        reason: the reason phrase, or a description of what happened.
    """

    status: int | None
    reason: str


@dataclass(frozen=True)
class RegisterSent(RegistrationEvent):
    """A REGISTER was sent (``expires`` 0: an un-REGISTER)."""

    expires: int = 0


@dataclass(frozen=True)
class Registered(RegistrationEvent):
    """The registrar accepted the binding.

    Attributes:
        expires: the expiry the registrar granted, in seconds.
        refresh: whether this was a refresh of an existing registration.
    """

    expires: int = 0
    refresh: bool = False


@dataclass(frozen=True)
class Unregistered(RegistrationEvent):
    """The binding is gone: removed on request, or lost with the flow."""


@dataclass(frozen=True)
class RegistrationFailed(RegistrationEvent):
    """Registering (or unregistering) failed.

    Attributes:
        error: the exception describing the failure (never carrying a secret).
        retry_in: seconds until an automatic retry, or ``None`` if none will be made
            (e.g. the credentials were rejected).
    """

    error: SipError | None = field(default=None, compare=False)
    retry_in: float | None = None


def make_contact(
    *,
    secure: bool,
    instance_id: str,
    reg_id: int = 1,
    user: str | None = None,
    host: str | None = None,
) -> NameAddr:
    """Build the RFC 7118 / RFC 5626 Contact for a WebSocket client.

    Args:
        secure: ``transport=wss`` rather than ``ws``.
        instance_id: the UUID for ``+sip.instance``.
        reg_id: the RFC 5626 ``reg-id``.
        user: the Contact user part (random by default, as browsers do).
        host: the Contact host (a random ``.invalid`` name by default, RFC 7118 §5.1).
    """
    uri = SipURI(
        "sip",
        user or secrets.token_hex(4),
        host or f"{secrets.token_hex(6)}.invalid",
        None,
        {"transport": "wss" if secure else "ws", "ob": None},
    )
    params: dict[str, str | None] = {
        "+sip.instance": f"<urn:uuid:{instance_id}>",
        "reg-id": str(reg_id),
    }
    return NameAddr(uri, None, params)


class Registration:
    """The REGISTER state machine for one address of record.

    Args:
        aor: the address of record (To and From URI).
        registrar: the Request-URI, ``sip:<sipdomain>``.
        contact: our Contact (see :func:`make_contact`).
        auth: digest credentials; ``None`` for a registrar that does not challenge.
        display_name: From display name (the guide's ``userName``).
        expires: the expiry to ask for, in seconds.
        refresh_fraction: refresh when this fraction of the granted expiry has passed.
        user_agent: the User-Agent header value.
        retry_delays: delays before retrying after a retryable failure (timeout, 5xx, 408,
            480, 503); the last one repeats. A later ``Retry-After`` wins.
        request_timeout: seconds without a final response before a REGISTER is reported as
            timed out (shorter than Timer F's 32 s, so a silent registrar is noticed).

    Attributes:
        state: the :class:`RegistrationState`.
        wanted: whether a binding is wanted (from :meth:`want` or :meth:`register` until
            :meth:`unregister`): the owner registers again on each new flow.
        error: why the newest failure happened (``None`` once a registration succeeds).
    """

    #: ``423`` responses followed in a row before the attempt fails.
    MAX_INTERVAL_RETRIES = 3
    #: The largest expiry a ``423``'s ``Min-Expires`` can make us ask for (seconds), unless
    #: the configured ``expires`` is larger: a registrar wanting more is reported, not obeyed.
    MAX_EXPIRES = 3600
    #: The longest ``Retry-After`` obeyed (seconds); a longer one is cut to this, so a phone
    #: is never left unregistered for hours by one response.
    MAX_RETRY_AFTER = 600.0
    #: Challenges (401/407) answered within one attempt (a REGISTER and its follow-ups).
    MAX_CHALLENGES = 3

    def __init__(
        self,
        *,
        aor: SipURI,
        registrar: SipURI,
        contact: NameAddr,
        auth: DigestAuth | None = None,
        display_name: str | None = None,
        expires: int = 300,
        refresh_fraction: float = 0.8,
        user_agent: str | None = None,
        retry_delays: tuple[float, ...] = (2.0, 5.0, 15.0, 30.0, 60.0),
        request_timeout: float = 10.0,
    ) -> None:
        self.aor = aor
        self.registrar = registrar
        self.contact = contact
        self.auth = auth
        self.display_name = display_name
        self.expires = expires
        self.refresh_fraction = refresh_fraction
        self.user_agent = user_agent
        self.retry_delays = retry_delays
        self.request_timeout = request_timeout
        self.state = RegistrationState.UNREGISTERED
        self.wanted = False
        self.error: SipError | None = None
        # Wanted and not registered since: a flow that cannot be opened fails the
        # registration (afterwards, an outage is only a lost binding).
        self._awaiting_first = False
        # RFC 3261 §10.2: the same Call-ID for every REGISTER to this registrar, CSeq grows.
        self.call_id = secrets.token_hex(12)
        self.from_tag = secrets.token_hex(5)
        self.cseq = secrets.randbelow(10000) + 1
        self.granted_expires: int | None = None
        self._requested_expires = expires
        self._pending: Request | None = None
        self._challenged = False
        # Per attempt: challenges answered and 423s followed. _min_expires: the largest
        # Min-Expires followed (RFC 3261 §10.2.8), kept for later REGISTERs.
        self._challenges = 0
        self._interval_retries = 0
        self._min_expires = 0
        self._refresh_at: float | None = None
        self._retry_at: float | None = None
        self._timeout_at: float | None = None
        self._failures = 0
        self._was_registered = False
        self._events: list[RegistrationEvent] = []
        # The To, From and Contact texts of our REGISTERs, rendered once per (aor, contact,
        # display name): the objects are treated as values (replace them, don't mutate them).
        self._rendered: tuple[str, str, str | None, str] = ("", "", None, "")
        self._rendered_for: tuple[object, ...] | None = None
        self._render()  # now, not in the first register()'s path

    def __repr__(self) -> str:
        return f"<Registration {self.aor.aor} {self.state.value}>"

    # -- commands ----------------------------------------------------------------------------
    def want(self) -> None:
        """Want a binding from now on (the owner sends :meth:`register` once it has a flow)."""
        self.wanted = True
        if self.state is not RegistrationState.REGISTERED:
            self._awaiting_first = True

    def register(self, now: float) -> Request:
        """Start (or restart) registering. Returns the REGISTER to send."""
        self.wanted = True
        self._retry_at = None
        self._refresh_at = None
        self._set_state(RegistrationState.REGISTERING)
        self._new_attempt()
        return self._new_request(self._expires_to_ask(), now)

    def unregister(self, now: float) -> Request | None:
        """Remove our binding (expires=0).

        Returns:
            The REGISTER to send, or ``None`` when nothing is registered (the state becomes
            UNREGISTERED at once and an :class:`Unregistered` event is emitted).
        """
        self.wanted = False
        self._awaiting_first = False
        self._retry_at = None
        self._refresh_at = None
        if self.state is RegistrationState.UNREGISTERED:
            return None
        if self.state is RegistrationState.FAILED and not self._was_registered:
            self._set_state(RegistrationState.UNREGISTERED)
            self._events.append(Unregistered(None, "not registered"))
            return None
        self._set_state(RegistrationState.UNREGISTERING)
        return self._new_request(0, now)

    def transport_lost(self, now: float, detail: str = "") -> None:
        """The flow the binding was on is gone (RFC 5626 §4.4): the binding is unusable.

        Emits :class:`Unregistered` if we were registered or registering (``detail``, e.g.
        the close code and reason, ends its reason), and cancels any refresh, retry or
        outstanding REGISTER; the owner calls :meth:`register` again once a new flow is up.
        """
        pending, self._pending = self._pending, None
        self._refresh_at = self._retry_at = self._timeout_at = None
        previous = self.state
        self._set_state(RegistrationState.UNREGISTERED)
        if previous is RegistrationState.REGISTERING and pending is not None:
            reason = "connection lost during REGISTER"
        elif previous in (RegistrationState.REGISTERED, RegistrationState.REGISTERING):
            reason = "connection to the server lost"
        else:
            return
        self._events.append(Unregistered(None, f"{reason}: {detail}" if detail else reason))

    def connection_failed(self, error: SipError, retry_in: float | None) -> None:
        """No flow could be opened to send a wanted REGISTER on.

        Before the first success since :meth:`want`, that fails the registration
        (:class:`RegistrationFailed` with a :class:`TransportError` naming ``error``, and the
        owner's ``retry_in``); the same failure again is not reported twice. After a success
        it is an outage, already reported by :meth:`transport_lost`.
        """
        if not self.wanted or not self._awaiting_first:
            return
        reason = f"cannot reach the server: {error}"
        same = isinstance(self.error, TransportError) and str(self.error) == reason
        if same and self.state is RegistrationState.FAILED:
            return
        failure = TransportError(reason)
        failure.__cause__ = error.__cause__ or error
        self.error = failure
        self._set_state(RegistrationState.FAILED)
        self._events.append(RegistrationFailed(None, reason, failure, retry_in))

    # -- input -------------------------------------------------------------------------------
    def owns(self, response: Response) -> bool:
        """Whether ``response`` answers the REGISTER this registration has outstanding."""
        pending = self._pending
        if pending is None:
            return False
        try:
            return response.call_id == self.call_id and response.cseq.seq == pending.cseq.seq
        except InvalidMessage:
            return False

    def handle_response(self, response: Response, now: float) -> Request | None:
        """Process a response to the outstanding REGISTER.

        Returns:
            A new REGISTER to send (answering a challenge, or a 423), or ``None``.
        """
        request = self._pending
        if request is None or response.status < 200:
            return None
        self._pending = None
        self._timeout_at = None
        unregistering = self.state is RegistrationState.UNREGISTERING
        status = response.status
        if 200 <= status < 300:
            self._challenged = False
            self._failures = 0
            self._new_attempt()
            if unregistering:
                self.granted_expires = None
                self._set_state(RegistrationState.UNREGISTERED)
                self._was_registered = False
                self._events.append(Unregistered(status, response.reason))
                return None
            granted = self._granted_expires(response)
            if granted <= 0:
                empty = SipError("the registrar accepted the REGISTER but kept no binding for us")
                self._fail(status, response.reason, empty, now, retryable=True)
                return None
            refresh = self._was_registered
            self.granted_expires = granted
            self.error = None
            self._awaiting_first = False
            self._refresh_at = now + max(1.0, granted * self.refresh_fraction)
            self._was_registered = True
            self._set_state(RegistrationState.REGISTERED)
            self._events.append(Registered(status, response.reason, granted, refresh))
            return None
        if status in (401, 407):
            if self.auth is None:
                err = AuthenticationError("the registrar asks for credentials but none are set",
                                          status=status)
                self._fail(status, response.reason, err, now, retryable=False)
                return None
            try:
                retry = self.auth.retry(request, response, self.cseq + 1)
            except AuthenticationError as exc:
                if exc.status is None:
                    exc.status = status
                self._fail(status, response.reason, exc, now, retryable=False)
                return None
            except InvalidMessage as exc:
                err = AuthenticationError(f"unusable challenge: {exc}", status=status)
                self._fail(status, response.reason, err, now, retryable=False)
                return None
            self._challenges += 1
            if self._challenges > self.MAX_CHALLENGES:
                err = AuthenticationError(
                    f"the registrar challenged {self._challenges} REGISTERs in a row",
                    status=status,
                )
                self._fail(status, response.reason, err, now, retryable=False)
                return None
            self._challenged = True
            self.cseq += 1
            return self._send(retry, 0 if unregistering else self._requested_expires, now)
        if status == 423 and not unregistering:
            return self._on_interval_too_brief(response, now)
        retryable = status in _RETRYABLE
        error: SipError
        if status == 403:
            error = AuthenticationError(f"{status} {response.reason}", status=status)
        else:
            error = SipError(f"REGISTER failed: {status} {response.reason}")
        retry_after = _retry_after(response) if retryable else None
        self._fail(status, response.reason, error, now, retryable=retryable,
                   retry_after=retry_after)
        return None

    def _on_interval_too_brief(self, response: Response, now: float) -> Request | None:
        """RFC 3261 §10.2.8: retry with at least Min-Expires, within the bounds above."""
        raw = (response.headers.get("Min-Expires") or "").strip()
        minimum = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 10 else None
        limit = max(self.MAX_EXPIRES, self.expires)
        problem: str | None = None
        if minimum is None:
            problem = "sent no usable Min-Expires"
        elif minimum > limit:
            problem = f"wants Min-Expires {minimum} s, above the {limit} s limit"
        elif minimum <= self._requested_expires:
            problem = (f"wants Min-Expires {minimum} s, but {self._requested_expires} s "
                       "was asked for")
        elif self._interval_retries >= self.MAX_INTERVAL_RETRIES:
            problem = (f"wants Min-Expires {minimum} s after {self._interval_retries} larger "
                       "intervals in one attempt")
        if problem is not None:
            reason = f"{response.reason}: the registrar {problem}"
            error = SipError(f"REGISTER failed: {response.status} {reason}")
            self._fail(response.status, reason, error, now, retryable=False)
            return None
        assert minimum is not None
        self._interval_retries += 1
        self._min_expires = max(self._min_expires, minimum)
        return self._new_request(minimum, now)

    def handle_timeout(self, now: float) -> None:
        """The outstanding REGISTER got no final response in time (its transaction failed;
        :meth:`handle_timer` calls this itself after ``request_timeout``)."""
        if self._pending is None:
            return
        self._pending = None
        self._timeout_at = None
        timeout = TransactionTimeout("no response to REGISTER from the registrar")
        self._fail(None, "no response from the registrar", timeout, now, retryable=True)

    def get_timer(self) -> float | None:
        """The next deadline (refresh, retry or the REGISTER's timeout), or ``None``."""
        deadlines = [
            d for d in (self._refresh_at, self._retry_at, self._timeout_at) if d is not None
        ]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> Request | None:
        """Act on due deadlines. Returns a REGISTER to send, or ``None``."""
        if self._timeout_at is not None and now >= self._timeout_at:
            self.handle_timeout(now)
        if self._refresh_at is not None and now >= self._refresh_at:
            self._refresh_at = None
            if self.state is RegistrationState.REGISTERED and self._pending is None:
                self._new_attempt()
                return self._new_request(self._expires_to_ask(), now)
        if self._retry_at is not None and now >= self._retry_at:
            self._retry_at = None
            if self.state is RegistrationState.FAILED:
                return self.register(now)
        return None

    def events_received(self) -> list[RegistrationEvent]:
        """Drain the events produced since the last call."""
        events, self._events = self._events, []
        return events

    # -- internals ---------------------------------------------------------------------------
    def _set_state(self, state: RegistrationState) -> None:
        if state is not self.state:
            if logger.isEnabledFor(logging.DEBUG):  # (the arguments cost more than the call)
                logger.debug("= %s %s -> %s", self.aor.aor, self.state.value, state.value)
            self.state = state

    def _new_attempt(self) -> None:
        self._challenges = 0
        self._interval_retries = 0

    def _expires_to_ask(self) -> int:
        return max(self.expires, self._min_expires)

    def _fail(
        self,
        status: int | None,
        reason: str,
        error: SipError,
        now: float,
        *,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        was = self.state
        self._refresh_at = None
        self._challenged = False
        self._new_attempt()
        retry_in: float | None = None
        if retryable and was is not RegistrationState.UNREGISTERING:
            self._failures += 1
            retry_in = self.retry_delays[min(self._failures, len(self.retry_delays)) - 1]
            if retry_after is not None:
                # Not sooner than the server asked (RFC 3261 §20.33), within reason.
                retry_in = max(retry_in, min(retry_after, self.MAX_RETRY_AFTER))
            self._retry_at = now + retry_in
        if was is RegistrationState.UNREGISTERING:
            self._set_state(RegistrationState.UNREGISTERED)
            self._was_registered = False
        else:
            self._set_state(RegistrationState.FAILED)
        if self.auth is not None and not retryable:
            self.auth.reset()
        self.error = error
        self._events.append(RegistrationFailed(status, reason, error, retry_in))

    def _granted_expires(self, response: Response) -> int:
        # RFC 3261 §10.2.4: the binding's expires param, else the Expires header.
        header_expires = response.headers.get("Expires")
        found, params = self._echoed_binding(response)
        if not found:
            params = self._matching_binding(response)
        if params is None:
            if header_expires is None:
                # Some registrars echo no Contact; trust what we asked for.
                return self._requested_expires
        else:
            value = params.get("expires") or header_expires
            if value is not None:
                try:
                    return int(value.strip())
                except ValueError:
                    pass
        try:
            return int((header_expires or "").strip())
        except ValueError:
            return self._requested_expires

    def _echoed_binding(self, response: Response) -> tuple[bool, dict[str, str | None] | None]:
        """Our binding's parameters without parsing every Contact, when that is certain.

        Registrars echo the Contact URI they stored as it was sent (Kamailio does): the first
        value that starts with our ``<URI>`` is ours, if no value before it could be ours by
        the general rule of :meth:`_matching_binding` (same ``+sip.instance``, or same user
        and host: such a value would hold our instance id or host as text). Returns
        ``(False, None)`` when unsure.
        """
        ours = self._render()[3]
        instance = self.contact.params.get("+sip.instance")
        host = self.contact.sip_uri.host.lower()
        for raw in response.headers.get_all("Contact"):
            if raw.startswith(ours):
                try:
                    return True, parse_params(raw[len(ours):])
                except InvalidMessage:
                    return False, None
            if "\\" in raw or host in raw.lower() or (instance is not None and instance in raw):
                return False, None
        return False, None

    def _matching_binding(self, response: Response) -> dict[str, str | None] | None:
        """The parameters of the first binding that is ours, parsing every Contact."""
        ours = self.contact
        instance = ours.params.get("+sip.instance")
        our_uri = ours.sip_uri
        for binding in _safe_contacts(response):
            uri = binding.uri
            same = (instance is not None and binding.params.get("+sip.instance") == instance) or (
                isinstance(uri, SipURI) and uri.user == our_uri.user and uri.host == our_uri.host
            )
            if same:
                return binding.params
        return None

    def _new_request(self, expires: int, now: float) -> Request:
        self.cseq += 1
        self._requested_expires = expires if expires else self._requested_expires
        to, from_, contact, _ = self._render()
        if contact is None:  # the Contact has an expires parameter of its own: replace it
            params = dict(self.contact.params)
            params["expires"] = str(expires)
            contact = str(NameAddr(self.contact.uri, None, params))
        else:
            contact = f"{contact};expires={expires}"
        items = [
            ("Max-Forwards", "70"),
            ("To", to),
            ("From", from_),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} REGISTER"),
            ("Contact", contact),
            ("Expires", str(expires)),
            ("Allow", ALLOW),
            ("Supported", "path, outbound, gruu"),
        ]
        if self.user_agent:
            items.append(("User-Agent", self.user_agent))
        # The names above are spelled canonically: no canonical_name() pass needed.
        request = Request("REGISTER", self.registrar, Headers._from_canonical(items))
        if self.auth is not None:
            try:
                auth = self.auth.authorize(request)
            except AuthenticationError:
                auth = None
            if auth is not None:
                request.headers.add(*auth)
        return self._send(request, expires, now)

    def _send(self, request: Request, expires: int, now: float) -> Request:
        """Make ``request`` the outstanding REGISTER (the owner sends it)."""
        self._pending = request
        self._timeout_at = now + self.request_timeout
        self._events.append(RegisterSent(None, "REGISTER sent", expires))
        return request

    def _render(self) -> tuple[str, str, str | None, str]:
        """To, From, Contact (without ``expires``; ``None`` if it has one) and ``<Contact URI>``
        as text."""
        done = self._rendered_for
        if (
            done is not None
            and done[0] is self.aor
            and done[1] is self.contact
            and done[2] is self.display_name
            and done[3] is self.from_tag
        ):
            return self._rendered
        key = (self.aor, self.contact, self.display_name, self.from_tag)
        contact = self.contact
        contact_text = None
        if "expires" not in contact.params:
            contact_text = str(NameAddr(contact.uri, None, contact.params))
        self._rendered = (
            str(NameAddr(self.aor)),
            str(NameAddr(self.aor, self.display_name, {"tag": self.from_tag})),
            contact_text,
            f"<{contact.uri}>",
        )
        self._rendered_for = key
        return self._rendered


_RETRYABLE = frozenset((408, 480, 500, 502, 503, 504))
_RETRY_AFTER_RE = re.compile(r"[ \t]*([0-9]+)")


def _retry_after(response: Response) -> float | None:
    """The delta-seconds of ``Retry-After`` (RFC 3261 §20.33: ``delta-seconds [comment]
    *(;retry-param)``), or ``None`` when absent or unreadable."""
    try:
        value = response.headers.get("Retry-After")
    except InvalidMessage:
        return None
    if value is None:
        return None
    m = _RETRY_AFTER_RE.match(value)
    if m is None:
        return None
    digits = m.group(1)
    return float(digits) if len(digits) <= 12 else float("inf")  # (capped by the caller)


def _safe_contacts(response: Response) -> list[NameAddr]:
    try:
        return response.contacts
    except InvalidMessage:
        return []
