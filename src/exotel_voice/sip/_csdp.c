/*
 * exotel_voice.sip._csdp: an optional C fast path for exotel_voice.sip.sdp.parse_sdp.
 *
 * The pure-Python parser in sdp.py is the reference.  parse(text) handles the common
 * subset of SDP and returns exactly the objects parse_sdp() would build (same classes,
 * same instance __dict__ keys in the same order, same values), or None for anything
 * outside that subset, leaving the decision (including every error) to Python:
 *
 *   - text is an exact str or bytes, ASCII only;
 *   - no control character but LF and the CR of a CRLF (a lone CR, a TAB, NUL, DEL, ...
 *     -> None), so Python's str.split() whitespace is exactly the ASCII space here;
 *   - every input parse_sdp() rejects -> None;
 *   - a number with more than 18 digits goes through PyLong_FromUnicodeObject, the
 *     function int() uses; if that fails (int_max_str_digits) -> None.
 *
 * It never raises except MemoryError.  The classes come from sdp.py once, via setup();
 * until then parse() returns None.  Instances are made with object.__new__'s own slot
 * (no dataclass __init__) and every dataclass field is set with PyObject_GenericSetAttr
 * in field order, which is what the dataclass __init__ does.
 *
 * Untrusted input: every access is bounded by the text's length, nothing is copied into
 * fixed-size buffers, there is no recursion, and every reference is released on every
 * path (all owned objects of a parse live in one struct that one function clears).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* Classes and attribute names                                                               */
/* ---------------------------------------------------------------------------------------- */

enum {
    K_SESSION,
    K_MEDIA,
    K_ATTRIBUTE,
    K_ORIGIN,
    K_CONNECTION,
    K_BANDWIDTH,
    K_TIMING,
    N_CLASSES
};

/* Field names, in dataclass field order (the order __init__ sets them). */
enum { S_VERSION, S_ORIGIN, S_SESSION_NAME, S_CONNECTION, S_TIMING, S_BANDWIDTHS,
       S_ATTRIBUTES, S_MEDIA, S_INFORMATION, S_URI, S_EMAILS, S_PHONES, S_TIME_ZONES,
       S_ENCRYPTION_KEY, N_SESSION };
enum { M_KIND, M_PORT, M_PORT_COUNT, M_PROTO, M_FORMATS, M_INFORMATION, M_CONNECTION,
       M_BANDWIDTHS, M_ENCRYPTION_KEY, M_ATTRIBUTES, N_MEDIA };

static const char *const session_fields[] = {
    "version", "origin", "session_name", "connection", "timing", "bandwidths",
    "attributes", "media", "information", "uri", "emails", "phones", "time_zones",
    "encryption_key", NULL};
static const char *const media_fields[] = {
    "kind", "port", "port_count", "proto", "formats", "information", "connection",
    "bandwidths", "encryption_key", "attributes", NULL};
static const char *const attribute_fields[] = {"name", "value", NULL};
static const char *const origin_fields[] = {
    "username", "session_id", "session_version", "nettype", "addrtype", "address", NULL};
static const char *const connection_fields[] = {"nettype", "addrtype", "address", NULL};
static const char *const bandwidth_fields[] = {"type", "value", NULL};
static const char *const timing_fields[] = {"start", "stop", "repeats", NULL};

#define MAX_FIELDS 14

static const char *const *const class_fields[N_CLASSES] = {
    session_fields, media_fields, attribute_fields, origin_fields,
    connection_fields, bandwidth_fields, timing_fields};

static const char *const class_labels[N_CLASSES] = {
    "SessionDescription", "MediaDescription", "Attribute", "Origin",
    "Connection", "Bandwidth", "Timing"};

/* Interned names, one array per class; filled at module init, never released. */
static PyObject *field_names[N_CLASSES][MAX_FIELDS];
static Py_ssize_t field_counts[N_CLASSES];

/* Strong references to the classes, set by setup(). */
static PyObject *classes[N_CLASSES];
static int ready = 0;

static PyObject *empty_tuple = NULL;

/* A new instance as object.__new__(cls) makes it: no __init__. */
static inline PyObject *
new_instance(int k)
{
    PyTypeObject *tp = (PyTypeObject *)classes[k];
    return PyBaseObject_Type.tp_new(tp, empty_tuple, NULL);
}

/* A new instance with every field set, in field order; values are borrowed. */
static PyObject *
build(int k, PyObject *const *values)
{
    PyObject *obj = new_instance(k);
    if (obj == NULL)
        return NULL;
    PyObject *const *names = field_names[k];
    Py_ssize_t n = field_counts[k];
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyObject_GenericSetAttr(obj, names[i], values[i]) < 0) {
            Py_DECREF(obj);
            return NULL;
        }
    }
    return obj;
}

/* ---------------------------------------------------------------------------------------- */
/* Text helpers                                                                              */
/* ---------------------------------------------------------------------------------------- */

/* A new str from ASCII bytes. */
static inline PyObject *
mkstr(const char *p, Py_ssize_t n)
{
    PyObject *s = PyUnicode_New(n, 127);
    if (s != NULL && n > 0)
        memcpy(PyUnicode_1BYTE_DATA(s), p, (size_t)n);
    return s;
}

static inline int
all_digits(const char *p, Py_ssize_t n)
{
    if (n <= 0)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
    }
    return 1;
}

/* int(text) for n >= 1 ASCII digits.  NULL with an exception on failure: MemoryError,
   or ValueError past sys.get_int_max_str_digits() (then the caller returns None and
   Python's int() raises the same). */
static PyObject *
mkint(const char *p, Py_ssize_t n)
{
    if (n <= 18) {
        long long v = 0;
        for (Py_ssize_t i = 0; i < n; i++)
            v = v * 10 + (p[i] - '0');
        return PyLong_FromLongLong(v);
    }
    PyObject *s = mkstr(p, n);
    if (s == NULL)
        return NULL;
    PyObject *r = PyLong_FromUnicodeObject(s, 10);
    Py_DECREF(s);
    return r;
}

/* Whether bytes [i, end) are all printable ASCII, LF or the CR of a CRLF. */
static int
check_bytes(const char *text, Py_ssize_t i, Py_ssize_t end, Py_ssize_t len)
{
    for (; i < end; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c < 0x7f)
            continue;
        if (c == '\n')
            continue;
        if (c == '\r' && i + 1 < len && text[i + 1] == '\n')
            continue;
        return 0;
    }
    return 1;
}

/* The subset's characters: printable ASCII, LF, and CR only right before an LF.  Eight
   bytes at a time: a word with no byte >= 0x80, < 0x20 or == 0x7f is all printable (each
   test below is exact as a yes/no for the whole word); other words go byte by byte. */
static int
in_subset(const char *text, Py_ssize_t len)
{
    const uint64_t ones = 0x0101010101010101ULL;
    const uint64_t highs = 0x8080808080808080ULL;
    Py_ssize_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, text + i, 8);
        uint64_t del = w ^ (0x7f * ones);
        uint64_t bad = (w | ((w - 0x20 * ones) & ~w) | ((del - ones) & ~del)) & highs;
        if (bad != 0 && !check_bytes(text, i, i + 8, len))
            return 0;
    }
    return check_bytes(text, i, len, len);
}

/* Attribute names that WebRTC and SIP SDPs repeat: one shared interned str each instead
   of a new str per a= line (str is immutable; only identity could tell the difference). */
static const char *const common_names[] = {
    "candidate", "crypto", "end-of-candidates", "extmap", "extmap-allow-mixed",
    "fingerprint", "fmtp", "group", "ice-lite", "ice-options", "ice-pwd", "ice-ufrag",
    "inactive", "label", "max-message-size", "maxptime", "mid", "msid", "msid-semantic",
    "ptime", "recvonly", "rtcp", "rtcp-fb", "rtcp-mux", "rtcp-mux-only", "rtcp-rsize",
    "rtcp-xr", "rtpmap", "sctp-port", "sendonly", "sendrecv", "setup", "ssrc",
    "ssrc-group", "tls-id", NULL};

#define NAME_MAX_LEN 24
#define NAME_SLOTS 8
/* By length: up to NAME_SLOTS names of each length; filled at module init. */
static PyObject *name_cache[NAME_MAX_LEN + 1][NAME_SLOTS];

/* The attribute name p[0..n), n >= 1, as a str: a shared one if it is common, else a new
   one. */
static inline PyObject *
attribute_name(const char *p, Py_ssize_t n)
{
    if (n <= NAME_MAX_LEN) {
        for (int i = 0; i < NAME_SLOTS; i++) {
            PyObject *s = name_cache[n][i];
            if (s == NULL)
                break;
            const Py_UCS1 *c = PyUnicode_1BYTE_DATA(s); /* n >= 1 bytes */
            if (c[0] == (Py_UCS1)p[0] && c[n - 1] == (Py_UCS1)p[n - 1] &&
                memcmp(c, p, (size_t)n) == 0)
                return Py_NewRef(s);
        }
    }
    return mkstr(p, n);
}

static int
init_name_cache(void)
{
    for (int i = 0; common_names[i] != NULL; i++) {
        size_t n = strlen(common_names[i]);
        int slot = 0;
        if (n > NAME_MAX_LEN)
            continue;
        while (slot < NAME_SLOTS && name_cache[n][slot] != NULL)
            slot++;
        if (slot == NAME_SLOTS)
            continue; /* the cache is only an optimization */
        PyObject *s = PyUnicode_InternFromString(common_names[i]);
        if (s == NULL)
            return -1;
        if (!PyUnicode_IS_ASCII(s) || PyUnicode_GET_LENGTH(s) != (Py_ssize_t)n) {
            Py_DECREF(s);
            PyErr_SetString(PyExc_SystemError, "_csdp: bad common attribute name");
            return -1;
        }
        name_cache[n][slot] = s;
    }
    return 0;
}

/* A span of the text. */
typedef struct {
    const char *p;
    Py_ssize_t n;
} span;

/* Up to max tokens of [p, p + n) split on runs of spaces (str.split() for a text with no
   other whitespace).  Returns the number of tokens stored, or max + 1 if there are more. */
static Py_ssize_t
split_spaces(const char *p, Py_ssize_t n, span *out, Py_ssize_t max)
{
    const char *end = p + n;
    Py_ssize_t count = 0;
    while (1) {
        while (p < end && *p == ' ')
            p++;
        if (p >= end)
            return count;
        if (count == max)
            return max + 1;
        const char *start = p;
        while (p < end && *p != ' ')
            p++;
        out[count].p = start;
        out[count].n = p - start;
        count++;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Parser                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* Everything a parse owns; NULL means "not set" (None or an empty list at the end). */
typedef struct {
    PyObject *session[N_SESSION];
    PyObject *media[N_MEDIA];
    int in_media;
    PyObject *repeats; /* the last Timing's repeats list */
} state;

static void
state_clear(state *st)
{
    for (int i = 0; i < N_SESSION; i++)
        Py_CLEAR(st->session[i]);
    for (int i = 0; i < N_MEDIA; i++)
        Py_CLEAR(st->media[i]);
    Py_CLEAR(st->repeats);
}

/* Append a new reference and drop it (consumes item; NULL item -> -1). */
static int
append_steal(PyObject *list, PyObject *item)
{
    if (item == NULL)
        return -1;
    int r = PyList_Append(list, item);
    Py_DECREF(item);
    return r;
}

/* *slot is a list (created if NULL). */
static int
ensure_list(PyObject **slot)
{
    if (*slot == NULL)
        *slot = PyList_New(0);
    return *slot == NULL ? -1 : 0;
}

/* Replace *slot with a new str. */
static int
set_str(PyObject **slot, const char *p, Py_ssize_t n)
{
    PyObject *s = mkstr(p, n);
    if (s == NULL)
        return -1;
    Py_XSETREF(*slot, s);
    return 0;
}

/* Fill NULL slots: None for optional values, [] for lists. */
static int
fill_defaults(PyObject **slots, const int *list_slots, int nlists, int n)
{
    for (int i = 0; i < nlists; i++) {
        if (ensure_list(&slots[list_slots[i]]) < 0)
            return -1;
    }
    for (int i = 0; i < n; i++) {
        if (slots[i] == NULL)
            slots[i] = Py_NewRef(Py_None);
    }
    return 0;
}

static const int media_lists[] = {M_FORMATS, M_BANDWIDTHS, M_ATTRIBUTES};

/* Build the pending MediaDescription, append it to the session's media list. */
static int
finish_media(state *st)
{
    if (!st->in_media)
        return 0;
    if (fill_defaults(st->media, media_lists, 3, N_MEDIA) < 0)
        return -1;
    if (ensure_list(&st->session[S_MEDIA]) < 0)
        return -1;
    if (append_steal(st->session[S_MEDIA], build(K_MEDIA, st->media)) < 0)
        return -1;
    for (int i = 0; i < N_MEDIA; i++)
        Py_CLEAR(st->media[i]);
    st->in_media = 0;
    return 0;
}

/* Result codes of the line parsers. */
#define OK 0
#define FAIL -1 /* an exception is set, or not (then: not in the fast subset) */

static int
parse_attribute(state *st, const char *v, Py_ssize_t n)
{
    const char *colon = memchr(v, ':', (size_t)n);
    Py_ssize_t name_len = colon != NULL ? colon - v : n;
    if (name_len == 0)
        return FAIL;
    PyObject *list;
    if (st->in_media) {
        if (ensure_list(&st->media[M_ATTRIBUTES]) < 0)
            return FAIL;
        list = st->media[M_ATTRIBUTES];
    }
    else {
        if (ensure_list(&st->session[S_ATTRIBUTES]) < 0)
            return FAIL;
        list = st->session[S_ATTRIBUTES];
    }
    PyObject *values[2];
    values[0] = attribute_name(v, name_len);
    if (values[0] == NULL)
        return FAIL;
    if (colon != NULL)
        values[1] = mkstr(colon + 1, n - name_len - 1);
    else
        values[1] = Py_NewRef(Py_None);
    if (values[1] == NULL) {
        Py_DECREF(values[0]);
        return FAIL;
    }
    PyObject *attr = build(K_ATTRIBUTE, values);
    Py_DECREF(values[0]);
    Py_DECREF(values[1]);
    return append_steal(list, attr);
}

static int
parse_media(state *st, const char *v, Py_ssize_t n)
{
    if (finish_media(st) < 0)
        return FAIL;
    span tok[3];
    const char *end = v + n;
    /* kind, port, proto; the formats follow */
    const char *p = v;
    for (int i = 0; i < 3; i++) {
        while (p < end && *p == ' ')
            p++;
        if (p >= end)
            return FAIL;
        tok[i].p = p;
        while (p < end && *p != ' ')
            p++;
        tok[i].n = p - tok[i].p;
    }
    const char *port_p = tok[1].p;
    Py_ssize_t port_n = tok[1].n;
    const char *slash = memchr(port_p, '/', (size_t)port_n);
    const char *count_p = NULL;
    Py_ssize_t count_n = 0;
    if (slash != NULL) {
        count_p = slash + 1;
        count_n = port_p + port_n - count_p;
        port_n = slash - port_p;
        if (!all_digits(count_p, count_n))
            return FAIL;
    }
    if (!all_digits(port_p, port_n))
        return FAIL;

    st->in_media = 1;
    PyObject **m = st->media;
    m[M_PORT] = mkint(port_p, port_n);
    if (m[M_PORT] == NULL)
        return FAIL;
    int overflow = 0;
    long port = PyLong_AsLongAndOverflow(m[M_PORT], &overflow);
    if (port == -1 && PyErr_Occurred())
        return FAIL;
    if (overflow != 0 || port > 65535)
        return FAIL;
    if (slash != NULL) {
        m[M_PORT_COUNT] = mkint(count_p, count_n);
        if (m[M_PORT_COUNT] == NULL)
            return FAIL;
    }
    if ((m[M_KIND] = mkstr(tok[0].p, tok[0].n)) == NULL)
        return FAIL;
    if ((m[M_PROTO] = mkstr(tok[2].p, tok[2].n)) == NULL)
        return FAIL;
    if ((m[M_FORMATS] = PyList_New(0)) == NULL)
        return FAIL;
    while (1) {
        while (p < end && *p == ' ')
            p++;
        if (p >= end)
            break;
        const char *start = p;
        while (p < end && *p != ' ')
            p++;
        if (append_steal(m[M_FORMATS], mkstr(start, p - start)) < 0)
            return FAIL;
    }
    if ((m[M_ATTRIBUTES] = PyList_New(0)) == NULL)
        return FAIL;
    return OK;
}

static int
parse_connection(state *st, const char *v, Py_ssize_t n)
{
    span tok[3];
    if (split_spaces(v, n, tok, 3) != 3)
        return FAIL;
    PyObject **slot = st->in_media ? &st->media[M_CONNECTION] : &st->session[S_CONNECTION];
    if (*slot != NULL)
        return FAIL; /* more than one c= at this level */
    PyObject *values[3] = {NULL, NULL, NULL};
    int rc = FAIL;
    for (int i = 0; i < 3; i++) {
        if ((values[i] = mkstr(tok[i].p, tok[i].n)) == NULL)
            goto done;
    }
    *slot = build(K_CONNECTION, values);
    if (*slot != NULL)
        rc = OK;
done:
    for (int i = 0; i < 3; i++)
        Py_XDECREF(values[i]);
    return rc;
}

static int
parse_bandwidth(state *st, const char *v, Py_ssize_t n)
{
    const char *colon = memchr(v, ':', (size_t)n);
    if (colon == NULL || colon == v)
        return FAIL;
    const char *d = colon + 1;
    const char *end = v + n;
    /* int(bvalue) after _is_num(bvalue.strip()): spaces around the digits are allowed */
    while (d < end && *d == ' ')
        d++;
    while (end > d && end[-1] == ' ')
        end--;
    if (!all_digits(d, end - d))
        return FAIL;
    PyObject **slot = st->in_media ? &st->media[M_BANDWIDTHS] : &st->session[S_BANDWIDTHS];
    if (ensure_list(slot) < 0)
        return FAIL;
    PyObject *values[2];
    values[0] = mkstr(v, colon - v);
    if (values[0] == NULL)
        return FAIL;
    values[1] = mkint(d, end - d);
    if (values[1] == NULL) {
        Py_DECREF(values[0]);
        return FAIL;
    }
    PyObject *bw = build(K_BANDWIDTH, values);
    Py_DECREF(values[0]);
    Py_DECREF(values[1]);
    return append_steal(*slot, bw);
}

static int
parse_origin(state *st, const char *v, Py_ssize_t n)
{
    span tok[6];
    if (split_spaces(v, n, tok, 6) != 6)
        return FAIL;
    if (!all_digits(tok[2].p, tok[2].n))
        return FAIL;
    PyObject *values[6] = {NULL, NULL, NULL, NULL, NULL, NULL};
    int rc = FAIL;
    for (int i = 0; i < 6; i++) {
        values[i] = i == 2 ? mkint(tok[i].p, tok[i].n) : mkstr(tok[i].p, tok[i].n);
        if (values[i] == NULL)
            goto done;
    }
    PyObject *origin = build(K_ORIGIN, values);
    if (origin != NULL) {
        Py_XSETREF(st->session[S_ORIGIN], origin);
        rc = OK;
    }
done:
    for (int i = 0; i < 6; i++)
        Py_XDECREF(values[i]);
    return rc;
}

static int
parse_timing(state *st, const char *v, Py_ssize_t n)
{
    span tok[2];
    if (split_spaces(v, n, tok, 2) != 2)
        return FAIL;
    if (!all_digits(tok[0].p, tok[0].n) || !all_digits(tok[1].p, tok[1].n))
        return FAIL;
    if (ensure_list(&st->session[S_TIMING]) < 0)
        return FAIL;
    PyObject *values[3] = {NULL, NULL, NULL};
    int rc = FAIL;
    if ((values[0] = mkint(tok[0].p, tok[0].n)) == NULL)
        goto done;
    if ((values[1] = mkint(tok[1].p, tok[1].n)) == NULL)
        goto done;
    if ((values[2] = PyList_New(0)) == NULL)
        goto done;
    if (append_steal(st->session[S_TIMING], build(K_TIMING, values)) < 0)
        goto done;
    Py_XSETREF(st->repeats, Py_NewRef(values[2]));
    rc = OK;
done:
    for (int i = 0; i < 3; i++)
        Py_XDECREF(values[i]);
    return rc;
}

/* One line, without its line end; index is its 0-based position among all lines. */
static int
parse_line(state *st, const char *line, Py_ssize_t n, Py_ssize_t index)
{
    if (n < 2 || line[1] != '=')
        return FAIL; /* blank lines never get here */
    const char kind = line[0];
    const char *v = line + 2;
    n -= 2;
    switch (kind) {
    case 'a':
        return parse_attribute(st, v, n);
    case 'm':
        return parse_media(st, v, n);
    case 'c':
        return parse_connection(st, v, n);
    case 'b':
        return parse_bandwidth(st, v, n);
    case 'i':
        return set_str(st->in_media ? &st->media[M_INFORMATION] : &st->session[S_INFORMATION],
                       v, n);
    case 'k':
        return set_str(
            st->in_media ? &st->media[M_ENCRYPTION_KEY] : &st->session[S_ENCRYPTION_KEY],
            v, n);
    default:
        break;
    }
    if (st->in_media)
        return FAIL; /* a session-only line in a media section, or an unknown type */
    switch (kind) {
    case 'v': {
        if (index != 0)
            return FAIL;
        span tok[1];
        if (split_spaces(v, n, tok, 1) != 1 || tok[0].n != 1 || tok[0].p[0] != '0')
            return FAIL;
        /* value.strip() == "0": the one token must be the whole stripped value, which
           split_spaces guarantees (no other token). */
        return OK;
    }
    case 'o':
        return parse_origin(st, v, n);
    case 's':
        return set_str(&st->session[S_SESSION_NAME], v, n);
    case 't':
        return parse_timing(st, v, n);
    case 'r':
        if (st->repeats == NULL)
            return FAIL; /* r= before any t= */
        return append_steal(st->repeats, mkstr(v, n));
    case 'z':
        return set_str(&st->session[S_TIME_ZONES], v, n);
    case 'u':
        return set_str(&st->session[S_URI], v, n);
    case 'e':
        if (ensure_list(&st->session[S_EMAILS]) < 0)
            return FAIL;
        return append_steal(st->session[S_EMAILS], mkstr(v, n));
    case 'p':
        if (ensure_list(&st->session[S_PHONES]) < 0)
            return FAIL;
        return append_steal(st->session[S_PHONES], mkstr(v, n));
    default:
        return FAIL;
    }
}

static const int session_lists[] = {S_TIMING, S_BANDWIDTHS, S_ATTRIBUTES, S_MEDIA,
                                    S_EMAILS, S_PHONES};

/* The parse proper; NULL with no exception set means "not in the fast subset". */
static PyObject *
parse_text(const char *text, Py_ssize_t len)
{
    if (!in_subset(text, len))
        return NULL;
    if (len < 2 || text[0] != 'v' || text[1] != '=')
        return NULL;

    state st;
    memset(&st, 0, sizeof st);
    const char *p = text;
    const char *end = text + len;
    Py_ssize_t index = 0;
    while (1) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl != NULL ? nl : end;
        Py_ssize_t n = line_end - p;
        if (n > 0 && p[n - 1] == '\r')
            n--; /* a CRLF: the validation above guarantees the LF */
        if (n > 0 && parse_line(&st, p, n, index) < 0)
            goto fail;
        if (nl == NULL)
            break;
        p = nl + 1;
        index++;
    }
    if (finish_media(&st) < 0)
        goto fail;
    if (st.session[S_ORIGIN] == NULL || st.session[S_SESSION_NAME] == NULL)
        goto fail; /* no o= or no s= line */
    if ((st.session[S_VERSION] = PyLong_FromLong(0)) == NULL)
        goto fail;
    if (fill_defaults(st.session, session_lists, 6, N_SESSION) < 0)
        goto fail;
    PyObject *sdp = build(K_SESSION, st.session);
    state_clear(&st);
    return sdp;
fail:
    state_clear(&st);
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Module functions                                                                          */
/* ---------------------------------------------------------------------------------------- */

static PyObject *
csdp_parse(PyObject *module, PyObject *arg)
{
    const char *text;
    Py_ssize_t len;
    if (!ready)
        Py_RETURN_NONE;
    if (PyUnicode_CheckExact(arg)) {
#if PY_VERSION_HEX < 0x030C0000
        if (PyUnicode_READY(arg) < 0)
            return NULL; /* MemoryError */
#endif
        if (!PyUnicode_IS_ASCII(arg))
            Py_RETURN_NONE;
        text = (const char *)PyUnicode_DATA(arg);
        len = PyUnicode_GET_LENGTH(arg);
    }
    else if (PyBytes_CheckExact(arg)) {
        text = PyBytes_AS_STRING(arg);
        len = PyBytes_GET_SIZE(arg);
    }
    else {
        Py_RETURN_NONE;
    }
    /* The text object is kept alive by the caller's reference for the whole parse, and
       nothing in the parse runs Python code that could reach it. */
    PyObject *sdp = parse_text(text, len);
    if (sdp != NULL)
        return sdp;
    if (PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_MemoryError))
            return NULL;
        PyErr_Clear();
    }
    Py_RETURN_NONE;
}

/* Check one class: a type whose instances object.__new__ makes and object.__setattr__
   fills, a dataclass whose fields are exactly the ones this file sets. */
static int
check_class(int k, PyObject *cls)
{
    if (!PyType_Check(cls)) {
        PyErr_Format(PyExc_TypeError, "_csdp.setup: %s must be a class", class_labels[k]);
        return -1;
    }
    PyTypeObject *tp = (PyTypeObject *)cls;
    if (tp->tp_new != PyBaseObject_Type.tp_new ||
        tp->tp_setattro != PyObject_GenericSetAttr) {
        PyErr_Format(PyExc_TypeError,
                     "_csdp.setup: %s must use object.__new__ and object.__setattr__",
                     class_labels[k]);
        return -1;
    }
    int has_post_init = PyObject_HasAttrString(cls, "__post_init__");
    PyObject *fields = PyObject_GetAttrString(cls, "__dataclass_fields__");
    if (fields == NULL)
        return -1;
    int ok = !has_post_init && PyDict_CheckExact(fields) &&
             PyDict_GET_SIZE(fields) == field_counts[k];
    if (ok) {
        Py_ssize_t pos = 0, i = 0;
        PyObject *key, *value;
        while (PyDict_Next(fields, &pos, &key, &value)) {
            if (!PyUnicode_Check(key) ||
                PyUnicode_CompareWithASCIIString(key, class_fields[k][i]) != 0) {
                ok = 0;
                break;
            }
            i++;
        }
    }
    Py_DECREF(fields);
    if (!ok) {
        PyErr_Format(PyExc_TypeError,
                     "_csdp.setup: the fields of %s are not the ones _csdp.c knows "
                     "(rebuild the extension, or update it with sdp.py)",
                     class_labels[k]);
        return -1;
    }
    return 0;
}

static PyObject *
csdp_setup(PyObject *module, PyObject *args)
{
    if (PyTuple_GET_SIZE(args) != N_CLASSES) {
        PyErr_Format(PyExc_TypeError,
                     "_csdp.setup takes %d classes (SessionDescription, MediaDescription, "
                     "Attribute, Origin, Connection, Bandwidth, Timing)", N_CLASSES);
        return NULL;
    }
    for (int k = 0; k < N_CLASSES; k++) {
        if (check_class(k, PyTuple_GET_ITEM(args, k)) < 0)
            return NULL;
    }
    ready = 0;
    for (int k = 0; k < N_CLASSES; k++)
        Py_XSETREF(classes[k], Py_NewRef(PyTuple_GET_ITEM(args, k)));
    ready = 1;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(parse_doc,
"parse(text, /)\n--\n\n"
"Parse an SDP body (str or bytes) in the fast subset.\n\n"
"Returns the SessionDescription exotel_voice.sip.sdp.parse_sdp would return, or None\n"
"when the text is outside the subset (non-ASCII, control characters, anything invalid):\n"
"then the Python parser decides. Raises nothing but MemoryError.");

PyDoc_STRVAR(setup_doc,
"setup(SessionDescription, MediaDescription, Attribute, Origin, Connection, Bandwidth,\n"
"      Timing, /)\n--\n\n"
"Hand the dataclasses of exotel_voice.sip.sdp to the parser (once, at import).");

static PyMethodDef csdp_methods[] = {
    {"parse", csdp_parse, METH_O, parse_doc},
    {"setup", csdp_setup, METH_VARARGS, setup_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef csdp_module = {
    PyModuleDef_HEAD_INIT,
    "exotel_voice.sip._csdp",
    "Optional C fast path of exotel_voice.sip.sdp.parse_sdp (the Python code is the "
    "reference).",
    -1,
    csdp_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__csdp(void)
{
    static int initialized = 0;
    if (!initialized) {
        if (empty_tuple == NULL) {
            empty_tuple = PyTuple_New(0);
            if (empty_tuple == NULL)
                return NULL;
        }
        for (int k = 0; k < N_CLASSES; k++) {
            Py_ssize_t i = 0;
            for (; class_fields[k][i] != NULL; i++) {
                if (i >= MAX_FIELDS) {
                    PyErr_SetString(PyExc_SystemError, "_csdp: too many fields");
                    return NULL;
                }
                field_names[k][i] = PyUnicode_InternFromString(class_fields[k][i]);
                if (field_names[k][i] == NULL)
                    return NULL;
            }
            field_counts[k] = i;
        }
        if (init_name_cache() < 0)
            return NULL;
        initialized = 1;
    }
    return PyModule_Create(&csdp_module);
}
