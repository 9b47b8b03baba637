"""The process keyring follows the local key file: a rotation is picked up after the refresh
interval, and a keyring that is half-written, malformed or drops a key is refused while the
last good one stays in use (issue #23, point 4)."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest

from shared.config import Settings, load
from shared.tlog import keys


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def cfg(tmp_path: Path) -> Settings:
    cfg = load(
        {
            "PLANT_DATA_DIR": str(tmp_path),
            "PLANT_SIGNING_KEY_FILE": str(tmp_path / "keys" / "ring.json"),
            "PLANT_KEY_REFRESH_SECONDS": "1",
        }
    )
    keys.ensure_local(cfg)
    return cfg


def _seeds(cfg: Settings) -> list[str]:
    return [k["seed"] for k in json.loads(keys.key_file(cfg).read_text())["keys"]]


def test_a_rotation_is_used_after_the_refresh_interval_and_not_before(cfg):
    clock = Clock()
    cache = keys.KeyringCache(cfg, clock)
    before = cache.get()
    rotated = keys.rotate_local(cfg)
    clock.now += 0.9
    assert cache.get() is before  # within the interval: not even a stat
    clock.now += 0.2
    after = cache.get()
    assert after.active.vkey == rotated.active.vkey != before.active.vkey
    assert after.vkeys == [before.active.vkey, rotated.active.vkey]


def test_the_refresh_interval_defaults_to_a_second_locally_and_a_minute_in_the_cloud():
    assert load({}).key_refresh_seconds == 1.0
    cloud = {"PLANT_ENV": "cloud", "DATABASE_URL": "postgresql://x@h/db"}
    assert load(cloud).key_refresh_seconds == 60.0
    with pytest.raises(Exception, match="PLANT_KEY_REFRESH_SECONDS"):
        load({"PLANT_KEY_REFRESH_SECONDS": "soon"})


@pytest.mark.parametrize(
    "bad",
    [
        b'{"name": "plant-registry.local/log", "keys": [{"seed": "',  # half-written
        b'{"name": "plant-registry.local/log", "keys": []}',
        b"",
        b'{"name": "a name with spaces", "keys": [{"seed": "' + b"A" * 43 + b'="}]}',
    ],
    ids=["half-written", "no-keys", "empty", "bad-key-name"],
)
def test_a_bad_keyring_keeps_the_last_good_one_and_says_why(cfg, caplog, bad):
    clock = Clock()
    cache = keys.KeyringCache(cfg, clock)
    good = cache.get()
    saved = json.loads(keys.key_file(cfg).read_text())
    seeds = _seeds(cfg)
    keys.key_file(cfg).write_bytes(bad)  # in place, as an editor would, not atomically
    clock.now += 2
    with caplog.at_level(logging.ERROR, logger="plant.keys"):
        assert cache.get() is good
        clock.now += 2
        assert cache.get() is good  # the same bad file is neither parsed nor logged again
    assert (cache.error or "").startswith("the signing keyring")
    errors = [r for r in caplog.records if r.name == "plant.keys"]
    assert len(errors) == 1 and "previous one stays in use" in errors[0].getMessage()
    assert not any(seed in caplog.text for seed in seeds)
    # Repaired (the old keys and a new one): the new ring is used and the error is gone.
    repaired = keys.new_document(cfg.log_origin_prefix, saved)
    keys.key_file(cfg).write_text(json.dumps(repaired))
    clock.now += 2
    assert cache.get().vkeys == keys.parse(json.dumps(repaired).encode()).vkeys
    assert cache.error is None


def test_a_keyring_that_drops_a_key_in_use_is_refused(cfg, caplog):
    keys.rotate_local(cfg)
    clock = Clock()
    cache = keys.KeyringCache(cfg, clock)
    good = cache.get()
    document = json.loads(keys.key_file(cfg).read_text())
    document["keys"] = [*document["keys"][1:], keys.new_document("x")["keys"][0]]
    keys.write_private(keys.key_file(cfg), document)
    clock.now += 2
    with caplog.at_level(logging.ERROR, logger="plant.keys"):
        assert cache.get() is good
    assert "drops key(s) " + good.signers[0].key_id_hex in (cache.error or "")
    assert "drops key(s)" in caplog.text


def test_a_missing_key_file_keeps_the_ring_until_it_is_back(cfg):
    clock = Clock()
    cache = keys.KeyringCache(cfg, clock)
    good = cache.get()
    moved = keys.key_file(cfg).rename(keys.key_file(cfg).with_suffix(".away"))
    clock.now += 2
    assert cache.get() is good and "no signing keyring" in (cache.error or "")
    moved.rename(keys.key_file(cfg))
    clock.now += 2
    assert cache.get() is not None and cache.error is None


def test_readers_racing_rotations_always_get_a_whole_ring_and_no_key_is_lost(tmp_path):
    cfg = load(
        {
            "PLANT_DATA_DIR": str(tmp_path),
            "PLANT_SIGNING_KEY_FILE": str(tmp_path / "ring.json"),
            "PLANT_KEY_REFRESH_SECONDS": "0",  # every call looks at the file
        }
    )
    keys.ensure_local(cfg)
    cache = keys.KeyringCache(cfg)
    seen: list[list[str]] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        last: list[str] = []
        try:
            while not stop.is_set():
                ring = cache.get().vkeys
                if ring != last:
                    seen.append(ring)
                    last = ring
        except BaseException as exc:  # reported below
            failures.append(exc)

    def rotate() -> None:
        for _ in range(10):
            keys.rotate_local(cfg)

    readers = [threading.Thread(target=read) for _ in range(4)]
    rotators = [threading.Thread(target=rotate) for _ in range(3)]
    for thread in readers + rotators:
        thread.start()
    for thread in rotators:
        thread.join()
    stop.set()
    for thread in readers:
        thread.join()
    final = keys.load(cfg).vkeys
    assert failures == [] and cache.error is None
    assert len(final) == 31, "a rotation racing another dropped a key"
    assert seen and all(ring == final[: len(ring)] for ring in seen)
    assert cache.get().vkeys == final
    assert not list(Path(keys.key_file(cfg).parent).glob("*.tmp"))
