"""Plant registry's shared library, by domain, top to bottom: cli, web, evidence, the audit,
registry, tlog, security, storage and rules, integrity; config, logs and errors at the root.
A module imports only from its own package and the layers below (tests/architecture)."""
