"""`plant verify BUNDLE --witness VKEY ... --quorum K` (issue 25, item 5): K valid
cosignature/v1 lines by the named witnesses on the bundle's checkpoint, or a failure naming
each witness and why."""

from __future__ import annotations

import json
import os
import time

from shared import cli, tlog
from shared.integrity import cosignature
from shared.storage import cosignatures, tree
from shared.storage.engine import database
from shared.tlog import keys


def _witness(name: str) -> cosignature.WitnessSigner:
    return cosignature.WitnessSigner.from_seed(name, os.urandom(32))


def test_quorum_of_witnesses_on_the_bundles_checkpoint(seeded, tmp_path, capsys):
    tlog.seal(seeded.tenant)
    w1, w2, w3 = _witness("w1"), _witness("w2"), _witness("w3")
    with database().transaction(seeded.tenant) as conn:
        last = tree.latest_checkpoint(conn)
        assert last is not None
        text = last.note[: last.note.index("\n\n") + 1]
        for signer in (w1, w2):
            line = signer.cosign(text, int(time.time())).line
            cosignatures.insert(conn, last.size, signer.name, line)
    out = tmp_path / "bundle.json"
    assert cli.main(["export", "bundle", "--tenant", seeded.tenant, "--out", str(out)]) == 0
    capsys.readouterr()
    key = keys.keyring().active.vkey

    def verify(*witnesses: str, quorum: int, path=out) -> tuple[int, str]:
        args = ["verify", str(path), "--key", key, "--quorum", str(quorum)]
        for vkey in witnesses:
            args += ["--witness", vkey]
        code = cli.main(args)
        return code, capsys.readouterr().out

    code, printed = verify(w1.vkey, w2.vkey, quorum=2)
    assert code == 0, printed
    assert printed.splitlines()[-1].startswith("VERIFIED: ")
    code, printed = verify(w1.vkey, w3.vkey, quorum=2)
    assert code == 1
    assert "FAIL  witness quorum: 1 of the 2 cosignatures required verify" in printed
    assert "w3: no cosignature by this witness on the checkpoint" in printed
    assert verify(w1.vkey, w3.vkey, quorum=1)[0] == 0
    # A witness's line edited (its timestamp) no longer verifies: that witness is named.
    bundle = json.loads(out.read_bytes())
    note_text = bundle["checkpoint"]["note"]
    mine = next(line for line in note_text.splitlines() if line.startswith("— w2 "))
    forged = cosignature.parse_cosignature(mine)
    edited = cosignature.Cosignature("w2", forged.key_id, forged.timestamp + 1, forged.signature)
    bundle["checkpoint"]["note"] = note_text.replace(mine + "\n", edited.line)
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(bundle))
    code, printed = verify(w1.vkey, w2.vkey, quorum=2, path=tampered)
    assert code == 1
    assert "w2: its cosignature does not verify over this checkpoint" in printed
    # Nonsense arguments are refused, not ignored.
    code, printed = verify(w1.vkey, quorum=2)
    assert code == 1 and "the quorum must be between 1 and the number of witnesses" in printed
