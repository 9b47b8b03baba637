"""`plant audit --part` and `plant audit --merge`: a full audit in parts (shared/audit/parts.py).

Each Cloud Run task runs `plant audit --tenant T --part` with the variables Cloud Run sets
(``CLOUD_RUN_TASK_INDEX``, ``CLOUD_RUN_TASK_COUNT``, ``CLOUD_RUN_EXECUTION``); with
``--then-merge`` the task that finds every part written merges them (one task wins the
merge: a write-once claim in the anchor store). Locally the same variables, or ``--index``,
``--count`` and ``--execution``, name the part; `plant audit --merge` joins them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any

from shared.errors import ConfigurationError
from shared.security.principal import Principal


def add_arguments(audit: argparse.ArgumentParser) -> None:
    """The part and merge options of `plant audit`."""
    audit.add_argument(
        "--part", action="store_true", help="audit one part (CLOUD_RUN_TASK_INDEX of _COUNT)"
    )
    audit.add_argument("--merge", action="store_true", help="join an execution's parts")
    audit.add_argument("--then-merge", action="store_true", help="--part, then merge if last")
    audit.add_argument("--index", type=int, help="part index (default: CLOUD_RUN_TASK_INDEX)")
    audit.add_argument("--count", type=int, help="parts (default: CLOUD_RUN_TASK_COUNT)")
    audit.add_argument("--execution", help="the parts' run (default: CLOUD_RUN_EXECUTION)")


def _given(value: Any, variable: str, flag: str) -> str:
    """An option, else its Cloud Run variable; neither is a configuration error."""
    if value is not None:
        return str(value)
    if os.environ.get(variable):
        return os.environ[variable]
    raise ConfigurationError(f"say which with {flag} or {variable}")


def _number(value: Any, variable: str, flag: str) -> int:
    try:
        return int(_given(value, variable, flag))
    except ValueError:
        raise ConfigurationError(f"{flag} / {variable} must be an integer") from None


def command(
    args: argparse.Namespace,
    principal: Principal,
    database: contextlib.AbstractContextManager[Any],
) -> int:
    """Write a part (and merge when it is the last), or merge: exit 0 clean, 3 findings, 2
    the parts cannot be merged."""
    from shared.audit import parts
    from shared.cli.progress import Progress

    execution = _given(args.execution, "CLOUD_RUN_EXECUTION", "--execution")
    count = _number(args.count, "CLOUD_RUN_TASK_COUNT", "--count")
    merging = args.merge
    with database:
        try:
            if args.part or args.then_merge:
                index = _number(args.index, "CLOUD_RUN_TASK_INDEX", "--index")
                header = parts.write(args.tenant, execution, index, count)
                print(json.dumps({"part": header}))
                if args.then_merge:
                    merging = parts.claim(args.tenant, execution, index, count)
            if not merging:
                return 0
            progress = Progress("merging", enabled=True if args.progress else None)
            run, started = parts.merge(principal, execution, count, progress)
        except parts.PartsRefused as exc:
            print(f"plant: {exc}", file=sys.stderr)
            return 2
    if not started:
        print(f"an audit is already running: {run['id']}", file=sys.stderr)
    print(json.dumps(run, indent=2))
    return 0 if run.get("finding_count") in (0, None) else 3
