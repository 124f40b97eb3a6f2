#!/usr/bin/env bash
# FREEDOM, exploratory only (issue 19): model seed 1 on re-splits 11 (three settings), 12 and 13 (two), one process, one thread, from the repository
# root. Not enough runs to choose a default (the protocol is 3 re-splits x 3 seeds); FREEDOM's defaults unchanged.
set -euo pipefail
export OMP_NUM_THREADS=1
.venv/bin/python bench/defaults.py run --model freedom --out docs/benchmarks/results/defaults-freedom \
  --split-seeds 11 --seeds 1 \
  --setting "lr1e-2-plateau:train.learning_rate=0.01 train.lr_schedule=plateau" \
  --setting "lr5e-3-plateau:train.learning_rate=0.005 train.lr_schedule=plateau" \
  --setting "old-default:train.learning_rate=0.001 train.lr_schedule=constant"
# then re-splits 12 and 13 (seed 1) for the two closest settings
.venv/bin/python bench/defaults.py run --model freedom --out docs/benchmarks/results/defaults-freedom \
  --split-seeds 12 13 --seeds 1 \
  --setting "lr5e-3-plateau:train.learning_rate=0.005 train.lr_schedule=plateau" \
  --setting "old-default:train.learning_rate=0.001 train.lr_schedule=constant"
.venv/bin/python bench/defaults.py report --out docs/benchmarks/results/defaults-freedom --reference old-default \
  --page docs/benchmarks/notes.md
