"""Run a peer toolkit's script unmodified, after the runtime shims: ``peer_main.py SCRIPT [ARGS...]``.

The script runs as ``__main__`` with its own folder first on ``sys.path`` (as ``python SCRIPT`` would),
from the current working directory, with ``torch.set_num_threads($OMP_NUM_THREADS)``.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import shims  # noqa: E402


def main() -> None:
    script = Path(sys.argv[1]).resolve()
    applied = shims.apply()
    print(f"bench/peers shims applied: {', '.join(applied) or 'none'}", file=sys.stderr, flush=True)
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    sys.argv = [str(script), *sys.argv[2:]]
    sys.path.insert(0, str(script.parent))
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
