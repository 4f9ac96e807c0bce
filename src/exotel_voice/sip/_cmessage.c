/* exotel_voice.sip._cmessage: module set-up and the message parser. See _cmessage.h. */
#include "_cmessage.h"

ev_registry ev;

PyObject *
ev_new(PyObject *cls)
{
    PyTypeObject *type = (PyTypeObject *)cls;
    return type->tp_alloc(type, 0);
}

int
ev_set(PyObject *obj, PyObject *name, PyObject *value)
{
    if (value == NULL)
        return -1;
    int rc;
#if PY_VERSION_HEX < 0x030D0000
    /* Straight into the instance dict: PyObject_GenericSetAttr looks the name up along the
     * type's MRO first (for a data descriptor), which costs several times the insertion.
     * The classes registered here have no descriptors for their fields (the tests compare
     * vars() with the Python parser's objects). */
    PyObject **dictptr = _PyObject_GetDictPtr(obj);
    if (dictptr != NULL) {
        if (*dictptr == NULL && (*dictptr = _PyDict_NewPresized(6)) == NULL) {
            Py_DECREF(value);
            return -1;
        }
        rc = PyDict_SetItem(*dictptr, name, value);
        Py_DECREF(value);
        return rc;
    }
#endif
    rc = PyObject_GenericSetAttr(obj, name, value);
    Py_DECREF(value);
    return rc;
}

PyObject *
ev_str(const char *s, Py_ssize_t n)
{
    PyObject *u = PyUnicode_New(n, 127);
    if (u == NULL)
        return NULL;
    memcpy(PyUnicode_DATA(u), s, (size_t)n);
    return u;
}

/* A new str from n ASCII bytes, the letters from..from+25 moved by delta. */
static PyObject *
str_shifted(const char *s, Py_ssize_t n, char from, int delta)
{
    PyObject *u = PyUnicode_New(n, 127);
    if (u == NULL)
        return NULL;
    char *d = (char *)PyUnicode_DATA(u);
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        d[i] = (c >= from && c <= from + 25) ? (char)(c + delta) : c;
    }
    return u;
}

PyObject *
ev_str_lower(const char *s, Py_ssize_t n)
{
    return str_shifted(s, n, 'A', 32);
}

PyObject *
ev_str_upper(const char *s, Py_ssize_t n)
{
    return str_shifted(s, n, 'a', -32);
}

/* ---- The message parser ---------------------------------------------------------------
 *
 * parse(data, full) mirrors message._parse (and, with full, Message.parse_all without the
 * SDP body, which the Python caller parses) on a subset of messages: ASCII header section,
 * CRLF line ends, no folding, no control characters but HTAB, header names spelled as in an
 * earlier message (message._known_names), "SIP/2.0" as written, and every transaction-path
 * header in the shapes the fast regexes accept. Anything else, valid or not, answers None
 * and the Python parser decides. It never raises but MemoryError.
 */

static Py_ssize_t max_message = 65536, max_line = 8192, max_headers = 256;

enum { K_OTHER, K_VIA, K_FROM, K_TO, K_CALLID, K_CSEQ, K_CLEN, K_CONTACT, K_ROUTE, K_RROUTE,
       K_MAXFWD, K_DELTA, K_TOKENS, K_MEDIA, K_CHECK };

/* Header names seen before: wire spelling -> canonical name and what the parser does with
 * it. An open-addressing table over message._known_names (which only grows, and never
 * changes an entry), so a look-up needs no str object. */
#define NAME_SLOTS 512
#define NAME_LEN_MAX 40
typedef struct {
    unsigned char len;            /* 0: empty slot */
    char name[NAME_LEN_MAX];
    PyObject *canonical;          /* strong */
    PyObject *check;              /* strong; the Python check function (full parse) or NULL */
    int kind;
} name_entry;
static name_entry names[NAME_SLOTS];
static int names_used;

static uint32_t
name_hash(const char *s, Py_ssize_t n)
{
    uint32_t h = 2166136261u;
    for (Py_ssize_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int
eq(PyObject *u, const char *c)
{
    return PyUnicode_CompareWithASCIIString(u, c) == 0;
}

static int
kind_of(PyObject *canonical)
{
    if (eq(canonical, "Via")) return K_VIA;
    if (eq(canonical, "From")) return K_FROM;
    if (eq(canonical, "To")) return K_TO;
    if (eq(canonical, "Call-ID")) return K_CALLID;
    if (eq(canonical, "CSeq")) return K_CSEQ;
    if (eq(canonical, "Content-Length")) return K_CLEN;
    if (eq(canonical, "Contact")) return K_CONTACT;
    if (eq(canonical, "Route")) return K_ROUTE;
    if (eq(canonical, "Record-Route")) return K_RROUTE;
    if (eq(canonical, "Max-Forwards")) return K_MAXFWD;
    if (eq(canonical, "Expires") || eq(canonical, "Min-Expires")) return K_DELTA;
    if (eq(canonical, "Allow") || eq(canonical, "Supported") || eq(canonical, "Require")
        || eq(canonical, "Proxy-Require") || eq(canonical, "Unsupported"))
        return K_TOKENS;
    if (eq(canonical, "Content-Type")) return K_MEDIA;
    return K_OTHER;
}

/* The entry for a wire spelling; NULL without an exception when it is not a known name. */
static name_entry *
lookup_name(const char *s, Py_ssize_t n)
{
    uint32_t h = 0;
    if (n < NAME_LEN_MAX) {
        h = name_hash(s, n);
        for (int probe = 0; probe < 8; probe++) {
            name_entry *e = &names[(h + (uint32_t)probe) % NAME_SLOTS];
            if (e->len == 0)
                break;
            if (e->len == n && memcmp(e->name, s, (size_t)n) == 0)
                return e;
        }
    }
    if (ev.known_names == NULL)
        return NULL;
    PyObject *key = ev_str(s, n);
    if (key == NULL)
        return NULL;
    PyObject *canonical = PyDict_GetItemWithError(ev.known_names, key);  /* borrowed */
    Py_DECREF(key);
    if (canonical == NULL || !PyUnicode_CheckExact(canonical))
        return NULL;
    static name_entry scratch;   /* for names the table cannot hold */
    name_entry *slot = NULL;
    if (n < NAME_LEN_MAX && names_used < NAME_SLOTS / 2) {
        for (int probe = 0; probe < 8; probe++) {
            name_entry *e = &names[(h + (uint32_t)probe) % NAME_SLOTS];
            if (e->len == 0) {
                slot = e;
                break;
            }
        }
    }
    if (slot == NULL) {
        slot = &scratch;
        Py_CLEAR(scratch.canonical);
        Py_CLEAR(scratch.check);
    } else {
        names_used++;
        slot->len = (unsigned char)n;
        memcpy(slot->name, s, (size_t)n);
    }
    Py_INCREF(canonical);
    slot->canonical = canonical;
    slot->kind = kind_of(canonical);
    slot->check = NULL;
    if (ev.full_checks != NULL) {
        PyObject *check = PyDict_GetItemWithError(ev.full_checks, canonical);
        if (check == NULL && PyErr_Occurred())
            PyErr_Clear();
        if (check != NULL) {
            Py_INCREF(check);
            slot->check = check;
            if (slot->kind == K_OTHER)
                slot->kind = K_CHECK;
        }
    }
    return slot;
}

static void
clear_names(void)
{
    for (int i = 0; i < NAME_SLOTS; i++) {
        names[i].len = 0;
        Py_CLEAR(names[i].canonical);
        Py_CLEAR(names[i].check);
    }
    names_used = 0;
}

/* Octets the line scan stops at: controls (CR, HTAB and the rest), DEL and non-ASCII. */
static unsigned char special_table[256];

static void
init_tables(void)
{
    for (int c = 0; c < 256; c++) special_table[c] = c < 0x20 || c >= 0x7f;
}

static int
all_digits(const char *s, Py_ssize_t n)
{
    if (n == 0)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* The value of n digits (at most 18 significant, else -1). */
static long long
digits_value(const char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    while (i < n - 1 && s[i] == '0')
        i++;
    if (n - i > 18)
        return -1;
    long long v = 0;
    for (; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/* Native forms of message._FULL_CHECKS for the usual shapes: 1 valid, 0 "ask Python". */
static int
check_native(int kind, const char *v, Py_ssize_t n)
{
    long long x;
    Py_ssize_t i;
    switch (kind) {
    case K_MAXFWD:
        return all_digits(v, n) && (x = digits_value(v, n)) >= 0 && x <= 255;
    case K_DELTA:
        return all_digits(v, n) && (x = digits_value(v, n)) >= 0 && x <= 4294967295LL;
    case K_TOKENS:
        /* [ token *( "," token ) ] with SP/HTAB around the commas */
        i = ev_skip_ws(v, 0, n);
        if (i == n)
            return 1;
        for (;;) {
            Py_ssize_t j = ev_run(v, i, n, EV_C_TOKEN);
            if (j == i)
                return 0;
            i = ev_skip_ws(v, j, n);
            if (i == n)
                return 1;
            if (v[i] != ',')
                return 0;
            i = ev_skip_ws(v, i + 1, n);
        }
    case K_MEDIA:
        /* token / token, no parameters */
        i = ev_run(v, 0, n, EV_C_TOKEN);
        if (i == 0 || i >= n || v[i] != '/')
            return 0;
        return i + 1 < n && ev_run(v, i + 1, n, EV_C_TOKEN) == n;
    default:
        return 0;
    }
}

/* After a Python call failed: 1 when the exception is an ordinary error (cleared: the
 * Python parser will meet it again and report it), 0 when it must propagate (MemoryError,
 * KeyboardInterrupt and the like). */
static int
is_plain_error(void)
{
    if (PyErr_ExceptionMatches(PyExc_MemoryError) || !PyErr_ExceptionMatches(PyExc_Exception))
        return 0;
    PyErr_Clear();
    return 1;
}

/* Message.content_type == "application/sdp": the value up to ";", stripped, any case. */
static int
is_sdp_type(const char *v, Py_ssize_t n)
{
    const char *semi = memchr(v, ';', (size_t)n);
    Py_ssize_t end = semi != NULL ? semi - v : n;
    Py_ssize_t start = ev_skip_ws(v, 0, end);
    while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
        end--;
    return end - start == 15 && PyOS_strnicmp(v + start, "application/sdp", 15) == 0;
}

/* Split a list header value (headers.split_header_values) and append one NameAddr per
 * element to list. Returns 1, 0 for "not fast", -1 on an error. */
static int
append_name_addrs(PyObject *list, const char *v, Py_ssize_t n)
{
    if (memchr(v, '"', (size_t)n) != NULL && memchr(v, ',', (size_t)n) != NULL)
        return 0;
    Py_ssize_t start = 0;
    int in_angle = 0;
    for (Py_ssize_t i = 0; i <= n; i++) {
        if (i < n) {
            char c = v[i];
            if (c == '<')
                in_angle = 1;
            else if (c == '>')
                in_angle = 0;
            if (c != ',' || in_angle)
                continue;
        }
        if (in_angle)
            return 0;
        Py_ssize_t a = ev_skip_ws(v, start, i), b = i;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        start = i + 1;
        if (a == b)
            continue;
        PyObject *na = ev_parse_name_addr(v + a, b - a);
        if (na == NULL)
            return PyErr_Occurred() ? -1 : 0;
        int rc = PyList_Append(list, na);
        Py_DECREF(na);
        if (rc < 0)
            return -1;
    }
    return 1;
}

static PyObject *s_method, *s_uri_, *s_headers, *s_body, *s_status, *s_reason, *s_items,
    *s_views, *s_vias, *s_from_, *s_to, *s_call_id, *s_cseq, *s_seq, *s_contacts, *s_routes,
    *s_record_routes, *s_sdp, *s_sdp_body;

static int
intern_all(void)
{
#define I(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return -1
    I(s_method, "method"); I(s_uri_, "_uri"); I(s_headers, "headers"); I(s_body, "body");
    I(s_status, "status"); I(s_reason, "reason"); I(s_items, "_items");
    I(s_views, "_views"); I(s_vias, "vias"); I(s_from_, "from_"); I(s_to, "to");
    I(s_call_id, "call_id"); I(s_cseq, "cseq"); I(s_seq, "seq"); I(s_contacts, "contacts");
    I(s_routes, "routes"); I(s_record_routes, "record_routes"); I(s_sdp, "sdp");
    I(s_sdp_body, "sdp_body");
#undef I
    return 0;
}

#define NOT_FAST() do { goto not_fast; } while (0)
#define FAIL() do { goto fail; } while (0)

static PyObject *
parse_message(const char *raw, Py_ssize_t size, int full)
{
    PyObject *message = NULL, *items = NULL, *vias = NULL, *headers = NULL, *views = NULL;
    PyObject *contacts = NULL, *routes = NULL, *record_routes = NULL;
    PyObject *from = NULL, *to = NULL, *body = NULL, *sdp = NULL;
    const char *ctype_v = NULL;
    Py_ssize_t ctype_n = 0;
    const char *from_v = NULL, *to_v = NULL, *cseq_v = NULL, *clen_v = NULL;
    Py_ssize_t from_n = 0, to_n = 0, callid_n = 0, cseq_n = 0, clen_n = 0;
    int n_from = 0, n_to = 0, n_callid = 0, n_cseq = 0, n_clen = 0;
    PyObject *callid_obj = NULL;
    int is_request = 0;
    const char *method = NULL;
    Py_ssize_t method_n = 0;

    if (ev.Request == NULL || ev.Response == NULL || ev.Headers == NULL || ev.Views == NULL
        || ev.CSeq == NULL || ev.known_names == NULL)
        return NULL;
    if (size > max_message || size == 0 || raw[0] == '\r' || raw[0] == '\n')
        return NULL;
    /* The header section ends at the first blank line. */
    Py_ssize_t end = -1;
    for (const char *p = raw; ; p++) {
        p = memchr(p, '\r', (size_t)(size - (p - raw)));
        if (p == NULL || size - (p - raw) < 4)
            return NULL;
        if (p[1] == '\n' && p[2] == '\r' && p[3] == '\n') {
            end = p - raw;
            break;
        }
    }
    const char *body_start = raw + end + 4;
    Py_ssize_t body_len = size - end - 4;

    /* Line by line: ASCII, no control characters but HTAB, CRLF line ends only. */
    items = PyList_New(0);
    vias = PyList_New(0);
    if (items == NULL || vias == NULL)
        FAIL();
    if (full) {
        contacts = PyList_New(0);
        routes = PyList_New(0);
        record_routes = PyList_New(0);
        if (contacts == NULL || routes == NULL || record_routes == NULL)
            FAIL();
    }
    Py_ssize_t pos = 0, n_lines = 0;
    while (pos < end) {
        Py_ssize_t ls = pos, le = pos;
        while (le < end) {
            unsigned char c = (unsigned char)raw[le];
            if (!special_table[c]) {
                le++;
                continue;
            }
            if (c == '\r' && le + 1 < end && raw[le + 1] == '\n')
                break;
            if (c != '\t')
                NOT_FAST();
            le++;
        }
        pos = le + 2;
        Py_ssize_t len = le - ls;
        const char *line = raw + ls;
        if (len > max_line)
            NOT_FAST();
        if (n_lines++ == 0) {
            /* The start line. */
            if (len >= 8 && memcmp(line, "SIP/2.0 ", 8) == 0) {
                if (len < 11 || !all_digits(line + 8, 3) || (len > 11 && line[11] != ' '))
                    NOT_FAST();
                int status = (line[8] - '0') * 100 + (line[9] - '0') * 10 + (line[10] - '0');
                if (status < 100 || status > 699)
                    NOT_FAST();
                message = ev_new(ev.Response);
                if (message == NULL)
                    FAIL();
                if (ev_set(message, s_status, PyLong_FromLong(status)) < 0)
                    FAIL();
                if (ev_set(message, s_reason,
                           len > 12 ? ev_str(line + 12, len - 12) : ev_str("", 0)) < 0)
                    FAIL();
                is_request = 0;
            } else {
                if (len >= 4 && (line[0] == 'S' || line[0] == 's')
                    && PyOS_strnicmp(line, "SIP/", 4) == 0)
                    NOT_FAST();
                Py_ssize_t sp1 = ev_run(line, 0, len, EV_C_TOKEN);
                if (sp1 == 0 || sp1 >= len || line[sp1] != ' ')
                    NOT_FAST();
                const char *sp2p = memchr(line + sp1 + 1, ' ', (size_t)(len - sp1 - 1));
                if (sp2p == NULL)
                    NOT_FAST();
                Py_ssize_t sp2 = sp2p - line;
                if (len - sp2 - 1 != 7 || memcmp(line + sp2 + 1, "SIP/2.0", 7) != 0)
                    NOT_FAST();
                PyObject *uri = ev_parse_sip_uri(line + sp1 + 1, sp2 - sp1 - 1);
                if (uri == NULL) {
                    if (PyErr_Occurred())
                        FAIL();
                    NOT_FAST();
                }
                message = ev_new(ev.Request);
                if (message == NULL) {
                    Py_DECREF(uri);
                    FAIL();
                }
                method = line;
                method_n = sp1;
                if (ev_set(message, s_method, ev_str(line, sp1)) < 0) {
                    Py_DECREF(uri);
                    FAIL();
                }
                if (ev_set(message, s_uri_, uri) < 0)
                    FAIL();
                is_request = 1;
            }
            continue;
        }
        if (n_lines - 1 > max_headers)
            NOT_FAST();
        if (len == 0 || line[0] == ' ' || line[0] == '\t')
            NOT_FAST();
        const char *colon = memchr(line, ':', (size_t)len);
        if (colon == NULL || colon == line)
            NOT_FAST();
        name_entry *e = lookup_name(line, colon - line);
        if (e == NULL) {
            if (PyErr_Occurred())
                FAIL();
            NOT_FAST();
        }
        Py_ssize_t vs = ev_skip_ws(line, (colon - line) + 1, len), ve = len;
        while (ve > vs && (line[ve - 1] == ' ' || line[ve - 1] == '\t'))
            ve--;
        const char *v = line + vs;
        Py_ssize_t vn = ve - vs;
        PyObject *value = ev_str(v, vn);
        if (value == NULL)
            FAIL();
        PyObject *item = PyTuple_New(2);
        if (item == NULL) {
            Py_DECREF(value);
            FAIL();
        }
        Py_INCREF(e->canonical);
        PyTuple_SET_ITEM(item, 0, e->canonical);
        PyTuple_SET_ITEM(item, 1, value);   /* (item owns value; borrowed below) */
        int rc = PyList_Append(items, item);
        Py_DECREF(item);
        if (rc < 0)
            FAIL();
        switch (e->kind) {
        case K_VIA:
            if (memchr(v, ',', (size_t)vn) != NULL)
                NOT_FAST();
            if (PyList_Append(vias, value) < 0)  /* the text for now; parsed below */
                FAIL();
            break;
        case K_FROM: n_from++; from_v = v; from_n = vn; break;
        case K_TO: n_to++; to_v = v; to_n = vn; break;
        case K_CALLID: n_callid++; callid_n = vn; callid_obj = value; break;
        case K_CSEQ: n_cseq++; cseq_v = v; cseq_n = vn; break;
        case K_CLEN: n_clen++; clen_v = v; clen_n = vn; break;
        default:
            if (e->kind == K_MEDIA && ctype_v == NULL) {
                ctype_v = v;
                ctype_n = vn;
            }
            if (!full)
                break;
            if (e->kind == K_CONTACT || e->kind == K_ROUTE || e->kind == K_RROUTE) {
                if (e->kind == K_CONTACT && vn == 1 && v[0] == '*')
                    break;
                PyObject *target = e->kind == K_CONTACT ? contacts
                                   : e->kind == K_ROUTE ? routes : record_routes;
                int r = append_name_addrs(target, v, vn);
                if (r < 0)
                    FAIL();
                if (r == 0)
                    NOT_FAST();
            } else if (e->check != NULL && !check_native(e->kind, v, vn)) {
                PyObject *r = PyObject_CallOneArg(e->check, value);
                if (r == NULL) {
                    if (!is_plain_error())
                        FAIL();
                    NOT_FAST();   /* invalid: the Python parser reports it */
                }
                Py_DECREF(r);
            }
        }
    }
    if (message == NULL)
        NOT_FAST();
    /* The transaction-path headers: each present exactly once (Via at least once). */
    if (n_from != 1 || n_to != 1 || n_callid != 1 || n_cseq != 1 || n_clen > 1
        || PyList_GET_SIZE(vias) == 0 || callid_n == 0)
        NOT_FAST();
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(vias); i++) {
        PyObject *text = PyList_GET_ITEM(vias, i);
        PyObject *via = ev_parse_via((const char *)PyUnicode_DATA(text),
                                     PyUnicode_GET_LENGTH(text));
        if (via == NULL) {
            if (PyErr_Occurred())
                FAIL();
            NOT_FAST();
        }
        PyList_SET_ITEM(vias, i, via);   /* drops the reference to the text */
        Py_DECREF(text);
    }
    from = ev_parse_name_addr(from_v, from_n);
    if (from == NULL && PyErr_Occurred())
        FAIL();
    to = ev_parse_name_addr(to_v, to_n);
    if (to == NULL && PyErr_Occurred())
        FAIL();
    if ((from == NULL || to == NULL) && (is_request || full))
        NOT_FAST();   /* (a response's From/To are checked when read: leave them to Python) */
    /* CSeq = 1*DIGIT LWS Method */
    Py_ssize_t d = 0;
    while (d < cseq_n && cseq_v[d] >= '0' && cseq_v[d] <= '9')
        d++;
    if (d == 0 || d > 10)
        NOT_FAST();
    Py_ssize_t m0 = ev_skip_ws(cseq_v, d, cseq_n);
    if (m0 == d || ev_run(cseq_v, m0, cseq_n, EV_C_TOKEN) != cseq_n || m0 == cseq_n)
        NOT_FAST();
    long long seq = digits_value(cseq_v, d);
    if (seq < 0 || seq > 2147483647LL)
        NOT_FAST();
    if (is_request && (cseq_n - m0 != method_n || memcmp(cseq_v + m0, method, (size_t)method_n)))
        NOT_FAST();
    if (clen_v != NULL) {
        if (!all_digits(clen_v, clen_n))
            NOT_FAST();
        long long length = digits_value(clen_v, clen_n);
        if (length < 0 || length > body_len)
            NOT_FAST();
        body_len = (Py_ssize_t)length;
    }

    body = PyBytes_FromStringAndSize(body_start, body_len);
    if (body == NULL)
        FAIL();
    /* A full parse parses an SDP body too, as Message.sdp would (it then answers from the
     * views): with the Content-Type read as Message.content_type reads it. */
    if (full && ev.sdp_parser != NULL && body_len > 0 && ctype_v != NULL
        && is_sdp_type(ctype_v, ctype_n)) {
        sdp = PyObject_CallOneArg(ev.sdp_parser, body);
        if (sdp == NULL) {
            if (!is_plain_error())
                FAIL();
            NOT_FAST();   /* an invalid body: the Python parser reports it */
        }
    }

    /* Build: Headers(items) with its _Views, then the message's headers and body. */
    PyObject *cseq = ev_new(ev.CSeq);
    if (cseq == NULL)
        FAIL();
    if (ev_set(cseq, s_seq, PyLong_FromLongLong(seq)) < 0
        || ev_set(cseq, s_method, ev_str(cseq_v + m0, cseq_n - m0)) < 0) {
        Py_DECREF(cseq);
        FAIL();
    }
    views = ev_new(ev.Views);
    if (views == NULL) {
        Py_DECREF(cseq);
        FAIL();
    }
    {
        int rc = ev_set(views, s_cseq, cseq);
        if (rc == 0) {
            rc = ev_set(views, s_vias, vias);
            vias = NULL;
        }
        if (rc < 0)
            FAIL();
        Py_INCREF(callid_obj);
        if (ev_set(views, s_call_id, callid_obj) < 0)
            FAIL();
    }
    if (from != NULL) {
        int rc = ev_set(views, s_from_, from);
        from = NULL;
        if (rc < 0)
            FAIL();
    }
    if (to != NULL) {
        int rc = ev_set(views, s_to, to);
        to = NULL;
        if (rc < 0)
            FAIL();
    }
    if (sdp != NULL) {
        int rc = ev_set(views, s_sdp, sdp);
        sdp = NULL;
        if (rc < 0 || ev_set(views, s_sdp_body, Py_NewRef(body)) < 0)
            FAIL();
    }
    if (full) {
        int rc = ev_set(views, s_contacts, contacts);
        contacts = NULL;
        if (rc < 0) FAIL();
        rc = ev_set(views, s_routes, routes);
        routes = NULL;
        if (rc < 0) FAIL();
        rc = ev_set(views, s_record_routes, record_routes);
        record_routes = NULL;
        if (rc < 0) FAIL();
    }
    headers = ev_new(ev.Headers);
    if (headers == NULL)
        FAIL();
    {
        int rc = ev_set(headers, s_items, items);
        items = NULL;
        if (rc < 0)
            FAIL();
        rc = ev_set(headers, s_views, views);
        views = NULL;
        if (rc < 0)
            FAIL();
        rc = ev_set(message, s_headers, headers);
        headers = NULL;
        if (rc < 0)
            FAIL();
    }
    {
        int rc = ev_set(message, s_body, body);
        body = NULL;
        if (rc < 0)
            FAIL();
    }
    return message;

not_fast:
fail:
    Py_XDECREF(message);
    Py_XDECREF(items);
    Py_XDECREF(vias);
    Py_XDECREF(headers);
    Py_XDECREF(views);
    Py_XDECREF(contacts);
    Py_XDECREF(routes);
    Py_XDECREF(record_routes);
    Py_XDECREF(from);
    Py_XDECREF(to);
    Py_XDECREF(body);
    Py_XDECREF(sdp);
    return NULL;
}

static PyObject *
py_parse(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "parse(data: bytes, full: bool)");
        return NULL;
    }
    int full = PyObject_IsTrue(args[1]);
    if (full < 0)
        return NULL;
    PyObject *m = parse_message(PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]), full);
    if (m == NULL && !PyErr_Occurred())
        Py_RETURN_NONE;
    return m;
}

static PyObject *
py_set_limits(PyObject *self, PyObject *args)
{
    Py_ssize_t a, b, c;
    if (!PyArg_ParseTuple(args, "nnn:set_limits", &a, &b, &c))
        return NULL;
    max_message = a;
    max_line = b;
    max_headers = c;
    Py_RETURN_NONE;
}

/* ---- Python-level wrappers ------------------------------------------------------------ */

typedef PyObject *(*ev_parser)(const char *, Py_ssize_t);

static PyObject *
call_on_str(PyObject *arg, ev_parser parse)
{
    if (!PyUnicode_Check(arg) || !PyUnicode_IS_ASCII(arg))
        Py_RETURN_NONE;
    PyObject *result = parse((const char *)PyUnicode_DATA(arg), PyUnicode_GET_LENGTH(arg));
    if (result == NULL && !PyErr_Occurred())
        Py_RETURN_NONE;
    return result;
}

static PyObject *
py_sip_uri(PyObject *self, PyObject *arg)
{
    return call_on_str(arg, ev_parse_sip_uri);
}

static PyObject *
py_name_addr(PyObject *self, PyObject *arg)
{
    return call_on_str(arg, ev_parse_name_addr);
}

static PyObject *
py_via(PyObject *self, PyObject *arg)
{
    return call_on_str(arg, ev_parse_via);
}

static PyObject *
py_register(PyObject *self, PyObject *args)
{
    const char *name;
    PyObject *obj;
    if (!PyArg_ParseTuple(args, "sO:register", &name, &obj))
        return NULL;
    PyObject **slot = NULL;
    if (strcmp(name, "SipURI") == 0) slot = &ev.SipURI;
    else if (strcmp(name, "NameAddr") == 0) slot = &ev.NameAddr;
    else if (strcmp(name, "Via") == 0) slot = &ev.Via;
    else if (strcmp(name, "CSeq") == 0) slot = &ev.CSeq;
    else if (strcmp(name, "Headers") == 0) slot = &ev.Headers;
    else if (strcmp(name, "Views") == 0) slot = &ev.Views;
    else if (strcmp(name, "Request") == 0) slot = &ev.Request;
    else if (strcmp(name, "Response") == 0) slot = &ev.Response;
    else if (strcmp(name, "known_names") == 0) slot = &ev.known_names;
    else if (strcmp(name, "full_checks") == 0) slot = &ev.full_checks;
    else if (strcmp(name, "sdp_parser") == 0) slot = &ev.sdp_parser;
    if (slot == NULL) {
        PyErr_Format(PyExc_ValueError, "unknown name %s", name);
        return NULL;
    }
    if (slot == &ev.sdp_parser) {
        if (!PyCallable_Check(obj)) {
            PyErr_Format(PyExc_TypeError, "%s must be callable", name);
            return NULL;
        }
    } else if (slot != &ev.known_names && slot != &ev.full_checks && !PyType_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a class", name);
        return NULL;
    }
    if ((slot == &ev.known_names || slot == &ev.full_checks) && !PyDict_CheckExact(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a dict", name);
        return NULL;
    }
    Py_INCREF(obj);
    Py_XSETREF(*slot, obj);
    if (slot == &ev.known_names || slot == &ev.full_checks)
        clear_names();
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"register", py_register, METH_VARARGS,
     "register(name, obj): hand over a class or table the parser builds or reads."},
    {"parse", (PyCFunction)(void (*)(void))py_parse, METH_FASTCALL,
     "parse(data, full): the Request or Response, or None outside the fast subset."},
    {"set_limits", py_set_limits, METH_VARARGS,
     "set_limits(max_message_size, max_line_length, max_num_headers)."},
    {"sip_uri", py_sip_uri, METH_O,
     "sip_uri(text): the SipURI, or None when text is outside the fast subset."},
    {"name_addr", py_name_addr, METH_O,
     "name_addr(text): the NameAddr, or None when text is outside the fast subset."},
    {"via", py_via, METH_O,
     "via(text): the Via, or None when text is outside the fast subset."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "exotel_voice.sip._cmessage",
    "The optional C accelerator of exotel_voice.sip's message parser.", -1, methods,
};

PyMODINIT_FUNC
PyInit__cmessage(void)
{
    if (ev_elements_init() < 0 || intern_all() < 0)
        return NULL;
    init_tables();
    return PyModule_Create(&module);
}
