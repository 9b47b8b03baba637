/* The seal's map update over the strata it read (shared/storage/map_update.py), in C.
 *
 * Why C: a seal of 10,000 keys into a map of 1,000,000 rehashes ~100,000 nodes on their
 * paths and splices them into ~10,800 strata of up to 255 records. In Python that was a
 * recursion of one interpreter call a node, a slice of a row for each node it read and a
 * dict of the nodes written, then grouped by stratum and spliced: ~2.8 s of a ~11 s seal.
 *
 * The rules are sparse_merkle.update_hashed's, node for node: a subtree with no stored node
 * is built from its keys alone (one key: its leaf, hoisted; more: split on the next bit); a
 * stored leaf whose key is not among the new ones is pushed down among them; a stored
 * interior node is rewritten with each half that has new keys merged (an empty half built),
 * and a non-empty half with no stored node is an error naming its address, found in the
 * same order as the twin finds it (left before right, depth first). A stratum (map_strata:
 * 8 levels under a prefix of whole bytes, a record of 1 + 65 bytes a node in increasing
 * position) is entered once, through its top node, so each is looked up in `rows` once;
 * what comes back for it is its stored records with the nodes written put in, as
 * map_strata.Strata.merged gives them. The pure-Python twin is map_update's; a test holds
 * the two to the same root, strata and errors. */

#include <string.h>

#include "plant_native.h"

#define RECORD PLANT_RECORD

typedef struct {
    PyObject *prefix;   /* bytes: the first depth / 8 bytes of its keys */
    PyObject *old;      /* the stored row, or NULL */
    int16_t old_at[256]; /* record number of each position in `old`, -1 none */
    int32_t fresh[256];  /* the node written at each position (its slot in `nodes`), -1 none */
} Stratum;

typedef struct {
    PyObject *rows; /* prefix -> stored bytes */
    Stratum *strata;
    size_t n_strata, cap_strata;
    uint8_t *nodes; /* 65 bytes each */
    size_t n_nodes, cap_nodes;
} Update;

/* The first of items[lo, hi) (sorted, sharing their first `depth` bits) with bit `depth` set. */
static size_t split(const uint8_t **items, size_t lo, size_t hi, unsigned depth) {
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (bit_at(items[mid], depth))
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* The stratum under key[:depth / 8] (depth a multiple of 8), with its stored row if any:
 * its number, or -1 with an exception set. */
static long open_stratum(Update *u, const uint8_t *key, unsigned depth) {
    if (plant_reserve((void **)&u->strata, &u->cap_strata, sizeof(Stratum), u->n_strata + 1,
                      SIZE_MAX, "too many strata")) return -1;
    Stratum *s = &u->strata[u->n_strata];
    memset(s->old_at, 0xFF, sizeof s->old_at); /* until a stored row is indexed */
    memset(s->fresh, 0xFF, sizeof s->fresh);
    s->old = NULL;
    s->prefix = PyBytes_FromStringAndSize((const char *)key, depth / 8);
    if (!s->prefix) return -1;
    u->n_strata++; /* owned from here: freed with the update */
    PyObject *old = PyDict_GetItemWithError(u->rows, s->prefix);
    if (!old) return PyErr_Occurred() ? -1 : (long)(u->n_strata - 1);
    if (plant_stratum_index(old, s->old_at) < 0) return -1;
    Py_INCREF(old);
    s->old = old;
    return (long)(u->n_strata - 1);
}

/* The stratum of the node at `depth` below stratum `s`: `s`, or the one it enters there. */
static long below(Update *u, long s, unsigned depth, const uint8_t *key) {
    return depth & 7 ? s : open_stratum(u, key, depth);
}

/* The stored node at `depth` on `key`'s path in stratum `s` (65 bytes), or NULL. */
static const uint8_t *stored(const Update *u, long s, unsigned depth, const uint8_t *key) {
    const Stratum *st = &u->strata[s];
    int at = st->old_at[plant_position(depth, key)];
    return at < 0 ? NULL : (const uint8_t *)PyBytes_AS_STRING(st->old) + RECORD * at + 1;
}

/* Write the node tag || a || b at `depth` on `key`'s path; its hash into `out`. */
static int put(Update *u, long s, unsigned depth, const uint8_t *key, uint8_t tag,
               const uint8_t *a, const uint8_t *b, uint8_t out[32]) {
    if (plant_reserve((void **)&u->nodes, &u->cap_nodes, 65, u->n_nodes + 1, SIZE_MAX,
                      "too many nodes")) return -1;
    uint8_t *node = u->nodes + 65 * u->n_nodes;
    node[0] = tag;
    memcpy(node + 1, a, 32);
    memcpy(node + 33, b, 32);
    u->strata[s].fresh[plant_position(depth, key)] = (int32_t)u->n_nodes++;
    plant_node_hash(tag, a, b, out);
    return 0;
}

/* A subtree made of items[lo, hi) alone (nothing stored below it). */
static int build(Update *u, long s, unsigned depth, const uint8_t **items, size_t lo,
                 size_t hi, uint8_t out[32]) {
    if (hi - lo == 1) return put(u, s, depth, items[lo], 0x02, items[lo], items[lo] + 32, out);
    if (depth >= 256) {
        PyErr_SetString(PyExc_ValueError, "a key is given twice");
        return -1;
    }
    size_t mid = split(items, lo, hi, depth);
    uint8_t halves[64] = {0};
    size_t ends[3] = {lo, mid, hi};
    for (int bit = 0; bit < 2; bit++) {
        if (ends[bit] == ends[bit + 1]) continue;
        long c = below(u, s, depth + 1, items[ends[bit]]);
        if (c < 0 || build(u, c, depth + 1, items, ends[bit], ends[bit + 1], halves + 32 * bit))
            return -1;
    }
    return put(u, s, depth, items[lo], 0x03, halves, halves + 32, out);
}

/* The subtree at `depth` after items[lo, hi) land in it; `node` is its stored node. */
static int merge(Update *u, long s, unsigned depth, const uint8_t **items, size_t lo,
                 size_t hi, const uint8_t *node, uint8_t out[32]) {
    if (!node) return build(u, s, depth, items, lo, hi, out);
    if (node[0] == 0x02) { /* a leaf: key || value hash, a record like the items */
        const uint8_t *old = node + 1;
        size_t at = plant_lower_bound(items, lo, hi, old);
        if (at < hi && memcmp(items[at], old, 32) == 0)
            return build(u, s, depth, items, lo, hi, out); /* the old key gets a new value */
        size_t n = hi - lo + 1;
        const uint8_t **merged = PyMem_Malloc(n * sizeof *merged);
        if (!merged) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(merged, items + lo, (at - lo) * sizeof *merged);
        merged[at - lo] = old;
        memcpy(merged + (at - lo) + 1, items + at, (hi - at) * sizeof *merged);
        int failed = build(u, s, depth, merged, 0, n, out);
        PyMem_Free(merged);
        return failed;
    }
    uint8_t halves[64];
    memcpy(halves, node + 1, 64);
    size_t mid = split(items, lo, hi, depth);
    size_t ends[3] = {lo, mid, hi};
    for (int bit = 0; bit < 2; bit++) {
        size_t a = ends[bit], b = ends[bit + 1];
        if (a == b) continue;
        long c = below(u, s, depth + 1, items[a]);
        if (c < 0) return -1;
        uint8_t *half = halves + 32 * bit;
        if (memcmp(half, EMPTY, 32) == 0) {
            if (build(u, c, depth + 1, items, a, b, half)) return -1;
            continue;
        }
        const uint8_t *child = stored(u, c, depth + 1, items[a]);
        if (!child) { /* LookupError((depth, a key below)): map_update names the address */
            PyObject *where = Py_BuildValue("(Iy#)", depth + 1, items[a], (Py_ssize_t)32);
            if (where) PyErr_SetObject(PyExc_LookupError, where);
            Py_XDECREF(where);
            return -1;
        }
        if (merge(u, c, depth + 1, items, a, b, child, half)) return -1;
    }
    return put(u, s, depth, items[lo], 0x03, halves, halves + 32, out);
}

int plant_stratum_index(PyObject *row, int16_t at[256]) {
    if (!PyBytes_Check(row)) {
        PyErr_SetString(PyExc_TypeError, "a stratum's row is bytes");
        return -1;
    }
    Py_ssize_t len = PyBytes_GET_SIZE(row);
    const uint8_t *data = (const uint8_t *)PyBytes_AS_STRING(row);
    if (len == 0 || len % RECORD) {
        PyErr_SetString(PyExc_ValueError, "a stratum's row is not whole records");
        return -1;
    }
    memset(at, 0xFF, 256 * sizeof *at);
    unsigned last = 0;
    for (Py_ssize_t i = 0; i < len / RECORD; i++) {
        unsigned p = data[RECORD * i];
        if (p <= last) {
            PyErr_SetString(PyExc_ValueError, "a stratum's positions are not increasing");
            return -1;
        }
        at[p] = (int16_t)i;
        last = p;
    }
    return 0;
}

/* Each stratum entered, as (prefix, its stored records with the new nodes put in). */
static PyObject *written(const Update *u) {
    PyObject *out = PyList_New((Py_ssize_t)u->n_strata);
    if (!out) return NULL;
    for (size_t i = 0; i < u->n_strata; i++) {
        const Stratum *s = &u->strata[i];
        const uint8_t *old = s->old ? (const uint8_t *)PyBytes_AS_STRING(s->old) : NULL;
        Py_ssize_t count = 0;
        for (int p = 1; p < 256; p++) count += s->old_at[p] >= 0 || s->fresh[p] >= 0;
        PyObject *data = PyBytes_FromStringAndSize(NULL, RECORD * count);
        if (!data) goto fail;
        uint8_t *at = (uint8_t *)PyBytes_AS_STRING(data);
        for (int p = 1; p < 256; p++) {
            const uint8_t *node = s->fresh[p] >= 0   ? u->nodes + 65 * (size_t)s->fresh[p]
                                  : s->old_at[p] >= 0 ? old + RECORD * s->old_at[p] + 1
                                                      : NULL;
            if (!node) continue;
            *at++ = (uint8_t)p;
            memcpy(at, node, 65);
            at += 65;
        }
        PyObject *pair = PyTuple_Pack(2, s->prefix, data);
        Py_DECREF(data);
        if (!pair) goto fail;
        PyList_SET_ITEM(out, (Py_ssize_t)i, pair);
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

PyObject *plant_update_strata(PyObject *self, PyObject *args) {
    PyObject *rows, *result = NULL;
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "O!y*:update_strata", &PyDict_Type, &rows, &view)) return NULL;
    Update u = {rows, NULL, 0, 0, NULL, 0, 0};
    size_t count = (size_t)view.len / 64;
    const uint8_t **items = NULL;
    if (view.len == 0 || view.len % 64) {
        PyErr_SetString(PyExc_ValueError, "records are 64 bytes: a key, then its value's hash");
        goto done;
    }
    items = PyMem_Malloc(count * sizeof *items);
    if (!items) {
        PyErr_NoMemory();
        goto done;
    }
    for (size_t i = 0; i < count; i++) {
        items[i] = (const uint8_t *)view.buf + 64 * i;
        if (i && memcmp(items[i - 1], items[i], 32) >= 0) {
            PyErr_SetString(PyExc_ValueError, "records are sorted by key, each key once");
            goto done;
        }
    }
    uint8_t root[32];
    long top = open_stratum(&u, items[0], 0);
    if (top < 0 || merge(&u, top, 0, items, 0, count, stored(&u, top, 0, items[0]), root))
        goto done;
    PyObject *strata = written(&u);
    if (strata) result = Py_BuildValue("(y#N)", root, (Py_ssize_t)32, strata);
done:
    for (size_t i = 0; i < u.n_strata; i++) {
        Py_XDECREF(u.strata[i].prefix);
        Py_XDECREF(u.strata[i].old);
    }
    PyMem_Free(u.strata);
    PyMem_Free(u.nodes);
    PyMem_Free(items);
    PyBuffer_Release(&view);
    return result;
}
