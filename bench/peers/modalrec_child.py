"""Child process of ``bench/peers/mmrec.py``: one run of modalrec's own training loop, timed like MMRec's.

The run is what ``modalrec train`` does (config resolved from defaults and overrides, data prepared, model
built, :class:`~modalrec.train.trainer.Trainer` with a checkpoint folder, early stopping on validation
recall@20, best weights restored, valid + test evaluated), with a callback that stamps the end of every
epoch. Afterwards one valid + test evaluation is timed again, both apart (valid, then test) and joint (one
scoring and ranking per user for both), ``eval_repeats`` times each.

    python bench/peers/modalrec_child.py SPEC_JSON OUT_JSON
"""

from __future__ import annotations

import time

T0 = time.perf_counter()  # time to quality counts from here: imports, data and model build included

import dataclasses  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

REPORTED = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


class StopTraining(Exception):
    """Raised from the epoch callback when ``max_seconds`` is spent."""


def _text(value: Any) -> str:
    """A ``--set`` value: strings as they are, everything else as JSON (true, 0.001, [1, 2])."""
    return value if isinstance(value, str) else json.dumps(value)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    import modalrec.models  # noqa: F401  (registers the models)
    from modalrec.data.prepare import prepare_data
    from modalrec.train.run import build_model, configure_threads, model_inputs, resolve_config
    from modalrec.train.trainer import Trainer

    overrides = [f"model.{k}={_text(v)}" for k, v in spec.get("model_settings", {}).items()]
    chosen = {k: spec.get(k) for k in ("batch_size", "learning_rate", "epochs", "patience")}
    train = {**{k: v for k, v in chosen.items() if v is not None},  # None: modalrec's own default
             "threads": spec["threads"], "device": "cpu", "progress": False}
    if "model_settings" in spec:  # --settings same: MMRec's step size is constant (its scheduler factor is 1.0)
        train["lr_schedule"] = "constant"
    overrides += [f"train.{k}={_text(v)}" for k, v in train.items()]
    config = resolve_config(spec["dataset"], spec["model"], overrides=overrides, seed=spec["seed"])
    configure_threads(config.train.threads)
    prepared = prepare_data(config.data_path, config.data)
    model = build_model(config, model_inputs(prepared.dataset, prepared.split))
    stamps: list[float] = []
    max_seconds = spec.get("max_seconds")

    def on_epoch_end(record: dict[str, float]) -> None:
        stamps.append(time.perf_counter())
        if max_seconds is not None and stamps[-1] - fit_start > max_seconds:
            raise StopTraining

    with tempfile.TemporaryDirectory(prefix="modalrec-run-") as folder:
        trainer = Trainer(model, prepared.split, config.train, config.eval, seed=config.seed,
                          checkpoint_dir=Path(folder), on_epoch_end=on_epoch_end)
        fit_start = time.perf_counter()
        capped = False
        try:
            result = trainer.fit()
            valid, test = result.valid, result.test
            best_epoch = result.best_epoch
            history = result.history
        except StopTraining:  # the time cap: restore the best weights and evaluate, as fit() would
            capped = True
            if trainer.best_state is not None:
                trainer.model.load_state_dict(trainer.best_state)
            tables = trainer.evaluate_splits(["valid", "test"])
            valid, test = tables["valid"].mean(), tables["test"].mean()
            best_epoch, history = trainer.progress.best_epoch, trainer.progress.history
        finished = time.perf_counter()
    epochs = [{"train_s": h["train_seconds"], "eval_s": h.get("eval_seconds", 0.0), "elapsed_s": stamp - T0,
               "valid_recall@20": h.get("recall@20", 0.0)} for h, stamp in zip(history, stamps)]
    apart, joint = [], []
    for _ in range(spec["eval_repeats"]):
        start = time.perf_counter()
        trainer.evaluate("valid")
        trainer.evaluate("test")
        apart.append(time.perf_counter() - start)
        start = time.perf_counter()
        trainer.evaluate_splits(["valid", "test"])
        joint.append(time.perf_counter() - start)
    return {
        "side": "modalrec", "model": spec["model"],
        "settings": {**dataclasses.asdict(config.model), **{k: getattr(config.train, k) for k in chosen}},
        "setup_s": fit_start - T0, "epochs": epochs,
        "epoch_s": statistics.median(e["train_s"] for e in epochs) if epochs else None,
        "eval_s": statistics.median(apart) if apart else None, "eval_repeats_s": apart,
        "joint_eval_s": statistics.median(joint) if joint else None, "joint_repeats_s": joint,
        "best_epoch": best_epoch, "epochs_run": len(epochs), "capped": capped or len(epochs) >= config.train.epochs,
        "best_valid": {k: valid.get(k) for k in REPORTED}, "test": {k: test.get(k) for k in REPORTED},
        "total_s": finished - T0,
        "self_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    result = run(spec)
    Path(sys.argv[2]).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
