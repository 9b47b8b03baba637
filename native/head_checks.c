/* The heads pass's per-head comparison in C (issue 27, decision 3), compiled into
 * plant_map_native beside the audit's other row loops (plant_audit_rows.c).
 *
 * heads_to_check(batch, latest, wanted, shared, folded, shape) -> list: the heads of `batch`
 * (as shared/audit/heads/reading.py reads them: version, log_index, first_index, entity id
 * bytes, kind, status, name, category, unique_key) that the Python pass must look at, in order.
 * A head is left out only when checking it would do nothing: it points at the version the
 * entries pass summarised (`latest[id]`, a heads Summary) whose version 1 that pass read,
 * that version has no relationships, no rule wants its entity (`wanted`) and no other range
 * holds it (`shared`), and every column the head repeats is the summary's, its unique_key
 * that of a skill named in ASCII (plant_skill_key). `latest` may be a state.Held, whose
 * summaries without relations are the marshal bytes of their fields. Any other head, of any other shape or
 * kind, goes back to Python, which decides (twin: shared/audit/plain_heads.py). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <marshal.h>

#include "plant_native.h"

/* a and b the same plain value (an int, a str or None, each of its exact type): 1; any
 * other pair, equal or not, 0 (Python then compares them itself). */
static int same(PyObject *a, PyObject *b) {
    if (a == Py_None || b == Py_None) return a == b;
    if (PyLong_CheckExact(a) && PyLong_CheckExact(b))
        return PyObject_RichCompareBool(a, b, Py_EQ) == 1;
    if (PyUnicode_CheckExact(a) && PyUnicode_CheckExact(b))
        return PyUnicode_Compare(a, b) == 0;
    return 0;
}

/* 1 where checking the head would do nothing (see above), 0 where Python must, -1 on an
 * error. Summary fields: log_index, version, digest, status, kind, relations, name,
 * category, first. */
static int plain(PyObject *head, PyObject *latest, PyObject *wanted, PyObject *shared,
                 PyObject *folded, PyObject *shape) {
    if (!PyTuple_CheckExact(head) || PyTuple_GET_SIZE(head) != 9) return 0;
    PyObject *raw = PyTuple_GET_ITEM(head, 3);
    if (!PyBytes_CheckExact(raw)) return 0;
    PyObject *id = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), NULL);
    if (!id) {
        PyErr_Clear();
        return 0;
    }
    int result = 0;
    PyObject *held = NULL;
    PyObject *known = PyDict_GetItemWithError(latest, id); /* borrowed */
    if (!known) {
        result = PyErr_Occurred() ? -1 : 0;
        goto done;
    }
    if (PyBytes_CheckExact(known) && !PyDict_CheckExact(latest)) {
        /* a summary as state.Held keeps it: the marshal bytes of its fields */
        held = PyMarshal_ReadObjectFromString(PyBytes_AS_STRING(known), PyBytes_GET_SIZE(known));
        if (!held) {
            PyErr_Clear();
            goto done;
        }
        known = held;
    }
    if (!PyTuple_Check(known) || PyTuple_GET_SIZE(known) != 9) goto done;
    PyObject *kind = PyTuple_GET_ITEM(known, 4), *name = PyTuple_GET_ITEM(known, 6);
    PyObject *first = PyTuple_GET_ITEM(known, 8);
    if (PyTuple_GET_ITEM(known, 5) != Py_None || first == Py_None ||
        !same(PyTuple_GET_ITEM(known, 0), PyTuple_GET_ITEM(head, 1)) ||
        !same(PyTuple_GET_ITEM(head, 0), PyTuple_GET_ITEM(known, 1)) ||
        !same(PyTuple_GET_ITEM(head, 4), kind) ||
        !same(PyTuple_GET_ITEM(head, 5), PyTuple_GET_ITEM(known, 3)) ||
        !same(PyTuple_GET_ITEM(head, 6), name) ||
        !same(PyTuple_GET_ITEM(head, 7), PyTuple_GET_ITEM(known, 7)) ||
        !same(PyTuple_GET_ITEM(head, 2), first) || !PyUnicode_CheckExact(kind) ||
        PyUnicode_CompareWithASCIIString(kind, "skill") != 0 || !PyUnicode_CheckExact(name))
        goto done;
    int in = PySet_Contains(wanted, id);
    if (in == 0) in = PySet_Contains(shared, id);
    if (in != 0) {
        result = in < 0 ? -1 : 0;
        goto done;
    }
    PyObject *key = plant_skill_key(name, folded, shape);
    if (!key) {
        result = -1;
        goto done;
    }
    result = same(PyTuple_GET_ITEM(head, 8), key) && key != Py_None;
    Py_DECREF(key);
done:
    Py_XDECREF(held);
    Py_DECREF(id);
    return result;
}

static PyObject *mod_heads_to_check(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6 || !PyList_Check(args[0]) || !PyDict_Check(args[1]) ||
        !PyAnySet_Check(args[2]) || !PyAnySet_Check(args[3]) || !PyTuple_Check(args[4]) ||
        !PyTuple_Check(args[5]) || PyTuple_GET_SIZE(args[4]) != 128 ||
        PyTuple_GET_SIZE(args[5]) != 128) {
        PyErr_SetString(PyExc_TypeError,
                        "heads_to_check(batch, latest, wanted, shared, folded, shape)");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(args[0]); i++) {
        PyObject *head = PyList_GET_ITEM(args[0], i);
        int skip = plain(head, args[1], args[2], args[3], args[4], args[5]);
        if (skip < 0 || (!skip && PyList_Append(out, head) < 0)) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

static PyMethodDef head_checks_methods[] = {
    {"heads_to_check", (PyCFunction)(void (*)(void))mod_heads_to_check, METH_FASTCALL,
     "heads_to_check(batch, latest, wanted, shared, folded, shape) -> the heads of batch the "
     "heads pass must check in Python (plain_heads.to_check), in order."},
    {NULL}};

int plant_head_checks_add(PyObject *module) {
    return PyModule_AddFunctions(module, head_checks_methods);
}
