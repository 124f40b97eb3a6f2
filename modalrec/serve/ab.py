"""A/B testing: deterministic routing of users to two arms, the per-arm report, and an offline simulator.

Routing hashes the user id with an experiment salt (SHA-256), so a user always sees the same arm, the
split needs no stored state, and a new salt reshuffles users for a new experiment.

The report treats every impression as a Bernoulli trial that a click may follow:

- CTR = clicks / impressions, with the 95% Wilson score interval
  (p̂ + z²/2n ± z·sqrt(p̂(1-p̂)/n + z²/4n²)) / (1 + z²/n), z = 1.96;
- relative lift of B over A = (CTR_B - CTR_A) / CTR_A;
- the two-proportion z-test with pooled p = (c_A + c_B) / (n_A + n_B):
  z = (CTR_B - CTR_A) / sqrt(p(1-p)(1/n_A + 1/n_B)), two-sided p-value = erfc(|z| / sqrt(2)).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from modalrec.errors import ConfigError
from modalrec.serve.feedback import ArmCounts, FeedbackEvent, FeedbackStore

DEFAULT_SALT = "modalrec-ab"
Z_95 = 1.959963984540054  # the standard normal's 97.5% quantile


@dataclass(frozen=True)
class Router:
    """Sends ``split_b`` percent of users to arm B and the rest to arm A, by a hash of salt and user id."""

    split_b: float = 0.0  # percent of users routed to arm B; 0 serves everyone from arm A
    salt: str = DEFAULT_SALT

    def __post_init__(self) -> None:
        if not 0.0 <= self.split_b <= 100.0:
            raise ConfigError("--split", f"expected a percentage of users for arm B in 0..100, got {self.split_b}")

    def arm(self, user_id: str) -> str:
        digest = hashlib.sha256(f"{self.salt}\x00{user_id}".encode()).digest()
        position = int.from_bytes(digest[:8], "big") / 2.0**64 * 100.0  # uniform in [0, 100)
        return "B" if position < self.split_b else "A"


@dataclass(frozen=True)
class ArmReport:
    """One arm's row of the report, also the row schema of ``GET /ab/report``. ``None`` where the value is
    undefined (no impressions, or arm A's lift)."""

    arm: str
    users: int
    impressions: int
    clicks: int
    purchases: int
    ctr: float | None
    ctr_low: float | None  # 95% Wilson interval
    ctr_high: float | None
    lift: float | None  # relative to arm A's CTR


@dataclass(frozen=True)
class ABReport:
    arms: list[ArmReport]
    z: float | None  # two-proportion z statistic of B against A
    p_value: float | None
    experiment: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"arms": [asdict(a) for a in self.arms], "z": self.z, "p_value": self.p_value,
                "experiment": self.experiment}


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion; None when undefined (no trials, or successes > trials)."""
    if trials <= 0 or not 0 <= successes <= trials:
        return None
    p = successes / trials
    centre = p + z * z / (2 * trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    denominator = 1 + z * z / trials
    return (centre - half) / denominator, (centre + half) / denominator


def two_proportion_z_test(successes_a: int, trials_a: int, successes_b: int,
                          trials_b: int) -> tuple[float, float] | None:
    """``(z, two-sided p)`` for B's proportion against A's, pooled; None when undefined."""
    if trials_a <= 0 or trials_b <= 0 or successes_a > trials_a or successes_b > trials_b:
        return None
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    variance = pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b)
    if variance <= 0:
        return 0.0, 1.0  # both arms all clicks or all misses: no evidence of a difference
    z = (successes_b / trials_b - successes_a / trials_a) / math.sqrt(variance)
    return z, math.erfc(abs(z) / math.sqrt(2))


def ab_report(store: FeedbackStore) -> ABReport:
    """The report over every event in ``store``."""
    return report_from_counts(store.counts(), store.experiment())


def report_from_counts(counts: list[ArmCounts], experiment: dict[str, str] | None = None) -> ABReport:
    by_arm = {c.arm: c for c in counts}
    baseline = by_arm.get("A")
    base_ctr = baseline.clicks / baseline.impressions if baseline and baseline.impressions else None
    rows = []
    for c in counts:
        ctr = c.clicks / c.impressions if c.impressions else None
        interval = wilson_interval(c.clicks, c.impressions)
        lift = (ctr - base_ctr) / base_ctr if c.arm != "A" and ctr is not None and base_ctr else None
        rows.append(ArmReport(c.arm, c.users, c.impressions, c.clicks, c.purchases, ctr,
                              interval[0] if interval else None, interval[1] if interval else None, lift))
    test = None
    if baseline and "B" in by_arm:
        test = two_proportion_z_test(baseline.clicks, baseline.impressions, by_arm["B"].clicks,
                                     by_arm["B"].impressions)
    return ABReport(rows, test[0] if test else None, test[1] if test else None, experiment or {})


def format_report(report: ABReport) -> str:
    """The report as a text table, then the test of B against A."""
    header = (f"{'arm':<4} {'users':>7} {'impressions':>12} {'clicks':>8} {'purchases':>9} {'CTR':>8} "
              f"{'95% CI':>19} {'lift vs A':>10}")
    lines = [f"{key}: {value}" for key, value in report.experiment.items()]
    if lines:
        lines.append("")
    lines += [header, "-" * len(header)]
    for a in report.arms:
        ctr = "-" if a.ctr is None else f"{a.ctr:.4f}"
        interval = "-" if a.ctr_low is None else f"[{a.ctr_low:.4f}, {a.ctr_high:.4f}]"
        lift = "-" if a.lift is None else f"{a.lift:+.1%}"
        lines.append(f"{a.arm:<4} {a.users:>7} {a.impressions:>12} {a.clicks:>8} {a.purchases:>9} {ctr:>8} "
                     f"{interval:>19} {lift:>10}")
    if not report.arms:
        lines.append("no feedback yet")
    if report.p_value is not None and report.z is not None:
        lines.append(f"two-proportion z-test, CTR of B against A: z = {report.z:+.3f}, p = {report.p_value:.4g}")
    else:
        lines.append("two-proportion z-test: needs impressions in both arms A and B")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Offline simulation

RecommendFn = Callable[[str, int], tuple[str, list[str]]]
"""``(user id, k) -> (arm, recommended item ids)``, as the service answers /recommend."""


@dataclass(frozen=True)
class SimulationResult:
    users: int
    impressions: int
    clicks: int


def simulate(recommend: RecommendFn, held_out: Iterable[tuple[str, set[str]]], k: int,
             store: FeedbackStore, *, timestamp: float = 0.0) -> SimulationResult:
    """Replay held-out interactions as clicks: each user is shown their k recommendations (k impressions)
    and clicks the shown items that they interacted with in the held-out split.

    Args:
        recommend: the service's recommendation function (routing included).
        held_out: per user, the ids of their held-out (test) items.
        k: recommendations shown per user.
        store: where the impressions and clicks go, one transaction per user.
        timestamp: the events' time (seconds since 1970).
    """
    users = impressions = clicks = 0
    for user_id, targets in held_out:
        arm, items = recommend(user_id, k)
        events = [FeedbackEvent(user_id, item, "impression", timestamp, arm) for item in items]
        events += [FeedbackEvent(user_id, item, "click", timestamp, arm) for item in items if item in targets]
        store.append(events)
        users += 1
        impressions += len(items)
        clicks += len(events) - len(items)
    return SimulationResult(users, impressions, clicks)
