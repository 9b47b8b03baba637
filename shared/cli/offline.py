"""The offline checks of `plant` (verify, verify-report, verify-receipt, verify-current):
each reads files and pinned keys only, never a database or a server, so an auditor runs them
on a machine of their own; ``add_parsers`` declares them on the ``plant`` parser."""

from __future__ import annotations

import argparse
import sys


def _key_options(parser: argparse.ArgumentParser, what: str = "vkey") -> None:
    """--key and --key-file, as every offline check takes its pinned keys (``_pinned_keys``)."""
    parser.add_argument("--key", action="append", help=f"pinned {what} (repeatable)")
    parser.add_argument(
        "--key-file", action="append", help=f"file of pinned {what}s, one a line (repeatable)"
    )


def _pinned_keys(args: argparse.Namespace) -> list[str]:
    """The vkeys given with --key, then those in each --key-file (one a line, as `plant keys
    list` prints them; blank lines and lines starting with '#' are skipped)."""
    vkeys = list(args.key or ())
    for path in args.key_file or ():
        with open(path, encoding="utf-8") as handle:
            lines = [line.strip() for line in handle]
        vkeys += [line for line in lines if line and not line.startswith("#")]
    return vkeys


def cmd_verify(args: argparse.Namespace) -> int:
    """Exit 0 only if every check holds against a pinned key; 1 otherwise, failures named."""
    import json

    from shared.cli.progress import Progress
    from shared.evidence import verify as bundle_verify

    try:
        vkeys = _pinned_keys(args)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"plant verify: cannot read the key file: {exc}", file=sys.stderr)
        return 1
    try:
        with open(args.bundle, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        print(f"plant verify: cannot read {args.bundle}: {exc}", file=sys.stderr)
        return 1
    progress = Progress("verifying", enabled=True if args.progress else None)
    report = bundle_verify.verify(
        raw, vkeys, progress=progress, witnesses=args.witness or (), quorum=args.quorum
    )
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print("\n".join(report.lines()))
    return 0 if report.ok else 1


def cmd_verify_report(args: argparse.Namespace) -> int:
    """Exit 0 only if ENVELOPE is signed by a pinned report key and names FILE's exact bytes;
    1 otherwise, the failure named."""
    import json

    from shared.evidence.report_signing import ReportNotVerified, verify_detached

    try:
        vkeys = _pinned_keys(args)
        with open(args.file, "rb") as handle:
            data = handle.read()
        with open(args.envelope, "rb") as handle:
            envelope = json.loads(handle.read())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"plant verify-report: cannot read: {exc}", file=sys.stderr)
        return 1
    if not vkeys:
        print("plant verify-report: FAILED: no --key pinned", file=sys.stderr)
        return 1
    try:
        statement = verify_detached(data, envelope, vkeys)
    except ReportNotVerified as exc:
        print(f"FAILED: {exc}")
        return 1
    checkpoint = statement.get("checkpoint") or {}
    print(
        f"VERIFIED: {args.file} is the {statement.get('format')} report of tenant "
        f"{statement.get('tenant')} generated at {statement.get('generated_at')} "
        f"(checkpoint size {checkpoint.get('size')}, root {checkpoint.get('root')}), "
        f"sha256 {statement['sha256']}"
    )
    return 0


def cmd_verify_current(args: argparse.Namespace) -> int:
    """Exit 0 only if every step of a current-version proof holds against a pinned key;
    1 otherwise, the failing step named."""
    from shared.evidence import current

    try:
        vkeys = _pinned_keys(args)
        with open(args.proof, "rb") as handle:
            raw = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"plant verify-current: cannot read {args.proof}: {exc}", file=sys.stderr)
        return 1
    try:
        found = current.check(
            raw,
            vkeys,
            expect_status=args.expect_status,
            expect_version=args.expect_version,
            max_age=args.max_age,
        )
    except current.StepFailed as exc:
        print(f"FAIL  {exc.step}: {exc.message}")
        print("NOT VERIFIED")
        return 1
    head = found.head
    what = (
        "absent from the map"
        if head is None
        else f"{head.kind} version {head.version}, status {head.status}"
        + ("" if head.certificate_index is None else f", certificate at {head.certificate_index}")
    )
    print(
        f"VERIFIED: {found.entity_id} is {what} at checkpoint size {found.checkpoint_size}, "
        f"sealed {found.commit.sealed_at:%Y-%m-%dT%H:%M:%SZ}"
    )
    return 0


def cmd_verify_receipt(args: argparse.Namespace) -> int:
    """Exit 0 only if a pinned key signed the receipt for this origin, index and entry."""
    import json

    from shared.evidence.receipt import verify_receipt

    try:
        vkeys = _pinned_keys(args)
        with open(args.receipt, "rb") as handle:
            raw = handle.read()
        entry = None
        if args.entry is not None:
            with open(args.entry, "rb") as handle:
                entry = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"plant verify-receipt: {exc}", file=sys.stderr)
        return 1
    if (entry is None) == (args.leaf_hash is None):
        print("plant verify-receipt: give exactly one of --leaf-hash and --entry", file=sys.stderr)
        return 2
    report = verify_receipt(
        raw, vkeys, args.origin, args.index, leaf_hash=args.leaf_hash, entry=entry
    )
    print(json.dumps(report.as_dict(), indent=2) if args.json else "\n".join(report.lines()))
    return 0 if report.ok else 1


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare the four offline checks on ``plant``'s subcommands (``sub``)."""
    verify = sub.add_parser("verify", help="verify an evidence bundle offline")
    verify.add_argument("bundle", help="path of the bundle (JSON)")
    _key_options(verify)
    verify.add_argument(
        "--witness", action="append", help="a witness's vkey (cosignature/v1; repeatable)"
    )
    verify.add_argument(
        "--quorum",
        type=int,
        default=0,
        help="require this many valid cosignatures by the --witness keys on the checkpoint",
    )
    verify.add_argument("--json", action="store_true", help="machine-readable result")
    verify.add_argument("--progress", action="store_true", help="always show the progress bar")
    verify.set_defaults(func=cmd_verify)

    check = sub.add_parser(
        "verify-report", help="check a JSON or CSV report against its detached DSSE envelope"
    )
    check.add_argument("file", help="the report as downloaded")
    check.add_argument("envelope", help="its envelope (JSON; X-Report-Envelope decoded)")
    _key_options(check, "report vkey")
    check.set_defaults(func=cmd_verify_report)

    receipt = sub.add_parser("verify-receipt", help="verify a write's receipt offline")
    receipt.add_argument("receipt", help="the receipt's JSON, or a write's response holding it")
    _key_options(receipt)
    receipt.add_argument("--origin", required=True, help="the log's origin (GET /log/keys)")
    receipt.add_argument("--index", required=True, type=int, help="the entry's log index")
    receipt.add_argument("--leaf-hash", help="the entry's leaf hash, base64")
    receipt.add_argument("--entry", help="file of the entry's exact bytes (instead)")
    receipt.add_argument("--json", action="store_true", help="machine-readable result")
    receipt.set_defaults(func=cmd_verify_receipt)

    current = sub.add_parser("verify-current", help="verify a current-version proof offline")
    current.add_argument("proof", help="path of the proof (JSON, GET .../proof/current)")
    _key_options(current)
    current.add_argument("--expect-status", help="fail unless the head has this status")
    current.add_argument("--expect-version", type=int, help="fail unless this is current")
    current.add_argument(
        "--max-age", type=int, metavar="SECONDS", help="fail if the map commit is older"
    )
    current.set_defaults(func=cmd_verify_current)
