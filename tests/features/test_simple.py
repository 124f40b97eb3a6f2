"""Tests of the built-in light feature extractors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modalrec.errors import DataFormatError
from modalrec.features.simple import (
    ORIENTATION_BINS,
    colour_histogram,
    fill_missing,
    image_descriptors,
    tfidf_svd,
)


def _solid(colour: tuple[int, int, int], size: int = 32) -> Image.Image:
    return Image.new("RGB", (size, size), colour)


def _stripes(vertical: bool, size: int = 64) -> Image.Image:
    coordinate = np.mgrid[0:size, 0:size][1 if vertical else 0]
    pixels = np.where(coordinate % 8 < 4, 255, 0).astype(np.uint8)
    return Image.fromarray(pixels, mode="L").convert("RGB")


def _noise(seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def test_colour_histogram_rows_sum_to_one() -> None:
    histograms = colour_histogram([_noise(0), _noise(1), _solid((10, 200, 30))])
    assert histograms.shape == (3, 8 * 4 * 4)
    assert histograms.dtype == np.float32
    np.testing.assert_allclose(histograms.sum(axis=1), 1.0, rtol=1e-6)


def test_pure_red_falls_in_the_red_hue_bin() -> None:
    histogram = colour_histogram([_solid((255, 0, 0))])[0].reshape(8, 4, 4)
    assert histogram[0].sum() == pytest.approx(1.0)
    assert histogram[0, 3, 3] == pytest.approx(1.0)  # fully saturated and bright


def test_different_hues_fall_in_different_bins() -> None:
    red, green, blue = colour_histogram([_solid((255, 0, 0)), _solid((0, 255, 0)), _solid((0, 0, 255))])
    assert np.dot(red, green) == 0 and np.dot(red, blue) == 0 and np.dot(green, blue) == 0


def test_colour_histogram_reads_files_like_images(tmp_path: Path) -> None:
    picture = _noise(3)
    path = tmp_path / "picture.png"
    picture.save(path)
    np.testing.assert_array_equal(colour_histogram([path]), colour_histogram([picture]))


def test_unreadable_image_raises_data_format_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(b"not a picture")
    with pytest.raises(DataFormatError, match="broken.png"):
        image_descriptors([path])


def test_image_descriptors_layout_and_orientation() -> None:
    flat, vertical, horizontal = image_descriptors([_solid((90, 90, 90)), _stripes(True), _stripes(False)])
    colour_width = 8 * 4 * 4
    assert flat.shape == (colour_width + ORIENTATION_BINS + 1,)
    np.testing.assert_array_equal(flat[colour_width:], 0.0)  # no gradient, no edges
    orientation = slice(colour_width, colour_width + ORIENTATION_BINS)
    assert vertical[orientation].sum() == pytest.approx(1.0)
    assert vertical[orientation][0] > 0.9  # vertical stripes: horizontal gradients
    assert horizontal[orientation][ORIENTATION_BINS // 2] > 0.9
    assert vertical[-1] > 0.3


def test_image_descriptors_of_no_images_is_empty() -> None:
    assert image_descriptors([]).shape == (0, 8 * 4 * 4 + ORIENTATION_BINS + 1)


TEXTS = [
    "Crimson striped round ceramic mug",
    "Crimson striped round ceramic mug with a handle",
    "Navy glass vase for fresh flowers",
    "Minimalist oak wall clock",
    "Dotted linen cushion cover",
    "Vintage brass desk lamp",
    "Bamboo salad bowl",
]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_near_identical_titles_are_much_closer_than_unrelated_ones() -> None:
    features = tfidf_svd(TEXTS, dim=16)
    near = _cosine(features[0], features[1])
    unrelated = max(_cosine(features[0], other) for other in features[2:])
    assert near > 0.8
    assert near > unrelated + 0.5


def test_tfidf_svd_is_deterministic_unit_norm_and_bounded() -> None:
    first = tfidf_svd(TEXTS, dim=4, seed=3)
    np.testing.assert_array_equal(first, tfidf_svd(TEXTS, dim=4, seed=3))
    assert first.shape == (len(TEXTS), 4) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    assert tfidf_svd(TEXTS, dim=500).shape == (len(TEXTS), len(TEXTS) - 1)


def test_empty_text_gives_zero_row() -> None:
    features = tfidf_svd([*TEXTS, ""], dim=8)
    np.testing.assert_array_equal(features[-1], 0.0)


@pytest.mark.parametrize("texts", [["", ""], ["only one text here"]])
def test_tfidf_svd_rejects_unusable_texts(texts: list[str]) -> None:
    with pytest.raises(DataFormatError):
        tfidf_svd(texts)


def test_fill_missing_uses_the_mean_of_present_rows() -> None:
    values = np.array([[1.0, 2.0], [3.0, 6.0]], dtype=np.float32)
    present = np.array([False, True, False, True])
    table = fill_missing(values, present)
    assert table.shape == (4, 2) and table.dtype == np.float32
    np.testing.assert_array_equal(table[present], values)
    np.testing.assert_array_equal(table[~present], [[2.0, 4.0], [2.0, 4.0]])


def test_fill_missing_rejects_mismatched_rows() -> None:
    with pytest.raises(DataFormatError, match="expected 1 feature rows"):
        fill_missing(np.ones((2, 3)), np.array([True, False]))
    with pytest.raises(DataFormatError, match="no item has content"):
        fill_missing(np.ones((0, 3)), np.array([False, False]))
