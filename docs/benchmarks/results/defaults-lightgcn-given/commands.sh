#!/usr/bin/env bash
# The given split of ml100k-posters, seed 999 (the peer harness's seed): LightGCN's old and new defaults,
# one process, one thread, from the repository root. 0.3386 is 0.97 x MMRec's best validation recall@20
# in docs/benchmarks/data/speed-quality.json (the threshold of the side-by-side time to quality).
set -euo pipefail
export OMP_NUM_THREADS=1
.venv/bin/python bench/defaults.py run --model lightgcn --out docs/benchmarks/results/defaults-lightgcn-given \
  --split-seeds given --seeds 999 \
  --setting "new-default:train.learning_rate=0.01 train.lr_schedule=plateau" \
  --setting "old-default:train.learning_rate=0.001 train.lr_schedule=constant"
.venv/bin/python bench/defaults.py report --out docs/benchmarks/results/defaults-lightgcn-given \
  --reference old-default --threshold 0.3386 --page docs/benchmarks/notes.md
