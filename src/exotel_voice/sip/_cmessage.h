/* exotel_voice.sip._cmessage: the optional C accelerator of the SIP message parser.
 *
 * Shared declarations of _cmessage.c (the module, the message parser) and _celements.c
 * (URI, name-addr and Via). The pure-Python parser (message.py, headers.py, uri.py) is the
 * reference: every function here either builds exactly the objects the Python code would
 * build for the same input, or answers "not in the fast subset" (NULL with no exception
 * set), and the caller falls back to Python, which then accepts or rejects the input.
 * NULL with an exception set means a real error (MemoryError).
 *
 * Input texts are ASCII (the callers check), given as (pointer, length): nothing here
 * reads s[n] or beyond.
 */
#ifndef EXOTEL_VOICE_CMESSAGE_H
#define EXOTEL_VOICE_CMESSAGE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* The Python classes the parser builds, registered from Python with
 * _cmessage.register(name, object) (strong references, owned by the module). A NULL entry
 * (not registered yet) makes every function answer "not in the fast subset". */
typedef struct {
    PyObject *SipURI;
    PyObject *NameAddr;
    PyObject *Via;
    PyObject *CSeq;
    PyObject *Headers;
    PyObject *Views;
    PyObject *Request;
    PyObject *Response;
    PyObject *known_names;   /* dict: header name as spelled on the wire -> canonical name */
    PyObject *full_checks;   /* dict: canonical header name -> Python check function */
    PyObject *sdp_parser;    /* sdp.parse_sdp (a full parse parses an SDP body), or NULL */
} ev_registry;

extern ev_registry ev;

/* A new instance of cls without calling __init__ (what object.__new__(cls) does). */
PyObject *ev_new(PyObject *cls);
/* Set an attribute in the instance dict (bypasses a frozen dataclass's __setattr__).
 * Steals the reference to value (also on failure). Returns 0, or -1 with an exception. */
int ev_set(PyObject *obj, PyObject *name, PyObject *value);
/* A new str from n ASCII bytes. */
PyObject *ev_str(const char *s, Py_ssize_t n);
/* The same, lower-cased (for parameter names) or upper-cased (a Via's transport). */
PyObject *ev_str_lower(const char *s, Py_ssize_t n);
PyObject *ev_str_upper(const char *s, Py_ssize_t n);

/* Character classes, one bit each (_celements.c fills the table in ev_elements_init). Bytes
 * >= 0x80 are in no class: a text that is not ASCII is never in the fast subset. */
enum {
    EV_C_TOKEN = 1 << 0,  /* abnf.TOKEN:      [A-Za-z0-9\-.!%*_+`'~]            */
    EV_C_GEN = 1 << 1,    /* abnf.GEN_VALUE:  TOKEN plus : [ ]                  */
    EV_C_HOST = 1 << 2,   /* host name:       [A-Za-z0-9\-.]                    */
    EV_C_USER = 1 << 3,   /* URI user:        [A-Za-z0-9\-_.!~*'()&=+$,;?/]     */
    EV_C_UPARAM = 1 << 4, /* URI parameter:   [A-Za-z0-9\-_.!~*'()\[\]/:&+$]    */
    EV_C_IPV6 = 1 << 5,   /* inside [ ]:      [0-9A-Fa-f:.]                     */
    EV_C_QDISP = 1 << 6,  /* quoted display name: [^"\\\x00-\x1f\x7f] (ASCII)   */
    EV_C_QPARAM = 1 << 7, /* quoted parameter value: [^";\\\x00-\x1f\x7f] (ASCII) */
};
extern unsigned char ev_classes[256];

/* The end of the run of class-k bytes starting at i (i itself when there is none). */
static inline Py_ssize_t
ev_run(const char *s, Py_ssize_t i, Py_ssize_t n, unsigned char k)
{
    while (i < n && (ev_classes[(unsigned char)s[i]] & k))
        i++;
    return i;
}

/* The end of the run of SP / HTAB starting at i. */
static inline Py_ssize_t
ev_skip_ws(const char *s, Py_ssize_t i, Py_ssize_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

/* uri.FAST_SIP_URI_RE.fullmatch(text) + uri.sip_uri_from_match(): a SipURI. */
PyObject *ev_parse_sip_uri(const char *s, Py_ssize_t n);
/* headers.FAST_NAME_ADDR_RE.fullmatch(text) + headers.name_addr_from_match(): a NameAddr. */
PyObject *ev_parse_name_addr(const char *s, Py_ssize_t n);
/* headers.FAST_VIA_RE.fullmatch(text) + headers.via_from_match(): a Via. */
PyObject *ev_parse_via(const char *s, Py_ssize_t n);

/* Called once from the module init: intern the attribute names _celements.c uses.
 * Returns 0, or -1 with an exception. */
int ev_elements_init(void);

#endif
