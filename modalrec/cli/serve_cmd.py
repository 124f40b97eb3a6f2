"""The ``serve`` command (the recommendation service) and ``ab`` (A/B report and offline simulation)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from modalrec.cli.commands import device_value
from modalrec.errors import ModalrecError


def add_serve_parsers(sub: Any) -> None:
    """Add ``serve`` and ``ab`` (with ``report`` and ``simulate``) to the top-level subparsers."""
    from modalrec.serve.ab import DEFAULT_SALT

    serve = sub.add_parser("serve", help="serve recommendations over HTTP (FastAPI; docs at /docs, a page at /)")
    serve.add_argument("--run", required=True, metavar="RUN_DIR", help="trained run (arm A)")
    serve.add_argument("--run-b", metavar="RUN_DIR", help="a second run for an A/B test (arm B)")
    _experiment_arguments(serve, DEFAULT_SALT)
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1: this machine only; any other address makes the "
                            "service require a write token, generated at start unless given)")
    serve.add_argument("--token-file", type=Path, metavar="FILE",
                       help="the write token (Authorization: Bearer TOKEN): read from FILE, or generated and written "
                            "there (mode 0600) if FILE does not exist; default $MODALREC_TOKEN, else generated into "
                            "RUN_DIR/serve-token when bound beyond loopback")
    serve.add_argument("--protect-reads", action="store_true",
                       help="require the token for reads too (the page: open /?token=TOKEN once)")
    serve.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                       help="an origin (scheme://host:port) whose pages may call the service (repeatable; "
                            "default none: CORS off)")
    serve.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                       help="a further Host name the service answers to, e.g. behind a proxy (repeatable)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--db", metavar="FILE", help="feedback database (default RUN_DIR/feedback.sqlite)")
    serve.add_argument("--allow-images-from", action="append", default=[], metavar="DIR",
                       help="a further folder POST /items may read image paths from (repeatable)")
    serve.add_argument("--max-upload-mb", type=float, default=8.0, metavar="MB",
                       help="largest picture POST /items accepts, in MiB (default 8; bigger uploads get 413)")
    serve.add_argument("--exact-below", type=int, default=20_000, metavar="N",
                       help="search catalogues under N items exactly, larger ones with HNSW (default 20000)")
    serve.add_argument("--device", type=device_value, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.add_argument("--items", metavar="ITEMS.csv",
                       help="titles and pictures from this items table (columns item_id,title[,image], pictures "
                            "relative to its folder), e.g. for a run trained on an MMRec-layout dataset")
    serve.add_argument("--page-feedback", action="store_true",
                       help="the web page logs impressions and clicks by default (off unless given; a visitor can "
                            "still untick it)")
    serve.set_defaults(handler=_serve)

    ab = sub.add_parser("ab", help="A/B tests: the per-arm report, and an offline simulation")
    ab_sub = ab.add_subparsers(dest="ab_command", required=True, metavar="SUBCOMMAND")
    report = ab_sub.add_parser("report", help="per-arm users, impressions, clicks, CTR with 95%% CI, lift, p-value")
    report.add_argument("--db", required=True, metavar="FILE", help="the service's feedback database")
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    report.set_defaults(handler=_ab_report)

    simulate = ab_sub.add_parser("simulate", help="replay held-out test interactions as clicks against both arms")
    simulate.add_argument("--run", required=True, metavar="RUN_DIR", help="arm A")
    simulate.add_argument("--run-b", required=True, metavar="RUN_DIR", help="arm B")
    _experiment_arguments(simulate, DEFAULT_SALT)
    simulate.add_argument("--db", required=True, metavar="FILE", help="feedback database to write (appended to)")
    simulate.add_argument("-k", type=int, default=20, help="recommendations shown per user, 1..500 (default 20)")
    simulate.add_argument("--device", type=device_value, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    simulate.set_defaults(handler=_ab_simulate)


def _experiment_arguments(parser: argparse.ArgumentParser, salt: str) -> None:
    parser.add_argument("--split", type=float, default=50.0, metavar="PERCENT",
                        help="percentage of users routed to arm B (default 50)")
    parser.add_argument("--salt", default=salt, help=f"experiment salt of the routing hash (default {salt})")


def _settings(args: argparse.Namespace, **extra: Any) -> Any:
    from modalrec.serve.service import ServiceSettings

    return ServiceSettings(split_b=args.split, salt=args.salt, db=Path(args.db) if args.db else None,
                           device=args.device, **extra)


def _runs(args: argparse.Namespace) -> list[Path]:
    return [Path(args.run)] + ([Path(args.run_b)] if args.run_b else [])


def _serve(args: argparse.Namespace) -> int:
    from modalrec.serve.app import serve
    from modalrec.serve.service import load_service
    from modalrec.serve.index import IndexConfig

    if not 0 < args.port < 65536:
        raise ModalrecError(f"serve: --port must be in 1..65535, got {args.port}")
    if not 0 < args.max_upload_mb <= 1024:
        raise ModalrecError(f"serve: --max-upload-mb must be in (0, 1024], got {args.max_upload_mb:g}")
    settings = _settings(args, index=IndexConfig(exact_below=args.exact_below),
                         image_roots=tuple(Path(p) for p in args.allow_images_from),
                         max_upload_bytes=max(1, int(args.max_upload_mb * (1 << 20))),
                         items_file=Path(args.items) if args.items else None, page_feedback=args.page_feedback)
    service = load_service(_runs(args), settings)
    serve(service, args.host, args.port, access_log=args.access_log, access=_access_policy(args))
    return 0


def _access_policy(args: argparse.Namespace) -> Any:
    """The token (printed once when the service made it up) and the hosts and origins the service accepts."""
    from modalrec.serve.auth import AccessPolicy, allowed_hosts, resolve_token

    source = resolve_token(args.host, args.token_file, Path(args.run), protect_reads=args.protect_reads)
    if source.made_up:
        shown = f"[{args.host}]" if ":" in args.host else args.host
        print(f"modalrec serve: write token {source.token} (saved to {source.origin}, mode 0600); send it as "
              f"'Authorization: Bearer TOKEN'; the page with it: http://{shown}:{args.port}/?token={source.token}",
              file=sys.stderr, flush=True)
    elif source.token is not None:
        print(f"modalrec serve: writes need the token from {source.origin}", file=sys.stderr, flush=True)
    return AccessPolicy(token=source.token, protect_reads=args.protect_reads,
                        hosts=allowed_hosts(args.host, tuple(name.lower() for name in args.allowed_host)),
                        cors_origins=tuple(origin.rstrip("/") for origin in args.cors_origin))


def _ab_report(args: argparse.Namespace) -> int:
    from modalrec.serve.ab import ab_report, format_report
    from modalrec.serve.feedback import open_existing

    with open_existing(args.db) as store:
        report = ab_report(store)
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return 0


def _ab_simulate(args: argparse.Namespace) -> int:
    from modalrec.serve.ab import ab_report, format_report, simulate
    from modalrec.serve.service import MAX_K, load_service

    if not 1 <= args.k <= MAX_K:
        raise ModalrecError(f"ab simulate: -k must be in 1..{MAX_K}, got {args.k}")
    service = load_service(_runs(args), _settings(args))
    result = simulate(service.recommended_ids, held_out_test(service), args.k, service.feedback)
    print(f"simulated {result.users} users: {result.impressions} impressions, {result.clicks} clicks "
          f"(held-out test interactions as clicks), written to {args.db}")
    print(format_report(ab_report(service.feedback)))
    service.feedback.close()
    return 0


def held_out_test(service: Any) -> list[tuple[str, set[str]]]:
    """Per user with test interactions (in arm A's split): the user id and their test item ids."""
    run = service.arms["A"].run
    test = run.split.test
    users = run.dataset.user_ids.external
    items = run.dataset.item_ids.external
    by_user: dict[str, set[str]] = {}
    for user, item in zip(test.users.tolist(), test.items.tolist(), strict=True):
        by_user.setdefault(str(users[user]), set()).add(str(items[item]))
    return sorted(by_user.items())
