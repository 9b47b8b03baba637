"""Two sealers at once (a certification and an audit, say): one anchors a checkpoint while the
other reads the latest anchor. The reader must never see a half-written anchor, or it takes
the database for rolled back (a 409 to the client, a false `rollback` finding in an audit);
the soak found exactly that."""

from __future__ import annotations

import threading

from shared.tlog.anchors import DirectoryAnchors
from tests.support.reliability_table import record

PUTS = 300


def _note(size: int) -> str:
    return f"plant-registry.local/log/t\n{size}\n" + "r" * 200_000 + "\n"


def test_a_reader_never_sees_a_half_written_anchor(tmp_path, request):
    store = DirectoryAnchors(tmp_path)
    done = threading.Event()

    def write() -> None:
        for size in range(1, PUTS + 1):
            store.put("t", size, _note(size))
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    reads, torn = 0, []
    while not done.is_set():
        latest = store.latest("t")
        reads += 1
        if latest is not None and latest[1] != _note(latest[0]):
            torn.append((latest[0], len(latest[1])))
    writer.join()
    both = threading.Barrier(2)  # and the same anchor put twice at once is no conflict

    refused: list[Exception] = []

    def put_again() -> None:
        both.wait()
        try:
            store.put("t", PUTS + 1, _note(PUTS + 1))
        except Exception as exc:  # an AnchorConflict here is the bug
            refused.append(exc)

    twice = [threading.Thread(target=put_again) for _ in range(2)]
    for thread in twice:
        thread.start()
    for thread in twice:
        thread.join()
    record(
        request.node,
        "anchor read while another sealer writes it",
        reads,
        f"{len(torn)} half-written anchors seen",
    )
    assert reads > 10 and torn == [], torn[:5]
    assert refused == [] and store.latest("t") == (PUTS + 1, _note(PUTS + 1))
    assert not list(tmp_path.glob("t/.*")), "a temporary file was left behind"
