"""HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760).

Theory of operation
-------------------
:class:`DigestAuth` is a sans-I/O helper owned by one user agent. It never sends anything:

1. A request gets a ``401`` (``WWW-Authenticate``) or ``407`` (``Proxy-Authenticate``).
   The caller passes both to :meth:`DigestAuth.respond`, which returns the header to add
   to the retried request (``Authorization`` or ``Proxy-Authorization``). The caller builds
   the retry as a *new* transaction: new Via branch, CSeq + 1, same Call-ID and From tag
   (RFC 3261 §8.1.3.5, §22.2).
2. The challenge is cached per ``(header kind, realm)``, with the methods of the requests
   it was earned for. :meth:`DigestAuth.authorize` returns credentials for a later request
   of such a method (a REGISTER refresh, the next INVITE) with the next nonce count
   (``nc``), without waiting for a new challenge (RFC 7616 §3.4).

   Scope: RFC 3261 §22.3 has the UAC cache the credentials of a re-originated request per
   realm; a ``407`` only says that a proxy on *that* request's path wants them, and a
   ``401`` to a REGISTER comes from the registrar. So credentials are used pre-emptively
   only on requests of a method that earned them: a REGISTER never carries the
   ``Proxy-Authorization`` an INVITE's ``407`` earned, and an INVITE never carries the
   registrar's ``Authorization`` unless an INVITE was challenged for that realm too.

Failure detection is *per transaction*, from what the challenged request carried, so no
"success" notification is needed and a refresh five minutes later that meets a fresh
``401`` is simply answered again:

* The request carried credentials for the same nonce the server challenges with again,
  without ``stale=true``: the server refused those credentials →
  :class:`~exotel_voice.exceptions.AuthenticationError`. (A wrong password: one retry.)
* The request was our answer to a challenge (the credentials :meth:`respond` returned,
  not since re-issued by :meth:`authorize`) and the server challenges it with a *new*
  nonce, or with ``stale=true``: a fresh challenge, answered once. If that answer is
  challenged again, the server keeps refusing what we send → ``AuthenticationError``, so
  a broken or hostile server cannot make us loop (at most two answers in a row).
* Anything else (no credentials sent, or pre-emptive credentials from :meth:`authorize`
  with an older nonce: it expired, or the server restarted with a new secret) is answered
  with the new challenge.

Without ``qop`` (RFC 2069 form, Kamailio's stock setting) the credentials for one nonce,
method and URI are the same text every time, so "our answer" cannot be told from a later
pre-emptive copy by the text alone: :meth:`authorize` marks the cached answer as used.

Algorithms: ``MD5``, ``MD5-sess``, ``SHA-256``, ``SHA-256-sess``, ``SHA-512-256`` and
``SHA-512-256-sess`` (the last two only when the local OpenSSL provides SHA-512/256).
When a response offers several challenges for one realm, the strongest supported one
wins (RFC 8760 §2.4 lets a server offer one challenge per algorithm, preferred first;
we rank by hash strength, SHA-512-256 > SHA-256 > MD5, and ties keep server order).
``qop=auth`` and the RFC 2069 form without ``qop`` are supported; ``auth-int`` is not.

Neither ``repr`` nor any exception ever shows the password, H(A1) or a ``response=`` value.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from ..exceptions import AuthenticationError, InvalidMessage
from .message import Request, Response


__all__ = [
    "SUPPORTED_ALGORITHMS",
    "DigestAuth",
    "DigestChallenge",
    "digest_hash",
    "format_challenge",
    "parse_challenge",
    "parse_challenges",
    "quote",
]


def _hasher(name: str) -> Callable[[bytes], str] | None:
    """The hex-digest function of hashlib's ``name``, or ``None`` if OpenSSL lacks it."""
    try:
        hashlib.new(name, b"")
    except ValueError:  # pragma: no cover - depends on the OpenSSL build
        return None

    def digest(data: bytes) -> str:
        return hashlib.new(name, data).hexdigest()

    return digest


_MD5 = _hasher("md5")
_SHA256 = _hasher("sha256")
_SHA512_256 = _hasher("sha512_256")

# Algorithm token (upper case) -> (hash function, is a "-sess" variant, strength rank).
_ALGORITHMS: dict[str, tuple[Callable[[bytes], str], bool, int]] = {}
for _name, _fn, _rank in (
    ("MD5", _MD5, 1),
    ("SHA-256", _SHA256, 2),
    ("SHA-512-256", _SHA512_256, 3),
):
    if _fn is not None:
        _ALGORITHMS[_name] = (_fn, False, _rank)
        _ALGORITHMS[_name + "-SESS"] = (_fn, True, _rank)

#: Digest algorithms this module can answer, upper case (RFC 7616 §6.1 registry names).
SUPPORTED_ALGORITHMS: frozenset[str] = frozenset(_ALGORITHMS)


def digest_hash(algorithm: str) -> Callable[[bytes], str] | None:
    """The hex-digest function of a Digest ``algorithm`` token (``MD5``, ``SHA-256`` ...,
    ``-sess`` variants included), or ``None`` if unsupported."""
    entry = _ALGORITHMS.get(algorithm.upper())
    return entry[0] if entry is not None else None


@dataclass
class DigestChallenge:
    """One parsed ``WWW-Authenticate``/``Proxy-Authenticate`` Digest challenge (RFC 7616 §3.3).

    Attributes:
        scheme: always ``"Digest"``.
        realm: the protection space, e.g. ``"127.0.0.1"``.
        nonce: the server nonce.
        opaque: the opaque value to echo back, or ``None``.
        algorithm: upper-cased algorithm token; ``"MD5"`` when absent.
        qop: the offered qop values, lower-cased (``[]`` when absent: RFC 2069 mode).
        stale: ``True`` when the server says the previous nonce was stale.
        domain: the ``domain`` parameter, or ``None``.
        params: every parameter as received (names lower-cased, values unquoted).
    """

    scheme: str
    realm: str
    nonce: str
    opaque: str | None = None
    algorithm: str = "MD5"
    qop: list[str] = field(default_factory=list)
    stale: bool = False
    domain: str | None = None
    params: dict[str, str] = field(default_factory=dict, repr=False, compare=False)


# --------------------------------------------------------------------------------------------
# Parsing (RFC 7235 §2.1 / RFC 3261 §25.1 challenge = auth-scheme LWS auth-param *(COMMA ...))
# --------------------------------------------------------------------------------------------

_TOKEN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
_SEP_RE = re.compile(r"[\s,]*")
_PARAM_RE = re.compile(
    rf"({_TOKEN})[ \t]*=[ \t]*(?:\"((?:[^\"\\]|\\.)*)\"|([^\s,\"]+))[ \t]*", re.DOTALL
)
_SCHEME_RE = re.compile(rf"({_TOKEN})(?:[ \t]+|$)")
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*[ \t]*(?=,|$)")
_UNESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)


def _split_auth(value: str) -> list[tuple[str, dict[str, str]]]:
    """Split a challenge or credentials header value into ``(scheme, params)`` pairs.

    Several challenges may share one header value, separated by commas; a new one starts
    where a token is followed by whitespace instead of ``=``.
    """
    out: list[tuple[str, dict[str, str]]] = []
    params: dict[str, str] | None = None
    pos = 0
    n = len(value)
    while True:
        pos = _SEP_RE.match(value, pos).end()  # type: ignore[union-attr]  # always matches
        if pos >= n:
            break
        if params is not None:
            m = _PARAM_RE.match(value, pos)
            if m is not None:
                quoted = m.group(2)
                if quoted is None:
                    params[m.group(1).lower()] = m.group(3)
                else:
                    params[m.group(1).lower()] = _UNESCAPE_RE.sub(r"\1", quoted)
                pos = m.end()
                if pos < n and value[pos] != ",":
                    # Positions only: the text may be someone's credentials.
                    raise InvalidMessage(f"invalid auth parameter list at offset {pos}")
                continue
        m = _SCHEME_RE.match(value, pos)
        if m is None:
            raise InvalidMessage(f"invalid authentication header at offset {pos}")
        params = {}
        out.append((m.group(1), params))
        pos = m.end()
        if _PARAM_RE.match(value, pos) is None:
            t = _TOKEN68_RE.match(value, pos)  # e.g. "Basic dXNlcjpwYXNz": not ours, skip it
            if t is not None:
                pos = t.end()
    return out


def _challenge_from_params(scheme: str, params: dict[str, str]) -> DigestChallenge:
    realm = params.get("realm")
    nonce = params.get("nonce")
    if realm is None:
        raise InvalidMessage("Digest challenge without realm")
    if nonce is None:
        raise InvalidMessage("Digest challenge without nonce")
    return DigestChallenge(
        scheme="Digest",
        realm=realm,
        nonce=nonce,
        opaque=params.get("opaque"),
        algorithm=params.get("algorithm", "MD5").upper(),
        qop=_qop_list(params.get("qop")),
        stale=params.get("stale", "").lower() == "true",
        domain=params.get("domain"),
        params=params,
    )


def _qop_list(qop: str | None) -> list[str]:
    if qop is None:
        return []
    return [q.strip().lower() for q in qop.split(",") if q.strip()]


def parse_challenges(value: str) -> list[DigestChallenge]:
    """Parse every Digest challenge in one header value; other schemes are skipped.

    Args:
        value: a ``WWW-Authenticate`` or ``Proxy-Authenticate`` header value.

    Returns:
        The Digest challenges, in order (possibly empty).

    Raises:
        InvalidMessage: the value is syntactically broken, or a Digest challenge lacks
            ``realm`` or ``nonce`` (RFC 7616 §3.3: both are required).
    """
    return [
        _challenge_from_params(scheme, params)
        for scheme, params in _split_auth(value)
        if scheme.lower() == "digest"
    ]


def parse_challenge(value: str) -> DigestChallenge:
    """Parse a ``WWW-Authenticate``/``Proxy-Authenticate`` value holding a Digest challenge.

    If the value holds several challenges, the first Digest one is returned (use
    :func:`parse_challenges` for all of them).

    Args:
        value: the header value, e.g. ``'Digest realm="127.0.0.1", nonce="abc", qop="auth"'``.

    Returns:
        The parsed challenge.

    Raises:
        InvalidMessage: the value is garbage, or the challenge lacks ``realm``/``nonce``.
        AuthenticationError: the value is well formed but holds no Digest challenge
            (e.g. ``Basic realm="x"``).
    """
    challenges = parse_challenges(value)
    if not challenges:
        raise AuthenticationError("no Digest challenge (only other authentication schemes)")
    return challenges[0]


# --------------------------------------------------------------------------------------------
# Computing credentials
# --------------------------------------------------------------------------------------------


def quote(value: str) -> str:
    """A quoted-string (RFC 3261 §25.1) holding ``value``, with ``\\`` and ``"`` escaped."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def format_challenge(challenge: DigestChallenge) -> str:
    """Serialise a challenge as a ``WWW-Authenticate``/``Proxy-Authenticate`` value.

    The inverse of :func:`parse_challenge` (for a server, such as the sandbox): ``algorithm``
    and ``stale`` are unquoted tokens, ``qop`` and ``domain`` quoted (RFC 7616 §3.3).
    """
    parts = [f"realm={quote(challenge.realm)}", f"nonce={quote(challenge.nonce)}"]
    if challenge.opaque is not None:
        parts.append(f"opaque={quote(challenge.opaque)}")
    parts.append(f"algorithm={challenge.algorithm}")
    if challenge.qop:
        parts.append(f"qop={quote(','.join(challenge.qop))}")
    if challenge.stale:
        parts.append("stale=true")
    if challenge.domain is not None:
        parts.append(f"domain={quote(challenge.domain)}")
    return "Digest " + ", ".join(parts)


@dataclass
class _Cached:
    """A challenge we answered, with its nonce count and -sess state."""

    challenge: DigestChallenge
    nc: int = 0
    sess_cnonce: str | None = None
    # H(A1) is password-equivalent and ``issued`` holds a response=: never in a repr.
    sess_ha1: str | None = field(default=None, repr=False)
    # The credentials value respond() returned last, and whether it answered a stale=true.
    issued: str | None = field(default=None, repr=False)
    issued_for_stale: bool = False
    # How many challenges in a row ``issued`` answers (1: a first challenge; 2: a challenge
    # of our answer), and whether it is still our latest answer (authorize() clears this:
    # a pre-emptive copy of the same text is not an answer).
    answers: int = 0
    answer_pending: bool = False
    # The methods of the requests whose challenges earned this entry (RFC 3261 §22.3 scope).
    methods: set[str] = field(default_factory=set)


_STATUS_HEADERS = {
    401: ("WWW-Authenticate", "Authorization"),
    407: ("Proxy-Authenticate", "Proxy-Authorization"),
}


def _default_cnonce() -> str:
    """A client nonce: 128 random bits in hex."""
    return secrets.token_hex(16)


# Challenges answered in a row for one realm (a first challenge, then one fresh or stale
# challenge of our answer) before a further challenge counts as a refusal.
_MAX_ANSWERS = 2


class DigestAuth:
    """Answers Digest challenges for one SIP account (RFC 3261 §22.2, §22.3).

    Args:
        username: the authentication user (``authUser``), sent as ``username=``.
        password: the password; never shown by ``repr`` or in exceptions.
        cnonce_factory: returns a fresh client nonce; defaults to 128 random bits in hex
            (:func:`secrets.token_hex`). Tests inject a fixed value.
    """

    def __init__(
        self,
        username: str,
        password: str,
        *,
        cnonce_factory: Callable[[], str] | None = None,
    ) -> None:
        self.username = username
        self._password = password
        self._cnonce_factory = cnonce_factory or _default_cnonce
        # (credentials header name, realm) -> state; insertion order = most recent last.
        self._cache: dict[tuple[str, str], _Cached] = {}

    def __repr__(self) -> str:
        realms = [realm for (_, realm) in self._cache]
        return f"DigestAuth(username={self.username!r}, password='[secure]', realms={realms!r})"

    # -- public API ------------------------------------------------------------------------
    def respond(self, request: Request, response: Response) -> tuple[str, str]:
        """Answer a ``401``/``407`` and remember its challenge for :meth:`authorize`.

        If the response challenges for several realms (a forking proxy, RFC 3261 §22.3),
        this answers the first realm; :meth:`respond_all` answers each of them.

        Args:
            request: the request that was challenged, as it was sent.
            response: the ``401`` or ``407`` response to it.

        Returns:
            ``(header_name, header_value)`` to add to the retried request, e.g.
            ``("Authorization", 'Digest username="alice", ...')``.

        Raises:
            AuthenticationError: the retry must not be sent (``.status`` is the response
                status): the credentials were already rejected, the response has no
                (usable) Digest challenge, or only unsupported algorithms / ``auth-int``
                are offered.
        """
        return self.respond_all(request, response)[0]

    def retry(self, request: Request, response: Response, cseq: int) -> Request:
        """``request`` again, answering ``response``'s challenge: the one digest retry of
        REGISTER, INVITE and in-dialog requests (RFC 3261 §22.2).

        A copy without Via (a new transaction), with CSeq number ``cseq`` and the credentials
        of :meth:`respond` in place of any the request carried.

        Raises:
            AuthenticationError: as for :meth:`respond`.
            InvalidMessage: the challenge cannot be read.
        """
        name, value = self.respond(request, response)
        retry = Request(request.method, request.uri, request.headers.copy(), request.body)
        retry.headers.remove("Via")
        retry.headers.remove(name)
        retry.headers.set("CSeq", f"{cseq} {request.method}")
        retry.headers.add(name, value)
        return retry

    def respond_all(self, request: Request, response: Response) -> list[tuple[str, str]]:
        """Like :meth:`respond`, but one header per challenging realm, in response order.

        Raises:
            AuthenticationError: as for :meth:`respond`, if any realm cannot be answered.
        """
        status = response.status
        kinds = _STATUS_HEADERS.get(status)
        if kinds is None:
            raise AuthenticationError(f"{status} is not an authentication challenge", status=status)
        challenge_header, credentials_header = kinds
        values = response.headers.get_all(challenge_header)
        if not values:
            raise AuthenticationError(
                f"{status} response without {challenge_header}", status=status
            )

        by_realm: dict[str, list[DigestChallenge]] = {}
        problems: list[str] = []
        for value in values:
            try:
                challenges = parse_challenges(value)
            except InvalidMessage as exc:
                problems.append(str(exc))
                continue
            for ch in challenges:
                by_realm.setdefault(ch.realm, []).append(ch)
        if not by_realm:
            detail = f" ({'; '.join(problems)})" if problems else ""
            raise AuthenticationError(
                f"{status} response has no usable Digest challenge{detail}", status=status
            )

        sent = self._sent_credentials(request, credentials_header)
        # Check every realm before changing any state, so a failure leaves the cache as it was.
        chosen: list[tuple[DigestChallenge, int]] = []
        for realm, offered in by_realm.items():
            challenge = self._choose(offered, status)
            carried = sent.get(realm)
            answers = 1
            if carried is not None:
                cached = self._cache.get((credentials_header, realm))
                answers = self._check_rejected(carried, challenge, cached, status)
            chosen.append((challenge, answers))
        out: list[tuple[str, str]] = []
        method = request.method
        for challenge, answers in chosen:
            key = (credentials_header, challenge.realm)
            cached = self._cache.get(key)
            if cached is None or cached.challenge.nonce != challenge.nonce:
                methods = cached.methods if cached is not None else set()
                cached = _Cached(challenge, methods=methods)
            else:
                cached.challenge = challenge
            cached.methods.add(method)
            self._cache.pop(key, None)
            self._cache[key] = cached  # most recent last
            value = self._credentials(request, cached)
            cached.issued = value
            cached.issued_for_stale = challenge.stale
            cached.answers = answers
            cached.answer_pending = True
            out.append((credentials_header, value))
        return out

    def authorize(self, request: Request) -> tuple[str, str] | None:
        """Credentials for a new request from the most recently cached challenge that a
        request of the same method earned (see "Scope" in the module docstring).

        Each call uses the next nonce count (``nc``) for that nonce (RFC 7616 §3.4: "the
        nc value ... MUST be incremented for each request that uses the same nonce").

        Args:
            request: the new request (its method and Request-URI are digested).

        Returns:
            ``(header_name, header_value)``, or ``None`` if no such challenge is cached.
        """
        method = request.method
        for (header, _), cached in reversed(self._cache.items()):
            if method in cached.methods:
                cached.answer_pending = False
                return header, self._credentials(request, cached)
        return None

    def authorize_all(self, request: Request) -> list[tuple[str, str]]:
        """Credentials for a new request for every cached challenge that a request of the
        same method earned (oldest first)."""
        method = request.method
        out: list[tuple[str, str]] = []
        for (header, _), cached in self._cache.items():
            if method in cached.methods:
                cached.answer_pending = False
                out.append((header, self._credentials(request, cached)))
        return out

    def reset(self) -> None:
        """Forget every cached challenge, nonce count and retry marker."""
        self._cache.clear()

    # -- internals -------------------------------------------------------------------------
    @staticmethod
    def _choose(offered: list[DigestChallenge], status: int) -> DigestChallenge:
        usable = [
            c for c in offered if c.algorithm in _ALGORITHMS and (not c.qop or "auth" in c.qop)
        ]
        if not usable:
            algorithms = ", ".join(sorted({c.algorithm for c in offered}))
            qops = ", ".join(sorted({q for c in offered for q in c.qop})) or "none"
            raise AuthenticationError(
                f"cannot answer Digest challenge for realm {offered[0].realm!r}: "
                f"algorithm(s) {algorithms}, qop {qops} (supported: "
                f"{', '.join(sorted(_ALGORITHMS))}; qop auth or none)",
                status=status,
            )
        # max() keeps the first of equal rank: servers list their preference first.
        return max(usable, key=lambda c: _ALGORITHMS[c.algorithm][2])

    def _sent_credentials(self, request: Request, header: str) -> dict[str, tuple[str, str]]:
        """realm -> (raw value, nonce) of the Digest credentials the request carried."""
        out: dict[str, tuple[str, str]] = {}
        for value in request.headers.get_all(header):
            try:
                parts = _split_auth(value)
            except InvalidMessage:
                continue
            for scheme, params in parts:
                if scheme.lower() == "digest" and "realm" in params:
                    out[params["realm"]] = (value, params.get("nonce", ""))
        return out

    @staticmethod
    def _check_rejected(
        carried: tuple[str, str], challenge: DigestChallenge, cached: _Cached | None, status: int
    ) -> int:
        """Raise if the challenge refuses credentials; else how many challenges in a row
        the answer to it answers (see the module docstring)."""
        value, nonce = carried
        if not challenge.stale and nonce == challenge.nonce:
            raise AuthenticationError(
                f"credentials for realm {challenge.realm!r} were rejected ({status})",
                status=status,
            )
        if cached is None or not cached.answer_pending or cached.issued != value:
            return 1  # pre-emptive credentials (an old nonce) or not ours: a first challenge
        if cached.answers < _MAX_ANSWERS:
            return cached.answers + 1
        if challenge.stale and cached.issued_for_stale:
            raise AuthenticationError(
                f"realm {challenge.realm!r} answered a stale-nonce retry with another "
                f"stale challenge ({status})",
                status=status,
            )
        raise AuthenticationError(
            f"credentials for realm {challenge.realm!r} were rejected: {_MAX_ANSWERS} answers "
            f"in a row were challenged again ({status})",
            status=status,
        )

    def _ha1(self, hash_fn: Callable[[bytes], str], realm: str) -> str:
        """H(username:realm:password) (password-equivalent: never kept or shown)."""
        return hash_fn(f"{self.username}:{realm}:{self._password}".encode())

    def _credentials(self, request: Request, cached: _Cached) -> str:
        ch = cached.challenge
        hash_fn, sess, _ = _ALGORITHMS[ch.algorithm]
        uri = str(request.uri)
        cached.nc += 1
        nc = f"{cached.nc:08x}"
        use_qop = "auth" in ch.qop
        cnonce: str | None = None
        # RFC 7616 §3.4.2: A1 = H(user:realm:pass):nonce:cnonce for -sess, computed once
        # per nonce with the first cnonce; we keep that cnonce for the nonce's lifetime so
        # both server readings of the rule agree.
        if sess:
            if cached.sess_ha1 is None or cached.sess_cnonce is None:
                cached.sess_cnonce = self._cnonce_factory()
                ha1_base = self._ha1(hash_fn, ch.realm)
                cached.sess_ha1 = hash_fn(f"{ha1_base}:{ch.nonce}:{cached.sess_cnonce}".encode())
            ha1 = cached.sess_ha1
            cnonce = cached.sess_cnonce
        else:
            ha1 = self._ha1(hash_fn, ch.realm)
            if use_qop:
                cnonce = self._cnonce_factory()
        # RFC 7616 §3.4.3: A2 = Method ":" request-uri (qop=auth or absent).
        ha2 = hash_fn(f"{request.method}:{uri}".encode())
        if use_qop:
            digest = hash_fn(f"{ha1}:{ch.nonce}:{nc}:{cnonce}:auth:{ha2}".encode())
        else:
            # RFC 2069 compatibility (RFC 2617 §3.2.2.1): response = KD(H(A1), nonce:H(A2)).
            digest = hash_fn(f"{ha1}:{ch.nonce}:{ha2}".encode())
        # The digest is hex and the algorithm (as the server spelt it) a token: no quoting.
        value = (
            f"Digest username={quote(self.username)}, realm={quote(ch.realm)}, "
            f'nonce={quote(ch.nonce)}, uri={quote(uri)}, response="{digest}", '
            f"algorithm={ch.params.get('algorithm', 'MD5')}"
        )
        if cnonce is not None:
            value = f"{value}, cnonce={quote(cnonce)}"
        if ch.opaque is not None:
            value = f"{value}, opaque={quote(ch.opaque)}"
        if use_qop:
            # RFC 7616 §3.4: qop and nc are sent unquoted.
            value = f"{value}, qop=auth, nc={nc}"
        return value
