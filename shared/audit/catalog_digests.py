# ruff: noqa: E501 (generated: a signature per line)
"""Expected digests of the SQL functions and row-level security policies the
migrations install (``shared.audit.defences``). Generated: ``python -m
shared.audit.defences`` against a freshly migrated database; never edited by hand."""

FUNCTIONS = {
    "public.plant_append_version(p_tenant text, p_kind text, p_entity uuid, p_version integer, p_body bytea, p_digest bytea, p_leaf bytea, p_prev bytea, p_field_hashes bytea, p_actor text, p_status text, p_name text, p_category text, p_unique_key text, p_check_unique boolean, p_at timestamp with time zone, p_expect_index bigint, p_refs uuid[], p_ref_indices bigint[])": "0f3e01747e263eb261bb9d434074ff2f6c6e55554034f518c0b9c41b7fa51b88 plant_owner",
    "public.plant_append_versions(p_items jsonb)": "55816bd5d117b6c51715de7934b1f4f112418c20ae4c4debfbb077136a23eb66 plant_owner",
    "public.plant_batch_append(p_tenant text, p_kind text, p_actor text, p_at timestamp with time zone, p_first bigint)": "9aee788e73e4dcf5c0e55a796c5b2944d3195986372e1b41d1581eb1b69d1f8a plant_owner",
    "public.plant_batch_close(p_tenant text, p_first bigint, p_count bigint)": "2cfdfd50ad1392e57fa3331a13cc895c5e13f78a8b313c0b575b3e7ef2123f30 plant_owner",
    "public.plant_batch_items(p_tenant text, p_kind text, p_first bigint)": "91263598dd3b27bcd2427d4fb6f4ebcb7f481bb4963edeaf249245011e8eccaa plant_owner",
    "public.plant_batch_open(p_tenant text, p_count bigint, p_refs uuid[], p_ref_indices bigint[])": "243ec4a35492c65105baa7adf7fcade9ef00ee035487759884917d313a64ca2e plant_owner",
    "public.plant_body_tags(p_body bytea)": "1668857c54b0c29acfe5ad53a7956927e7a988c5e82ee9e7b0e215a06182c4be plant_owner",
    "public.plant_check_pins(p_refs uuid[], p_ref_indices bigint[])": "a7e61a052815e61badd4c4f0b50ba43b119ace21593880c7bced1505958eae0d plant_owner",
    "public.plant_current_proof(p_tenant text, p_entity uuid, p_size bigint, p_held bigint, p_width bigint, p_strata integer, p_from integer)": "b03e9fd9215d3f7c9db9d6d4cbf53efc925a18386ed6b21fff4fb6930523c89a plant_owner",
    "public.plant_fold_name(p text)": "0499455c08d2eaf1b38a7250884b5341e6559ac9ea9868a15d898d99333cb7f8 plant_owner",
    "public.plant_key_reading(p_key text, p_place integer)": "58474f18e07598c60f33b8a3fa66f5386c2511ac5f5af2dd09ccfb51fcec1cd3 plant_owner",
    "public.plant_node_hashes(p_keys bigint[])": "91fc5e2e38bcc5ae6cd216ba0347866028cdca8fa258811fc50ca014b6b6f565 plant_owner",
    "public.plant_nodes(p_keys bigint[])": "2620044c81b5161a34f81ebb0c0da4a65e587a0713fe2818e6c8b43b59e366a1 plant_owner",
    "public.plant_prefix_end(p text)": "8625e99787b00776c7f5ef8843547dffc7b4768c6187684acfd9697cd7bfe783 plant_owner",
    "public.plant_reading_held(p_reading text)": "1da1531c8230041f46b6a4cabb3c3e30bccd6556c5afa79801fde36e4ef9149e plant_owner",
    "public.plant_refuse_change()": "e5d5fae376935873952b3653fbb925d384918bbde1a7c1bcd6829fcc6fe46a1e plant_owner",
    "public.plant_team_listed(p_team text)": "33641e1e7f1c74fc4543e7551b6cbc916027bc97398f90c9e79897beb72ecb7f plant_owner",
}

POLICIES = {
    "audit_runs.tenant_isolation": "d87be39ef69f1bfa444fbbb7b5ec294a57644cb2890e6823722d21bbacd4659c",
    "checkpoint_cosignatures.tenant_isolation": "d87be39ef69f1bfa444fbbb7b5ec294a57644cb2890e6823722d21bbacd4659c",
    "checkpoints.tenant_isolation": "d87be39ef69f1bfa444fbbb7b5ec294a57644cb2890e6823722d21bbacd4659c",
    "entity_heads.tenant_isolation": "d87be39ef69f1bfa444fbbb7b5ec294a57644cb2890e6823722d21bbacd4659c",
    "entity_tags.tenant_isolation": "d87be39ef69f1bfa444fbbb7b5ec294a57644cb2890e6823722d21bbacd4659c",
    "heads_map_strata.tenant_isolation": "d87be39ef69f1bfa444fbbb7b5ec294a57644cb2890e6823722d21bbacd4659c",
    "log_entries.tenant_isolation": "d87be39ef69f1bfa444fbbb7b5ec294a57644cb2890e6823722d21bbacd4659c",
    "log_heads.tenant_isolation": "d87be39ef69f1bfa444fbbb7b5ec294a57644cb2890e6823722d21bbacd4659c",
    "log_nodes.tenant_isolation": "d87be39ef69f1bfa444fbbb7b5ec294a57644cb2890e6823722d21bbacd4659c",
    "log_receipts.tenant_isolation": "d87be39ef69f1bfa444fbbb7b5ec294a57644cb2890e6823722d21bbacd4659c",
    "receipt_cutover.tenant_isolation": "d87be39ef69f1bfa444fbbb7b5ec294a57644cb2890e6823722d21bbacd4659c",
    "skill_embeddings.tenant_isolation": "d87be39ef69f1bfa444fbbb7b5ec294a57644cb2890e6823722d21bbacd4659c",
}
