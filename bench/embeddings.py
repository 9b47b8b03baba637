"""Embedding throughput (issue 28, Must show): skills/s in one process beside tokenization
alone, plus the model's load time and resident memory.

``bench_embeddings(n)`` returns a result in bench/common.py's shape (product: embedding;
baseline: the tokenizer alone on the same texts), for bench/run.py to list once the feature
is wired; ``python -m bench.embeddings [n]`` prints it. No database: the texts are the
labelled set's (tests/registry/similar/labelled_skills.json), repeated to ``n``.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.common import interleaved, result, side  # noqa: E402

LABELLED = HERE.parent / "tests" / "registry" / "similar" / "labelled_skills.json"


def bench_embeddings(n: int = 1000) -> dict[str, Any]:
    from shared.registry import embeddings

    started = time.perf_counter()
    model = embeddings.model()
    load = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    skills = json.loads(LABELLED.read_text())["skills"]
    texts = [embeddings.skill_text(s["name"], s["description"]) for s in skills]
    texts = (texts * (n // len(texts) + 1))[:n]
    model.embed(texts[:64])  # warm the session's arena

    def embed() -> float:
        t = time.perf_counter()
        model.embed(texts)
        return time.perf_counter() - t

    def tokenize() -> float:
        t = time.perf_counter()
        for start in range(0, n, embeddings.BATCH_SIZE):
            model.tokenizer.encode_batch(texts[start : start + embeddings.BATCH_SIZE])
        return time.perf_counter() - t

    emb, tok = interleaved(embed, tokenize)
    return result(
        "skill embeddings (one process)",
        side(emb, n, "skills/s", label=f"embed, batches of {embeddings.BATCH_SIZE}"),
        side(tok, n, "skills/s", label="tokenize alone"),
        operations=n,
        details=[
            f"model {embeddings.MODEL_ID}",
            f"load {load:.2f} s; peak RSS after load {rss:.0f} MiB",
        ],
    )


if __name__ == "__main__":
    out = bench_embeddings(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
    print(
        f"{out['name']}: {out['product']['rate']:.0f} skills/s embedding, "
        f"{out['baseline']['rate']:.0f} skills/s tokenizing; " + "; ".join(out["details"])
    )
