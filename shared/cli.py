"""`plant`: the operators' command line (tokens, migrations, the local server)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

from shared import auth, config
from shared.errors import ConfigurationError


def _ensure_database() -> object | None:
    """Point DATABASE_URL at the embedded server unless it is already set (local mode)."""
    cfg = config.settings()
    if cfg.database_url or cfg.instance_connection_name:
        return None
    from shared.storage import embedded

    server, uri = embedded.start(cfg.data_dir / "pg")
    os.environ["DATABASE_URL"] = uri
    config.settings.cache_clear()
    return server


def cmd_token(args: argparse.Namespace) -> int:
    cfg = config.settings()
    if cfg.is_cloud:
        raise ConfigurationError("local tokens are not accepted in cloud mode")
    auth.ensure_jwt_key(cfg)
    tokens = auth.LocalTokens.from_settings(cfg)
    try:
        print(tokens.issue(args.sub, args.tenant, args.role, ttl=args.ttl))
    except ValueError as exc:
        print(f"plant token: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    server = _ensure_database()
    from shared.storage import migrate

    if args.downgrade:
        migrate.downgrade(args.revision or "base")
    else:
        migrate.upgrade(args.revision or "head")
    print("migrations applied" if not args.downgrade else "migrations reverted")
    del server
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    server = _ensure_database()
    from shared import bootstrap

    bootstrap.prepare_local()
    port = str(args.port or os.environ.get("PORT") or "8080")
    env = dict(os.environ)
    threads = env.get("THREADS", "8")
    command = [
        sys.executable, "-m", "gunicorn",
        "--bind", f"{args.host}:{port}",
        "--workers", env.get("WORKERS", "1"),
        "--threads", threads,
        "--timeout", "0",
        "--chdir", str(config.ROOT),
        "functions.local:app",
    ]  # fmt: skip
    env.setdefault("PLANT_DB_POOL_SIZE", threads)
    print(f"serving every function on http://{args.host}:{port}/<function>/ (Ctrl-C stops)")
    proc = subprocess.Popen(command, env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGTERM)
        return proc.wait()
    finally:
        del server


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from shared import keys

    cfg = config.settings()
    if cfg.is_cloud:
        raise ConfigurationError(
            "in the cloud, add a new version of the signing-key secret holding the old keys "
            "plus a new one (see README, Deploy to Google Cloud)"
        )
    ring = keys.rotate_local(cfg)
    print(f"active key: {ring.active.vkey}")
    print(f"{len(ring.signers)} key(s) kept for verification")
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from shared import keys

    for vkey in keys.keyring().vkeys:
        print(vkey)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="plant", description="Plant registry operator commands.")
    sub = p.add_subparsers(dest="command", required=True)

    token = sub.add_parser("token", help="print a bearer token the local server accepts")
    token.add_argument("--sub", required=True, help="subject (who is calling)")
    token.add_argument("--role", action="append", required=True, choices=auth.ROLES)
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


if __name__ == "__main__":
    sys.exit(main())
