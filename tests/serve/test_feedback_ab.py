"""Durable feedback, A/B routing, the report's statistics against hand-computed values, and the simulator."""

from __future__ import annotations

import argparse
import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modalrec.cli.main import main
from modalrec.cli.serve_cmd import add_serve_parsers
from modalrec.errors import ConfigError, ModalrecError, WriteError
from modalrec.serve.ab import (
    Router,
    format_report,
    report_from_counts,
    two_proportion_z_test,
    wilson_interval,
)
from modalrec.serve.app import create_app
from modalrec.serve.service import ServiceSettings, load_service
from modalrec.serve.feedback import ArmCounts, FeedbackEvent, FeedbackStore
from tests.conftest import block_dataset, write_mmrec

FAST = ["--set", "epochs=5", "--set", "progress=false", "--set", "batch_size=16"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ab")
    rows, features = block_dataset(num_users=60)
    data = write_mmrec(root / "data", rows, features={"image": features})
    for model in ("bpr", "vbpr"):
        assert main(["train", "--data", str(data), "--model", model, "--out", str(root / model), *FAST]) == 0
    return root / "bpr", root / "vbpr"


def run_cli(argv: list[str]) -> int:
    """The ``serve``/``ab`` commands through their own parser (as the top-level CLI registers them)."""
    parser = argparse.ArgumentParser(prog="modalrec")
    add_serve_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def test_routing_is_deterministic_balanced_and_salted() -> None:
    users = [f"user-{n}" for n in range(20_000)]
    router = Router(50.0, salt="exp-1")
    arms = [router.arm(u) for u in users]
    assert arms == [Router(50.0, salt="exp-1").arm(u) for u in users]
    assert 0.48 < arms.count("B") / len(users) < 0.52
    other = [Router(50.0, salt="exp-2").arm(u) for u in users]
    assert 0.45 < sum(a != b for a, b in zip(arms, other)) / len(users) < 0.55  # a new salt reshuffles
    assert 0.08 < [Router(10.0).arm(u) for u in users].count("B") / len(users) < 0.12
    assert set(Router(0.0).arm(u) for u in users[:500]) == {"A"}
    assert set(Router(100.0).arm(u) for u in users[:500]) == {"B"}
    with pytest.raises(ConfigError, match="0..100"):
        Router(150.0)


def test_statistics_match_hand_computed_values() -> None:
    # A: 100 clicks in 1000 impressions, B: 130 in 1000.
    pooled = 230 / 2000  # 0.115
    z = (0.13 - 0.10) / math.sqrt(pooled * (1 - pooled) * (1 / 1000 + 1 / 1000))  # 0.03 / 0.014267 = 2.1027
    assert two_proportion_z_test(100, 1000, 130, 1000) == pytest.approx((z, math.erfc(z / math.sqrt(2))))
    assert z == pytest.approx(2.1027, abs=1e-4) and math.erfc(z / math.sqrt(2)) == pytest.approx(0.03549, abs=1e-4)
    # Wilson, 10 of 100, z = 1.96: (0.1 + 0.019208 +- 1.96 * sqrt(0.0009 + 0.00009604)) / 1.038416
    centre, half = 0.1 + 1.96**2 / 200, 1.96 * math.sqrt(0.1 * 0.9 / 100 + 1.96**2 / 40_000)
    low, high = wilson_interval(10, 100)  # type: ignore[misc]
    assert (low, high) == pytest.approx(((centre - half) / (1 + 1.96**2 / 100), (centre + half) / (1 + 1.96**2 / 100)),
                                        abs=1e-5)
    assert (low, high) == pytest.approx((0.05523, 0.17437), abs=1e-5)
    assert wilson_interval(0, 0) is None and wilson_interval(5, 3) is None
    report = report_from_counts([ArmCounts("A", 40, 1000, 100, 3), ArmCounts("B", 50, 1000, 130, 4)])
    a, b = report.arms
    assert (a.ctr, b.ctr, a.lift) == (0.1, 0.13, None) and b.lift == pytest.approx(0.3)
    assert report.p_value == pytest.approx(0.03549, abs=1e-4)
    # A's interval: (0.1 + 0.0019208 +- 1.96 * sqrt(0.00009 + 0.00000096)) / 1.0038416 = [0.08291, 0.12015]
    lines = format_report(report).splitlines()
    assert lines[2].split() == ["A", "40", "1000", "100", "3", "0.1000", "[0.0829,", "0.1202]", "-"]
    assert lines[3].split()[-1] == "+30.0%" and lines[4].endswith("z = +2.103, p = 0.03549")


def test_feedback_is_stored_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    with FeedbackStore(tmp_path / "f.sqlite") as store:
        store.append([FeedbackEvent("u", "i", "click", 1.0, "A")])
        mode = store._connection.execute("PRAGMA journal_mode").fetchone()[0]
        sync = store._connection.execute("PRAGMA synchronous").fetchone()[0]
    assert (mode, sync) == ("wal", 2)  # 2 = FULL


def test_a_failed_experiment_write_rolls_back_and_the_store_keeps_working(tmp_path: Path) -> None:
    with FeedbackStore(tmp_path / "f.sqlite") as store:
        store.set_experiment({"salt": "s1"})
        with pytest.raises(sqlite3.Error):
            store.set_experiment({"salt": "s2", "arms": object()})  # type: ignore[dict-item]
        store.append([FeedbackEvent("u", "i", "click", 1.0, "A")])
        assert store.experiment() == {"salt": "s1"} and store.count() == 1


def test_a_full_database_is_a_write_error_and_keeps_what_was_stored(tmp_path: Path) -> None:
    with FeedbackStore(tmp_path / "f.sqlite") as store:
        store.append([FeedbackEvent("u", "i", "click", 1.0, "A")])
        pages = store._connection.execute("PRAGMA page_count").fetchone()[0]
        store._connection.execute(f"PRAGMA max_page_count = {pages}")  # the "disk" is now full
        big = [FeedbackEvent(f"user-{n}" * 20, "i", "click", float(n), "A") for n in range(2000)]
        with pytest.raises(WriteError, match="full"):
            store.append(big)
        assert store.count() == 1


def test_acknowledged_feedback_survives_a_killed_process(tmp_path: Path) -> None:
    db = tmp_path / "f.sqlite"
    script = (
        "import os, signal\n"
        "from modalrec.serve.feedback import FeedbackEvent, FeedbackStore\n"
        f"store = FeedbackStore({str(db)!r})\n"
        "for n in range(50):\n"
        "    store.append([FeedbackEvent(f'u{n}', 'i', 'click', float(n), 'B')])\n"
        "os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint\n"
    )
    result = subprocess.run([sys.executable, "-c", script], timeout=120)
    assert result.returncode == -9
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT COUNT(*), SUM(arm = 'B') FROM feedback").fetchone() == (50, 50)


def test_two_arms_split_users_name_their_arm_and_store_it(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    bpr, vbpr = two_runs
    settings = ServiceSettings(split_b=50.0, salt="t", db=tmp_path / "ab.sqlite")
    service = load_service([bpr, vbpr], settings)
    client = TestClient(create_app(service))
    router = Router(50.0, "t")
    users = [str(u) for u in range(60)]
    for user in users:
        answer = client.get("/recommend", params={"user": user, "k": 3}).json()
        assert answer["arm"] == router.arm(user)
        assert answer["model"] == {"A": "bpr", "B": "vbpr"}[answer["arm"]]
        events = [{"user": user, "item": row["item"], "event": "impression"} for row in answer["items"]]
        if int(user) % 3 == 0:
            events.append({"user": user, "item": answer["items"][0]["item"], "event": "click", "timestamp": 5.0})
        assert client.post("/feedback", json=events).json() == {"stored": len(events)}
    assert client.get("/similar", params={"item": "0", "k": 2, "user": "1"}).json()["arm"] == router.arm("1")
    report = client.get("/ab/report").json()
    by_arm = {a["arm"]: a for a in report["arms"]}
    for arm in "AB":
        mine = [u for u in users if router.arm(u) == arm]
        assert by_arm[arm]["users"] == len(mine) and by_arm[arm]["impressions"] == 3 * len(mine)
        assert by_arm[arm]["clicks"] == sum(int(u) % 3 == 0 for u in mine)
    assert report["experiment"]["salt"] == "t" and 0 <= report["p_value"] <= 1
    assert "two-proportion z-test" in client.get("/ab/report", params={"format": "text"}).text
    with sqlite3.connect(tmp_path / "ab.sqlite") as connection:
        stored = connection.execute("SELECT user_id, arm FROM feedback WHERE event = 'click'").fetchall()
    assert stored and all(arm == router.arm(user) for user, arm in stored)


def test_ab_arms_must_share_the_catalogue(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    rows, features = block_dataset(num_items=15)
    data = write_mmrec(tmp_path / "other", rows, features={"image": features})
    assert main(["train", "--data", str(data), "--model", "bpr", "--out", str(tmp_path / "run"), *FAST]) == 0
    with pytest.raises(ConfigError, match="share the items"):
        load_service([two_runs[0], tmp_path / "run"], ServiceSettings(db=tmp_path / "x.sqlite"))


def test_simulate_replays_test_interactions_and_report_prints_the_table(two_runs: tuple[Path, Path], tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    bpr, vbpr = two_runs
    db = tmp_path / "sim.sqlite"
    assert run_cli(["ab", "simulate", "--run", str(bpr), "--run-b", str(vbpr), "--db", str(db), "-k", "4",
                    "--split", "50", "--salt", "s"]) == 0
    printed = capsys.readouterr().out
    assert "simulated 60 users: 240 impressions" in printed and "two-proportion z-test" in printed
    with sqlite3.connect(db) as connection:
        clicks = connection.execute("SELECT user_id, item_id FROM feedback WHERE event = 'click'").fetchall()
        arms = dict(connection.execute("SELECT user_id, arm FROM feedback GROUP BY user_id").fetchall())
    assert all(arm == Router(50.0, "s").arm(user) for user, arm in arms.items())
    rows, _ = block_dataset(num_users=60)
    test_pairs = {(str(u), str(i)) for u, i, label in rows if label == 2}
    assert clicks and set(clicks) <= test_pairs  # only held-out interactions become clicks
    assert run_cli(["ab", "report", "--db", str(db)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("arm A: bpr") and any(line.startswith("B ") for line in table)
    assert run_cli(["ab", "report", "--db", str(db), "--json"]) == 0
    assert '"p_value"' in capsys.readouterr().out
    with pytest.raises(ModalrecError, match="no such feedback database"):
        run_cli(["ab", "report", "--db", str(tmp_path / "typo.sqlite")])


def test_serve_binds_loopback_by_default_and_checks_its_port(two_runs: tuple[Path, Path]) -> None:
    parser = argparse.ArgumentParser(prog="modalrec")
    add_serve_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["serve", "--run", str(two_runs[0])])
    assert (args.host, args.port, args.run_b, args.split) == ("127.0.0.1", 8000, None, 50.0)
    with pytest.raises(ModalrecError, match="--port must be in 1..65535"):
        run_cli(["serve", "--run", str(two_runs[0]), "--port", "0"])
