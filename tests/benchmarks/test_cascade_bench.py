"""The cascade benchmark runs end to end on a small fixture: a bench module that no test
runs broke unseen once (batches' result became a dict with its receipt) and a full
`make bench` printed FAILED for its row."""

from bench import cascade, common


def test_the_cascade_bench_moves_every_dependent(database_url, monkeypatch) -> None:
    monkeypatch.setattr(common, "REPEATS", 1)
    row = cascade.bench_cascade(4)
    details = " ".join(row["details"])
    # the used skill, 2 job roles and 2 agents are moved; the unused skill alone
    assert "entries written per amendment: 5 with dependents, 1 without" in details, details
    assert row["operations"] == 5
