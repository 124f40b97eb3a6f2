"""CPU time the recommendation service spends per request, for comparing changes on a shared machine.

Wall-clock latencies on a machine other jobs share say little; the CPU time the server process is charged per
request says more. This starts ``modalrec serve`` on the run ``bench/serve.py`` trains (under ``--work``),
sends ``--requests`` ``GET /recommend`` (k = 20) and a tenth as many authenticated ``POST /feedback`` clicks
over 8 keep-alive connections (a closed loop: each connection sends its next request once answered), and
prints the server's and this client's CPU time per request, reads and writes apart. With ``--compare SRC``
(a ``modalrec`` source tree, e.g. ``git archive COMMIT modalrec | tar -x -C SRC``) the rounds alternate
between this tree and SRC; ``--compare-without-uvloop`` runs SRC's server without uvloop, as it was before
uvloop became a dependency. Results go to ``--results`` (JSON) with each round's figures and the load average.

    .venv/bin/python bench/serve.py --rates 10 --duration 1   # once: builds the dataset and trains the run
    .venv/bin/python bench/serve_cpu.py [--compare SRC [--compare-without-uvloop]] [--rounds 3]
        [--requests 3000] [--results /tmp/serve_cpu.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve import HOST, Connection, cpu_seconds, free_port, git_commit, wait_healthy  # noqa: E402

CONNECTIONS = 8
REPO = Path(__file__).resolve().parent.parent


def start(run: Path, port: int, token_file: Path, db: Path, source: Path | None, uvloop: bool,
          log: Path) -> subprocess.Popen[bytes]:
    """``modalrec serve`` from this tree, or from ``source`` (put first on the path); uvloop hidden if not
    ``uvloop`` (an import of it then fails, so uvicorn falls back to asyncio's loop)."""
    hide = "" if uvloop else "sys.modules['uvloop'] = None; "
    code = f"import sys; {hide}from modalrec.cli.main import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(source), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    command = [sys.executable, "-c", code, "serve", "--run", str(run), "--host", HOST, "--port", str(port),
               "--token-file", str(token_file), "--db", str(db)]
    with open(log, "wb") as handle:
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=str(run.parent))


async def closed_loop(port: int, token: str, kind: str, count: int, users: int) -> None:
    connections = [await Connection.open(port) for _ in range(CONNECTIONS)]

    async def worker(lane: int) -> None:
        for i in range(lane, count, CONNECTIONS):
            if kind == "read":
                status, body = await connections[lane].get(f"/recommend?user={i % users}&k=20")
                good = status == 200 and len(json.loads(body)["items"]) == 20
            else:
                event = json.dumps({"user": str(i % users), "item": str(i), "event": "click"}).encode()
                status, body = await connections[lane].post_json("/feedback", event, token)
                good = status == 201
            if not good:
                raise SystemExit(f"{kind} answered {status}: {body[:200]!r}")

    try:
        await asyncio.gather(*(worker(lane) for lane in range(CONNECTIONS)))
    finally:
        for connection in connections:
            connection.close()


def measure(server: subprocess.Popen[bytes], port: int, token: str, kind: str, count: int,
            users: int) -> dict[str, float]:
    server_before, client_before, wall_before = cpu_seconds(server.pid), time.process_time(), time.perf_counter()
    asyncio.run(closed_loop(port, token, kind, count, users))
    return {"server_cpu_ms": (cpu_seconds(server.pid) - server_before) / count * 1000,
            "client_cpu_ms": (time.process_time() - client_before) / count * 1000,
            "wall_ms": (time.perf_counter() - wall_before) / count * 1000}


def one_round(label: str, args: argparse.Namespace, source: Path | None, uvloop: bool, round_: int,
              token: str) -> dict[str, Any]:
    port = free_port()
    name = "this" if source is None else "compared"
    db = args.work / f"serve-cpu-{name}-{round_}.sqlite"
    server = start(args.run, port, args.work / "token", db, source, uvloop, args.work / f"serve-cpu-{name}.log")
    try:
        wait_healthy(f"http://{HOST}:{port}", server, timeout=600)
        asyncio.run(closed_loop(port, token, "read", 500, args.users))  # warm-up, not measured
        load = os.getloadavg()[0]
        reads = measure(server, port, token, "read", args.requests, args.users)
        writes = measure(server, port, token, "write", max(args.requests // 10, 1), args.users)
    finally:
        server.terminate()
        server.wait(timeout=30)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    print(f"{label} round {round_ + 1}: reads server {reads['server_cpu_ms']:.3f} ms, client "
          f"{reads['client_cpu_ms']:.3f} ms; writes server {writes['server_cpu_ms']:.3f} ms (load {load:.2f})",
          flush=True)
    return {"label": label, "round": round_ + 1, "load_before": load, "read": reads, "write": writes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/modalrec-bench-serve"),
                        help="bench/serve.py's folder: the run and the token are taken from there")
    parser.add_argument("--items", type=int, default=63_001, help="catalogue size of the run (default 63001)")
    parser.add_argument("--users", type=int, default=5_000, help="users of the run (default 5000)")
    parser.add_argument("--requests", type=int, default=3000, help="reads per round (default 3000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per server (default 3)")
    parser.add_argument("--compare", type=Path, metavar="SRC", help="a modalrec source tree to compare with")
    parser.add_argument("--compare-without-uvloop", action="store_true", help="run SRC's server on asyncio's loop")
    parser.add_argument("--results", type=Path, default=Path("/tmp/serve_cpu.json"), help="JSON results file")
    args = parser.parse_args()
    args.work = args.work.resolve()
    args.run = args.work / f"run-{args.items}"
    if not (args.run / "metrics.json").is_file() or not (args.work / "token").is_file():
        raise SystemExit(f"no run in {args.run}: run bench/serve.py --work {args.work} once first")
    if args.compare is not None and not (args.compare / "modalrec" / "__init__.py").is_file():
        raise SystemExit(f"--compare {args.compare}: expected a folder holding modalrec/")
    if not 1 <= args.rounds <= 20 or not 100 <= args.requests <= 100_000:
        raise SystemExit("--rounds must be in 1..20 and --requests in 100..100000")
    token = (args.work / "token").read_text().strip()
    servers: list[tuple[str, Path | None, bool]] = [("this tree", None, True)]
    if args.compare is not None:
        servers.insert(0, (f"{args.compare}", args.compare.resolve(), not args.compare_without_uvloop))
    rounds = [one_round(label, args, source, uvloop, r, token)
              for r in range(args.rounds) for label, source, uvloop in servers]
    summary = {label: {f"{kind}_{key}": statistics.median(row[kind][key] for row in rounds if row["label"] == label)
                       for kind in ("read", "write") for key in ("server_cpu_ms", "client_cpu_ms")}
               for label, _, _ in servers}
    document = {**git_commit(), "command": " ".join(["bench/serve_cpu.py", *sys.argv[1:]]),
                "compare_without_uvloop": args.compare_without_uvloop, "rounds": rounds, "medians": summary}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(document, indent=2) + "\n")
    for label, medians in summary.items():
        print(f"median {label}: " + ", ".join(f"{key} {value:.3f}" for key, value in medians.items()))
    print(f"results in {args.results}")


if __name__ == "__main__":
    main()
