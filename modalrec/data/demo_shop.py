"""The embedded demo dataset: a small synthetic multimodal shop.

Every item has latent attributes (colour, shape, pattern, category, material). The picture
draws the colour, shape and pattern; the text always names the category and material and
only sometimes the colour, shape or pattern. So material and category are visible only in
the text, and colour, shape and pattern are always visible in the picture but only
sometimes in the text. Each user prefers some attribute values with personal weights, and
draws items without replacement with probability proportional to
``softmax(affinity / temperature)``, where affinity sums the weights of the matching
attributes, a mild item popularity term and a little noise. Content therefore predicts
interactions, also for cold items that have no training interaction.

:func:`generate_shop` writes the raw files (pictures, ``items.csv``, ``interactions.csv``)
and, through the dataset builder (:mod:`modalrec.data.build`), an MMRec-layout copy
(``shop.inter``, ``image_feat.npy``, ``text_feat.npy``, id mapping files) whose features
come from real extractors: EfficientNet-Lite0 on the pictures and MiniLM on
``"<title>. <description>"`` by default. :func:`build_demo_dataset` reuses an earlier output
made with the same config.
"""

from __future__ import annotations

import io
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from modalrec.data.build import BuildOptions, ModalitySpec, RawDataset, write_dataset
from modalrec.errors import ConfigError
from modalrec.io_utils import write_bytes

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 2
"""Bump when the generator's output changes, so cached copies are regenerated."""

MANIFEST_NAME = "manifest.json"
DATASET_NAME = "shop"
INTER_NAME = f"{DATASET_NAME}.inter"
RAW_FILES = ("items.csv", "interactions.csv")
TRAIN, VALID, TEST = 0, 1, 2
MIN_WARM_PER_USER = 4
"""Warm interactions every user gets: at least 2 train, 1 valid and 1 test."""
MAX_ITEMS = 99_999

COLOURS: dict[str, tuple[int, int, int]] = {
    "crimson": (200, 30, 45),
    "amber": (235, 140, 20),
    "lemon": (230, 210, 40),
    "emerald": (30, 150, 70),
    "teal": (20, 140, 150),
    "navy": (30, 50, 140),
    "violet": (130, 50, 170),
    "charcoal": (60, 60, 65),
}
SHAPE_WORDS = {"circle": "round", "square": "square", "triangle": "triangular", "diamond": "diamond", "star": "star"}
PATTERN_WORDS = {"solid": "plain", "stripes": "striped", "dots": "dotted", "checks": "checked"}
CATEGORIES = ("mug", "lamp", "cushion", "vase", "bowl", "clock")
MATERIALS = ("ceramic", "glass", "oak", "linen", "brass", "bamboo")
STYLES = ("minimalist", "rustic", "modern", "vintage", "playful", "elegant", "nordic", "handmade")
USES = (
    "for everyday use",
    "for a cosy living room",
    "for a bright kitchen",
    "for a calm bedroom",
    "for a quiet reading corner",
    "for gifting",
)
DESCRIPTION_TEMPLATES = (
    "A {style} {category} made of {material}, {use}.",
    "{Style} {material} {category} {use}.",
    "Crafted from {material}, this {style} {category} is perfect {use}.",
)
ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "colour": tuple(COLOURS),
    "shape": tuple(SHAPE_WORDS),
    "pattern": tuple(PATTERN_WORDS),
    "category": CATEGORIES,
    "material": MATERIALS,
}
TASTE_WEIGHTS = {"colour": 1.0, "shape": 0.9, "pattern": 0.9, "category": 0.9, "material": 1.0}
"""Mean weight a user puts on a liked value of each attribute."""

TITLE_WORDS = {"colour": {colour: colour for colour in COLOURS}, "shape": SHAPE_WORDS, "pattern": PATTERN_WORDS}
"""Word a title uses for each value of the attributes that the picture shows."""

NAME_PROBABILITY = {"colour": 0.5, "shape": 0.5, "pattern": 0.4}
"""Chance that the title names an attribute that the picture always shows."""

BACKGROUND = (236, 232, 224)


@dataclass(frozen=True)
class ShopConfig:
    """Size and generative parameters of the demo shop."""

    num_items: int = 400
    num_users: int = 2500
    seed: int = 2024
    image_size: int = 64  # side of the square product pictures, in pixels
    cold_item_fraction: float = 0.08  # items whose interactions are all held out to test (no training interactions)
    min_user_interactions: int = 8  # fewest interactions a user draws
    max_user_interactions: int = 40  # most interactions a user draws
    mean_extra_interactions: float = 12.0  # mean of the exponential number drawn above the minimum (long tail)
    temperature: float = 0.5  # softmax temperature of item choice; lower follows taste more strictly
    popularity_weight: float = 0.4  # weight of the item popularity term (standard normal) in the affinity
    noise_scale: float = 0.3  # standard deviation of the per user-item noise in the affinity
    holdout_fraction: float = 0.1  # share of each user's warm interactions held out to valid, and again to test
    image_extractor: str = "efficientnet-lite0"  # image extractor run on the pictures ("handcrafted" is fast)
    text_extractor: str = "minilm"  # text extractor run on "<title>. <description>" ("tfidf" is fast)
    start_timestamp: int = 1_700_000_000  # timestamp of the first interaction (seconds)

    def __post_init__(self) -> None:
        """Reject values the generator cannot honour.

        Raises:
            ConfigError: If a value is out of range.
        """
        checks = [
            ("num_users", self.num_users >= 1, "must be at least 1"),
            ("num_items", self.num_items <= MAX_ITEMS, f"must be at most {MAX_ITEMS} (five-digit SKUs)"),
            ("image_size", self.image_size >= 16, "must be at least 16"),
            ("cold_item_fraction", 0.0 <= self.cold_item_fraction < 1.0, "must be in [0, 1)"),
            (
                "min_user_interactions",
                self.min_user_interactions >= MIN_WARM_PER_USER,
                f"must be >= {MIN_WARM_PER_USER}",
            ),
            (
                "max_user_interactions",
                self.max_user_interactions >= self.min_user_interactions,
                "must be >= min_user_interactions",
            ),
            (
                "num_items",
                self.num_items - self.num_cold_items >= self.max_user_interactions,
                "must leave at least max_user_interactions warm (not cold) items",
            ),
            ("mean_extra_interactions", self.mean_extra_interactions >= 0, "must be >= 0"),
            ("temperature", self.temperature > 0, "must be positive"),
            ("noise_scale", self.noise_scale >= 0, "must be >= 0"),
            ("holdout_fraction", 0.0 < self.holdout_fraction < 0.5, "must be in (0, 0.5)"),
        ]
        for key, valid, message in checks:
            if not valid:
                raise ConfigError(key, f"{message}, got {getattr(self, key)}")

    @property
    def num_cold_items(self) -> int:
        """Number of cold items: ``round(cold_item_fraction * num_items)``."""
        return round(self.cold_item_fraction * self.num_items)


@dataclass(frozen=True)
class _Catalogue:
    """Latent item attributes: value indices into :data:`ATTRIBUTE_VALUES`, plus popularity."""

    item_ids: list[str]
    attributes: dict[str, np.ndarray]
    popularity: np.ndarray


def generate_shop(out_dir: Path, config: ShopConfig = ShopConfig()) -> Path:
    """Generate the demo shop into ``out_dir``.

    Writes ``images/<item_id>.png``, ``items.csv`` and ``interactions.csv``, then builds
    ``shop.inter`` (x_label 0 train, 1 valid, 2 test), ``image_feat.npy``, ``text_feat.npy``
    (with their ``*_missing.npy`` masks), ``u_id_mapping.csv``, ``i_id_mapping.csv``,
    ``problems.csv`` and, last, ``manifest.json`` (the builder's, plus this generator's
    name, version and config) with :func:`modalrec.data.build.write_dataset`, running
    ``config.image_extractor`` on the pictures and ``config.text_extractor`` on
    ``"<title>. <description>"``. Each file is written atomically; files of an earlier run
    that the new one does not produce are left.

    The split shuffles each user's interactions with warm items and holds out
    ``holdout_fraction`` of them (rounded, at least one) to valid and as many to test,
    keeping at least 2 for training; every interaction with a cold item goes to test.
    Every user has at least ``MIN_WARM_PER_USER`` warm interactions and every item at
    least one interaction.

    Args:
        out_dir: Folder to write into; created if missing.
        config: Size, seed and generative parameters.

    Returns:
        ``out_dir``.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)  # the folder is complete again only when rewritten
    catalogue_rng, image_rng, text_rng, taste_rng, split_rng = (
        np.random.default_rng(seed) for seed in np.random.SeedSequence(config.seed).spawn(5)
    )
    catalogue = _make_catalogue(config, catalogue_rng)
    pictures = [_render_item(catalogue, item, config.image_size, image_rng) for item in range(config.num_items)]
    titles, descriptions = _describe_items(catalogue, text_rng)
    is_cold = np.zeros(config.num_items, dtype=bool)
    is_cold[catalogue_rng.choice(config.num_items, config.num_cold_items, replace=False)] = True
    interactions = _simulate_interactions(catalogue, is_cold, config, taste_rng)
    labels = _split_labels(interactions, is_cold, config, split_rng)

    _write_pictures(out_dir, catalogue.item_ids, pictures)
    items, raw_interactions = _write_raw_tables(out_dir, catalogue, titles, descriptions, interactions, config)
    _build_features(out_dir, items, raw_interactions.assign(x_label=labels), config)
    logger.info("generated demo shop in %s in %.1f s: %s", out_dir, time.perf_counter() - started,
                _split_counts(labels, config))
    return out_dir


def build_demo_dataset(out_dir: Path, config: ShopConfig = ShopConfig()) -> Path:
    """Return a ready demo shop in ``out_dir``, generating it only when needed.

    An earlier output is reused when ``out_dir/shop.inter`` exists and ``manifest.json``
    records the same config and generator version and every listed file exists.

    Args:
        out_dir: Folder of the dataset.
        config: Size, seed and generative parameters.

    Returns:
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    if _is_up_to_date(out_dir, config):
        logger.info("reusing demo shop in %s", out_dir)
        return out_dir
    return generate_shop(out_dir, config)


def _make_catalogue(config: ShopConfig, rng: np.random.Generator) -> _Catalogue:
    """Draw item ids, attributes and popularity."""
    numbers = rng.choice(np.arange(1, 100_000), size=config.num_items, replace=False)
    attributes = {
        name: rng.integers(0, len(values), size=config.num_items) for name, values in ATTRIBUTE_VALUES.items()
    }
    popularity = rng.standard_normal(config.num_items)
    return _Catalogue([f"SKU-{number:05d}" for number in numbers], attributes, popularity)


def _attribute(catalogue: _Catalogue, item: int, name: str) -> str:
    """Name of the value of attribute ``name`` of ``item``."""
    return ATTRIBUTE_VALUES[name][catalogue.attributes[name][item]]


def _render_item(catalogue: _Catalogue, item: int, size: int, rng: np.random.Generator) -> Image.Image:
    """Draw the product picture: a patterned shape on a light background, with jitter."""
    fill = _jitter(COLOURS[_attribute(catalogue, item, "colour")], 18, rng)
    accent = tuple(int(c + 0.55 * (255 - c)) for c in fill)
    texture = _pattern_texture(_attribute(catalogue, item, "pattern"), fill, accent, size, rng)
    mask = _shape_mask(_attribute(catalogue, item, "shape"), size, rng)
    picture = Image.new("RGB", (size, size), _jitter(BACKGROUND, 10, rng))
    picture.paste(texture, mask=mask)
    return picture


def _jitter(colour: tuple[int, int, int], spread: int, rng: np.random.Generator) -> tuple[int, int, int]:
    """Shift each channel of ``colour`` by a uniform integer in ``[-spread, spread]``."""
    shifted = np.clip(np.array(colour) + rng.integers(-spread, spread + 1, size=3), 0, 255)
    red, green, blue = (int(c) for c in shifted)
    return red, green, blue


def _pattern_texture(
    pattern: str, fill: tuple[int, ...], accent: tuple[int, ...], size: int, rng: np.random.Generator
) -> Image.Image:
    """Full-size picture of ``pattern`` drawn in ``accent`` over ``fill``."""
    rows, cols = np.mgrid[0:size, 0:size]
    period = max(4, size // 6)
    rows, cols = rows + rng.integers(0, period), cols + rng.integers(0, period)
    if pattern == "stripes":
        marked = (rows + cols) % period < period // 2
    elif pattern == "checks":
        cell = max(2, size // 10)
        marked = (rows // cell + cols // cell) % 2 == 1
    elif pattern == "dots":
        offset_rows, offset_cols = rows % period - period / 2, cols % period - period / 2
        marked = offset_rows**2 + offset_cols**2 < (0.28 * period) ** 2
    else:
        marked = np.zeros((size, size), dtype=bool)
    pixels = np.where(marked[..., None], np.array(accent, np.uint8), np.array(fill, np.uint8))
    return Image.fromarray(pixels, mode="RGB")


def _shape_mask(shape: str, size: int, rng: np.random.Generator) -> Image.Image:
    """Anti-aliased mask of ``shape`` with jittered size and position, drawn at 4x and reduced."""
    scale = 4
    side = size * scale
    centre = side / 2 + rng.uniform(-0.06, 0.06, size=2) * side
    radius = rng.uniform(0.28, 0.36) * side
    mask = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(mask)
    if shape == "circle":
        draw.ellipse([*(centre - radius), *(centre + radius)], fill=255)
    elif shape == "square":
        half = 0.85 * radius
        draw.rectangle([*(centre - half), *(centre + half)], fill=255)
    else:
        draw.polygon(_polygon(shape, centre, radius), fill=255)
    return mask.reduce(scale)


def _polygon(shape: str, centre: np.ndarray, radius: float) -> list[tuple[float, float]]:
    """Vertices of a triangle, diamond or five-pointed star around ``centre``."""
    if shape == "triangle":
        angles, radii = np.deg2rad([-90, 30, 150]), np.full(3, radius)
        centre = centre + np.array([0.0, 0.15 * radius])
    elif shape == "diamond":
        angles, radii = np.deg2rad([-90, 0, 90, 180]), np.full(4, radius)
    else:
        angles = np.deg2rad(-90 + 36 * np.arange(10))
        radii = np.where(np.arange(10) % 2 == 0, radius, 0.45 * radius)
    return [(centre[0] + r * np.cos(a), centre[1] + r * np.sin(a)) for a, r in zip(angles, radii)]


def _describe_items(catalogue: _Catalogue, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Titles and descriptions; the picture-only attributes are named only sometimes."""
    titles, descriptions = [], []
    for item in range(len(catalogue.item_ids)):
        category = _attribute(catalogue, item, "category")
        words = [_title_word(catalogue, item, name, rng) for name in ("colour", "pattern", "shape")]
        title = " ".join([word for word in words if word] + [category])
        titles.append(title[0].upper() + title[1:])
        style = str(rng.choice(STYLES))
        template = DESCRIPTION_TEMPLATES[rng.integers(len(DESCRIPTION_TEMPLATES))]
        descriptions.append(
            template.format(
                style=style,
                Style=style.capitalize(),
                category=category,
                material=_attribute(catalogue, item, "material"),
                use=str(rng.choice(USES)),
            )
        )
    return titles, descriptions


def _title_word(catalogue: _Catalogue, item: int, name: str, rng: np.random.Generator) -> str:
    """Title word for attribute ``name``, or an empty string when the title leaves it out."""
    if rng.random() >= NAME_PROBABILITY[name]:
        return ""
    return TITLE_WORDS[name][_attribute(catalogue, item, name)]


def _simulate_interactions(
    catalogue: _Catalogue, is_cold: np.ndarray, config: ShopConfig, rng: np.random.Generator
) -> pd.DataFrame:
    """Draw each user's items from their taste; columns user, item, rating, timestamp (time order)."""
    affinity = _affinity(catalogue, config, rng)
    perturbed = affinity / config.temperature + rng.gumbel(size=affinity.shape)
    ranking = np.argsort(-perturbed, axis=1, kind="stable")
    counts = _interaction_counts(config, rng)
    picks = [_user_picks(ranking[user], counts[user], is_cold) for user in range(config.num_users)]
    _cover_every_item(picks, perturbed)
    users = np.repeat(np.arange(config.num_users), [len(items) for items in picks])
    items = np.concatenate(picks)
    ratings = np.concatenate([_ratings(affinity[user, chosen], rng) for user, chosen in enumerate(picks)])
    order = rng.permutation(len(items))
    timestamps = config.start_timestamp + np.cumsum(rng.integers(30, 900, size=len(items)))
    return pd.DataFrame(
        {"user": users[order], "item": items[order], "rating": ratings[order], "timestamp": timestamps}
    )


def _affinity(catalogue: _Catalogue, config: ShopConfig, rng: np.random.Generator) -> np.ndarray:
    """``(num_users, num_items)`` affinity: weights of liked attribute values, popularity and noise."""
    users = np.arange(config.num_users)
    affinity = config.popularity_weight * np.tile(catalogue.popularity, (config.num_users, 1))
    for name, values in ATTRIBUTE_VALUES.items():
        liked = np.zeros((config.num_users, len(values)))
        liked[users, rng.integers(0, len(values), size=config.num_users)] = 1.0
        if name == "colour":  # half of the users like a second colour too
            likes_two = users[rng.random(config.num_users) < 0.5]
            liked[likes_two, rng.integers(0, len(values), size=len(likes_two))] = 1.0
        weight = rng.gamma(shape=4.0, scale=TASTE_WEIGHTS[name] / 4.0, size=(config.num_users, 1))
        affinity += weight * liked[:, catalogue.attributes[name]]
    return affinity + rng.normal(0.0, config.noise_scale, size=affinity.shape)


def _interaction_counts(config: ShopConfig, rng: np.random.Generator) -> np.ndarray:
    """Long-tailed number of items each user draws: minimum plus an exponential, capped."""
    extra = np.floor(rng.exponential(config.mean_extra_interactions, size=config.num_users)).astype(np.int64)
    return np.minimum(config.min_user_interactions + extra, config.max_user_interactions)


def _user_picks(ranking: np.ndarray, count: int, is_cold: np.ndarray) -> np.ndarray:
    """The first ``count`` ranked items, topped up with warm ones to reach ``MIN_WARM_PER_USER``."""
    chosen = ranking[:count]
    missing_warm = MIN_WARM_PER_USER - int(np.sum(~is_cold[chosen]))
    if missing_warm <= 0:
        return chosen
    rest = ranking[count:]
    return np.concatenate([chosen, rest[~is_cold[rest]][:missing_warm]])


def _cover_every_item(picks: list[np.ndarray], perturbed: np.ndarray) -> None:
    """Give every item nobody drew to the user who scores it highest (in place)."""
    counts = np.bincount(np.concatenate(picks), minlength=perturbed.shape[1])
    for item in np.flatnonzero(counts == 0):
        user = int(np.argmax(perturbed[:, item]))
        picks[user] = np.append(picks[user], item)


def _ratings(affinity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ratings 1-5 that grow with the affinity of a user's chosen items, relative to each other."""
    spread = affinity.std() or 1.0
    score = 3.5 + 1.1 * (affinity - affinity.mean()) / spread + rng.normal(0.0, 0.7, size=len(affinity))
    return np.clip(np.rint(score), 1, 5).astype(np.int64)


def _split_labels(
    interactions: pd.DataFrame, is_cold: np.ndarray, config: ShopConfig, rng: np.random.Generator
) -> np.ndarray:
    """x_label per interaction: cold items go to test; each user's warm rows are shuffled and split."""
    labels = np.full(len(interactions), TEST, dtype=np.int64)
    users = interactions["user"].to_numpy()
    warm_rows = np.flatnonzero(~is_cold[interactions["item"].to_numpy()])
    warm_rows = warm_rows[np.argsort(users[warm_rows], kind="stable")]
    boundaries = np.flatnonzero(np.diff(users[warm_rows])) + 1
    for rows in np.split(warm_rows, boundaries):
        rows = rng.permutation(rows)
        held = min(max(1, int(len(rows) * config.holdout_fraction + 0.5)), (len(rows) - 2) // 2)
        labels[rows[:held]] = VALID
        labels[rows[2 * held :]] = TRAIN
    return labels


def _split_counts(labels: np.ndarray, config: ShopConfig) -> dict[str, int]:
    """Sizes of the dataset and of each split, for the log."""
    return {
        "users": config.num_users,
        "items": config.num_items,
        "cold_items": config.num_cold_items,
        "interactions": len(labels),
        "train": int(np.sum(labels == TRAIN)),
        "valid": int(np.sum(labels == VALID)),
        "test": int(np.sum(labels == TEST)),
    }


def _user_ids(config: ShopConfig) -> list[str]:
    """Original user ids ``U0001``, ``U0002``, ... in index order."""
    width = max(4, len(str(config.num_users)))
    return [f"U{number:0{width}d}" for number in range(1, config.num_users + 1)]


def _write_pictures(out_dir: Path, item_ids: list[str], pictures: list[Image.Image]) -> None:
    """Save each picture as ``images/<item_id>.png``."""
    for item_id, picture in zip(item_ids, pictures):
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        write_bytes(out_dir / "images" / f"{item_id}.png", buffer.getvalue())


def _write_raw_tables(
    out_dir: Path,
    catalogue: _Catalogue,
    titles: list[str],
    descriptions: list[str],
    interactions: pd.DataFrame,
    config: ShopConfig,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write ``items.csv`` and ``interactions.csv`` with the original string ids; return both tables."""
    items = pd.DataFrame(
        {
            "item_id": catalogue.item_ids,
            "title": titles,
            "description": descriptions,
            "image": [f"images/{item_id}.png" for item_id in catalogue.item_ids],
        }
    )
    raw = pd.DataFrame(
        {
            "user_id": np.array(_user_ids(config))[interactions["user"].to_numpy()],
            "item_id": np.array(catalogue.item_ids)[interactions["item"].to_numpy()],
            "rating": interactions["rating"],
            "timestamp": interactions["timestamp"],
        }
    )
    write_bytes(out_dir / "items.csv", items.to_csv(index=False, lineterminator="\n").encode())
    write_bytes(out_dir / "interactions.csv", raw.to_csv(index=False, lineterminator="\n").encode())
    return items, raw


def _build_features(out_dir: Path, items: pd.DataFrame, interactions: pd.DataFrame, config: ShopConfig) -> None:
    """Build the MMRec-layout files from the raw tables with the configured extractors."""
    content = items[["item_id", "image"]].assign(text=items["title"] + ". " + items["description"])
    content.index = np.arange(len(content)) + 2  # line numbers in items.csv, after the header
    interactions = interactions.set_axis(np.arange(len(interactions)) + 2)
    raw = RawDataset(interactions, content, out_dir / "interactions.csv", out_dir / "items.csv")
    specs = [
        ModalitySpec("image", ("image",), config.image_extractor),
        ModalitySpec("text", ("text",), config.text_extractor),
    ]
    generator = {"generator": __name__, "version": GENERATOR_VERSION, "config": asdict(config)}
    write_dataset(raw, specs, out_dir, BuildOptions(name=DATASET_NAME), extra_manifest=generator)


def _is_up_to_date(out_dir: Path, config: ShopConfig) -> bool:
    """Whether ``out_dir`` holds a complete shop generated by this version with ``config``."""
    manifest_path = out_dir / MANIFEST_NAME
    if not (out_dir / INTER_NAME).is_file() or not manifest_path.is_file():
        return False
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        logger.warning("ignoring unreadable %s: %s", manifest_path, error)
        return False
    return (
        manifest.get("version") == GENERATOR_VERSION
        and manifest.get("config") == asdict(config)
        and all((out_dir / name).is_file() for name in [*RAW_FILES, *manifest.get("files", [])])
    )
