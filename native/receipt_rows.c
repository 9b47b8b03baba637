/* The receipts pass's per-entry comparison in C (issue 27, decision 3), compiled into
 * plant_map_native beside the audit's other row loops (plant_audit_rows.c).
 *
 * receipt_rows(rows, start, vouched, have, seen, reported) -> list of positions, or None:
 * the rows of a batch as the receipts pass reads them (idx, leaf_hash, entity id, version,
 * kind); `vouched` the leaves the valid receipts vouch for, 32 bytes an index from `start`,
 * `have` one byte an index (non-zero where `vouched` holds one), `seen` one byte an index,
 * set here for each row read. The positions, in order, of the rows whose leaf no valid
 * receipt vouches for and whose index is not in `reported`: Python names those. None
 * (before any effect) where a row or a buffer is not of the plain shape; the twin
 * (shared.integrity.native_rows.receipt_rows) then answers, so the findings and their
 * order cannot differ (tests/audit/test_receipt_rows.py). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "plant_native.h"

static PyObject *mod_receipt_rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "receipt_rows(rows, start, vouched, have, seen, reported)");
        return NULL;
    }
    PyObject *rows = args[0], *vouched = args[2], *have = args[3], *seen = args[4];
    PyObject *reported = args[5];
    long long start = PyLong_AsLongLong(args[1]);
    if (start == -1 && PyErr_Occurred()) return NULL;
    if (!PyByteArray_CheckExact(vouched) || !PyByteArray_CheckExact(have) ||
        !PyByteArray_CheckExact(seen) || !PyAnySet_CheckExact(reported))
        Py_RETURN_NONE;
    Py_ssize_t span = PyByteArray_GET_SIZE(have), n = PyList_GET_SIZE(rows);
    if (PyByteArray_GET_SIZE(seen) != span || PyByteArray_GET_SIZE(vouched) != 32 * span)
        Py_RETURN_NONE;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) < 2 ||
            !PyLong_CheckExact(PyTuple_GET_ITEM(row, 0)) ||
            !PyBytes_CheckExact(PyTuple_GET_ITEM(row, 1)))
            Py_RETURN_NONE;
        long long idx = PyLong_AsLongLong(PyTuple_GET_ITEM(row, 0));
        if (idx == -1 && PyErr_Occurred()) {
            PyErr_Clear(); /* past 64 bits */
            Py_RETURN_NONE;
        }
        if (idx < start || idx - start >= span) Py_RETURN_NONE;
    }
    const uint8_t *leaves = (const uint8_t *)PyByteArray_AS_STRING(vouched);
    const uint8_t *vouches = (const uint8_t *)PyByteArray_AS_STRING(have);
    uint8_t *read = (uint8_t *)PyByteArray_AS_STRING(seen);
    PyObject *named = PyList_New(0);
    if (!named) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i), *index = PyTuple_GET_ITEM(row, 0);
        PyObject *leaf = PyTuple_GET_ITEM(row, 1);
        Py_ssize_t at = (Py_ssize_t)(PyLong_AsLongLong(index) - start);
        read[at] = 1;
        if (vouches[at] && PyBytes_GET_SIZE(leaf) == 32 &&
            memcmp(leaves + 32 * at, PyBytes_AS_STRING(leaf), 32) == 0)
            continue; /* vouched: nothing to say */
        int known = PySet_Contains(reported, index);
        if (known < 0) goto failed;
        if (known) continue;
        PyObject *position = PyLong_FromSsize_t(i);
        if (!position || PyList_Append(named, position) < 0) {
            Py_XDECREF(position);
            goto failed;
        }
        Py_DECREF(position);
    }
    return named;
failed:
    Py_DECREF(named);
    return NULL;
}

static PyMethodDef receipt_rows_methods[] = {
    {"receipt_rows", (PyCFunction)(void (*)(void))mod_receipt_rows, METH_FASTCALL,
     "receipt_rows(rows, start, vouched, have, seen, reported) -> positions or None: the "
     "receipts pass's rows no valid receipt vouches for (native_rows.receipt_rows)."},
    {NULL, NULL, 0, NULL},
};

int plant_receipt_rows_add(PyObject *module) {
    return PyModule_AddFunctions(module, receipt_rows_methods);
}
