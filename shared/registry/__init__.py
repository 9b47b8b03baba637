"""The registry: what its entities are made of and how they change.

Operations that functions/ and the CLI call: ``writes`` (create, amend, change_status,
assign_team), ``batches`` (create_batch), ``reads`` (get, get_version, list_versions,
list_entities), ``certification`` (certify, certify_batch, certificates, catalogue) and
``membership`` (a team's agents). The rest is the registry's own: ``versions`` (how a write
becomes a version), ``documents``, ``ids``, ``dependents``, ``admission``, ``collector``.
Nothing is imported here, so a caller loads only the modules it names.
"""

__all__ = ["batches", "certification", "membership", "reads", "writes"]
