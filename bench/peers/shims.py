"""Runtime shims that let a peer toolkit's unmodified code run on this machine's numpy, scipy and torch.

Peers (MMRec at e775373, ColdRec) were written against older libraries. Rather than editing their code,
the child processes of ``bench/peers`` call :func:`apply` before importing it:

- ``np.float``/``np.int``/``np.bool``/``np.object`` (removed in numpy 1.24) are the Python builtins again;
- ``scipy.sparse.dok_matrix._update`` (removed in scipy 1.13; MMRec fills its adjacency with it) is a
  plain bulk insert into the matrix's dictionary, as it was;
- ``torch_scatter`` (a compiled extension that takes minutes to build, see ../shared/DEPENDENCIES.md),
  when absent, is a small module of ``scatter``/``scatter_add``/``scatter_mean``/``scatter_max``/
  ``scatter_sum``/``scatter_softmax`` built on ``torch.Tensor.scatter_reduce``;
- ``Tensor.cuda()``/``Module.cuda()``, which MMRec's SMORE and MGCN call unconditionally on their kNN
  graphs, leave the tensor where it is when torch has no CUDA device (the run stays on the CPU);
- ``torchvision`` (does not import beside the CPU torch wheel) and ``lmdb``, which MMRec imports at module
  level but uses only for end-to-end raw images, are stubs that raise if actually called.

Each shim is applied only when the real thing is missing, and :func:`apply` returns the names of those
applied, so a result file can say which were in effect.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types
from typing import Any


def apply() -> list[str]:
    """Install every shim that is needed; returns the names of the shims applied."""
    applied = []
    for name, shim in (("numpy-aliases", _numpy_aliases), ("dok_matrix._update", _dok_update),
                       ("torch_scatter", _torch_scatter), ("cuda-on-cpu", _cuda_on_cpu),
                       ("torchvision", _torchvision), ("lmdb", _lmdb)):
        if shim():
            applied.append(name)
    return applied


def _numpy_aliases() -> bool:
    import numpy as np

    missing = {name: kind for name, kind in (("float", float), ("int", int), ("bool", bool), ("object", object))
               if name not in np.__dict__}
    for name, kind in missing.items():
        setattr(np, name, kind)
    return bool(missing)


def dok_update(self: Any, data: dict[Any, Any]) -> None:
    """scipy < 1.13's ``dok_matrix._update``: insert the (row, col) -> value pairs without index checks."""
    store = getattr(self, "_dict", None)
    if isinstance(store, dict):
        store.update(data)
    else:
        dict.update(self, data)


def _dok_update() -> bool:
    import scipy.sparse as sp

    if hasattr(sp.dok_matrix, "_update"):
        return False
    setattr(sp.dok_matrix, "_update", dok_update)
    return True


def _missing(module: str) -> bool:
    if module in sys.modules:
        return False
    try:
        importlib.import_module(module)
    except Exception:  # noqa: BLE001 - torchvision fails with RuntimeError beside the CPU torch wheel
        sys.modules.pop(module, None)
        return True
    return False


def _torch_scatter() -> bool:
    if not _missing("torch_scatter"):
        return False
    sys.modules["torch_scatter"] = scatter_module()
    return True


def scatter_module() -> types.ModuleType:
    """A pure-torch ``torch_scatter`` with the functions and signatures MMRec's models call."""
    import torch

    def _expand(index: torch.Tensor, src: torch.Tensor, dim: int) -> torch.Tensor:
        dim = dim % src.dim()
        if index.dim() == 1:
            shape = [1] * src.dim()
            shape[dim] = -1
            index = index.view(shape)
        return index.expand_as(src)

    def _size(index: torch.Tensor, src: torch.Tensor, dim: int, dim_size: int | None) -> list[int]:
        size = list(src.shape)
        size[dim % src.dim()] = dim_size if dim_size is not None else int(index.max()) + 1 if index.numel() else 0
        return size

    def scatter_sum(src: torch.Tensor, index: torch.Tensor, dim: int = -1, out: torch.Tensor | None = None,
                    dim_size: int | None = None) -> torch.Tensor:
        full = _expand(index, src, dim)
        base = out if out is not None else src.new_zeros(_size(index, src, dim, dim_size))
        return base.scatter_add(dim, full, src)

    def scatter_mean(src: torch.Tensor, index: torch.Tensor, dim: int = -1, out: torch.Tensor | None = None,
                     dim_size: int | None = None) -> torch.Tensor:
        total = scatter_sum(src, index, dim, out, dim_size)
        count = scatter_sum(torch.ones_like(src), index, dim, None, total.shape[dim % src.dim()])
        return total / count.clamp(min=1)

    def _reduce(how: str) -> Any:
        def reduce(src: torch.Tensor, index: torch.Tensor, dim: int = -1, out: torch.Tensor | None = None,
                   dim_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
            full = _expand(index, src, dim)
            base = out if out is not None else src.new_zeros(_size(index, src, dim, dim_size))
            values = base.scatter_reduce(dim, full, src, reduce=how, include_self=False)
            return values, torch.zeros_like(values, dtype=torch.long)  # argmax/argmin are not computed
        return reduce

    def scatter(src: torch.Tensor, index: torch.Tensor, dim: int = -1, out: torch.Tensor | None = None,
                dim_size: int | None = None, reduce: str = "sum") -> torch.Tensor:
        if reduce in ("sum", "add"):
            return scatter_sum(src, index, dim, out, dim_size)
        if reduce == "mean":
            return scatter_mean(src, index, dim, out, dim_size)
        if reduce in ("max", "min", "mul"):
            how = {"max": "amax", "min": "amin", "mul": "prod"}[reduce]
            full = _expand(index, src, dim)
            base = out if out is not None else src.new_zeros(_size(index, src, dim, dim_size))
            return base.scatter_reduce(dim, full, src, reduce=how, include_self=False)
        raise ValueError(f"torch_scatter shim: unknown reduce '{reduce}'")

    def scatter_softmax(src: torch.Tensor, index: torch.Tensor, dim: int = -1,
                        dim_size: int | None = None) -> torch.Tensor:
        full = _expand(index, src, dim)
        peak = scatter(src, index, dim, dim_size=dim_size, reduce="max").gather(dim, full)
        exp = (src - peak).exp()
        return exp / scatter_sum(exp, index, dim, dim_size=dim_size).gather(dim, full)

    module = types.ModuleType("torch_scatter")
    module.__dict__.update(scatter=scatter, scatter_add=scatter_sum, scatter_sum=scatter_sum,
                           scatter_mean=scatter_mean, scatter_max=_reduce("amax"), scatter_min=_reduce("amin"),
                           scatter_softmax=scatter_softmax, __shim__=True)
    return module


def _stay(self: Any, *args: Any, **kwargs: Any) -> Any:
    """``.cuda()`` without a CUDA device: the object stays on the CPU."""
    return self


def _cuda_on_cpu() -> bool:
    import torch

    if torch.cuda.is_available():
        return False
    setattr(torch.Tensor, "cuda", _stay)
    setattr(torch.nn.Module, "cuda", _stay)
    return True


def _stub(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = []  # a package, so that submodules can be stubbed below it
    # a spec, for libraries that probe with importlib.util.find_spec (transformers, via torch_geometric);
    # with no version and no __file__ they then count the stub as absent
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)

    def __getattr__(attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)

        def unavailable(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(f"{name}.{attribute} is a bench/peers stub: the real module is not importable here")
        return unavailable

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    module.__dict__["__shim__"] = True
    return module


def _torchvision() -> bool:
    if not _missing("torchvision"):
        return False
    for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional"):
        sys.modules[name] = _stub(name)
    sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]  # type: ignore[attr-defined]
    sys.modules["torchvision.transforms"].functional = sys.modules["torchvision.transforms.functional"]  # type: ignore[attr-defined]
    return True


def _lmdb() -> bool:
    if not _missing("lmdb"):
        return False
    sys.modules["lmdb"] = _stub("lmdb")
    return True
