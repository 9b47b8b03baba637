"""Evidence bundles verify offline, and any single tampered byte is caught and named."""

from __future__ import annotations

import base64
import copy
import json

import pytest

from shared import cli, keys


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


def _verify(tmp_path, data, *extra: str) -> tuple[int, str]:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(data))
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["verify", str(path), *extra])
    return code, out.getvalue()


def _flip_b64(value: str, at: int = 0) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[at % len(raw)] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_round_trip_bundle_verifies_with_the_published_key(tmp_path, bundle):
    assert bundle["format"] == "plant-evidence-bundle/2"
    assert bundle["previous_checkpoint"] is not None  # the audit's checkpoint, then more writes
    kinds = {e["entry_type"] for e in bundle["entries"]}
    assert kinds == {"version", "certificate"}
    key = keys.keyring().active.vkey
    code, out = _verify(tmp_path, bundle, "--key", key)
    assert code == 0, out
    assert "VERIFIED" in out and "WARNING" not in out


def test_trusting_the_bundled_key_warns(tmp_path, bundle):
    code, out = _verify(tmp_path, bundle)
    assert code == 0
    assert "WARNING: trusting the public keys inside the bundle" in out


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
def test_tampering_each_class_fails_and_names_the_item(tmp_path, bundle, tamper, named):
    changed = copy.deepcopy(bundle)
    tamper(changed)
    index = _first(bundle, "version")["index"]
    cert = _first(bundle, "certificate")["index"]
    code, out = _verify(tmp_path, changed, "--key", keys.keyring().active.vkey)
    assert code == 1, out
    assert f"FAIL  {named.format(index=index, cert=cert)}" in out, out


def test_a_certificate_resigned_by_another_key_is_named(tmp_path, bundle):
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
    code, out = _verify(tmp_path, changed, "--key", keys.keyring().active.vkey)
    assert code == 1
    assert f"FAIL  entry {entry['index']}" in out


def test_json_output_lists_failures(tmp_path, bundle):
    changed = copy.deepcopy(bundle)
    changed["format"] = "something else"
    code, out = _verify(tmp_path, changed, "--json")
    assert code == 1
    assert json.loads(out)["failures"][0]["item"] == "format"


def test_bundle_of_one_entity_holds_only_its_entries(export_client, seeded, make_token, tmp_path):
    response = export_client.get(
        f"/export/bundle?entity={seeded.certified[0]}",
        headers=_auth(make_token(seeded.tenant, "auditor")),
    )
    data = json.loads(response.get_data())
    assert {e["entity_id"] for e in data["entries"]} == {seeded.certified[0]}
    assert _verify(tmp_path, data)[0] == 0


def test_bundles_never_cross_tenants(export_client, seeded, make_token):
    other = _auth(make_token(seeded.tenant + "-b", "auditor"))
    response = export_client.get(f"/export/bundle?entity={seeded.skills[0]}", headers=other)
    assert response.status_code == 404
    response = export_client.get("/export/bundle", headers=other)
    data = json.loads(response.get_data())
    assert data["tenant"] == seeded.tenant + "-b"
    assert data["entries"] == [] and data["checkpoint"]["size"] == 0
