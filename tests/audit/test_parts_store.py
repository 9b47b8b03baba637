"""The merge trusts no part blindly: a part missing, edited in the store, re-signed by another
key, copied from another run or index, or from another checkpoint is refused by name before
any run starts; a part signed by the log's key whose subtree hashes are wrong is caught by the
root the audit rebuilds. The same on a directory and on a Cloud Storage bucket (the fake
speaking its JSON API), and through `plant audit --part` processes with Cloud Run's variables."""

from __future__ import annotations

import base64
import json
import marshal
import os
import subprocess
import sys
import uuid
import zlib

import pytest
from sqlalchemy import text

from shared import config, tlog
from shared.audit import parts, runs
from shared.integrity import canonical, dsse, note
from shared.tlog import anchors, keys
from tests.fakes.gcs import RunningGCS

COUNT = 3


@pytest.fixture(params=["directory", "bucket"])
def store(request, monkeypatch, database_url):
    """The anchor store the parts go to: the local directory, or a fake GCS bucket."""
    if request.param == "directory":
        yield anchors.anchor_store(config.settings())
        return
    gcs = RunningGCS()
    bucket = anchors.BucketAnchors("plant-anchors", client=gcs.client())
    monkeypatch.setattr(anchors, "anchor_store", lambda cfg: bucket)
    yield bucket
    gcs.stop()


def _written(history) -> str:
    execution = f"x-{uuid.uuid4().hex[:8]}"
    for index in range(COUNT):
        parts.write(history.tenant, execution, index, COUNT)
    return execution


def _refused(history, execution: str, match: str, superuser) -> None:
    with pytest.raises(parts.PartsRefused, match=match):
        parts.merge(history.auditor, execution, COUNT)
    with superuser.connect() as conn:
        running = conn.execute(
            text("SELECT count(*) FROM audit_runs WHERE tenant_id = :t AND status = 'running'"),
            {"t": history.tenant},
        ).scalar_one()
    assert running == 0


def _envelope(store, history, execution: str, index: int) -> dict:
    return json.loads(store.get_object(parts.object_name(history.tenant, execution, index)))


def _resigned(envelope: dict, edit, signer: note.Signer | None = None) -> str:
    """The envelope's payload edited by ``edit`` (header dict, ranges) and signed again."""
    payload = base64.b64decode(envelope["payload"])
    head, _, body = payload.partition(b"\n")
    header, values = json.loads(head), marshal.loads(zlib.decompress(body))  # noqa: S302
    header, values = edit(header, values)

    payload = canonical.dumps(header) + b"\n" + zlib.compress(marshal.dumps(values))
    signer = signer or keys.keyring().active
    return json.dumps(dsse.sign_envelope(parts.PAYLOAD_TYPE, payload, signer))


def test_the_parts_merge_from_either_store(history, store):
    execution = _written(history)
    assert store.has_object(parts.object_name(history.tenant, execution, COUNT - 1))
    alone = runs._audit(history.tenant, "full")
    run, _ = parts.merge(history.auditor, execution, COUNT)
    assert run["findings"] == alone["findings"] == []
    assert run["summary"]["parts"] == {"execution": execution, "count": COUNT, "entries": 8}


def test_a_missing_part_is_named(history, store, superuser):
    execution = f"x-{uuid.uuid4().hex[:8]}"
    parts.write(history.tenant, execution, 1, COUNT)
    names = [parts.object_name(history.tenant, execution, i) for i in (0, 2)]
    missing = f"2 of 3 parts missing: part 0 \\({names[0]}\\), part 2 \\({names[1]}\\)"
    _refused(history, execution, missing, superuser)


def _stored_edit(store, name: str, data: str) -> None:
    if isinstance(store, anchors.DirectoryAnchors):
        path = store.root / name
        path.chmod(0o644)
        path.write_text(data, encoding="utf-8")
    else:
        blob = store._bucket.blob(name)
        blob.upload_from_string(data)  # the fake, like a bucket admin, lets it through


def test_a_part_edited_in_the_store_is_refused_by_name(history, store, superuser):
    execution = _written(history)
    name = parts.object_name(history.tenant, execution, 1)
    envelope = _envelope(store, history, execution, 1)
    payload = bytearray(base64.b64decode(envelope["payload"]))
    payload[-5] ^= 0x01  # one byte of the compressed ranges
    envelope["payload"] = base64.b64encode(bytes(payload)).decode()
    _stored_edit(store, name, json.dumps(envelope))
    _refused(history, execution, f"part 1 \\({name}\\) is not signed by the log's keys", superuser)


def test_a_part_signed_by_another_key_is_refused(history, store, superuser):
    execution = _written(history)
    name = parts.object_name(history.tenant, execution, 2)
    mallory = note.Signer.from_seed(keys.keyring().active.name, b"\x07" * 32)
    forged = _resigned(_envelope(store, history, execution, 2), lambda h, v: (h, v), mallory)
    _stored_edit(store, name, forged)
    _refused(history, execution, "part 2 .* no known key signed", superuser)


def test_a_part_of_another_run_or_index_is_refused(history, store, superuser):
    first, second = _written(history), _written(history)
    other = store.get_object(parts.object_name(history.tenant, first, 0))
    _stored_edit(store, parts.object_name(history.tenant, second, 0), other)
    _refused(history, second, "part 0 .* is another run's", superuser)
    swapped = store.get_object(parts.object_name(history.tenant, second, 1))
    _stored_edit(store, parts.object_name(history.tenant, second, 0), swapped)
    _refused(history, second, "part 0 .* is another run's", superuser)


def test_a_part_written_again_after_a_seal_keeps_the_part_it_wrote(history, store):
    """A task retried after a seal moved the newest checkpoint: its part stays as written
    (rescanned, it would be another checkpoint's, and the write-once store would refuse it)."""
    execution = f"x-{uuid.uuid4().hex[:8]}"
    first = parts.write(history.tenant, execution, 0, COUNT)
    history.amend(history.skills[2], 1, "writes Rust well")
    tlog.seal(history.tenant)
    name = parts.object_name(history.tenant, execution, 0)
    kept = store.get_object(name)
    assert parts.write(history.tenant, execution, 0, COUNT)["kept"] == name
    assert store.get_object(name) == kept and first["checkpoint"]["size"] == 8


def test_parts_of_two_checkpoints_are_refused(history, store, superuser):
    execution = f"x-{uuid.uuid4().hex[:8]}"
    parts.write(history.tenant, execution, 0, COUNT)
    history.amend(history.skills[2], 1, "writes Rust well")
    tlog.seal(history.tenant)
    for index in (1, 2):
        parts.write(history.tenant, execution, index, COUNT)
    _refused(history, execution, "part 1 .* audited checkpoint 10, part 0 checkpoint 8", superuser)


def test_a_signed_part_with_a_wrong_subtree_hash_fails_the_rebuilt_root(history, store):
    """Only the log's key can sign a part; one that holds a wrong subtree hash all the same
    (a fault in the task that wrote it) does not rebuild the signed root: the run says so."""
    execution = _written(history)
    name = parts.object_name(history.tenant, execution, 1)

    def wrong_subtree(header, values):
        scanned, _ = values
        level, _ = scanned[0][3][0]
        scanned[0][3][0] = (level, bytes(32))
        return header, values

    _stored_edit(store, name, _resigned(_envelope(store, history, execution, 1), wrong_subtree))
    run, _ = parts.merge(history.auditor, execution, COUNT)
    assert [f["kind"] for f in run["findings"]] == ["checkpoint_invalid"], run["findings"]
    assert "do not rebuild the root signed at size 8" in run["findings"][0]["detail"]


def _plant(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from shared import cli; sys.exit(cli.main())", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("tampered", [False, True])
def test_plant_audit_part_processes_then_merge_report_as_a_full_audit(
    history, attack, entry_indices, tampered
):
    """Three `plant audit --part` processes with Cloud Run's variables set, the last of them
    (`--then-merge`) merging: the merged run's findings are a full audit's."""
    if tampered:
        first = entry_indices(history.tenant, history.skills[2])[0]
        attack(
            "UPDATE log_entries SET digest = :d WHERE tenant_id = :t AND idx = :i",
            d=bytes(32),
            t=history.tenant,
            i=first,
        )
    alone = runs._audit(history.tenant, "full")
    execution = f"x-{uuid.uuid4().hex[:8]}"
    base = ["audit", "--tenant", history.tenant, "--as", "job"]
    for index in range(COUNT):
        done = _plant(
            *base,
            "--then-merge",
            CLOUD_RUN_TASK_INDEX=str(index),
            CLOUD_RUN_TASK_COUNT=str(COUNT),
            CLOUD_RUN_EXECUTION=execution,
        )
        last = index == COUNT - 1
        assert done.returncode == (3 if tampered and last else 0), done.stderr
        assert json.loads(done.stdout.splitlines()[0])["part"]["index"] == index
    run = json.loads(done.stdout.split("\n", 1)[1])
    assert run["findings"] == alone["findings"]
    assert bool(run["findings"]) == tampered
    again = _plant(*base, "--merge", "--count", str(COUNT), "--execution", execution)
    assert json.loads(again.stdout)["findings"] == alone["findings"]
    assert again.returncode == (3 if tampered else 0)


def test_one_task_claims_the_merge_once_every_part_is_written(history, store):
    execution = f"x-{uuid.uuid4().hex[:8]}"
    for index in range(COUNT - 1):
        parts.write(history.tenant, execution, index, COUNT)
        assert parts.claim(history.tenant, execution, index, COUNT) is False  # not all there
    parts.write(history.tenant, execution, COUNT - 1, COUNT)
    assert parts.claim(history.tenant, execution, 2, COUNT) is True
    assert parts.claim(history.tenant, execution, 0, COUNT) is False  # another task's claim
    assert parts.claim(history.tenant, execution, 2, COUNT) is True  # the same task, retried


def test_a_part_without_its_task_variables_is_a_configuration_error(history, capsys, monkeypatch):
    from shared import cli

    for name in ("CLOUD_RUN_EXECUTION", "CLOUD_RUN_TASK_COUNT", "CLOUD_RUN_TASK_INDEX"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["audit", "--tenant", history.tenant, "--part", "--as", "t"]) == 2
    assert "--execution or CLOUD_RUN_EXECUTION" in capsys.readouterr().err
    monkeypatch.setenv("CLOUD_RUN_EXECUTION", "e1")
    monkeypatch.setenv("CLOUD_RUN_TASK_COUNT", "four")
    assert cli.main(["audit", "--tenant", history.tenant, "--part", "--as", "t"]) == 2
    assert "--count / CLOUD_RUN_TASK_COUNT must be an integer" in capsys.readouterr().err
    assert (
        cli.main(["audit", "--tenant", history.tenant, "--merge", "--count", "2", "--as", "t"]) == 2
    )
    assert "2 of 2 parts missing: part 0 (_audit-parts/" in capsys.readouterr().err
