"""The one training loop: BPR triples, Adam, validation, early stopping, checkpoints and resume."""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import pickle
import random
import re
import time
import warnings
from dataclasses import dataclass, field
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from modalrec.config import EvalConfig, TrainConfig
from modalrec.data.sampler import NegativeSampler
from modalrec.data.split import Split
from modalrec.errors import ConfigError, ModalrecError, NotFittedError, RunFolderError, one_line, shorten
from modalrec.device import resolve_device
from modalrec.evaluate.evaluator import FullRankingEvaluator, JointEvaluator, MetricTable, make_evaluators
from modalrec.evaluate.metrics import parse_metric_name
from modalrec.evaluate.tasks import protocol_tasks, task_evaluators
from modalrec.io_utils import write_torch
from modalrec.models.base import Recommender, TrainBatch
from modalrec.progress import progress as progress_reporter
from modalrec.models.registry import capabilities_of
from modalrec.train.distributed import DistContext, broadcast_value
from modalrec.train.memory import keep_freed_memory

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_FORMAT = 2  # 2 added the numpy, python, CUDA and per-rank sampling random states


@dataclass
class TrainResult:
    """What a finished run reports: metrics at the best validation epoch and the per-epoch history."""

    best_epoch: int
    epochs: int
    train_seconds: float
    valid: dict[str, float]
    test: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    test_table: MetricTable | None = None
    closed_form: bool = False  # solved when the model was built (capabilities.closed_form): no epochs, no history
    # under the item cold-start protocol: task (cold, warm, overall) -> part (valid, test) -> metric -> mean
    tasks: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    task_tables: dict[str, MetricTable] = field(default_factory=dict)  # task -> its test table
    task_best_epochs: dict[str, int] = field(default_factory=dict)  # task -> the epoch its validation chose


@dataclass
class _Progress:
    """Everything needed to resume: saved in the checkpoint after each epoch."""

    epoch: int = 0
    best_value: float = -math.inf
    best_epoch: int = -1
    evaluations_without_improvement: int = 0
    train_seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    # under the cold protocol: task -> [best validation value, its epoch, evaluations without improvement]
    task_best: dict[str, list[float]] = field(default_factory=dict)


class _LossModule(nn.Module):
    """Exposes ``model.loss`` as ``forward``, the entry point DistributedDataParallel hooks into."""

    def __init__(self, model: Recommender) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: TrainBatch) -> Tensor:
        return self.model.loss(batch)


def make_adam(parameters: list[nn.Parameter], config: TrainConfig) -> torch.optim.Adam:
    """Adam over ``parameters``, one multi-tensor kernel per step. On CPU PyTorch otherwise loops over the
    tensors, slower at the same result bit for bit; ``train.fused_optimizer`` uses the fused kernel, faster
    again but equal only up to rounding (figures in docs/benchmarks/notes.md)."""
    fused = config.fused_optimizer
    return torch.optim.Adam(parameters or [nn.Parameter(torch.zeros(0))], lr=config.learning_rate,
                            weight_decay=config.weight_decay, foreach=not fused, fused=fused or None)


def cosine_learning_rate(config: TrainConfig, epoch: int) -> float:
    """The step size of ``epoch`` (0-based) under the cosine schedule: ``learning_rate`` at the first epoch,
    ``lr_floor x learning_rate`` at the last one (``train.epochs``), half a cosine period in between."""
    floor = config.learning_rate * config.lr_floor
    progress = epoch / max(config.epochs - 1, 1)
    return floor + (config.learning_rate - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class Trainer:
    """Trains any :class:`Recommender` on a :class:`Split` with BPR triples and early stopping.

    Args:
        model: the model, already constructed on the training graph.
        split: train/valid/test interactions.
        config: training settings.
        eval_config: evaluation settings.
        seed: seeds shuffling and negative sampling.
        checkpoint_dir: where ``checkpoint.pt`` (resume state) and ``best.pt`` (best weights) go; None keeps
            everything in memory.
        on_epoch_end: called with each epoch's record (epoch, loss, seconds, and the validation metric when
            evaluated); it may raise to stop training (hyper-parameter search prunes trials this way).
        dist_context: this process's rank in a torchrun job; each rank trains on its shard of every epoch
            with gradients averaged by DistributedDataParallel, and rank 0 evaluates and checkpoints.
    """

    def __init__(
        self,
        model: Recommender,
        split: Split,
        config: TrainConfig,
        eval_config: EvalConfig,
        *,
        seed: int = 2024,
        checkpoint_dir: Path | None = None,
        on_epoch_end: Callable[[dict[str, float]], None] | None = None,
        dist_context: DistContext | None = None,
    ) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self.model = model.to(self.device)
        self.split = split
        self.eval_config = eval_config
        self.evaluators = make_evaluators(split, eval_config)
        self.report_tasks = _report_tasks(model, split, eval_config, self.evaluators["valid"])
        for task in self.report_tasks:
            for part, evaluator in task_evaluators(split, eval_config, task).items():
                self.evaluators[f"{task}/{part}"] = evaluator
        # each task of the cold protocol selects its own epoch on its own validation set
        self.selected_tasks = self.report_tasks if len(self.report_tasks) > 1 else []
        self.task_states: dict[str, dict[str, Any]] = {}
        self.metric = config.early_stop_metric
        if parse_metric_name(self.metric)[1] not in eval_config.ks:
            raise ConfigError(
                "train.early_stop_metric", f"{self.metric} needs its cut-off in eval.ks, which is {eval_config.ks}"
            )
        self.checkpoint_dir = checkpoint_dir
        self.on_epoch_end = on_epoch_end
        trainable = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = make_adam(trainable, config)
        if config.keep_freed_memory:
            keep_freed_memory()
        self.dist = dist_context or DistContext()
        self.loss_module = self._wrap(model)
        if config.mixed_precision and self.device.type != "cuda":
            raise ConfigError("train.mixed_precision", f"needs a CUDA device; training runs on {self.device}")
        self.generator = torch.Generator().manual_seed(seed)  # shuffling: the same order on every rank
        self.sample_generator = (  # negatives: a different stream per rank
            self.generator if not self.dist.enabled else torch.Generator().manual_seed(seed + 7919 * self.dist.rank)
        )
        self.train_users = torch.from_numpy(split.train.users).long()
        self.train_items = torch.from_numpy(split.train.items).long()
        candidates = None if config.sample_cold_negatives else torch.unique(self.train_items)
        self.sampler = NegativeSampler(split.num_items, self.train_users, self.train_items, candidates)
        self.progress = _Progress()
        self.best_state: dict[str, Any] | None = None

    def _wrap(self, model: Recommender) -> nn.Module:
        loss_module = _LossModule(model)
        if not self.dist.enabled or not any(p.requires_grad for p in model.parameters()):
            return loss_module
        device_ids = [self.device] if self.device.type == "cuda" else None
        with warnings.catch_warnings():  # buffers (graphs, features) are built identically on every rank
            warnings.filterwarnings("ignore", message=".*broadcast_buffers.*", category=FutureWarning)
            return DistributedDataParallel(loss_module, device_ids=device_ids, broadcast_buffers=False,
                                           find_unused_parameters=self.config.find_unused_parameters)

    # -- the loop ---------------------------------------------------------------------------------

    def fit(self, *, resume: bool = False, evaluate_test: bool = True) -> TrainResult:
        """Train until ``epochs`` or early stopping, restore the best validation weights, evaluate.

        With ``evaluate_test=False`` the test split is not touched (``TrainResult.test`` is empty): tuning
        uses this so that only the final chosen configuration ever sees test data.
        """
        if resume:
            self._load_checkpoint()
        if capabilities_of(self.model).closed_form:  # solved when built: nothing to train
            self.best_state = copy.deepcopy(self.model.state_dict())
            self.progress.best_epoch = 0
            return dataclasses.replace(self._final_result(evaluate_test), closed_form=True)
        bar = progress_reporter(self.config.epochs, f"train {self.model.name}", "epoch",
                                enabled=self.config.progress, initial=self.progress.epoch)
        with bar:
            while self.progress.epoch < self.config.epochs and not self._should_stop():
                record = self._run_epoch()
                bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k in ("loss", self.metric)})
                bar.update(1)
        if self.best_state is None:
            self.best_state = copy.deepcopy(self.model.state_dict())
            self.progress.best_epoch = self.progress.epoch - 1
        self.model.load_state_dict(self.best_state)
        return self._final_result(evaluate_test)

    def _run_epoch(self) -> dict[str, float]:
        epoch = self.progress.epoch
        if self.config.lr_schedule == "cosine":
            self._set_learning_rate(cosine_learning_rate(self.config, epoch))
        start = time.perf_counter()
        loss = self.train_one_epoch()
        seconds = time.perf_counter() - start
        self.progress.train_seconds += seconds
        record: dict[str, float] = {"epoch": epoch, "loss": loss, "train_seconds": seconds}
        if self.config.lr_schedule != "constant":
            record["learning_rate"] = self.optimizer.param_groups[0]["lr"]
        if (epoch + 1) % self.config.eval_every == 0 or epoch + 1 == self.config.epochs:
            value = self._validate(record, epoch) if self.dist.is_main else 0.0
            record[self.metric] = broadcast_value(value, self.dist)
            record["eval_seconds"] = time.perf_counter() - start - seconds
            self._update_best(record[self.metric], epoch)
            self._cut_learning_rate_on_plateau()
        self.progress.history.append(record)
        self.progress.epoch += 1
        if self.progress.epoch % self.config.checkpoint_every == 0 or self.progress.epoch == self.config.epochs:
            self._save_checkpoint()
        if self.on_epoch_end is not None:
            self.on_epoch_end(record)
        return record

    def train_one_epoch(self) -> float:
        """One pass over the shuffled training pairs; returns the mean batch loss."""
        self.model.train()
        order = torch.randperm(len(self.train_users), generator=self.generator)
        batch_size = self.config.batch_size
        if self.dist.enabled:  # equal shards, so every rank takes the same number of steps
            order = order[: len(order) - len(order) % self.dist.world_size][self.dist.rank :: self.dist.world_size]
            batch_size = max(1, batch_size // self.dist.world_size)
        total, batches = 0.0, 0
        for chunk in torch.split(order, batch_size):
            users = self.train_users[chunk]
            batch = TrainBatch(users, self.train_items[chunk], self.sampler.sample(users, self.sample_generator))
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.mixed_precision):
                loss = self.loss_module(batch.to(self.device))
            if not torch.isfinite(loss):
                raise ModalrecError(
                    f"the loss became {loss.item()} at epoch {self.progress.epoch}; "
                    "lower train.learning_rate or raise the model's reg_weight"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.item()
            batches += 1
        return total / max(batches, 1)

    def evaluate(self, part: str) -> MetricTable:
        return self.evaluate_splits([part])[part]

    def evaluate_splits(self, parts: Sequence[str]) -> dict[str, MetricTable]:
        """Tables of several splits; splits that rank alike share one scoring and ranking of each user."""
        self.model.eval()
        joint = JointEvaluator({part: self.evaluators[part] for part in parts})
        return joint.evaluate(self.model.ranking_scorer(), self.device)

    def _validate(self, record: dict[str, float], epoch: int) -> float:
        """The selection metric on ``eval.task``'s validation set; under the cold protocol each reported
        task's validation metric too (into ``record``), each task keeping the weights of its own best epoch."""
        tables = self.evaluate_splits(["valid", *(f"{task}/valid" for task in self.selected_tasks)])
        for task in self.selected_tasks:
            value = tables[f"{task}/valid"].mean()[self.metric]
            record[f"{task}_{self.metric}"] = value
            best = self.progress.task_best.setdefault(task, [-math.inf, -1, 0])
            if value > best[0]:
                best[:] = [value, epoch, 0]
                self.task_states[task] = copy.deepcopy(self.model.state_dict())
            else:
                best[2] += 1
        return tables["valid"].mean()[self.metric]

    def _update_best(self, value: float, epoch: int) -> None:
        if value > self.progress.best_value:
            self.progress.best_value = value
            self.progress.best_epoch = epoch
            self.progress.evaluations_without_improvement = 0
            self.best_state = copy.deepcopy(self.model.state_dict())
        else:
            self.progress.evaluations_without_improvement += 1

    def _cut_learning_rate_on_plateau(self) -> None:
        """Under the plateau schedule, every ``lr_patience`` evaluations without improvement multiply the step
        size by ``lr_decay``, down to ``lr_floor x learning_rate``. The count comes from the progress and the
        step size lives in the optimizer's state, so a resumed run cuts at the same epochs."""
        stalled = self.progress.evaluations_without_improvement
        if self.config.lr_schedule != "plateau" or stalled == 0 or stalled % self.config.lr_patience:
            return
        floor = self.config.learning_rate * self.config.lr_floor
        self._set_learning_rate(max(self.optimizer.param_groups[0]["lr"] * self.config.lr_decay, floor))

    def _set_learning_rate(self, value: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = value

    def _should_stop(self) -> bool:
        patience = self.config.patience
        tasks_done = all(best[2] >= patience for best in self.progress.task_best.values())
        return patience > 0 and self.progress.evaluations_without_improvement >= patience and tasks_done

    def _final_result(self, evaluate_test: bool) -> TrainResult:
        if not self.dist.is_main:  # rank 0 reports for the job
            return TrainResult(self.progress.best_epoch, self.progress.epoch, self.progress.train_seconds, {}, {},
                               self.progress.history)
        parts = ["valid", "test"] if evaluate_test else ["valid"]
        tables: dict[str, MetricTable] = {}
        for task in self.report_tasks:  # each task at the weights its own validation chose
            if task in self.task_states:
                self.model.load_state_dict(self.task_states[task])
            tables.update(self.evaluate_splits([f"{task}/{part}" for part in parts]))
        if self.task_states and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        tables.update(self.evaluate_splits(parts))
        valid, test = tables["valid"], tables.get("test")
        return TrainResult(
            best_epoch=self.progress.best_epoch,
            epochs=self.progress.epoch,
            train_seconds=self.progress.train_seconds,
            valid=valid.mean(),
            test={} if test is None else test.mean(),
            history=self.progress.history,
            test_table=test,
            tasks={task: {part: tables[f"{task}/{part}"].mean() for part in parts} for task in self.report_tasks},
            task_tables={task: tables[f"{task}/test"] for task in self.report_tasks if evaluate_test},
            task_best_epochs={task: int(self.progress.task_best[task][1]) if task in self.progress.task_best
                              else self.progress.best_epoch for task in self.report_tasks},
        )

    # -- checkpoints ------------------------------------------------------------------------------

    def _save_checkpoint(self) -> None:
        """Write ``checkpoint.pt`` atomically: weights, optimizer, every random state and the progress.

        Resuming from it continues bit for bit as if the run had not stopped (on the same device and threads).
        """
        if self.checkpoint_dir is None or not self.dist.is_main:
            return
        payload = {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "best_model": self.best_state,
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "sample_generator": self.sample_generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
            "progress": dataclasses.asdict(self.progress),
        }
        write_torch(self.checkpoint_dir / CHECKPOINT_FILE, payload)

    def _load_checkpoint(self) -> None:
        path = None if self.checkpoint_dir is None else self.checkpoint_dir / CHECKPOINT_FILE
        if path is None or not path.is_file():
            raise NotFittedError(f"{path}: no checkpoint to resume from")
        payload = _read_checkpoint(path, self.device)
        try:
            self._restore(payload)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            reason = one_line(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise RunFolderError(f"{path}: does not fit this run ({shorten(reason)}); "
                                 "start the run again with --overwrite") from None
        log.info("resumed from %s at epoch %d", path, self.progress.epoch)

    def _restore(self, payload: dict[str, Any]) -> None:
        self.model.load_state_dict(payload["model"])
        self.best_state = payload["best_model"]
        self.optimizer.load_state_dict(payload["optimizer"])
        self.generator.set_state(payload["generator"])
        if self.sample_generator is not self.generator and payload.get("sample_generator") is not None:
            self.sample_generator.set_state(payload["sample_generator"])
        torch.set_rng_state(payload["torch_rng"])
        if payload.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(payload["cuda_rng"])
        if payload.get("numpy_rng") is not None:
            np.random.set_state(payload["numpy_rng"])
        if payload.get("python_rng") is not None:
            random.setstate(payload["python_rng"])
        self.progress = _Progress(**payload["progress"])


def _report_tasks(model: Recommender, split: Split, eval_config: EvalConfig,
                  selection: FullRankingEvaluator) -> list[str]:
    """The tasks the final result reports (see :func:`~modalrec.evaluate.tasks.protocol_tasks`); the model
    selection task must be one the model can do and must have validation targets."""
    scores_cold = not model.name or capabilities_of(model).cold_items  # for this model's own config
    if eval_config.task == "cold" and not scores_cold:
        raise ConfigError("eval.task", f"{model.name} cannot score cold items (it has no content path); "
                          "choose warm or overall")
    if eval_config.task != "overall" and not len(selection.users):
        raise ConfigError("eval.task", f"the validation set has no interaction for the {eval_config.task} task "
                          "(the cold task needs data.cold_item_fraction > 0 or a given cold split)")
    return protocol_tasks(split, scores_cold)


CHECKPOINT_KEYS = ("model", "best_model", "optimizer", "generator", "torch_rng", "progress")


def _numpy_globals() -> list[Any]:
    """What a pickled numpy array refers to: its rebuild function, ndarray and the dtypes (no code runs)."""
    rebuild = np.zeros(1).__reduce__()[0]
    return [rebuild, np.ndarray, np.dtype, type(np.dtype(np.uint32)), type(np.dtype(np.float64))]


def _read_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """``checkpoint.pt`` through torch's weights-only unpickler: tensors, containers, numbers and numpy's
    random state load; anything that would import or call other code is refused, so a crafted file in a run
    folder cannot run code. A file without the keys a checkpoint holds is a RunFolderError naming them."""
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            payload = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        what = f"it refers to {refused.group(1)}" if refused else "it holds more than tensors and numbers"
        raise RunFolderError(f"{path}: refused: not a checkpoint modalrec wrote ({shorten(what)}); loading it "
                             "could run code; start the run again with --overwrite") from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        reason = one_line(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise RunFolderError(f"{path}: cannot be read ({shorten(reason)}); "
                             "start the run again with --overwrite") from None
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(payload, dict) or key not in payload]
    if missing:
        raise RunFolderError(f"{path}: not a complete checkpoint (missing {', '.join(missing)}); "
                             "start the run again with --overwrite")
    return payload
