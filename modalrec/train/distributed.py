"""Multi-process training with PyTorch's own engine: torch.distributed + DistributedDataParallel.

Launch with ``torchrun --nnodes N --nproc-per-node P -m modalrec train ...``. torchrun sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address; every process reads the same data, trains on
its shard of each epoch's batches with gradients averaged by DDP, and rank 0 evaluates and writes the run
folder. The backend is gloo on CPU and NCCL on CUDA.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from modalrec.errors import ModalrecError


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job; the default is a single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment() -> DistContext:
    """The context torchrun describes in the environment, or a single process when it is absent."""
    try:
        rank = int(os.environ.get("RANK", "0"))
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise ModalrecError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (set them with torchrun)") from None
    if not 0 <= rank < world_size:
        raise ModalrecError(f"RANK={rank} is outside WORLD_SIZE={world_size}; launch with torchrun")
    return DistContext(rank, world_size, local_rank)


def start(context: DistContext, device: torch.device, timeout_s: float) -> None:
    """Join the process group (gloo on CPU, NCCL on CUDA).

    ``timeout_s`` bounds the rendezvous and every collective after it. It must cover the longest time one
    rank waits for another: the other ranks wait in a broadcast while rank 0 validates, and at the end
    while rank 0 tests and writes the run folder.
    """
    if not context.enabled or dist.is_initialized():
        return
    if "MASTER_ADDR" not in os.environ:
        raise ModalrecError("distributed training needs a rendezvous: launch with torchrun (see docs/training.md)")
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend, rank=context.rank, world_size=context.world_size,
                                timeout=datetime.timedelta(seconds=timeout_s))
    except Exception as exc:  # rendezvous failures surface as several exception types
        raise ModalrecError(
            f"could not join the process group as rank {context.rank} of {context.world_size} ({exc}); "
            "check that every node uses the same --nnodes/--nproc-per-node and rendezvous endpoint"
        ) from None


def finish_together() -> None:
    """Wait until every rank has finished its part of the job. Called on success before :func:`stop`:
    a rank that tore its process group down while rank 0 was still testing and writing could abort
    at exit."""
    if dist.is_initialized():
        dist.barrier()


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast_value(value: float, context: DistContext) -> float:
    """Rank 0's ``value`` on every rank."""
    if not context.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


def check_same_everywhere(description: str, context: DistContext) -> None:
    """Stop every rank with a clear error when ranks see different data or settings."""
    if not context.enabled:
        return
    seen: list[str | None] = [None] * context.world_size
    dist.all_gather_object(seen, description)
    if len(set(seen)) > 1:
        raise ModalrecError(
            "ranks disagree on the data or the job size: " + "; ".join(f"rank {r}: {s}" for r, s in enumerate(seen))
        )
