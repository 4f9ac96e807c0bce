"""Masking secrets in wire dumps and URLs before they reach a log.

Every full SIP/SDP dump logged at DEBUG goes through :func:`redact`, and every WebSocket URL
through :func:`redact_url`. What is masked (replaced by ``[secure]``):

* the whole value of ``Authorization`` and ``Proxy-Authorization`` header fields, folded
  continuation lines included (the header name stays, so the log still shows that
  credentials were sent), also as websockets logs handshake headers (``> Authorization:``);
* any digest ``response=`` value, wherever it appears;
* SDP ``a=ice-pwd:`` values (RFC 8839 §5.4), also where a line is quoted inside other
  text (a repr'd WebSocket frame, a dict or JSON dump); ``a=crypto:`` ``inline:`` key material
  (RFC 4568 §6.1), ``a=key-mgmt:`` data (RFC 4567) and ``k=`` lines (RFC 8866 §5.12);
* ``user:password@`` in URLs and SIP URIs;
* URL query/fragment parameters whose name looks like a credential (``token``,
  ``access_token``, ``password``, ``secret``, ``key``, ``signature`` ...).

Then the text is cut to ``limit`` characters with a marker saying how much was left out,
as websockets does for frames. Redaction happens before the cut, so a cut can never leave
part of a secret behind.
"""

from __future__ import annotations

import re


__all__ = ["MAX_LOG_SIZE", "SECURE", "redact", "redact_url"]

#: Default largest number of characters :func:`redact` returns (before its marker).
MAX_LOG_SIZE = 4096

#: The replacement for every masked value.
SECURE = "[secure]"

# Authorization / Proxy-Authorization at the start of a line, with any folded lines
# (RFC 3261 §7.3.1: a continuation line starts with whitespace). A "> " or "< " before it
# is how websockets logs the handshake's headers.
_AUTH_HEADER_RE = re.compile(
    r"^((?:[<>] )?(?:proxy-)?authorization[ \t]*:)[^\r\n]*(?:\r?\n[ \t]+[^\r\n]*)*",
    re.IGNORECASE | re.MULTILINE,
)
_DIGEST_RESPONSE_RE = re.compile(
    r'\b(response[ \t]*=[ \t]*)(?:"[^"\r\n]*"?|[^\s,;"]+)', re.IGNORECASE
)
# Also a bare "ice-pwd:" line (a malformed SDP line quoted in an error keeps its secret).
_ICE_PWD_RE = re.compile(r"^((?:a=)?ice-pwd:)[^\r\n]*", re.MULTILINE | re.IGNORECASE)
# An ice-pwd anywhere else: inside a repr'd frame (CR LF shown as \r\n), a dict, JSON.
_ICE_PWD_ANY_RE = re.compile(
    r"""(ice-pwd['"]?[ \t]*[:=][ \t]*['"]?)[^\s'"\\,;}]+""", re.IGNORECASE
)
_KEY_MGMT_RE = re.compile(r"^(a=key-mgmt:)[^\r\n]*", re.MULTILINE)
_K_LINE_RE = re.compile(r"^(k=)[^\r\n]*", re.MULTILINE)
_CRYPTO_LINE_RE = re.compile(r"^a=crypto:[^\r\n]*", re.MULTILINE)
_INLINE_KEY_RE = re.compile(r"(inline:)[^;\s]*", re.IGNORECASE)
# scheme://user:password@  and  sip:user:password@ / sips:user:password@
_URL_USERINFO_RE = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@?#]*:)[^@/\s?#]*@")
_SIP_USERINFO_RE = re.compile(r"(\bsips?:[^:@\s;<>\"]+:)[^@\s;<>\"]*@", re.IGNORECASE)
_SECRET_PARAM_RE = re.compile(
    r"([?&#][\w.\-]*(?:token|password|passwd|pwd|secret|key|signature|credential|auth)"
    r"[\w.\-]*=)[^&#\s\"'<>]*",
    re.IGNORECASE,
)


def _mask_crypto(match: re.Match[str]) -> str:
    return _INLINE_KEY_RE.sub(r"\1" + SECURE, match.group(0))


def redact_url(url: str) -> str:
    """Mask the password in ``user:password@`` and credential-like query parameters.

    Args:
        url: e.g. ``"wss://alice:pw@pbx.example.com/ws?token=abc&v=1"``.

    Returns:
        The URL with secrets replaced, e.g.
        ``"wss://alice:[secure]@pbx.example.com/ws?token=[secure]&v=1"``.
    """
    url = _URL_USERINFO_RE.sub(r"\1" + SECURE + "@", url)
    url = _SIP_USERINFO_RE.sub(r"\1" + SECURE + "@", url)
    return _SECRET_PARAM_RE.sub(r"\1" + SECURE, url)


def redact(text: str | bytes, limit: int = MAX_LOG_SIZE) -> str:
    """Return a wire dump that is safe to log: secrets masked, length bounded.

    Args:
        text: a SIP message, an SDP body, a URL or any mix (bytes are decoded as UTF-8,
            undecodable bytes shown as ``\\xNN``).
        limit: the most characters kept; longer text is cut and ends with
            ``"... [N more characters]"``.

    Returns:
        The redacted, possibly truncated text.
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("utf-8", errors="backslashreplace")
    text = _AUTH_HEADER_RE.sub(r"\1 " + SECURE, text)
    text = _DIGEST_RESPONSE_RE.sub(r'\1"' + SECURE + '"', text)
    if "a=" in text or "k=" in text or "ice-pwd" in text.lower():
        text = _ICE_PWD_RE.sub(r"\1" + SECURE, text)
        text = _ICE_PWD_ANY_RE.sub(r"\1" + SECURE, text)
        text = _KEY_MGMT_RE.sub(r"\1" + SECURE, text)
        text = _K_LINE_RE.sub(r"\1" + SECURE, text)
        text = _CRYPTO_LINE_RE.sub(_mask_crypto, text)
    text = redact_url(text)
    if limit >= 0 and len(text) > limit:
        return f"{text[:limit]}... [{len(text) - limit} more characters]"
    return text
