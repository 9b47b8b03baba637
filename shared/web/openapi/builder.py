"""What every function's OpenAPI document is built from: parameters, bodies, responses,
the routes every function has, and the document around a function's own paths."""

from __future__ import annotations

from typing import Any

from shared.web.openapi.schemas import JSON, PROBLEM, PROBLEMS, SCHEMAS, SLUGS, UUID, ref


def path_param(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    out = {"name": name, "in": "path", "required": True, "schema": schema}
    if description:
        out["description"] = description
    return out


def query_param(
    name: str, schema: dict[str, Any], description: str = "", *, required: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "in": "query", "required": required, "schema": schema}
    if description:
        out["description"] = description
    return out


def if_match(*, required: bool) -> dict[str, Any]:
    return {
        "name": "If-Match",
        "in": "header",
        "required": required,
        "schema": {"type": "string", "examples": ['"v1"']},
        "description": 'the ETag of the version the change is based on, "vN"',
    }


KIND = path_param("kind", {"type": "string", "enum": SLUGS})
ENTITY_ID = path_param("entity_id", UUID)
ETAG = {"required": True, "schema": {"type": "string", "pattern": '^"v[0-9]+"$'}}
RETRY_AFTER = {"Retry-After": {"required": True, "schema": {"type": "string"}}}


def json_body(schema: dict[str, Any], example: Any, *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema, "example": example}}}


EXAMPLE_ID = "0b5e9a3c-6f1d-4c2a-9e8b-3d7f1a2c4e6b"


def ok(
    schema: dict[str, Any] | None,
    description: str = "OK",
    *,
    media: str = JSON,
    headers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {media: {"schema": schema}}
    if headers:
        out["headers"] = headers
    return out


def doc_response(description: str = "The version", **extra_headers: Any) -> dict[str, Any]:
    return ok(ref("Document"), description, headers={"ETag": ETAG, **extra_headers})


def written_response() -> dict[str, Any]:
    return ok(ref("WrittenDocument"), "The new version and its cascade", headers={"ETag": ETAG})


def operation(
    operation_id: str,
    summary: str,
    responses: dict[str, Any],
    *problems: int,
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    public: bool = False,
) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": operation_id, "summary": summary}
    if parameters:
        out["parameters"] = parameters
    if body is not None:
        out["requestBody"] = body
    out["responses"] = {
        **responses,
        **{str(code): {"$ref": f"#/components/responses/{PROBLEMS[code][0]}"} for code in problems},
    }
    if public:
        out["security"] = []
    return out


def common_paths(function: str) -> dict[str, Any]:
    return {
        f"/{function}/openapi.json": {
            "get": operation(
                f"{function}OpenAPI",
                "This OpenAPI document (no authentication)",
                {"200": ok(ref("OpenAPIDocument"))},
                public=True,
            )
        },
        f"/{function}/healthz": {
            "get": operation(
                f"{function}Health",
                "Liveness: the function reaches its database (no authentication); with"
                " details=1 (a token with the auditor or admin role), the deployment's state"
                " for the caller's tenant",
                {"200": ok(ref("Health"))},
                401,
                403,
                422,
                503,
                parameters=[
                    query_param(
                        "details",
                        {"type": "string", "enum": ["0", "1"]},
                        "1: database round trip, migration revision, active key, latest"
                        " checkpoint and audit (needs the auditor or admin role)",
                    )
                ],
                public=True,
            )
        },
    }


REF_422 = f"#/components/responses/{PROBLEMS[422][0]}"


def path_parameter_problems(paths: dict[str, Any]) -> dict[str, Any]:
    """``paths`` with a 422 on every operation that takes a path parameter other than its kind:
    a value that cannot name anything (an id that is not a UUID) is that, not a 404
    (shared/rules/path_params.py)."""
    for item in paths.values():
        shared = item.get("parameters", [])
        for method, op in item.items():
            if method == "parameters":
                continue
            named = [p["name"] for p in [*shared, *op.get("parameters", [])] if p["in"] == "path"]
            if set(named) - {"kind"}:
                op["responses"].setdefault("422", {"$ref": REF_422})
    return paths


OPENAPI_VERSION = "3.1.0"
API_VERSION = "0.1.0"


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def _components(paths: dict[str, Any], schemas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Only the components the paths use (transitively)."""
    responses = {
        name: {
            "description": description,
            "content": {PROBLEM: {"schema": ref("Problem")}},
            **({"headers": RETRY_AFTER} if code == 503 else {}),
        }
        for code, (name, description) in PROBLEMS.items()
    }
    pool = {"schemas": schemas, "responses": responses}
    used: dict[str, dict[str, Any]] = {"schemas": {}, "responses": {}}
    pending = _refs(paths)
    while pending:
        target = pending.pop()
        _, _, section, name = target.split("/")
        if name in used[section]:
            continue
        used[section][name] = pool[section][name]
        pending |= _refs(pool[section][name])
    return {
        "schemas": dict(sorted(used["schemas"].items())),
        "responses": dict(sorted(used["responses"].items())),
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "Locally, an EdDSA-signed JWT from `plant token` (claims: sub, "
                "tenant, roles); in the cloud, the caller's Google ID token. Roles: reader, "
                "author, certifier, auditor, admin.",
            }
        },
    }


def build(
    function: str,
    description: str,
    paths: dict[str, Any],
    schemas: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """One function's document: its paths and the routes every function has, with the
    components they use (``schemas``: the function's own, beside the common ones)."""
    paths = path_parameter_problems({**common_paths(function), **paths})
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": f"Plant registry: {function}",
            "version": API_VERSION,
            "description": description + " Errors are RFC 9457 application/problem+json.",
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": _components(paths, {**SCHEMAS, **schemas}),
    }
