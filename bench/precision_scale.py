"""VBPR's training step at Amazon-Elec scale in float32 and in bfloat16: seconds per step and peak memory.

    python bench/precision_scale.py float32
    python bench/precision_scale.py bfloat16

Builds VBPR on Elec's sizes (192,403 users, 63,001 items, 1,689,188 random training pairs) with seeded random
features of MMRec's shapes (image 4,096-d, text 384-d), then times 20 Adam steps of 2,048 triples on one
thread and prints the process's peak resident memory after building the model and after the steps. Run each
precision in a process of its own: the peak is per process.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from modalrec.models import ModelInputs
from modalrec.models.base import TrainBatch
from modalrec.models.vbpr import VBPR, VBPRConfig

USERS, ITEMS, PAIRS = 192_403, 63_001, 1_689_188


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("precision", choices=["float32", "bfloat16", "auto"])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    users = torch.randint(USERS, (PAIRS,), generator=generator)
    items = torch.randint(ITEMS, (PAIRS,), generator=generator)
    features = {"image": torch.randn(ITEMS, 4096, generator=generator),
                "text": torch.randn(ITEMS, 384, generator=generator)}
    model = VBPR(VBPRConfig(train_precision=args.precision), ModelInputs(USERS, ITEMS, users, items, features))
    del features
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    built = peak_mib()
    start = time.perf_counter()
    for _ in range(args.steps):
        rows = torch.randint(PAIRS, (2048,), generator=generator)
        batch = TrainBatch(users[rows], items[rows], torch.randint(ITEMS, (2048,), generator=generator))
        loss = model.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    step_ms = (time.perf_counter() - start) / args.steps * 1000
    print(f"{args.precision}: {step_ms:.0f} ms a step; peak RSS {built:.0f} MiB after the build, "
          f"{peak_mib():.0f} MiB after {args.steps} steps")


if __name__ == "__main__":
    main()
