"""Witnessed checkpoints with real processes (issue 25, Must show): the registry and two
witnesses of ours, each a separate `plant serve` with its own database and key. Seal and
cosign; a witness outage that never fails a seal and its recovery (the cosignature added at
the next seal); a split view refused; a rolled-back database caught by a witness (409) as
well as by the anchors."""

from __future__ import annotations

import base64
import json
import os
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from shared.integrity import cosignature, note
from shared.integrity.witness_protocol import format_add_checkpoint
from shared.tlog import keys
from tests.support.databases import create_database, database_url_for, superuser_engine
from tests.support.plant_server import PlantServer, call


def _witness_key(path: Path, name: str) -> cosignature.WitnessSigner:
    seed = os.urandom(32)
    path.write_text(json.dumps({"name": name, "seed": base64.b64encode(seed).decode()}))
    return cosignature.WitnessSigner.from_seed(name, seed)


def _post(base: str, body: bytes) -> tuple[int, str, bytes]:
    request = urllib.request.Request(base + "/witness/add-checkpoint", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def _skill() -> dict[str, str]:
    return {"name": f"s {uuid.uuid4().hex[:8]}", "description": "d", "category": "technical"}


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[PlantServer]]:
    started: list[PlantServer] = []
    yield started
    for server in started:
        server.stop()


def test_seal_cosign_outage_recovery_split_view_and_rollback(
    servers, tmp_path: Path, tenant: str, make_token, database_url: str
):
    test_server = os.environ["PLANT_TEST_SERVER_URL"]
    data_dir = Path(os.environ["PLANT_DATA_DIR"])
    origin = keys.origin(tenant)
    log_vkeys = keys.keyring().vkeys
    signers = [_witness_key(tmp_path / f"w{i}.json", f"witness-{i}") for i in (1, 2)]
    witnesses = []
    for i in (1, 2):
        witness = PlantServer(
            create_database(test_server, "plant_witness"),
            data_dir,
            tmp_path,
            env={
                "PLANT_WITNESS_KEY_FILE": str(tmp_path / f"w{i}.json"),
                "PLANT_WITNESS_LOGS": json.dumps({origin: log_vkeys}),
            },
        )
        servers.append(witness)
        witness.start()
        witnesses.append(witness)
    config = {
        "*": [
            {"name": s.name, "vkey": s.vkey, "url": f"{w.base}/witness"}
            for s, w in zip(signers, witnesses, strict=True)
        ]
    }
    anchors = tmp_path / "anchors"
    registry_env = {
        "PLANT_WITNESSES": json.dumps(config),
        "PLANT_WITNESS_TIMEOUT_SECONDS": "2",
        "PLANT_ANCHOR_DIR": str(anchors),
    }
    registry_db = create_database(test_server, "plant_rel")
    registry = PlantServer(registry_db, data_dir, tmp_path, env=registry_env)
    servers.append(registry)
    registry.start()
    author = make_token(tenant, "author")
    auditor = make_token(tenant, "auditor")
    keys_by_name = [s.key for s in signers]

    def write(n: int) -> None:
        for _ in range(n):
            body = {
                "name": f"s {uuid.uuid4().hex[:8]}",
                "description": "d",
                "category": "technical",
            }
            assert call(registry.base, "POST", "/registry/skills", author, body).status == 201

    def seal(expected: int = 201) -> None:
        reply = call(registry.base, "POST", "/log/seal", auditor)
        assert reply.status == expected, reply.body

    def served() -> str:
        reply = call(registry.base, "GET", "/log/checkpoint", auditor)
        assert reply.status == 200
        return reply.body.decode() if isinstance(reply.body, bytes) else str(reply.body)

    def cosigners(text_: str) -> set[str]:
        return set(cosignature.check_cosignatures(text_, keys_by_name).valid)

    # Every seal with new entries appends its map commit (entry_type 'map_commit') before
    # signing: 3 skills seal at size 4, 2 more at size 7.
    # 1. Seal: both witnesses cosign; the served checkpoint carries both lines and still opens
    # with the log key alone (unknown lines ignored), and a quorum of 2 holds.
    write(3)
    seal()
    first = served()
    assert cosigners(first) == {"witness-1", "witness-2"}
    note.open_note(first, [note.Verifier.from_vkey(v) for v in log_vkeys])
    cosignature.require_quorum(first, keys_by_name, 2)
    mirrored = (anchors / tenant / "tiles" / "checkpoint").read_text()
    assert mirrored == first  # the static mirror's checkpoint carries them too

    # Keep a copy of the database as it is now (size 4): the later "restored backup".
    registry.stop()
    snapshot = f"plant_snap_{uuid.uuid4().hex[:8]}"
    admin = superuser_engine(test_server)
    with admin.connect() as conn:
        conn.execute(
            text(f'CREATE DATABASE "{snapshot}" TEMPLATE "{make_url(registry_db).database}"')
        )
    admin.dispose()
    registry.start()

    # 2. Outage: witness 2 is down. The seal succeeds, with witness 1's cosignature only,
    # and health details name the missing one.
    witnesses[1].stop()
    write(2)
    seal()
    second = served()
    assert cosigners(second) == {"witness-1"}
    health = call(registry.base, "GET", "/log/healthz?details=1", auditor).body
    by_name = {w["name"]: w for w in health["witnesses"]}
    assert by_name["witness-1"]["latest_cosigned"] is True
    assert by_name["witness-2"]["latest_cosigned"] is False
    assert by_name["witness-2"]["cosigned_size"] == 4
    assert by_name["witness-2"]["last_error"]
    with pytest.raises(cosignature.BadCosignature, match="witness-2: no cosignature"):
        cosignature.require_quorum(second, keys_by_name, 2)

    # 3. Recovery: the next seal (nothing new to seal) gets witness 2's cosignature, proven
    # from the size 4 it holds.
    witnesses[1].start()
    seal(200)
    assert cosigners(served()) == {"witness-1", "witness-2"}
    health = call(registry.base, "GET", "/log/healthz?details=1", auditor).body
    assert all(w["latest_cosigned"] and w["cosigned_size"] == 7 for w in health["witnesses"])

    # 4. Split view: a second log-signed checkpoint of size 7 with another root is refused
    # (422) and logged as a split view; so is one of size 8 not consistent with size 7.
    signer = keys.keyring().active
    forged = note.sign_note(note.checkpoint_body(origin, 7, b"\x07" * 32), [signer])
    status, _, body = _post(witnesses[0].base, format_add_checkpoint(7, [], forged))
    assert status == 422 and b"split view" in body
    forked = note.sign_note(note.checkpoint_body(origin, 8, b"\x08" * 32), [signer])
    bogus = [bytes([n]) * 32 for n in range(9, 13)]  # as long as a real proof from 7 to 8
    status, _, body = _post(witnesses[0].base, format_add_checkpoint(7, bogus, forked))
    assert status == 422 and b"split view" in body
    logged = witnesses[0]._log("out").read_text()  # the structured log (stdout)
    assert logged.count('"severity": "ERROR", "message": "split view refused') == 2
    # Stale size: 409 with the witness's size, as text/x.tlog.size.
    status, content_type, body = _post(witnesses[0].base, format_add_checkpoint(3, [], forged))
    assert (status, content_type, body) == (409, "text/x.tlog.size", b"7\n")

    # 5. Rollback: the registry restarts on the restored backup (size 4). With its anchor
    # store the seal is refused; with the anchors gone too, it seals size 6 (one skill and its
    # map commit), and the witnesses refuse it (they hold 7: 409, and no proof from 7 to 6
    # exists), so it has no cosignature.
    registry.stop()
    restored = database_url_for(test_server, snapshot)
    rolled = PlantServer(restored, data_dir, tmp_path, env=registry_env)
    servers.append(rolled)
    rolled.start()
    write_to = rolled
    assert call(write_to.base, "POST", "/registry/skills", author, _skill()).status == 201
    refused = call(rolled.base, "POST", "/log/seal", auditor)
    assert refused.status == 409 and "rollback" in refused.body["detail"]
    rolled.stop()
    blind = PlantServer(
        restored, data_dir, tmp_path, env={**registry_env, "PLANT_ANCHOR_DIR": str(tmp_path / "x")}
    )
    servers.append(blind)
    blind.start()
    assert call(blind.base, "POST", "/log/seal", auditor).status == 201
    text_ = call(blind.base, "GET", "/log/checkpoint", auditor).body
    text_ = text_.decode() if isinstance(text_, bytes) else str(text_)
    assert cosigners(text_) == set()
    health = call(blind.base, "GET", "/log/healthz?details=1", auditor).body
    for w in health["witnesses"]:
        assert w["latest_cosigned"] is False
        assert "409" in w["last_error"] and "rolled back" in w["last_error"], w
