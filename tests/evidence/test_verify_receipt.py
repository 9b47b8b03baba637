"""`plant verify-receipt`: a client checks its write's receipt offline, with the keys it
pins, against the log's origin, the entry's index and the entry's bytes or leaf hash."""

from __future__ import annotations

import base64
import contextlib
import io
import json
from typing import Any

from shared import cli
from shared.registry import writes
from shared.security.principal import Principal
from shared.tlog import keys


def _plant(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(list(args))
    return code, out.getvalue()


def _written(tenant: str) -> tuple[dict[str, Any], int, str]:
    author = Principal("alice", tenant, frozenset({"author"}))
    doc = writes.create(
        author, "skills", {"name": "Go", "description": "d", "category": "technical"}, "r"
    )
    trail = doc.body["audit_trail"]
    return {**doc.body, "receipt": doc.receipt}, trail["log_index"], trail["leaf_hash"]


def test_a_clients_receipt_verifies_offline_and_a_wrong_claim_is_named(
    database_url, tenant, tmp_path
):
    response, index, leaf = _written(tenant)
    path = tmp_path / "response.json"
    path.write_text(json.dumps(response))
    vkey, origin = keys.keyring().active.vkey, keys.origin(tenant)
    base = ["verify-receipt", str(path), "--key", vkey, "--origin", origin]
    code, out = _plant(*base, "--index", str(index), "--leaf-hash", leaf)
    assert code == 0 and f"that the entry with this leaf hash is at index {index}" in out, out
    assert out.splitlines()[-1] == "VERIFIED: 1 of 1 checks hold", out
    receipt_only = tmp_path / "receipt.json"
    receipt_only.write_text(json.dumps(response["receipt"]))
    assert (
        _plant(
            "verify-receipt",
            str(receipt_only),
            *base[2:],
            "--index",
            str(index),
            "--leaf-hash",
            leaf,
        )[0]
        == 0
    )

    wrong = [
        (["--index", str(index + 1), "--leaf-hash", leaf], "index_mismatch"),
        (
            ["--index", str(index), "--leaf-hash", base64.b64encode(b"\1" * 32).decode()],
            "leaf_mismatch",
        ),
        (["--index", str(index), "--leaf-hash", "AAAA"], "malformed_encoding"),
    ]
    for extra, reason in wrong:
        code, out = _plant(*base, *extra)
        assert code == 1 and f"FAIL  receipt: {reason}" in out, (extra, out)
    code, out = _plant(
        *base[:4], "--origin", origin + "x", "--index", str(index), "--leaf-hash", leaf
    )
    assert code == 1 and "FAIL  receipt: wrong_origin" in out, out
    other = keys.new_document("other")  # a key the receipt was not signed by
    from shared.tlog.keys import parse

    stranger = parse(json.dumps(other).encode()).active.vkey
    code, out = _plant(
        "verify-receipt",
        str(path),
        "--key",
        stranger,
        "--origin",
        origin,
        "--index",
        str(index),
        "--leaf-hash",
        leaf,
    )
    assert code == 1 and "FAIL  receipt: wrong_key" in out, out

    entry = tmp_path / "entry.bin"
    entry.write_bytes(b"not the entry")
    code, out = _plant(*base, "--index", str(index), "--entry", str(entry))
    assert code == 1 and "FAIL  receipt: leaf_mismatch" in out, out
    forged = {**response["receipt"], "time": response["receipt"]["time"] + 1}
    path.write_text(json.dumps(forged))
    code, out = _plant(*base, "--index", str(index), "--leaf-hash", leaf)
    assert code == 1 and "FAIL  receipt: bad_signature" in out, out
    code, out = _plant(
        "verify-receipt", str(path), "--origin", origin, "--index", str(index), "--leaf-hash", leaf
    )
    assert code == 1 and "FAIL  pinned key" in out, out
