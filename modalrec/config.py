"""Typed configuration: dataclasses for data, training and evaluation, and the loader.

A run is configured by a TOML or YAML file with the sections ``[data]``, ``[train]``, ``[eval]`` and
``[model]`` (the chosen model's own dataclass), then by ``--set key=value`` overrides. A key may be
qualified (``train.epochs=5``) or bare (``epochs=5``) when exactly one section has it. Unknown keys and
values of the wrong type raise :class:`~modalrec.errors.ConfigError` naming the key (and the file).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import json
import math
import textwrap
import tokenize
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from modalrec.errors import ConfigError, quoted
from modalrec.metric_names import parse_metric_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as the backport (a dependency there)
    import tomli as tomllib  # type: ignore[no-redef]

T = TypeVar("T")

SPLIT_METHODS = ("auto", "given", "random", "user_time", "global_time")
DATA_FORMATS = ("auto", "mmrec", "table", "movielens", "coldrec")
EVAL_TASKS = ("overall", "warm", "cold")
LR_SCHEDULES = ("constant", "cosine", "plateau")


@dataclass(frozen=True)
class DataConfig:
    """How interactions and item features are read, filtered and split."""

    format: str = "auto"  # auto | mmrec | table (CSV/Parquet) | movielens
    user_col: str = "user_id"  # column names for the table format
    item_col: str = "item_id"  # the item column for the table format
    rating_col: str = "rating"  # used when present
    timestamp_col: str = "timestamp"  # used when present
    split_col: str = ""  # a column holding 0=train 1=valid 2=test, for split="given"
    sep: str = ""  # field separator for CSV; "" = by extension (.tsv/.inter tab, else comma)
    features: dict[str, str] = field(default_factory=dict)  # modality -> .npy/.parquet path (table format)
    item_ids_file: str = ""  # one item id per line, row i of every .npy feature file
    rating_threshold: float | None = None  # keep interactions with rating >= threshold
    deduplicate: bool = True  # keep the first (earliest) of repeated user-item pairs
    min_user_interactions: int = 0  # iterative k-core: users need at least this many
    min_item_interactions: int = 0  # iterative k-core: items need at least this many
    split: str = "auto"  # auto (given when present, else random) | given | random | user_time | global_time
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train, valid, test
    split_seed: int = 2024  # seed of the random split (and of the cold-item draw)
    cold_item_fraction: float = 0.0  # hold out this fraction of items entirely (item cold start, ColdRec's protocol)
    cold_valid_share: float = 0.5  # of the held-out items, this share goes to cold-valid, the rest to cold-test
    train_fraction: float = 1.0  # sparsity: keep this seeded fraction of each user's training interactions

    def __post_init__(self) -> None:
        _choice("data.format", self.format, DATA_FORMATS)
        _choice("data.split", self.split, SPLIT_METHODS)
        if len(self.split_ratios) != 3 or not all(math.isfinite(r) and r >= 0 for r in self.split_ratios):
            raise ConfigError("data.split_ratios", f"expected three non-negative numbers, got {self.split_ratios}")
        if abs(sum(self.split_ratios) - 1.0) > 1e-6:
            raise ConfigError("data.split_ratios", f"must sum to 1, got {sum(self.split_ratios):g}")
        if not 0.0 <= self.cold_item_fraction < 1.0:
            raise ConfigError("data.cold_item_fraction", f"expected a fraction in [0, 1), got {self.cold_item_fraction}")
        if not 0.0 <= self.cold_valid_share <= 1.0:
            raise ConfigError("data.cold_valid_share", f"expected a fraction in [0, 1], got {self.cold_valid_share}")
        if not 0.0 < self.train_fraction <= 1.0:
            raise ConfigError("data.train_fraction", f"expected a fraction in (0, 1], got {self.train_fraction}")
        for name in ("min_user_interactions", "min_item_interactions", "split_seed"):
            if getattr(self, name) < 0:
                raise ConfigError(f"data.{name}", f"must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class TrainConfig:
    """The Trainer's settings, shared by every model."""

    epochs: int = 300  # most passes over the training interactions (early stopping may end sooner)
    batch_size: int = 2048  # BPR triples per optimisation step
    learning_rate: float = 1e-3  # Adam's step size
    lr_schedule: str = "constant"  # constant | cosine (down to lr_floor at the last epoch) | plateau (x lr_decay when validation stalls)
    lr_floor: float = 0.01  # the schedules' smallest step size, as a fraction of learning_rate
    lr_decay: float = 0.5  # plateau: the step size is multiplied by this after lr_patience evaluations without improvement
    lr_patience: int = 5  # plateau: evaluations without improvement before each cut of the step size
    weight_decay: float = 0.0  # Adam's L2 on all parameters; models add their own reg_weight
    patience: int = 20  # evaluations without improvement before stopping (0 disables early stopping)
    eval_every: int = 1  # validate every N epochs
    early_stop_metric: str = "recall@20"  # a validation metric name, e.g. ndcg@10
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch CPU threads; 0 = $OMP_NUM_THREADS if set, else 1
    checkpoint_every: int = 1  # write a resumable checkpoint every N epochs
    progress: bool = True  # show a progress bar
    sample_cold_negatives: bool = False  # also draw negatives among items with no training interaction
    mixed_precision: bool = False  # bfloat16 autocast for the training step (CUDA only)
    fused_optimizer: bool = False  # Adam's fused kernel: faster steps, equal up to rounding (not bit for bit)
    keep_freed_memory: bool = False  # glibc keeps freed blocks: faster steps at large scale, RSS stays at its peak
    find_unused_parameters: bool = False  # DDP: set for models whose loss leaves some parameters unused
    distributed_timeout_s: float = 1800.0  # torchrun jobs: longest wait in a collective, e.g. while rank 0 evaluates

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name}", f"must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ConfigError("train.learning_rate", f"must be > 0, got {self.learning_rate}")
        _choice("train.lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_range("train.lr_floor", self.lr_floor, low=0, high=1)
        check_range("train.lr_decay", self.lr_decay, low=0, high=1, low_open=True, high_open=True)
        check_range("train.lr_patience", self.lr_patience, low=1)
        check_range("train.distributed_timeout_s", self.distributed_timeout_s, low=0, low_open=True)
        if self.patience < 0 or self.threads < 0 or self.weight_decay < 0:
            raise ConfigError("train", "patience, threads and weight_decay must be >= 0")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError("train.device", f"expected auto, cpu, cuda or cuda:N, got '{self.device}'")
        try:
            parse_metric_name(self.early_stop_metric)
        except ValueError as exc:
            raise ConfigError("train.early_stop_metric", str(exc)) from None


@dataclass(frozen=True)
class EvalConfig:
    """Full-ranking evaluation settings."""

    ks: tuple[int, ...] = (10, 20, 50)  # cut-offs for every metric
    user_batch_size: int = 1024  # users scored at once; bounds memory to user_batch_size x num_items
    mask_valid_at_test: bool = False  # also exclude validation items when ranking for the test split
    task: str = "overall"  # overall (all items) | warm (warm items only) | cold (cold items only): drives early stopping
    cold_candidates: str = "split"  # cold task ranks: split = that part's cold items | all = every cold item (ColdRec)
    user_buckets: tuple[int, ...] = (5, 20)  # activity buckets by training interactions: 1-5, 6-20, 21+

    def __post_init__(self) -> None:
        if not self.ks or any(k < 1 for k in self.ks):
            raise ConfigError("eval.ks", f"expected positive cut-offs, got {self.ks}")
        _choice("eval.task", self.task, EVAL_TASKS)
        _choice("eval.cold_candidates", self.cold_candidates, ("split", "all"))
        if any(b < 1 for b in self.user_buckets) or list(self.user_buckets) != sorted(set(self.user_buckets)):
            raise ConfigError("eval.user_buckets", f"expected increasing positive bounds, got {self.user_buckets}")
        if self.user_batch_size < 1:
            raise ConfigError("eval.user_batch_size", "must be >= 1")


# ---------------------------------------------------------------------------------------------
# Building dataclasses from mappings, with type checks

def check_range(key: str, value: float, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> None:
    """Raise :class:`ConfigError` naming ``key`` unless ``low <= value <= high`` (``<`` where the bound is open).

    >>> check_range("model.dropout", 0.5, low=0, high=1, high_open=True)
    """
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not (too_low or too_high):
        return
    if low is not None and high is not None:
        wanted = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        wanted = f"{'>' if low_open else '>='} {low:g}"
    else:
        wanted = f"{'<' if high_open else '<='} {high:g}"
    raise ConfigError(key, f"must be {wanted}, got {value}")


def check_at_least(section: str, low: float, **values: float) -> None:
    """:func:`check_range` with the same lower bound for several keys of ``section``: each ``value >= low``."""
    for name, value in values.items():
        check_range(f"{section}.{name}", value, low=low)


def build(cls: type[T], values: Mapping[str, Any], *, section: str = "", file: str | Path | None = None) -> T:
    """Instantiate dataclass ``cls`` from ``values``, coercing types and rejecting unknown keys."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, raw in values.items():
        qualified = f"{section}.{key}" if section else key
        if key not in names:
            raise ConfigError(qualified, f"unknown key; expected one of: {', '.join(sorted(names))}", file=file)
        kwargs[key] = coerce(raw, hints[key], qualified, file)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if file is not None and exc.file is None:
            raise ConfigError(exc.key, exc.detail, file=file) from None
        raise


def coerce(value: Any, annotation: Any, key: str, file: str | Path | None = None) -> Any:
    """Convert ``value`` (from TOML, YAML or a ``--set`` string) to ``annotation`` or raise ConfigError."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], key, file)
    if isinstance(value, str) and annotation is not str:
        value = _parse_scalar(value)
    try:
        if annotation is bool:
            if isinstance(value, bool):
                return value
            raise TypeError
        if annotation is int:
            if isinstance(value, bool) or not isinstance(value, int | float) or not _whole(value):
                raise TypeError
            return int(value)
        if annotation is float:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise TypeError
            return float(value)
        if annotation is str:
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise TypeError
            return str(value)
        if origin is tuple:
            items = _as_list(value)
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(coerce(v, args[0], key, file) for v in items)
            if len(items) != len(args):
                raise TypeError
            return tuple(coerce(v, a, key, file) for v, a in zip(items, args, strict=True))
        if origin is dict:
            if not isinstance(value, Mapping):
                raise TypeError
            return {str(k): coerce(v, args[1], f"{key}.{k}", file) for k, v in value.items()}
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(key, f"expected {_type_name(annotation)}, found {quoted(value)}", file=file) from None
    raise ConfigError(key, f"unsupported type {annotation}", file=file)


def _whole(value: int | float) -> bool:
    return isinstance(value, int) or (math.isfinite(value) and value == int(value))


def _parse_scalar(text: str) -> Any:
    for number in (int, float):  # YAML 1.1 reads "1e9" as a string
        try:
            return number(text)
        except ValueError:
            pass
    try:
        check_yaml_limits(text, Path("--set"))
        return yaml.safe_load(text)
    except (yaml.YAMLError, ConfigError, RecursionError):
        return text  # kept as the string it is: the type check then names the key


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, int | float):
        return [value]
    raise TypeError


def _type_name(annotation: Any) -> str:
    if annotation in (int, float, str, bool):
        return {int: "an integer", float: "a finite number", str: "a string", bool: "true or false"}[annotation]
    return str(annotation).replace("typing.", "")


def _choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(key, f"expected one of {', '.join(choices)}, got '{value}'")


def field_help(cls: type) -> dict[str, str]:
    """Each field's one-line help: ``field(metadata={"help": ...})`` when given, else the comment that ends
    the field's line in the class source (the house style), else the comment on the line above it. A field
    with none of these gets "".
    """
    comments: dict[str, str] = {}
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (a class made at run time)
        source = ""
    if source:
        tokens = [token for token in tokenize.generate_tokens(io.StringIO(source).readline)
                  if token.type == tokenize.COMMENT]
        by_line = {token.start[0]: token.string.lstrip("#").strip() for token in tokens}
        alone = {token.start[0]: by_line[token.start[0]] for token in tokens if token.line.lstrip().startswith("#")}
        body = ast.parse(source).body[0]
        for node in getattr(body, "body", []):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.end_lineno:
                comments[node.target.id] = by_line.get(node.end_lineno) or alone.get(node.lineno - 1, "")
    return {f.name: str(f.metadata.get("help") or comments.get(f.name, "")) for f in dataclasses.fields(cls)}


def to_dict(obj: Any) -> dict[str, Any]:
    """A JSON/TOML-friendly dict of a dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(obj)))


# ---------------------------------------------------------------------------------------------
# Files and overrides

SECTIONS = ("data", "train", "eval", "model")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file into ``{section: {key: value}}``.

    The file is UTF-8 text (a byte-order mark is allowed); a YAML mapping may not repeat a key.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError("--config", f"file not found: {path}")
    if path.suffix not in (".toml", ".yaml", ".yml"):
        raise ConfigError("--config", f"{path}: expected a .toml, .yaml or .yml file")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError("--config", f"{path}: {size} bytes; a config file may hold at most {MAX_CONFIG_BYTES}")
    text = _config_text(path)
    try:
        if path.suffix == ".toml":
            raw = tomllib.loads(text)
        else:
            check_yaml_limits(text, path)
            raw = yaml.load(text, Loader=_UniqueKeyLoader) or {}
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError("--config", f"{path}: not valid {path.suffix[1:].upper()}: {detail}") from None
    except RecursionError:
        raise ConfigError("--config", f"{path}: nested too deeply (at most {MAX_CONFIG_DEPTH} levels)") from None
    if not isinstance(raw, dict):
        raise ConfigError("--config", f"{path}: expected a mapping of sections, found a {type(raw).__name__}")
    result: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "model_name":
            if not isinstance(value, str):
                raise ConfigError(key, f"expected a model name (a string), found {quoted(value)}", file=path)
            result[key] = value
        elif key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(str(key), f"expected a section of key = value settings, found {quoted(value)}", file=path)
            result[key] = value
        else:
            raise ConfigError(
                str(key), f"unknown top-level key; expected sections {', '.join(SECTIONS)} or model_name", file=path
            )
    return result


MAX_CONFIG_BYTES = 1 << 20  # a config is a few hundred bytes; a megabyte is already absurd
MAX_CONFIG_DEPTH = 16  # nesting of mappings and lists; sections and their tables need 3
MAX_CONFIG_NODES = 10_000  # values after every alias is expanded: stops "billion laughs" before it expands


def check_yaml_limits(text: str, path: Path) -> None:
    """Refuse a YAML text whose nesting is deeper than :data:`MAX_CONFIG_DEPTH` or which, with its aliases
    (``*name``) expanded, would hold more than :data:`MAX_CONFIG_NODES` values.

    It walks the parser's event stream once, counting each anchored node's expanded size, so a file of a
    few hundred bytes that would expand to gigabytes is refused after reading those few hundred bytes.
    """
    sizes: dict[str, int] = {}  # anchor -> expanded size of its node
    stack: list[list[Any]] = [[0, None]]  # per open collection: [expanded size so far, its anchor]
    total = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(stack) > MAX_CONFIG_DEPTH:
                raise ConfigError("--config", f"{path}: line {_line(event)}: nested deeper than "
                                              f"{MAX_CONFIG_DEPTH} levels")
            stack.append([1, event.anchor])
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            size, anchor = stack.pop()
        elif isinstance(event, yaml.AliasEvent):
            size, anchor = sizes.get(event.anchor or "", 1), None
        elif isinstance(event, yaml.ScalarEvent):
            size, anchor = 1, event.anchor
        else:
            continue
        if anchor:
            sizes[anchor] = size
        stack[-1][0] += size
        total = stack[0][0] + sum(open_size for open_size, _ in stack[1:])
        if total > MAX_CONFIG_NODES:
            raise ConfigError("--config", f"{path}: line {_line(event)}: with its aliases (*name) "
                                          f"expanded the file would hold more than {MAX_CONFIG_NODES} values")


def _line(event: yaml.Event) -> int | str:
    return "?" if event.start_mark is None else event.start_mark.line + 1


def _config_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        encoding = "UTF-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "UTF-8"
        raise ConfigError("--config", f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}"
                                      f"{'; the file is ' + encoding if encoding != 'UTF-8' else ''}); save it as UTF-8"
                          ) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key repeated in one mapping (PyYAML would keep the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice in one mapping", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def apply_overrides(
    sections: dict[str, dict[str, Any]],
    overrides: list[str],
    section_types: Mapping[str, type],
) -> dict[str, dict[str, Any]]:
    """Apply ``key=value`` strings; bare keys resolve to the single section that defines them."""
    merged = {name: dict(values) for name, values in sections.items()}
    for text in overrides:
        if "=" not in text:
            raise ConfigError(text, "expected --set key=value")
        key, value = (part.strip() for part in text.split("=", 1))
        head, _, rest = key.partition(".")
        if rest and head in section_types:
            section, name = head, rest
        else:
            name = key
            owners = [s for s, cls in section_types.items() if name in {f.name for f in dataclasses.fields(cls)}]
            if not owners:
                raise ConfigError(key, "unknown key in every section (" + ", ".join(section_types) + ")")
            if len(owners) > 1:
                raise ConfigError(key, f"ambiguous; qualify it as one of {', '.join(f'{o}.{name}' for o in owners)}")
            section = owners[0]
        if "." in name:  # data.features.image=path
            top, _, sub = name.partition(".")
            merged.setdefault(section, {}).setdefault(top, {})[sub] = value
        else:
            merged.setdefault(section, {})[name] = value
    return merged
