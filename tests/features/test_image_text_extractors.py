"""Tests of the image and text extractors: shapes, determinism, similarity, errors and the pretrained weights."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skimage_data

from modalrec.cli.features_cmd import add_features_parser
from modalrec.errors import ConfigError, NotFittedError
from modalrec.features.base import ContentError, Extractor, create_extractor, get_extractor
from modalrec.features.extractors.image import (
    EfficientNetLite0Extractor,
    normalised_batch,
    open_image,
)
from modalrec.features.extractors.text import MiniLMExtractor
from modalrec.features.simple import tfidf_svd

EGYPTIAN_CAT, ESPRESSO = 285, 967  # ImageNet class indices


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _near_duplicate(image: Image.Image, seed: int = 0) -> Image.Image:
    """Shifted 6 px right and down (edge pixels repeated) with Gaussian noise of std 8 grey levels."""
    pixels = np.asarray(image, dtype=np.float64)
    shifted = np.pad(pixels, ((6, 0), (6, 0), (0, 0)), mode="edge")[: pixels.shape[0], : pixels.shape[1]]
    noisy = shifted + np.random.default_rng(seed).normal(0, 8, size=shifted.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: these small batches run several times faster than with threads fighting for cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real photographs shipped with scikit-image, written as files: a cat, its near duplicate, coffee, a rocket."""
    folder = tmp_path_factory.mktemp("photos")
    cat = Image.fromarray(skimage_data.chelsea())
    pictures = {
        "cat": cat,
        "cat_shifted": _near_duplicate(cat),
        "coffee": Image.fromarray(skimage_data.coffee()),
        "rocket": Image.fromarray(skimage_data.rocket()),
    }
    paths = {}
    for name, picture in pictures.items():
        paths[name] = folder / f"{name}.jpg"
        picture.save(paths[name], quality=95)
    return paths


@pytest.fixture(scope="module")
def efficientnet() -> EfficientNetLite0Extractor:
    extractor = create_extractor("efficientnet-lite0")
    assert isinstance(extractor, EfficientNetLite0Extractor)
    return extractor


@pytest.fixture(scope="module")
def minilm() -> MiniLMExtractor:
    extractor = create_extractor("minilm")
    assert isinstance(extractor, MiniLMExtractor)
    return extractor


def _embed_files(extractor: Extractor, paths: list[Path]) -> np.ndarray:
    return extractor.embed([extractor.load(path) for path in paths])


def test_registered_names_kinds_and_dims() -> None:
    expected = {"efficientnet-lite0": ("image", 1280), "handcrafted": ("image", 462), "minilm": ("text", 384)}
    for name, (kind, dim) in expected.items():
        assert get_extractor(name).kind == kind
        assert create_extractor(name).dim == dim
    assert get_extractor("torch-model").kind == "image"
    assert get_extractor("tfidf").kind == "text"


# -- efficientnet-lite0 ------------------------------------------------------------------------------

def test_efficientnet_features_feed_the_imagenet_classifier(
    efficientnet: EfficientNetLite0Extractor, photos: dict[str, Path]
) -> None:
    features = _embed_files(efficientnet, [photos["cat"], photos["coffee"]])
    assert features.shape == (2, 1280) and features.dtype == np.float32
    with torch.no_grad():
        logits = efficientnet.network()._fc(torch.from_numpy(features))
    assert logits.argmax(1).tolist() == [EGYPTIAN_CAT, ESPRESSO]
    assert logits.softmax(1).max(1).values.min() > 0.5


def test_efficientnet_is_deterministic_and_sees_near_duplicates(
    efficientnet: EfficientNetLite0Extractor, photos: dict[str, Path]
) -> None:
    paths = [photos[name] for name in ("cat", "cat_shifted", "coffee", "rocket")]
    cat, shifted, coffee, rocket = _embed_files(efficientnet, paths)
    np.testing.assert_array_equal(_embed_files(efficientnet, paths)[0], cat)
    near = _cosine(cat, shifted)
    unrelated = max(_cosine(cat, coffee), _cosine(cat, rocket))
    assert near > 0.9
    assert near > unrelated + 0.3


def test_efficientnet_input_is_squashed_and_imagenet_normalised(
    efficientnet: EfficientNetLite0Extractor, photos: dict[str, Path]
) -> None:
    prepared = efficientnet.load(photos["rocket"])  # 427 x 640 picture
    assert prepared.shape == (224, 224, 3) and prepared.dtype == np.uint8
    batch = normalised_batch([prepared], (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), torch.device("cpu"))
    assert batch.shape == (1, 3, 224, 224)
    np.testing.assert_allclose(batch[0, :, 0, 0].numpy(), (prepared[0, 0] / 255 - 0.5) / 0.25, rtol=1e-6)


# -- handcrafted -------------------------------------------------------------------------------------

def test_handcrafted_layout_blocks_are_unit_length(tmp_path: Path) -> None:
    extractor = create_extractor("handcrafted")
    flat = tmp_path / "flat.png"
    Image.new("RGB", (50, 80), (200, 30, 30)).save(flat)
    vector = _embed_files(extractor, [flat])[0]
    assert vector.shape == (128 + 10 + 324,) and vector.dtype == np.float32
    colour, texture, shape = vector[:128], vector[128:138], vector[138:]
    assert np.linalg.norm(colour) == pytest.approx(1.0) and np.linalg.norm(texture) == pytest.approx(1.0)
    assert colour.argmax() == (0 * 4 + 3) * 4 + 3  # red hue, high saturation, high value
    np.testing.assert_array_equal(shape, 0.0)  # a flat picture has no gradient


def test_handcrafted_is_deterministic_and_sees_near_duplicates(photos: dict[str, Path]) -> None:
    extractor = create_extractor("handcrafted")
    paths = [photos[name] for name in ("cat", "cat_shifted", "coffee", "rocket")]
    cat, shifted, coffee, rocket = _embed_files(extractor, paths)
    np.testing.assert_array_equal(_embed_files(extractor, paths)[0], cat)
    assert _cosine(cat, shifted) > max(_cosine(cat, coffee), _cosine(cat, rocket)) + 0.2


def test_handcrafted_dim_follows_its_settings() -> None:
    extractor = create_extractor("handcrafted", {"colour_bins": [4, 2, 2], "lbp_points": 16, "hog_cell": 8})
    assert extractor.dim == 16 + 18 + 7 * 7 * 4 * 9
    with pytest.raises(ConfigError, match="hog_size"):
        create_extractor("handcrafted", {"hog_size": 16, "hog_cell": 16})


# -- reading images ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["handcrafted", "efficientnet-lite0"])
def test_unreadable_images_raise_content_error(name: str, tmp_path: Path) -> None:
    extractor = create_extractor(name)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture\n")
    truncated = tmp_path / "truncated.jpg"
    buffer = tmp_path / "whole.jpg"
    Image.fromarray(skimage_data.coffee()).save(buffer)
    truncated.write_bytes(buffer.read_bytes()[:2000])
    for path in (tmp_path / "absent.jpg", empty, text, truncated):
        with pytest.raises(ContentError, match="not a readable image"):
            extractor.load(path)


def test_format_is_read_from_content_and_transparency_becomes_white(tmp_path: Path) -> None:
    jpeg_named_png = tmp_path / "photo.png"
    Image.new("RGB", (20, 10), (0, 0, 255)).save(jpeg_named_png, format="JPEG")
    assert open_image(jpeg_named_png).size == (20, 10)
    transparent = tmp_path / "cutout.png"
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(transparent)
    assert open_image(transparent).getpixel((0, 0)) == (255, 255, 255)


# -- torch-model -------------------------------------------------------------------------------------

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")

class TinyConvNet(torch.nn.Module):
    """Two convolutions; output (B, 5, H/2, W/2)."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 5, 3, stride=2, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.manual_seed(0)
    model = TinyConvNet().eval()
    folder = tmp_path_factory.mktemp("models")
    paths = {"export": folder / "tiny.pt2", "script": folder / "tiny.pt", "pickle": folder / "tiny.pth",
             "state": folder / "state.pth"}
    example = (torch.zeros(2, 3, 32, 32),)
    torch.export.save(torch.export.export(model, example, dynamic_shapes=({0: torch.export.Dim("batch")},)),
                      paths["export"])
    torch.jit.save(torch.jit.script(model), paths["script"])
    torch.save(model, paths["pickle"])
    torch.save(model.state_dict(), paths["state"])
    return paths


@pytest.mark.parametrize("kind", ["export", "script", "pickle"])
def test_torch_model_pools_the_user_model_output(
    kind: str, tiny_models: dict[str, Path], photos: dict[str, Path]
) -> None:
    trusted = {"trust_pickle": True} if kind == "pickle" else {}
    extractor = create_extractor("torch-model", {"path": str(tiny_models[kind]), "image_size": 32, **trusted})
    assert extractor.dim == 5
    prepared = [extractor.load(photos["cat"]), extractor.load(photos["coffee"])]
    vectors = extractor.embed(prepared)
    assert vectors.shape == (2, 5) and vectors.dtype == np.float32
    reference = torch.load(tiny_models["pickle"], weights_only=False)
    with torch.no_grad():
        expected = reference(normalised_batch(prepared, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                                              torch.device("cpu"))).mean((2, 3))
    np.testing.assert_allclose(vectors, expected.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(extractor.embed(prepared), vectors)


def test_torch_model_flatten_and_cache_key(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    flat = create_extractor("torch-model", {"path": str(tiny_models["script"]), "image_size": 32, "output": "flatten"})
    assert flat.dim == 5 * 16 * 16
    copy = tmp_path / "tiny.pt"
    copy.write_bytes(tiny_models["script"].read_bytes())
    before = create_extractor("torch-model", {"path": str(copy)}).fingerprint()
    torch.jit.save(torch.jit.script(TinyConvNet()), copy)  # retrained weights, same path
    assert create_extractor("torch-model", {"path": str(copy)}).fingerprint() != before


def test_torch_model_rejects_missing_or_unusable_files(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="path.*required"):
        create_extractor("torch-model")
    with pytest.raises(ConfigError, match="no model file at .*absent.pt"):
        create_extractor("torch-model", {"path": str(tmp_path / "absent.pt")})
    with pytest.raises(ConfigError, match="state_dict"):
        _ = create_extractor("torch-model", {"path": str(tiny_models["state"])}).dim
    junk = tmp_path / "junk.pt"
    junk.write_text("not a model")
    with pytest.raises(ConfigError, match="junk.pt"):
        _ = create_extractor("torch-model", {"path": str(junk)}).dim


class _CodeOnLoad:
    """Unpickling this calls ``exec``: what a malicious model file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def test_torch_model_refuses_pickles_unless_trusted(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pickled module.*trust_pickle = true"):
        _ = create_extractor("torch-model", {"path": str(tiny_models["pickle"])}).dim
    marker, crafted = tmp_path / "pwned", tmp_path / "crafted.pth"
    torch.save({"weights": _CodeOnLoad(marker)}, crafted)
    with pytest.raises(ConfigError, match="refused"):
        _ = create_extractor("torch-model", {"path": str(crafted)}).dim
    assert not marker.exists()
    untrusted = create_extractor("torch-model", {"path": str(tiny_models["pickle"])})
    trusted = create_extractor("torch-model", {"path": str(tiny_models["pickle"]), "trust_pickle": True})
    assert untrusted.fingerprint() == trusted.fingerprint()  # the same vectors, the same cache entries


# -- minilm ------------------------------------------------------------------------------------------

SENTENCES = [
    "A wooden rocking chair for the porch",
    "Wooden rocking chair for your porch",
    "Stainless steel chef's knife, 20 cm blade",
    "Children's picture book about dinosaurs",
]


def test_minilm_unit_vectors_deterministic_and_semantic(minilm: MiniLMExtractor) -> None:
    vectors = minilm.embed([minilm.load(text) for text in SENTENCES])
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(minilm.embed(SENTENCES), vectors)
    near = _cosine(vectors[0], vectors[1])
    unrelated = max(_cosine(vectors[0], other) for other in vectors[2:])
    assert near > 0.85 and near > unrelated + 0.5


def test_text_extractors_reject_paths_and_blank_texts(minilm: MiniLMExtractor) -> None:
    for extractor in (minilm, create_extractor("tfidf")):
        with pytest.raises(ContentError, match="expected a text"):
            extractor.load(Path("description.txt"))
        with pytest.raises(ContentError, match="empty text"):
            extractor.load("  \n")


# -- tfidf -------------------------------------------------------------------------------------------

def test_tfidf_fits_on_the_corpus_like_tfidf_svd() -> None:
    extractor = create_extractor("tfidf", {"dim": 2, "seed": 1})
    with pytest.raises(NotFittedError):
        _ = extractor.dim
    extractor.fit(SENTENCES)
    assert extractor.dim == 2
    vectors = extractor.embed(SENTENCES)
    np.testing.assert_allclose(vectors, tfidf_svd(SENTENCES, dim=2, seed=1), atol=1e-5)
    np.testing.assert_array_equal(extractor.embed(SENTENCES), vectors)
    np.testing.assert_array_equal(extractor.embed(["completely unseen words"]), 0.0)
    with pytest.raises(ConfigError, match="extractor.tfidf.dim"):
        create_extractor("tfidf", {"dim": 0})


# -- features list -----------------------------------------------------------------------------------

def test_features_list_prints_every_extractor_with_its_dim(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    features_sub = add_features_parser(parser.add_subparsers(dest="command", required=True))
    assert isinstance(features_sub, argparse._SubParsersAction)
    args = parser.parse_args(["features", "list"])
    assert args.handler(args) == 0
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert lines["efficientnet-lite0"][1:3] == ["image", "1280"]
    assert lines["minilm"][1:3] == ["text", "384"]
    assert lines["tfidf"][1] == "text" and not lines["tfidf"][2].isdigit()  # known only once fitted
    assert lines["torch-model"][1] == "image" and not lines["torch-model"][2].isdigit()  # needs a path
