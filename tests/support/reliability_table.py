"""A pytest plugin: the attack/fault table printed at the end of a run.

A test records what it tried with ``record(request.node, attack, tries, outcome, lost)`` (or
``tally`` once per try); each lands in the item's ``user_properties`` as
``("reliability", {"attack", "tries", "outcome", "lost"})``. At the end of the session the rows
of every test that ran are merged by attack and printed as a markdown table, and written to
``.reliability-table.md`` at the repository root. A row whose test failed says FAILED.
"""

from __future__ import annotations

from typing import Any

import pytest

KEY = "reliability"
TABLE_FILE = ".reliability-table.md"


def record(node: pytest.Item, attack: str, tries: int, outcome: str, lost: int = 0) -> None:
    node.user_properties.append(
        (KEY, {"attack": attack, "tries": int(tries), "outcome": outcome, "lost": int(lost)})
    )


def tally(node: pytest.Item, attack: str, outcome: str, lost: int = 0) -> None:
    """Count one more try of ``attack`` (property tests call this once per example)."""
    for name, row in node.user_properties:
        if name == KEY and row["attack"] == attack:
            row["tries"] += 1
            row["lost"] += lost
            return
    record(node, attack, 1, outcome, lost)


class Table:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.rows: dict[str, dict[str, Any]] = {}
        self.failed: set[str] = set()
        self.xfailed: dict[str, str] = {}

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self.failed.add(report.nodeid)
        if hasattr(report, "wasxfail"):
            self.xfailed[report.nodeid] = report.wasxfail
        if report.when != "teardown":
            return
        for name, value in report.user_properties:
            if name != KEY:
                continue
            outcome = value["outcome"]
            if report.nodeid in self.failed:
                outcome = f"FAILED ({report.nodeid.split('::')[-1]}): {outcome}"
            elif report.nodeid in self.xfailed:
                outcome = f"KNOWN BUG ({self.xfailed[report.nodeid]}): {outcome}"
            row = self.rows.setdefault(value["attack"], {"tries": 0, "lost": 0, "outcomes": []})
            row["tries"] += value["tries"]
            row["lost"] += value["lost"]
            if outcome not in row["outcomes"]:
                row["outcomes"].append(outcome)

    def markdown(self) -> list[str]:
        lines = ["| attack/fault | tries | outcome | data lost |", "|---|---:|---|---:|"]
        for attack, row in self.rows.items():
            outcome = "; ".join(row["outcomes"]).replace("|", "\\|")
            lines.append(f"| {attack} | {row['tries']} | {outcome} | {row['lost']} |")
        return lines

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.rows:
            return
        lines = self.markdown()
        terminalreporter.write_sep("=", "reliability: attacks and faults")
        for line in lines:
            terminalreporter.write_line(line)
        path = self.config.rootpath / TABLE_FILE
        path.write_text("\n".join(lines) + "\n")
        terminalreporter.write_line(f"(written to {path})")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(Table(config), "reliability-table")
