"""RFC 3261 §25 grammar rules used by the parser, as precompiled regular expressions.

Each rule quotes the ABNF it implements. They work on *unfolded* header values: the message
parser has already replaced every ``CRLF 1*(SP / HTAB)`` fold by one space, so ``LWS`` here is
just ``*(SP / HTAB)``.

The expressions are deliberately a little more liberal than the ABNF where real peers differ
(``hostname`` accepts any run of alphanumerics, ``-`` and ``.``), and strict where a mistake
would change the meaning of a message (tokens, quoted strings, escapes, URI structure).
"""

from __future__ import annotations

import re


__all__ = [
    "BAD_ESCAPE_RE",
    "GEN_VALUE",
    "HOST",
    "PARAM_RE",
    "QUOTED_PAIR_RE",
    "QUOTED_STRING",
    "TOKEN",
    "TOKEN_RE",
]

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" )
TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
TOKEN_RE = re.compile(TOKEN)

# quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
# qdtext        = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
# quoted-pair   = "\" (%x00-09 / %x0B-0C / %x0E-7F)
QUOTED_STRING = r'"(?:[ \t!#-\[\]-~\x80-\U0010ffff]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*"'
QUOTED_PAIR_RE = re.compile(r"\\([\x00-\x09\x0b\x0c\x0e-\x7f])")

# host          = hostname / IPv4address / IPv6reference
# IPv6reference = "[" IPv6address "]"
HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)"

# gen-value = token / host / quoted-string   (IPv6 ``received=`` values come unbracketed)
GEN_VALUE = r"[A-Za-z0-9\-.!%*_+`'~:\[\]]+"

# generic-param = token [ EQUAL gen-value ], preceded by SEMI; one parameter per match.
# Groups: 1 name, 2 plain value, 3 quoted value (with its quotes).
PARAM_RE = re.compile(
    r"[ \t]*;[ \t]*(" + TOKEN + r")"
    r"(?:[ \t]*=[ \t]*(?:(" + GEN_VALUE + r")|(" + QUOTED_STRING + r")))?[ \t]*"
)

# escaped = "%" HEXDIG HEXDIG ; finds a "%" that is not followed by two hex digits.
BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
