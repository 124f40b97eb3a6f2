"""The floor of a training epoch: its matrix products (sparse and dense, forward and backward) timed alone.

:class:`MatmulRecorder` watches every ATen call of a real epoch (a ``TorchDispatchMode``, so the products
inside autograd's backward pass are seen too) and groups the matrix products by signature (operator,
shapes, layouts, stored values). It keeps the arguments of the first call of each group, up to a memory
budget, and also times every call where it runs. :meth:`MatmulRecorder.floor` replays each kept group on
its arguments, timed alone, and sums calls x time; groups over the budget (say, products whose row count
changes with every batch) count with their in-place times. Everything else an epoch does (sampling,
gathers, element-wise ops, the optimiser step, Python) is overhead above that floor.
"""

from __future__ import annotations

import statistics
import time
from functools import partial
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

PRODUCTS = {"mm", "addmm", "bmm", "baddbmm", "addmv", "mv", "_sparse_addmm", "_sparse_mm", "_sparse_csr_mm"}
KEPT_BYTES = 2**30  # arguments kept for replay, at most


@dataclass
class _Group:
    func: Any
    args: tuple[Any, ...] | None  # None: over the budget, only timed in place
    kwargs: dict[str, Any]
    calls: int = 0
    in_place_wall: float = 0.0  # summed over calls
    in_place_cpu: float = 0.0
    wall: float = 0.0  # per call, replayed alone (or the in-place mean)
    cpu: float = 0.0


class MatmulRecorder(TorchDispatchMode):
    """Records the matrix products run under ``with recorder:``; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.groups: dict[tuple[Any, ...], _Group] = {}
        self.kept_bytes = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func.overloadpacket.__name__ not in PRODUCTS:
            return func(*args, **kwargs)
        key = (func, *(_signature(a) for a in args), *((k, _signature(v)) for k, v in sorted(kwargs.items())))
        group = self.groups.get(key)
        if group is None:
            size = _bytes(args) + _bytes(kwargs)
            keep = self.kept_bytes + size <= KEPT_BYTES
            self.kept_bytes += size if keep else 0
            group = self.groups[key] = _Group(func, _copy(args) if keep else None, _copy(kwargs) if keep else {})
        wall, cpu = time.perf_counter(), time.process_time()
        result = func(*args, **kwargs)
        group.in_place_wall += time.perf_counter() - wall
        group.in_place_cpu += time.process_time() - cpu
        group.calls += 1
        return result

    def floor(self, repeats: int = 3) -> tuple[float, float]:
        """(wall, CPU) seconds of the recorded products: replayed alone where kept, else as timed in place."""
        with torch.no_grad():
            for group in self.groups.values():
                if group.args is None:
                    group.wall, group.cpu = group.in_place_wall / group.calls, group.in_place_cpu / group.calls
                else:
                    group.wall, group.cpu = _median_seconds(partial(_replay, group), repeats)
                    group.args, group.kwargs = None, {}  # free the copies
        groups = self.groups.values()
        return sum(g.calls * g.wall for g in groups), sum(g.calls * g.cpu for g in groups)

    def in_place(self) -> tuple[float, float]:
        """(wall, CPU) seconds the products took inside the epoch."""
        groups = self.groups.values()
        return sum(g.in_place_wall for g in groups), sum(g.in_place_cpu for g in groups)

    def table(self) -> list[tuple[str, int, float]]:
        """(description, calls, CPU seconds per call) per group, most expensive first (after :meth:`floor`)."""
        rows = [(_describe(key), g.calls, g.cpu) for key, g in self.groups.items()]
        return sorted(rows, key=lambda row: -row[1] * row[2])


def _replay(group: _Group) -> Any:
    assert group.args is not None
    return group.func(*group.args, **group.kwargs)


def _signature(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        nnz = value._nnz() if value.layout != torch.strided else None
        return (tuple(value.shape), value.layout, value.dtype, nnz, value.is_contiguous() if nnz is None else None)
    if isinstance(value, (list, tuple)):
        return tuple(_signature(v) for v in value)
    return value


def _bytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        if value.layout == torch.strided:
            return value.numel() * value.element_size()
        return value._nnz() * (value.element_size() + 8)
    if isinstance(value, (list, tuple)):
        return sum(_bytes(v) for v in value)
    if isinstance(value, dict):
        return sum(_bytes(v) for v in value.values())
    return 0


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


def _describe(key: tuple[Any, ...]) -> str:
    func, *signatures = key
    shapes = []
    for signature in signatures:
        if isinstance(signature, tuple) and len(signature) == 5 and isinstance(signature[0], tuple):
            shape, layout, _, nnz, _ = signature
            kind = "" if nnz is None else f"{str(layout).split('_')[-1]} nnz={nnz} "
            shapes.append(kind + "x".join(str(s) for s in shape))
    return f"{func.overloadpacket.__name__}({', '.join(shapes)})"


def _median_seconds(run: Callable[[], Any], repeats: int) -> tuple[float, float]:
    run()  # warm-up
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)
