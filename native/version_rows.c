/* The entries pass's per-version work in C (issue 27, decision 3), compiled into
 * plant_map_native beside the audit's other row loops (plant_audit_rows.c).
 *
 * version_rows(rows, flags, at, expected, reported, latest, irregular, tenant, names, kinds,
 * summary, feed) -> (at, expected): the rows of a batch from `at` (as the entries pass reads
 * them: idx, version, digest, leaf_hash, entity id bytes, entry type, kind, prev_digest,
 * body; `flags` entry_hashes' byte a row) taken in order while each is a version of the
 * plain shape whose checks find nothing: its bytes the stored leaf and its columns, not yet
 * reported, its index the one expected, its entity not irregular, and its bytes a strict
 * JSON document (no whitespace, members in increasing order, no \u escape, integers only,
 * valid UTF-8) whose identity, version, kind and tenant are the row's, whose relationships
 * are all null, and which follows the newest version read of its entity (or is a version 1
 * of a new one, linking to nothing). For each such row it does what the Python loop does
 * (shared/audit/entry_rows.py, versions.version, map_feed.Feed.entry): the summary (a
 * `summary` instance, its strings interned in `names`) into `latest`, and, `feed` not None,
 * the map's version tuple (its kind interned in `kinds`). It stops, before any effect, at
 * the first row it is not sure of and returns where; Python then takes that row, so the
 * findings and their order cannot differ (twin: that Python loop,
 * tests/audit/test_version_rows.py). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "plant_native.h"

#define MAX_DEPTH 32

typedef struct {
    const uint8_t *at, *end; /* a member's value: its first byte, one past its last */
} span_t;

/* One past a string's closing quote (`p` at its opening one), or NULL: a control
 * character, bytes that are not strict UTF-8, an escape other than the short ones (and any
 * escape where `plain`), or a backslash and a 'u' side by side (so that a body holding the
 * bytes \u0000, which versions.version reads whole, is always Python's). */
static const uint8_t *string_end(const uint8_t *p, const uint8_t *end, int plain) {
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    for (p++; p < end;) {
        /* eight printable ASCII bytes, none a quote or a backslash, at a time */
        while (end - p >= 8) {
            uint64_t x, quote, slash;
            memcpy(&x, p, 8);
            quote = x ^ (ones * '"');
            slash = x ^ (ones * '\\');
            if ((((x - ones * 0x20) & ~x) | ((quote - ones) & ~quote) |
                 ((slash - ones) & ~slash) | x) & high)
                break; /* one of them is not: byte by byte */
            p += 8;
        }
        if (p >= end) break;
        uint8_t c = *p;
        if (c == '"') return p + 1;
        if (c < 0x20) return NULL;
        if (c == '\\') {
            if (plain || p + 1 >= end) return NULL;
            c = p[1];
            if (!strchr("\"\\/bfnrt", c) || c == 0) return NULL;
            if (c == '\\' && p + 2 < end && p[2] == 'u') return NULL;
            p += 2;
            continue;
        }
        if (c < 0x80) {
            p++;
            continue;
        }
        int more;
        uint8_t low = 0x80, high = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            if (c == 0xE0) low = 0xA0;
            if (c == 0xED) high = 0x9F; /* no surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            if (c == 0xF0) low = 0x90;
            if (c == 0xF4) high = 0x8F;
        } else {
            return NULL;
        }
        if (end - p <= more || p[1] < low || p[1] > high) return NULL;
        for (int i = 2; i <= more; i++)
            if (p[i] < 0x80 || p[i] > 0xBF) return NULL;
        p += more + 1;
    }
    return NULL;
}

/* One past an integer (0, or -?[1-9][0-9]*, at most 18 digits), or NULL: anything else
 * (-0, a fraction, an exponent). */
static const uint8_t *integer_end(const uint8_t *p, const uint8_t *end) {
    if (p < end && *p == '-' && ++p < end && *p == '0') return NULL;
    const uint8_t *digits = p;
    while (p < end && *p >= '0' && *p <= '9') p++;
    if (p == digits || p - digits > 18 || (*digits == '0' && p - digits > 1)) return NULL;
    if (p < end && (*p == '.' || *p == 'e' || *p == 'E')) return NULL;
    return p;
}

/* The members of an object to find: their names (NULL-terminated, in the order the values
 * go to `found`), and for each, where it is an object, those to find in it (or NULL);
 * `nulls`: every value must be null. */
typedef struct wanted {
    const char *const *names;
    span_t *found;
    const struct wanted *inner;
    int nulls;
} wanted_t;

static const uint8_t *object_end(const uint8_t *p, const uint8_t *end, int depth,
                                 const wanted_t *wanted);

/* One past the JSON value at `p`, or NULL where it is not of the strict shape. */
static const uint8_t *value_end(const uint8_t *p, const uint8_t *end, int depth) {
    if (p >= end || depth > MAX_DEPTH) return NULL;
    switch (*p) {
    case '{':
        return object_end(p, end, depth + 1, NULL);
    case '[':
        p++;
        if (p < end && *p == ']') return p + 1;
        for (;;) {
            p = value_end(p, end, depth + 1);
            if (!p || p >= end) return NULL;
            if (*p == ']') return p + 1;
            if (*p++ != ',') return NULL;
        }
    case '"':
        return string_end(p, end, 0);
    case 't':
        return end - p >= 4 && !memcmp(p, "true", 4) ? p + 4 : NULL;
    case 'f':
        return end - p >= 5 && !memcmp(p, "false", 5) ? p + 5 : NULL;
    case 'n':
        return end - p >= 4 && !memcmp(p, "null", 4) ? p + 4 : NULL;
    default:
        return integer_end(p, end);
    }
}

/* One past the object at `p`, or NULL: a member name with an escape, names not in strictly
 * increasing byte order (so none twice), a value not of the strict shape, or (`nulls`) a
 * value that is not null. The values of the members `wanted` names go to its `found`; one
 * that is an object is walked for its own `inner` members as it is checked. */
static const uint8_t *object_end(const uint8_t *p, const uint8_t *end, int depth,
                                 const wanted_t *wanted) {
    const uint8_t *last = NULL;
    Py_ssize_t last_len = 0;
    if (depth > MAX_DEPTH) return NULL;
    p++;
    if (p < end && *p == '}') return p + 1;
    for (;;) {
        if (p >= end || *p != '"') return NULL;
        const uint8_t *name = p + 1, *after = string_end(p, end, 1);
        if (!after || after >= end || *after != ':') return NULL;
        Py_ssize_t len = after - 1 - name;
        if (last) {
            int order = memcmp(last, name, (size_t)(len < last_len ? len : last_len));
            if (order > 0 || (order == 0 && last_len >= len)) return NULL;
        }
        last = name;
        last_len = len;
        const uint8_t *value = after + 1;
        int i = 0;
        if (wanted && wanted->names) {
            for (; wanted->names[i]; i++)
                if ((size_t)len == strlen(wanted->names[i]) &&
                    !memcmp(name, wanted->names[i], (size_t)len))
                    break;
            if (!wanted->names[i]) i = -1;
        } else {
            i = -1;
        }
        if (wanted && wanted->nulls)
            p = end - value >= 4 && !memcmp(value, "null", 4) ? value + 4 : NULL;
        else if (i >= 0 && wanted->inner && wanted->inner[i].names && value < end && *value == '{')
            p = object_end(value, end, depth + 1, &wanted->inner[i]);
        else
            p = value_end(value, end, depth);
        if (!p || p >= end) return NULL;
        if (i >= 0) {
            wanted->found[i].at = value;
            wanted->found[i].end = p;
        }
        if (*p == '}') return p + 1;
        if (*p++ != ',') return NULL;
    }
}

/* A member found and a string without escapes: its bytes between the quotes. */
static int plain_string(span_t s, span_t *text) {
    if (!s.at || *s.at != '"' || memchr(s.at, '\\', (size_t)(s.end - s.at))) return 0;
    text->at = s.at + 1;
    text->end = s.end - 1;
    return 1;
}

static int same_bytes(span_t s, const char *data, Py_ssize_t len) {
    return s.end - s.at == len && !memcmp(s.at, data, (size_t)len);
}

/* What versions.version reads of a version's bytes, when they are of the strict shape. */
typedef struct {
    span_t id, entity_type, name, tenant, status, category; /* category.at NULL: None */
    long long version;
} checked_t;

static const char *const TOP[] = {"identity", "lifecycle", "metadata", "relationships",
                                  "versioning", NULL};
static const char *const IDENTITY[] = {"entity_type", "id", "name", "tenant", NULL};
static const char *const STATUS[] = {"status", NULL};
static const char *const CATEGORY[] = {"category", NULL};
static const char *const VERSION[] = {"version", NULL};

/* 1 with `out` filled where `body` is a strict document holding every field the entries
 * pass checks, of the types its parse wants, and all relationships null; 0 otherwise. */
static int scan(const uint8_t *body, Py_ssize_t len, checked_t *out) {
    const uint8_t *end = body + len;
    span_t top[5] = {{0}}, identity[4] = {{0}}, status[1] = {{0}}, category[1] = {{0}},
           version[1] = {{0}};
    static const char *const nulls[] = {NULL}; /* relationships: any member, each null */
    const wanted_t sections[5] = {{IDENTITY, identity, NULL, 0},
                                  {STATUS, status, NULL, 0},
                                  {CATEGORY, category, NULL, 0},
                                  {nulls, NULL, NULL, 1},
                                  {VERSION, version, NULL, 0}};
    const wanted_t wanted = {TOP, top, sections, 0};
    if (len < 2 || *body != '{' || object_end(body, end, 1, &wanted) != end) return 0;
    for (int i = 0; i < 5; i++)
        if (!top[i].at || *top[i].at != '{') return 0;
    if (!plain_string(identity[0], &out->entity_type) || !plain_string(identity[1], &out->id) ||
        !plain_string(identity[2], &out->name) || !plain_string(identity[3], &out->tenant) ||
        !plain_string(status[0], &out->status))
        return 0;
    out->category.at = out->category.end = NULL;
    if (category[0].at && *category[0].at != 'n' && !plain_string(category[0], &out->category))
        return 0;
    const uint8_t *v = version[0].at;
    if (!v || *v < '0' || *v > '9') return 0;
    out->version = 0;
    for (; v < version[0].end; v++) out->version = out->version * 10 + (*v - '0');
    return 1;
}

/* `text` as a str, the one `names` holds if it holds an equal one (dict.setdefault). */
static PyObject *interned(PyObject *names, span_t text) {
    PyObject *made = PyUnicode_DecodeUTF8((const char *)text.at, text.end - text.at, "strict");
    if (!made) return NULL;
    PyObject *held = PyDict_SetDefault(names, made, made);
    Py_XINCREF(held);
    Py_DECREF(made);
    return held;
}

static int long_of(PyObject *value, long long *out) {
    if (!PyLong_CheckExact(value)) return 0;
    int overflow;
    *out = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (*out == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return !overflow;
}

/* 1 where `value` is an exact str whose UTF-8 bytes are `s`'s. */
static int str_is(PyObject *value, span_t s) {
    Py_ssize_t len;
    if (!PyUnicode_CheckExact(value)) return 0;
    const char *data = PyUnicode_AsUTF8AndSize(value, &len);
    if (!data) {
        PyErr_Clear();
        return 0;
    }
    return same_bytes(s, data, len);
}

/* The row taken in as described above: 1; not sure of it (nothing done): 0; -1 an error. */
static int take(PyObject *row, PyObject *const *args, long long expected, PyObject *tenant) {
    PyObject *reported = args[4], *latest = args[5], *irregular = args[6], *names = args[8],
             *kinds = args[9], *summary_type = args[10], *feed = args[11];
    long long idx, number, known_version;
    checked_t doc;
    if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) != 9) return 0;
    PyObject *index = PyTuple_GET_ITEM(row, 0), *version = PyTuple_GET_ITEM(row, 1),
             *digest = PyTuple_GET_ITEM(row, 2), *leaf = PyTuple_GET_ITEM(row, 3),
             *raw_id = PyTuple_GET_ITEM(row, 4), *entry_type = PyTuple_GET_ITEM(row, 5),
             *kind = PyTuple_GET_ITEM(row, 6), *prev = PyTuple_GET_ITEM(row, 7),
             *body = PyTuple_GET_ITEM(row, 8);
    if (!long_of(index, &idx) || idx != expected || !long_of(version, &number) ||
        !PyBytes_CheckExact(body) || !PyBytes_CheckExact(raw_id) || !PyUnicode_CheckExact(kind) ||
        !PyUnicode_CheckExact(entry_type) ||
        PyUnicode_CompareWithASCIIString(entry_type, "version") != 0)
        return 0;
    int seen = PySet_Contains(reported, index);
    if (seen) return seen < 0 ? -1 : 0;
    if (!scan((const uint8_t *)PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body), &doc)) return 0;
    if (!same_bytes(doc.id, PyBytes_AS_STRING(raw_id), PyBytes_GET_SIZE(raw_id)) ||
        doc.version != number || !str_is(kind, doc.entity_type) || !str_is(tenant, doc.tenant))
        return 0;
    PyObject *entity_id = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(raw_id),
                                               PyBytes_GET_SIZE(raw_id), "strict");
    if (!entity_id) {
        PyErr_Clear();
        return 0;
    }
    PyObject *first = NULL, *known = NULL, *status = NULL, *kind_name = NULL, *name = NULL,
             *category = NULL, *made = NULL;
    int result = PySet_Contains(irregular, entity_id);
    if (result < 0) goto failed;
    if (result) { /* chains.checked's: Python's */
        result = 0;
        goto done;
    }
    known = PyDict_GetItemWithError(latest, entity_id);
    if (!known) {
        if (PyErr_Occurred()) goto failed;
        if (number != 1 || prev != Py_None) goto done; /* an opening or a broken link */
        first = index;
    } else {
        /* it must follow the newest read and link to its digest */
        if (Py_TYPE(known) != (PyTypeObject *)summary_type || PyTuple_GET_SIZE(known) != 9 ||
            !long_of(PyTuple_GET_ITEM(known, 1), &known_version) || known_version != number - 1)
            goto done;
        PyObject *linked = PyTuple_GET_ITEM(known, 2);
        if (!PyBytes_CheckExact(prev) || !PyBytes_CheckExact(linked) ||
            PyBytes_GET_SIZE(prev) != PyBytes_GET_SIZE(linked) ||
            memcmp(PyBytes_AS_STRING(prev), PyBytes_AS_STRING(linked),
                   (size_t)PyBytes_GET_SIZE(prev)))
            goto done;
        first = PyTuple_GET_ITEM(known, 8);
    }
    /* sure of it: from here on, only what Python would do */
    result = -1;
    status = interned(names, doc.status);
    kind_name = PyDict_SetDefault(names, kind, kind);
    Py_XINCREF(kind_name);
    name = PyUnicode_DecodeUTF8((const char *)doc.name.at, doc.name.end - doc.name.at, "strict");
    if (doc.category.at) {
        category = interned(names, doc.category);
    } else {
        category = Py_None;
        Py_INCREF(category);
    }
    if (!status || !kind_name || !name || !category) goto failed;
    made = ((PyTypeObject *)summary_type)->tp_alloc((PyTypeObject *)summary_type, 9);
    if (!made) goto failed;
    PyObject *items[9] = {index, version, digest, status, kind_name, Py_None, name, category,
                          first};
    for (int i = 0; i < 9; i++) {
        Py_INCREF(items[i]);
        PyTuple_SET_ITEM(made, i, items[i]);
    }
    if (PyDict_SetItem(latest, entity_id, made) < 0) goto failed;
    if (feed != Py_None) {
        PyObject *feed_kind = PyDict_SetDefault(kinds, kind, kind);
        if (!feed_kind) goto failed;
        PyObject *entry = PyTuple_Pack(5, index, feed_kind, version, leaf, status);
        if (!entry) goto failed;
        int stored = PyDict_SetItem(feed, entity_id, entry);
        Py_DECREF(entry);
        if (stored < 0) goto failed;
    }
    result = 1;
    goto done;
failed:
    result = -1;
done:
    Py_XDECREF(made);
    Py_XDECREF(status);
    Py_XDECREF(kind_name);
    Py_XDECREF(name);
    Py_XDECREF(category);
    Py_DECREF(entity_id);
    return result;
}

static PyObject *mod_version_rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 12 || !PyList_Check(args[0]) || !PyBytes_Check(args[1]) ||
        !PyAnySet_Check(args[4]) || !PyAnySet_Check(args[6]) || !PyUnicode_Check(args[7]) ||
        !PyDict_Check(args[8]) || !PyDict_Check(args[9]) || !PyType_Check(args[10]) ||
        !PyType_IsSubtype((PyTypeObject *)args[10], &PyTuple_Type) ||
        (args[11] != Py_None && !PyDict_Check(args[11]))) {
        PyErr_SetString(PyExc_TypeError,
                        "version_rows(rows, flags, at, expected, reported, latest, irregular, "
                        "tenant, names, kinds, summary, feed)");
        return NULL;
    }
    Py_ssize_t at = PyLong_AsSsize_t(args[2]);
    if (at == -1 && PyErr_Occurred()) return NULL;
    PyObject *rows = args[0], *expected = args[3];
    Py_INCREF(expected);
    long long next;
    /* a summaries dict of another type (state.Held) or an index past 64 bits: all Python's */
    if (PyDict_CheckExact(args[5]) && long_of(expected, &next)) {
        Py_ssize_t n = PyList_GET_SIZE(rows), nflags = PyBytes_GET_SIZE(args[1]);
        const uint8_t *flags = (const uint8_t *)PyBytes_AS_STRING(args[1]);
        for (; at >= 0 && at < n && at < nflags && flags[at] == 1; at++) {
            PyObject *row = PyList_GET_ITEM(rows, at);
            int taken = take(row, args, next, args[7]);
            if (taken < 0) {
                Py_DECREF(expected);
                return NULL;
            }
            if (!taken) break;
            next++;
        }
        Py_DECREF(expected);
        expected = PyLong_FromLongLong(next);
        if (!expected) return NULL;
    }
    return Py_BuildValue("(nN)", at, expected);
}

static PyMethodDef version_rows_methods[] = {
    {"version_rows", (PyCFunction)(void (*)(void))mod_version_rows, METH_FASTCALL,
     "version_rows(rows, flags, at, expected, reported, latest, irregular, tenant, names, "
     "kinds, summary, feed) -> (at, expected): the plain versions of a batch from `at` taken "
     "in as the entries pass takes them, up to the first row Python must look at."},
    {NULL}};

int plant_version_rows_add(PyObject *module) {
    return PyModule_AddFunctions(module, version_rows_methods);
}
