"""bfloat16 products with fixed content tables in the training step, where the hardware runs them natively.

Projecting an item content table (thousands of items by thousands of features) through a learned matrix is
a large part of a training step for VBPR-like models. In bfloat16 the same product takes a fraction of the time on
hardware with native bfloat16 arithmetic (CPUs with AVX-512 BF16 or AMX, recent GPUs), while the parameters,
their gradients' accumulation and the optimizer stay in float32, as in mixed-precision training. Scores for
evaluation and serving are always computed in float32.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from modalrec.errors import ConfigError

PRECISIONS = ("auto", "float32", "bfloat16")


def check_precision(value: str) -> None:
    """``model.train_precision`` is one of :data:`PRECISIONS`."""
    if value not in PRECISIONS:
        raise ConfigError("model.train_precision", f"must be one of {', '.join(PRECISIONS)}, got {value!r}")


@functools.lru_cache(maxsize=None)
def native_bfloat16(device_type: str) -> bool:
    """Whether devices of this type multiply bfloat16 matrices in hardware rather than by emulation (slower
    than float32 there)."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == "cpu":  # oneDNN's own check (AVX-512 BF16 or AMX); a torch without it: assume not
        supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return torch.backends.mkldnn.is_available() and supported is not None and bool(supported())
    return False


class TrainingTables:
    """Fixed tables as the training step multiplies them: float32, or a bfloat16 copy made once per table.

    ``precision`` is "float32", "bfloat16", or "auto": bfloat16 where :func:`native_bfloat16` holds for the
    table's device. The copies are not part of the model's state; they follow the table's device.
    """

    def __init__(self, precision: str) -> None:
        self.precision = precision
        self._copies: dict[int, tuple[Tensor, int, Tensor]] = {}  # id(table): (table, its version, copy)

    def dtype(self, device: torch.device) -> torch.dtype:
        low = self.precision == "bfloat16" or (self.precision == "auto" and native_bfloat16(device.type))
        return torch.bfloat16 if low else torch.float32

    def __call__(self, table: Tensor) -> Tensor:
        """``table`` in the training precision, copied again only when the table changed. Shapes: (N, F)."""
        dtype = self.dtype(table.device)
        if dtype == table.dtype:
            return table
        cached = self._copies.get(id(table))
        if cached is None or cached[0] is not table or cached[1] != table._version:
            cached = (table, table._version, table.detach().to(dtype))
            self._copies[id(table)] = cached
        return cached[2]


def project(table: Tensor, layer: nn.Linear) -> Tensor:
    """``layer(table)`` computed in ``table``'s dtype (the weights cast to it), returned as float32; the
    gradients reach the float32 weights through the cast.

    Shapes: (N, F) -> (N, out_features).
    """
    if table.dtype == layer.weight.dtype:
        return F.linear(table, layer.weight, layer.bias)
    bias = None if layer.bias is None else layer.bias.to(table.dtype)
    return F.linear(table, layer.weight.to(table.dtype), bias).float()


class ContentLinear(nn.Linear):
    """``nn.Linear`` for a layer that reads content: it also takes the bfloat16 copy a :class:`TrainingTables`
    gives, multiplies it in bfloat16 and returns float32 (:func:`project`). Same parameters as ``nn.Linear``."""

    def forward(self, input: Tensor) -> Tensor:
        return project(input, self)
