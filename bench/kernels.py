"""The floor of a training epoch: its matrix products (sparse and dense, forward and backward) timed alone.

:class:`MatmulRecorder` watches every ATen call of a real epoch (a ``TorchDispatchMode``, so the products
inside autograd's backward pass are seen too), groups the matrix products by signature (operator, shapes,
layouts, stored values) and keeps the arguments of the first call of each group. :meth:`MatmulRecorder.floor`
then replays each group on those arguments, timed alone, and returns the sum over groups of calls x time.
Everything else an epoch does (sampling, gathers, element-wise ops, the optimiser step, Python) is overhead
above that floor.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

PRODUCTS = {"mm", "addmm", "bmm", "baddbmm", "addmv", "mv", "_sparse_addmm", "_sparse_mm", "_sparse_csr_mm"}


@dataclass
class _Group:
    func: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    calls: int = 0
    seconds: float = 0.0  # wall-clock, per call
    cpu_seconds: float = 0.0  # process CPU time, per call


@dataclass
class MatmulRecorder(TorchDispatchMode):
    """Records the matrix products run under ``with recorder:``; see the module docstring."""

    groups: dict[tuple[Any, ...], _Group] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__()

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func.overloadpacket.__name__ in PRODUCTS:
            key = (func, *(_signature(a) for a in args), *((k, _signature(v)) for k, v in sorted(kwargs.items())))
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = _Group(func, _copy(args), _copy(kwargs))
            group.calls += 1
        return func(*args, **kwargs)

    def floor(self, repeats: int = 3) -> tuple[float, float]:
        """(wall, CPU) seconds the recorded products take when each is replayed alone (medians of ``repeats``)."""
        with torch.no_grad():
            for group in self.groups.values():
                group.seconds, group.cpu_seconds = _median_seconds(lambda g=group: g.func(*g.args, **g.kwargs), repeats)
        groups = self.groups.values()
        return sum(g.calls * g.seconds for g in groups), sum(g.calls * g.cpu_seconds for g in groups)

    def table(self) -> list[tuple[str, int, float]]:
        """(description, calls, CPU seconds per call) per group, most expensive first (after :meth:`floor`)."""
        rows = [(_describe(g), g.calls, g.cpu_seconds) for g in self.groups.values()]
        return sorted(rows, key=lambda row: -row[1] * row[2])


def _signature(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        nnz = value._nnz() if value.layout != torch.strided else None
        return (tuple(value.shape), value.layout, value.dtype, nnz, value.is_contiguous() if nnz is None else None)
    if isinstance(value, (list, tuple)):
        return tuple(_signature(v) for v in value)
    return value


def _copy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, tuple):
        return tuple(_copy(v) for v in value)
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _describe(group: _Group) -> str:
    shapes = []
    for arg in group.args:
        if isinstance(arg, torch.Tensor):
            kind = "" if arg.layout == torch.strided else f"{str(arg.layout).split('_')[-1]} nnz={arg._nnz()} "
            shapes.append(kind + "x".join(str(s) for s in arg.shape))
    return f"{group.func.overloadpacket.__name__}({', '.join(shapes)})"


def _median_seconds(run: Callable[[], Any], repeats: int) -> tuple[float, float]:
    run()  # warm-up
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)
