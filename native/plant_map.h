/* What plant_map_native.c shares with strata_update.c: its SHA-256 of a map node. */
#ifndef PLANT_MAP_H
#define PLANT_MAP_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* SHA-256(tag || a || b): a map node's hash from its parts (65 bytes). */
void plant_node_hash(uint8_t tag, const uint8_t a[32], const uint8_t b[32], uint8_t out[32]);

/* update_strata(rows, records) -> (root, [(prefix, stored bytes), ...]) (strata_update.c) */
PyObject *plant_update_strata(PyObject *self, PyObject *args);

#endif
