"""Both anchor stores behave alike: write-once, readable, newest found by size."""

from __future__ import annotations

import pytest

from shared.tlog import anchors
from tests.fakes.gcs import RunningGCS


@pytest.fixture(params=["directory", "bucket"])
def store(request, tmp_path):
    if request.param == "directory":
        yield anchors.DirectoryAnchors(tmp_path / "anchors")
        return
    gcs = RunningGCS()
    yield anchors.BucketAnchors("plant-anchors", client=gcs.client())
    gcs.stop()


def test_anchors_are_write_once_and_the_latest_is_the_largest(store):
    assert store.latest("acme") is None
    store.put("acme", 9, "nine\n")
    store.put("acme", 10, "ten\n")
    store.put("acme", 10, "ten\n")  # the same checkpoint again is fine
    with pytest.raises(anchors.AnchorConflict):
        store.put("acme", 10, "another ten\n")
    assert store.get("acme", 9) == "nine\n"
    assert store.get("acme", 11) is None
    assert store.latest("acme") == (10, "ten\n")
    assert store.latest("acme-b") is None


def test_other_objects_are_write_once_beside_the_anchors_and_not_counted_as_anchors(store):
    name = "_audit-parts/acme/e1/00000.part"
    assert store.get_object(name) is None and not store.has_object(name)
    store.put_object(name, "part zero\n")
    store.put_object(name, "part zero\n")  # the same bytes again (a task retried) is fine
    with pytest.raises(anchors.AnchorConflict, match="holds other data"):
        store.put_object(name, "part zero, edited\n")
    assert store.get_object(name) == "part zero\n" and store.has_object(name)
    store.put("acme", 3, "three\n")
    assert store.sizes("acme") == [3] and store.latest("acme") == (3, "three\n")
