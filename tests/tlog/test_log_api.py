"""The log function over HTTP: checkpoints, entries, proofs, keys, sealing, and its errors."""

from __future__ import annotations

import base64

from shared.integrity import merkle, note
from tests.support import rfc9162 as ref


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_seal_then_prove_inclusion_and_consistency_over_http(log_client, tenant, fill, make_token):
    reader = _auth(make_token(tenant, "reader"))
    auditor = _auth(make_token(tenant, "auditor"))
    fill(tenant, 5)
    first = log_client.post("/log/seal", headers=auditor)
    assert first.status_code == 201 and first.json["tree_size"] == 6  # 5 and the map commit
    fill(tenant, 6)
    second = log_client.post("/log/seal", headers=auditor)
    assert second.status_code == 201 and second.json["tree_size"] == 13
    again = log_client.post("/log/seal", headers=auditor)
    assert again.status_code == 200 and again.json["created"] is False

    checkpoint = log_client.get("/log/checkpoint", headers=reader)
    assert checkpoint.status_code == 200
    assert checkpoint.mimetype == "text/plain"
    keys = log_client.get("/log/keys", headers=reader).json
    verifiers = [note.Verifier.from_vkey(v) for v in keys["keys"]]
    body, _ = note.open_note(checkpoint.get_data(as_text=True), verifiers)
    root = note.parse_checkpoint(body).root

    leaves = []
    for i in range(13):
        entry = log_client.get(f"/log/entries/{i}", headers=reader).json
        leaves.append(base64.b64decode(entry["leaf_hash"]))
        assert entry["entry_type"] == ("map_commit" if i in (5, 12) else "version")
        assert merkle.leaf_hash(base64.b64decode(entry["body"])) == leaves[-1]
    for i in range(13):
        proof = log_client.get(f"/log/proofs/inclusion?index={i}&size=13", headers=reader).json
        path = [base64.b64decode(h) for h in proof["proof"]]
        assert ref.verify_inclusion(leaves[i], i, 13, path, root)
    by_hash = log_client.get(
        "/log/proofs/inclusion",
        query_string={"leaf_hash": base64.b64encode(leaves[3]).decode(), "size": 13},
        headers=reader,
    ).json
    assert by_hash["index"] == 3
    old_note = log_client.get("/log/checkpoints?size=6", headers=reader).get_data(as_text=True)
    old_root = note.parse_checkpoint(note.open_note(old_note, verifiers)[0]).root
    consistency = log_client.get("/log/proofs/consistency?old=6&new=13", headers=reader).json
    path = [base64.b64decode(h) for h in consistency["proof"]]
    assert ref.verify_consistency(6, 13, old_root, root, path)


def test_out_of_range_sizes_get_422_naming_the_field(log_client, tenant, fill, make_token):
    reader = _auth(make_token(tenant, "reader"))
    fill(tenant, 3)
    log_client.post("/log/seal", headers=_auth(make_token(tenant, "auditor")))  # 3 and a commit
    for url, field in (
        ("/log/proofs/inclusion?index=0&size=5", "size"),
        ("/log/proofs/inclusion?index=3&size=3", "index"),
        ("/log/proofs/inclusion?index=x&size=3", "index"),
        ("/log/proofs/consistency?old=0&new=3", "old"),
        ("/log/proofs/consistency?old=2&new=9", "new"),
        ("/log/proofs/consistency?old=3&new=2", "old"),
    ):
        response = log_client.get(url, headers=reader)
        assert response.status_code == 422, url
        assert response.mimetype == "application/problem+json"
        assert response.json["errors"][0]["field"] == field, url


def test_sealing_needs_the_auditor_role(log_client, tenant, make_token):
    response = log_client.post("/log/seal", headers=_auth(make_token(tenant, "author")))
    assert response.status_code == 403


def test_another_tenant_sees_none_of_the_log(log_client, tenant, fill, make_token):
    fill(tenant, 2)
    log_client.post("/log/seal", headers=_auth(make_token(tenant, "auditor")))
    other = _auth(make_token(tenant + "-b", "reader"))
    assert log_client.get("/log/entries/0", headers=other).status_code == 404
    assert log_client.get("/log/checkpoint", headers=other).status_code == 404


def test_registry_version_proof_verifies_against_the_checkpoint(
    log_client, tenant, fill, make_token, database_url
):
    import functions_framework

    from shared.config import ROOT

    registry = functions_framework.create_app(
        target="registry", source=str(ROOT / "main.py")
    ).test_client()
    reader = _auth(make_token(tenant, "reader"))
    (skill,) = fill(tenant, 1)
    fill(tenant, 2)
    unsealed = registry.get(f"/registry/skills/{skill}/versions/1/proof", headers=reader)
    assert unsealed.status_code == 404
    log_client.post("/log/seal", headers=_auth(make_token(tenant, "auditor")))
    doc = registry.get(f"/registry/skills/{skill}", headers=reader).json
    proof = registry.get(f"/registry/skills/{skill}/versions/1/proof", headers=reader).json
    keys = [
        note.Verifier.from_vkey(v) for v in log_client.get("/log/keys", headers=reader).json["keys"]
    ]
    root = note.parse_checkpoint(note.open_note(proof["checkpoint"], keys)[0]).root
    leaf = base64.b64decode(doc["audit_trail"]["leaf_hash"])
    assert ref.verify_inclusion(
        leaf,
        doc["audit_trail"]["log_index"],
        proof["tree_size"],
        [base64.b64decode(h) for h in proof["proof"]],
        root,
    )


def test_key_rotation_keeps_old_checkpoints_verifiable(log_client, tenant, fill, make_token):
    from shared.config import settings
    from shared.tlog import keys

    auditor = _auth(make_token(tenant, "auditor"))
    fill(tenant, 1)
    old_note = log_client.post("/log/seal", headers=auditor).json["checkpoint"]
    keys.rotate_local(settings())
    fill(tenant, 1)
    new_note = log_client.post("/log/seal", headers=auditor).json["checkpoint"]
    served = log_client.get("/log/keys", headers=auditor).json
    assert len(served["keys"]) >= 2 and served["active"] == served["keys"][-1]
    verifiers = [note.Verifier.from_vkey(v) for v in served["keys"]]
    assert note.open_note(old_note, verifiers)
    assert note.open_note(new_note, [note.Verifier.from_vkey(served["active"])])
