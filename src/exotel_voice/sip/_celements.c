/* exotel_voice.sip._cmessage: SIP URI, name-addr and Via values. See _cmessage.h.
 *
 * Each parser recognises exactly the language of one fast-path regular expression of the
 * pure-Python parser and builds exactly what its builder builds:
 *
 *   ev_parse_sip_uri    uri.FAST_SIP_URI_RE.fullmatch       + uri.sip_uri_from_match(m, 1)
 *   ev_parse_name_addr  headers.FAST_NAME_ADDR_RE.fullmatch + headers.name_addr_from_match
 *   ev_parse_via        headers.FAST_VIA_RE.fullmatch       + headers.via_from_match
 *
 * The expressions use possessive repeats, and every place where `re` could still backtrack
 * (an optional group, an alternation, the non-possessive port alternatives) is one where
 * the other choice cannot lead to a match either; so each is a single left-to-right scan
 * here. The reasons are given where they apply. Anything outside the language answers
 * NULL without an exception ("not in the fast subset"), and so does anything not ASCII.
 */
#include "_cmessage.h"

/* ---- character classes ---------------------------------------------------------------- */

/* (The classes and ev_run / ev_skip_ws are declared in _cmessage.h: the message parser
 * uses them too.) */
unsigned char ev_classes[256];

#define IS(c, k) (ev_classes[(unsigned char)(c)] & (k))
#define IS_WS(c) ((c) == ' ' || (c) == '\t')

static void
add_class(const char *chars, unsigned char k)
{
    for (const char *p = chars; *p; p++)
        ev_classes[(unsigned char)*p] |= k;
}

static void
init_classes(void)
{
    static const char alnum[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    add_class(alnum, EV_C_TOKEN | EV_C_GEN | EV_C_HOST | EV_C_USER | EV_C_UPARAM);
    add_class("-.!%*_+`'~", EV_C_TOKEN | EV_C_GEN);
    add_class(":[]", EV_C_GEN);
    add_class("-.", EV_C_HOST);
    add_class("-_.!~*'()&=+$,;?/", EV_C_USER);
    add_class("-_.!~*'()[]/:&+$", EV_C_UPARAM);
    add_class("0123456789ABCDEFabcdef:.", EV_C_IPV6);
    for (int c = 0x20; c < 0x7f; c++) {
        if (c != '"' && c != '\\') {
            ev_classes[c] |= EV_C_QDISP;
            if (c != ';')
                ev_classes[c] |= EV_C_QPARAM;
        }
    }
}

/* The end of the longest run of ";name" / ";name=value" from i (name and value non-empty,
 * of the given classes): a possessive (;name(=value)?)*+ as in the fast-path regexes. */
static Py_ssize_t
param_run(const char *s, Py_ssize_t i, Py_ssize_t n, unsigned char name, unsigned char value)
{
    while (i < n && s[i] == ';') {
        Py_ssize_t j = ev_run(s, i + 1, n, name);
        if (j == i + 1)
            break;
        if (j < n && s[j] == '=') {
            Py_ssize_t k = ev_run(s, j + 1, n, value);
            if (k > j + 1)
                j = k;
        }
        i = j;
    }
    return i;
}

/* ---- interned names --------------------------------------------------------------------- */

static PyObject *S_scheme, *S_user, *S_host, *S_port, *S_params, *S_headers;
static PyObject *S_uri, *S_display_name, *S_transport;
static PyObject *V_sip, *V_sips;

int
ev_elements_init(void)
{
    static int done = 0;
    if (done)
        return 0;
    struct { PyObject **slot; const char *text; } names[] = {
        {&S_scheme, "scheme"}, {&S_user, "user"}, {&S_host, "host"}, {&S_port, "port"},
        {&S_params, "params"}, {&S_headers, "headers"}, {&S_uri, "uri"},
        {&S_display_name, "display_name"}, {&S_transport, "transport"},
        {&V_sip, "sip"}, {&V_sips, "sips"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (*names[i].slot != NULL)
            continue;
        PyObject *u = PyUnicode_InternFromString(names[i].text);
        if (u == NULL)
            return -1;  /* the ones already made are kept for the next attempt */
        *names[i].slot = u;
    }
    init_classes();
    done = 1;
    return 0;
}

/* ---- shared pieces ---------------------------------------------------------------------- */

/* host [ ":" port ] at i: `(\[[0-9A-Fa-f:.]++\]|[A-Za-z0-9\-.]++)(?::(PORT_0_65535))?`.
 *
 * The host repeats are possessive and the alternatives start differently ("[" or not), so
 * the host is the longest run. PORT_0_65535's alternatives are not possessive, but what
 * follows a port (";", ">" or the end) is never a digit: only the whole digit run can be
 * the port, so a port is 1-4 digits, or 5 digits without a leading zero up to 65535.
 * Without the port group ":" would have to start the parameters, which it cannot: a ":"
 * with a bad port fails the match. Sets *host_end and *port (-1 when absent); returns the
 * index after the host-port, or -1 for no match. */
static Py_ssize_t
scan_hostport(const char *s, Py_ssize_t i, Py_ssize_t n, Py_ssize_t *host_end, long *port)
{
    Py_ssize_t j;
    if (i < n && s[i] == '[') {
        j = ev_run(s, i + 1, n, EV_C_IPV6);
        if (j == i + 1 || j >= n || s[j] != ']')
            return -1;
        j++;
    }
    else {
        j = ev_run(s, i, n, EV_C_HOST);
        if (j == i)
            return -1;
    }
    *host_end = j;
    *port = -1;
    if (j < n && s[j] == ':') {
        Py_ssize_t d = j + 1, e = d;
        while (e < n && e - d <= 5 && s[e] >= '0' && s[e] <= '9')
            e++;
        Py_ssize_t len = e - d;
        if (len == 0 || len > 5)
            return -1;
        long value = 0;
        for (Py_ssize_t k = d; k < e; k++)
            value = value * 10 + (s[k] - '0');
        if (len == 5 && (s[d] == '0' || value > 65535))
            return -1;
        *port = value;
        j = e;
    }
    return j;
}

/* name -> value (value_end < 0: a flag, None) into dict, the name lower-cased. */
static int
put_param(PyObject *dict, const char *s, Py_ssize_t name, Py_ssize_t name_end,
          Py_ssize_t value, Py_ssize_t value_end)
{
    PyObject *k = ev_str_lower(s + name, name_end - name);
    if (k == NULL)
        return -1;
    PyObject *v;
    if (value_end < 0) {
        v = Py_NewRef(Py_None);
    }
    else {
        v = ev_str(s + value, value_end - value);
        if (v == NULL) {
            Py_DECREF(k);
            return -1;
        }
    }
    int rc = PyDict_SetItem(dict, k, v);
    Py_DECREF(k);
    Py_DECREF(v);
    return rc;
}

/* `;name[=value]` items between i and end, already matched by one of the plain parameter
 * expressions (no whitespace or quotes; names and values hold no ";" or "="): what
 * uri._plain_params() builds. A later duplicate replaces the value, at the first one's
 * place, as in the Python dict. */
static PyObject *
plain_params(const char *s, Py_ssize_t i, Py_ssize_t end)
{
    PyObject *dict = PyDict_New();
    if (dict == NULL)
        return NULL;
    while (i < end) {  /* s[i] == ';' */
        Py_ssize_t name = i + 1, j = name;
        while (j < end && s[j] != ';' && s[j] != '=')
            j++;
        Py_ssize_t name_end = j, value = -1, value_end = -1;
        if (j < end && s[j] == '=') {
            value = j + 1;
            j = value;
            while (j < end && s[j] != ';')
                j++;
            value_end = j;
        }
        if (put_param(dict, s, name, name_end, value, value_end) < 0) {
            Py_DECREF(dict);
            return NULL;
        }
        i = j;
    }
    return dict;
}

/* ---- SIP URI ---------------------------------------------------------------------------- */

typedef struct {
    int sips;
    Py_ssize_t user, user_end;    /* user < 0: no user part */
    Py_ssize_t host, host_end;
    long port;                    /* -1: no port */
    Py_ssize_t params, params_end;
} uri_span;

/* FAST_SIP_URI at i (not anchored at its end); returns the index after it, or -1.
 *
 *   (sips?):(?:([user]++)@)?(host)(?::(port))?((?:;[p]++(?:=[p]++)?)*+)
 *
 * The user group: its run is possessive, so it is the longest run of user characters, and
 * the group matches when that run is not empty and an "@" follows. When it matches, leaving
 * it out cannot give another match: that "@" would then have to be consumed by the host,
 * port or parameters, and none of them holds an "@" (whatever follows the URI, ">" or the
 * end, is no "@" either). So "sip:a;b@h" has user "a;b", and "sip:h;lr" has no user part
 * (no "@" after the run "h;lr") and host "h" with parameter "lr".
 *
 * The parameter loop is possessive: each round is ";", a non-empty name, and "=" with a
 * non-empty value when there is one ("=" with no value ends the round before the "="); the
 * loop stops at the first round that does not match. */
static Py_ssize_t
scan_uri(const char *s, Py_ssize_t i, Py_ssize_t n, uri_span *u)
{
    if (n - i < 4 || s[i] != 's' || s[i + 1] != 'i' || s[i + 2] != 'p')
        return -1;
    i += 3;
    u->sips = 0;
    if (s[i] == 's') {
        u->sips = 1;
        i++;
    }
    if (i >= n || s[i] != ':')
        return -1;
    i++;
    Py_ssize_t j = ev_run(s, i, n, EV_C_USER);
    if (j > i && j < n && s[j] == '@') {
        u->user = i;
        u->user_end = j;
        i = j + 1;
    }
    else {
        u->user = u->user_end = -1;
    }
    u->host = i;
    i = scan_hostport(s, i, n, &u->host_end, &u->port);
    if (i < 0)
        return -1;
    u->params = i;
    i = param_run(s, i, n, EV_C_UPARAM, EV_C_UPARAM);
    u->params_end = i;
    return i;
}

/* The SipURI of a scanned URI, as sip_uri_from_match() builds it: scheme, user, host,
 * port (only when present: otherwise the class default None shows through), params,
 * headers = {}. */
static PyObject *
build_uri(const char *s, const uri_span *u)
{
    PyObject *uri = ev_new(ev.SipURI);
    if (uri == NULL)
        return NULL;
    if (ev_set(uri, S_scheme, Py_NewRef(u->sips ? V_sips : V_sip)) < 0)
        goto fail;
    if (ev_set(uri, S_user, u->user < 0 ? Py_NewRef(Py_None)
                                        : ev_str(s + u->user, u->user_end - u->user)) < 0)
        goto fail;
    if (ev_set(uri, S_host, ev_str(s + u->host, u->host_end - u->host)) < 0)
        goto fail;
    if (u->port >= 0 && ev_set(uri, S_port, PyLong_FromLong(u->port)) < 0)
        goto fail;
    if (ev_set(uri, S_params, plain_params(s, u->params, u->params_end)) < 0)
        goto fail;
    if (ev_set(uri, S_headers, PyDict_New()) < 0)
        goto fail;
    return uri;
fail:
    Py_DECREF(uri);
    return NULL;
}

PyObject *
ev_parse_sip_uri(const char *s, Py_ssize_t n)
{
    if (ev.SipURI == NULL)
        return NULL;
    uri_span u;
    if (scan_uri(s, 0, n, &u) != n)
        return NULL;
    return build_uri(s, &u);
}

/* ---- name-addr -------------------------------------------------------------------------- */

/* The header parameters of FAST_NAME_ADDR_RE at i:
 *
 *   (?:;tag=([gen]++))?
 *   (?:[ \t]*+;[ \t]*+[token]++(?:[ \t]*+=[ \t]*+(?:[gen]++|"[^";\\\x00-\x1f\x7f]*+"))?)*+
 *
 * The ";tag=" group reads exactly what a round of the loop reads there (the name "tag",
 * then the longest run of value characters), so with or without it the loop goes on from
 * the same place and the match is the same; its only use is the builder's shortcut, which
 * gives the same dict. A round that does not match as a whole ends the loop where the round
 * began; an "=" not followed by a value ends the round before its whitespace and "=".
 *
 * With dict == NULL, only scans; otherwise adds each parameter as _fast_params() does (the
 * name lower-cased, a quoted value without its quotes, a flag as None). Returns the index
 * after the parameters, or -2 with an exception set (dict given only). */
static Py_ssize_t
scan_header_params(const char *s, Py_ssize_t i, Py_ssize_t n, PyObject *dict)
{
    for (;;) {
        Py_ssize_t j = ev_skip_ws(s, i, n);
        if (j >= n || s[j] != ';')
            return i;
        j = ev_skip_ws(s, j + 1, n);
        Py_ssize_t name = j;
        j = ev_run(s, j, n, EV_C_TOKEN);
        if (j == name)
            return i;
        Py_ssize_t name_end = j, value = -1, value_end = -1;
        Py_ssize_t k = ev_skip_ws(s, j, n);
        if (k < n && s[k] == '=') {
            k = ev_skip_ws(s, k + 1, n);
            if (k < n && IS(s[k], EV_C_GEN)) {
                value = k;
                value_end = ev_run(s, k, n, EV_C_GEN);
                j = value_end;
            }
            else if (k < n && s[k] == '"') {
                Py_ssize_t q = ev_run(s, k + 1, n, EV_C_QPARAM);
                if (q < n && s[q] == '"') {
                    value = k + 1;
                    value_end = q;
                    j = q + 1;
                }
            }
        }
        if (dict != NULL && put_param(dict, s, name, name_end, value, value_end) < 0)
            return -2;
        i = j;
    }
}

/*   [ \t]*+ (?:"([qdisp]*+)"[ \t]*+ | ([token]++(?:[ \t]++[token]++)*+)[ \t]*+)?
 *   < FAST_SIP_URI > header-params [ \t]*+
 *
 * The display name alternatives start with different characters (DQUOTE, a token
 * character), neither of which is "<", so at most one of them and leaving the group out
 * can lead to "<": no backtracking choice remains. In the token form the possessive loop
 * takes "whitespace, token" rounds while they match, so the name is the tokens with the
 * whitespace between them as written, and the whitespace after the last one is skipped. */
PyObject *
ev_parse_name_addr(const char *s, Py_ssize_t n)
{
    if (ev.SipURI == NULL || ev.NameAddr == NULL)
        return NULL;
    Py_ssize_t i = ev_skip_ws(s, 0, n);
    Py_ssize_t disp = -1, disp_end = -1;
    if (i < n && s[i] == '"') {
        Py_ssize_t j = ev_run(s, i + 1, n, EV_C_QDISP);
        if (j >= n || s[j] != '"')
            return NULL;
        disp = i + 1;
        disp_end = j;
        i = ev_skip_ws(s, j + 1, n);
    }
    else if (i < n && IS(s[i], EV_C_TOKEN)) {
        disp = i;
        Py_ssize_t j = ev_run(s, i, n, EV_C_TOKEN);
        for (;;) {
            Py_ssize_t k = ev_skip_ws(s, j, n);
            if (k == j || k >= n || !IS(s[k], EV_C_TOKEN))
                break;
            j = ev_run(s, k, n, EV_C_TOKEN);
        }
        disp_end = j;
        i = ev_skip_ws(s, j, n);
    }
    if (i >= n || s[i] != '<')
        return NULL;
    uri_span u;
    i = scan_uri(s, i + 1, n, &u);
    if (i < 0 || i >= n || s[i] != '>')
        return NULL;
    Py_ssize_t hp = i + 1;
    Py_ssize_t hp_end = scan_header_params(s, hp, n, NULL);
    if (ev_skip_ws(s, hp_end, n) != n)
        return NULL;

    PyObject *value = ev_new(ev.NameAddr);
    if (value == NULL)
        return NULL;
    if (ev_set(value, S_uri, build_uri(s, &u)) < 0)
        goto fail;
    if (ev_set(value, S_display_name, disp < 0 ? Py_NewRef(Py_None)
                                               : ev_str(s + disp, disp_end - disp)) < 0)
        goto fail;
    PyObject *params = PyDict_New();
    if (params == NULL)
        goto fail;
    if (hp_end > hp && scan_header_params(s, hp, hp_end, params) < 0) {
        Py_DECREF(params);
        goto fail;
    }
    if (ev_set(value, S_params, params) < 0)
        goto fail;
    return value;
fail:
    Py_DECREF(value);
    return NULL;
}

/* ---- Via -------------------------------------------------------------------------------- */

/*   SIP/2\.0/([token]++) (host)(?::(port))?
 *   ((?:;branch=([gen]++))?(?:;[token]++(?:=[gen]++)?)*+)
 *
 * As for the name-addr's ";tag=", the ";branch=" group reads what a loop round reads, so
 * it changes nothing but the builder's shortcut (same dict). A round is ";", a non-empty
 * name, and "=" with a non-empty value when there is one. */
PyObject *
ev_parse_via(const char *s, Py_ssize_t n)
{
    if (ev.Via == NULL)
        return NULL;
    if (n < 8 || memcmp(s, "SIP/2.0/", 8) != 0)
        return NULL;
    Py_ssize_t i = ev_run(s, 8, n, EV_C_TOKEN);
    if (i == 8 || i >= n || s[i] != ' ')
        return NULL;
    Py_ssize_t transport_end = i, host = i + 1, host_end;
    long port;
    i = scan_hostport(s, host, n, &host_end, &port);
    if (i < 0)
        return NULL;
    Py_ssize_t params = i;
    i = param_run(s, i, n, EV_C_TOKEN, EV_C_GEN);
    if (i != n)
        return NULL;

    PyObject *via = ev_new(ev.Via);
    if (via == NULL)
        return NULL;
    if (ev_set(via, S_transport, ev_str_upper(s + 8, transport_end - 8)) < 0)
        goto fail;
    if (ev_set(via, S_host, ev_str(s + host, host_end - host)) < 0)
        goto fail;
    if (port >= 0 && ev_set(via, S_port, PyLong_FromLong(port)) < 0)
        goto fail;
    if (ev_set(via, S_params, plain_params(s, params, n)) < 0)
        goto fail;
    return via;
fail:
    Py_DECREF(via);
    return NULL;
}
