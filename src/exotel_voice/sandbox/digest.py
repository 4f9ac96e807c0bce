"""The server side of SIP digest authentication (RFC 3261 §22, RFC 7616), for the sandbox.

The client side lives in :mod:`exotel_voice.sip.auth`; this module reuses its
:class:`~exotel_voice.sip.auth.DigestChallenge` as the challenge model and its parser
(:func:`~exotel_voice.sip.auth.parse_challenges`) for credentials, which share the
challenge's ``auth-param`` syntax.

Nonces are stateless: ``<issued-at hex>.<HMAC(secret, issued-at:realm)>``, so any nonce
we issued can be checked without a table, and one older than ``nonce_ttl`` is answered
with ``stale=true`` (RFC 7616 §3.3) rather than as a wrong password.

A nonce we did not issue (signed with another secret: the previous run's, after a restart;
or no nonce of ours at all) is not a wrong password either: the client may simply hold
credentials from before the restart. Like Kamailio, we answer it with a fresh challenge,
and with ``stale=true`` when the digest is right for that nonce (RFC 7616 §3.3: the
password was right, only the nonce is not ours), so the client retries without treating
it as a refusal. A wrong password is refused (403) only on a nonce of ours.

Nothing here logs, and no exception or repr shows a password or a ``response=`` value.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..exceptions import SipError
from ..sip.auth import DigestChallenge, digest_hash, format_challenge, parse_challenges
from ..sip.message import Request


__all__ = ["DigestServer", "Verdict", "VerifyResult", "format_challenge"]

#: What this server offers; the hash functions come from :mod:`exotel_voice.sip.auth`.
SERVER_ALGORITHMS = frozenset({"MD5", "SHA-256"})


class Verdict(enum.Enum):
    """What :meth:`DigestServer.verify` concluded."""

    OK = "ok"
    MISSING = "missing"  # no credentials for our realm: challenge
    STALE = "stale"  # our nonce, expired: challenge with stale=true
    UNKNOWN_USER = "unknown-user"
    FOREIGN = "foreign"  # a nonce we did not issue, and a wrong digest: challenge afresh
    WRONG = "wrong"  # bad response to our nonce, malformed: reject


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of checking one request's credentials.

    Attributes:
        verdict: the :class:`Verdict`.
        username: the ``username=`` the client sent, if any (never the password).
    """

    verdict: Verdict
    username: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the credentials are good."""
        return self.verdict is Verdict.OK


class DigestServer:
    """Issues digest challenges and checks credentials against a user table.

    Args:
        realm: the protection realm.
        users: username -> password; read at every check, so it may change later.
        algorithm: ``"MD5"`` (what SIP.js and Exotel use) or ``"SHA-256"``.
        nonce_ttl: seconds a nonce stays fresh.
        clock: a function returning the current time in seconds (wall or monotonic).
    """

    def __init__(
        self,
        realm: str,
        users: Mapping[str, str],
        *,
        algorithm: str = "MD5",
        nonce_ttl: float = 300.0,
        clock: Callable[[], float],
    ) -> None:
        algorithm = algorithm.upper()
        if algorithm not in SERVER_ALGORITHMS:
            raise ValueError(f"unsupported digest algorithm {algorithm!r}")
        self.realm = realm
        self.algorithm = algorithm
        self.nonce_ttl = nonce_ttl
        self._users = users
        self._clock = clock
        self._secret = secrets.token_bytes(32)
        self._opaque = secrets.token_hex(8)

    def __repr__(self) -> str:
        return f"<DigestServer realm={self.realm!r} algorithm={self.algorithm}>"

    # -- nonces ------------------------------------------------------------------------------
    def _sign(self, issued: str) -> str:
        mac = hmac.new(self._secret, f"{issued}:{self.realm}".encode(), hashlib.sha256)
        return mac.hexdigest()[:32]

    def new_nonce(self) -> str:
        """A fresh nonce carrying its issue time and our signature."""
        issued = format(int(self._clock() * 1000), "x")
        return f"{issued}.{self._sign(issued)}"

    def _nonce_state(self, nonce: str) -> Verdict:
        """``OK``, ``STALE`` (ours, expired) or ``FOREIGN`` (not ours)."""
        issued, sep, mac = nonce.partition(".")
        if not sep or not hmac.compare_digest(mac, self._sign(issued)):
            return Verdict.FOREIGN
        try:
            age = self._clock() - int(issued, 16) / 1000
        except ValueError:
            return Verdict.FOREIGN
        return Verdict.STALE if age > self.nonce_ttl else Verdict.OK

    # -- challenges --------------------------------------------------------------------------
    def challenge(self, *, stale: bool = False) -> DigestChallenge:
        """A new challenge (``qop=auth``) for our realm."""
        return DigestChallenge(
            scheme="Digest",
            realm=self.realm,
            nonce=self.new_nonce(),
            opaque=self._opaque,
            algorithm=self.algorithm,
            qop=["auth"],
            stale=stale,
        )

    def challenge_header(self, *, stale: bool = False) -> str:
        """:meth:`challenge`, formatted as a header value."""
        return format_challenge(self.challenge(stale=stale))

    # -- verification ------------------------------------------------------------------------
    def verify(self, request: Request, header: str = "Authorization") -> VerifyResult:
        """Check the Digest credentials in ``header`` of ``request`` (RFC 7616 §3.4).

        Args:
            request: the request (its method is part of the digest).
            header: ``"Authorization"`` (after a 401) or ``"Proxy-Authorization"`` (407).

        Returns:
            The verdict and the username the client claimed: ``STALE`` for our expired
            nonce, and for a nonce we did not issue whose digest is right (answer with
            ``stale=true``); ``FOREIGN`` for a nonce we did not issue with a wrong digest
            (answer with a fresh challenge); ``WRONG`` for a wrong digest on our own nonce.
        """
        params: dict[str, str] | None = None
        for value in request.headers.get_all(header):
            try:
                parsed = parse_challenges(value)
            except SipError:
                return VerifyResult(Verdict.WRONG)
            for creds in parsed:
                if creds.realm == self.realm:
                    params = creds.params
        if params is None:
            return VerifyResult(Verdict.MISSING)
        username = params.get("username")
        if username is None:
            return VerifyResult(Verdict.WRONG)
        password = self._users.get(username)
        if password is None:
            return VerifyResult(Verdict.UNKNOWN_USER, username)
        nonce = params.get("nonce", "")
        state = self._nonce_state(nonce)
        if state is Verdict.STALE:
            return VerifyResult(state, username)
        algorithm = params.get("algorithm", "MD5").upper()
        hash_fn = digest_hash(algorithm) if algorithm in SERVER_ALGORITHMS else None
        if hash_fn is None:
            return VerifyResult(Verdict.WRONG, username)
        # The opaque value goes with the nonce: a foreign nonce brings its server's opaque.
        if state is Verdict.OK and params.get("opaque", self._opaque) != self._opaque:
            return VerifyResult(Verdict.WRONG, username)
        # RFC 3261 §22.4 / RFC 2617 §3.2.2.5: the digest-uri is what the client signed; we
        # accept any value, as proxies do (the Request-URI may have been rewritten).
        uri = params.get("uri", "")
        ha1 = hash_fn(f"{username}:{self.realm}:{password}".encode())
        ha2 = hash_fn(f"{request.method}:{uri}".encode())
        qop = params.get("qop")
        if qop is None:
            expected = hash_fn(f"{ha1}:{nonce}:{ha2}".encode())
        elif qop.lower() == "auth":
            nc = params.get("nc", "")
            cnonce = params.get("cnonce", "")
            expected = hash_fn(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode())
        else:
            return VerifyResult(Verdict.WRONG, username)
        right = hmac.compare_digest(expected, params.get("response", "").lower())
        if state is Verdict.FOREIGN:
            return VerifyResult(Verdict.STALE if right else Verdict.FOREIGN, username)
        return VerifyResult(Verdict.OK if right else Verdict.WRONG, username)
