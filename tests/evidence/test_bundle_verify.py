"""Evidence bundles verify offline, and any single tampered byte is caught and named."""

from __future__ import annotations

import base64
import copy
import json

import pytest

from shared.tlog import keys


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def bundle(export_client, seeded, make_token) -> dict:
    response = export_client.get(
        "/export/bundle", headers=_auth(make_token(seeded.tenant, "auditor"))
    )
    assert response.status_code == 200
    assert response.headers["X-Checkpoint-Size"]
    return json.loads(response.get_data())


def _flip_b64(value: str, at: int = 0) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[at % len(raw)] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_round_trip_bundle_verifies_with_the_published_key(plant_verify, bundle):
    assert bundle["format"] == "plant-evidence-bundle/3"
    assert bundle["previous_checkpoint"] is not None  # the audit's checkpoint, then more writes
    kinds = {e["entry_type"] for e in bundle["entries"]}
    # every seal's commit (issue 24) and the audit run's report (issue 22)
    assert kinds == {"version", "certificate", "map_commit", "audit"}
    assert bundle["current_proofs"] and all(p["head"] for p in bundle["current_proofs"])
    code, out = plant_verify(bundle)
    assert code == 0, out
    size = bundle["checkpoint"]["size"]
    assert out.splitlines()[-1].startswith("VERIFIED: ")
    assert "FAIL" not in out
    assert f"completeness: every entry of the log below {size} (indexes 0..{size - 1})" in out
    assert f"the log at {size} extends the checkpoint of size" in out
    assert f"that {size} is the log's newest checkpoint" in out.split("NOT PROVEN:")[1]
    assert f"current versions: {len(bundle['current_proofs'])} entities' heads" in out


def test_a_key_file_pins_keys_like_key(tmp_path, plant_verify, bundle):
    key_file = tmp_path / "keys.txt"
    key_file.write_text(f"# the registry's keys\n\n{keys.keyring().active.vkey}\n")
    code, out = plant_verify(bundle, "--key-file", str(key_file), pinned=False)
    assert code == 0, out


def test_without_a_pinned_key_a_genuine_bundle_is_not_verified(plant_verify, bundle):
    code, out = plant_verify(bundle, pinned=False)
    assert code == 1
    assert "FAIL  pinned key: no key is pinned: pass --key VKEY or --key-file FILE" in out
    assert out.splitlines()[-1] == "NOT VERIFIED: 1 of 1 checks fail"


def _first(bundle, entry_type):
    return next(e for e in bundle["entries"] if e["entry_type"] == entry_type)


def _flip_first(hashes: list[str]) -> list[str]:
    return [_flip_b64(hashes[0]), *hashes[1:]]


def tamper_entry_bytes(b: dict) -> None:
    entry = _first(b, "version")
    entry["body"] = _flip_b64(entry["body"], 40)


def tamper_inclusion_proof(b: dict) -> None:
    entry = _first(b, "version")
    entry["inclusion_proof"] = _flip_first(entry["inclusion_proof"])


def tamper_certificate(b: dict) -> None:
    entry = _first(b, "certificate")
    entry["body"] = _flip_b64(entry["body"], 60)


def tamper_checkpoint(b: dict) -> None:
    root = b["checkpoint"]["root"]
    b["checkpoint"]["note"] = b["checkpoint"]["note"].replace(root, _flip_b64(root), 1)


def tamper_consistency_proof(b: dict) -> None:
    previous = b["previous_checkpoint"]
    previous["consistency_proof"] = _flip_first(previous["consistency_proof"])


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (tamper_entry_bytes, "entry {index}"),
        (tamper_inclusion_proof, "entry {index}"),
        (tamper_certificate, "entry {cert}"),
        (tamper_checkpoint, "checkpoint"),
        (tamper_consistency_proof, "consistency proof"),
    ],
)
def test_tampering_each_class_fails_and_names_the_item(plant_verify, bundle, tamper, named):
    changed = copy.deepcopy(bundle)
    tamper(changed)
    index = _first(bundle, "version")["index"]
    cert = _first(bundle, "certificate")["index"]
    code, out = plant_verify(changed)
    assert code == 1, out
    assert f"FAIL  {named.format(index=index, cert=cert)}" in out, out


def test_a_certificate_resigned_by_another_key_is_named(plant_verify, bundle):
    from shared.integrity import canonical, dsse, note

    changed = copy.deepcopy(bundle)
    entry = _first(changed, "certificate")
    envelope = canonical.loads(base64.b64decode(entry["body"]))
    mallory = note.Signer.from_seed("mallory", b"\x05" * 32)
    forged = dsse.sign_envelope(
        envelope["payloadType"], base64.b64decode(envelope["payload"]), mallory
    )
    body = canonical.dumps(forged)
    entry["body"] = base64.b64encode(body).decode()
    code, out = plant_verify(changed)
    assert code == 1
    assert f"FAIL  entry {entry['index']}" in out


def test_json_output_lists_failures_and_claims(plant_verify, bundle):
    code, out = plant_verify(bundle, "--json")
    result = json.loads(out)
    assert code == 0 and result["ok"] and result["failures"] == []
    assert any(c.startswith("completeness: ") for c in result["proven"])
    changed = copy.deepcopy(bundle)
    changed["format"] = "something else"
    code, out = plant_verify(changed, "--json")
    result = json.loads(out)
    assert code == 1 and result["proven"] == []
    assert result["failures"][0]["item"] == "format"


def test_bundle_of_one_entity_says_what_it_cannot_prove(export_bundle, seeded, plant_verify):
    entity = seeded.certified[0]
    data = export_bundle(seeded.tenant, f"?entity={entity}")
    assert {e["entity_id"] for e in data["entries"]} == {entity}
    code, out = plant_verify(data)
    assert code == 0, out
    proven, not_proven = out.split("NOT PROVEN:")
    assert f"entity {entity} (skill): versions 1..3 in log order" in proven
    assert "1 certificate(s)" in proven and "completeness" not in proven
    assert f"that entity {entity} has no version newer than 3 below" in not_proven


def test_bundle_of_one_kind_says_what_it_cannot_prove(export_bundle, seeded, plant_verify):
    data = export_bundle(seeded.tenant, "?kind=skills")
    assert {e["entity_type"] for e in data["entries"]} == {"skill"}
    code, out = plant_verify(data)
    assert code == 0, out
    proven, not_proven = out.split("NOT PROVEN:")
    assert "4 skill entities, each with versions 1..k" in proven
    assert "that the log holds no other skill entity, version or certificate below" in not_proven


def test_bundles_never_cross_tenants(export_client, seeded, make_token, plant_verify):
    other = _auth(make_token(seeded.tenant + "-b", "auditor"))
    response = export_client.get(f"/export/bundle?entity={seeded.skills[0]}", headers=other)
    assert response.status_code == 404
    response = export_client.get("/export/bundle", headers=other)
    data = json.loads(response.get_data())
    assert data["tenant"] == seeded.tenant + "-b"
    assert data["entries"] == [] and data["checkpoint"]["size"] == 0
    code, out = plant_verify(data)
    assert code == 0, out
    assert "completeness: the log was empty at the checkpoint" in out
