"""``modalrec tune``: hyper-parameter search with Optuna, selected on validation only.

Every trial trains on the training split and is scored on the validation split. Trials whose validation
curve falls below the median of earlier trials at the same epoch are pruned. The test split is evaluated
once, after the search, for the chosen configuration only.

The search space of a model is the default space below, restricted to the fields its config has, updated
by the config's own ``search_space`` class attribute when it defines one.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from modalrec.errors import ConfigError
from modalrec.io_utils import write_text
from modalrec.models.registry import get_model
from modalrec.train.run import (
    RunConfig,
    build_model,
    configure_threads,
    model_inputs,
    prepare_data,
    resolve_config,
    train_run,
)
from modalrec.train.trainer import Trainer, TrainResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dimension:
    """One searched setting: ``log`` / ``float`` / ``int`` ranges or a ``choice`` among values."""

    kind: str
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Any, ...] = ()


DEFAULT_SPACE = {
    "train.learning_rate": Dimension("log", 1e-4, 1e-2),
    "model.reg_weight": Dimension("log", 1e-5, 1e-1),
    "model.embedding_dim": Dimension("choice", choices=(32, 64, 128)),
    "model.num_layers": Dimension("int", 1, 4),
}


def search_space(model_name: str) -> dict[str, Dimension]:
    """The model's documented search space (see the module docstring)."""
    entry = get_model(model_name)
    names = {f.name for f in fields(entry.config_class)}
    space = {key: dim for key, dim in DEFAULT_SPACE.items() if key.startswith("train.") or key[6:] in names}
    space.update({f"model.{key}": _as_dimension(value) for key, value in entry.search_space().items()})
    return space


def _as_dimension(value: Dimension | tuple[Any, ...]) -> Dimension:
    """A config's own entry: a Dimension, ``(kind, low, high)`` or ``("choice", a, b, ...)``."""
    if isinstance(value, Dimension):
        return value
    kind, *rest = value
    return Dimension(kind, choices=tuple(rest)) if kind == "choice" else Dimension(kind, rest[0], rest[1])


@dataclass
class TuningResult:
    best_params: dict[str, Any]
    best_valid: float
    trials: list[dict[str, Any]]
    final: TrainResult


def tune(
    data_path: str | Path,
    model_name: str,
    trials: int,
    out: Path,
    *,
    metric: str = "recall@20",
    seed: int = 2024,
    config_file: str | None = None,
    overrides: list[str] | None = None,
    timeout: float | None = None,
) -> TuningResult:
    """Search ``trials`` configurations on validation, then train the best into ``out/best`` and test it once."""
    import optuna

    if trials < 1:
        raise ConfigError("--trials", f"expected at least 1 trial, got {trials}")
    base_overrides = [*(overrides or []), f"train.early_stop_metric={metric}"]
    base = resolve_config(data_path, model_name, config_file=config_file, overrides=base_overrides, seed=seed)
    configure_threads(base.train.threads)
    prepared = prepare_data(base.data_path, base.data)
    space = search_space(model_name)

    def objective(trial: optuna.Trial) -> float:
        params = {key: _suggest(trial, key, dim) for key, dim in space.items()}
        config = _with(params, data_path, model_name, config_file, base_overrides, seed)
        model = build_model(config, model_inputs(prepared.dataset, prepared.split))

        def report(record: dict[str, float]) -> None:
            if metric in record:
                trial.report(record[metric], int(record["epoch"]))
                if trial.should_prune():
                    raise optuna.TrialPruned()

        trainer = Trainer(model, prepared.split, config.train, config.eval, seed=config.seed, on_epoch_end=report)
        result = trainer.fit(evaluate_test=False)
        trial.set_user_attr("epochs", result.epochs)
        return result.valid[metric]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=5),
    )
    study.optimize(objective, n_trials=trials, timeout=timeout)
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise ConfigError("--trials", "no trial completed; allow more trials or epochs")
    best = study.best_trial
    final = train_run(_with(best.params, data_path, model_name, config_file, base_overrides, seed),
                      out / "best", overwrite=True)
    log_rows = [_trial_row(t) for t in study.trials]
    result = TuningResult(dict(best.params), float(best.value or 0.0), log_rows, final)
    _write_log(out, model_name, metric, result)
    return result


def _suggest(trial: Any, key: str, dim: Dimension) -> Any:
    if dim.kind == "log":
        return trial.suggest_float(key, dim.low, dim.high, log=True)
    if dim.kind == "float":
        return trial.suggest_float(key, dim.low, dim.high)
    if dim.kind == "int":
        return trial.suggest_int(key, int(dim.low), int(dim.high))
    return trial.suggest_categorical(key, list(dim.choices))


def _with(params: dict[str, Any], data_path: str | Path, model_name: str, config_file: str | None,
          overrides: list[str], seed: int) -> RunConfig:
    sampled = [f"{key}={value}" for key, value in params.items()]
    return resolve_config(data_path, model_name, config_file=config_file, overrides=[*overrides, *sampled], seed=seed)


def _trial_row(trial: Any) -> dict[str, Any]:
    return {"trial": trial.number, "state": trial.state.name, "valid": trial.value,
            "epochs": trial.user_attrs.get("epochs", ""), **trial.params}


def _write_log(out: Path, model_name: str, metric: str, result: TuningResult) -> None:
    buffer = io.StringIO()
    columns = list(dict.fromkeys(key for row in result.trials for key in row))
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(result.trials)
    write_text(out / "trials.csv", buffer.getvalue())
    states = [row["state"] for row in result.trials]
    lines = [
        f"# Tuning {model_name}",
        "",
        f"Objective: validation {metric} (maximised). Trials: {len(states)} "
        f"({states.count('COMPLETE')} complete, {states.count('PRUNED')} pruned, {states.count('FAIL')} failed).",
        "The test split was not used by any trial. It was evaluated once, for the chosen configuration below.",
        "",
        f"Best validation {metric}: {result.best_valid:.4f}",
        "",
        "Chosen configuration: " + json.dumps(result.best_params),
        "",
        "Test of the chosen configuration (run folder `best/`): " + "  ".join(
            f"{k} {v:.4f}" for k, v in result.final.test.items() if k.endswith("@20")),
    ]
    write_text(out / "tuning.md", "\n".join(lines) + "\n")
