"""bench/serving_report.py (issue 17): a run during which other processes used the CPUs is marked as contended
even when the load average before it looked quiet, and the watchdog's stall counts are shown when recorded."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from tests.conftest import load_script

REPO = Path(__file__).resolve().parents[2]


def load() -> ModuleType:
    return load_script(REPO / "bench" / "serving_report.py", "_bench_serving_report")


def document(**run_extra: Any) -> dict[str, Any]:
    run = {"rate": 500.0, "requests": 30000, "writes": 1500, "ok": 30000, "errors": {}, "seconds": 60.0,
           "achieved_rate": 500.0, "p50": 1.6, "p95": 3.0, "p99": 4.2, "max": 30.0, "service_p50": 1.4,
           "service_p99": 3.5, "read_p99": 4.0, "write_p50": 2.0, "write_p99": 6.0, "load_before": [0.3, 0.2, 0.1],
           "load_after": [0.8, 0.4, 0.2], "server_cpu_ms_per_request": 1.2, "client_cpu_ms_per_request": 0.3,
           **run_extra}
    return {"date": "2026-12-07T02:00:00+00:00", "commit": "0" * 40, "dirty": False, "command": "bench/serve.py",
            "note": "", "machine": {"cpus": 2, "platform": "Linux", "python": "3.11"},
            "catalogue": {"items": 63001, "users": 5000, "model": "vbpr", "index": "hnsw"},
            "served_recall_at_k": 0.96, "k": 20, "startup_seconds": 4.0, "duration": 60.0, "write_share": 0.05,
            "runs": [run], "server_metrics": {}}


def test_a_quiet_run_is_not_marked_shared() -> None:
    page = load().render(document(other_cpu_cores=0.02), "results.json")
    assert "shared with other jobs" not in page


def test_other_processes_cpu_marks_the_run_shared_despite_a_low_load_average() -> None:
    page = load().render(document(other_cpu_cores=0.6), "results.json")
    assert "**the machine was shared with other jobs**" in page and "0.60 CPUs during 500/s" in page


def test_results_without_the_new_fields_still_render() -> None:
    page = load().render(document(), "results.json")
    assert "shared with other jobs" not in page and "stalls" not in page


def test_stall_counts_are_shown_per_side() -> None:
    stalls = {"server": {"count": 3, "max_ms": 120.4, "waiting_for_cpu": 2},
              "client": {"count": 0, "max_ms": 0.0, "waiting_for_cpu": 0}}
    page = load().render(document(stalls=stalls), "results.json")
    assert "500/s: server 3 (longest 120 ms; 2 mostly waiting for a CPU), load generator none" in page


def test_a_high_load_average_left_by_earlier_work_does_not_mark_a_measured_quiet_run() -> None:
    page = load().render(document(load_before=[2.5, 3.0, 3.2], other_cpu_cores=0.0), "results.json")
    assert "shared with other jobs" not in page


def test_results_without_the_cpu_measure_fall_back_to_the_load_average() -> None:
    page = load().render(document(load_before=[2.5, 3.0, 3.2]), "results.json")
    assert "**the machine was shared with other jobs** (1-min load average 2.50 before 500/s" in page
