"""Light built-in feature extractors that need no pretrained weights.

Images become a colour histogram plus a few shape and texture numbers
(:func:`image_descriptors`); texts become a TF-IDF matrix reduced with a truncated SVD
(:func:`tfidf_svd`, or :class:`TfidfSvd` to fit on one corpus and transform any text).
:func:`fill_missing` completes a feature table for items whose content is missing. Every
function returns ``float32`` arrays with one row per input.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from threadpoolctl import threadpool_limits

from modalrec.errors import DataFormatError, NotFittedError

logger = logging.getLogger(__name__)

ImageInput = Path | str | Image.Image

DESCRIPTOR_SIZE = 64
"""Side, in pixels, of the square every image is resized to before it is described."""

ORIENTATION_BINS = 8
"""Bins of the gradient-orientation histogram in :func:`image_descriptors`."""

EDGE_THRESHOLD = 0.1
"""Gradient magnitude (grey levels in [0, 1], central differences) above which a pixel is an edge."""


def colour_histogram(images: Sequence[ImageInput], bins: tuple[int, int, int] = (8, 4, 4)) -> np.ndarray:
    """Joint hue-saturation-value histogram of each image.

    Each image is converted to RGB, resized to ``DESCRIPTOR_SIZE`` x ``DESCRIPTOR_SIZE`` and
    then to PIL's HSV mode (every channel in 0..255). The hue axis is split into ``bins[0]``
    equal bins whose first bin is centred on red (hue 0), so reds just below and above
    hue 0 share a bin; saturation and value are split into ``bins[1]`` and ``bins[2]``
    equal bins. The joint bin of a pixel is ``(h * bins[1] + s) * bins[2] + v``.

    Args:
        images: Image files or already opened images.
        bins: Number of hue, saturation and value bins.

    Returns:
        ``(len(images), prod(bins))`` float32 array; every row sums to 1.

    Raises:
        DataFormatError: If a file cannot be read as an image.
        ValueError: If a bin count is not positive.
    """
    if min(bins) < 1:
        raise ValueError(f"every bin count must be positive, got {bins}")
    rows = [hsv_histogram(_load_rgb(image), bins) for image in images]
    return _stack(rows, int(np.prod(bins)))


def image_descriptors(
    images: Sequence[ImageInput], bins: tuple[int, int, int] = (8, 4, 4)
) -> np.ndarray:
    """Colour, shape and texture descriptor of each image.

    The row of an image is the concatenation, in this order, of:

    1. ``prod(bins)`` values: :func:`colour_histogram` (sums to 1).
    2. ``ORIENTATION_BINS`` (8) values: histogram of unsigned gradient orientations of the
       grey image resized to ``DESCRIPTOR_SIZE`` x ``DESCRIPTOR_SIZE``, each pixel weighted
       by its gradient magnitude. Orientations cover [0, pi) with bin 0 centred on 0
       (horizontal gradient, i.e. a vertical edge) and bin 4 on pi/2; the histogram sums to
       1, or is all zeros for a flat image.
    3. 1 value: edge density, the fraction of pixels whose gradient magnitude exceeds
       ``EDGE_THRESHOLD``.

    Args:
        images: Image files or already opened images.
        bins: Number of hue, saturation and value bins of the colour histogram.

    Returns:
        ``(len(images), prod(bins) + 9)`` float32 array.

    Raises:
        DataFormatError: If a file cannot be read as an image.
        ValueError: If a bin count is not positive.
    """
    if min(bins) < 1:
        raise ValueError(f"every bin count must be positive, got {bins}")
    rows = []
    for image in images:
        rgb = _load_rgb(image)
        rows.append(np.concatenate([hsv_histogram(rgb, bins), _shape_texture(rgb)]))
    return _stack(rows, int(np.prod(bins)) + ORIENTATION_BINS + 1)


def tfidf_svd(texts: Sequence[str], dim: int = 64, seed: int = 0) -> np.ndarray:
    """TF-IDF of unigrams and bigrams reduced by a truncated SVD.

    Uses sublinear term frequency and keeps ``min(dim, n_features - 1, len(texts) - 1)``
    SVD components. Rows are L2-normalised; a text with no known term (for example an
    empty string) gives an all-zero row, which :func:`fill_missing` can replace.

    Args:
        texts: One text per item.
        dim: Largest number of output dimensions.
        seed: Random state of the randomized SVD; equal inputs and seed give equal output.

    Returns:
        ``(len(texts), k)`` float32 array with ``k <= dim``.

    Raises:
        DataFormatError: If the texts hold fewer than two words or there are fewer than two texts.
        ValueError: If ``dim`` is not positive.
    """
    return TfidfSvd(dim, seed).fit_transform(texts)


class TfidfSvd:
    """:func:`tfidf_svd` split into ``fit`` on a corpus and ``transform`` of any texts.

    Args:
        dim: Largest number of output dimensions.
        seed: Random state of the randomized SVD.

    Raises:
        ValueError: If ``dim`` is not positive.
    """

    def __init__(self, dim: int = 64, seed: int = 0) -> None:
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self.max_dim = dim
        self.seed = seed
        self._vectorizer: TfidfVectorizer | None = None
        self._svd: TruncatedSVD | None = None

    @property
    def dim(self) -> int:
        """Number of output dimensions once fitted: ``min(dim, n_features - 1, n_texts - 1)``."""
        if self._svd is None:
            raise NotFittedError("TfidfSvd: call fit() before asking for dim")
        return int(self._svd.n_components)

    def fit(self, texts: Sequence[str]) -> TfidfSvd:
        """Learn the vocabulary, IDF weights and SVD basis of ``texts``."""
        self.fit_transform(texts)
        return self

    def fit_transform(self, texts: Sequence[str]) -> np.ndarray:
        """Fit on ``texts`` and return their ``(len(texts), dim)`` float32 rows (see :func:`tfidf_svd`)."""
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        try:
            tfidf = vectorizer.fit_transform(list(texts))
        except ValueError as error:  # raised by scikit-learn for an empty vocabulary
            raise DataFormatError(None, f"cannot build TF-IDF features: {error}") from error
        n_texts, n_features = tfidf.shape
        components = min(self.max_dim, n_features - 1, n_texts - 1)
        if components < 1:
            raise DataFormatError(
                None, f"need at least 2 texts and 2 distinct words, found {n_texts} texts and {n_features} terms"
            )
        svd = TruncatedSVD(n_components=components, random_state=self.seed)
        # One BLAS thread: far faster on matrices this small and bit-reproducible across machines.
        # errstate: scikit-learn divides by the total variance for explained_variance_ratio_ (unused here),
        # which is 0 when every text is the same.
        with threadpool_limits(limits=1), np.errstate(invalid="ignore", divide="ignore"):
            reduced = svd.fit_transform(tfidf)
        self._vectorizer, self._svd = vectorizer, svd
        logger.debug("tfidf_svd: %d texts, %d terms -> %d dimensions", n_texts, n_features, components)
        return _l2_normalise(reduced).astype(np.float32)

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 L2-normalised rows; words unseen by ``fit`` are ignored."""
        if self._vectorizer is None or self._svd is None:
            raise NotFittedError("TfidfSvd: call fit() before transform()")
        with threadpool_limits(limits=1):
            reduced = self._svd.transform(self._vectorizer.transform(list(texts)))
        return _l2_normalise(reduced).astype(np.float32)


def fill_missing(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Full feature table where items without content get the mean of the others.

    This is MMRec's convention for items that lack an image or a text.

    Args:
        values: ``(present.sum(), dim)`` features of the items that have content, in item order.
        present: ``(n_items,)`` boolean mask, True where the item has content.

    Returns:
        ``(n_items, dim)`` float32 table: row ``i`` is the next row of ``values`` where
        ``present[i]`` is True, and the mean of ``values`` elsewhere.

    Raises:
        DataFormatError: If the shapes disagree or no item has content.
    """
    present = np.asarray(present)
    values = np.asarray(values, dtype=np.float32)
    if present.ndim != 1 or present.dtype != bool:
        raise DataFormatError(
            None, f"present must be a 1-D boolean mask, found {present.dtype} with shape {present.shape}"
        )
    if values.ndim != 2 or len(values) != int(present.sum()):
        raise DataFormatError(
            None, f"expected {int(present.sum())} feature rows (one per present item), found shape {values.shape}"
        )
    if len(values) == 0:
        raise DataFormatError(None, "no item has content, so there is no mean to fill missing rows with")
    table = np.empty((len(present), values.shape[1]), dtype=np.float32)
    table[present] = values
    table[~present] = values.mean(axis=0)
    return table


def _load_rgb(image: ImageInput) -> Image.Image:
    """Open ``image`` if needed and return it as an RGB image of the descriptor size."""
    if isinstance(image, Image.Image):
        rgb = image.convert("RGB")
    else:
        try:
            with Image.open(image) as opened:
                rgb = opened.convert("RGB")
        except (OSError, ValueError) as error:
            raise DataFormatError(image, f"cannot read image: {error}") from error
    return rgb.resize((DESCRIPTOR_SIZE, DESCRIPTOR_SIZE), Image.Resampling.BILINEAR)


def hsv_histogram(rgb: Image.Image, bins: tuple[int, int, int]) -> np.ndarray:
    """L1-normalised joint HSV histogram of an RGB image of any size (binning as in :func:`colour_histogram`).

    Shapes: ``(prod(bins),)`` float64.
    """
    hsv = np.asarray(rgb.convert("HSV"), dtype=np.int64).reshape(-1, 3)
    hue_bins, sat_bins, val_bins = bins
    half_hue_bin = 256 // (2 * hue_bins)
    hue = ((hsv[:, 0] + half_hue_bin) % 256) * hue_bins // 256
    sat = hsv[:, 1] * sat_bins // 256
    val = hsv[:, 2] * val_bins // 256
    joint = (hue * sat_bins + sat) * val_bins + val
    counts = np.bincount(joint, minlength=hue_bins * sat_bins * val_bins)
    return counts / counts.sum()


def _shape_texture(rgb: Image.Image) -> np.ndarray:
    """Magnitude-weighted orientation histogram followed by edge density (see :func:`image_descriptors`)."""
    grey = np.asarray(rgb.convert("L"), dtype=np.float64) / 255.0
    grad_y, grad_x = np.gradient(grey)
    magnitude = np.hypot(grad_x, grad_y)
    orientation = np.mod(np.arctan2(grad_y, grad_x), np.pi)
    bin_width = np.pi / ORIENTATION_BINS
    orientation_bin = np.floor(orientation / bin_width + 0.5).astype(np.int64) % ORIENTATION_BINS
    histogram = np.bincount(orientation_bin.ravel(), weights=magnitude.ravel(), minlength=ORIENTATION_BINS)
    total = histogram.sum()
    if total > 0:
        histogram = histogram / total
    edge_density = np.mean(magnitude > EDGE_THRESHOLD)
    return np.append(histogram, edge_density)


def _stack(rows: list[np.ndarray], width: int) -> np.ndarray:
    """Stack descriptor rows into a float32 matrix, keeping the width when there are no rows."""
    if not rows:
        return np.zeros((0, width), dtype=np.float32)
    return np.stack(rows).astype(np.float32)


def _l2_normalise(matrix: np.ndarray) -> np.ndarray:
    """Divide each row by its L2 norm, leaving all-zero rows as they are."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)
