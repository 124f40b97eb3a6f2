"""Child process of ``bench/peers/mmrec.py``: one run of MMRec's own entry point, timed from outside.

Runs ``utils.quick_start.quick_start`` (what MMRec's ``main.py`` calls) from an unmodified MMRec checkout,
after the runtime shims of ``shims.py``, in a scratch folder holding MMRec's ``configs`` (so its ``log/``
lands there, not in the checkout). MMRec's grid is narrowed to the first value of each list in the
model's YAML, as a single run of ``main.py`` trains first; the learning rate, batch size, seed, epoch cap
and patience come from the harness so both sides train alike.

MMRec's trainer is observed, not changed: ``Trainer._valid_epoch`` is wrapped to time each call (MMRec
evaluates valid, then test, after every epoch), so an epoch's training seconds are the time between the end
of the previous epoch's test pass and the start of its validation pass (edge dropout and the learning-rate
step included, as in MMRec's own log line). ``--max-seconds`` is honoured by answering "stop" from MMRec's
``early_stopping`` once the time is spent.

    python bench/peers/mmrec_child.py SPEC_JSON OUT_JSON
"""

from __future__ import annotations

import time

T0 = time.perf_counter()  # time to quality counts from here: imports, data and model build included

import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import shims  # noqa: E402

# modalrec's model names -> MMRec's class (and YAML) names
MMREC_NAMES = {"bpr": "BPR", "lightgcn": "LightGCN", "vbpr": "VBPR", "freedom": "FREEDOM", "mmgcn": "MMGCN",
               "bm3": "BM3", "lattice": "LATTICE", "lgmrec": "LGMRec", "smore": "SMORE"}
REPORTED = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
# the harness's training settings -> MMRec's config keys; a setting left None keeps MMRec's own value
TRAIN_KEYS = {"learning_rate": "learning_rate", "batch_size": "train_batch_size", "epochs": "epochs",
              "patience": "stopping_step"}


def first_grid_values(config_dir: Path, model: str) -> dict[str, Any]:
    """The first value of each list the model's YAML names in ``hyper_parameters`` (seed excepted)."""
    import yaml

    path = config_dir / "model" / f"{model}.yaml"
    values = yaml.safe_load(path.read_text()) or {}
    chosen = {}
    for name in values.get("hyper_parameters", []):
        if name == "seed":
            continue
        value = values.get(name)
        chosen[name] = _number(value[0] if isinstance(value, list) else value)
    return chosen


def _number(value: Any) -> Any:
    """MMRec's YAML loader reads ``1e-02`` as a float; PyYAML's safe loader leaves it a string."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def dataset_settings(dataset: Path) -> dict[str, Any]:
    """MMRec's dataset YAML keys for a folder in the MMRec layout (``<name>.inter`` + feature files)."""
    inters = sorted(dataset.glob("*.inter"))
    if len(inters) != 1:
        raise SystemExit(f"{dataset}: expected one .inter file, found {len(inters)}")
    return {"data_path": str(dataset.parent) + os.sep, "inter_file_name": inters[0].name,
            "USER_ID_FIELD": "userID", "ITEM_ID_FIELD": "itemID", "TIME_FIELD": "timestamp",
            "field_separator": "\t", "vision_feature_file": "image_feat.npy", "text_feature_file": "text_feat.npy",
            "user_graph_dict_file": "user_graph_dict.npy"}


class Recorder:
    """Timestamps of MMRec's evaluation calls and what they returned."""

    def __init__(self, max_seconds: float | None) -> None:
        self.max_seconds = max_seconds
        self.fit_start = 0.0
        self.calls: list[tuple[float, float, dict[str, float]]] = []
        self.trainer: Any = None
        self.data: tuple[Any, Any] | None = None
        self.capped = False

    def epochs(self) -> list[dict[str, float]]:
        """One record per epoch from the (valid, test) call pairs."""
        records = []
        previous_end = self.fit_start
        for valid, test in zip(self.calls[0::2], self.calls[1::2]):
            records.append({
                "train_s": valid[0] - previous_end, "eval_s": test[1] - valid[0],
                "elapsed_s": test[1] - T0, "valid_recall@20": valid[2].get("recall@20", 0.0),
                "test_recall@20": test[2].get("recall@20", 0.0)})
            previous_end = test[1]
        return records


def install_observers(recorder: Recorder) -> None:
    import common.trainer as trainer_module

    original_valid, original_fit = trainer_module.Trainer._valid_epoch, trainer_module.Trainer.fit
    original_stopping = trainer_module.early_stopping

    def timed_valid(self: Any, data: Any) -> Any:
        start = time.perf_counter()
        score, result = original_valid(self, data)
        recorder.calls.append((start, time.perf_counter(), {k: float(v) for k, v in result.items()}))
        return score, result

    def observed_fit(self: Any, train_data: Any, valid_data: Any = None, test_data: Any = None, **kwargs: Any) -> Any:
        recorder.trainer, recorder.data = self, (valid_data, test_data)
        recorder.fit_start = time.perf_counter()
        return original_fit(self, train_data, valid_data=valid_data, test_data=test_data, **kwargs)

    def capped_stopping(*args: Any, **kwargs: Any) -> Any:
        best, step, stop, update = original_stopping(*args, **kwargs)
        if recorder.max_seconds is not None and time.perf_counter() - recorder.fit_start > recorder.max_seconds:
            recorder.capped = recorder.capped or not stop
            stop = True
        return best, step, stop, update

    trainer_module.Trainer._valid_epoch = timed_valid
    trainer_module.Trainer.fit = observed_fit
    trainer_module.early_stopping = capped_stopping


def run(spec: dict[str, Any]) -> dict[str, Any]:
    src = Path(spec["mmrec_src"]).resolve() / "src"
    model = MMREC_NAMES.get(spec["model"], spec["model"])
    applied = shims.apply()
    import torch

    torch.set_num_threads(spec["threads"])
    grid = first_grid_values(src / "configs", model)
    chosen = {key: spec[name] for name, key in TRAIN_KEYS.items() if spec.get(name) is not None}
    if "learning_rate" in chosen:  # the harness sets it for both sides (MMGCN's grid starts at 1e-4)
        grid.pop("learning_rate", None)
    config = {**dataset_settings(Path(spec["dataset"]).resolve()), **grid, "gpu_id": 0, "use_gpu": False,
              "seed": [spec["seed"]], "hyper_parameters": ["seed"], **chosen}
    scratch = Path(tempfile.mkdtemp(prefix="mmrec-run-"))
    (scratch / "configs").symlink_to(src / "configs")
    os.chdir(scratch)
    sys.path.insert(0, str(src))
    recorder = Recorder(spec.get("max_seconds"))
    install_observers(recorder)
    from utils.quick_start import quick_start

    quick_start(model=model, dataset=Path(spec["dataset"]).resolve().name, config_dict=config, save_model=False)
    epochs = recorder.epochs()
    trainer = recorder.trainer
    settings = {**grid, **{key: trainer.config[key] for key in TRAIN_KEYS.values()}}
    if recorder.data is None:
        raise SystemExit("MMRec's Trainer.fit was not called: no result to report")
    evals = []
    for _ in range(spec["eval_repeats"]):  # one valid + test pass again, as MMRec runs it after every epoch
        start = time.perf_counter()
        trainer._valid_epoch(recorder.data[0])
        trainer._valid_epoch(recorder.data[1])
        evals.append(time.perf_counter() - start)
    best_test = {k: float(v) for k, v in trainer.best_test_upon_valid.items()}
    best_valid = {k: float(v) for k, v in trainer.best_valid_result.items()}
    best_epoch = max(range(len(epochs)), key=lambda i: (epochs[i]["valid_recall@20"], -i)) if epochs else -1
    return {
        "side": "mmrec", "model": spec["model"], "peer_model": model, "settings": settings,
        "shims": applied, "setup_s": recorder.fit_start - T0, "epochs": epochs,
        "epoch_s": statistics.median(e["train_s"] for e in epochs) if epochs else None,
        "eval_s": statistics.median(evals) if evals else None, "eval_repeats_s": evals,
        "best_epoch": best_epoch, "epochs_run": len(epochs), "capped": recorder.capped or len(epochs) >= trainer.epochs,
        "best_valid": {k: best_valid.get(k) for k in REPORTED}, "test": {k: best_test.get(k) for k in REPORTED},
        "total_s": time.perf_counter() - T0,
        "self_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    result = run(spec)
    Path(sys.argv[2]).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
