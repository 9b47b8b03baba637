"""The benchmark driver's turn-taking: both sides of a ratio see the same stretch of time."""

from bench import common


def test_interleaved_takes_turns_reversing_each_round(monkeypatch) -> None:
    monkeypatch.setattr(common, "REPEATS", 4)
    calls: list[str] = []

    def side(name: str, seconds: float):
        def run() -> float:
            calls.append(name)
            return seconds

        return run

    product, baseline = common.interleaved(side("p", 2.0), side("b", 1.0))
    assert calls == ["p", "b", "b", "p", "p", "b", "b", "p"]
    assert product["samples"] == [2.0] * 4 and baseline["samples"] == [1.0] * 4
    assert product["median"] == 2.0 and baseline["median"] == 1.0
