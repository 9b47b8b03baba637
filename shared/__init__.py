"""Plant registry's shared library: integrity, storage, rules, auth and errors."""
