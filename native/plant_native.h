/* What the extension's two sources share: plant_map_native.c's SHA-256 (FIPS 180-4, its own
 * code: the database computes nothing the audit trusts) and plant_audit_rows.c's functions,
 * added to the module when it is made. */
#ifndef PLANT_NATIVE_H
#define PLANT_NATIVE_H

#include <Python.h>
#include <stddef.h>
#include <stdint.h>

void sha256(const uint8_t *data, size_t len, uint8_t out[32]);
int plant_audit_rows_add(PyObject *module);

#endif
