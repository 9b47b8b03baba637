/* The audit's other per-row loops in C (issue 27, decision 3), compiled into plant_map_native
 * beside the heads map (plant_map_native.c) and using its SHA-256: the database computes
 * nothing the audit trusts.
 *
 * - copy_messages: binary COPY rows split from CopyData messages, the loop of
 *   shared/storage/copyread.BinaryCopyReader.messages (its twin), for the plainest shape only;
 *   at any other message it stops and returns where, so the reader's Python `feed` decides.
 * - entry_hashes: the entries pass's two hashes a row (leaf and digest) for a batch, and
 *   one flag byte a row saying which of the row's columns and its stored hash they match
 *   (twin: the hashlib loop in shared/integrity/native_rows.entry_hashes).
 * - mth: the RFC 9162 Merkle tree hash of joined 32-byte leaf hashes (twin:
 *   shared/integrity/merkle.root_from_leaves), for the receipts pass's batch receipts.
 * - node_hashes: a tree level's node hashes from its children's, joined (twin:
 *   shared/integrity/merkle.node_hashes), for the root the entries pass rebuilds.
 * - skill_key: a skill's uniqueness key (shared/rules/names.unique_key, its twin) for a
 *   name of ASCII characters, from per-character readings the Python code computed itself
 *   (shared/audit/native_rows.py); None for any other name, which Python then keys.
 *
 * A test holds each to its twin (tests/audit/test_native_rows.py) and the audit's findings
 * compiled to its findings pure (tests/audit/test_compiled_twin.py). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "plant_native.h"

/* ---- binary COPY rows ---- */

static int64_t be_signed(const uint8_t *p, int width) {
    uint64_t v = 0;
    for (int i = 0; i < width; i++) v = v << 8 | p[i];
    if (width < 8 && (v >> (8 * width - 1)) & 1) v |= ~(uint64_t)0 << (8 * width);
    return (int64_t)v;
}

/* One value of a row: kind 'i' an int (big-endian, signed, 0-8 bytes), 't' UTF-8 text, 'b'
 * the bytes; NULL (no exception) where the Python loop would do anything else. */
static PyObject *value_of(char kind, const uint8_t *p, Py_ssize_t n) {
    if (kind == 'i') return n <= 8 ? PyLong_FromLongLong(be_signed(p, (int)n)) : NULL;
    if (kind == 't') {
        PyObject *text = PyUnicode_DecodeUTF8((const char *)p, n, NULL);
        if (!text) PyErr_Clear();
        return text;
    }
    return PyBytes_FromStringAndSize((const char *)p, n);
}

/* copy_messages(buf, pos, size, fixed, widths, rest, rows) -> pos: as
 * BinaryCopyReader.messages, `fixed` the leading columns' kinds (one character each, their
 * widths in `widths`), `rest` the other columns' kinds. */
static PyObject *mod_copy_messages(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer view;
    Py_ssize_t pos, size, nfixed, nrest;
    const char *fixed, *rest;
    if (nargs != 7 || !PyList_Check(args[6]) || !PyTuple_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "copy_messages(buf, pos, size, fixed, widths, rest, rows)");
        return NULL;
    }
    pos = PyLong_AsSsize_t(args[1]);
    size = PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred()) return NULL;
    if (PyBytes_AsStringAndSize(args[3], (char **)&fixed, &nfixed) < 0 ||
        PyBytes_AsStringAndSize(args[5], (char **)&rest, &nrest) < 0)
        return NULL;
    if (PyTuple_GET_SIZE(args[4]) != nfixed || nfixed > 64) {
        PyErr_SetString(PyExc_ValueError, "one width a fixed column");
        return NULL;
    }
    Py_ssize_t widths[64], head = 7;
    for (Py_ssize_t i = 0; i < nfixed; i++) {
        widths[i] = PyLong_AsSsize_t(PyTuple_GET_ITEM(args[4], i));
        if (widths[i] < 0) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a width is not negative");
            return NULL;
        }
        head += 4 + widths[i];
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    const uint8_t *buf = view.buf;
    if (size > view.len) size = view.len;
    PyObject *rows = args[6];
    Py_ssize_t width = nfixed + nrest;
    while (pos >= 0 && pos + head <= size) {
        const uint8_t *m = buf + pos;
        Py_ssize_t end = pos + 1 + be_signed(m + 1, 4);
        if (m[0] != 'd' || end > size || end < pos + head || be_signed(m + 5, 2) != width) break;
        Py_ssize_t at = pos + 7, i;
        for (i = 0; i < nfixed; i++) {
            if (be_signed(buf + at, 4) != widths[i]) break;
            at += 4 + widths[i];
        }
        if (i < nfixed) break;
        PyObject *row = PyTuple_New(width);
        if (!row) goto failed;
        at = pos + 7;
        for (i = 0; i < width; i++) {
            char kind = i < nfixed ? fixed[i] : rest[i - nfixed];
            Py_ssize_t n;
            PyObject *value;
            if (at + 4 > end) break;
            n = be_signed(buf + at, 4);
            at += 4;
            if (n < 0) {
                Py_INCREF(Py_None);
                value = Py_None;
            } else {
                if (at + n > end) break;
                value = value_of(kind, buf + at, n);
                if (!value) break;
                at += n;
            }
            PyTuple_SET_ITEM(row, i, value);
        }
        if (i < width || at != end) { /* not one plain row filling its message: Python's */
            Py_DECREF(row);
            if (PyErr_Occurred()) goto failed;
            break;
        }
        int appended = PyList_Append(rows, row);
        Py_DECREF(row);
        if (appended < 0) goto failed;
        pos = end;
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(pos);
failed:
    PyBuffer_Release(&view);
    return NULL;
}

/* ---- RFC 9162 Merkle tree hash ---- */

static PyObject *mod_mth(PyObject *self, PyObject *arg) {
    Py_buffer view;
    uint8_t stack[64][32], buf[65], out[32];
    int levels[64], top = 0;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    if (view.len % 32) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "leaf hashes are 32 bytes each");
        return NULL;
    }
    const uint8_t *leaves = view.buf;
    Py_ssize_t n = view.len / 32;
    if (n == 0) {
        PyBuffer_Release(&view);
        sha256(NULL, 0, out);
        return PyBytes_FromStringAndSize((const char *)out, 32);
    }
    buf[0] = 0x01;
    for (Py_ssize_t i = 0; i < n; i++) { /* the perfect subtrees so far, largest first */
        memcpy(stack[top], leaves + 32 * i, 32);
        levels[top++] = 0;
        while (top > 1 && levels[top - 1] == levels[top - 2]) {
            memcpy(buf + 1, stack[top - 2], 32);
            memcpy(buf + 33, stack[top - 1], 32);
            sha256(buf, 65, stack[top - 2]);
            levels[top - 2]++;
            top--;
        }
    }
    PyBuffer_Release(&view);
    memcpy(out, stack[top - 1], 32);
    for (int i = top - 2; i >= 0; i--) { /* folded from the right, as the recursion splits */
        memcpy(buf + 1, stack[i], 32);
        memcpy(buf + 33, out, 32);
        sha256(buf, 65, out);
    }
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

/* node_hashes(pairs) -> SHA-256(0x01 || left || right) of each 64-byte pair of 32-byte hashes,
 * joined: a level of a Merkle tree at once (twin: shared/integrity/merkle.node_hashes). */
static PyObject *mod_node_hashes(PyObject *self, PyObject *arg) {
    Py_buffer view;
    uint8_t buf[65];
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    if (view.len % 64) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "pairs of 32-byte hashes are 64 bytes each");
        return NULL;
    }
    Py_ssize_t n = view.len / 64;
    PyObject *out = PyBytes_FromStringAndSize(NULL, 32 * n);
    if (out) {
        const uint8_t *pairs = view.buf;
        uint8_t *hashed = (uint8_t *)PyBytes_AS_STRING(out);
        buf[0] = 0x01;
        for (Py_ssize_t i = 0; i < n; i++) {
            memcpy(buf + 1, pairs + 64 * i, 64);
            sha256(buf, 65, hashed + 32 * i);
        }
    }
    PyBuffer_Release(&view);
    return out;
}

/* ---- the entries pass's hashes ---- */

#define SAME_AS_STORED 1   /* the leaf equals the stored level-0 hash at its index */
#define LEAF_DIFFERS 2     /* the row's leaf_hash column is not the leaf */
#define DIGEST_DIFFERS 4   /* the row's digest column is not SHA-256 of its body */

static int differs(PyObject *column, const uint8_t hash[32]) {
    return !PyBytes_Check(column) || PyBytes_GET_SIZE(column) != 32 ||
           memcmp(PyBytes_AS_STRING(column), hash, 32) != 0;
}

/* entry_hashes(rows, low, stored) -> (leaves, flags) or None: per row of the entries pass
 * (idx, version, digest, leaf_hash, entity id, entry type, kind, prev_digest, body), its
 * leaf SHA-256(0x00 || body) (joined) and one byte of the flags above; `stored` the joined
 * level-0 hashes from index `low`, or None. None where a row is not of that shape. Without
 * SAME_AS_STORED the caller compares with the stored hash itself. */
static PyObject *mod_entry_hashes(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "entry_hashes(rows, low, stored)");
        return NULL;
    }
    PyObject *rows = args[0], *stored = args[2];
    long long low = PyLong_AsLongLong(args[1]);
    if (low == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(rows), have = PyBytes_Check(stored) ? PyBytes_GET_SIZE(stored) : -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) != 9 ||
            !PyBytes_CheckExact(PyTuple_GET_ITEM(row, 8)) || !PyLong_CheckExact(PyTuple_GET_ITEM(row, 0)))
            Py_RETURN_NONE;
    }
    PyObject *leaves = PyBytes_FromStringAndSize(NULL, 32 * n);
    PyObject *flags = PyBytes_FromStringAndSize(NULL, n);
    uint8_t *scratch = NULL;
    size_t room = 0;
    if (!leaves || !flags) goto failed;
    uint8_t *leaf = (uint8_t *)PyBytes_AS_STRING(leaves), *flag = (uint8_t *)PyBytes_AS_STRING(flags);
    for (Py_ssize_t i = 0; i < n; i++, leaf += 32) {
        PyObject *row = PyList_GET_ITEM(rows, i), *body = PyTuple_GET_ITEM(row, 8);
        size_t len = (size_t)PyBytes_GET_SIZE(body);
        uint8_t digest[32];
        if (len + 1 > room) {
            room = 2 * (len + 1);
            PyMem_Free(scratch);
            scratch = PyMem_Malloc(room);
            if (!scratch) {
                PyErr_NoMemory();
                goto failed;
            }
        }
        scratch[0] = 0x00;
        memcpy(scratch + 1, PyBytes_AS_STRING(body), len);
        sha256(scratch, len + 1, leaf);
        sha256(scratch + 1, len, digest);
        uint8_t f = 0;
        long long idx = PyLong_AsLongLong(PyTuple_GET_ITEM(row, 0));
        if (idx == -1 && PyErr_Occurred()) {
            PyErr_Clear(); /* past 64 bits: the caller compares */
        } else if (have > 0 && idx >= low && idx - low < have / 32 &&
                   memcmp(PyBytes_AS_STRING(stored) + 32 * (idx - low), leaf, 32) == 0) {
            f |= SAME_AS_STORED; /* else none joined, a negative slice, or another hash */
        }
        if (differs(PyTuple_GET_ITEM(row, 3), leaf)) f |= LEAF_DIFFERS;
        if (differs(PyTuple_GET_ITEM(row, 2), digest)) f |= DIGEST_DIFFERS;
        flag[i] = f;
    }
    PyMem_Free(scratch);
    return Py_BuildValue("(NN)", leaves, flags);
failed:
    PyMem_Free(scratch);
    Py_XDECREF(leaves);
    Py_XDECREF(flags);
    return NULL;
}

/* ---- a skill name's key ---- */

#define MAX_READING 1024

static int is_space(unsigned c) { return (c >= 9 && c <= 13) || (c >= 28 && c <= 32); }

/* `table`'s entry for the character `c` appended at out[*used]; -1 where it has none or the
 * reading would pass MAX_READING bytes. */
static int append_entry(PyObject *table, unsigned c, char *out, Py_ssize_t *used) {
    PyObject *entry = PyTuple_GET_ITEM(table, c);
    if (!PyBytes_Check(entry) || *used + PyBytes_GET_SIZE(entry) > MAX_READING) return -1;
    memcpy(out + *used, PyBytes_AS_STRING(entry), PyBytes_GET_SIZE(entry));
    *used += PyBytes_GET_SIZE(entry);
    return 0;
}

/* The reading of `name` (whitespace runs made one space, ends trimmed, as str.split and
 * join make them), each character replaced by its entry in `table` (lowered first when
 * `lower`); 0, or -1 where a character has no entry or the reading is too long. */
static int reading(const uint8_t *name, Py_ssize_t n, PyObject *table, int lower, char *out,
                   Py_ssize_t *len) {
    Py_ssize_t used = 0;
    int gap = 0, started = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned c = name[i];
        if (is_space(c)) {
            gap = started;
            continue;
        }
        if (gap && append_entry(table, ' ', out, &used) < 0) return -1;
        gap = 0;
        started = 1;
        if (lower && c >= 'A' && c <= 'Z') c += 32;
        if (append_entry(table, c, out, &used) < 0) return -1;
    }
    *len = used;
    return 0;
}

/* skill_key(name, folded, shape) -> key or None: names.unique_key of an ASCII str, from the
 * two per-character tables (128 entries each: a character's reading as UTF-8 bytes, or None
 * where the character is not read alone); None for any other name (plant_native.h). */
PyObject *plant_skill_key(PyObject *name, PyObject *folded, PyObject *shape) {
    static const char sep[] = "\xe2\x81\xa3"; /* U+2063 INVISIBLE SEPARATOR */
    char out[5 + 2 * MAX_READING + 3];
    Py_ssize_t a, b;
    if (!PyUnicode_CheckExact(name) || PyUnicode_READY(name) < 0 || !PyUnicode_IS_ASCII(name))
        Py_RETURN_NONE;
    const uint8_t *chars = PyUnicode_1BYTE_DATA(name);
    Py_ssize_t n = PyUnicode_GET_LENGTH(name);
    memcpy(out, "name:", 5);
    if (reading(chars, n, folded, 1, out + 5, &a) < 0) Py_RETURN_NONE;
    memcpy(out + 5 + a, sep, 3);
    if (reading(chars, n, shape, 0, out + 8 + a, &b) < 0) Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(out, 8 + a + b, "strict");
}

static PyObject *mod_skill_key(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyTuple_Check(args[1]) || !PyTuple_Check(args[2]) ||
        PyTuple_GET_SIZE(args[1]) != 128 || PyTuple_GET_SIZE(args[2]) != 128) {
        PyErr_SetString(PyExc_TypeError, "skill_key(name, folded, shape): two 128-entry tuples");
        return NULL;
    }
    return plant_skill_key(args[0], args[1], args[2]);
}

static PyMethodDef audit_rows_methods[] = {
    {"copy_messages", (PyCFunction)(void (*)(void))mod_copy_messages, METH_FASTCALL,
     "copy_messages(buf, pos, size, fixed, widths, rest, rows) -> pos: the plain CopyData "
     "rows from pos appended to rows (copyread.BinaryCopyReader.messages); returns where it "
     "stopped."},
    {"entry_hashes", (PyCFunction)(void (*)(void))mod_entry_hashes, METH_FASTCALL,
     "entry_hashes(rows, low, stored) -> (leaves, flags) or None: the entries pass's leaf "
     "and digest checks of a batch of rows (native_rows.entry_hashes)."},
    {"mth", mod_mth, METH_O, "mth(leaves) -> the RFC 9162 Merkle tree hash of joined leaves."},
    {"node_hashes", mod_node_hashes, METH_O,
     "node_hashes(pairs) -> the RFC 9162 node hash of each 64-byte pair of hashes, joined."},
    {"skill_key", (PyCFunction)(void (*)(void))mod_skill_key, METH_FASTCALL,
     "skill_key(name, folded, shape) -> names.unique_key(name) for an ASCII name, else None."},
    {NULL}};

int plant_audit_rows_add(PyObject *module) {
    return PyModule_AddFunctions(module, audit_rows_methods);
}
