"""Tests of extract_table with real extractors: missing and unreadable content, and the on-disk cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modalrec.features.base import Content, create_extractor
from modalrec.features.extract import extract_table


def _picture(path: Path, seed: int) -> Path:
    """A 96x96 JPEG of random coloured rectangles."""
    rng = np.random.default_rng(seed)
    pixels = np.full((96, 96, 3), rng.integers(0, 256, size=3), dtype=np.uint8)
    for _ in range(4):
        top, left = rng.integers(0, 80, size=2)
        pixels[top : top + rng.integers(8, 40), left : left + rng.integers(8, 40)] = rng.integers(0, 256, size=3)
    Image.fromarray(pixels).save(path, quality=90)
    return path


@pytest.fixture()
def catalogue(tmp_path: Path) -> tuple[list[str], list[Content | None]]:
    """Nine items: five pictures, then a text file named .jpg, an empty file, a missing file and no content."""
    folder = tmp_path / "images"
    folder.mkdir()
    contents: list[Content | None] = [_picture(folder / f"item{i}.jpg", seed=i) for i in range(5)]
    (folder / "notes.jpg").write_text("not a picture")
    (folder / "empty.jpg").write_bytes(b"")
    contents += [folder / "notes.jpg", folder / "empty.jpg", folder / "absent.jpg", None]
    return [f"SKU-{i}" for i in range(len(contents))], contents


def test_unusable_images_get_the_mean_and_are_reported(catalogue: tuple[list[str], list[Content | None]]) -> None:
    item_ids, contents = catalogue
    result = extract_table(create_extractor("handcrafted"), item_ids, contents, batch_size=3, progress=False)
    reasons = {item.item_id: item.reason for item in result.missing}
    assert sorted(reasons) == ["SKU-5", "SKU-6", "SKU-7", "SKU-8"]
    assert "not a readable image" in reasons["SKU-5"] and "not an image format" in reasons["SKU-5"]
    assert "empty file" in reasons["SKU-6"]
    assert "absent.jpg" in reasons["SKU-7"]
    assert reasons["SKU-8"] == "no content"
    table = result.table
    assert table.values.shape == (9, 462) and table.values.dtype == np.float32
    np.testing.assert_array_equal(table.missing, [False] * 5 + [True] * 4)
    np.testing.assert_allclose(table.values[5:], np.tile(table.values[:5].mean(axis=0), (4, 1)), rtol=1e-6)
    assert result.computed == 5 and result.cached == 0


def test_cache_serves_repeats_and_recomputes_only_changed_items(
    catalogue: tuple[list[str], list[Content | None]], tmp_path: Path
) -> None:
    item_ids, contents = catalogue
    item_ids, contents = item_ids[:5], contents[:5]
    extractor = create_extractor("handcrafted")
    first = extract_table(extractor, item_ids, contents, cache_dir=tmp_path / "cache", progress=False)
    again = extract_table(extractor, item_ids, contents, cache_dir=tmp_path / "cache", progress=False)
    assert (first.computed, first.cached) == (5, 0)
    assert (again.computed, again.cached) == (0, 5)
    np.testing.assert_array_equal(again.table.values, first.table.values)

    changed = contents[2]
    assert isinstance(changed, Path)
    _picture(changed, seed=99)
    third = extract_table(extractor, item_ids, contents, cache_dir=tmp_path / "cache", progress=False)
    assert (third.computed, third.cached) == (1, 4)
    unchanged = [0, 1, 3, 4]
    np.testing.assert_array_equal(third.table.values[unchanged], first.table.values[unchanged])
    assert not np.allclose(third.table.values[2], first.table.values[2])

    other_settings = create_extractor("handcrafted", {"hog_orientations": 6})
    fresh = extract_table(other_settings, item_ids, contents, cache_dir=tmp_path / "cache", progress=False)
    assert (fresh.computed, fresh.cached) == (5, 0)


TEXTS = [
    "Crimson striped ceramic mug",
    "Crimson striped ceramic mug with a handle",
    "Navy glass vase for fresh flowers",
    "Minimalist oak wall clock",
    "Dotted linen cushion cover",
]


def test_blank_texts_get_the_mean_and_tfidf_fits_on_the_rest() -> None:
    contents: list[Content | None] = [*TEXTS, "   ", None]
    item_ids = [f"T{i}" for i in range(len(contents))]
    result = extract_table(create_extractor("tfidf", {"dim": 3}), item_ids, contents, progress=False)
    assert [item.item_id for item in result.missing] == ["T5", "T6"]
    assert result.table.values.shape == (7, 3)
    np.testing.assert_array_equal(result.table.missing, [False] * 5 + [True, True])
    np.testing.assert_allclose(result.table.values[5], result.table.values[:5].mean(axis=0), rtol=1e-6)


def test_tfidf_cache_is_keyed_by_the_corpus(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    item_ids = [f"T{i}" for i in range(len(TEXTS))]
    first = extract_table(create_extractor("tfidf"), item_ids, list(TEXTS), cache_dir=cache, progress=False)
    again = extract_table(create_extractor("tfidf"), item_ids, list(TEXTS), cache_dir=cache, progress=False)
    assert (again.computed, again.cached) == (0, len(TEXTS))
    np.testing.assert_array_equal(again.table.values, first.table.values)

    grown = [*TEXTS, "Vintage brass desk lamp"]
    bigger = extract_table(create_extractor("tfidf"), [*item_ids, "T5"], grown, cache_dir=cache, progress=False)
    assert (bigger.computed, bigger.cached) == (len(grown), 0)  # every vector depends on the new corpus
    assert len(list(cache.iterdir())) == 2
