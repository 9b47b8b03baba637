"""Schemathesis against every function's own OpenAPI document, on the real server.

The combined gunicorn app (`functions.local:app`, as `plant serve` runs it) serves every
function over a real PostgreSQL; a tenant is seeded with a few entities, a certificate, a
checkpoint and an audit run, and the `st` CLI runs its examples, coverage, fuzzing and
stateful phases against `/<function>/openapi.json` with real tokens for every role (see
fuzz_hooks.py). Any 5xx, any response that breaks the document (status code, content type,
schema, headers) or any error that is not problem+json fails the test.

The default run is short (PLANT_FUZZ_EXAMPLES examples per operation, default 10); `make
test-reliability` can ask for more, e.g. PLANT_FUZZ_EXAMPLES=200.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import main
from tests.support.plant_server import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
EXAMPLES = int(os.environ.get("PLANT_FUZZ_EXAMPLES") or 10)
SEED = os.environ.get("PLANT_FUZZ_SEED")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
ROLES = ("reader", "author", "certifier", "auditor", "admin")


class Server:
    def __init__(self, base: str, log: Path) -> None:
        self.base = base
        self.log = log

    def call(self, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw or b"null")
        except ValueError:
            return status, raw.decode(errors="replace")

    def mark(self) -> int:
        return self.log.stat().st_size

    def crashes(self, since: int) -> list[str]:
        """Unhandled errors the server logged after ``since`` (a byte offset of its log)."""
        with self.log.open("rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
        return re.findall(r"[^\n]*unhandled error[^\n]*", text)


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    log = tmp_path_factory.mktemp("fuzz-server") / "server.log"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--threads",
        "4",
        "--timeout",
        "120",
        "functions.local:app",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ), stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/registry/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:  # refused, reset or timed out while the server starts
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(log.read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        yield Server(base, log)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def context(server: Server, make_token_module) -> dict[str, Any]:
    """Tokens for every role of one tenant, and a few real things for the fuzzer to hit."""
    tenant = f"fuzz-{os.urandom(4).hex()}"
    tokens = {role: make_token_module(tenant, role, subject=f"fuzz-{role}") for role in ROLES}
    author, certifier, auditor = tokens["author"], tokens["certifier"], tokens["auditor"]

    versions: dict[str, int] = {}

    def made(kind: str, body: dict[str, Any]) -> str:
        status, doc = server.call("POST", f"/registry/{kind}", author, body)
        assert status == 201, doc
        versions[doc["identity"]["id"]] = doc["versioning"]["version"]
        return doc["identity"]["id"]

    def certified(kind: str, entity_id: str) -> None:
        status, result = server.call("POST", f"/certify/{kind}/{entity_id}", certifier)
        assert status == 201, result
        versions[entity_id] = result["entity"]["versioning"]["version"]

    industry = made("industries", {"name": "Fuzzing", "description": "d"})
    skill = made("skills", {"name": "Fuzz", "description": "d", "category": "technical"})
    certified("skills", skill)
    role = made(
        "job-roles",
        {
            "name": "Fuzzer",
            "description": "d",
            "required_skills": [skill],
            "seniority_level": "mid",
        },
    )
    agent = made(
        "agents", {"name": "A", "skill_id": skill, "job_role_id": role, "industry_id": industry}
    )
    team = made("teams", {"name": "T", "description": "d", "job_role_id": role})
    status, run = server.call("POST", "/audit/runs", auditor, {"mode": "full"})
    assert status == 201, run
    status, sealed = server.call("POST", "/log/seal", auditor)
    assert status in (200, 201), sealed
    entities = [
        {"kind": "industries", "id": industry},
        {"kind": "skills", "id": skill},
        {"kind": "job-roles", "id": role},
        {"kind": "agents", "id": agent},
        {"kind": "teams", "id": team},
    ]
    return {
        "tokens": tokens,
        "entities": entities,
        "runs": [run["id"]],
        "log_size": sealed["tree_size"],
        "versions": versions,
    }


@pytest.fixture(scope="module")
def make_token_module(database_url: str):
    from shared.config import settings
    from shared.security.local_tokens import LocalTokens

    tokens = LocalTokens.from_settings(settings())

    def make(tenant: str, *roles: str, subject: str) -> str:
        return tokens.issue(subject, tenant, list(roles), ttl=3600)

    return make


def _schemathesis(
    server: Server, function: str, context: dict[str, Any], workdir: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    report = workdir / f"{function}.json"
    command = [
        str(BIN / "st"),
        "run",
        f"{server.base}/{function}/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(EXAMPLES),
        "--workers",
        "1",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--request-timeout",
        "60",
        "--generation-database",
        "none",
        "--suppress-health-check",
        "all",
        "--report",
        "json,har",
        "--report-json-path",
        str(report),
        "--no-color",
    ]
    if SEED:
        command += ["--seed", SEED]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "fuzz_hooks",
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "PLANT_FUZZ_CONTEXT": json.dumps(context),
        "NO_COLOR": "1",
    }
    done = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    summary = json.loads(report.read_text()) if report.exists() else {}
    return done, summary


@pytest.mark.parametrize("function", main.FUNCTIONS)
def test_fuzzing_the_openapi_document_finds_no_fault(
    request, server, context, function, tmp_path
) -> None:
    since = server.mark()
    done, summary = _schemathesis(server, function, context, tmp_path)
    output = (done.stdout + done.stderr)[-12000:]
    print(output)  # shown with -rP or -s: warnings, phases, counts
    assert summary, f"schemathesis wrote no report (exit {done.returncode}):\n{output}"
    cases = summary["test_cases"]
    operations = summary["operations"]
    crashes = server.crashes(since)
    assert not crashes, "the server logged unhandled errors:\n" + "\n".join(crashes[:5])
    assert done.returncode == 0 and not summary["failures"] and not summary["errors"], output
    assert operations["tested"] == operations["total"], operations
    assert cases["generated"] > 0
    request.node.user_properties.append(
        (
            "reliability",
            {
                "attack": f"schemathesis fuzzing /{function}",
                "tries": int(cases["generated"]),
                "outcome": "0 5xx, all 4xx problem+json, responses match the OpenAPI document",
                "lost": 0,
            },
        )
    )


ODD_INTEGERS = ("\u00b2", "\u0661\u0662", "\uff11", "9" * 3000, "-1", "1e3", " 1")


def _integer_parameters(spec: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    """(method, path, location, name) of every integer path or query parameter."""
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            for parameter in [*item.get("parameters", []), *op.get("parameters", [])]:
                if parameter["in"] in ("path", "query") and parameter["schema"].get("type") == (
                    "integer"
                ):
                    yield method.upper(), path, parameter["in"], parameter["name"]


def test_integer_parameters_refuse_odd_digits(request, server, context) -> None:
    """Superscript, Arabic-Indic and full-width digits pass str.isdigit() but int() refuses
    some and reads others; 3000 digits stress int() (gunicorn refuses longer request lines).
    Every integer parameter of every document answers each with a 4xx problem, never a 5xx
    (nor a 200 for a value the document says is not an integer)."""
    from urllib.parse import quote

    from shared.web import openapi

    token = context["tokens"]["admin"]
    skill = next(e["id"] for e in context["entities"] if e["kind"] == "skills")
    filler = {"kind": "skills", "entity_id": skill, "version": "1", "run_id": context["runs"][0]}
    tries, failures = 0, []
    for function in main.FUNCTIONS:
        for method, path, where, name in _integer_parameters(openapi.document(function)):
            for value in ODD_INTEGERS:
                url = path
                for key, fill in filler.items():
                    url = url.replace("{" + key + "}", quote(value if key == name else fill))
                if where == "path":
                    url = url.replace("{" + name + "}", quote(value))
                else:
                    url += f"?{name}={quote(value)}"
                status, body = server.call(method, url, token)
                tries += 1
                if not 400 <= status < 500 or not isinstance(body, dict) or "type" not in body:
                    failures.append(f"{method} {url[:80]} -> {status} {str(body)[:100]}")
    assert not failures, "\n".join(failures)
    request.node.user_properties.append(
        (
            "reliability",
            {
                "attack": "non-ASCII and oversized digits in integer parameters",
                "tries": tries,
                "outcome": "every one a 4xx problem+json, 0 5xx",
                "lost": 0,
            },
        )
    )
