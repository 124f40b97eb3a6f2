"""Sharded feature extraction merges back to the unsharded result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from modalrec.cli.main import main


def test_shards_merge_to_the_whole(tmp_path: Path) -> None:
    lines = ["item_id,image"]
    for n in range(7):
        if n != 3:  # item 3 has no picture: it gets the catalogue-wide mean
            Image.new("RGB", (32, 32), (30 * n, 200 - 20 * n, 90)).save(tmp_path / f"{n}.png")
        lines.append(f"i{n},{n}.png")
    (tmp_path / "items.csv").write_text("\n".join(lines) + "\n")
    common = ["features", "extract", "--items", str(tmp_path / "items.csv"), "--column", "image",
              "--extractor", "handcrafted", "--device", "cpu"]
    assert main([*common, "--out", str(tmp_path / "all.npy")]) == 0
    for shard in range(3):
        assert main([*common, "--shard", f"{shard}/3", "--out", str(tmp_path / f"s{shard}.npy")]) == 0
    assert main(["features", "merge", *[str(tmp_path / f"s{s}.npy") for s in range(3)],
                 "--out", str(tmp_path / "merged.npy")]) == 0
    assert np.allclose(np.load(tmp_path / "merged.npy"), np.load(tmp_path / "all.npy"), atol=1e-6)
    assert (tmp_path / "merged.ids.txt").read_text() == (tmp_path / "all.ids.txt").read_text()
    assert np.load(tmp_path / "merged.missing.npy").tolist() == [False, False, False, True, False, False, False]
    assert main([*common, "--shard", "3/3", "--out", str(tmp_path / "bad.npy")]) == 2
