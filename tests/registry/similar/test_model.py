"""The embedding model: the pinned files, loaded from the installed wheel with no network,
once per process, giving the vectors stored with this test (issue 28, items 1 and 4)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from shared.registry import embeddings

HERE = Path(__file__).parent
ROOT = HERE.parents[2]


def test_vectors_match_the_reference_vectors_stored_with_the_test() -> None:
    reference = json.loads((HERE / "reference_vectors.json").read_text())
    assert reference["model_id"] == embeddings.MODEL_ID
    texts = [r["text"] for r in reference["vectors"]]
    got = np.array(embeddings.embed(texts))
    want = np.array([r["vector"] for r in reference["vectors"]])
    cosines = (got * want).sum(axis=1) / np.linalg.norm(want, axis=1)
    assert cosines.min() >= 0.99, cosines


def test_vectors_are_384_wide_and_unit_length() -> None:
    vectors = np.array(embeddings.embed(["Python", "", "x " * 1000]))
    assert vectors.shape == (3, embeddings.DIMENSION)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embeddings.embed([]) == []


def test_a_text_gets_the_same_vector_alone_or_in_a_padded_batch() -> None:
    texts = [f"skill number {i} " + "long description " * (i % 7) for i in range(70)]
    batched = embeddings.model().embed(texts, batch_size=32)
    alone = np.array([embeddings.model().embed([t])[0] for t in texts])
    assert (batched * alone).sum(axis=1).min() > 0.99999


def test_the_model_id_names_the_model_and_its_pinned_digest() -> None:
    assert embeddings.MODEL_ID.startswith("all-MiniLM-L6-v2-onnx-int8@sha256:")
    assert embeddings.MODEL_ID.endswith(embeddings.MODEL_SHA256)
    assert embeddings._sha256(embeddings.model_path()) == embeddings.MODEL_SHA256
    assert "site-packages" in str(embeddings.model_path())  # the installed wheel


def test_a_model_file_other_than_the_pinned_one_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "model.onnx"
    other.write_bytes(embeddings.model_path().read_bytes()[:-1] + b"\x00")
    with pytest.raises(embeddings.ModelFileError, match="expected 8199be6f"):
        embeddings.load_model(other)
    with pytest.raises(embeddings.ModelFileError, match="missing"):
        embeddings.load_model(tmp_path / "absent.onnx")


def test_loading_and_embedding_touch_no_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network touched: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    model = embeddings.load_model()
    assert model.embed(["Python coding"]).shape == (1, 384)


@pytest.mark.skipif(sys.platform != "linux", reason="network namespaces are Linux's")
def test_a_process_with_no_network_at_all_loads_and_embeds() -> None:
    """Native code (onnxruntime, the tokenizers crate) is out of a Python monkeypatch's
    reach: here the process has no network interface but loopback, down."""
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare -n is not permitted here")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    code = (
        "from shared.registry import embeddings as e; "
        "v = e.embed(['Python coding']); print(len(v[0]), e.MODEL_ID)"
    )
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["384", embeddings.MODEL_ID]


def test_threads_asking_at_once_load_the_model_once(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[int] = []

    def slow_load() -> object:
        loads.append(1)
        time.sleep(0.2)
        return object()

    monkeypatch.setattr(embeddings, "_model", None)
    monkeypatch.setattr(embeddings, "load_model", slow_load)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(embeddings.model())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1
    assert len({id(g) for g in got}) == 1


def test_a_skill_s_text_is_its_name_then_its_description() -> None:
    assert embeddings.skill_text(" Python  coding ", "Writes\nPython code.") == (
        "Python coding: Writes Python code."
    )
    assert embeddings.skill_text("Python", None) == "Python"
    assert embeddings.skill_text("Python", "  ") == "Python"
