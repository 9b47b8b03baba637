"""`plant`: the operators' command line (tokens, migrations, the local server)."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import sys
from collections.abc import Iterator, Sequence
from typing import IO

from shared import config
from shared.cli import audit_parts, offline
from shared.errors import ConfigurationError
from shared.security import local_tokens
from shared.security.principal import ROLES, Principal


@contextlib.contextmanager
def _database(prepare: bool) -> Iterator[bool]:
    """The database of a command: DATABASE_URL's (or Cloud SQL's) if set, else the embedded one
    under the data directory (the one `make run` serves), started if it is not running and
    stopped by the last process to leave it. Yields whether it is the embedded one.

    ``prepare``: migrate the embedded one to head and create the local keys first (a fresh
    clone's first `plant audit` works), while no other plant process joins or leaves it."""
    cfg = config.settings()
    if cfg.database_url or cfg.instance_connection_name:
        yield False
        return
    from shared.cli import local_database

    def ready(uri: str) -> None:
        os.environ["DATABASE_URL"] = uri
        config.settings.cache_clear()
        if prepare:
            from shared.cli import bootstrap

            bootstrap.prepare_local()

    with local_database.attached(cfg.data_dir / "pg", ready):
        try:
            yield True
        finally:
            from shared.storage import engine

            engine.reset()  # our connections close before the last process out stops it


def cmd_token(args: argparse.Namespace) -> int:
    cfg = config.settings()
    if cfg.is_cloud:
        raise ConfigurationError("local tokens are not accepted in cloud mode")
    local_tokens.ensure_jwt_key(cfg)
    tokens = local_tokens.LocalTokens.from_settings(cfg)
    try:
        print(tokens.issue(args.sub, args.tenant, args.role, ttl=args.ttl))
    except ValueError as exc:
        print(f"plant token: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from shared.storage import migrate

    with _database(prepare=False):
        if args.downgrade:
            migrate.downgrade(args.revision or "base")
        else:
            migrate.upgrade(args.revision or "head")
    print("migrations applied" if not args.downgrade else "migrations reverted")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    # One database connection per worker thread, as in the cloud (terraform/functions.tf).
    os.environ.setdefault("PLANT_DB_POOL_SIZE", os.environ.get("THREADS", "8"))
    with _database(prepare=True) as embedded:
        from shared.cli import bootstrap

        if not embedded:
            bootstrap.prepare_local()
        port = int(args.port or os.environ.get("PORT") or "8080")
        from functions import local
        from shared.web import serving

        print(f"serving every function on http://{args.host}:{port}/<function>/ (Ctrl-C stops)")
        serving.serve(local.app, args.host, port)
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from shared.tlog import keys

    cfg = config.settings()
    if cfg.is_cloud:
        raise ConfigurationError(
            "in the cloud, add a new version of the signing-key secret holding the old keys "
            "plus a new one (see docs/deploy.md)"
        )
    ring = keys.rotate_local(cfg)
    print(f"active key: {ring.active.vkey}")
    print(f"{len(ring.signers)} key(s) kept for verification")
    print(
        f"a running server signs with it within {cfg.key_refresh_seconds:g} s "
        "(PLANT_KEY_REFRESH_SECONDS), with no restart"
    )
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from shared.tlog import keys

    for vkey in keys.keyring().vkeys:
        print(vkey)
    return 0


def _os_user() -> str | None:
    """The login name of the OS user running plant ($LOGNAME, $USER, ..., else the password
    database's entry for the process's user id), or None if there is none."""
    try:
        return getpass.getuser() or None
    except (KeyError, OSError):  # no such variable and no entry for the uid
        return None


def _operator(args: argparse.Namespace) -> Principal:
    """Who a CLI audit or export is for: ``--as NAME``, else the OS user; recorded as
    ``operator:NAME`` (an audit's requested_by)."""
    if args.requester is not None and not args.requester.strip():
        raise ConfigurationError("--as needs a name")
    name = args.requester or _os_user()
    if not name:
        raise ConfigurationError("the OS user has no name: say who you are with --as NAME")
    return Principal(f"operator:{name.strip()}", args.tenant, frozenset({"auditor"}))


def _export(args: argparse.Namespace, principal: Principal, out: IO[bytes]) -> None:
    import json

    from shared.cli.progress import Progress
    from shared.evidence import bundle, reports

    if args.what == "bundle":
        query = {k: v for k, v in (("kind", args.kind), ("entity", args.entity)) if v}
        parts = bundle.build(principal, query)
        head = next(parts)
        total = head["checkpoint"]["size"]
        progress = Progress("bundling", enabled=True if args.progress else None)

        def counted():  # type: ignore[no-untyped-def]
            yield head
            for n, entry in enumerate(parts, start=1):
                progress(min(n, total), total)
                yield entry

        for chunk in bundle.json_chunks(counted()):
            out.write(chunk)
    else:
        query = {k: v for k, v in (("format", args.format), ("kind", args.kind)) if v}
        head, chunks = reports.report(principal, query)
        for chunk in chunks:
            out.write(chunk)
        if args.envelope and "envelope" in head:
            with open(args.envelope, "w", encoding="utf-8") as handle:
                json.dump(head["envelope"], handle)
        print(f"sha256 {head['sha256']}", file=sys.stderr)


def cmd_export(args: argparse.Namespace) -> int:
    principal = _operator(args)
    out = open(args.out, "wb") if args.out else sys.stdout.buffer  # noqa: SIM115
    try:
        with _database(prepare=True):
            _export(args, principal, out)
    finally:
        if args.out:
            out.close()
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    import json

    from shared import audit
    from shared.cli.progress import Progress

    principal = _operator(args)
    if args.part or args.merge or args.then_merge:
        return audit_parts.command(args, principal, _database(prepare=True))
    progress = Progress("auditing", enabled=True if args.progress else None)
    with _database(prepare=True):
        run, started = audit.run(principal, {"mode": args.mode}, progress)
    if not started:
        print(f"an audit is already running: {run['id']}", file=sys.stderr)
    print(json.dumps(run, indent=2))
    return 0 if run.get("finding_count") in (0, None) else 3


def cmd_embeddings_refresh(args: argparse.Namespace) -> int:
    """The batch path of the embeddings refresh (shared/registry/skill_refresh.py): every
    stale skill of the tenant, with no time budget."""
    import json

    from shared.registry import skill_refresh

    with _database(prepare=True):
        done = skill_refresh.refresh(args.tenant, budget=float("inf"))
    print(json.dumps(done.answer()))
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    from shared.registry.certification import catalogue

    for rule in catalogue():
        print(
            f"{rule['id']:<14} {rule['stage']:<8} {','.join(rule['kinds']):<10} "
            f"{rule['description']}\n{'':<34}remediation: {rule['remediation']}"
        )
    return 0


AS_HELP = "who asks (recorded as operator:NAME; default: the OS user, required if it has none)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="plant", description="Plant registry operator commands.")
    sub = p.add_subparsers(dest="command", required=True)

    token = sub.add_parser("token", help="print a bearer token the local server accepts")
    token.add_argument("--sub", required=True, help="subject (who is calling)")
    token.add_argument("--role", action="append", required=True, choices=ROLES)
    token.add_argument("--tenant", required=True)
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token.set_defaults(func=cmd_token)

    mig = sub.add_parser("migrate", help="apply the database migrations")
    mig.add_argument("--revision", help="target revision (default head, or base to downgrade)")
    mig.add_argument("--downgrade", action="store_true")
    mig.set_defaults(func=cmd_migrate)

    keys_cmd = sub.add_parser("keys", help="signing keys").add_subparsers(
        dest="action", required=True
    )
    keys_cmd.add_parser("rotate", help="add a new active signing key").set_defaults(
        func=cmd_keys_rotate
    )
    keys_cmd.add_parser("list", help="print the public keys (vkeys)").set_defaults(
        func=cmd_keys_list
    )

    offline.add_parsers(sub)

    export = sub.add_parser("export", help="write a report or an evidence bundle")
    export.add_argument("what", choices=("report", "bundle"))
    export.add_argument("--tenant", required=True)
    export.add_argument("--format", choices=("json", "csv", "pdf"), default="json")
    export.add_argument("--kind")
    export.add_argument("--entity")
    export.add_argument("--out", help="file to write (default: standard output)")
    export.add_argument("--envelope", help="JSON/CSV report: write its DSSE envelope here")
    export.add_argument("--progress", action="store_true")
    export.add_argument("--as", dest="requester", metavar="NAME", help=AS_HELP)
    export.set_defaults(func=cmd_export)

    audit = sub.add_parser("audit", help="run an audit of one tenant")
    audit.add_argument("--tenant", required=True)
    audit.add_argument("--mode", choices=("incremental", "full"), default="incremental")
    audit.add_argument("--progress", action="store_true", help="always show the progress bar")
    audit.add_argument("--as", dest="requester", metavar="NAME", help=AS_HELP)
    audit_parts.add_arguments(audit)
    audit.set_defaults(func=cmd_audit)

    embeddings = sub.add_parser("embeddings", help="skill embeddings (similar skills)")
    refresh = embeddings.add_subparsers(dest="embeddings_command", required=True).add_parser(
        "refresh", help="embed every live skill whose vector is missing or stale"
    )
    refresh.add_argument("--tenant", required=True)
    refresh.set_defaults(func=cmd_embeddings_refresh)

    sub.add_parser("rules", help="print the rule catalogue").set_defaults(func=cmd_rules)

    serve = sub.add_parser("serve", help="serve every function locally")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=cmd_serve)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigurationError as exc:
        print(f"plant: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130  # Ctrl-C: what was running has been cleaned up on the way here


if __name__ == "__main__":
    sys.exit(main())
