"""Load test of the recommendation service on loopback: /recommend and POST /feedback at fixed rates
against 63,001 items.

Builds (once, under --work) a synthetic dataset of clustered item features with 63,001 items (seeded),
trains a VBPR run on it for two epochs, starts ``modalrec serve`` on a free 127.0.0.1 port in a subprocess
with a write token (``--token-file``), checks the served top-20 against exact search, then, for each rate
of ``--rates``, sends that many requests per second for ``--duration`` seconds (an open loop: each request
leaves at its scheduled time, whether or not earlier ones have answered). ``--write-share`` of them
(default 5%) are authenticated ``POST /feedback`` clicks, the rest ``GET /recommend``. It prints latency
percentiles, errors and the achieved rate, measured by the client (from the scheduled send time, which
counts any queueing, and from the actual send) and by the server (``/metrics``), with the CPU time per request
of the server and of this load generator (both share the machine), and the machine's load average and the CPUs
that other processes used meanwhile (the machine may be shared: what they take, the server may wait for), and
writes all of it, with the date, commit and machine, to ``--results`` (JSON);
``bench/serving_report.py`` renders that file as ``docs/benchmarks/serving.md``.

With ``--stall-log DIR``, the server and this load generator each run the event-loop watchdog of
:mod:`modalrec.serve.watchdog` (``DIR/server.jsonl``, ``DIR/client.jsonl``): every stall of either loop over
50 ms is logged with the loop thread's stack and whether it was computing, waiting for a CPU or asleep, and
each rate's results count the stalls of both sides.

Bounded: ``rate x duration`` requests per rate at most, to 127.0.0.1 only; answers still missing 60 s after
the last request was sent are counted as errors (``unanswered``), and each rate's loop stops itself after
``duration + 90`` seconds whatever happens.

    .venv/bin/python bench/serve.py [--rates 200,500] [--duration 60] [--items 63001] [--work DIR]
        [--results docs/benchmarks/results/serving.json]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import json
import os
import platform
import secrets
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

HOST = "127.0.0.1"  # loopback only
DRAIN_SECONDS = 60  # after the last request is sent, how long the answers may take; later ones count as errors


def build_dataset(folder: Path, num_items: int, num_users: int, seed: int = 0) -> Path:
    """MMRec layout: users each drawn to one of 200 item clusters; items' 64-d features reveal their cluster."""
    if (folder / "bench.inter").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    clusters = 200
    cluster_of = rng.integers(0, clusters, num_items)
    centres = rng.normal(size=(clusters, 64))
    features = (centres[cluster_of] + 0.7 * rng.normal(size=(num_items, 64))).astype(np.float32)
    members = [np.flatnonzero(cluster_of == c) for c in range(clusters)]
    lines = ["userID\titemID\tx_label"]
    for user in range(num_users):
        taste = rng.integers(0, clusters, 2)
        pool = np.concatenate([members[c] for c in taste])
        picks = rng.choice(pool, size=min(len(pool), int(rng.integers(10, 40))), replace=False)
        labels = np.zeros(len(picks), dtype=int)
        labels[-2], labels[-1] = 1, 2
        lines += [f"{user}\t{item}\t{label}" for item, label in zip(picks, labels)]
    (folder / "bench.inter").write_text("\n".join(lines) + "\n")
    np.save(folder / "image_feat.npy", features)
    return folder


def train(data: Path, run: Path) -> Path:
    if (run / "metrics.json").is_file():
        return run
    command = [sys.executable, "-m", "modalrec", "train", "--data", str(data), "--model", "vbpr", "--out", str(run),
               "--overwrite", "--set", "epochs=2", "--set", "threads=1", "--set", "progress=false",
               "--set", "eval.ks=[20]"]
    subprocess.run(command, check=True, timeout=1800)
    return run


def get_json(base: str, path: str, **params: object) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{base}{path}{query}", timeout=10) as response:
        return json.load(response)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time all processes of the machine have used so far, summed over CPUs (Linux /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def start_server(run: Path, port: int, log_file: Path, token_file: Path,
                 stall_log: Path | None = None) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "modalrec", "serve", "--run", str(run), "--host", HOST, "--port", str(port),
               "--token-file", str(token_file)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if stall_log is not None:
        from modalrec.serve.watchdog import STALL_LOG_ENV

        env[STALL_LOG_ENV] = str(stall_log)
    with open(log_file, "wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def wait_healthy(base: str, server: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode}")
        try:
            return dict(get_json(base, "/health"))
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.5)
    raise SystemExit(f"the server did not answer /health within {timeout:.0f} s")


def served_recall(base: str, run: Path, users: np.ndarray, k: int) -> float:
    """Share of the exact top-k (seen items excluded) that /recommend returns, over ``users``."""
    from modalrec.train.run import load_run

    loaded = load_run(run)
    vectors = loaded.model.embeddings()
    user_vectors, item_vectors = vectors.users.numpy(), vectors.items.numpy()
    seen = loaded.split.matrix("train")
    found = []
    lookup = loaded.dataset.item_ids.lookup()
    for user in users:
        scores = item_vectors @ user_vectors[user]
        scores[seen.indices[seen.indptr[user]:seen.indptr[user + 1]]] = -np.inf
        exact = set(np.argpartition(-scores, k)[:k].tolist())
        external = str(loaded.dataset.user_ids.external[user])
        items = get_json(base, "/recommend", user=external, k=k)["items"]
        found.append(len(exact & {lookup[row["item"]] for row in items}) / k)
    return float(np.mean(found))


class Connection:
    """One keep-alive HTTP/1.1 connection; a deliberately small client, so the load costs little CPU."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def get(self, target: str) -> tuple[int, bytes]:
        self.writer.write(f"GET {target} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        return await self._answer()

    async def post_json(self, target: str, body: bytes, token: str) -> tuple[int, bytes]:
        self.writer.write(f"POST {target} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {token}\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        return await self._answer()

    async def _answer(self) -> tuple[int, bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


@dataclass(frozen=True)
class LoadResult:
    rate: float  # requests per second asked for
    requests: int
    writes: int  # of which POST /feedback
    ok: int
    errors: dict[str, int]
    seconds: float
    achieved_rate: float  # answered requests per second
    p50: float  # milliseconds from the scheduled send time, reads and writes together
    p95: float
    p99: float
    max: float
    service_p50: float  # milliseconds from the actual send (no queueing for a connection or the client's loop)
    service_p99: float
    read_p99: float  # GET /recommend alone, from the scheduled send time
    write_p50: float  # POST /feedback alone, from the scheduled send time
    write_p99: float


def _percentiles(values: np.ndarray, points: list[float]) -> list[float]:
    done = values[~np.isnan(values)]
    return [float(p) for p in np.percentile(done, points)] if len(done) else [float("nan")] * len(points)


async def load(port: int, users: list[str], items: list[str], rate: float, duration: float, k: int, token: str,
               write_share: float, connections: int = 32) -> LoadResult:
    """Open-loop load: request i is due at start + i / rate and takes the next free connection; its latency
    counts from when it was due, so a slow server cannot hide its queue (no coordinated omission).
    A seeded ``write_share`` of the requests are authenticated POST /feedback clicks."""
    total = int(rate * duration)
    latencies = np.full(total, np.nan)
    service = np.full(total, np.nan)
    errors: dict[str, int] = {}
    rng = np.random.default_rng(1)
    picks = rng.integers(0, len(users), total)
    writes = rng.random(total) < write_share
    clicked = rng.integers(0, len(items), total)
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await Connection.open(port))
    start = time.perf_counter() + 0.2

    async def one(i: int) -> None:
        due = start + i / rate
        connection = await idle.get()
        try:
            sent = time.perf_counter()
            if writes[i]:
                event = {"user": users[picks[i]], "item": items[clicked[i]], "event": "click"}
                status, body = await connection.post_json("/feedback", json.dumps(event).encode(), token)
                good = status == 201 and json.loads(body)["stored"] == 1
            else:
                status, body = await connection.get(f"/recommend?user={users[picks[i]]}&k={k}")
                good = status == 200 and len(json.loads(body)["items"]) == k
            answered = time.perf_counter()
            if not good:
                errors[str(status)] = errors.get(str(status), 0) + 1
            else:
                latencies[i] = (answered - due) * 1000.0
                service[i] = (answered - sent) * 1000.0
            idle.put_nowait(connection)
        except (OSError, asyncio.IncompleteReadError, ValueError, KeyError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            connection.close()
            idle.put_nowait(await Connection.open(port))

    pending: set[asyncio.Task[None]] = set()  # answered requests are let go: no heap growing with the run
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i))
        pending.add(task)
        task.add_done_callback(pending.discard)
    unanswered: set[asyncio.Task[None]] = set()
    if pending:  # bounded: what is still queued then fails
        _, unanswered = await asyncio.wait(set(pending), timeout=DRAIN_SECONDS)
    for task in unanswered:
        task.cancel()
    if unanswered:
        errors["unanswered"] = len(unanswered)
    elapsed = time.perf_counter() - start
    while not idle.empty():
        idle.get_nowait().close()
    ok = int((~np.isnan(latencies)).sum())
    p50, p95, p99 = _percentiles(latencies, [50, 95, 99])
    service_p50, service_p99 = _percentiles(service, [50, 99])
    (read_p99,) = _percentiles(latencies[~writes], [99])
    write_p50, write_p99 = _percentiles(latencies[writes], [50, 99])
    biggest = float(np.nanmax(latencies)) if ok else float("nan")
    return LoadResult(rate, total, int(writes.sum()), ok, errors, elapsed, ok / elapsed, p50, p95, p99, biggest,
                      service_p50, service_p99, read_p99, write_p50, write_p99)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed (less CPU per request for the generator, which shares the machine)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def stall_summary(path: Path, since: float, until: float) -> dict[str, Any]:
    """Count and longest of the watchdog's stalls logged in ``path`` between two wall-clock times, and how
    many of them the loop thread spent mostly waiting for a CPU (the machine busy, not the code)."""
    from modalrec.serve.watchdog import read_stalls

    stalls = [s for s in read_stalls(path) if since <= s["at"] <= until] if path.is_file() else []
    starved = [s for s in stalls if s["loop_runqueue_ms"] >= 0.5 * s["blocked_ms"]]
    return {"count": len(stalls), "max_ms": max((s["blocked_ms"] for s in stalls), default=0.0),
            "waiting_for_cpu": len(starved)}


def git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=False,
                              cwd=Path(__file__).resolve().parent)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="200,500", help="requests per second, comma-separated (default 200,500)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per rate (default 60)")
    parser.add_argument("--write-share", type=float, default=0.05,
                        help="share of requests that are POST /feedback writes (default 0.05)")
    parser.add_argument("--items", type=int, default=63_001, help="catalogue size (default 63001)")
    parser.add_argument("--users", type=int, default=5_000, help="users in the synthetic dataset (default 5000)")
    parser.add_argument("-k", type=int, default=20)
    parser.add_argument("--work", type=Path, default=Path("/tmp/modalrec-bench-serve"),
                        help="where the dataset, run and server log go (reused when present)")
    parser.add_argument("--results", type=Path, default=Path("docs/benchmarks/results/serving.json"),
                        help="JSON file the results go to (default docs/benchmarks/results/serving.json)")
    parser.add_argument("--note", default="", help="a note stored with the results (e.g. what else ran)")
    parser.add_argument("--stall-log", type=Path, default=None,
                        help="folder for the event-loop watchdogs' logs of the server and of this generator "
                             "(server.jsonl, client.jsonl); off by default")
    args = parser.parse_args()
    rates = [float(rate) for rate in args.rates.split(",") if rate.strip()]
    if not rates or not all(0 < rate <= 2000 for rate in rates) or not 0 < args.duration <= 600:
        raise SystemExit("--rates must be in (0, 2000] and --duration in (0, 600]")
    if not 0 <= args.write_share <= 1:
        raise SystemExit("--write-share must be in [0, 1]")

    data = build_dataset(args.work / f"data-{args.items}", args.items, args.users)
    run = train(data, args.work / f"run-{args.items}")
    token = secrets.token_urlsafe(32)
    token_file = args.work / "token"
    token_file.touch(mode=0o600)
    token_file.write_text(token + "\n")
    port = free_port()
    base = f"http://{HOST}:{port}"
    started = time.perf_counter()
    stall_logs = None
    if args.stall_log is not None:
        args.stall_log.mkdir(parents=True, exist_ok=True)
        stall_logs = {side: args.stall_log / f"{side}.jsonl" for side in ("server", "client")}
        for path in stall_logs.values():
            path.unlink(missing_ok=True)
    server = start_server(run, port, args.work / "server.log", token_file,
                          stall_logs["server"] if stall_logs else None)
    loads: list[dict[str, Any]] = []
    results: list[LoadResult] = []
    try:
        health = wait_healthy(base, server, timeout=600)
        startup = time.perf_counter() - started
        user_ids = [str(u) for u in range(args.users)]
        item_ids = [str(i) for i in range(args.items)]
        recall = served_recall(base, run, np.arange(0, args.users, max(1, args.users // 300)), args.k)
        for user in user_ids[:200]:  # warm-up, not measured
            get_json(base, "/recommend", user=user, k=args.k)
        for rate in rates:
            load_before = os.getloadavg()
            gc.collect()
            gc.freeze()  # the generator's own heap (torch, from served_recall) is never walked while measuring
            cpu_before, client_before = cpu_seconds(server.pid), time.process_time()
            busy_before, wall_before = machine_busy_seconds(), time.perf_counter()
            loop = new_event_loop()
            watchdog = None
            if stall_logs is not None:
                from modalrec.serve.watchdog import LoopWatchdog

                watchdog = LoopWatchdog(stall_logs["client"], name=f"client {rate:g}/s")
                watchdog.start(loop)
            began = time.time()
            try:
                result = loop.run_until_complete(asyncio.wait_for(
                    load(port, user_ids, item_ids, rate, args.duration, args.k, token, args.write_share),
                    timeout=args.duration + DRAIN_SECONDS + 30))
            finally:
                if watchdog is not None:
                    watchdog.stop()
                loop.close()
            server_seconds, client_seconds = cpu_seconds(server.pid) - cpu_before, time.process_time() - client_before
            # the two clocks count differently (ticks against per-task time), so a quiet machine can come out
            # slightly below zero
            other_cores = max(0.0, (machine_busy_seconds() - busy_before - server_seconds - client_seconds) / (
                time.perf_counter() - wall_before))
            server_cpu = server_seconds / max(result.ok, 1) * 1000
            client_cpu = client_seconds / max(result.requests, 1) * 1000
            results.append(result)
            loads.append({"load_before": load_before, "load_after": os.getloadavg(),
                          "server_cpu_ms_per_request": server_cpu, "client_cpu_ms_per_request": client_cpu,
                          "other_cpu_cores": round(other_cores, 3)})
            if stall_logs is not None:
                loads[-1]["stalls"] = {side: stall_summary(path, began, time.time())
                                       for side, path in stall_logs.items()}
                print(f"  loop stalls over 50 ms: {loads[-1]['stalls']}", flush=True)
            print(f"{rate:g}/s: {result.ok}/{result.requests} ok, errors {result.errors or 0}, "
                  f"p50 {result.p50:.2f} ms, p99 {result.p99:.2f} ms (reads {result.read_p99:.2f}, writes "
                  f"{result.write_p99:.2f}); CPU per request: server {server_cpu:.2f} ms, client {client_cpu:.2f} ms; "
                  f"load {load_before[0]:.2f}; other processes used {other_cores:.2f} of {os.cpu_count()} CPUs",
                  flush=True)
        server_side = get_json(base, "/metrics")["endpoints"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    arm = health["arms"]["A"]
    document = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **git_commit(),
        "command": shlex.join(["bench/serve.py", *sys.argv[1:]]),
        "note": args.note,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "catalogue": {"items": health["items"], "users": arm["users"], "model": arm["model"], "index": arm["index"]},
        "served_recall_at_k": recall,
        "k": args.k,
        "startup_seconds": round(startup, 2),
        "duration": args.duration,
        "write_share": args.write_share,
        "runs": [{**asdict(result), **machine_load} for result, machine_load in zip(results, loads)],
        "server_metrics": server_side,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(document, indent=2) + "\n")
    print(f"results in {args.results}; render with: .venv/bin/python bench/serving_report.py {args.results}")


if __name__ == "__main__":
    main()
