/* What the extension's sources share: plant_map_native.c's SHA-256 (FIPS 180-4, its own
 * code: the database computes nothing the audit trusts) and map-node hash, the seal's strata
 * update (strata_update.c), the audit's per-row functions (plant_audit_rows.c,
 * head_checks.c, version_rows.c, receipt_rows.c) and the incremental audit's map walks (map_rebuild.c), added
 * to the module when it is made. */
#ifndef PLANT_NATIVE_H
#define PLANT_NATIVE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

void sha256(const uint8_t *data, size_t len, uint8_t out[32]);

/* The empty subtree's hash: 32 zero bytes (plant_map_native.c). */
extern const uint8_t EMPTY[32];

/* Bit `depth` of a 32-byte key, the most significant first: the side it takes there. */
/* The first of keys[lo, hi) (sorted 32-byte keys) not below `key`. */
static inline size_t plant_lower_bound(const uint8_t **keys, size_t lo, size_t hi,
                                       const uint8_t *key) {
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(keys[mid], key, 32) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Room for `want` items of `item` bytes in *array (capacity *cap items, doubling from 1,024),
 * never `limit` items or more: 0, or -1 with MemoryError set (`refused` its message). */
static inline int plant_reserve(void **array, size_t *cap, size_t item, size_t want,
                                size_t limit, const char *refused) {
    if (want <= *cap) return 0;
    size_t next = *cap ? 2 * *cap : 1024;
    while (next < want) next *= 2;
    if (next >= limit || next > SIZE_MAX / item) {
        PyErr_SetString(PyExc_MemoryError, refused);
        return -1;
    }
    void *moved = PyMem_Realloc(*array, next * item);
    if (!moved) {
        PyErr_NoMemory();
        return -1;
    }
    *array = moved;
    *cap = next;
    return 0;
}

static inline int bit_at(const uint8_t *key, unsigned depth) {
    return (key[depth >> 3] >> (7 - (depth & 7))) & 1;
}

/* A stored stratum's record (shared/storage/map_strata.py): a position byte, then the node. */
#define PLANT_RECORD 66

/* The node at `depth` on `key`'s path: its position in its stratum (heap numbering). */
static inline unsigned plant_position(unsigned depth, const uint8_t *key) {
    unsigned k = depth & 7;
    return k ? (1u << k) | (unsigned)(key[depth >> 3] >> (8 - k)) : 1u;
}

/* Index a stored stratum's row: at[position] = its record's number, -1 where none; -1 with
 * an exception set unless it is bytes of whole records in increasing position
 * (strata_update.c). */
int plant_stratum_index(PyObject *row, int16_t at[256]);

/* SHA-256(tag || a || b): a map node's hash from its parts (65 bytes). */
void plant_node_hash(uint8_t tag, const uint8_t a[32], const uint8_t b[32], uint8_t out[32]);

/* update_strata(rows, records) -> (root, [(prefix, stored bytes), ...]) (strata_update.c) */
PyObject *plant_update_strata(PyObject *self, PyObject *args);

/* The audit's row functions (plant_audit_rows.c) added to the module. */
int plant_audit_rows_add(PyObject *module);

/* names.unique_key of an ASCII skill name, from name_keys' two 128-entry tables; None for
 * any other name (plant_audit_rows.c). A new reference, or NULL on an error. */
PyObject *plant_skill_key(PyObject *name, PyObject *folded, PyObject *shape);

/* The heads pass's comparison (head_checks.c) added to the module. */
int plant_head_checks_add(PyObject *module);

/* pruned_root and proven, the incremental audit's map walks (map_rebuild.c), added to it. */
int plant_map_rebuild_add(PyObject *module);

/* version_rows, the entries pass's plain versions taken in (version_rows.c), added to it. */
int plant_version_rows_add(PyObject *module);

/* receipt_rows, the receipts pass's per-entry comparison (receipt_rows.c), added to it. */
int plant_receipt_rows_add(PyObject *module);

#endif
